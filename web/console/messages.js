// A conversation's messages: paged history with typed rendering, send as a client, edit,
// recall, delete (REST …/{cid}/messages).
import { api, q } from './api.js';
import { h, form, input, action, flash, when } from './dom.js';

/** A message's content as a person reads it: typed messages (_lctype) by type. */
export function renderContent(m) {
  if (m.bin) return h('i', {}, `binary, ${m.data.length} base64 characters`);
  let c;
  try {
    c = JSON.parse(m.data);
  } catch {
    return h('span', {}, m.data);
  }
  if (!c || typeof c !== 'object' || c._lctype === undefined) return h('span', {}, m.data);
  const text = c._lctext ? h('span', {}, ` ${c._lctext}`) : null;
  const file = c._lcfile || {};
  const url = typeof file.url === 'string' && /^(https?:)?\//.test(file.url) ? file.url : null;
  switch (c._lctype) {
    case -1: return h('span', { class: 'typed text' }, c._lctext ?? '');
    case -2: return h('span', { class: 'typed image' }, url ? h('img', { src: url, alt: file.metaData?.name || 'image' }) : '[image]', text);
    case -3: case -4: case -6:
      return h('span', { class: 'typed file' }, url ? h('a', { href: url, target: '_blank', rel: 'noopener' }, `📎 ${file.metaData?.name || url}`) : '[file]', text);
    case -5: {
      const l = c._lcloc || {};
      return h('span', { class: 'typed location' }, `📍 ${l.latitude}, ${l.longitude}`, text);
    }
    case -127: return h('i', { class: 'typed recalled' }, 'recalled');
    default: return h('span', { class: 'typed custom' }, h('b', {}, `type ${c._lctype} `), h('code', {}, m.data));
  }
}

export function messagesPanel(base, conv) {
  const list = h('ol', { class: 'messages', id: 'history' });
  let oldest = null;

  function row(m) {
    const li = h('li', { 'data-id': m['msg-id'] },
      h('div', { class: 'meta' }, h('b', {}, m.from), ` · ${when(m.timestamp)}`, m['patch-timestamp'] ? ` · edited ${when(m['patch-timestamp'])}` : '',
        h('small', {}, ` ${m['msg-id']}`)),
      h('div', { class: 'content' }, renderContent(m)));
    const path = `${base}/messages/${encodeURIComponent(m['msg-id'])}`;
    const edit = form({ class: 'inline edit', hidden: true }, [input('message', 'new text'), h('button', {}, 'Save')], async (v) => {
      await api('PUT', path, { from_client: m.from, message: JSON.stringify({ _lctype: -1, _lctext: v.message }) });
      flash('message edited');
      reload();
    });
    li.append(h('div', { class: 'actions' },
      h('button', { type: 'button', class: 'link', onclick: () => { edit.hidden = !edit.hidden; } }, 'edit'),
      action('recall', async () => {
        await api('PUT', `${path}/recall`, { from_client: m.from });
        flash('message recalled');
        reload();
      }, { cls: 'link' }),
      action('delete', async () => {
        await api('DELETE', `${path}?${q({ from_client: m.from, timestamp: m.timestamp })}`);
        flash('message deleted');
        li.remove();
      }, { cls: 'link danger', confirmText: 'Delete this message from the server?' })), edit);
    return li;
  }

  async function page(before) {
    const params = { limit: 20 };
    if (before) Object.assign(params, { msgid: before['msg-id'], timestamp: before.timestamp });
    const got = await api('GET', `${base}/messages?${q(params)}`);
    const items = Array.isArray(got) ? got : got.results || [];
    items.forEach((m) => list.append(row(m)));
    if (items.length) oldest = items[items.length - 1];
    more.hidden = items.length < 20;
  }
  async function reload() {
    list.replaceChildren();
    oldest = null;
    await page(null);
  }

  const more = action('Older messages', () => page(oldest), { cls: 'secondary' });
  const send = form({ id: 'send-form' }, [
    input('from', 'from client id', { required: true }),
    h('select', { name: 'type', 'aria-label': 'type' }, h('option', { value: 'text' }, 'text'), h('option', { value: 'raw' }, 'plain string'),
      h('option', { value: 'json' }, 'custom (JSON)')),
    input('text', 'message', { required: true }),
    conv.sys ? input('to', 'to client ids (comma-separated)', { required: true }) : null,
    h('label', {}, h('input', { type: 'checkbox', name: 'transient' }), ' transient'),
    h('button', {}, 'Send'),
  ], async (v, f) => {
    let message = v.text;
    if (v.type === 'text') message = JSON.stringify({ _lctype: -1, _lctext: v.text });
    if (v.type === 'json') message = JSON.parse(v.text);
    const body = { from_client: v.from, message, transient: !!v.transient };
    if (conv.sys) body.to_clients = v.to.split(',').map((s) => s.trim()).filter(Boolean); // broadcasts: Service page
    await api('POST', `${base}/messages`, body);
    f.elements.text.value = '';
    flash('message sent');
    reload();
  });
  reload().catch((e) => flash(e.message, 'error'));
  return h('section', {}, h('h3', {}, 'Messages'), h('p', { class: 'hint' }, 'Send as a client (REST …/messages): members get it as from that client.'), send, list, more);
}

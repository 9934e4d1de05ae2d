// Conversations: search (the `where` operators), create; one conversation: name and
// attributes, members with roles, online status, mutes, shut-up and blacklist; delete;
// and its messages (messages.js).
import { api, get, q, kindPath } from './api.js';
import { h, table, form, input, action, flash, json, when } from './dom.js';
import { messagesPanel } from './messages.js';

const KINDS = {
  conversations: '/1.2/rtm/conversations',
  chatrooms: '/1.2/rtm/chatrooms',
  'service-conversations': '/1.2/rtm/service-conversations',
  all: '/1.2/rtm/all-conversations',
};
const present = (...xs) => xs.filter((x) => x !== null && x !== undefined);
const ids = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);
const parseJSON = (s, what) => {
  if (!s || !s.trim()) return undefined;
  try {
    return JSON.parse(s);
  } catch {
    throw new Error(`${what} is not JSON`);
  }
};
/** A typed value from a search box: numbers, true/false and null as JSON, else a string. */
const typed = (s) => {
  try {
    const v = JSON.parse(s);
    return typeof v === 'object' && v !== null ? s : v;
  } catch {
    return s;
  }
};
const link = (c) => h('a', { href: `#/conv/${kindPath(c).split('/').pop()}/${encodeURIComponent(c.objectId)}` }, c.objectId);

export function conversations(view) {
  const results = h('div', { id: 'conv-results' });
  const search = form({ id: 'conv-search' }, [
    h('select', { name: 'kind', 'aria-label': 'kind' }, Object.keys(KINDS).map((k) => h('option', { value: k }, k))),
    input('name', 'name contains'),
    input('member', 'has member'),
    input('attrKey', 'attribute (attr.…)'),
    input('attrValue', 'attribute value'),
    input('where', 'or a where JSON, e.g. {"attr.level":{"$gte":3}}', { class: 'wide' }),
    input('order', 'order, e.g. -updatedAt'),
    h('button', {}, 'Search'),
  ], async (v) => {
    const and = [];
    if (v.name) and.push({ name: { $regex: v.name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&') } });
    if (v.member) and.push({ m: v.member });
    if (v.attrKey) and.push({ [`attr.${v.attrKey}`]: typed(v.attrValue) });
    const raw = parseJSON(v.where, 'where');
    if (raw) and.push(raw);
    const where = and.length === 0 ? undefined : JSON.stringify(and.length === 1 ? and[0] : { $and: and });
    const got = await get(`${KINDS[v.kind]}?${q({ where, order: v.order, limit: 100 })}`);
    results.replaceChildren(table([
      ['id', link],
      ['kind', (c) => (c.sys ? 'service' : c.tr ? 'chat room' : c.unique ? 'unique' : 'normal')],
      ['name', (c) => c.name || ''],
      ['members', (c) => (Array.isArray(c.m) ? String(c.m.length) : '')],
      ['attributes', (c) => (c.attr ? json(c.attr) : '')],
      ['updated', (c) => when(c.updatedAt)],
    ], got.results, 'no conversation matches'));
  });

  const create = form({ id: 'conv-create' }, [
    h('select', { name: 'kind', 'aria-label': 'kind' }, ['conversations', 'chatrooms', 'service-conversations'].map((k) => h('option', { value: k }, k))),
    input('name', 'name', { required: true }),
    input('members', 'members, comma-separated'),
    input('attr', 'attributes JSON, e.g. {"topic":"cats"}', { class: 'wide' }),
    h('label', {}, h('input', { type: 'checkbox', name: 'unique' }), ' unique'),
    h('button', {}, 'Create'),
  ], async (v, f) => {
    const body = { name: v.name, m: ids(v.members) };
    const attr = parseJSON(v.attr, 'attributes');
    if (attr) body.attr = attr;
    if (v.unique) body.unique = true;
    const c = await api('POST', KINDS[v.kind], body);
    f.reset();
    flash(`created ${c.objectId}`);
    location.hash = `#/conv/${v.kind}/${c.objectId}`;
  });

  view.append(h('h2', {}, 'Conversations'), search, results, h('h3', {}, 'New conversation'), create);
  search.requestSubmit();
}

export async function conversation(view, kind, cid) {
  const base = `${KINDS[kind]}/${encodeURIComponent(cid)}`;
  const conv = await get(base);
  const isRoom = kind === 'chatrooms', isService = kind === 'service-conversations';
  const info = h('section', {}, h('h3', {}, 'Conversation'),
    h('dl', { class: 'facts' },
      h('dt', {}, 'id'), h('dd', {}, conv.objectId),
      h('dt', {}, 'kind'), h('dd', {}, isService ? 'service conversation' : isRoom ? 'chat room' : conv.unique ? 'unique' : 'normal'),
      h('dt', {}, 'creator'), h('dd', {}, conv.c || ''),
      h('dt', {}, 'created'), h('dd', {}, when(conv.createdAt)),
      h('dt', {}, 'last message'), h('dd', {}, conv.lm ? when(conv.lm.iso || conv.lm) : '')),
    form({ id: 'conv-edit' }, [
      input('name', 'name', { value: conv.name || '' }),
      input('attr', 'attributes JSON', { class: 'wide', value: JSON.stringify(conv.attr || {}) }),
      h('button', {}, 'Save'),
    ], async (v) => {
      await api('PUT', base, { name: v.name, attr: parseJSON(v.attr, 'attributes') || {} });
      flash('saved');
    }),
    action('Delete conversation', async () => {
      await api('DELETE', base);
      flash(`deleted ${cid}`);
      location.hash = '#/conversations';
    }, { cls: 'danger', confirmText: `Delete conversation ${cid}? Members keep their copies.` }));

  view.append(h('p', {}, h('a', { href: '#/conversations' }, '← conversations')), h('h2', {}, conv.name || cid), info);
  if (!isService) view.append(await membersPanel(base, conv, isRoom));
  view.append(messagesPanel(base, conv));
}

async function membersPanel(base, conv, isRoom) {
  const box = h('section', { id: 'members' });
  async function refresh() {
    const [members, infos, mutes, silenced, blocked] = await Promise.all([
      get(`${base}/members`).then((r) => r.result || []),
      isRoom ? { results: [] } : get(`${base}/member-infos?limit=1000`).catch(() => ({ results: [] })),
      isRoom ? { result: [] } : get(`${base}/mutes`).catch(() => ({ result: [] })),
      get(`${base}/permanent-silenceds?limit=500`).catch(() => ({ client_ids: [] })),
      get(`${base}/blacklists?limit=500`).catch(() => ({ client_ids: [] })),
    ]);
    const online = new Set();
    for (let i = 0; i < members.length; i += 20) {
      const r = await api('POST', '/1.2/rtm/clients/check-online', { client_ids: members.slice(i, i + 20) });
      r.results.forEach((id) => online.add(id));
    }
    const role = new Map((infos.results || []).map((i) => [i.clientId, i.role]));
    const mute = new Set(mutes.result || []), shut = new Set(silenced.client_ids || []);
    const toggle = (label, on, path, id) => action(on ? `un${label}` : label, async () => {
      await api(on ? 'DELETE' : 'POST', `${base}/${path}`, { client_ids: [id] });
      refresh();
    }, { cls: 'link' });
    box.replaceChildren(...present(h('h3', {}, isRoom ? 'Online members' : 'Members'), table([
      ['client', (id) => h('a', { href: `#/clients/${encodeURIComponent(id)}` }, id)],
      ['online', (id) => (online.has(id) ? h('span', { class: 'dot on' }, 'online') : h('span', { class: 'dot' }, 'offline'))],
      ['role', (id) => (isRoom ? '' : h('select', {
        'aria-label': `role of ${id}`,
        onchange: async (e) => {
          try {
            await api('POST', `${base}/member-infos`, { clientId: id, role: e.target.value });
            flash(`${id} is now ${e.target.value}`);
          } catch (err) { flash(err.message, 'error'); }
        },
      }, ['Member', 'Manager'].map((r) => h('option', { value: r, selected: (role.get(id) || 'Member') === r }, r))))],
      ['', (id) => [
        isRoom ? null : toggle('mute', mute.has(id), 'mutes', id),
        toggle('shut up', shut.has(id), 'permanent-silenceds', id),
        isRoom ? null : action('remove', async () => {
          await api('DELETE', `${base}/members`, { client_ids: [id] });
          refresh();
        }, { cls: 'link danger' }),
      ]],
    ], members, isRoom ? 'nobody is in the room' : 'no members'),
    isRoom ? null : form({ id: 'members-add' }, [input('ids', 'add members, comma-separated', { required: true }), h('button', {}, 'Add')], async (v, f) => {
      await api('POST', `${base}/members`, { client_ids: ids(v.ids) });
      f.reset();
      refresh();
    }),
    h('h4', {}, 'Blacklist'),
    table([['client', (id) => id], ['', (id) => action('unblock', async () => {
      await api('DELETE', `${base}/blacklists`, { client_ids: [id] });
      refresh();
    }, { cls: 'link' })]], blocked.client_ids || [], 'nobody is blocked'),
    form({ id: 'block-add' }, [input('ids', 'block client ids', { required: true }), h('button', {}, 'Block')], async (v, f) => {
      await api('POST', `${base}/blacklists`, { client_ids: ids(v.ids) });
      f.reset();
      refresh();
    }),
    h('h4', {}, 'Shut up for a while'),
    form({ id: 'shutup-temp' }, [input('id', 'client id', { required: true }), input('ttl', 'seconds', { type: 'number', min: 1, max: 86400, required: true }),
      h('button', {}, 'Shut up')], async (v, f) => {
      await api('POST', `${base}/temporary-silenceds`, { client_id: v.id, ttl: Number(v.ttl) });
      f.reset();
      flash(`${v.id} shut up for ${v.ttl} s`);
    })));
  }
  await refresh();
  return box;
}

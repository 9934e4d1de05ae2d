// Clients: online status, unread counts, kick, a client's messages and subscriptions.
import { api, get, q } from './api.js';
import { h, table, form, input, action, flash, when } from './dom.js';
import { renderContent } from './messages.js';

const ids = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);

function kick(id, after) {
  return action('kick', async () => {
    await api('POST', `/1.2/rtm/clients/${encodeURIComponent(id)}/kick`, { reason: 'tern console' });
    flash(`${id} kicked`);
    after?.();
  }, { cls: 'danger' });
}

export function clients(view) {
  const out = h('div', { id: 'client-results' });
  const stats = h('p', { id: 'stats' });
  get('/1.2/rtm/stats').then((s) => stats.replaceChildren(
    `online now: ${s.result.online_user_count} · signed in today: ${s.result.user_count_today}`)).catch(() => {});
  const check = form({ id: 'client-check' }, [input('ids', 'client ids, comma-separated (up to 20)', { required: true, class: 'wide' }), h('button', {}, 'Look up')],
    async (v) => {
      const list = ids(v.ids).slice(0, 20);
      const online = new Set((await api('POST', '/1.2/rtm/clients/check-online', { client_ids: list })).results);
      const unread = await Promise.all(list.map((id) => get(`/1.2/rtm/clients/${encodeURIComponent(id)}/unread-count`).then((r) => r.count, () => '?')));
      const rows = list.map((id, i) => ({ id, online: online.has(id), unread: unread[i] }));
      out.replaceChildren(table([
        ['client', (r) => h('a', { href: `#/clients/${encodeURIComponent(r.id)}` }, r.id)],
        ['status', (r) => (r.online ? h('span', { class: 'dot on' }, 'online') : h('span', { class: 'dot' }, 'offline'))],
        ['unread', (r) => String(r.unread)],
        ['', (r) => (r.online ? kick(r.id, () => check.requestSubmit()) : '')],
      ], rows));
    });
  view.append(h('h2', {}, 'Clients'), stats, check, out);
}

export async function client(view, id) {
  const enc = encodeURIComponent(id);
  const online = (await api('POST', '/1.2/rtm/clients/check-online', { client_ids: [id] })).results.includes(id);
  const unread = await get(`/1.2/rtm/clients/${enc}/unread-count`).then((r) => r.count, () => '?');
  const msgs = await get(`/1.2/rtm/clients/${enc}/messages?limit=20`).catch(() => []);
  const subs = await get(`/1.2/rtm/clients/${enc}/service-conversations?limit=50`).catch(() => ({ results: [] }));
  const items = Array.isArray(msgs) ? msgs : msgs.results || [];
  view.append(
    h('p', {}, h('a', { href: '#/clients' }, '← clients')),
    h('h2', {}, id),
    h('p', { id: 'client-status' }, online ? h('span', { class: 'dot on' }, 'online') : h('span', { class: 'dot' }, 'offline'), ` · unread: ${unread} `,
      online ? kick(id, () => { location.hash = `#/clients/${enc}?${Date.now()}`; }) : null),
    h('h3', {}, 'Latest messages sent by this client'),
    table([['conversation', (m) => h('a', { href: `#/conv/conversations/${encodeURIComponent(m['conv-id'] || '')}` }, m['conv-id'] || '')],
      ['when', (m) => when(m.timestamp)], ['content', renderContent]], items, 'no messages'),
    h('h3', {}, 'Service conversations subscribed'),
    table([['conversation', (s) => s.conv_id || s.objectId || JSON.stringify(s)], ['since', (s) => when(s.timestamp)]], subs.results || subs || [], 'none'));
}

// Service conversations: subscribers, broadcasts to every subscriber, past broadcasts.
import { api, get, q } from './api.js';
import { h, table, form, input, action, flash, when } from './dom.js';
import { renderContent } from './messages.js';

const BASE = '/1.2/rtm/service-conversations';

export async function service(view) {
  const list = await get(`${BASE}?${q({ limit: 100, order: '-updatedAt' })}`);
  const detail = h('div', { id: 'service-detail' });
  view.append(h('h2', {}, 'Service conversations and broadcasts'),
    h('p', { class: 'hint' }, 'Create one under Conversations (kind service-conversations).'),
    table([
      ['id', (c) => h('a', { href: '#/service', onclick: (e) => { e.preventDefault(); show(detail, c); } }, c.objectId)],
      ['name', (c) => c.name || ''],
      ['updated', (c) => when(c.updatedAt)],
    ], list.results, 'no service conversations'), detail);
}

async function show(box, conv) {
  const base = `${BASE}/${encodeURIComponent(conv.objectId)}`;
  const [count, subs, past] = await Promise.all([
    get(`${base}/subscribers/count`),
    get(`${base}/subscribers?limit=50`),
    get(`/1.2/rtm/broadcasts?${q({ conv_id: conv.objectId, limit: 20 })}`).catch(() => []),
  ]);
  const refresh = () => show(box, conv);
  const subsList = Array.isArray(subs) ? subs : subs.results || [];
  const pastList = Array.isArray(past) ? past : past.results || [];
  box.replaceChildren(
    h('h3', {}, `${conv.name || conv.objectId}: ${count.count} subscribers`),
    table([['subscriber', (s) => s.subscriber || s.client_id || String(s)], ['since', (s) => when(s.timestamp)],
      ['', (s) => action('unsubscribe', async () => {
        await api('DELETE', `${base}/subscribers/${encodeURIComponent(s.subscriber || s.client_id)}`);
        refresh();
      }, { cls: 'link danger' })]], subsList, 'no subscribers'),
    form({}, [input('id', 'subscribe a client id', { required: true }), h('button', {}, 'Subscribe')], async (v) => {
      await api('POST', `${base}/subscribers`, { client_id: v.id });
      refresh();
    }),
    h('h4', {}, 'Broadcast to every subscriber'),
    form({ id: 'broadcast' }, [input('from', 'from client id', { required: true }), input('text', 'message', { required: true, class: 'wide' }), h('button', {}, 'Broadcast')],
      async (v) => {
        await api('POST', `${base}/broadcasts`, { from_client: v.from, message: JSON.stringify({ _lctype: -1, _lctext: v.text }) });
        flash('broadcast sent');
        refresh();
      }),
    h('h4', {}, 'Past broadcasts'),
    table([['when', (m) => when(m.timestamp)], ['from', (m) => m.from || ''], ['content', (m) => renderContent(m)],
      ['', (m) => action('delete', async () => {
        await api('DELETE', `/1.2/rtm/broadcasts/${encodeURIComponent(m['msg-id'])}?${q({ conv_id: conv.objectId })}`);
        refresh();
      }, { cls: 'link danger' })]], pastList, 'none'));
}

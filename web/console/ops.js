// Push (installations, the dead-letter log), files, hooks.
import { api, get, q } from './api.js';
import { h, table, form, input, action, flash, json, when } from './dom.js';

/** The newest rows of a class, through the storage-API class reads (GET /1.1/classes/…). */
async function classList(cls, params) {
  return (await get(`/1.1/classes/${cls}?${q(params)}`)).results;
}

export async function push(view) {
  const dead = await get('/1.2/tern/push/dead-letters?limit=100');
  const inst = await classList('_Installation', { limit: 100, order: '-updatedAt' });
  const one = h('div');
  view.append(h('h2', {}, 'Push'),
    h('h3', {}, 'Installations'),
    table([['id', (i) => i.objectId], ['device', (i) => i.deviceType], ['token', (i) => h('code', {}, (i.deviceToken || i.registrationId || '').slice(0, 24))],
        ['channels', (i) => (i.channels || []).join(', ')], ['updated', (i) => when(i.updatedAt)]], inst, 'no installations'),
    form({}, [input('id', 'installation objectId', { required: true }), h('button', {}, 'Look up')], async (v) => {
      one.replaceChildren(json(await get(`/1.1/installations/${encodeURIComponent(v.id)}`)));
    }), one,
    h('h3', {}, 'Dead-letter log (newest first)'),
    table([['when', (d) => when(d.at)], ['provider', (d) => d.provider || ''], ['client', (d) => d.clientId || ''],
      ['reason', (d) => d.reason || d.unparsed || ''], ['attempts', (d) => String(d.attempts ?? '')], ['last answer', (d) => `${d.status ?? ''} ${d.error || ''}`],
      ['message', (d) => (d.msgId ? `${d.convId} / ${d.msgId}` : '')]], dead.results, 'no push was given up on'),
    h('p', { class: 'hint', hidden: !dead.truncated }, 'Older entries are in push-dead-letter.jsonl in the data directory.'));
}

export async function files(view) {
  const list = await classList('_File', { limit: 100, order: '-createdAt' });
  const one = h('div');
  const del = (f) => action('delete', async () => {
    await api('DELETE', `/1.1/files/${encodeURIComponent(f.objectId)}`);
    flash(`deleted ${f.objectId}`);
    location.hash = `#/files?${Date.now()}`;
  }, { cls: 'link danger', confirmText: `Delete file ${f.objectId}? Messages that carry its URL will show nothing.` });
  const columns = [['id', (f) => f.objectId], ['name', (f) => (f.url ? h('a', { href: f.url, target: '_blank', rel: 'noopener' }, f.name) : f.name)],
    ['type', (f) => f.mime_type || ''], ['size', (f) => String(f.metaData?.size ?? '')], ['created', (f) => when(f.createdAt)], ['', del]];
  view.append(h('h2', {}, 'Files'),
    table(columns, list, 'no files'),
    form({}, [input('id', 'file objectId', { required: true }), h('button', {}, 'Look up')], async (v) => {
      const f = await get(`/1.1/files/${encodeURIComponent(v.id)}`);
      one.replaceChildren(table(columns, [f]));
    }), one);
}

export async function hooks(view) {
  const s = await get('/1.2/tern/hooks');
  view.append(h('h2', {}, 'Hooks'),
    h('p', {}, s.url ? ['Hook server: ', h('code', {}, s.url), ` · timeout ${s.timeout_ms} ms · ${s.fail_closed ? 'fail closed' : 'fail open'}`]
      : 'No hook server configured (hook_url, hooks).'),
    table([['hook', (x) => x.name], ['enabled', (x) => (x.enabled ? 'yes' : 'no')], ['calls', (x) => String(x.calls)],
      ['failures', (x) => String(x.failures)], ['mean latency', (x) => (x.calls ? `${x.avg_ms.toFixed(1)} ms` : '')]], s.hooks));
}

// Every action of the console is one of ternd's REST calls (docs/rest.md), made with the
// master key from this tab's session storage: X-LC-Id and X-LC-Key: <key>,master.
const KEY = 'tern-console';

export function credentials() {
  try {
    return JSON.parse(sessionStorage.getItem(KEY)) || null;
  } catch {
    return null;
  }
}
export const saveCredentials = (c) => sessionStorage.setItem(KEY, JSON.stringify(c));
export const forget = () => sessionStorage.removeItem(KEY);

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? `${body.error} (${body.code ?? status})` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }
}

function headers(extra = {}) {
  const c = credentials() || {};
  return { 'X-LC-Id': c.appId || '', 'X-LC-Key': `${c.masterKey || ''},master`, ...extra };
}

/** One call: method, path (with query), JSON body. Resolves the parsed answer. */
export async function api(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { 'Content-Type': 'application/json' }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  const text = await res.text();
  let data;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { error: text };
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

export const get = (path) => api('GET', path);
export const q = (params) => new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== '')).toString();

/** GET /metrics: the Prometheus text as Map('name{labels}' → number). */
export async function metrics() {
  const res = await fetch('/metrics', { headers: headers() });
  if (!res.ok) throw new ApiError(res.status, null);
  const m = new Map();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line[0] === '#') continue;
    const i = line.lastIndexOf(' ');
    m.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return m;
}

/** The path family of a conversation kind. */
export function kindPath(conv) {
  if (conv.sys) return '/1.2/rtm/service-conversations';
  if (conv.tr) return '/1.2/rtm/chatrooms';
  return '/1.2/rtm/conversations';
}

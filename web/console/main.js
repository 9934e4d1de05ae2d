// tern console: sign in with the master key (kept in this tab's sessionStorage only), then
// a hash-routed view per page. Every action is one of ternd's REST calls (api.js).
import { credentials, saveCredentials, forget, get, ApiError } from './api.js';
import { $, h, flash } from './dom.js';
import { dashboard } from './dashboard.js';
import { conversations, conversation } from './conversations.js';
import { clients, client } from './clients.js';
import { service } from './service.js';
import { push, files, hooks } from './ops.js';

const routes = [
  [/^#\/dashboard$/, dashboard],
  [/^#\/conversations$/, conversations],
  [/^#\/conv\/(conversations|chatrooms|service-conversations)\/([^/?]+)/, (v, kind, cid) => conversation(v, kind, decodeURIComponent(cid))],
  [/^#\/clients$/, clients],
  [/^#\/clients\/([^/?]+)/, (v, id) => client(v, decodeURIComponent(id))],
  [/^#\/service/, service],
  [/^#\/push/, push],
  [/^#\/files/, files],
  [/^#\/hooks/, hooks],
];

let cleanup = null;
async function route() {
  if (!credentials()) return showLogin();
  if (cleanup) cleanup();
  cleanup = null;
  const view = $('#view');
  view.replaceChildren();
  const hash = location.hash || '#/dashboard';
  document.querySelectorAll('#nav a').forEach((a) => a.classList.toggle('active', hash.startsWith(a.getAttribute('href'))));
  const found = routes.find(([re]) => re.test(hash));
  if (!found) {
    location.hash = '#/dashboard';
    return;
  }
  try {
    const r = await found[1](view, ...hash.match(found[0]).slice(1));
    if (typeof r === 'function') cleanup = r;
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) return showLogin('The master key was refused.');
    view.append(h('p', { class: 'error' }, err.message));
  }
}

function showLogin(message = '') {
  if (cleanup) cleanup();
  cleanup = null;
  forget();
  $('#shell').hidden = true;
  $('#login').hidden = false;
  $('#login-error').textContent = message;
}

$('#login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const c = { appId: f.get('appId').trim(), masterKey: f.get('masterKey').trim() };
  saveCredentials(c);
  try {
    await get('/1.2/rtm/stats'); // master key only: proves the key before anything is shown
  } catch (err) {
    forget();
    $('#login-error').textContent = err.status === 401 || err.status === 403
      ? 'Wrong app id or master key.' : `Could not reach ternd: ${err.message}`;
    return;
  }
  e.target.reset();
  $('#login').hidden = true;
  $('#shell').hidden = false;
  route();
});

$('#logout').addEventListener('click', () => {
  showLogin();
  flash('signed out');
});

window.addEventListener('hashchange', route);
if (credentials()) {
  $('#shell').hidden = false;
  route();
} else {
  showLogin();
}

// tern chat — a reference web client on the official LeanCloud JS SDK.
//
// Everything here is plain SDK usage an app moving off LeanCloud can copy: leancloud-realtime
// 5 for messaging, leancloud-storage 4 for uploads (AV.File), and the typed-messages plugin
// for image messages. The only tern-specific line is where the SDK is pointed: at the origin
// this page came from (see connect()).
import * as IM from 'leancloud-realtime';
import AV from 'leancloud-storage';
import initTypedMessages from 'leancloud-realtime-plugin-typed-messages';

const { TypedMessagesPlugin, ImageMessage, FileMessage, AudioMessage, VideoMessage, LocationMessage } =
  initTypedMessages(AV, IM);

// "… is typing": a custom message type sent transient (never stored, only to who is online).
class TypingMessage extends IM.TypedMessage {}
IM.messageType(101)(TypingMessage);

const $ = (id) => document.getElementById(id);
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== false) el.setAttribute(k, v === true ? '' : v);
  }
  el.append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return el;
}
const time = (d) => (d ? new Date(d).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' }) : '');

let realtime; // one Realtime per page: the WebSocket
let client; // the signed-in IMClient
let current; // the open Conversation
let history; // its messages iterator (older pages on scroll)
let editing; // the message being edited, or null
const convs = new Map(); // id -> Conversation shown in the list
const shown = new Map(); // message id -> its <li>, in the open conversation
const watched = new WeakSet(); // conversations whose receipt events we listen to

// ------------------------------------------------------------------ banner

function banner(text, kind = 'warn') {
  const b = $('banner');
  b.hidden = !text;
  b.textContent = text || '';
  b.className = `banner ${kind}`;
}

// ------------------------------------------------------------------ sign in

async function connect(appId, appKey, clientId) {
  const origin = location.origin; // ternd serves this page, its REST API and its WebSocket
  AV.init({ appId, appKey, serverURLs: origin });
  realtime = new IM.Realtime({
    appId,
    appKey,
    server: origin,
    RTMServers: [`${origin.replace(/^http/, 'ws')}/`],
    plugins: [TypedMessagesPlugin],
  });
  realtime.register(TypingMessage);
  realtime.on('disconnect', () => banner('Connection lost. Reconnecting…'));
  realtime.on('schedule', (attempt, delay) => banner(`Connection lost. Retrying in ${Math.round(delay / 1000)} s…`));
  realtime.on('retry', () => banner('Reconnecting…'));
  realtime.on('reconnect', () => banner(''));

  client = await realtime.createIMClient(clientId);
  client.on('message', onMessage);
  client.on('messageupdate', (m, conv) => conv === current && replace(m));
  client.on('messagerecall', (m, conv) => conv === current && replace(m));
  client.on('unreadmessagescountupdate', (list) => list.forEach(listed));
  client.on('invited', (_, conv) => listed(conv));
  client.on('kicked', (_, conv) => dropConv(conv));
  client.on('close', ({ code, reason }) => banner(`Signed out by the server: ${reason} (${code})`, 'error'));
  client.on('conflict', () => banner('Signed out: this id signed in somewhere else', 'error'));
}

$('login').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const [appId, appKey, clientId] = ['appId', 'appKey', 'clientId'].map((k) => f.get(k).trim());
  $('login-error').textContent = '';
  try {
    await connect(appId, appKey, clientId);
  } catch (err) {
    $('login-error').textContent = `Could not sign in: ${err.message}`;
    return;
  }
  localStorage.setItem('tern-chat', JSON.stringify({ appId, appKey, clientId })); // app keys are public
  $('login').hidden = true;
  $('app').hidden = false;
  $('me').textContent = clientId;
  const mine = await client.getQuery().containsMembers([client.id]).addDescending('lm').limit(50).find();
  mine.forEach(listed);
});

$('logout').addEventListener('click', async () => {
  await client.close();
  location.reload();
});

// ------------------------------------------------------------------ conversation list

function title(conv) {
  if (conv.name) return conv.name;
  const others = (conv.members || []).filter((m) => m !== client.id);
  return others.join(', ') || conv.id;
}

function listed(conv) {
  convs.set(conv.id, conv);
  let li = document.querySelector(`#convs li[data-id="${CSS.escape(conv.id)}"]`);
  if (!li) {
    li = h('li', { 'data-id': conv.id, tabindex: 0, onclick: () => open(conv) });
    li.addEventListener('keydown', (e) => e.key === 'Enter' && open(conv));
    $('convs').prepend(li);
  }
  const unread = conv === current ? 0 : conv.unreadMessagesCount || 0;
  li.replaceChildren(h('span', { class: 'name' }, title(conv), conv.transient ? h('small', {}, ' chat room') : null));
  if (unread) li.append(h('span', { class: 'badge' }, String(unread)));
  li.classList.toggle('active', conv === current);
}

function dropConv(conv) {
  convs.delete(conv.id);
  document.querySelector(`#convs li[data-id="${CSS.escape(conv.id)}"]`)?.remove();
  if (conv === current) $('conv').hidden = true;
}

$('new-conv').addEventListener('submit', async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  const members = f.get('who').split(',').map((s) => s.trim()).filter(Boolean);
  if (!members.length) return;
  const name = f.get('name').trim();
  const conv = members.length === 1 && !name
    ? await client.createConversation({ members, unique: true }) // the same 1:1 every time
    : await client.createConversation({ members, name: name || undefined });
  e.target.reset();
  listed(conv);
  open(conv);
});

$('new-room').addEventListener('click', async () => {
  const name = $('new-conv').elements.name.value.trim() || `${client.id}'s room`;
  const room = await client.createChatRoom({ name });
  listed(room);
  open(room);
});

$('join-room').addEventListener('click', async () => {
  const id = $('new-conv').elements.roomId.value.trim();
  if (!id) return;
  const room = await client.getConversation(id);
  if (!room) return banner(`No conversation ${id}`, 'error');
  await room.join();
  listed(room);
  open(room);
});

// ------------------------------------------------------------------ one conversation

async function open(conv) {
  current = conv;
  editing = null;
  shown.clear();
  $('messages').replaceChildren();
  $('conv').hidden = false;
  $('app').classList.add('in-conv'); // narrow screens show one pane at a time
  $('conv-name').textContent = title(conv);
  $('conv-members').textContent = conv.transient ? 'chat room' : conv.members.join(', ');
  convs.forEach(listed);
  if (!watched.has(conv)) {
    watched.add(conv);
    conv.on('lastdeliveredatupdate', () => conv === current && marks());
    conv.on('lastreadatupdate', () => conv === current && marks());
  }
  history = conv.createMessagesIterator({ limit: 20 });
  await older();
  $('messages').scrollTop = $('messages').scrollHeight;
  if (!conv.transient) await conv.fetchReceiptTimestamps();
  marks();
  await conv.read();
}

// The next page of older messages, keeping what is on screen where it was.
async function older() {
  const list = $('messages');
  const { value, done } = await history.next();
  const before = list.scrollHeight;
  list.prepend(...value.map(render));
  list.scrollTop += list.scrollHeight - before;
  if (done) list.dataset.complete = 'yes';
}

$('messages').addEventListener('scroll', (e) => {
  if (e.target.scrollTop === 0 && !e.target.dataset.complete && history) older();
});

$('back').addEventListener('click', () => $('app').classList.remove('in-conv'));

function body(m) {
  if (m instanceof IM.RecalledMessage) return h('i', {}, 'message recalled');
  if (m instanceof ImageMessage) {
    const url = m.getFile().url();
    return h('span', {}, h('img', { src: url, alt: m.getFile().name() || 'image', loading: 'lazy' }),
      m.getText() ? h('span', {}, m.getText()) : null);
  }
  if (m instanceof FileMessage || m instanceof AudioMessage || m instanceof VideoMessage) {
    const f = m.getFile();
    return h('a', { href: f.url(), target: '_blank', rel: 'noopener' }, `📎 ${f.name()}`);
  }
  if (m instanceof LocationMessage) {
    const p = m.getLocation();
    return h('span', {}, `📍 ${p.latitude.toFixed(5)}, ${p.longitude.toFixed(5)} ${m.getText() || ''}`);
  }
  if (m instanceof IM.TextMessage) return h('span', {}, m.getText());
  if (m instanceof IM.TypedMessage) return h('code', {}, `[type ${m.type}] ${JSON.stringify(m.toJSON())}`);
  return h('span', {}, String(m.content)); // a plain (untyped) message
}

function render(m) {
  const mine = m.from === client.id;
  const li = h('li', { class: mine ? 'mine' : 'theirs', 'data-id': m.id },
    mine ? null : h('b', { class: 'from' }, m.from),
    h('div', { class: 'body' }, body(m)),
    h('small', { class: 'meta' }, time(m.timestamp), m.updatedAt && +m.updatedAt !== +m.timestamp ? ' · edited' : '', h('span', { class: 'mark' })));
  if (mine && !(m instanceof IM.RecalledMessage)) {
    if (m instanceof IM.TextMessage) {
      li.append(h('button', { type: 'button', class: 'link', onclick: () => startEdit(m) }, 'edit'));
    }
    li.append(h('button', { type: 'button', class: 'link', onclick: () => current.recall(m).then(replace) }, 'recall'));
  }
  li.message = m;
  shown.set(m.id, li);
  return li;
}

function append(m) {
  const list = $('messages');
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.append(render(m));
  if (atBottom || m.from === client.id) list.scrollTop = list.scrollHeight;
  marks();
}

function replace(m) {
  const old = shown.get(m.id);
  if (old) old.replaceWith(render(m));
}

// ✓ delivered, ✓✓ read: from the conversation's receipt timestamps (messages sent with receipt).
function marks() {
  if (!current || current.transient) return;
  const delivered = current.lastDeliveredAt, read = current.lastReadAt;
  for (const li of shown.values()) {
    const m = li.message;
    if (m.from !== client.id) continue;
    const mark = li.querySelector('.mark');
    mark.textContent = read && m.timestamp <= read ? ' ✓✓ read' : delivered && m.timestamp <= delivered ? ' ✓ delivered' : '';
  }
}

// ------------------------------------------------------------------ receiving

let typingTimer;
function onMessage(m, conv) {
  if (m instanceof TypingMessage) {
    if (conv !== current) return;
    $('typing').textContent = `${m.from} is typing…`;
    clearTimeout(typingTimer);
    typingTimer = setTimeout(() => { $('typing').textContent = ''; }, 4000);
    return;
  }
  if (!convs.has(conv.id)) listed(conv);
  if (conv === current) {
    $('typing').textContent = '';
    append(m);
    conv.read();
  } else {
    listed(conv);
  }
}

// ------------------------------------------------------------------ sending

let lastTyping = 0;
$('text').addEventListener('input', () => {
  if (!current || editing || Date.now() - lastTyping < 2000) return;
  lastTyping = Date.now();
  current.send(new TypingMessage(), { transient: true }).catch(() => {});
});

async function send(message) {
  const conv = current;
  const sent = await conv.send(message, { receipt: !conv.transient });
  if (conv === current) append(sent);
}

$('compose').addEventListener('submit', async (e) => {
  e.preventDefault();
  const text = $('text').value.trim();
  if (!text || !current) return;
  $('text').value = '';
  if (editing) {
    const updated = await current.update(editing, new IM.TextMessage(text));
    stopEdit();
    replace(updated);
    return;
  }
  lastTyping = 0;
  await send(new IM.TextMessage(text));
});

$('image').addEventListener('change', async (e) => {
  const f = e.target.files[0];
  e.target.value = '';
  if (!f || !current) return;
  const file = await new AV.File(f.name, f).save(); // POST /1.1/fileTokens, PUT the bytes, fileCallback
  await send(new ImageMessage(file));
});

function startEdit(m) {
  editing = m;
  $('text').value = m.getText();
  $('text').focus();
  $('send').textContent = 'Save';
  $('cancel-edit').hidden = false;
}
function stopEdit() {
  editing = null;
  $('send').textContent = 'Send';
  $('cancel-edit').hidden = true;
}
$('cancel-edit').addEventListener('click', () => {
  stopEdit();
  $('text').value = '';
});

// ------------------------------------------------------------------ start

const saved = JSON.parse(localStorage.getItem('tern-chat') || '{}');
const fromHash = Object.fromEntries(new URLSearchParams(location.hash.slice(1)));
for (const k of ['appId', 'appKey', 'clientId']) {
  const v = fromHash[k] || saved[k];
  if (v) $('login').elements[k].value = v;
}

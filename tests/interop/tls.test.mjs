// TLS (issue #4 §6): with a certificate and key configured, the one listener speaks wss://
// and https://; the router hands out wss:// URLs; the official SDK logs in, chats and
// calls the REST API over TLS. The certificate is self-signed, made here with openssl.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import { startServer } from '../lib/server.mjs';
import { CLUSTER_NODES, clusterSkip } from '../lib/cluster-mode.mjs';
import { freshSdk } from '../lib/sdk.mjs';
import { waitFor, uid } from '../lib/interop-util.mjs';

// The SDK's ws and superagent use Node's TLS; trust the self-signed certificate.
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';

let server;
let dir;
// single-node in cluster mode: TLS is a listener option of each node, which the cluster
// fixture (plain HTTP to its nodes' /metrics) does not speak; in a deployment the load
// balancer usually ends TLS (docs/haproxy.cfg)
const SKIP = clusterSkip('TLS listener options');

before(async () => {
  if (CLUSTER_NODES) return;
  dir = mkdtempSync(join(tmpdir(), 'tern-tls-'));
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', join(dir, 'key.pem'), '-out',
    join(dir, 'cert.pem'), '-subj', '/CN=127.0.0.1', '-days', '1'], { stdio: 'ignore' });
  server = await startServer({ env: { TERN_TLS_CERT: join(dir, 'cert.pem'), TERN_TLS_KEY: join(dir, 'key.pem') } });
});
after(async () => {
  if (CLUSTER_NODES) return;
  await server.stop();
  rmSync(dir, { recursive: true, force: true });
});

function get(path, headers = {}) {
  return new Promise((resolve, reject) => {
    https.get({ host: '127.0.0.1', port: server.port, path, headers, rejectUnauthorized: false }, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode, json: JSON.parse(body) }));
    }).on('error', reject);
  });
}

test('the router answers over https with wss:// URLs', SKIP, async () => {
  const r = await get(`/v1/route?appId=${server.appId}&secure=true`);
  assert.equal(r.status, 200);
  assert.equal(r.json.server, `wss://127.0.0.1:${server.port}/`);
});

test('the official SDK logs in, chats and uses REST over TLS (router mode)', SKIP, async () => {
  const mk = () => {
    const sdk = freshSdk(5);
    return { sdk, rt: new sdk.Realtime({ appId: server.appId, appKey: server.appKey, server: `https://127.0.0.1:${server.port}` }) };
  };
  const a = mk();
  const b = mk();
  const tom = await a.rt.createIMClient(uid('tom'));
  const jerry = await b.rt.createIMClient(uid('jerry'));
  const got = waitFor(jerry, 'message');
  const conv = await tom.createConversation({ members: [jerry.id], unique: false });
  await conv.send(new a.sdk.TextMessage('over tls'));
  const [msg] = await got;
  assert.equal(msg.text, 'over tls');
  // the member-info REST call (X-LC-IM-Session-Token over https)
  const infos = await conv.getAllMemberInfo({ noCache: true });
  assert.deepEqual(infos.map((i) => i.memberId).sort(), [jerry.id, tom.id].sort());
  await tom.close();
  await jerry.close();
});

test('a plain-text client on the TLS port is refused, and the server keeps serving', SKIP, async () => {
  const net = await import('node:net');
  const sock = net.connect(server.port, '127.0.0.1');
  await new Promise((r) => sock.once('connect', r));
  sock.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
  await new Promise((r) => sock.once('close', r));
  const r = await get('/health');
  assert.equal(r.status, 200);
});

// Issue #11 point 7, descriptor exhaustion. ternd raises its soft open-files limit to the
// hard one at start and says so; when accept() still runs out of descriptors (EMFILE) the
// listener rests instead of spinning — little CPU, a log line a second at most — while the
// clients already connected go on, and connections are taken again once some close.
// (Before: libuv's listener retried at once for ever, 100% CPU and ~40 MB/s of log.)
// docs/security.md "Limits and their defaults": max_conns, open files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { startServer } from '../lib/server.mjs';
import { closeAll, session, uid } from '../lib/proto-client.mjs';
import { httpRequest } from '../lib/proto-raw.mjs';
import { logCount, sleep, until } from '../lib/issue4-util.mjs';

/** CPU seconds (user + system) the process has used so far. */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from 3 on
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime (field 14, 15) in USER_HZ
}

function openFilesLimit(pid) {
  const m = /Max open files\s+(\d+)\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return { soft: Number(m[1]), hard: Number(m[2]) };
}

/**
 * A keep-alive HTTP client on a raw socket: get() sends GET /health and resolves true
 * when the answer comes within ms, false otherwise (the request stays sent: a server that
 * accepts the connection later still answers it, and answered() resolves then).
 */
function healthClient(port) {
  const sock = net.connect(port, '127.0.0.1');
  let buf = '';
  let waiters = [];
  sock.on('data', (d) => {
    buf += d;
    while (buf.includes('\r\n\r\n')) {
      const head = buf.slice(0, buf.indexOf('\r\n\r\n'));
      const len = Number(/content-length:\s*(\d+)/i.exec(head)?.[1] ?? 0);
      if (buf.length < head.length + 4 + len) break;
      buf = buf.slice(head.length + 4 + len);
      const w = waiters.shift();
      if (w) w(head.split('\r\n')[0]);
    }
  });
  sock.on('error', () => {});
  const closed = new Promise((r) => sock.once('close', r));
  return {
    sock,
    closed,
    get(ms) {
      const answer = new Promise((r) => waiters.push(r));
      sock.write('GET /health HTTP/1.1\r\nHost: t\r\n\r\n');
      this.answered = answer;
      return Promise.race([answer.then((status) => status), sleep(ms).then(() => false), closed.then(() => false)]);
    },
  };
}

test('open files: the soft limit is raised to the hard one at start, and the log says so', { timeout: 60000 }, async () => {
  const server = await startServer({ shell: 'ulimit -Sn 100 && ulimit -Hn 4096' });
  try {
    assert.deepEqual(openFilesLimit(server.child.pid), { soft: 4096, hard: 4096 });
    assert.match(server.stderr(), /open files: limit raised from 100 to 4096/);
  } finally {
    await server.stop();
  }
});

test('EMFILE (ulimit -n 64): the listener rests — low CPU, at most a log line a second — open clients go on, and accepting resumes when descriptors free up', { timeout: 120000 }, async () => {
  // max_conns far above the descriptors, so that accept() itself runs out
  const server = await startServer({
    shell: 'ulimit -n 64',
    env: { TERN_MAX_CONNS: '100000', TERN_MAX_CONNS_PER_IP: '0', TERN_WORKERS: '2' },
  });
  const pid = server.child.pid;
  const held = [];
  try {
    const A = await session(server, uid('before'));
    // Bursts of connections arriving at both workers at once while descriptors run out and
    // free up again: libuv's listener (before) then lost its spare descriptor to the other
    // thread and spun on EMFILE. Ten of each burst stay open.
    for (let round = 0; round < 4; round++) {
      const burst = Array.from({ length: 150 }, () => {
        const s = net.connect(server.port, '127.0.0.1');
        s.on('error', () => {});
        return s;
      });
      await sleep(300);
      for (const s of burst.slice(10)) s.destroy();
      held.push(...burst.slice(0, 10).map((sock) => ({ sock })));
    }
    // connections until one is no longer answered: the server is out of descriptors
    let waiting = null;
    for (let k = 0; k < 100 && !waiting; k++) {
      const h = healthClient(server.port);
      held.push(h);
      const status = await h.get(1500);
      if (!status) waiting = h;
      else assert.match(status, /^HTTP\/1\.1 200 /);
    }
    assert.ok(waiting, `still accepting after ${held.length} connections under ulimit -n 64`);
    const linesBefore = logCount(server, /accept: /);
    assert.ok(linesBefore >= 1, `no accept failure logged:\n${server.stderr().slice(-2000)}`);
    assert.match(server.stderr(), /accept: Too many open files; not accepting for \d+ ms/);

    // out of descriptors for 2 s: a spinning listener would burn a core and flood the log
    const cpu0 = cpuSeconds(pid);
    const t0 = Date.now();
    await sleep(2000);
    const cpu = cpuSeconds(pid) - cpu0;
    const secs = (Date.now() - t0) / 1000;
    assert.ok(cpu < 0.3 * secs, `ternd used ${cpu.toFixed(2)} s of CPU in ${secs.toFixed(1)} s while out of descriptors`);
    const lines = logCount(server, /accept: /) - linesBefore;
    assert.ok(lines <= Math.ceil(secs) + 1, `${lines} accept lines in ${secs.toFixed(1)} s`);
    assert.match(server.stderr(), /more like this held back/, 'the line counts what it held back');

    // the client connected before goes on as usual
    await A.echo();
    const r = await A.request({ cmd: 'session', op: 'query', sessionMessage: { sessionPeerIds: [A.peer] } });
    assert.deepEqual(r.sessionMessage.onlineSessionPeerIds, [A.peer]);

    // descriptors free up: the waiting connection is taken and answered, and new ones too
    for (const h of held) if (h !== waiting) h.sock.destroy();
    const status = await Promise.race([waiting.answered, sleep(5000).then(() => false)]);
    assert.match(String(status), /^HTTP\/1\.1 200 /, 'the connection that waited in the queue is answered');
    const fresh = await until(() => httpRequest(server, { path: '/health' }).catch(() => null), 5000, 'a new connection');
    assert.equal(fresh.status, 200);
    const metrics = await httpRequest(server, { path: '/metrics', headers: { Authorization: `Bearer ${server.masterKey}` } });
    const errors = Number(/^tern_accept_errors_total (\d+)$/m.exec(metrics.body)?.[1]);
    assert.ok(errors >= 1, metrics.body);
    await A.echo();
  } finally {
    for (const h of held) h.sock.destroy();
    await closeAll(server);
    await server.stop();
  }
});

// Crash safety (issue #2 acceptance): messages stream in from the official SDK, ternd is
// killed with SIGKILL in the middle, restarted on the same data directory, and every
// message whose send() resolved (the server's ack) must be in history exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startServer } from '../lib/server.mjs';
import { realtime } from '../lib/sdk.mjs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function allHistory(conv) {
  const ids = [];
  const it = conv.createMessagesIterator({ limit: 100 });
  for (;;) {
    const { value, done } = await it.next();
    ids.unshift(...value.map((m) => m.id));
    if (done) break;
  }
  return ids;
}

test('SIGKILL mid-stream loses no acked message and duplicates none', { timeout: 120000 }, async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'tern-crash-'));
  try {
    const first = await startServer({ dataDir });
    const { sdk, realtime: rt } = realtime(first);
    const tom = await rt.createIMClient('Tom');
    const conv = await tom.createConversation({ members: ['Jerry'], name: 'crash' });
    const acked = new Set();
    let sent = 0;
    let stop = false;
    // 8 senders in parallel keep many messages in flight when the kill lands.
    const senders = Array.from({ length: 8 }, async (_, k) => {
      while (!stop) {
        const n = sent++;
        try {
          const m = await conv.send(new sdk.TextMessage(`m${k}-${n}`));
          acked.add(m.id);
        } catch {
          return; // the connection died under us: this send was never acked
        }
      }
    });
    while (acked.size < 300) await sleep(10);
    await first.kill();
    stop = true;
    await Promise.race([Promise.allSettled(senders), sleep(5000)]);
    rt._close?.();
    assert.ok(acked.size >= 300, `acked ${acked.size}`);

    const second = await startServer({ dataDir });
    try {
      const { realtime: rt2 } = realtime(second);
      const jerry = await rt2.createIMClient('Jerry');
      const c2 = await jerry.getConversation(conv.id);
      const stored = await allHistory(c2);
      const storedSet = new Set(stored);
      assert.equal(storedSet.size, stored.length, 'history holds a message twice');
      const missing = [...acked].filter((id) => !storedSet.has(id));
      assert.deepEqual(missing, [], `${missing.length} acked messages lost`);
      await jerry.close();
    } finally {
      await second.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});

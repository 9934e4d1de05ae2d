// Official JS SDK 5.0.0-rc.8 against ternd: message history (issue #2 point 6), once per
// transport. 250 messages (every 10th of a custom type), then:
// * backwards with createMessagesIterator({limit: 20}) and with hand-driven
//   queryMessages({startTime, startMessageId, limit});
// * forwards with direction OLD_TO_NEW from the first message;
// * closed/open interval bounds (startClosed / endClosed, endTime / endMessageId);
// * filtering by _lctype (`type`).
// Each walk must return all 250 ids exactly once, in send order.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startInteropServer } from '../lib/cluster-mode.mjs';
import { MODES, Clients, uid, CUSTOM_TYPE } from '../lib/interop-util.mjs';

const TOTAL = 250;
const PAGE = 20;

for (const mode of MODES) {
  describe(`history [${mode.name}]`, () => {
    let server;
    let env;
    let tom;
    let jerry;
    let conv;
    let sent; // the messages as send() resolved them, in send order
    let ids;

    before(async () => {
      server = await startInteropServer();
      env = new Clients(server, { noBinary: mode.noBinary });
      tom = await env.login(uid('tom'));
      jerry = await env.login(uid('jerry'));
      conv = await tom.createConversation({ members: [jerry.id], name: 'history' });
      sent = [];
      for (let i = 0; i < TOTAL; i++) {
        const m =
          i % 10 === 9
            ? new tom.classes.PokeMessage({ pokes: i, target: { n: i } })
            : new tom.sdk.TextMessage(`m${i}`);
        sent.push(await conv.send(m));
      }
      ids = sent.map((m) => m.id);
      assert.equal(new Set(ids).size, TOTAL, 'server gave every message its own id');
    });
    after(async () => {
      if (env) await env.closeAll();
      if (server) await server.stop();
    });

    it('send order is timestamp order (ties allowed, never backwards)', () => {
      for (let i = 1; i < TOTAL; i++) {
        assert.ok(sent[i].timestamp.getTime() >= sent[i - 1].timestamp.getTime(), `message ${i} went back in time`);
      }
    });

    it('createMessagesIterator({limit: 20}) walks back through all 250 exactly once', async () => {
      const jconv = await jerry.getConversation(conv.id);
      const it = jconv.createMessagesIterator({ limit: PAGE });
      const pages = [];
      for (;;) {
        const { value, done } = await it.next();
        pages.push(value.map((m) => m.id));
        if (done) break;
        assert.ok(pages.length <= 20, 'iterator does not end');
      }
      assert.deepEqual(pages.map((p) => p.length), [...Array(12).fill(PAGE), 10]);
      const walked = pages.reverse().flat();
      assert.deepEqual(walked, ids);
    });

    it('queryMessages({startTime, startMessageId, limit}) pages backwards without gaps or duplicates', async () => {
      const collected = [];
      let page = await conv.queryMessages({ limit: PAGE });
      assert.deepEqual(page.map((m) => m.id), ids.slice(-PAGE), 'first page = newest 20, oldest first');
      while (page.length) {
        collected.unshift(...page);
        const first = page[0];
        page = await conv.queryMessages({ startTime: first.timestamp, startMessageId: first.id, limit: PAGE });
      }
      assert.deepEqual(collected.map((m) => m.id), ids);
      // the content came back with the right classes and fields
      collected.forEach((m, i) => {
        if (i % 10 === 9) {
          assert.ok(m instanceof tom.classes.PokeMessage, `history[${i}] is a PokeMessage`);
          assert.equal(m.pokes, i);
          assert.deepEqual(m.target, { n: i });
        } else {
          assert.ok(m instanceof tom.sdk.TextMessage, `history[${i}] is a TextMessage`);
          assert.equal(m.text, `m${i}`);
        }
        assert.equal(m.from, tom.id);
        assert.equal(m.timestamp.getTime(), sent[i].timestamp.getTime());
      });
    });

    it('direction OLD_TO_NEW from the first message pages forwards through all 250', async () => {
      const { MessageQueryDirection } = tom.sdk;
      const collected = [];
      let page = await conv.queryMessages({
        startTime: sent[0].timestamp,
        startMessageId: sent[0].id,
        startClosed: true,
        direction: MessageQueryDirection.OLD_TO_NEW,
        limit: PAGE,
      });
      assert.deepEqual(page.map((m) => m.id), ids.slice(0, PAGE), 'first page = oldest 20');
      while (page.length) {
        collected.push(...page);
        const last = page[page.length - 1];
        page = await conv.queryMessages({
          startTime: last.timestamp,
          startMessageId: last.id,
          direction: MessageQueryDirection.OLD_TO_NEW,
          limit: PAGE,
        });
      }
      assert.deepEqual(collected.map((m) => m.id), ids);
    });

    it('interval bounds: open and closed ends, both directions (protocol.md §3.11 table)', async () => {
      const { MessageQueryDirection } = tom.sdk;
      const a = sent[100];
      const b = sent[110];
      const q = (opts) => conv.queryMessages({ limit: 100, ...opts }).then((ms) => ms.map((m) => m.id));
      // newer → older from b down to a
      const back = { startTime: b.timestamp, startMessageId: b.id, endTime: a.timestamp, endMessageId: a.id };
      assert.deepEqual(await q({ ...back, direction: MessageQueryDirection.NEW_TO_OLD }), ids.slice(101, 110));
      assert.deepEqual(await q({ ...back, direction: MessageQueryDirection.NEW_TO_OLD, startClosed: true }), ids.slice(101, 111));
      assert.deepEqual(await q({ ...back, direction: MessageQueryDirection.NEW_TO_OLD, endClosed: true }), ids.slice(100, 110));
      // older → newer from a up to b (the SDK picks OLD_TO_NEW itself when endTime > startTime)
      const fwd = { startTime: a.timestamp, startMessageId: a.id, endTime: b.timestamp, endMessageId: b.id };
      if (b.timestamp.getTime() > a.timestamp.getTime()) {
        assert.deepEqual(await q(fwd), ids.slice(101, 110));
      }
      assert.deepEqual(await q({ ...fwd, direction: MessageQueryDirection.OLD_TO_NEW }), ids.slice(101, 110));
      assert.deepEqual(await q({ ...fwd, direction: MessageQueryDirection.OLD_TO_NEW, startClosed: true }), ids.slice(100, 110));
      assert.deepEqual(
        await q({ ...fwd, direction: MessageQueryDirection.OLD_TO_NEW, startClosed: true, endClosed: true }),
        ids.slice(100, 111),
      );
      // a limit smaller than the interval returns the part nearest the start, still oldest first
      assert.deepEqual(await q({ ...back, direction: MessageQueryDirection.NEW_TO_OLD, limit: 3 }), ids.slice(107, 110));
      assert.deepEqual(await q({ ...fwd, direction: MessageQueryDirection.OLD_TO_NEW, limit: 3 }), ids.slice(101, 104));
      // limit 0 returns nothing
      assert.deepEqual(await q({ limit: 0 }), []);
    });

    it('queryMessages({type}) returns only messages of that _lctype', async () => {
      const pokes = ids.filter((_, i) => i % 10 === 9);
      const texts = ids.filter((_, i) => i % 10 !== 9);
      assert.deepEqual((await conv.queryMessages({ type: CUSTOM_TYPE, limit: 100 })).map((m) => m.id), pokes);
      assert.deepEqual((await conv.queryMessages({ type: -1, limit: 100 })).map((m) => m.id), texts.slice(-100));
      // paging within a type
      const older = await conv.queryMessages({
        type: CUSTOM_TYPE,
        limit: 10,
        startTime: sent[149].timestamp,
        startMessageId: sent[149].id,
      });
      assert.deepEqual(older.map((m) => m.id), pokes.slice(4, 14));
      assert.deepEqual((await conv.queryMessages({ type: 4242, limit: 100 })).map((m) => m.id), []);
    });

    it('history is refused to a non-member', async () => {
      const spike = await env.login(uid('spike'));
      const sconv = await spike.getConversation(conv.id);
      assert.ok(sconv, 'the conversation is visible to a query by id');
      await assert.rejects(sconv.queryMessages({ limit: 5 }), (err) => {
        assert.equal(err.code, 4312);
        return true;
      });
    });
  });
}

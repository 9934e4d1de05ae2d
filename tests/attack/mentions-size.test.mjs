// Mentioned ids count against max_message (protocol.md §9.1: "message size ≤ 5 KB including
// pushData etc."). They are stored with the message and sent to every member: a 64 KiB frame
// of mentionPids passed the limit with a one-byte message, and a will message kept them too.
// A send or an edit whose content, pushData and mentioned ids pass max_message gets 4109
// FRAME_TOO_LONG, nothing stored or delivered; 20 mentions of an ordinary message pass.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertError, session, startConv, uid, withServer } from '../lib/proto-client.mjs';

const TEXT = (t) => JSON.stringify({ _lctype: -1, _lctext: t });
const ids = (n) => Array.from({ length: n }, (_, k) => `mention-${k}`); // 9-12 bytes each

test('§9.1 4109: mentionPids count in max_message — send, will and edit', () =>
  withServer({ TERN_MAX_CLIENT_RATE: '0', TERN_MAX_CONN_RATE: '0' }, async (srv) => {
    const [a, b] = [uid('a'), uid('b')];
    const A = await session(srv, a);
    const B = await session(srv, b);
    const { cid } = await startConv(A, [b]);
    const many = ids(600); // ~6.5 KB of ids with a 2-byte text
    assertError(await A.request({ cmd: 'direct', i: 11, directMessage: { cid, msg: TEXT('hi'), mentionPids: many } }), 11, 4109, 'FRAME_TOO_LONG');
    assertError(await A.request({ cmd: 'direct', i: 12, directMessage: { cid, msg: TEXT('hi'), will: true, mentionPids: many } }), 12, 4109, 'FRAME_TOO_LONG');
    // the same ids with the content: content + ids over, each alone under
    const text = TEXT('x'.repeat(3200)); // ~3.2 KB + ~2.1 KB of ids
    assertError(await A.request({ cmd: 'direct', i: 13, directMessage: { cid, msg: text, mentionPids: ids(200) } }), 13, 4109, 'FRAME_TOO_LONG');
    // an ordinary message with 20 mentions is delivered, and b sees them
    const ok = await A.request({ cmd: 'direct', directMessage: { cid, msg: TEXT('hello'), mentionPids: [b, ...ids(19)] } });
    assert.equal(ok.cmd, 'ack', JSON.stringify(ok));
    const got = await B.next((c) => c.cmd === 'direct');
    assert.equal(got.directMessage.mentionPids.length, 20);
    assert.equal(B.pushes.filter((c) => c.cmd === 'direct').length, 0, 'only that one reached b');
    // an edit adding many mentions: refused the same way, the message unchanged
    const patch = (i, mentionPids) => ({ cmd: 'patch', op: 'modify', i, patchMessage: { patches: [{ cid, mid: ok.ackMessage.uid, timestamp: ok.ackMessage.t, data: TEXT('edited'), mentionPids }] } });
    assertError(await A.request(patch(21, many)), 21, 4109, 'FRAME_TOO_LONG');
    const fine = await A.request(patch(22, [b]));
    assert.equal(fine.cmd, 'patch', JSON.stringify(fine));
  }));

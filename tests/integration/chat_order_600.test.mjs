// 600 messages from three senders on two gateways reach every member in
// contiguous seq order, each exactly once, and the acks agree with the seqs
// delivered.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, connect, teardown, uniqueRoom, seqProblem, range, FAST } from './lib/harness.mjs';

const PER_SENDER = 200;
const WINDOW = 20;

let cl;
before(async () => {
  cl = await startCluster({ gateways: 2, workers: 0, gatewayArgs: FAST });
}, { timeout: 20000 });
after(teardown);

test('600 messages from 3 senders on 2 gateways: contiguous seq at every member', { timeout: 30000 }, async () => {
  const [gw1, gw2] = cl.gateways;
  const room = uniqueRoom('order');
  const layout = [['s1', gw1], ['s2', gw2], ['s3', gw1], ['l1', gw1], ['l2', gw2]];
  const members = {};
  for (const [name, gw] of layout) {
    members[name] = await connect(gw.url);
    await members[name].join(room, name);
  }
  const senders = ['s1', 's2', 's3'];
  const texts = Object.fromEntries(senders.map((s) => [s, range(0, PER_SENDER - 1).map((i) => `${s}#${i}`)]));

  const started = Date.now();
  const acks = await Promise.all(senders.map((s) => members[s].sayMany(room, texts[s], { window: WINDOW })));
  const ackSeq = new Map();
  senders.forEach((s, k) => texts[s].forEach((t, i) => ackSeq.set(t, acks[k][i].seq)));
  assert.equal(new Set(ackSeq.values()).size, 3 * PER_SENDER, 'every ack has its own seq');

  for (const [name] of layout) {
    const got = await members[name].messages(room, 3 * PER_SENDER, 20000);
    const seqs = got.map((m) => m.seq);
    assert.equal(seqProblem(seqs, 1), null, `${name}: seqs contiguous from 1`);
    assert.equal(seqs.at(-1), 3 * PER_SENDER);
    const seen = new Set();
    for (const m of got) {
      assert.ok(!seen.has(m.message), `${name}: ${m.message} delivered twice`);
      seen.add(m.message);
      assert.equal(m.seq, ackSeq.get(m.message), `${name}: ${m.message} has the seq its ack announced`);
      assert.equal(m.nickname, m.message.split('#')[0]);
    }
    for (const s of senders) {
      const order = got.filter((m) => m.nickname === s).map((m) => Number(m.message.split('#')[1]));
      assert.deepEqual(order, range(0, PER_SENDER - 1), `${name}: ${s}'s messages in the order sent`);
    }
  }
  assert.ok(Date.now() - started < 25000, 'the whole exchange took under 25 s');
});

// Cluster-wide history and recovery with the official centrifuge-js SDK: gyre nodes clustered
// over a real nats-server with JetStream keep the history of `chat:` channels (the namespace with
// history in harness.mjs baseConfig) in JetStream streams shared by every node. Offsets are
// contiguous per channel across nodes even with concurrent publishers on different nodes, every
// node reports one epoch and the same history, a client recovers on another node exactly what it
// missed, and a recoverable subscriber misses nothing across a NATS restart. Channels without
// history still relay over core NATS (API publish answers `{}` there).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  collect, connected, eventually, newSub, nodeNames, randomId, sharedKeys, startClusterNode,
  startNats, subscribed, waitFor, waitUntil,
} from './harness.mjs';

/** Bound for cluster-wide conditions that ride on heartbeats (every 3 s) or NATS reconnects. */
const CLUSTER_WAIT_MS = 12000;

/** Stops nodes (each SIGTERM, then SIGKILL) and then NATS; never throws, so cleanup always runs. */
async function stopAll(nodes, nats) {
  await Promise.allSettled(nodes.filter(Boolean).map((n) => n.stop()));
  await nats?.stop();
}

/** 1..n */
function range(n) {
  return Array.from({ length: n }, (_, i) => i + 1);
}

/** The `[offset, data]` pairs of publications (SDK contexts or API history entries). */
function pairs(publications) {
  return publications.map((p) => [p.offset, p.data]);
}

describe('centrifuge-js on three gyre nodes sharing history through JetStream', () => {
  let nats;
  let a;
  let b;
  let c;
  before(async () => {
    nats = await startNats({ nodes: 3 });
    const keys = sharedKeys();
    [a, b, c] = await Promise.all(['a', 'b', 'c'].map((name) => startClusterNode(nats.url, name, keys)));
  });
  after(async () => { await stopAll([a, b, c], nats); });

  it('gives concurrent publishers on two nodes contiguous offsets under one epoch, delivered once and in order on both nodes, with the same history everywhere', async () => {
    const channel = 'chat:race-' + randomId();
    const alice = a.client({ token: a.token('alice') });
    const bob = b.client({ token: b.token('bob') });
    await connected(alice);
    await connected(bob);
    const aliceSub = newSub(alice, channel);
    const bobSub = newSub(bob, channel);
    const onA = collect(aliceSub);
    const onB = collect(bobSub);
    const subA = await subscribed(aliceSub);
    const subB = await subscribed(bobSub);
    const epoch = subA.streamPosition.epoch;
    assert.ok(epoch, 'an empty chat channel already has an epoch');
    assert.deepEqual(subB.streamPosition, { offset: 0, epoch }, 'node b reports the same empty stream as node a');

    // 25 publishes through each node, all in flight at once.
    const perNode = 25;
    const total = 2 * perNode;
    const sent = [];
    for (let i = 0; i < perNode; i += 1) {
      for (const [name, node] of [['a', a], ['b', b]]) sent.push({ data: { via: name, i }, call: node.publish(channel, { via: name, i }) });
    }
    const results = await Promise.all(sent.map((s) => s.call));
    assert.deepEqual(results.map((r) => r.offset).sort((x, y) => x - y), range(total), 'distinct contiguous offsets 1..50');
    assert.deepEqual([...new Set(results.map((r) => r.epoch))], [epoch], 'one epoch in every answer, the subscribers\' one');

    await waitUntil(() => onA.length >= total && onB.length >= total, 10000, 'all 50 publications on both subscribers');
    // What the API answered: the data each offset must carry.
    const want = results.map((r, k) => [r.offset, sent[k].data]).sort(([x], [y]) => x - y);
    assert.deepEqual(pairs(onA), want, 'node a delivers offsets 1..50 once, in order, each with its publication');
    assert.deepEqual(pairs(onB), want, 'node b delivers offsets 1..50 once, in order, each with its publication');

    // History is the same through every node (including c, which has no subscriber), over the
    // server API and over the SDK.
    const histories = await Promise.all([a, b, c].map((node) => node.api('history', { channel, limit: -1 })));
    for (const [k, h] of histories.entries()) {
      const name = ['a', 'b', 'c'][k];
      assert.equal(h.epoch, epoch, `history epoch through node ${name}`);
      assert.equal(h.offset, total, `history offset through node ${name}`);
      assert.deepEqual(pairs(h.publications), want, `history publications through node ${name}`);
    }
    const [sdkA, sdkB] = await Promise.all([aliceSub.history({ limit: 100 }), bobSub.history({ limit: 100 })]);
    assert.deepEqual(pairs(sdkA.publications), want, 'SDK history through node a');
    assert.deepEqual({ ...sdkB, publications: pairs(sdkB.publications) }, { ...sdkA, publications: want }, 'SDK history through node b equals node a');
    assert.deepEqual({ offset: sdkA.offset, epoch: sdkA.epoch }, { offset: total, epoch });

    // A later publication continues the sequence, and nothing else arrived in between.
    assert.deepEqual(await b.publish(channel, { last: true }), { offset: total + 1, epoch });
    await waitUntil(() => onA.length > total && onB.length > total, 5000, 'the publication after the race');
    for (const got of [onA, onB]) assert.deepEqual(pairs(got.slice(total)), [[total + 1, { last: true }]]);
    alice.disconnect();
    bob.disconnect();
  });

  it('recovers on node b exactly the publications a client missed after leaving node a', async () => {
    const channel = 'chat:move-' + randomId();
    const user = 'mover-' + randomId();
    const onNodeA = a.client({ token: a.token(user) });
    await connected(onNodeA);
    const subA = newSub(onNodeA, channel);
    const gotA = collect(subA);
    const first = await subscribed(subA);
    assert.equal(first.recoverable, true, 'chat has force_recovery');
    const { epoch } = first.streamPosition;
    for (const n of [1, 2]) assert.deepEqual(await a.publish(channel, { n }), { offset: n, epoch });
    await waitUntil(() => gotA.length >= 2, 5000, 'two live publications on node a');
    assert.deepEqual(pairs(gotA), [[1, { n: 1 }], [2, { n: 2 }]]);
    const position = { offset: gotA.at(-1).offset, epoch };

    const gone = waitFor(onNodeA, 'disconnected');
    onNodeA.disconnect();
    await gone;
    // Missed while away, published through node b (and one through c).
    for (const n of [3, 4]) assert.deepEqual(await b.publish(channel, { n }), { offset: n, epoch });
    assert.deepEqual(await c.publish(channel, { n: 5 }), { offset: 5, epoch });

    // Back through node b: a new SDK client, bootstrapping recovery from the stored position.
    const onNodeB = b.client({ token: b.token(user) });
    await connected(onNodeB);
    const subB = newSub(onNodeB, channel, { since: position });
    const gotB = collect(subB);
    const ctx = await subscribed(subB);
    assert.equal(ctx.wasRecovering, true, 'the SDK asked to recover from the stored position');
    assert.equal(ctx.recovered, true, 'node b recovers from the history node a shares');
    assert.equal(ctx.hasRecoveredPublications, true);
    assert.deepEqual(ctx.streamPosition, { offset: position.offset + 3, epoch: position.epoch },
      "as in Centrifugo, a recovered subscribe answers the stream's top (after the three missed)");
    await waitUntil(() => gotB.length >= 3, 5000, 'the recovered publications');
    assert.deepEqual(pairs(gotB), [[3, { n: 3 }], [4, { n: 4 }], [5, { n: 5 }]], 'exactly the missed publications, in order');

    // Live again: a publication through node a arrives once, right after the recovered ones.
    assert.deepEqual(await a.publish(channel, { n: 6 }), { offset: 6, epoch });
    await waitUntil(() => gotB.some((p) => p.offset === 6), 5000, 'the live publication after recovery');
    assert.deepEqual(gotB.map((p) => p.offset), [3, 4, 5, 6]);

    // Never a false positive: a position from another epoch is not recovered, on node c either.
    const stranger = c.client({ token: c.token(user) });
    await connected(stranger);
    const wrong = newSub(stranger, channel, { since: { offset: 2, epoch: epoch === 'xxxx' ? 'yyyy' : 'xxxx' } });
    const gotWrong = collect(wrong);
    const wrongCtx = await subscribed(wrong);
    assert.equal(wrongCtx.wasRecovering, true);
    assert.equal(wrongCtx.recovered, false, 'a position from another epoch is not recovered');
    assert.equal(wrongCtx.hasRecoveredPublications, false);
    assert.deepEqual(wrongCtx.streamPosition, { offset: 6, epoch }, 'positioned at the top of the shared stream');
    assert.deepEqual(gotWrong, []);
    onNodeB.disconnect();
    stranger.disconnect();
  });

  it('lists three nodes in info and delivers a publication made through node c to subscribers on nodes a and b', async () => {
    for (const node of [a, b, c]) {
      await eventually(async () => (await nodeNames(node)).join() === nats.clusterNames('a', 'b', 'c').join(), CLUSTER_WAIT_MS,
        `node ${node.config.node.name} to list nodes a, b and c`);
    }
    const id = randomId();
    const withHistory = `chat:three-${id}`;
    const without = `three-${id}`;
    const alice = a.client({ token: a.token('alice') });
    const bob = b.client({ token: b.token('bob') });
    await connected(alice);
    await connected(bob);
    const subs = [];
    for (const client of [alice, bob]) {
      for (const channel of [withHistory, without]) {
        const sub = newSub(client, channel);
        const got = collect(sub);
        const ctx = await subscribed(sub);
        subs.push({ channel, got, ctx });
      }
    }
    const { epoch } = subs.find((s) => s.channel === withHistory).ctx.streamPosition;
    for (const s of subs.filter((x) => x.channel === withHistory)) assert.equal(s.ctx.streamPosition.epoch, epoch);

    assert.deepEqual(await c.publish(withHistory, { from: 'c' }), { offset: 1, epoch }, 'a history channel answers its position');
    assert.deepEqual(await c.publish(without, { from: 'c' }), {}, 'a channel without history answers {}');
    await waitUntil(() => subs.every((s) => s.got.length >= 1), 5000, "node c's publications on the subscribers of nodes a and b");
    // A second round marks the end: a duplicate of the first would have arrived before it.
    assert.deepEqual(await c.publish(withHistory, { from: 'c', n: 2 }), { offset: 2, epoch });
    assert.deepEqual(await c.publish(without, { from: 'c', n: 2 }), {});
    await waitUntil(() => subs.every((s) => s.got.length >= 2), 5000, 'the second round');
    for (const s of subs) {
      assert.deepEqual(s.got.map((p) => p.data), [{ from: 'c' }, { from: 'c', n: 2 }], `${s.channel}: each publication once, in order`);
      if (s.channel === withHistory) assert.deepEqual(s.got.map((p) => p.offset), [1, 2]);
      else assert.ok(s.got.every((p) => !p.offset), 'no offsets on a channel without history');
    }
    alice.disconnect();
    bob.disconnect();
  });
});

describe('centrifuge-js recoverable subscriber across a NATS restart', () => {
  let nats;
  let a;
  let b;
  before(async () => {
    nats = await startNats({ nodes: 2 });
    const keys = sharedKeys();
    [a, b] = await Promise.all(['a', 'b'].map((name) => startClusterNode(nats.url, name, keys)));
  });
  after(async () => { await stopAll([a, b], nats); });

  it('delivers every successfully published offset exactly once, in order, with no gaps, while publishes through two nodes fail and are retried during the outage', async (t) => {
    const channel = 'chat:restart-' + randomId();
    const client = a.client({ token: a.token('rita') });
    await connected(client);
    const clientStates = collect(client, 'connecting');
    const disconnects = collect(client, 'disconnected');
    const sub = newSub(client, channel);
    const got = collect(sub);
    const ctx = await subscribed(sub);
    assert.equal(ctx.recoverable, true, 'chat has force_recovery');
    const { epoch } = ctx.streamPosition;
    const resubscribing = collect(sub, 'subscribing');
    const unsubscribed = collect(sub, 'unsubscribed');

    // A publisher streaming messages n = 1, 2, ... alternately through nodes a and b. Each
    // message is retried until it succeeds, with an idempotency key, so a retry of an attempt
    // that was stored but not acknowledged is not stored twice.
    const published = []; // {n, offset, epoch}, in the order the publishes succeeded
    const failures = []; // {n, via, status, text}
    let stopping = false;
    const pause = (ms) => new Promise((r) => { setTimeout(r, ms); });
    const publisher = (async () => {
      for (let n = 1; !stopping; n += 1) {
        for (let attempt = 0; ; attempt += 1) {
          const node = (n + attempt) % 2 ? a : b;
          let res;
          try {
            res = await node.apiRaw('publish', { channel, data: { n }, idempotency_key: `msg-${n}` });
          } catch (e) {
            res = { status: 0, text: String(e) };
          }
          const body = res.status === 200 ? JSON.parse(res.text) : null;
          if (body?.result) {
            published.push({ n, ...body.result });
            break;
          }
          failures.push({ n, via: node.config.node.name, status: res.status, text: res.text });
          if (stopping) return; // give up the message that was never stored
          await pause(50); // pacing of the retries, not a readiness check
        }
        await pause(20); // pacing of the stream
      }
    })();
    try {
      await waitUntil(() => published.length >= 5 && got.length >= 5, 5000, 'the stream flowing before the outage');

      await nats.kill();
      // Down long enough for the retried message to fail through both nodes.
      const failedFrom = failures.length;
      await waitUntil(() => new Set(failures.slice(failedFrom).map((f) => f.via)).size === 2, 10000,
        'publishes through both nodes to fail while NATS is down');
      const beforeRestart = published.length;
      nats = await nats.restart();
      await waitUntil(() => published.length >= beforeRestart + 5, 20000, 'five publishes to succeed after NATS restarted');
    } finally {
      stopping = true;
      await publisher;
    }
    t.diagnostic(`${published.length} publications stored, ${failures.length} failed attempts (messages ${[...new Set(failures.map((f) => f.n))].join(', ')})`);

    assert.ok(failures.length >= 1);
    for (const f of failures) {
      assert.equal(f.status, 200, `a failed publish is an in-body error, not HTTP ${f.status}: ${f.text}`);
      assert.equal(JSON.parse(f.text).error?.code, 100, `a failed publish is error 100: ${f.text}`);
    }
    const total = published.length;
    assert.deepEqual(published.map((p) => p.offset), range(total), 'the successful publishes got offsets 1..N in order, no gaps');
    assert.deepEqual([...new Set(published.map((p) => p.epoch))], [epoch], 'JetStream kept the epoch across the restart');
    assert.deepEqual(published.map((p) => p.n), range(total), 'each message stored once');

    await waitUntil(() => got.length >= total, 10000, 'every stored publication on the subscriber');
    // One more live publication: once it is there, a late duplicate would have arrived too.
    assert.deepEqual(await a.publish(channel, { n: 'end' }), { offset: total + 1, epoch });
    await waitUntil(() => got.some((p) => p.data.n === 'end'), 5000, 'the final publication');
    assert.deepEqual(pairs(got), [...range(total).map((n) => [n, { n }]), [total + 1, { n: 'end' }]],
      'every stored offset exactly once, in order, with no gaps');
    assert.deepEqual(clientStates, [], 'the client stayed connected');
    assert.deepEqual(disconnects, []);
    assert.deepEqual([...resubscribing, ...unsubscribed], [], 'the subscription stayed subscribed');
    client.disconnect();
  });
});

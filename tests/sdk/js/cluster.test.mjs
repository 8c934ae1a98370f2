// Cluster mode with the official centrifuge-js SDK: gyre nodes relaying through a real
// nats-server (`broker.type: nats`). SDK clients on different nodes exchange publications,
// see each other's join/leave and presence, API user actions reach a user on another node,
// `info` lists the live nodes, and a NATS outage fails publishes loudly without dropping clients.
// Channels with history (`chat:`) keep it in JetStream, shared by every node: API publishes there
// answer `{offset, epoch}` with offsets contiguous across nodes, while channels without history
// relay over core NATS and answer `{}`. Cross-node history and recovery are covered in depth by
// cluster_history.test.mjs.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  collect, connected, eventually, newSub, nodeNames, observeUntil, randomId, sharedKeys,
  startClusterNode, startNats, subscribed, waitFor, waitUntil,
} from './harness.mjs';

/** Bound for cluster-wide conditions that ride on heartbeats (every 3 s) or NATS reconnects. */
const CLUSTER_WAIT_MS = 12000;

/** Stops nodes (each SIGTERM, then SIGKILL) and then NATS; never throws, so cleanup always runs. */
async function stopAll(nodes, nats) {
  await Promise.allSettled(nodes.filter(Boolean).map((n) => n.stop()));
  await nats?.stop();
}

describe('centrifuge-js on two gyre nodes clustered over NATS', () => {
  let nats;
  let a;
  let b;
  before(async () => {
    nats = await startNats({ nodes: 2 });
    const keys = sharedKeys();
    a = await startClusterNode(nats.url, 'a', keys);
    b = await startClusterNode(nats.url, 'b', keys);
    // Each node learns of the other from its heartbeats; surveys (presence) only ask known nodes.
    await eventually(async () => (await nodeNames(a)).join() === nats.clusterNames('a', 'b').join(), CLUSTER_WAIT_MS, 'node a to list nodes a and b');
    await eventually(async () => (await nodeNames(b)).join() === nats.clusterNames('a', 'b').join(), CLUSTER_WAIT_MS, 'node b to list nodes a and b');
  });
  after(async () => { await stopAll([a, b], nats); });

  it('delivers API publications made on either node to SDK subscribers on both nodes', async () => {
    const channel = 'chat:x-' + randomId();
    const alice = a.client({ token: a.token('alice') });
    const bob = b.client({ token: b.token('bob') });
    await connected(alice);
    await connected(bob);
    const aliceSub = newSub(alice, channel);
    const bobSub = newSub(bob, channel);
    const onA = collect(aliceSub);
    const onB = collect(bobSub);
    await subscribed(aliceSub);
    await subscribed(bobSub);

    // chat has history: the channel's position is shared, so node a continues node b's offsets
    // under the same epoch.
    const fromB = await b.publish(channel, { from: 'b' });
    assert.equal(fromB.offset, 1);
    assert.equal(typeof fromB.epoch, 'string');
    assert.ok(fromB.epoch.length > 0, 'a non-empty epoch');
    await waitUntil(() => onA.length >= 1, 5000, "node b's API publication on the client of node a");
    await waitUntil(() => onB.length >= 1, 5000, "node b's API publication on the client of node b");

    assert.deepEqual(await a.publish(channel, { from: 'a' }), { offset: 2, epoch: fromB.epoch });
    await waitUntil(() => onB.length >= 2, 5000, "node a's API publication on the client of node b");
    await waitUntil(() => onA.length >= 2, 5000, "node a's API publication on the client of node a");

    assert.deepEqual(onA.map((p) => p.data), [{ from: 'b' }, { from: 'a' }]);
    assert.deepEqual(onB.map((p) => p.data), [{ from: 'b' }, { from: 'a' }]);
    for (const p of [...onA, ...onB]) assert.equal(p.channel, channel);

    // A burst published alternately through both nodes: every publication arrives once, and
    // both nodes deliver the channel's publications in the same order.
    const burst = 20;
    const results = await Promise.all(Array.from({ length: burst }, (_, i) => (i % 2 ? a : b).publish(channel, { i })));
    await waitUntil(() => onA.length >= 2 + burst && onB.length >= 2 + burst, 5000, 'the burst on both clients');
    const seqA = onA.slice(2).map((p) => p.data.i);
    const seqB = onB.slice(2).map((p) => p.data.i);
    assert.deepEqual([...seqA].sort((x, y) => x - y), Array.from({ length: burst }, (_, i) => i), 'each publication once on node a');
    assert.deepEqual(seqB, seqA, 'same order on both nodes');
    // That order is the offset order the API answers gave out: 3..22, one epoch.
    const want = Array.from({ length: 2 + burst }, (_, i) => i + 1);
    assert.deepEqual(onA.map((p) => p.offset), want, 'node a delivers offsets 1..22 in order');
    assert.deepEqual(onB.map((p) => p.offset), want, 'node b delivers offsets 1..22 in order');
    assert.deepEqual(results.map((r) => r.offset).sort((x, y) => x - y), want.slice(2), 'distinct contiguous offsets in the API answers');
    assert.deepEqual([...new Set(results.map((r) => r.epoch))], [fromB.epoch], 'one epoch in every API answer');
    for (const [i, r] of results.entries()) {
      assert.deepEqual(onA[r.offset - 1].data, { i }, `offset ${r.offset} carries the publication that was answered it`);
    }
    alice.disconnect();
    bob.disconnect();
  });

  it('delivers a client-side publish from an SDK client on node b to a subscriber on node a with the publisher info', async () => {
    const channel = 'chat:x-' + randomId();
    const alice = a.client({ token: a.token('alice') });
    const bob = b.client({ token: b.token('bob', { info: { team: 'blue' } }) });
    await connected(alice);
    const bobCtx = await connected(bob);
    const aliceSub = newSub(alice, channel);
    const bobSub = newSub(bob, channel);
    const onA = collect(aliceSub);
    await subscribed(aliceSub);
    await subscribed(bobSub);

    await bobSub.publish({ text: 'hi from b' });
    await waitUntil(() => onA.length >= 1, 5000, "bob's publication on node a");
    assert.equal(onA.length, 1);
    assert.equal(onA[0].channel, channel);
    assert.deepEqual(onA[0].data, { text: 'hi from b' });
    assert.equal(onA[0].info.user, 'bob');
    assert.equal(onA[0].info.client, bobCtx.client);
    assert.deepEqual(onA[0].info.connInfo, { team: 'blue' });
    alice.disconnect();
    bob.disconnect();
  });

  it('shows a subscriber on node a the join and the leave of a client on node b', async () => {
    const channel = 'chat:jl-' + randomId();
    const alice = a.client({ token: a.token('alice') });
    const bob = b.client({ token: b.token('bob') });
    await connected(alice);
    const bobCtx = await connected(bob);
    const aliceSub = newSub(alice, channel, { joinLeave: true });
    const joins = collect(aliceSub, 'join');
    const leaves = collect(aliceSub, 'leave');
    await subscribed(aliceSub);

    const bobSub = newSub(bob, channel);
    const bobJoined = waitFor(aliceSub, 'join', 5000, (ctx) => ctx.info.user === 'bob');
    await subscribed(bobSub);
    const join = await bobJoined;
    assert.equal(join.channel, channel);
    assert.equal(join.info.client, bobCtx.client);

    const bobLeft = waitFor(aliceSub, 'leave', 5000, (ctx) => ctx.info.user === 'bob');
    bobSub.unsubscribe();
    const leave = await bobLeft;
    assert.equal(leave.channel, channel);
    assert.equal(leave.info.client, bobCtx.client);

    // A disconnect (not only an unsubscribe) on node b is a leave on node a too.
    const bobJoinedAgain = waitFor(aliceSub, 'join', 5000, (ctx) => ctx.info.user === 'bob');
    await subscribed(bobSub);
    await bobJoinedAgain;
    const bobLeftAgain = waitFor(aliceSub, 'leave', 5000, (ctx) => ctx.info.user === 'bob');
    bob.disconnect();
    await bobLeftAgain;

    assert.equal(joins.filter((j) => j.info.user === 'bob').length, 2, 'one join per subscribe of bob');
    assert.equal(leaves.filter((l) => l.info.user === 'bob').length, 2, 'one leave per unsubscribe or disconnect of bob');
    alice.disconnect();
  });

  it('lists clients of both nodes in presence and presence stats asked by an SDK client on node a', async () => {
    const channel = 'chat:presence-' + randomId();
    const alice = a.client({ token: a.token('alice', { info: { on: 'a' } }) });
    const bob = b.client({ token: b.token('bob', { info: { on: 'b' } }) });
    const aliceCtx = await connected(alice);
    const bobCtx = await connected(bob);
    const aliceSub = newSub(alice, channel);
    await subscribed(aliceSub);
    const bobSub = newSub(bob, channel);
    const bobJoined = waitFor(aliceSub, 'join', 5000, (ctx) => ctx.info.user === 'bob');
    await subscribed(bobSub);
    await bobJoined;

    const presence = await aliceSub.presence();
    assert.deepEqual(Object.keys(presence.clients).sort(), [aliceCtx.client, bobCtx.client].sort());
    assert.equal(presence.clients[aliceCtx.client].user, 'alice');
    assert.deepEqual(presence.clients[aliceCtx.client].connInfo, { on: 'a' });
    assert.equal(presence.clients[bobCtx.client].user, 'bob');
    assert.equal(presence.clients[bobCtx.client].client, bobCtx.client);
    assert.deepEqual(presence.clients[bobCtx.client].connInfo, { on: 'b' });

    assert.deepEqual(await aliceSub.presenceStats(), { numClients: 2, numUsers: 2 });
    const { channels } = await b.api('channels', {});
    assert.deepEqual(channels[channel], { num_clients: 2 }, 'API channels on node b counts the subscribers of both nodes');
    alice.disconnect();
    bob.disconnect();
  });

  it('counts channels of both nodes in the API channels method filtered by a pattern', async () => {
    const id = randomId();
    const shared = `chat:pat-${id}`;
    const onlyB = `chat:patb-${id}`;
    const alice = a.client({ token: a.token('alice') });
    const bob = b.client({ token: b.token('bob') });
    await connected(alice);
    await connected(bob);
    await subscribed(newSub(alice, shared));
    await subscribed(newSub(bob, shared));
    await subscribed(newSub(bob, onlyB));
    try {
      assert.deepEqual(await a.api('channels', { pattern: shared }), { channels: { [shared]: { num_clients: 2 } } });
      assert.deepEqual(await a.api('channels', { pattern: `chat:pat*-${id}` }),
        { channels: { [shared]: { num_clients: 2 }, [onlyB]: { num_clients: 1 } } });
    } finally {
      alice.disconnect();
      bob.disconnect();
    }
  });

  it('subscribes and unsubscribes a user connected to node b with the API of node a', async () => {
    const channel = 'chat:srv-' + randomId();
    const user = 'srv-' + randomId();
    const client = b.client({ token: b.token(user) });
    await connected(client);
    const gotServerSub = waitFor(client, 'subscribed', 5000, (ctx) => ctx.channel === channel);
    assert.deepEqual(await a.api('subscribe', { user, channel }), {});
    await gotServerSub;
    const got = collect(client);
    const published = await a.publish(channel, { via: 'server-side subscription' });
    assert.equal(published.offset, 1, 'the first publication of a chat channel');
    assert.equal(typeof published.epoch, 'string');
    await waitUntil(() => got.length >= 1, 5000, 'a publication on the server-side subscription');
    assert.deepEqual(got.map((p) => [p.channel, p.data, p.offset]), [[channel, { via: 'server-side subscription' }, 1]]);

    const gotServerUnsub = waitFor(client, 'unsubscribed', 5000, (ctx) => ctx.channel === channel);
    assert.deepEqual(await a.api('unsubscribe', { user, channel }), {});
    await gotServerUnsub;

    const clientSub = newSub(client, channel);
    await subscribed(clientSub);
    const gotUnsub = waitFor(clientSub, 'unsubscribed');
    assert.deepEqual(await a.api('unsubscribe', { user, channel }), {});
    const ctx = await gotUnsub;
    assert.equal(ctx.code, 2000);
    assert.equal(ctx.reason, 'server unsubscribe');
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('disconnects a user connected to node b with a terminal custom code sent to the API of node a', async () => {
    const user = 'term-' + randomId();
    const client = b.client({ token: b.token(user) });
    await connected(client);
    const connecting = [];
    client.on('connecting', (ctx) => connecting.push(ctx));
    const gotDisconnected = waitFor(client, 'disconnected');
    assert.deepEqual(await a.api('disconnect', { user, disconnect: { code: 4501, reason: 'go away' } }), {});
    const ctx = await gotDisconnected;
    assert.equal(ctx.code, 4501);
    assert.equal(ctx.reason, 'go away');
    await observeUntil(Date.now() + 1000);
    assert.deepEqual(connecting, [], 'no reconnect after terminal code 4501');
    assert.equal(client.state, 'disconnected');
  });

  it('makes a user on node b reconnect after an API disconnect with a reconnect-range code sent to node a', async () => {
    const user = 'rec-' + randomId();
    const client = b.client({ token: b.token(user) });
    const first = await connected(client);
    const disconnected = [];
    client.on('disconnected', (ctx) => disconnected.push(ctx));
    const gotConnecting = waitFor(client, 'connecting', 5000, (ctx) => ctx.code === 4000);
    const gotReconnected = waitFor(client, 'connected', 5000, (ctx) => ctx.client !== first.client);
    assert.deepEqual(await a.api('disconnect', { user, disconnect: { code: 4000, reason: 'come back' } }), {});
    const ctx = await gotConnecting;
    assert.equal(ctx.reason, 'come back');
    const again = await gotReconnected;
    assert.ok(again.client && again.client !== first.client);
    assert.deepEqual(disconnected, [], 'a reconnect-range code never reaches the disconnected state');
    client.disconnect();
  });
});

describe('gyre info on three clustered nodes', () => {
  let nats;
  const nodes = [];
  before(async () => {
    nats = await startNats({ nodes: 3 });
    const keys = sharedKeys();
    for (const name of ['a', 'b', 'c']) nodes.push(await startClusterNode(nats.url, name, keys));
  });
  after(async () => { await stopAll(nodes, nats); });

  it('lists all three nodes on every node, and drops a node at once when it stops gracefully', async () => {
    const [a, b, c] = nodes;
    for (const node of [a, b, c]) {
      const want = nats.clusterNames('a', 'b', 'c').join();
      await eventually(async () => (await nodeNames(node)).join() === want, CLUSTER_WAIT_MS,
        `node ${node.config.node.name} to list nodes ${want}`);
    }
    const info = await a.api('info', {});
    for (const n of info.nodes) {
      assert.ok(n.uid, `node ${n.name} has a uid`);
      assert.equal(typeof n.num_clients, 'number');
    }

    // SIGTERM and wait for the process to exit: a graceful shutdown tells the cluster it leaves.
    const exit = await c.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, 'node c exits cleanly on SIGTERM');
    // Bounded well below the 7 s peer TTL: the drop must come from c's leaving notice, not from
    // missed heartbeats.
    for (const node of [a, b]) {
      await eventually(async () => (await nodeNames(node)).join() === nats.clusterNames('a', 'b').join(), 2000,
        `node ${node.config.node.name} to drop node c`);
    }
  });
});

describe('centrifuge-js during a NATS outage', () => {
  let nats;
  let a;
  before(async () => {
    nats = await startNats({ nodes: 1 });
    a = await startClusterNode(nats.url, 'a');
  });
  after(async () => { await stopAll([a], nats); });

  it('answers API publishes with error 100 while NATS is down and delivers again to the still-connected client after NATS restarts', async () => {
    // No namespace: no history, so publications relay over core NATS and publish answers `{}`
    // (cluster_history.test.mjs has the same outage on a channel with history).
    const channel = 'outage-' + randomId();
    const client = a.client({ token: a.token('dora') });
    await connected(client);
    const states = [];
    for (const event of ['connecting', 'disconnected']) client.on(event, (ctx) => states.push({ event, ...ctx }));
    const sub = newSub(client, channel);
    const got = collect(sub);
    await subscribed(sub);
    const subStates = [];
    for (const event of ['subscribing', 'unsubscribed']) sub.on(event, (ctx) => subStates.push({ event, ...ctx }));
    assert.deepEqual(await a.publish(channel, { phase: 'before' }), {});
    await waitUntil(() => got.length >= 1, 5000, 'a publication before the outage');

    const port = nats.port;
    await nats.kill();

    // While NATS is down a publish is an error, never a silent loss. Publishes right after the
    // kill may still be accepted until the NATS client notices the closed connection.
    const failed = [];
    let n = 0;
    const outage = await eventually(async () => {
      n += 1;
      const res = await a.apiRaw('publish', { channel, data: { phase: 'down', n } });
      assert.equal(res.status, 200, `publish during the outage -> HTTP ${res.status}: ${res.text}`);
      const body = JSON.parse(res.text);
      if (body.error) failed.push(n);
      return body.error ? body : null;
    }, 10000, 'an API publish to fail while NATS is down');
    assert.equal(outage.error.code, 100);
    assert.equal(typeof outage.error.message, 'string');
    // A client-side publish fails the same way instead of vanishing.
    await assert.rejects(sub.publish({ phase: 'down', n: 'client' }), (e) => e.code === 100,
      'a client-side publish while NATS is down is rejected with error 100');
    // Keep NATS down for a moment: gyre must not drop its clients while it reconnects.
    await observeUntil(Date.now() + 1000);
    assert.equal(client.state, 'connected');

    nats = await nats.restart();
    assert.equal(nats.port, port, 'nats-server restarted on the same port');

    let okData = null;
    await eventually(async () => {
      n += 1;
      const data = { phase: 'after', n };
      const res = await a.apiRaw('publish', { channel, data });
      const body = JSON.parse(res.text);
      if (body.error) { failed.push(n); return null; }
      assert.deepEqual(body, { result: {} });
      okData = data;
      return true;
    }, 15000, 'an API publish to succeed after NATS restarted');

    await waitUntil(() => got.some((p) => p.data.n === okData.n), 5000,
      'the first publication accepted after the restart on the subscribed client');
    assert.deepEqual(await a.publish(channel, { phase: 'later' }), {});
    await waitUntil(() => got.some((p) => p.data.phase === 'later'), 5000, 'a later publication');

    assert.deepEqual(states, [], 'the SDK client stayed connected through the outage');
    assert.deepEqual(subStates, [], 'the subscription stayed subscribed through the outage');
    const deliveredFailed = got.filter((p) => failed.includes(p.data.n)).map((p) => p.data);
    assert.deepEqual(deliveredFailed, [], 'no publish answered with an error was delivered');
    client.disconnect();
  });
});

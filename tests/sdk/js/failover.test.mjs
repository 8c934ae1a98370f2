// Failover with the official centrifuge-js SDK: two gyre nodes clustered over a real nats-server
// (with JetStream) behind a tiny in-test TCP proxy that stands in for a load balancer. The node the
// client is connected to is killed with SIGKILL (no close frame, no "leaving" notice), and
// publications are made on the surviving node while the client cannot reach any node. The client
// must then reconnect through the proxy to the surviving node and, because `chat:` history lives
// in JetStream streams shared by every node, resubscribe with `recovered: true` under the same
// epoch, get the publications it missed as recovered publications exactly once and in order, and
// receive later publications live exactly once. The surviving node must drop the dead one from
// `info` once its heartbeats expire (7 s TTL), and presence must list only live clients.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import {
  collect, connected, eventually, newSub, nodeNames, randomId, sharedKeys, startClusterNode,
  startNats, startProxy, subscribed, waitFor, waitUntil,
} from './harness.mjs';

/** Bound for cluster-wide conditions that ride on heartbeats (every 3 s). */
const CLUSTER_WAIT_MS = 12000;
/** Bound for the SDK to notice the dead transport and come back through the proxy. */
const RECONNECT_WAIT_MS = 10000;

describe('centrifuge-js failover: a clustered node killed with SIGKILL', () => {
  let nats;
  let a;
  let b;
  let proxy;
  let client;
  before(async () => {
    nats = await startNats({ nodes: 2 });
    const keys = sharedKeys();
    a = await startClusterNode(nats.url, 'a', keys);
    b = await startClusterNode(nats.url, 'b', keys);
    await eventually(async () => (await nodeNames(a)).join() === nats.clusterNames('a', 'b').join(), CLUSTER_WAIT_MS, 'node a to list nodes a and b');
    await eventually(async () => (await nodeNames(b)).join() === nats.clusterNames('a', 'b').join(), CLUSTER_WAIT_MS, 'node b to list nodes a and b');
    proxy = await startProxy(b.addr);
  });
  after(async () => {
    try { client?.disconnect(); } catch { /* ignore */ }
    await proxy?.close();
    await Promise.allSettled([a, b].filter(Boolean).map((n) => n.stop()));
    await nats?.stop();
  });

  it('reconnects its client through the load balancer to the other node and recovers what it missed there, exactly once', async (t) => {
    const id = randomId();
    // `lone` has no subscriber on node a before the kill: node a knows the channel only from
    // JetStream. `shared` also has a watcher on node a, which must not be disturbed.
    const channels = { lone: `chat:failover-${id}`, shared: `chat:failover-shared-${id}` };
    const user = 'fay-' + randomId();
    const watcher = a.client({ token: a.token('watcher-' + randomId()) });
    const watcherCtx = await connected(watcher);
    const watcherSub = newSub(watcher, channels.shared);
    const watcherGot = collect(watcherSub);
    await subscribed(watcherSub);

    // The keys are shared, so one token is valid on both nodes.
    client = new Centrifuge(proxy.wsUrl, {
      websocket: WebSocket, token: a.token(user), minReconnectDelay: 100, maxReconnectDelay: 500,
    });
    client.errors = [];
    client.on('error', (ctx) => client.errors.push(ctx));

    // Through the proxy to node b; publications made on node a reach it through JetStream.
    const first = await connected(client);
    const connecting = collect(client, 'connecting');
    const disconnected = collect(client, 'disconnected');
    assert.deepEqual(proxy.routed, [b.addr], 'the first connection went to node b');
    const subs = {};
    for (const [key, channel] of Object.entries(channels)) {
      const sub = newSub(client, channel);
      const got = collect(sub);
      const ctx = await subscribed(sub);
      assert.equal(ctx.recoverable, true, 'chat has force_recovery');
      assert.equal(ctx.wasRecovering, false);
      assert.ok(ctx.streamPosition.epoch, `${key}: the subscribe result has an epoch`);
      subs[key] = { sub, got, epoch: ctx.streamPosition.epoch, subscribing: collect(sub, 'subscribing'), unsubscribed: collect(sub, 'unsubscribed') };
    }
    /** Publishes `{n}` through node a on every channel; checks the shared offset and epoch. */
    const publishOnA = async (n) => {
      for (const [key, channel] of Object.entries(channels)) {
        assert.deepEqual(await a.publish(channel, { n }), { offset: n, epoch: subs[key].epoch },
          `${key}: node a continues the channel's offsets under the epoch node b gave the client`);
      }
    };
    await publishOnA(1);
    await waitUntil(() => Object.values(subs).every((s) => s.got.length >= 1), 5000,
      "node a's publications on the client of node b");
    await waitUntil(() => watcherGot.length >= 1, 5000, "node a's publication on the watcher on node a");
    for (const s of Object.values(subs)) {
      assert.deepEqual(s.got.map((p) => [p.offset, p.data]), [[1, { n: 1 }]]);
    }
    assert.deepEqual(watcherGot.map((p) => [p.offset, p.data]), [[1, { n: 1 }]]);

    // SIGKILL node b. The proxy keeps routing to the dead node b until the publications below are
    // made, so the client is certainly away while they happen; then it points at node a.
    const gotConnecting = waitFor(client, 'connecting', RECONNECT_WAIT_MS);
    const gotReconnected = waitFor(client, 'connected', RECONNECT_WAIT_MS, (ctx) => ctx.client !== first.client);
    const gotResubscribed = Object.values(subs).map((s) => waitFor(s.sub, 'subscribed', RECONNECT_WAIT_MS));
    const killedAt = Date.now();
    const exit = await b.kill();
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    // Node b sent no leaving notice: node a can only drop it when its heartbeats expire. Watched
    // from now on, checked at the end.
    const dropped = eventually(async () => (await nodeNames(a)).join() === nats.clusterNames('a').join(), CLUSTER_WAIT_MS,
      'node a to drop the killed node b').then(() => Date.now() - killedAt);
    dropped.catch(() => { /* awaited below */ });

    const connectingCtx = await gotConnecting;
    assert.equal(connectingCtx.code, 1, `connecting because the transport closed (got ${JSON.stringify(connectingCtx)})`);
    await publishOnA(2);
    await publishOnA(3);
    assert.equal(client.state, 'connecting', 'the client was away while 2 and 3 were published');
    assert.ok(proxy.routed.every((addr) => addr === b.addr), 'no connection reached node a yet');
    proxy.setBackend(a.addr);

    const again = await gotReconnected;
    assert.ok(again.client && again.client !== first.client, 'a new client id on node a');
    assert.equal(proxy.routed.at(-1), a.addr, 'the reconnect went through the proxy to node a');
    const resubs = await Promise.all(gotResubscribed);
    for (const [i, [key, channel]] of Object.entries(channels).entries()) {
      const ctx = resubs[i];
      const { sub, subscribing, epoch } = subs[key];
      assert.equal(ctx.channel, channel);
      assert.equal(ctx.wasRecovering, true, `${key}: the SDK asked to recover on resubscribe`);
      assert.equal(ctx.recovered, true, `${key}: node a recovers from the history shared through JetStream`);
      assert.equal(ctx.hasRecoveredPublications, true, `${key}: the missed publications are replayed`);
      assert.equal(ctx.streamPosition.epoch, epoch, `${key}: the same epoch on node a as on node b`);
      // As in Centrifugo (`res.Offset = latestOffset`), a recovered subscribe answers the stream's
      // top: 3, after the missed 2 and 3.
      assert.equal(ctx.streamPosition.offset, 3, `${key}: the recovered subscribe answers the stream's top`);
      assert.equal(sub.state, 'subscribed');
      assert.deepEqual(subscribing.map((c) => c.code), [1], `${key}: one resubscribe, because the transport closed`);
    }
    assert.equal(client.state, 'connected');
    // The SDK emits the recovered publications as publication events right after subscribed.
    await waitUntil(() => Object.values(subs).every((s) => s.got.length >= 3), 5000, 'the recovered publications');
    for (const [key, s] of Object.entries(subs)) {
      assert.deepEqual(s.got.map((p) => [p.offset, p.data]), [[1, { n: 1 }], [2, { n: 2 }], [3, { n: 3 }]],
        `${key}: the missed publications recovered once, in order`);
    }

    // Later publications arrive live, exactly once: the last one marks the end (same order
    // everywhere, so a duplicate of an earlier one would have arrived before it).
    await publishOnA(4);
    await publishOnA(5);
    await waitUntil(() => Object.values(subs).every((s) => s.got.some((p) => p.data.n === 5)), 5000,
      'the publications made after the failover');
    await waitUntil(() => watcherGot.some((p) => p.data.n === 5), 5000, 'the publications on the watcher');
    const all = [1, 2, 3, 4, 5].map((n) => [n, { n }]);
    for (const [key, s] of Object.entries(subs)) {
      assert.deepEqual(s.got.map((p) => [p.offset, p.data]), all, `${key}: each publication exactly once, in order`);
    }
    assert.deepEqual(watcherGot.map((p) => [p.offset, p.data]), all, 'the watcher was not disturbed');

    const dropMs = await dropped;
    t.diagnostic(`node a dropped node b from info ${dropMs} ms after the SIGKILL`);
    t.diagnostic(`proxied connections: ${proxy.routed.map((addr) => (addr === a.addr ? 'a' : 'b')).join(' ')}`);
    // With b gone, presence on node a lists only the clients that are really there.
    const lone = await a.api('presence', { channel: channels.lone });
    assert.deepEqual(Object.keys(lone.presence), [again.client]);
    assert.equal(lone.presence[again.client].user, user);
    const shared = await a.api('presence', { channel: channels.shared });
    assert.deepEqual(Object.keys(shared.presence).sort(), [again.client, watcherCtx.client].sort());
    // History through the surviving node is the whole stream, under the same epoch.
    for (const [key, channel] of Object.entries(channels)) {
      const history = await a.api('history', { channel, limit: -1 });
      assert.deepEqual(history.publications.map((p) => [p.offset, p.data]), all, `${key}: history on node a`);
      assert.equal(history.epoch, subs[key].epoch);
      assert.equal(history.offset, 5);
    }

    assert.deepEqual(connecting.map((ctx) => ctx.code), [1], 'one connecting transition, because the transport closed');
    assert.deepEqual(disconnected, [], 'never disconnected');
    for (const [key, s] of Object.entries(subs)) assert.deepEqual(s.unsubscribed, [], `${key}: never unsubscribed`);
    client.disconnect();
    watcher.disconnect();
  });
});

// Failover with the official centrifuge-js SDK: two gyre nodes clustered over a real nats-server
// behind a tiny in-test TCP proxy that stands in for a load balancer. The node the client is
// connected to is killed with SIGKILL (no close frame, no "leaving" notice); the client must
// reconnect through the proxy to the surviving node, resubscribe without a false "recovered"
// (history is per node in gyre), receive new publications exactly once, and the surviving node
// must drop the dead one from `info` once its heartbeats expire (7 s TTL).

import assert from 'node:assert/strict';
import net from 'node:net';
import { after, before, describe, it } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import {
  collect, connected, eventually, newSub, nodeNames, randomId, sharedKeys, startClusterNode,
  startNats, subscribed, waitFor, waitUntil,
} from './harness.mjs';

/** Bound for cluster-wide conditions that ride on heartbeats (every 3 s). */
const CLUSTER_WAIT_MS = 12000;
/** Bound for the SDK to notice the dead transport and come back through the proxy. */
const RECONNECT_WAIT_MS = 10000;

/**
 * A TCP proxy on 127.0.0.1:0 that forwards every new client connection to the currently
 * selected backend (`host:port`). Connections already open stay with the backend they were
 * opened to; when either side closes or fails, the other side is closed too (as a load balancer
 * does). `routed` lists the backend chosen for each accepted connection, in order.
 */
async function startProxy(backend) {
  let current = backend;
  const sockets = new Set();
  const routed = [];
  const server = net.createServer((downstream) => {
    const target = current;
    routed.push(target);
    const i = target.lastIndexOf(':');
    const upstream = net.connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('error', () => { downstream.destroy(); upstream.destroy(); });
      s.on('close', () => { sockets.delete(s); downstream.destroy(); upstream.destroy(); });
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    routed,
    /** New connections go to `addr` from now on. */
    setBackend(addr) { current = addr; },
    /** Stops listening and closes every proxied connection; safe to call twice. */
    async close() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (!server.listening) return;
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

describe('centrifuge-js failover: a clustered node killed with SIGKILL', () => {
  let nats;
  let a;
  let b;
  let proxy;
  let client;
  before(async () => {
    nats = await startNats();
    const keys = sharedKeys();
    a = await startClusterNode(nats.url, 'a', keys);
    b = await startClusterNode(nats.url, 'b', keys);
    await eventually(async () => (await nodeNames(a)).join() === 'a,b', CLUSTER_WAIT_MS, 'node a to list nodes a and b');
    await eventually(async () => (await nodeNames(b)).join() === 'a,b', CLUSTER_WAIT_MS, 'node b to list nodes a and b');
    proxy = await startProxy(b.addr);
  });
  after(async () => {
    try { client?.disconnect(); } catch { /* ignore */ }
    await proxy?.close();
    await Promise.allSettled([a, b].filter(Boolean).map((n) => n.stop()));
    await nats?.stop();
  });

  it('reconnects its client through the load balancer to the other node, resubscribes without a false recovery and delivers once', async (t) => {
    const id = randomId();
    // `lone` exists only on node b before the kill. `shared` also has a subscriber on node a, so
    // node a holds the same publications at the same offsets, but under its own epoch: offsets of
    // two nodes are not comparable, so recovery must be refused there too.
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

    // Through the proxy to node b; publications made on node a reach it over NATS.
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
      subs[key] = { sub, got, epoch: ctx.streamPosition.epoch, subscribing: collect(sub, 'subscribing'), unsubscribed: collect(sub, 'unsubscribed') };
    }
    for (const channel of Object.values(channels)) assert.deepEqual(await a.publish(channel, { n: 1 }), {});
    await waitUntil(() => Object.values(subs).every((s) => s.got.length >= 1), 5000,
      "node a's publications on the client of node b");
    await waitUntil(() => watcherGot.length >= 1, 5000, "node a's publication on the watcher on node a");
    for (const s of Object.values(subs)) {
      assert.deepEqual(s.got.map((p) => p.data), [{ n: 1 }]);
      assert.equal(s.got[0].offset, 1);
    }
    assert.equal(watcherGot[0].offset, 1, 'node a has the shared publication at the same offset');

    // SIGKILL node b, then point the load balancer at node a.
    const gotConnecting = waitFor(client, 'connecting', RECONNECT_WAIT_MS);
    const gotReconnected = waitFor(client, 'connected', RECONNECT_WAIT_MS, (ctx) => ctx.client !== first.client);
    const gotResubscribed = Object.values(subs).map((s) => waitFor(s.sub, 'subscribed', RECONNECT_WAIT_MS));
    const killedAt = Date.now();
    const exit = await b.kill();
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    proxy.setBackend(a.addr);
    // Node b sent no leaving notice: node a can only drop it when its heartbeats expire. Watched
    // from now on, checked at the end.
    const dropped = eventually(async () => (await nodeNames(a)).join() === 'a', CLUSTER_WAIT_MS,
      'node a to drop the killed node b').then(() => Date.now() - killedAt);
    dropped.catch(() => { /* awaited below */ });

    const connectingCtx = await gotConnecting;
    assert.equal(connectingCtx.code, 1, `connecting because the transport closed (got ${JSON.stringify(connectingCtx)})`);
    const again = await gotReconnected;
    assert.ok(again.client && again.client !== first.client, 'a new client id on node a');
    assert.equal(proxy.routed.at(-1), a.addr, 'the reconnect went through the proxy to node a');
    const resubs = await Promise.all(gotResubscribed);
    for (const [i, [key, channel]] of Object.entries(channels).entries()) {
      const ctx = resubs[i];
      const { sub, subscribing, epoch } = subs[key];
      assert.equal(ctx.channel, channel);
      assert.equal(ctx.wasRecovering, true, `${key}: the SDK asked to recover on resubscribe`);
      assert.equal(ctx.recovered, false, `${key}: gyre must not claim recovery on a node that does not have the history`);
      assert.ok(!ctx.hasRecoveredPublications, `${key}: no publications replayed`);
      assert.notEqual(ctx.streamPosition.epoch, epoch, `${key}: node a's stream of the channel is not node b's`);
      assert.equal(sub.state, 'subscribed');
      assert.deepEqual(subscribing.map((c) => c.code), [1], `${key}: one resubscribe, because the transport closed`);
    }
    assert.equal(client.state, 'connected');

    // After the failover a publication made on node a arrives exactly once: a second one,
    // published after it on the same channel (same order everywhere), marks the end.
    for (const n of [2, 3]) {
      for (const channel of Object.values(channels)) assert.deepEqual(await a.publish(channel, { n }), {});
    }
    await waitUntil(() => Object.values(subs).every((s) => s.got.some((p) => p.data.n === 3)), 5000,
      'the publications made after the failover');
    await waitUntil(() => watcherGot.some((p) => p.data.n === 3), 5000, 'the publications on the watcher');
    for (const [key, s] of Object.entries(subs)) {
      assert.deepEqual(s.got.map((p) => p.data), [{ n: 1 }, { n: 2 }, { n: 3 }], `${key}: each publication exactly once, in order`);
    }
    assert.deepEqual(watcherGot.map((p) => p.data), [{ n: 1 }, { n: 2 }, { n: 3 }], 'the watcher was not disturbed');

    const dropMs = await dropped;
    t.diagnostic(`node a dropped node b from info ${dropMs} ms after the SIGKILL`);
    t.diagnostic(`proxied connections: ${proxy.routed.map((addr) => (addr === a.addr ? 'a' : 'b')).join(' ')}`);
    // With b gone, presence on node a lists only the clients that are really there.
    const lone = await a.api('presence', { channel: channels.lone });
    assert.deepEqual(Object.keys(lone.presence), [again.client]);
    assert.equal(lone.presence[again.client].user, user);
    const shared = await a.api('presence', { channel: channels.shared });
    assert.deepEqual(Object.keys(shared.presence).sort(), [again.client, watcherCtx.client].sort());

    assert.deepEqual(connecting.map((ctx) => ctx.code), [1], 'one connecting transition, because the transport closed');
    assert.deepEqual(disconnected, [], 'never disconnected');
    for (const [key, s] of Object.entries(subs)) assert.deepEqual(s.unsubscribed, [], `${key}: never unsubscribed`);
    client.disconnect();
    watcher.disconnect();
  });
});

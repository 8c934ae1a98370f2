// A recovery storm at CI size: three gyre nodes on one nats-server (history in JetStream), each
// behind a TCP proxy standing in for a load balancer; STORM_CLIENTS centrifuge-js clients (300 by
// default) spread over the three, subscribed to STORM_CHANNELS `chat:` channels with recovery,
// while publications flow through node a. Node c is killed with SIGKILL and its proxy sends new
// connections to node b: every client of node c must reconnect there and resubscribe with
// `recovered: true`, and every client must end up with each publication of its channel exactly
// once, in order, with no gap. No timing threshold: the time to recover is only reported.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import {
  collect, eventually, nodeNames, randomId, sharedKeys, startClusterNode, startNats, startProxy, waitUntil,
} from './harness.mjs';

const CLIENTS = Number(process.env.STORM_CLIENTS || 300);
const CHANNELS = Number(process.env.STORM_CHANNELS || 30);
/** Bounds: cluster membership rides on 3 s heartbeats; a storm of reconnects takes longer. */
const CLUSTER_WAIT_MS = 12000;
const STORM_WAIT_MS = 60000;

describe('recovery storm: a node with many recovering clients killed with SIGKILL', () => {
  let nats;
  const nodes = {};
  const proxies = {};
  const clients = [];
  before(async () => {
    nats = await startNats({ nodes: 3, monitor: true });
    const keys = sharedKeys();
    for (const name of ['a', 'b', 'c']) nodes[name] = await startClusterNode(nats.url, name, keys);
    for (const node of Object.values(nodes)) {
      await eventually(async () => (await nodeNames(node)).join() === nats.clusterNames('a', 'b', 'c').join(), CLUSTER_WAIT_MS, 'three nodes listed');
    }
    for (const [name, node] of Object.entries(nodes)) proxies[name] = await startProxy(node.addr);
  });
  after(async () => {
    for (const c of clients) {
      try { c.client.disconnect(); } catch { /* ignore */ }
    }
    await Promise.allSettled(Object.values(proxies).map((p) => p.close()));
    await Promise.allSettled(Object.values(nodes).map((n) => n.stop()));
    await nats?.stop();
  });

  it('reconnects every client of the dead node elsewhere with recovered: true, and nobody loses or repeats a publication', async (t) => {
    const id = randomId();
    const channel = (k) => `chat:storm-${id}-${k}`;
    const names = ['a', 'b', 'c'];
    const a = nodes.a;
    for (let i = 0; i < CLIENTS; i += 1) {
      const home = names[i % 3];
      const client = new Centrifuge(proxies[home].wsUrl, {
        websocket: WebSocket, token: a.token(`storm-${i}`), minReconnectDelay: 100, maxReconnectDelay: 2000,
      });
      client.on('error', () => {});
      const sub = client.newSubscription(channel(i % CHANNELS));
      sub.on('error', () => {});
      const entry = { i, home, client, sub, got: collect(sub), subscribed: collect(sub, 'subscribed'), connectedAt: [] };
      client.on('connected', () => entry.connectedAt.push(Date.now()));
      sub.on('subscribed', () => { entry.subscribedAt = Date.now(); });
      clients.push(entry);
      sub.subscribe();
      client.connect();
    }
    await waitUntil(() => clients.every((c) => c.subscribed.length === 1), STORM_WAIT_MS, 'every client subscribed');

    // Publications flow through node a the whole time: one per channel per round.
    let rounds = 0;
    let stop = false;
    const publishing = (async () => {
      while (!stop) {
        rounds += 1;
        for (let k = 0; k < CHANNELS; k += 1) {
          const result = await a.publish(channel(k), { n: rounds });
          assert.equal(result.offset, rounds, `${channel(k)}: offsets follow the rounds`);
        }
      }
    })();
    await waitUntil(() => rounds >= 3, STORM_WAIT_MS, 'three rounds published');

    const jsApiCalls = async () => (await (await fetch(`${nats.monitorUrl}/jsz`)).json()).api.total;
    // Every message node b sends to NATS (direct gets, which /jsz does not count, but also its
    // join and presence traffic): an upper bound on its store requests.
    const sentByB = async () => (await (await fetch(`${nats.monitorUrl}/connz?limit=1000`)).json()).connections
      .filter((c) => c.name === 'gyre b').reduce((sum, c) => sum + c.in_msgs, 0);
    const callsBefore = await jsApiCalls();
    const sentBefore = await sentByB();
    const killedAt = Date.now();
    const exit = await nodes.c.kill();
    assert.deepEqual(exit, { code: null, signal: 'SIGKILL' });
    proxies.c.setBackend(nodes.b.addr);
    const victims = clients.filter((c) => c.home === 'c');
    await waitUntil(() => victims.every((c) => c.subscribed.length === 2), STORM_WAIT_MS, 'every client of node c resubscribed');
    const recoveredAfterMs = Date.now() - killedAt;
    // Where the time goes: reconnected (transport and connect done) vs resubscribed, per client.
    const quantiles = (values) => {
      const sorted = [...values].sort((x, y) => x - y);
      return [0.5, 0.9, 1].map((q) => sorted[Math.min(sorted.length - 1, Math.floor(q * (sorted.length - 1)))]).join('/');
    };
    const reconnectedMs = victims.map((c) => c.connectedAt[1] - killedAt);
    const resubscribedMs = victims.map((c) => c.subscribedAt - killedAt);
    const stormCalls = (await jsApiCalls()) - callsBefore;
    const stormSent = (await sentByB()) - sentBefore;
    for (const c of victims) {
      const ctx = c.subscribed[1];
      assert.equal(ctx.wasRecovering, true, `client ${c.i} asked to recover`);
      assert.equal(ctx.recovered, true, `client ${c.i} recovered on node b`);
    }
    const last = rounds + 3;
    await waitUntil(() => rounds >= last, STORM_WAIT_MS, 'three more rounds after the storm');
    stop = true;
    await publishing;

    await waitUntil(() => clients.every((c) => c.got.length >= rounds), STORM_WAIT_MS, 'every publication delivered');
    const expected = Array.from({ length: rounds }, (_, n) => n + 1);
    for (const c of clients) {
      assert.deepEqual(c.got.map((p) => p.offset), expected, `client ${c.i} (node ${c.home}): every offset once, in order`);
      assert.deepEqual(c.got.map((p) => p.data.n), expected, `client ${c.i}: the data of each offset`);
    }
    for (const c of clients.filter((x) => x.home !== 'c')) {
      assert.equal(c.subscribed.length, 1, `client ${c.i} on a live node was not disturbed`);
    }
    t.diagnostic(`${victims.length} clients of the killed node recovered within ${recoveredAfterMs} ms, `
      + `${stormCalls} JetStream API calls meanwhile (${(stormCalls / victims.length).toFixed(2)} per recovering subscription), `
      + `node b sent ${stormSent} messages to NATS (${(stormSent / victims.length).toFixed(2)} per recovering subscription, joins and presence included); `
      + `reconnected after p50/p90/max ${quantiles(reconnectedMs)} ms, resubscribed after ${quantiles(resubscribedMs)} ms; `
      + `${rounds} rounds on ${CHANNELS} channels`);
  });
});

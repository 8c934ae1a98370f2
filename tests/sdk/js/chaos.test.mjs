// Chaos, bounded and on loopback: three gyre nodes on one nats-server with JetStream, real
// centrifuge-js clients spread over them through a load-balancing proxy, all subscribed to one
// history channel, while the API publishes a numbered sequence through whichever nodes are up.
// During the run node b is killed with SIGKILL, nats-server is killed and restarted (same port,
// same store), and node c is cut off from NATS for a while through a TCP proxy that resets its
// connection and refuses new ones. Publishes that fail are retried with the same idempotency key.
//
// At the end every client must be subscribed and hold every publication exactly once, in order,
// with contiguous offsets: nothing lost, nothing duplicated, across recovery.
//
// Size: CHAOS_PUBLICATIONS (default 60, at most the channel's history of 100) and CHAOS_CLIENTS
// (default 6). `.ci/run` uses the defaults; docs/reliability.md has a larger run.

import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';

import { Centrifuge } from 'centrifuge';
import WebSocket from 'ws';

import {
  collect, connected, eventually, newSub, nodeNames, randomId, sharedKeys, startClusterNode, startNats,
  startProxy, subscribed,
} from './harness.mjs';

const PUBLICATIONS = Math.min(Number(process.env.CHAOS_PUBLICATIONS || 60), 100);
const CLIENTS = Number(process.env.CHAOS_CLIENTS || 6);
/** Bound for cluster-wide conditions (heartbeats every 3 s, reconnects with backoff). */
const CLUSTER_WAIT_MS = 15000;
/** Bound for one publication to get through while NATS or a node is down. */
const PUBLISH_WAIT_MS = 20000;
/** Bound for every client to hold every publication after the last one. */
const CONVERGE_WAIT_MS = 40000;
const PARTITION_MS = 1500;

const sleep = (ms) => new Promise((resolve) => { setTimeout(resolve, ms); });

describe('chaos: SIGKILL, a NATS restart and a partition under a publishing load', () => {
  const cleanup = [];
  after(async () => {
    for (const step of cleanup.reverse()) {
      try { await step(); } catch { /* best effort */ }
    }
  });

  it('every client ends subscribed with every publication exactly once, in order', async () => {
    let nats = await startNats({ nodes: 3 });
    cleanup.push(() => nats.stop());
    const natsProxy = await startProxy(`127.0.0.1:${nats.port}`);
    cleanup.push(() => natsProxy.close());
    const keys = sharedKeys();
    const a = await startClusterNode(nats.url, 'a', keys);
    const b = await startClusterNode(nats.url, 'b', keys);
    const c = await startClusterNode(`nats://127.0.0.1:${natsProxy.port}`, 'c', keys);
    cleanup.push(() => Promise.allSettled([a, b, c].map((n) => n.stop())));
    await eventually(async () => (await nodeNames(a)).join() === nats.clusterNames('a', 'b', 'c').join(), CLUSTER_WAIT_MS, 'node a to list a, b and c');

    // Clients are spread over the nodes; reconnects after node b dies go to node a.
    const lb = await startProxy(a.addr);
    cleanup.push(() => lb.close());
    const channel = `chat:chaos-${randomId()}`;
    const clients = [];
    for (let i = 0; i < CLIENTS; i++) {
      lb.setBackend([a, b, c][i % 3].addr);
      const client = new Centrifuge(lb.wsUrl, {
        websocket: WebSocket, token: a.token(`chaos-${i}`), minReconnectDelay: 100, maxReconnectDelay: 1000,
      });
      client.on('error', () => {});
      cleanup.push(() => client.disconnect());
      await connected(client);
      const sub = newSub(client, channel);
      const got = collect(sub);
      await subscribed(sub);
      const reconnects = collect(client, 'connecting');
      clients.push({ client, sub, got, reconnects, node: ['a', 'b', 'c'][i % 3] });
    }
    lb.setBackend(a.addr);

    let up = [a, b, c];
    let retries = 0;
    /** Publishes `{n}` through the next node that is up, retrying with the same key. */
    const publish = async (n) => {
      const deadline = Date.now() + PUBLISH_WAIT_MS;
      for (let attempt = 0; ; attempt++) {
        const node = up[(n + attempt) % up.length];
        try {
          return await node.api('publish', { channel, data: { n }, idempotency_key: `chaos-${n}` });
        } catch (error) {
          retries++;
          if (Date.now() > deadline) throw new Error(`publication ${n} did not get through: ${error.message}`);
          await sleep(100);
        }
      }
    };

    const partition = [];
    for (let n = 1; n <= PUBLICATIONS; n++) {
      if (n === Math.floor(PUBLICATIONS / 4)) {
        await b.kill();
        up = [a, c];
      } else if (n === Math.floor(PUBLICATIONS / 2)) {
        await nats.kill();
        // Publishes fail until it is back (history lives in JetStream): the retries cover it.
        partition.push(sleep(500).then(async () => { nats = await nats.restart(); }));
      } else if (n === Math.floor((3 * PUBLICATIONS) / 4)) {
        natsProxy.cut();
        partition.push(sleep(PARTITION_MS).then(() => natsProxy.restore()));
      }
      const result = await publish(n);
      assert.ok(Number(result.offset) >= 1, `publication ${n} has an offset: ${JSON.stringify(result)}`);
      await sleep(10);
    }
    await Promise.all(partition);

    const expected = Array.from({ length: PUBLICATIONS }, (_, i) => i + 1);
    const converging = Date.now();
    await eventually(async () => clients.every((c) => c.got.length >= PUBLICATIONS), CONVERGE_WAIT_MS,
      `every client to hold ${PUBLICATIONS} publications`);
    for (const [i, c] of clients.entries()) {
      assert.deepEqual(c.got.map((p) => p.data.n), expected, `client ${i} (first on node ${c.node}): data, once each, in order`);
      assert.deepEqual(c.got.map((p) => Number(p.offset)), expected, `client ${i}: contiguous offsets`);
      assert.equal(c.sub.state, 'subscribed', `client ${i} ends subscribed`);
      if (c.node === 'b') assert.ok(c.reconnects.length >= 1, `client ${i} lost node b and came back elsewhere`);
    }
    const history = await a.api('history', { channel, limit: -1 });
    assert.deepEqual(history.publications.map((p) => p.data.n), expected, 'history holds each publication once');
    const reconnects = clients.reduce((sum, c) => sum + c.reconnects.length, 0);
    console.log(`chaos: ${PUBLICATIONS} publications, ${CLIENTS} clients, ${retries} publish retries, `
      + `${reconnects} client reconnects, converged ${Date.now() - converging} ms after the last publish`);
  });
});

// The npm HTTP API client cent.js 6.1.0 against gyre: every method it has, its pipeline (the
// legacy newline-delimited `POST /api` endpoint) and its error handling, with a centrifuge-js
// subscriber observing the effects.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { CentClient, CentException } from 'cent.js';

import { collect, connected, newSub, randomId, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

describe('cent.js 6.1.0', () => {
  let node;
  let cent;
  before(async () => {
    node = await startGyre();
    cent = new CentClient({ url: node.apiUrl, apiKey: node.apiKey });
  });
  after(async () => { await node?.stop(); });

  it('publishes and broadcasts to a subscriber and reports history positions', async () => {
    const channel = 'chat:centjs-' + randomId();
    const client = node.client({ token: node.token('cj') });
    await connected(client);
    const sub = newSub(client, channel);
    const got = collect(sub);
    await subscribed(sub);
    const first = await cent.publish({ channel, data: { n: 1 } });
    assert.equal(first.offset, 1);
    assert.ok(first.epoch);
    const broadcast = await cent.broadcast({ channels: [channel, 'plain-' + randomId()], data: { n: 2 } });
    assert.equal(broadcast.responses.length, 2);
    assert.equal(broadcast.responses[0].result.offset, 2);
    await waitUntil(() => got.length >= 2, 5000, 'two publications');
    assert.deepEqual(got.map((p) => p.data), [{ n: 1 }, { n: 2 }]);
    const history = await cent.getHistory({ channel, limit: 10 });
    assert.deepEqual(history.publications.map((p) => p.offset), [1, 2]);
    assert.equal(history.epoch, first.epoch);
    await cent.removeHistory({ channel });
    const emptied = await cent.getHistory({ channel, limit: 10 });
    assert.deepEqual(emptied.publications, []);
    assert.equal(emptied.offset, 2);
    const presence = await cent.getPresence({ channel });
    assert.equal(Object.values(presence.presence).map((info) => info.user)[0], 'cj');
    assert.deepEqual(await cent.getPresenceStats({ channel }), { num_clients: 1, num_users: 1 });
    const channels = await cent.getChannels({ pattern: 'chat:centjs-*' });
    assert.deepEqual(channels.channels[channel], { num_clients: 1 });
    const info = await cent.getInfo();
    assert.equal(info.nodes.length, 1);
    client.disconnect();
  });

  it('subscribes, unsubscribes and disconnects a user the SDK client can see', async () => {
    const channel = 'centjs-srv-' + randomId();
    const client = node.client({ token: node.token('cjs') });
    await connected(client);
    const announced = waitFor(client, 'subscribed', 5000, (ctx) => ctx.channel === channel);
    await cent.subscribe({ user: 'cjs', channel });
    await announced;
    const removed = waitFor(client, 'unsubscribed', 5000, (ctx) => ctx.channel === channel);
    await cent.unsubscribe({ user: 'cjs', channel });
    await removed;
    const gone = waitFor(client, 'disconnected', 5000);
    await cent.disconnect({ user: 'cjs' });
    assert.equal((await gone).code, 3503);
  });

  it('runs a pipeline through the legacy endpoint, one result per command in order', async () => {
    const channel = 'chat:pipe-' + randomId();
    const results = await cent.pipeline([
      { method: 'publish', params: { channel, data: { p: 1 } } },
      { method: 'publish', params: { channel, data: { p: 2 } } },
      { method: 'history', params: { channel, limit: -1 } },
      { method: 'info', params: {} },
    ]);
    assert.equal(results.length, 4);
    assert.equal(results[0].offset, 1);
    assert.equal(results[1].offset, 2);
    assert.deepEqual(results[2].publications.map((p) => p.data), [{ p: 1 }, { p: 2 }]);
    assert.equal(results[3].nodes.length, 1);
  });

  it('raises CentException for an in-body API error (unknown namespace)', async () => {
    // cent.js passes the error object to Error's constructor, so the code itself is lost on its
    // side; what it needs from the server is the `error` key in a 200 body.
    await assert.rejects(cent.publish({ channel: 'nope:x', data: {} }), CentException);
    const raw = await node.apiRaw('publish', { channel: 'nope:x', data: {} });
    assert.deepEqual({ status: raw.status, body: JSON.parse(raw.text) }, { status: 200, body: { error: { code: 102, message: 'unknown channel' } } });
  });
});

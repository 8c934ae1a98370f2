// Server-side actions seen through the official centrifuge-js SDK: server-side subscriptions
// from the token's `channels` claim and from the API `subscribe`, API `unsubscribe` and API
// `disconnect`.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { collect, connected, newSub, observeUntil, randomId, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

describe('centrifuge-js and server-side actions', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  it('subscribes the connection to the channels claim of its token and delivers publications to the client', async () => {
    const channel = 'srv-' + randomId();
    const client = node.client({ token: node.token('sam', { channels: [channel] }) });
    const gotServerSub = waitFor(client, 'subscribed', 5000, (ctx) => ctx.channel === channel);
    await connected(client);
    await gotServerSub;
    const got = collect(client);
    await node.publish(channel, { server: 'side' });
    await waitUntil(() => got.length >= 1, 5000, 'a server-side publication');
    assert.equal(got[0].channel, channel);
    assert.deepEqual(got[0].data, { server: 'side' });
    client.disconnect();
  });

  it('recovers missed publications of a recoverable server-side subscription on reconnect', async () => {
    const channel = 'chat:srvrec-' + randomId();
    const client = node.client({ token: node.token('sal', { channels: [channel] }) });
    const gotFirst = waitFor(client, 'subscribed', 5000, (ctx) => ctx.channel === channel);
    await connected(client);
    const first = await gotFirst;
    assert.equal(first.recoverable, true);
    assert.equal(first.wasRecovering, false);
    const got = collect(client);
    for (let seq = 1; seq <= 2; seq += 1) await node.publish(channel, { seq });
    await waitUntil(() => got.length >= 2, 5000, 'two live publications');

    const gotDisconnected = waitFor(client, 'disconnected');
    client.disconnect();
    await gotDisconnected;
    for (let seq = 3; seq <= 5; seq += 1) await node.publish(channel, { seq });

    const gotAgain = waitFor(client, 'subscribed', 5000, (ctx) => ctx.channel === channel);
    client.connect();
    const again = await gotAgain;
    assert.equal(again.wasRecovering, true);
    assert.equal(again.recovered, true);
    await waitUntil(() => got.length >= 5, 5000, 'the missed publications');
    await node.publish(channel, { seq: 6 });
    await waitUntil(() => got.some((p) => p.data.seq === 6), 5000, 'a live publication after recovery');
    assert.deepEqual(got.map((p) => p.data.seq), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(got.map((p) => p.offset), [1, 2, 3, 4, 5, 6]);
    client.disconnect();
  });

  it('announces a subscription made with the API subscribe method to the connected client', async () => {
    const channel = 'srv-api-' + randomId();
    const user = 'sub-' + randomId();
    const client = node.client({ token: node.token(user) });
    await connected(client);
    const gotServerSub = waitFor(client, 'subscribed', 5000, (ctx) => ctx.channel === channel);
    assert.deepEqual(await node.api('subscribe', { user, channel }), {});
    await gotServerSub;
    const got = collect(client);
    await node.publish(channel, { via: 'api subscribe' });
    await waitUntil(() => got.length >= 1, 5000, 'a publication on the API-made subscription');
    assert.deepEqual(got[0].data, { via: 'api subscribe' });
    client.disconnect();
  });

  it('unsubscribes a client-side subscription with code 2000 on the API unsubscribe method', async () => {
    const channel = 'chat:unsub-' + randomId();
    const user = 'uns-' + randomId();
    const client = node.client({ token: node.token(user) });
    await connected(client);
    const sub = newSub(client, channel);
    await subscribed(sub);
    const gotUnsub = waitFor(sub, 'unsubscribed');
    assert.deepEqual(await node.api('unsubscribe', { user, channel }), {});
    const ctx = await gotUnsub;
    assert.equal(ctx.code, 2000);
    assert.equal(ctx.reason, 'server unsubscribe');
    assert.equal(sub.state, 'unsubscribed');
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('disconnects the client with 3503 on the API disconnect method and it does not reconnect', async () => {
    const user = 'dis-' + randomId();
    const client = node.client({ token: node.token(user) });
    await connected(client);
    const connecting = [];
    client.on('connecting', (ctx) => connecting.push(ctx));
    const gotDisconnected = waitFor(client, 'disconnected');
    assert.deepEqual(await node.api('disconnect', { user }), {});
    const ctx = await gotDisconnected;
    assert.equal(ctx.code, 3503);
    assert.equal(ctx.reason, 'force disconnect');
    await observeUntil(Date.now() + 1500);
    assert.deepEqual(connecting, [], 'no reconnect after 3503');
  });

  it('lets the client reconnect after an API disconnect with a reconnect-range custom code', async () => {
    const user = 'rec-' + randomId();
    const client = node.client({ token: node.token(user) });
    const first = await connected(client);
    const gotConnecting = waitFor(client, 'connecting', 5000, (ctx) => ctx.code === 4000);
    const gotReconnected = waitFor(client, 'connected', 5000, (ctx) => ctx.client !== first.client);
    assert.deepEqual(await node.api('disconnect', { user, disconnect: { code: 4000, reason: 'come back' } }), {});
    const ctx = await gotConnecting;
    assert.equal(ctx.reason, 'come back');
    const again = await gotReconnected;
    assert.ok(again.client && again.client !== first.client);
    client.disconnect();
  });
});

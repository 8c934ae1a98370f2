// Publish/subscribe with the official centrifuge-js SDK: API publish to a subscriber, client-side
// publish with publisher info, private channels with subscription tokens, history.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { collect, connected, newSub, randomId, signJwt, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

describe('centrifuge-js publish and subscribe', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  it('delivers exactly the data published through the HTTP API to a subscriber', async () => {
    const client = node.client({ token: node.token('alice') });
    await connected(client);
    const channel = 'news-' + randomId();
    const sub = newSub(client, channel);
    await subscribed(sub);
    const got = collect(sub);
    const data = { text: 'hello', n: 42, nested: { list: [1, 'two', null, true] }, unicode: 'héllo ✓' };
    const result = await node.publish(channel, data);
    assert.deepEqual(result, {}, 'no history in this channel, so an empty publish result');
    await waitUntil(() => got.length >= 1, 5000, 'the publication');
    assert.equal(got.length, 1);
    assert.equal(got[0].channel, channel);
    assert.deepEqual(got[0].data, data);
    assert.equal(got[0].info, undefined, 'API publications carry no publisher info');
    // A second publication proves the first one was not duplicated.
    await node.publish(channel, { seq: 2 });
    await waitUntil(() => got.length >= 2, 5000, 'the second publication');
    assert.deepEqual(got.map((p) => p.data), [data, { seq: 2 }]);
    client.disconnect();
  });

  it('broadcasts a client-side publish to another subscriber with info.user of the publisher', async () => {
    const channel = 'chat:room-' + randomId();
    const alice = node.client({ token: node.token('alice', { info: { name: 'Alice' } }) });
    const bob = node.client({ token: node.token('bob') });
    const aliceCtx = await connected(alice);
    await connected(bob);
    const aliceSub = newSub(alice, channel);
    const bobSub = newSub(bob, channel);
    await subscribed(aliceSub);
    await subscribed(bobSub);
    const bobGot = collect(bobSub);
    const aliceGot = collect(aliceSub);

    const res = await aliceSub.publish({ text: 'hi from alice' });
    assert.deepEqual(res, {});
    await waitUntil(() => bobGot.length >= 1, 5000, 'bob receives the publication');
    assert.equal(bobGot.length, 1);
    const pub = bobGot[0];
    assert.deepEqual(pub.data, { text: 'hi from alice' });
    assert.ok(pub.info, 'publication has info');
    assert.equal(pub.info.user, 'alice');
    assert.equal(pub.info.client, aliceCtx.client);
    assert.deepEqual(pub.info.connInfo, { name: 'Alice' });
    assert.ok(pub.offset >= 1, 'chat channels have history, so the publication has an offset');
    // The publisher's own connection is subscribed, so it receives its publication too.
    await waitUntil(() => aliceGot.length >= 1, 5000, 'alice receives her own publication');
    assert.deepEqual(aliceGot[0].data, { text: 'hi from alice' });
    alice.disconnect();
    bob.disconnect();
  });

  it('subscribes to a private channel with a subscription token from getToken', async () => {
    const channel = 'priv:room-' + randomId();
    const client = node.client({ token: node.token('carol') });
    await connected(client);
    const asked = [];
    const sub = newSub(client, channel, {
      getToken: async (ctx) => { asked.push(ctx.channel); return node.subToken('carol', ctx.channel); },
    });
    const ctx = await subscribed(sub);
    assert.equal(ctx.channel, channel);
    assert.deepEqual(asked, [channel]);
    assert.deepEqual(sub.errors, []);
    const got = collect(sub);
    await node.publish(channel, { secret: 1 });
    await waitUntil(() => got.length >= 1, 5000, 'a publication on the private channel');
    assert.deepEqual(got[0].data, { secret: 1 });
    client.disconnect();
  });

  it('unsubscribes with code 103 from a private channel when no subscription token is given', async () => {
    const channel = 'priv:room-' + randomId();
    const client = node.client({ token: node.token('carol') });
    await connected(client);
    const sub = newSub(client, channel);
    const gotUnsub = waitFor(sub, 'unsubscribed');
    sub.subscribe();
    const ctx = await gotUnsub;
    assert.equal(ctx.code, 103);
    assert.equal(ctx.reason, 'permission denied');
    assert.equal(sub.state, 'unsubscribed');
    assert.equal(client.state, 'connected', 'a permission error does not disconnect the client');
    client.disconnect();
  });

  it('unsubscribes with code 103 when the subscription token is signed with another key', async () => {
    const channel = 'priv:room-' + randomId();
    const client = node.client({ token: node.token('carol') });
    await connected(client);
    const sub = newSub(client, channel, { token: signJwt({ sub: 'carol', channel }, 'wrong-secret-but-long-enough-for-hs256-signing') });
    const gotUnsub = waitFor(sub, 'unsubscribed');
    sub.subscribe();
    const ctx = await gotUnsub;
    assert.equal(ctx.code, 103);
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('returns publications with offsets from sub.history', async () => {
    const channel = 'chat:hist-' + randomId();
    const published = [];
    for (let i = 1; i <= 3; i += 1) {
      const res = await node.publish(channel, { i });
      published.push(res);
    }
    assert.deepEqual(published.map((r) => r.offset), [1, 2, 3]);
    assert.ok(published[0].epoch && published.every((r) => r.epoch === published[0].epoch));

    const client = node.client({ token: node.token('dave') });
    await connected(client);
    const sub = newSub(client, channel);
    await subscribed(sub);
    const hist = await sub.history({ limit: 10 });
    assert.deepEqual(hist.publications.map((p) => p.data), [{ i: 1 }, { i: 2 }, { i: 3 }]);
    assert.deepEqual(hist.publications.map((p) => p.offset), [1, 2, 3]);
    assert.equal(hist.offset, 3);
    assert.equal(hist.epoch, published[0].epoch);

    const newest = await sub.history({ limit: 2, reverse: true });
    assert.deepEqual(newest.publications.map((p) => p.offset), [3, 2]);
    const onlyPosition = await sub.history({ limit: 0 });
    assert.deepEqual(onlyPosition.publications, []);
    assert.equal(onlyPosition.offset, 3);
    client.disconnect();
  });
});

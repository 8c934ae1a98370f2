// The Protobuf protocol with the official centrifuge-js SDK's Protobuf build
// (`centrifuge/build/protobuf`): binary frames, payloads as Uint8Array. gyre carries any bytes, so
// binary data arrives byte for byte.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { collect, connected, newSub, observeUntil, randomId, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

const encode = (value) => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes) => {
  assert.ok(bytes instanceof Uint8Array, `Protobuf payloads are bytes, got ${typeof bytes}`);
  return JSON.parse(new TextDecoder().decode(bytes));
};

describe('centrifuge-js Protobuf build', () => {
  let node;
  before(async () => { node = await startGyre({ client: { ping_interval: '1s', pong_timeout: '500ms' } }); });
  after(async () => { await node?.stop(); });

  it('connects, subscribes and receives API publications as bytes', async () => {
    const client = node.protobufClient({ token: node.token('alice') });
    const ctx = await connected(client);
    assert.ok(ctx.client);
    const channel = 'chat:pb-' + randomId();
    const sub = newSub(client, channel);
    const sctx = await subscribed(sub);
    assert.equal(sctx.recoverable, true);
    const got = collect(sub);
    const data = { text: 'héllo ✓', n: 42, nested: [1, null, true] };
    await node.publish(channel, data);
    await waitUntil(() => got.length >= 1, 5000, 'the publication');
    assert.deepEqual(decode(got[0].data), data);
    assert.equal(Number(got[0].offset), 1);
    client.disconnect();
  });

  it('a JSON client and a Protobuf client share a channel both ways', async () => {
    const channel = 'chat:mixed-' + randomId();
    const pb = node.protobufClient({ token: node.token('pb', { info: { kind: 'protobuf' } }) });
    const js = node.client({ token: node.token('js') });
    const pbCtx = await connected(pb);
    await connected(js);
    const pbSub = newSub(pb, channel);
    const jsSub = newSub(js, channel);
    await subscribed(pbSub);
    await subscribed(jsSub);
    const pbGot = collect(pbSub);
    const jsGot = collect(jsSub);
    await pbSub.publish(encode({ from: 'protobuf' }));
    await waitUntil(() => jsGot.length >= 1 && pbGot.length >= 1, 5000, 'the Protobuf client publication');
    assert.deepEqual(jsGot[0].data, { from: 'protobuf' });
    assert.equal(jsGot[0].info.client, pbCtx.client);
    assert.deepEqual(jsGot[0].info.connInfo, { kind: 'protobuf' });
    assert.deepEqual(decode(pbGot[0].data), { from: 'protobuf' });
    await jsSub.publish({ from: 'json' });
    await waitUntil(() => pbGot.length >= 2, 5000, 'the JSON client publication');
    assert.deepEqual(decode(pbGot[1].data), { from: 'json' });
    assert.equal(pbGot[1].info.user, 'js');
    pb.disconnect();
    js.disconnect();
  });

  it('presence, history and recovery after a reconnect', async () => {
    const channel = 'chat:recover-pb-' + randomId();
    const client = node.protobufClient({ token: node.token('erin') });
    await connected(client);
    const sub = newSub(client, channel);
    await subscribed(sub);
    const got = collect(sub);
    const presence = await sub.presence();
    assert.deepEqual(Object.values(presence.clients).map((c) => c.user), ['erin']);
    const stats = await sub.presenceStats();
    assert.deepEqual([stats.numClients, stats.numUsers], [1, 1]);
    await node.publish(channel, { seq: 1 });
    await waitUntil(() => got.length >= 1, 5000, 'the first publication');
    client.disconnect();
    for (const seq of [2, 3]) await node.publish(channel, { seq });
    const resubscribed = waitFor(sub, 'subscribed');
    client.connect();
    const ctx = await resubscribed;
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    await waitUntil(() => got.length >= 3, 5000, 'the missed publications');
    assert.deepEqual(got.map((p) => decode(p.data).seq), [1, 2, 3]);
    const history = await sub.history({ limit: -1 });
    assert.deepEqual(history.publications.map((p) => decode(p.data).seq), [1, 2, 3]);
    assert.equal(Number(history.offset), 3);
    client.disconnect();
  });

  it('answers server pings in Protobuf and stays connected', async () => {
    const client = node.protobufClient({ token: node.token('pat') });
    await connected(client);
    let disconnects = 0;
    client.on('disconnected', () => { disconnects += 1; });
    // The SDK answers each 1 s ping with a pong; a missing one would close the connection
    // (500 ms pong timeout) within this window.
    await observeUntil(Date.now() + 3500);
    assert.equal(disconnects, 0);
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('binary data arrives byte for byte; a JSON client in the channel is closed with 3506', async () => {
    const channel = 'chat:bin-' + randomId();
    const binary = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
    const pb = node.protobufClient({ token: node.token('pb') });
    const js = node.client({ token: node.token('js') });
    await connected(pb);
    await connected(js);
    const pbSub = newSub(pb, channel);
    const jsSub = newSub(js, channel);
    await subscribed(pbSub);
    await subscribed(jsSub);
    const got = collect(pbSub);
    const jsClosed = waitFor(js, 'disconnected');
    const b64data = Buffer.from(binary).toString('base64');
    await node.api('publish', { channel, b64data });
    await waitUntil(() => got.length >= 1, 5000, 'the API publication');
    assert.deepEqual(got[0].data, binary);
    const ctx = await jsClosed;
    assert.deepEqual([ctx.code, ctx.reason], [3506, 'inappropriate protocol']);
    await pbSub.publish(binary.slice(0, 7));
    await waitUntil(() => got.length >= 2, 5000, 'the client publication');
    assert.deepEqual(got[1].data, binary.slice(0, 7));
    const history = await pbSub.history({ limit: -1 });
    assert.deepEqual(history.publications.map((p) => p.data), [binary, binary.slice(0, 7)]);
    pb.disconnect();
  });
});

// Bidirectional emulation: centrifuge-js over its `http_stream` transport (fetch and a
// streamed response) and its `sse` transport (EventSource; the `eventsource` package stands in
// for the browser's), commands posted to /emulation: the fallbacks a page uses when WebSocket
// is blocked. Everything a WebSocket client does: connect, subscribe, publications both ways,
// presence, history, pings answered through /emulation, and a server disconnect.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import { EventSource } from 'eventsource';

import { collect, connected, nowSec, randomId, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

describe('centrifuge-js over http_stream emulation', () => {
  let node;
  before(async () => {
    node = await startGyre({
      http_stream: { enabled: true },
      sse: { enabled: true },
      client: { ping_interval: '2s', pong_timeout: '1s' },
    });
  });
  after(async () => { await node?.stop(); });

  function emulatedClient(opts) {
    return node.track(new Centrifuge([{ transport: 'http_stream', endpoint: `http://${node.addr}/connection/http_stream` }], {
      emulationEndpoint: `http://${node.addr}/emulation`,
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
      ...opts,
    }));
  }

  it('subscribes, receives and publishes, reads presence and history, and answers pings', async () => {
    const channel = 'chat:emu-' + randomId();
    const alice = emulatedClient({ token: node.token('alice') });
    const ctx = await connected(alice);
    assert.equal(ctx.transport, 'http_stream');
    const sub = alice.newSubscription(channel);
    await subscribed(sub);
    const got = collect(sub);

    await node.publish(channel, { from: 'api' });
    await waitUntil(() => got.length >= 1, 5000, 'the API publication');
    assert.deepEqual(got[0].data, { from: 'api' });

    await sub.publish({ from: 'alice' });
    await waitUntil(() => got.length >= 2, 5000, 'her own publication');
    assert.equal(got[1].info.user, 'alice');

    const presence = await sub.presence();
    assert.deepEqual(Object.values(presence.clients).map((c) => c.user), ['alice']);
    const history = await sub.history({ limit: 10 });
    assert.deepEqual(history.publications.map((p) => p.data), [{ from: 'api' }, { from: 'alice' }]);

    // Pings every 2 s with a 1 s pong timeout: the SDK's pongs reach the session through
    // /emulation, so it is still connected after several rounds.
    const before = Date.now();
    await waitUntil(() => Date.now() - before > 5000, 7000, 'five seconds of pings');
    assert.equal(alice.state, 'connected');
    await node.publish(channel, { after: 'pings' });
    await waitUntil(() => got.length >= 3, 5000, 'a publication after the pings');
    alice.disconnect();
  });

  it('recovers what it missed while away and refreshes its expiring token', async () => {
    const channel = 'chat:emu-rec-' + randomId();
    let refreshes = 0;
    const client = emulatedClient({
      token: node.token('refresher', { exp: nowSec() + 3 }),
      getToken: async () => {
        refreshes += 1;
        return node.token('refresher', { exp: nowSec() + 60 });
      },
    });
    await connected(client);
    const sub = client.newSubscription(channel);
    await subscribed(sub);
    const got = collect(sub);
    await node.publish(channel, { n: 1 });
    await waitUntil(() => got.length >= 1, 5000, 'the first publication');

    client.disconnect();
    await node.publish(channel, { n: 2 });
    await node.publish(channel, { n: 3 });
    const resubscribed = waitFor(sub, 'subscribed', 5000);
    client.connect();
    const ctx = await resubscribed;
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    await waitUntil(() => got.length >= 3, 5000, 'the missed publications');
    assert.deepEqual(got.map((p) => p.data.n), [1, 2, 3]);

    // The connection token expires 3 s after it was minted: the SDK refreshes it through
    // /emulation and stays connected.
    await waitUntil(() => refreshes >= 1, 8000, 'a token refresh');
    await node.publish(channel, { n: 4 });
    await waitUntil(() => got.length >= 4, 5000, 'a publication after the refresh');
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('works over sse, falling back to it after a WebSocket that cannot connect', async () => {
    const channel = 'chat:sse-' + randomId();
    const transports = [
      { transport: 'websocket', endpoint: `ws://127.0.0.1:1/connection/websocket` },
      { transport: 'sse', endpoint: `http://${node.addr}/connection/sse` },
    ];
    const carol = node.track(new Centrifuge(transports, {
      token: node.token('carol'),
      emulationEndpoint: `http://${node.addr}/emulation`,
      eventsource: EventSource,
      websocket: (await import('ws')).default,
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
    }));
    const ctx = await connected(carol);
    assert.equal(ctx.transport, 'sse');
    const sub = carol.newSubscription(channel);
    await subscribed(sub);
    const got = collect(sub);
    await node.publish(channel, { over: 'sse' });
    await sub.publish({ from: 'carol' });
    await waitUntil(() => got.length >= 2, 5000, 'both publications');
    assert.deepEqual(got.map((p) => p.data), [{ over: 'sse' }, { from: 'carol' }]);
    carol.disconnect();
  });

  it('speaks Protobuf over http_stream with the SDK\'s Protobuf build', async () => {
    const channel = 'chat:pb-' + randomId();
    const dave = node.track(new ProtobufCentrifuge([{ transport: 'http_stream', endpoint: `http://${node.addr}/connection/http_stream` }], {
      token: node.token('dave'),
      emulationEndpoint: `http://${node.addr}/emulation`,
      minReconnectDelay: 100,
      maxReconnectDelay: 1000,
    }));
    const ctx = await connected(dave);
    assert.equal(ctx.transport, 'http_stream');
    const sub = dave.newSubscription(channel);
    await subscribed(sub);
    const got = collect(sub);
    await node.publish(channel, { over: 'protobuf' });
    // Protobuf payloads are bytes.
    await sub.publish(new TextEncoder().encode(JSON.stringify({ from: 'dave' })));
    await waitUntil(() => got.length >= 2, 5000, 'both publications');
    const decoded = got.map((p) => JSON.parse(new TextDecoder().decode(p.data)));
    assert.deepEqual(decoded, [{ over: 'protobuf' }, { from: 'dave' }]);
    const disconnected = waitFor(dave, 'disconnected');
    await node.api('disconnect', { user: 'dave', disconnect: { code: 4502, reason: 'bye' } });
    assert.equal((await disconnected).code, 4502);
  });

  it('hears the disconnect code when the server disconnects it', async () => {
    const bob = emulatedClient({ token: node.token('bob') });
    await connected(bob);
    const disconnected = waitFor(bob, 'disconnected');
    await node.api('disconnect', { user: 'bob', disconnect: { code: 4501, reason: 'go away' } });
    const ctx = await disconnected;
    assert.equal(ctx.code, 4501);
    assert.equal(ctx.reason, 'go away');
  });
});

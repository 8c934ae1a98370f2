// WebSocket permessage-deflate (websocket.compression) with real clients: the `ws` package (what
// centrifuge-js uses in Node) negotiates it, compresses its commands, and inflates gyre's
// compressed pushes; centrifuge-js works unchanged over it, JSON and Protobuf.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { collect, connected, newSub, randomId, startGyre, subscribed, waitUntil } from './harness.mjs';

describe('WebSocket permessage-deflate', () => {
  let node;
  before(async () => { node = await startGyre({ websocket: { compression: true, compression_min_size: 0 } }); });
  after(async () => { await node?.stop(); });

  it('is negotiated with ws, which compresses commands and inflates compressed replies', async () => {
    const ws = new WebSocket(node.wsUrl, { perMessageDeflate: { threshold: 0 } });
    const messages = [];
    ws.on('message', (data) => messages.push(...data.toString().split('\n').map((line) => JSON.parse(line))));
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
    assert.match(ws.extensions, /permessage-deflate/);
    const channel = 'zip-' + randomId();
    ws.send(JSON.stringify({ id: 1, connect: { token: node.token('zipper') } }));
    ws.send(JSON.stringify({ id: 2, subscribe: { channel } }));
    await waitUntil(() => messages.some((m) => m.id === 2), 5000, 'the subscribe reply');
    assert.ok(messages.find((m) => m.id === 1).connect.client, 'connected over compressed frames');
    const text = 'compress me '.repeat(500);
    await node.publish(channel, { text });
    await waitUntil(() => messages.some((m) => m.push), 5000, 'the push');
    assert.deepEqual(messages.find((m) => m.push).push.pub.data, { text });
    ws.close();
  });

  it('carries centrifuge-js publications, client publishes and history unchanged (JSON and Protobuf)', async () => {
    const encode = (value) => new TextEncoder().encode(JSON.stringify(value));
    const decode = (data) => (data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)) : data);
    const kinds = [
      { make: (opts) => node.client(opts), wrap: (value) => value },
      { make: (opts) => node.protobufClient(opts), wrap: encode },
    ];
    for (const { make, wrap } of kinds) {
      const client = make({ token: node.token('zip-sdk') });
      await connected(client);
      const channel = 'chat:zip-' + randomId();
      const sub = newSub(client, channel);
      await subscribed(sub);
      const got = collect(sub);
      const big = { text: 'x'.repeat(20000), n: 1 };
      await node.publish(channel, big);
      await sub.publish(wrap({ text: 'from the client '.repeat(100), n: 2 }));
      await waitUntil(() => got.length >= 2, 5000, 'both publications');
      assert.deepEqual(got.map((p) => decode(p.data).n), [1, 2]);
      assert.deepEqual(decode(got[0].data), big);
      const history = await sub.history({ limit: 10 });
      assert.equal(history.publications.length, 2);
      client.disconnect();
    }
  });
});

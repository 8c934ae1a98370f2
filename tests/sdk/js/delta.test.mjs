// Fossil delta compression with centrifuge-js's own decoder (`delta: 'fossil'`), JSON and
// Protobuf builds: the first publication is full, the next ones are patches on the wire (seen
// as much smaller frames) and decode to exactly what was published.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { collect, connected, newSub, randomId, startGyre, subscribed, waitUntil } from './harness.mjs';

const state = (minute) => ({ match: 'home-away', score: '1:0', minute, events: ['kickoff', 'goal', 'x'.repeat(200)] });

/** A `ws` WebSocket that records the size of every message it receives. */
function recordingSocket(sizes) {
  return class extends WebSocket {
    constructor(...args) {
      super(...args);
      this.on('message', (data) => sizes.push(data.length ?? data.byteLength));
    }
  };
}

describe('centrifuge-js fossil delta', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  for (const build of ['json', 'protobuf']) {
    it(`${build}: patches on the wire, exact states in the application`, async () => {
      const sizes = [];
      const opts = { token: node.token('d-' + build), websocket: recordingSocket(sizes) };
      const client = build === 'json' ? node.client(opts) : node.protobufClient(opts);
      await connected(client);
      const channel = `delta:js-${build}-` + randomId();
      const sub = newSub(client, channel, { delta: 'fossil' });
      await subscribed(sub);
      const got = collect(sub);
      const before = sizes.length;
      for (let minute = 1; minute <= 4; minute++) await node.publish(channel, state(minute));
      await waitUntil(() => got.length >= 4, 5000, 'four publications');
      const decode = (data) => (data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)) : data);
      assert.deepEqual(got.map((p) => decode(p.data)), [1, 2, 3, 4].map(state));
      const frames = sizes.slice(before);
      assert.equal(frames.length, 4, `one frame per publication: ${frames}`);
      assert.ok(frames[0] > 200, `the first is full: ${frames}`);
      for (const size of frames.slice(1)) assert.ok(size < frames[0] / 2, `later ones are patches: ${frames}`);
      client.disconnect();
    });
  }
});

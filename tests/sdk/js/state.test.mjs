// State channels with centrifuge-js: cache recovery mode (a subscriber gets the latest
// publication at once) and publication versions (outdated versions are dropped), JSON and
// Protobuf builds.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { collect, connected, newSub, randomId, startGyre, subscribed, waitUntil } from './harness.mjs';

const decode = (data) => (data instanceof Uint8Array ? JSON.parse(new TextDecoder().decode(data)) : data);

describe('centrifuge-js state channels', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  for (const build of ['json', 'protobuf']) {
    it(`${build}: cache recovery hands a new subscriber the latest state`, async () => {
      const channel = `state:js-${build}-` + randomId();
      for (const n of [1, 2, 3]) await node.publish(channel, { n });
      const opts = { token: node.token('s-' + build) };
      const client = build === 'json' ? node.client(opts) : node.protobufClient(opts);
      await connected(client);
      const sub = newSub(client, channel);
      const got = collect(sub);
      const ctx = await subscribed(sub);
      assert.equal(ctx.recovered, true);
      await node.publish(channel, { n: 4 });
      await waitUntil(() => got.length >= 2, 5000, 'the latest and the next publication');
      assert.deepEqual(got.map((p) => decode(p.data).n), [3, 4]);
      client.disconnect();
    });

    it(`${build}: outdated versions are dropped`, async () => {
      const channel = `chat:ver-${build}-` + randomId();
      const opts = { token: node.token('v-' + build) };
      const client = build === 'json' ? node.client(opts) : node.protobufClient(opts);
      await connected(client);
      const sub = newSub(client, channel);
      await subscribed(sub);
      const got = collect(sub);
      const offsets = [];
      for (const [n, version] of [[1, 10], [2, 9], [3, 11]]) {
        const result = await node.api('publish', { channel, data: { n }, version });
        offsets.push(Number(result.offset));
      }
      assert.deepEqual(offsets, [1, 1, 2]);
      await waitUntil(() => got.length >= 2, 5000, 'two publications');
      assert.deepEqual(got.map((p) => decode(p.data).n), [1, 3]);
      client.disconnect();
    });
  }
});

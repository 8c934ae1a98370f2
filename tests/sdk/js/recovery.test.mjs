// Recovery with the official centrifuge-js SDK: publications missed while the client was
// disconnected arrive in order, exactly once, after reconnect.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { collect, connected, newSub, randomId, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

describe('centrifuge-js recovery', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  it('recovers the publications missed while disconnected, in order and exactly once', async () => {
    const channel = 'chat:recover-' + randomId();
    const client = node.client({ token: node.token('erin') });
    await connected(client);
    const sub = newSub(client, channel);
    const first = await subscribed(sub);
    assert.equal(first.recoverable, true, 'chat namespace forces recovery');
    assert.equal(first.positioned, true);
    assert.equal(first.wasRecovering, false);
    assert.ok(first.streamPosition && first.streamPosition.epoch, 'subscribe result has an epoch');
    const got = collect(sub);

    for (let seq = 1; seq <= 3; seq += 1) await node.publish(channel, { seq });
    await waitUntil(() => got.length >= 3, 5000, 'three live publications');

    const gotDisconnected = waitFor(client, 'disconnected');
    client.disconnect();
    await gotDisconnected;

    const missed = 5;
    for (let seq = 4; seq < 4 + missed; seq += 1) await node.publish(channel, { seq });

    const gotSubscribed = waitFor(sub, 'subscribed');
    client.connect();
    const ctx = await gotSubscribed;
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    assert.equal(ctx.hasRecoveredPublications, true);
    assert.equal(ctx.streamPosition.epoch, first.streamPosition.epoch, 'same stream epoch');

    await waitUntil(() => got.length >= 3 + missed, 5000, 'the missed publications');
    // A live publication after recovery: once it arrives, any duplicate would have arrived too.
    await node.publish(channel, { seq: 9 });
    await waitUntil(() => got.some((p) => p.data.seq === 9), 5000, 'the live publication after recovery');
    assert.deepEqual(got.map((p) => p.data.seq), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    assert.deepEqual(got.map((p) => p.offset), [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    client.disconnect();
  });

  it('reports recovered with no publications when nothing was missed', async () => {
    const channel = 'chat:recover-' + randomId();
    const client = node.client({ token: node.token('erin') });
    await connected(client);
    const sub = newSub(client, channel);
    await subscribed(sub);
    const got = collect(sub);
    await node.publish(channel, { seq: 1 });
    await waitUntil(() => got.length === 1, 5000, 'one publication');

    const gotDisconnected = waitFor(client, 'disconnected');
    client.disconnect();
    await gotDisconnected;
    const gotSubscribed = waitFor(sub, 'subscribed');
    client.connect();
    const ctx = await gotSubscribed;
    assert.equal(ctx.wasRecovering, true);
    assert.equal(ctx.recovered, true);
    assert.equal(ctx.hasRecoveredPublications, false);
    await node.publish(channel, { seq: 2 });
    await waitUntil(() => got.length >= 2, 5000, 'the next live publication');
    assert.deepEqual(got.map((p) => p.offset), [1, 2]);
    client.disconnect();
  });
});

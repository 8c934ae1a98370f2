// Error replies as the official centrifuge-js SDK surfaces them: unknown namespace, features
// that are off, missing permissions, RPC.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connected, newSub, randomId, startGyre, subscribed, waitFor } from './harness.mjs';

async function rejection(promise) {
  try {
    await promise;
  } catch (e) {
    return e;
  }
  assert.fail('expected the call to be rejected');
}

describe('centrifuge-js error replies', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  it('unsubscribes with code 102 from a channel in an unknown namespace', async () => {
    const client = node.client({ token: node.token('eve') });
    await connected(client);
    const sub = newSub(client, 'nosuchns:' + randomId());
    const gotUnsub = waitFor(sub, 'unsubscribed');
    sub.subscribe();
    const ctx = await gotUnsub;
    assert.equal(ctx.code, 102);
    assert.equal(ctx.reason, 'unknown channel');
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('rejects history and presence with 108 on a channel where they are off', async () => {
    const client = node.client({ token: node.token('eve') });
    await connected(client);
    const sub = newSub(client, 'plain-' + randomId());
    await subscribed(sub);
    const hist = await rejection(sub.history({ limit: 10 }));
    assert.equal(hist.code, 108);
    assert.equal(hist.message, 'not available');
    const pres = await rejection(sub.presence());
    assert.equal(pres.code, 108);
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('rejects a client publish with 103 where the namespace does not allow it', async () => {
    const channel = 'priv:ro-' + randomId();
    const client = node.client({ token: node.token('eve') });
    await connected(client);
    const sub = newSub(client, channel, { getToken: async (ctx) => node.subToken('eve', ctx.channel) });
    await subscribed(sub);
    const err = await rejection(sub.publish({ nope: true }));
    assert.equal(err.code, 103);
    assert.equal(err.message, 'permission denied');
    const hist = await node.api('history', { channel, limit: 10 });
    assert.deepEqual(hist.publications, [], 'the rejected publication is not in history');
    client.disconnect();
  });

  it('rejects an RPC with 108 when no RPC handler is configured', async () => {
    const client = node.client({ token: node.token('eve') });
    await connected(client);
    const err = await rejection(client.rpc('anything', { a: 1 }));
    assert.equal(err.code, 108);
    assert.equal(client.state, 'connected');
    client.disconnect();
  });
});

describe('centrifuge-js built-in RPC ping', () => {
  let node;
  before(async () => { node = await startGyre({ rpc: { ping: { enabled: true } } }); });
  after(async () => { await node?.stop(); });

  it('answers the built-in ping RPC with an empty result and an unknown method with 104', async () => {
    const client = node.client({ token: node.token('eve') });
    await connected(client);
    const res = await client.rpc('ping', {});
    assert.equal(res.data, undefined, 'empty result has no data');
    const err = await rejection(client.rpc('nosuchmethod', {}));
    assert.equal(err.code, 104);
    assert.equal(err.message, 'method not found');
    client.disconnect();
  });
});

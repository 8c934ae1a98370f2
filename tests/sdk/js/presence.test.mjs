// Presence with the official centrifuge-js SDK: presence and presence stats with two users,
// join and leave pushes.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connected, eventually, newSub, randomId, startGyre, subscribed, waitFor } from './harness.mjs';

describe('centrifuge-js presence', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  it('lists both clients in presence and counts them in presence stats, with join and leave events', async () => {
    const channel = 'chat:presence-' + randomId();
    const alice = node.client({ token: node.token('alice', { info: { role: 'host' } }) });
    const bob = node.client({ token: node.token('bob') });
    const aliceCtx = await connected(alice);
    const bobCtx = await connected(bob);

    const aliceSub = newSub(alice, channel);
    const joins = [];
    const leaves = [];
    aliceSub.on('join', (ctx) => joins.push(ctx));
    aliceSub.on('leave', (ctx) => leaves.push(ctx));
    await subscribed(aliceSub);

    const bobSub = newSub(bob, channel);
    const bobJoined = waitFor(aliceSub, 'join', 5000, (ctx) => ctx.info.user === 'bob');
    await subscribed(bobSub);
    const join = await bobJoined;
    assert.equal(join.channel, channel);
    assert.equal(join.info.client, bobCtx.client);

    const presence = await aliceSub.presence();
    assert.deepEqual(Object.keys(presence.clients).sort(), [aliceCtx.client, bobCtx.client].sort());
    assert.equal(presence.clients[aliceCtx.client].user, 'alice');
    assert.equal(presence.clients[aliceCtx.client].client, aliceCtx.client);
    assert.deepEqual(presence.clients[aliceCtx.client].connInfo, { role: 'host' });
    assert.equal(presence.clients[bobCtx.client].user, 'bob');

    const stats = await aliceSub.presenceStats();
    assert.deepEqual(stats, { numClients: 2, numUsers: 2 });

    const bobLeft = waitFor(aliceSub, 'leave', 5000, (ctx) => ctx.info.user === 'bob');
    bobSub.unsubscribe();
    const leave = await bobLeft;
    assert.equal(leave.info.client, bobCtx.client);
    assert.equal(joins.filter((j) => j.info.user === 'bob').length, 1, 'exactly one join for bob');
    assert.equal(leaves.filter((l) => l.info.user === 'bob').length, 1, 'exactly one leave for bob');

    // Presence removal may trail the leave push by a moment (as with Centrifugo's Redis engine).
    const after = await eventually(async () => {
      const s = await aliceSub.presenceStats();
      return s.numClients === 1 ? s : null;
    }, 5000, 'presence stats to drop to one client');
    assert.deepEqual(after, { numClients: 1, numUsers: 1 });
    const afterPresence = await aliceSub.presence();
    assert.deepEqual(Object.keys(afterPresence.clients), [aliceCtx.client]);
    alice.disconnect();
    bob.disconnect();
  });

  it('counts one user with two connections once in presence stats', async () => {
    const channel = 'chat:presence-' + randomId();
    const a1 = node.client({ token: node.token('same') });
    const a2 = node.client({ token: node.token('same') });
    await connected(a1);
    await connected(a2);
    const s1 = newSub(a1, channel);
    const s2 = newSub(a2, channel);
    await subscribed(s1);
    await subscribed(s2);
    const stats = await s1.presenceStats();
    assert.deepEqual(stats, { numClients: 2, numUsers: 1 });
    a1.disconnect();
    a2.disconnect();
  });
});

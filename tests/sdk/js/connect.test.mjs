// Connection scenarios with the official centrifuge-js SDK: connect with a token, a token signed
// with the wrong key (terminal 3500), an expired token refreshed through getToken (error 109).

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import { connected, nowSec, observeUntil, signJwt, startGyre, waitFor } from './harness.mjs';

describe('centrifuge-js connection', () => {
  let node;
  before(async () => { node = await startGyre(); });
  after(async () => { await node?.stop(); });

  it('connects with a valid token and emits connected with a client id over websocket', async () => {
    const client = node.client({ token: node.token('alice') });
    const states = [];
    client.on('state', (ctx) => states.push(ctx.newState));
    const ctx = await connected(client);
    assert.equal(typeof ctx.client, 'string');
    assert.ok(ctx.client.length > 0, 'client id is not empty');
    assert.equal(ctx.transport, 'websocket');
    assert.equal(client.state, 'connected');
    assert.deepEqual(states, ['connecting', 'connected']);
    assert.deepEqual(client.errors, []);
    client.disconnect();
  });

  it('gives every connection its own client id', async () => {
    const a = node.client({ token: node.token('alice') });
    const b = node.client({ token: node.token('alice') });
    const [ca, cb] = await Promise.all([connected(a), connected(b)]);
    assert.notEqual(ca.client, cb.client);
    a.disconnect();
    b.disconnect();
  });

  it('goes to disconnected with code 3500 and does not reconnect when the token is signed with another key', async () => {
    const bad = signJwt({ sub: 'mallory' }, 'not-the-server-secret');
    const client = node.client({ token: bad });
    const connecting = [];
    client.on('connecting', (ctx) => connecting.push(ctx));
    const gotDisconnected = waitFor(client, 'disconnected');
    client.connect();
    const ctx = await gotDisconnected;
    assert.equal(ctx.code, 3500);
    assert.equal(client.state, 'disconnected');
    const attemptsAtDisconnect = connecting.length;
    // Reconnect delay is 100-1000 ms in the harness: a reconnect would show up within 1.5 s.
    await observeUntil(Date.now() + 1500);
    assert.equal(connecting.length, attemptsAtDisconnect, 'no reconnect attempt after 3500');
    assert.equal(client.state, 'disconnected');
  });

  it('refreshes an expired token through getToken after error 109 and ends up connected', async () => {
    let calls = 0;
    const client = node.client({
      token: node.token('bob', { exp: nowSec() - 60 }),
      getToken: async () => { calls += 1; return node.token('bob', { exp: nowSec() + 3600 }); },
    });
    const ctx = await connected(client, 10000);
    assert.ok(ctx.client.length > 0);
    assert.equal(calls, 1, 'getToken called exactly once');
    const connectErrors = client.errors.filter((e) => e.type === 'connect');
    assert.equal(connectErrors.length, 1, `one connect error, got ${JSON.stringify(client.errors)}`);
    assert.equal(connectErrors[0].error.code, 109);
    assert.equal(connectErrors[0].error.message, 'token expired');
    client.disconnect();
  });

  it('goes to disconnected when no token is given and anonymous connections are not allowed', async () => {
    const client = node.client();
    const gotDisconnected = waitFor(client, 'disconnected');
    client.connect();
    const ctx = await gotDisconnected;
    assert.equal(ctx.code, 3501);
    assert.equal(client.state, 'disconnected');
  });
});

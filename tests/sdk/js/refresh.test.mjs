// Token refresh with the official centrifuge-js SDK. The node closes unrefreshed connections
// 2 s after expiry (client.expired_close_delay) and unrefreshed subscriptions 2 s after expiry
// (client.expired_sub_close_delay, checked every second), so a missing refresh shows up fast.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import {
  collect, connected, newSub, nowSec, observeUntil, randomId, startGyre, subscribed, waitFor, waitUntil,
} from './harness.mjs';

const CLOSE_DELAY_S = 2;

describe('centrifuge-js token refresh', () => {
  let node;
  before(async () => {
    node = await startGyre({
      client: {
        expired_close_delay: `${CLOSE_DELAY_S}s`,
        expired_sub_close_delay: `${CLOSE_DELAY_S}s`,
        presence_update_interval: '1s',
      },
    });
  });
  after(async () => { await node?.stop(); });

  it('stays connected past the token expiry when getToken supplies a fresh token', async () => {
    const exp = nowSec() + 3;
    let calls = 0;
    const client = node.client({
      token: node.token('frank', { exp }),
      getToken: async () => { calls += 1; return node.token('frank', { exp: nowSec() + 3600 }); },
    });
    await connected(client);
    const transitions = [];
    client.on('connecting', (ctx) => transitions.push(['connecting', ctx.code]));
    client.on('disconnected', (ctx) => transitions.push(['disconnected', ctx.code]));

    await waitUntil(() => calls >= 1, 8000, 'the SDK to call getToken at expiry');
    // Observe past expiry + close delay + margin: an unaccepted refresh would close with 3005.
    await observeUntil((exp + CLOSE_DELAY_S + 2) * 1000);
    assert.deepEqual(transitions, [], 'no disconnect or reconnect');
    assert.equal(client.state, 'connected');
    assert.ok(calls >= 1);
    assert.ok(!client.errors.some((e) => e.type === 'refresh'), `no refresh errors: ${JSON.stringify(client.errors)}`);

    // The connection still works end to end.
    const channel = 'after-refresh-' + randomId();
    const sub = newSub(client, channel);
    await subscribed(sub);
    const got = collect(sub);
    await node.publish(channel, { ok: true });
    await waitUntil(() => got.length === 1, 5000, 'a publication after refresh');
    client.disconnect();
  });

  it('closes an unrefreshed connection with 3005 after the expired close delay', async () => {
    const exp = nowSec() + 2;
    const client = node.client({
      token: node.token('gina', { exp }),
      getToken: () => new Promise(() => {}), // never answers: the SDK cannot refresh
    });
    await connected(client);
    const ctx = await waitFor(client, 'connecting', (2 + CLOSE_DELAY_S + 4) * 1000, (c) => c.code === 3005);
    assert.equal(ctx.code, 3005);
    assert.equal(ctx.reason, 'connection expired');
    client.disconnect();
  });

  it('keeps a private subscription past its token expiry when getToken supplies a fresh token', async () => {
    const channel = 'priv:refresh-' + randomId();
    const client = node.client({ token: node.token('hana') });
    await connected(client);
    let calls = 0;
    let firstExp = 0;
    const sub = newSub(client, channel, {
      getToken: async (ctx) => {
        calls += 1;
        if (calls === 1) {
          firstExp = nowSec() + 3;
          return node.subToken('hana', ctx.channel, { exp: firstExp });
        }
        return node.subToken('hana', ctx.channel, { exp: nowSec() + 3600 });
      },
    });
    await subscribed(sub);
    const transitions = [];
    sub.on('subscribing', (c) => transitions.push(['subscribing', c.code]));
    sub.on('unsubscribed', (c) => transitions.push(['unsubscribed', c.code]));

    await waitUntil(() => calls >= 2, 8000, 'the SDK to refresh the subscription token');
    await observeUntil((firstExp + CLOSE_DELAY_S + 3) * 1000);
    assert.deepEqual(transitions, [], 'subscription was not interrupted');
    assert.equal(sub.state, 'subscribed');
    assert.deepEqual(sub.errors, []);
    const got = collect(sub);
    await node.publish(channel, { still: 'subscribed' });
    await waitUntil(() => got.length === 1, 5000, 'a publication after sub refresh');
    assert.deepEqual(got[0].data, { still: 'subscribed' });
    client.disconnect();
  });

  it('unsubscribes an unrefreshed private subscription with 2501 so the SDK resubscribes', async () => {
    const channel = 'priv:expire-' + randomId();
    const client = node.client({ token: node.token('ivan') });
    await connected(client);
    let calls = 0;
    const sub = newSub(client, channel, {
      getToken: (ctx) => {
        calls += 1;
        if (calls === 1) return Promise.resolve(node.subToken('ivan', ctx.channel, { exp: nowSec() + 2 }));
        return new Promise(() => {}); // never answers afterwards
      },
    });
    await subscribed(sub);
    const ctx = await waitFor(sub, 'subscribing', (2 + CLOSE_DELAY_S + 5) * 1000, (c) => c.code === 2501);
    assert.equal(ctx.reason, 'subscription expired');
    assert.equal(client.state, 'connected', 'only the subscription is affected');
    client.disconnect();
  });
});

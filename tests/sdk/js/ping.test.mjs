// Server pings with the official centrifuge-js SDK: with a 1 s ping interval the SDK's watchdog
// (ping + maxServerPingDelay) and the server's pong timeout would both fire within seconds if
// either side misbehaved.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { connected, observeUntil, startGyre } from './harness.mjs';

describe('centrifuge-js server ping', () => {
  let node;
  before(async () => { node = await startGyre({ client: { ping_interval: '1s', pong_timeout: '500ms' } }); });
  after(async () => { await node?.stop(); });

  it('stays connected across several server pings with a tight watchdog', async () => {
    const frames = [];
    // The SDK's own WebSocket implementation, with a tap on incoming and outgoing frames.
    class TappedWebSocket extends WebSocket {
      constructor(...args) {
        super(...args);
        this.on('message', (data) => frames.push(['in', String(data), Date.now()]));
      }

      send(data, ...rest) {
        frames.push(['out', String(data), Date.now()]);
        return super.send(data, ...rest);
      }
    }
    const client = node.client({ token: node.token('pat'), maxServerPingDelay: 1000, websocket: TappedWebSocket });
    await connected(client);
    const transitions = [];
    client.on('connecting', (ctx) => transitions.push(['connecting', ctx.code, ctx.reason]));
    client.on('disconnected', (ctx) => transitions.push(['disconnected', ctx.code, ctx.reason]));
    await observeUntil(Date.now() + 5000);
    assert.deepEqual(transitions, [], 'no watchdog reconnect (2) and no server close (3012)');
    assert.equal(client.state, 'connected');

    const connectReply = frames.find(([dir, text]) => dir === 'in' && text.includes('"connect"'));
    assert.ok(connectReply, 'saw the connect reply');
    const result = JSON.parse(connectReply[1].split('\n')[0]).connect;
    assert.equal(result.ping, 1);
    assert.equal(result.pong, true);
    const pings = frames.filter(([dir, text]) => dir === 'in' && text.split('\n').includes('{}'));
    const pongs = frames.filter(([dir, text]) => dir === 'out' && text === '{}');
    assert.ok(pings.length >= 3, `expected at least 3 pings in 5 s, saw ${pings.length}`);
    assert.ok(pongs.length >= 3, `expected the SDK to pong, saw ${pongs.length}`);
    client.disconnect();
  });
});

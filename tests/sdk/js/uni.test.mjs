// The unidirectional WebSocket (uni_websocket) with nothing but a plain WebSocket (the `ws`
// package, as a page would use the browser's WebSocket): the connect request as the first
// message, bare pushes, and recovery of what was missed through the connect request's `subs`.

import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { randomId, startGyre, waitUntil } from './harness.mjs';

/** Opens a uni_websocket connection that sends `request` first; collects parsed messages. */
async function openUni(node, request) {
  const ws = new WebSocket(`ws://${node.addr}/connection/uni_websocket`);
  const messages = [];
  let closed = null;
  ws.on('message', (data) => messages.push(JSON.parse(data.toString())));
  ws.on('close', (code) => { closed = code; });
  await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
  ws.send(JSON.stringify(request));
  await waitUntil(() => messages.length >= 1 || closed !== null, 5000, 'the connect push');
  return { ws, messages, closed: () => closed };
}

describe('uni_websocket with a plain WebSocket', () => {
  let node;
  before(async () => { node = await startGyre({ uni_websocket: { enabled: true } }); });
  after(async () => { await node?.stop(); });

  it('connects with a token, receives publications, and recovers what it missed', async () => {
    const channel = 'chat:uni-' + randomId();
    const token = node.token('uni-user', { channels: [channel] });
    const first = await openUni(node, { token });
    const connect = first.messages[0].connect;
    assert.equal(typeof connect.client, 'string');
    const { epoch } = connect.subs[channel];
    assert.equal(typeof epoch, 'string', 'a history channel is positioned');

    const published = await node.publish(channel, { n: 1 });
    await waitUntil(() => first.messages.length >= 2, 5000, 'the publication');
    assert.deepEqual(first.messages[1], { channel, pub: { data: { n: 1 }, offset: published.offset } });
    first.ws.close();

    await node.publish(channel, { n: 2 });
    await node.publish(channel, { n: 3 });
    const again = await openUni(node, { token, subs: { [channel]: { recover: true, offset: 1, epoch } } });
    const sub = again.messages[0].connect.subs[channel];
    assert.equal(sub.recovered, true);
    assert.deepEqual(sub.publications.map((p) => p.data), [{ n: 2 }, { n: 3 }]);
    again.ws.close();
  });

  it('is told why when its connect request is refused', async () => {
    const refused = await openUni(node, { token: 'not-a-token' });
    await waitUntil(() => refused.closed() !== null, 5000, 'the close');
    assert.deepEqual(refused.messages, [{ disconnect: { code: 3500, reason: 'invalid token' } }]);
    assert.equal(refused.closed(), 3500);
  });
});

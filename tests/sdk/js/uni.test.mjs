// The unidirectional transports with nothing but what a page has: a plain WebSocket (the `ws`
// package, as the browser's WebSocket) for uni_websocket, and fetch for uni_http_stream and
// uni_sse. The connect request as the first message (or the request body / cf_connect), bare
// pushes, and recovery of what was missed through the connect request's `subs`.

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

/** Reads a streamed fetch body; `next()` resolves with the next message (JSON). */
function messageReader(response, separator) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  return {
    async next() {
      for (;;) {
        buffer = buffer.replace(/^[\r\n]+/, '');
        const at = buffer.indexOf(separator);
        if (at >= 0) {
          const message = buffer.slice(0, at).replace(/^data: /, '');
          buffer = buffer.slice(at + separator.length);
          return JSON.parse(message);
        }
        const { value, done } = await reader.read();
        if (done) return null;
        buffer += decoder.decode(value, { stream: true });
      }
    },
    cancel: () => reader.cancel(),
  };
}

/** The next message that is not a join or leave push (chat: forces them on every subscriber). */
async function nextNotJoin(reader) {
  for (;;) {
    const message = await reader.next();
    if (!message || (!message.join && !message.leave)) return message;
  }
}

describe('unidirectional transports without an SDK', () => {
  let node;
  before(async () => {
    node = await startGyre({ uni_websocket: { enabled: true }, uni_sse: { enabled: true }, uni_http_stream: { enabled: true } });
  });
  after(async () => { await node?.stop(); });

  it('connects with a token, receives publications, and recovers what it missed', async () => {
    const channel = 'chat:uni-' + randomId();
    const token = node.token('uni-user', { channels: [channel] });
    const first = await openUni(node, { token });
    const connect = first.messages[0].connect;
    assert.equal(typeof connect.client, 'string');
    const { epoch } = connect.subs[channel];
    assert.equal(typeof epoch, 'string', 'a history channel is positioned');

    // chat: forces join/leave pushes, which a server-side subscription gets too (its own join).
    const published = await node.publish(channel, { n: 1 });
    const pubs = () => first.messages.filter((m) => m.pub);
    await waitUntil(() => pubs().length >= 1, 5000, 'the publication');
    assert.deepEqual(pubs()[0], { channel, pub: { data: { n: 1 }, offset: published.offset } });
    first.ws.close();

    await node.publish(channel, { n: 2 });
    await node.publish(channel, { n: 3 });
    const again = await openUni(node, { token, subs: { [channel]: { recover: true, offset: 1, epoch } } });
    const sub = again.messages[0].connect.subs[channel];
    assert.equal(sub.recovered, true);
    assert.deepEqual(sub.publications.map((p) => p.data), [{ n: 2 }, { n: 3 }]);
    again.ws.close();
  });

  it('streams publications over uni_http_stream (fetch POST) and uni_sse (fetch GET with cf_connect)', async () => {
    const channel = 'chat:fetch-' + randomId();
    const token = node.token('fetch-user', { channels: [channel] });
    const streamed = await fetch(`http://${node.addr}/connection/uni_http_stream`, {
      method: 'POST',
      body: JSON.stringify({ token }),
    });
    assert.equal(streamed.status, 200);
    const lines = messageReader(streamed, '\n');
    const cfConnect = encodeURIComponent(JSON.stringify({ token }));
    const sse = await fetch(`http://${node.addr}/connection/uni_sse?cf_connect=${cfConnect}`);
    assert.equal(sse.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    const events = messageReader(sse, '\n\n');
    assert.equal(typeof (await lines.next()).connect.client, 'string');
    assert.equal(typeof (await events.next()).connect.client, 'string');

    const published = await node.publish(channel, { hello: 'fetch' });
    const expected = { channel, pub: { data: { hello: 'fetch' }, offset: published.offset } };
    assert.deepEqual(await nextNotJoin(lines), expected);
    assert.deepEqual(await nextNotJoin(events), expected);
    await lines.cancel();
    await events.cancel();
  });

  it('is told why when its connect request is refused', async () => {
    const refused = await openUni(node, { token: 'not-a-token' });
    await waitUntil(() => refused.closed() !== null, 5000, 'the close');
    assert.deepEqual(refused.messages, [{ disconnect: { code: 3500, reason: 'invalid token' } }]);
    assert.equal(refused.closed(), 3500);
  });
});

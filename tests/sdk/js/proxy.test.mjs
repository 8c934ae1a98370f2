// Backend proxies with the official centrifuge-js SDK: a real HTTP backend (node's http server,
// started before gyre so its URL goes into the config) answers gyre's proxy calls and records
// every request it gets. Covered end to end: connect without a token (user, info, data,
// server-side channels, meta), the headers a proxy passes on (WebSocket upgrade headers in
// `http_headers`, connect `headers` emulation in `emulated_headers`), connect refusals (error,
// disconnect, `http.status_to_code_transforms`, HTTP 500 → temporary 100 and a retry),
// server-side refresh (extended with new info, then expired → 3005), subscribe (allowed with
// data/info, refused 403, temporary error retried, named proxy, subscription token wins),
// sub_refresh, publish (data rewritten, refused, skip_history), RPC (default and named proxies,
// errors, timeout, 104/108), a Protobuf client through connect/subscribe/publish/RPC (and a
// `binary_encoding` proxy for non-JSON bytes), and the centrifugo_proxy_* Prometheus metrics.
// The backend's answers are functions of the request (connect `data.mode`, channel prefixes,
// RPC methods), so every test drives it through what its clients send.

import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';

import WebSocket from 'ws';

import { collect, connected, eventually, newSub, nowSec, randomId, startGyre, subscribed, waitFor, waitUntil } from './harness.mjs';

const encode = (value) => new TextEncoder().encode(JSON.stringify(value));
const decode = (bytes) => {
  assert.ok(bytes instanceof Uint8Array, `Protobuf payloads are bytes, got ${typeof bytes}`);
  return JSON.parse(new TextDecoder().decode(bytes));
};

/** A `ws` WebSocket whose upgrade request carries `headers` (as a browser's cookies would). */
function socketWithHeaders(headers) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols, { headers });
    }
  };
}

/** A `ws` WebSocket that records the close code and reason of every connection it opens. */
function closeRecordingSocket(closes) {
  return class extends WebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      this.on('close', (code, reason) => closes.push({ code, reason: reason.toString() }));
    }
  };
}

/**
 * The application backend: answers POSTs with whatever `route(request)` returns (`{httpStatus}`
 * for a bare status, else a JSON body) and records `{path, headers, body, at}` of each request.
 */
async function startBackend(route) {
  const requests = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      let body = null;
      try { body = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { /* recorded as null */ }
      const rec = { path: req.url, method: req.method, headers: req.headers, body, at: Date.now() };
      requests.push(rec);
      let out;
      try { out = await route(rec); } catch (e) { out = { httpStatus: 599, text: String(e) }; }
      if (out && out.httpStatus) {
        res.writeHead(out.httpStatus, { 'Content-Type': 'text/plain' });
        res.end(out.text || 'backend failure');
        return;
      }
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(out ?? {}));
    });
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    requests,
    /** Requests to `path` matching `pred`. */
    to(path, pred = () => true) {
      return requests.filter((r) => r.path === path && pred(r));
    },
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

// Per-test scripts the backend follows, keyed by user or channel.
// A plan entry is a function: expiry times are computed when the backend answers.
const refreshPlans = new Map(); // user -> [() => response, ...]
const subRefreshPlans = new Map(); // channel -> [() => response, ...]
const flakyConnects = new Map(); // key -> calls so far
const tempSubscribes = new Map(); // channel -> calls so far

function connectAnswer(d) {
  if (!d || typeof d !== 'object') return {};
  switch (d.mode) {
    case 'ok':
      return {
        result: {
          user: d.user,
          info: d.info,
          data: { welcome: d.user },
          channels: d.channels,
          subs: d.subs,
          meta: d.meta,
          expire_at: d.ttl ? nowSec() + d.ttl : undefined,
        },
      };
    case 'error':
      return { error: { code: d.code, message: d.message } };
    case 'disconnect':
      return { disconnect: { code: d.code, reason: d.reason } };
    case 'flaky': {
      // HTTP 500 on the first call for this key, credentials afterwards.
      const n = (flakyConnects.get(d.key) || 0) + 1;
      flakyConnects.set(d.key, n);
      if (n === 1) return { httpStatus: 500 };
      return { result: { user: d.user, data: { welcome: d.user } } };
    }
    case 'nothing':
      return {};
    case 'status':
      return { httpStatus: d.status };
    default:
      return { error: { code: 1999, message: 'unknown mode' } };
  }
}

function subscribeAnswer(b) {
  const ch = b.channel;
  if (ch.startsWith('px:deny-')) return { error: { code: 403, message: 'forbidden' } };
  if (ch.startsWith('px:empty-')) return {};
  if (ch.startsWith('px:temp-')) {
    const n = (tempSubscribes.get(ch) || 0) + 1;
    tempSubscribes.set(ch, n);
    if (n === 1) return { error: { code: 503, message: 'try again', temporary: true } };
  }
  if (ch.startsWith('px:jl-')) {
    return { result: { override: { join_leave: { value: true }, force_push_join_leave: { value: true } } } };
  }
  if (ch.startsWith('sr:')) return { result: { data: { granted: ch }, expire_at: nowSec() + 1 } };
  return { result: { data: { granted: ch, for: b.user }, info: { role: 'reader' } } };
}

function publishAnswer(b) {
  const d = b.data || {};
  switch (d.action) {
    case 'rewrite':
      return { result: { data: { text: String(d.text).toUpperCase(), by: b.user } } };
    case 'deny':
      return { error: { code: 1001, message: 'moderated' } };
    case 'skip':
      return { result: { skip_history: true } };
    default:
      return { result: {} };
  }
}

function rpcAnswer(b) {
  switch (b.method) {
    case 'echo':
      return { result: { data: { echo: b.data, user: b.user } } };
    case 'fail':
      return { error: { code: 1002, message: 'rpc refused' } };
    case 'boom':
      return { httpStatus: 500 };
    case 'slow':
      // Longer than the proxy's 1s timeout.
      return new Promise((resolve) => setTimeout(() => resolve({ result: { data: 'too late' } }), 1300));
    default:
      return { error: { code: 1003, message: 'unknown method' } };
  }
}

function route(rec) {
  const b = rec.body || {};
  switch (rec.path) {
    case '/connect': return connectAnswer(b.data);
    case '/refresh': return refreshPlans.get(b.user)?.shift()?.() ?? { result: { expired: true } };
    case '/subscribe': return subscribeAnswer(b);
    case '/publish': return publishAnswer(b);
    case '/sub_refresh': return subRefreshPlans.get(b.channel)?.shift()?.() ?? { result: { expired: true } };
    case '/rpc': return rpcAnswer(b);
    case '/bin': {
      // binary_encoding: payloads as base64 both ways; answers the bytes reversed.
      const bytes = Buffer.from(b.b64data || '', 'base64');
      return { result: { b64data: Buffer.from(bytes.reverse()).toString('base64') } };
    }
    case '/other':
      if (b.method) return { result: { data: { via: 'other', method: b.method, user: b.user } } };
      return { result: { data: { via: 'other', channel: b.channel } } };
    default: return { httpStatus: 404 };
  }
}

/** Sum of the samples of `metric` in a Prometheus text page whose labels include `labels` (null if none). */
function sample(text, metric, labels) {
  let total = null;
  for (const line of text.split('\n')) {
    if (!line.startsWith(metric + '{')) continue;
    const m = line.match(/^[^{]+\{([^}]*)\}\s+(\S+)$/);
    if (!m) continue;
    const got = Object.fromEntries([...m[1].matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) total = (total ?? 0) + Number(m[2]);
  }
  return total;
}

describe('centrifuge-js through backend proxies', () => {
  let backend;
  let node;
  before(async () => {
    backend = await startBackend(route);
    const url = backend.url;
    node = await startGyre({
      client: {
        proxy: {
          connect: {
            enabled: true,
            endpoint: `${url}/connect`,
            timeout: '1s',
            http_headers: ['cookie'],
            emulated_headers: ['authorization'],
            http: {
              status_to_code_transforms: [
                { status_code: 403, to_error: { code: 1403, message: 'forbidden by status' } },
                { status_code: 410, to_disconnect: { code: 4510, reason: 'gone' } },
              ],
            },
          },
          refresh: { enabled: true, endpoint: `${url}/refresh`, timeout: '1s' },
        },
        expired_sub_close_delay: '500ms',
      },
      prometheus: { enabled: true },
      channel: {
        proxy: {
          subscribe: { endpoint: `${url}/subscribe`, timeout: '1s' },
          publish: { endpoint: `${url}/publish`, timeout: '1s' },
          sub_refresh: { endpoint: `${url}/sub_refresh`, timeout: '1s' },
        },
        namespaces: [
          // Server-side channels of the connect result: presence shows who is connected.
          { name: 'pres', presence: true, history_size: 10, history_ttl: '60s', force_recovery: true },
          { name: 'px', subscribe_proxy_enabled: true, publish_proxy_enabled: true, history_size: 10, history_ttl: '60s' },
          { name: 'named', subscribe_proxy_enabled: true, subscribe_proxy_name: 'other' },
          { name: 'sr', subscribe_proxy_enabled: true, sub_refresh_proxy_enabled: true },
        ],
      },
      rpc: {
        proxy: {
          endpoint: `${url}/rpc`,
          timeout: '1s',
          http_headers: ['cookie'],
          emulated_headers: ['authorization'],
          include_connection_meta: true,
        },
        without_namespace: { proxy_enabled: true },
        namespaces: [
          { name: 'ns', proxy_enabled: true, proxy_name: 'other' },
          { name: 'bin', proxy_enabled: true, proxy_name: 'bin' },
          { name: 'local' },
        ],
      },
      proxies: [
        { name: 'other', endpoint: `${url}/other`, timeout: '1s' },
        { name: 'bin', endpoint: `${url}/bin`, timeout: '1s', binary_encoding: true },
      ],
    });
  });
  after(async () => {
    await node?.stop();
    await backend?.close();
  });

  /** A JSON client the connect proxy lets in as `user` (plus any connect-data fields). */
  function proxied(user, extra = {}, opts = {}) {
    return node.client({ data: { mode: 'ok', user, ...extra }, ...opts });
  }

  it('connect without a token: the proxy names the user, its data/info reach the client, its channels become server-side subscriptions', async () => {
    const user = 'u-' + randomId(4);
    const channel = 'pres:srv-' + randomId();
    const withSubs = 'pres:subs-' + randomId();
    const subs = { [withSubs]: { info: { seat: 7 }, data: { hello: 'server-side' } } };
    const client = proxied(user, { channels: [channel], subs, info: { plan: 'gold' } });
    const serverSubs = [];
    client.on('subscribed', (ctx) => serverSubs.push(ctx));
    const pubs = collect(client);
    const ctx = await connected(client);
    assert.deepEqual(ctx.data, { welcome: user }, 'connected event carries the result data');

    const reqs = backend.to('/connect', (r) => r.body.client === ctx.client);
    assert.equal(reqs.length, 1);
    assert.equal(reqs[0].method, 'POST');
    assert.match(reqs[0].headers['content-type'], /^application\/json/);
    // No user (it is what the backend decides), no channels on a first connect.
    assert.deepEqual(reqs[0].body, {
      client: ctx.client,
      transport: 'websocket',
      protocol: 'json',
      encoding: 'json',
      name: 'js',
      data: { mode: 'ok', user, channels: [channel], subs, info: { plan: 'gold' } },
    });

    await waitUntil(() => serverSubs.some((s) => s.channel === channel), 5000, 'the server-side subscription');
    // `subs` entries are server-side subscriptions too, with their own data and channel info.
    await waitUntil(() => serverSubs.some((s) => s.channel === withSubs), 5000, 'the subs subscription');
    assert.deepEqual(serverSubs.find((s) => s.channel === withSubs).data, { hello: 'server-side' });
    const subsPresence = await node.api('presence', { channel: withSubs });
    assert.deepEqual(subsPresence.presence[ctx.client].chan_info, { seat: 7 });
    const presence = await node.api('presence', { channel });
    assert.deepEqual(Object.keys(presence.presence), [ctx.client]);
    assert.equal(presence.presence[ctx.client].user, user);
    assert.deepEqual(presence.presence[ctx.client].conn_info, { plan: 'gold' });

    await node.publish(channel, { hello: 1 });
    await waitUntil(() => pubs.length >= 1, 5000, 'the publication on the server-side channel');
    assert.equal(pubs[0].channel, channel);
    assert.deepEqual(pubs[0].data, { hello: 1 });

    // A reconnect names the recoverable server-side channel in the connect request's `channels`.
    const reconnected = waitFor(client, 'connected', 5000);
    await node.api('disconnect', { user, disconnect: { code: 3010, reason: 'test reconnect' } });
    const ctx2 = await reconnected;
    const again = backend.to('/connect', (r) => r.body.client === ctx2.client);
    assert.equal(again.length, 1);
    assert.deepEqual(again[0].body.channels, [channel, withSubs].sort());
    assert.equal(again[0].body.user, undefined);
    client.disconnect();
  });

  it('passes on allowed upgrade headers (http_headers) and emulated headers (emulated_headers), and no others, also on later RPC calls', async () => {
    const user = 'h-' + randomId(4);
    const client = proxied(user, { meta: { tenant: 't1' } }, {
      websocket: socketWithHeaders({ Cookie: 'session=abc123', 'X-Secret': 'not-for-backend' }),
      headers: { Authorization: 'Bearer emulated-token', 'X-Other': 'not-listed' },
    });
    const ctx = await connected(client);
    const [req] = backend.to('/connect', (r) => r.body.client === ctx.client);
    assert.equal(req.headers.cookie, 'session=abc123');
    assert.equal(req.headers['x-secret'], undefined, 'an upgrade header not in http_headers is not forwarded');
    assert.equal(req.headers.authorization, 'Bearer emulated-token');
    assert.equal(req.headers['x-other'], undefined, 'an emulated header not in emulated_headers is not forwarded');
    assert.equal(req.body.headers, undefined, 'emulated headers are HTTP headers, not body fields');

    // The RPC proxy lists the same headers: they come with every call of this connection, and
    // include_connection_meta adds the connect result's meta.
    const res = await client.rpc('echo', { n: 1 });
    assert.deepEqual(res.data, { echo: { n: 1 }, user });
    const [rpc] = backend.to('/rpc', (r) => r.body.client === ctx.client);
    assert.equal(rpc.headers.cookie, 'session=abc123');
    assert.equal(rpc.headers.authorization, 'Bearer emulated-token');
    assert.equal(rpc.headers['x-secret'], undefined);
    assert.equal(rpc.headers['x-other'], undefined);
    assert.deepEqual(rpc.body.meta, { tenant: 't1' });

    // The subscribe proxy lists no headers: none are passed, and no meta without include_connection_meta.
    const sub = newSub(client, 'px:allow-' + randomId());
    await subscribed(sub);
    const [sreq] = backend.to('/subscribe', (r) => r.body.client === ctx.client);
    assert.equal(sreq.headers.cookie, undefined);
    assert.equal(sreq.headers.authorization, undefined);
    assert.equal(sreq.body.meta, undefined);
    client.disconnect();

    // A name only in http_headers is not taken from emulation: an emulated Cookie is dropped.
    const emu = proxied('h2-' + randomId(4), {}, { headers: { Cookie: 'emulated=1', Authorization: 'Bearer two' } });
    const ectx = await connected(emu);
    const [ereq] = backend.to('/connect', (r) => r.body.client === ectx.client);
    assert.equal(ereq.headers.cookie, undefined);
    assert.equal(ereq.headers.authorization, 'Bearer two');
    emu.disconnect();
  });

  it('connect refused by the backend: error, disconnect (reconnecting and terminal), no credentials, HTTP status transforms, HTTP 500 retried; a JWT client is not affected', async () => {
    const steady = node.client({ token: node.token('steady') });
    const steadyCtx = await connected(steady);
    const steadyEvents = [];
    steady.on('connecting', (c) => steadyEvents.push(c));
    steady.on('disconnected', (c) => steadyEvents.push(c));
    assert.equal(backend.to('/connect', (r) => r.body.client === steadyCtx.client).length, 0, 'a token connect does not ask the connect proxy');

    // error 1000 (not temporary): the SDK stops with that code.
    const refused = node.client({ data: { mode: 'error', code: 1000, message: 'who are you' } });
    const gone = waitFor(refused, 'disconnected');
    refused.connect();
    const d1 = await gone;
    assert.equal(d1.code, 1000);
    assert.equal(d1.reason, 'who are you');
    assert.equal(refused.state, 'disconnected');

    // disconnect 4000: gyre closes the WebSocket with it. While still connecting the SDK emits
    // no `connecting` event with that code (it already is connecting); it rejects the pending
    // connect with 11 "connection closed" and, 4000-4499 meaning "reconnect", asks again.
    const key4000 = randomId();
    const closes = [];
    const bounced = node.client({
      data: { mode: 'disconnect', code: 4000, reason: 'come back later', key: key4000 },
      websocket: closeRecordingSocket(closes),
    });
    bounced.connect();
    await waitUntil(() => backend.to('/connect', (r) => r.body.data?.key === key4000).length >= 2, 5000, 'a reconnect after 4000');
    bounced.disconnect();
    assert.deepEqual(closes[0], { code: 4000, reason: 'come back later' });
    assert.equal(bounced.errors[0]?.type, 'connect');
    assert.equal(bounced.errors[0]?.error.code, 11);
    assert.equal(bounced.state, 'disconnected');

    // disconnect 4501: a terminal code, the SDK stays disconnected.
    const banned = node.client({ data: { mode: 'disconnect', code: 4501, reason: 'banned' } });
    const ban = waitFor(banned, 'disconnected');
    banned.connect();
    const d2 = await ban;
    assert.equal(d2.code, 4501);
    assert.equal(d2.reason, 'banned');

    // A result-less answer gives no credentials: anonymous connections are not allowed (3501).
    const nobody = node.client({ data: { mode: 'nothing' } });
    const none = waitFor(nobody, 'disconnected');
    nobody.connect();
    assert.equal((await none).code, 3501);

    // http.status_to_code_transforms: HTTP 403 becomes an error, HTTP 410 a disconnect.
    const s403 = node.client({ data: { mode: 'status', status: 403 } });
    const g403 = waitFor(s403, 'disconnected');
    s403.connect();
    const d403 = await g403;
    assert.equal(d403.code, 1403);
    assert.equal(d403.reason, 'forbidden by status');
    const s410 = node.client({ data: { mode: 'status', status: 410 } });
    const g410 = waitFor(s410, 'disconnected');
    s410.connect();
    const d410 = await g410;
    assert.equal(d410.code, 4510);
    assert.equal(d410.reason, 'gone');

    // HTTP 500 is a failed call: error 100, temporary; the SDK retries and the retry succeeds.
    const key = randomId();
    const user = 'f-' + randomId(4);
    const flaky = node.client({ data: { mode: 'flaky', key, user } });
    const fctx = await connected(flaky, 8000);
    assert.deepEqual(fctx.data, { welcome: user });
    const connectErrors = flaky.errors.filter((e) => e.type === 'connect');
    assert.equal(connectErrors.length, 1, JSON.stringify(flaky.errors));
    assert.equal(connectErrors[0].error.code, 100);
    assert.equal(connectErrors[0].error.temporary, true);
    assert.equal(backend.to('/connect', (r) => r.body.data?.key === key).length, 2, 'the backend was asked again');
    flaky.disconnect();

    // Meanwhile the token client stayed connected and still works.
    assert.equal(steady.state, 'connected');
    assert.deepEqual(steadyEvents, []);
    const r = await steady.rpc('echo', 'still here');
    assert.deepEqual(r.data, { echo: 'still here', user: 'steady' });
    steady.disconnect();
  });

  it('refresh proxy: called at expire_at, a later expire_at keeps the connection, expired closes it with 3005', async () => {
    const user = 'r-' + randomId(4);
    refreshPlans.set(user, [
      () => ({ result: { expire_at: nowSec() + 2, info: { refreshed: true } } }),
      () => ({ result: { expired: true } }),
    ]);
    const client = proxied(user, { ttl: 2, info: { refreshed: false } });
    const ctx = await connected(client);
    const reconnecting = [];
    client.on('connecting', (c) => reconnecting.push({ ...c, at: Date.now() }));
    const expired = waitFor(client, 'connecting', 8000, (c) => c.code === 3005);

    const refreshes = () => backend.to('/refresh', (r) => r.body.user === user);
    await waitUntil(() => refreshes().length >= 1, 5000, 'the first refresh call');
    assert.deepEqual(refreshes()[0].body, { client: ctx.client, transport: 'websocket', protocol: 'json', encoding: 'json', user });
    // The refresh result's info replaces the connection info: the client's next publications carry it.
    const channel = 'px:ref-' + randomId();
    await eventually(async () => {
      await client.publish(channel, { n: 1 });
      const h = await node.api('history', { channel, limit: 1, reverse: true });
      return h.publications[0]?.info?.conn_info?.refreshed === true;
    }, 2000, 'the refreshed connection info on a publication');
    await waitUntil(() => refreshes().length >= 2, 6000, 'the second refresh call');
    // The connection outlived its first expire_at: the extension was taken.
    const secondAt = refreshes()[1].at;
    assert.deepEqual(reconnecting.filter((c) => c.at <= secondAt), [], 'no disconnect before the second refresh');
    assert.ok(refreshes()[1].at - refreshes()[0].at >= 900, 'the second refresh waits for the extended expire_at');
    assert.equal(refreshes()[1].body.client, ctx.client);

    const e = await expired;
    assert.equal(e.code, 3005);
    assert.equal(e.reason, 'connection expired');
    client.disconnect();
  });

  it('subscribe proxy: allowed with data and info, refused with 403, temporary error retried, empty answer allowed, named proxy, token wins', async () => {
    const user = 's-' + randomId(4);
    const client = proxied(user);
    const ctx = await connected(client);

    const allowCh = 'px:allow-' + randomId();
    const allowed = newSub(client, allowCh, { data: { want: 'in' } });
    const sctx = await subscribed(allowed);
    assert.deepEqual(sctx.data, { granted: allowCh, for: user });
    const [sreq] = backend.to('/subscribe', (r) => r.body.channel === allowCh);
    assert.deepEqual(sreq.body, { client: ctx.client, transport: 'websocket', protocol: 'json', encoding: 'json', user, channel: allowCh, data: { want: 'in' } });
    // The result's info is the channel info of the subscriber's publications.
    const got = collect(allowed);
    await allowed.publish({ text: 'mine' });
    await waitUntil(() => got.length >= 1, 5000, 'own publication');
    assert.equal(got[0].info.user, user);
    assert.deepEqual(got[0].info.chanInfo, { role: 'reader' });

    // A non-temporary error: the SDK unsubscribes with the backend's code and message.
    const denyCh = 'px:deny-' + randomId();
    const denied = newSub(client, denyCh);
    const unsub = waitFor(denied, 'unsubscribed');
    denied.subscribe();
    const u = await unsub;
    assert.equal(u.code, 403);
    assert.equal(u.reason, 'forbidden');
    assert.equal(denied.state, 'unsubscribed');
    await assert.rejects(denied.ready(), (e) => e.message === 'unsubscribed');

    // A temporary error: an `error` event, then the SDK subscribes again and gets in.
    const tempCh = 'px:temp-' + randomId();
    const temp = newSub(client, tempCh);
    await subscribed(temp, 8000);
    assert.equal(temp.errors.length, 1, JSON.stringify(temp.errors));
    assert.equal(temp.errors[0].error.code, 503);
    assert.equal(temp.errors[0].error.temporary, true);
    assert.equal(backend.to('/subscribe', (r) => r.body.channel === tempCh).length, 2);

    // `{}` allows with the namespace's options.
    const emptyCh = 'px:empty-' + randomId();
    const empty = newSub(client, emptyCh);
    const ectx = await subscribed(empty);
    assert.equal(ectx.data, undefined);

    // subscribe_proxy_name: "other" goes to the named proxy's endpoint only.
    const namedCh = 'named:' + randomId();
    const named = newSub(client, namedCh);
    const nctx = await subscribed(named);
    assert.deepEqual(nctx.data, { via: 'other', channel: namedCh });
    assert.equal(backend.to('/other', (r) => r.body.channel === namedCh).length, 1);
    assert.equal(backend.to('/subscribe', (r) => r.body.channel === namedCh).length, 0);

    // A subscription token wins over the proxy: the backend is not asked.
    const tokCh = 'px:tok-' + randomId();
    const tokSub = newSub(client, tokCh, { token: node.subToken(user, tokCh) });
    await subscribed(tokSub);
    assert.equal(backend.to('/subscribe', (r) => r.body.channel === tokCh).length, 0);
    client.disconnect();
  });

  // The result's `override.join_leave` is the subscription's own: its join is announced although
  // the namespace has join_leave off.
  it('subscribe proxy override: join_leave and force_push_join_leave switched on for one subscription', async () => {
    const client = proxied('jl-' + randomId(4));
    await connected(client);
    const jlCh = 'px:jl-' + randomId();
    const jl = newSub(client, jlCh);
    await subscribed(jl);
    const joins = collect(jl, 'join');
    const other = proxied('jl2-' + randomId(4));
    const octx = await connected(other);
    await subscribed(newSub(other, jlCh));
    // Its own join may come first; the second subscriber's must come.
    await waitUntil(() => joins.some((j) => j.info.client === octx.client), 3000, 'the join of the second subscriber');
    other.disconnect();
    client.disconnect();
  });

  it('sub_refresh proxy: an expiring subscription is extended, then expired (2501, the SDK subscribes again)', async () => {
    const user = 'sr-' + randomId(4);
    const channel = 'sr:' + randomId();
    subRefreshPlans.set(channel, [() => ({ result: { expire_at: nowSec() + 2 } }), () => ({ result: { expired: true } })]);
    const client = proxied(user);
    const ctx = await connected(client);
    const sub = newSub(client, channel);
    const resubscribing = waitFor(sub, 'subscribing', 8000, (c) => c.code === 2501);
    await subscribed(sub);
    const calls = () => backend.to('/sub_refresh', (r) => r.body.channel === channel);
    await waitUntil(() => calls().length >= 1, 5000, 'the first sub_refresh call');
    assert.deepEqual(calls()[0].body, { client: ctx.client, transport: 'websocket', protocol: 'json', encoding: 'json', user, channel });
    assert.equal(sub.state, 'subscribed');
    await waitUntil(() => calls().length >= 2, 6000, 'the second sub_refresh call');
    assert.ok(calls()[1].at - calls()[0].at >= 900, 'the second call waits for the extended expire_at');
    const s = await resubscribing;
    assert.equal(s.code, 2501);
    // The SDK subscribes again: the subscribe proxy is asked a second time.
    await waitUntil(() => backend.to('/subscribe', (r) => r.body.channel === channel).length >= 2, 5000, 'the resubscribe');
    client.disconnect();
  });

  it('publish proxy: rewritten data reaches subscribers, a refusal rejects the publish, skip_history keeps it out of history', async () => {
    const channel = 'px:pub-' + randomId();
    const alice = 'a-' + randomId(4);
    const bob = 'b-' + randomId(4);
    const ca = proxied(alice);
    const cb = proxied(bob);
    const actx = await connected(ca);
    await connected(cb);
    const sa = newSub(ca, channel);
    const sb = newSub(cb, channel);
    await subscribed(sa);
    await subscribed(sb);
    const got = collect(sb);

    await sa.publish({ text: 'hello', action: 'rewrite' });
    await waitUntil(() => got.length >= 1, 5000, 'the rewritten publication');
    assert.deepEqual(got[0].data, { text: 'HELLO', by: alice });
    assert.equal(got[0].info.user, alice);
    const [preq] = backend.to('/publish', (r) => r.body.channel === channel);
    assert.deepEqual(preq.body, { client: actx.client, transport: 'websocket', protocol: 'json', encoding: 'json', user: alice, channel, data: { text: 'hello', action: 'rewrite' } });

    await assert.rejects(sa.publish({ text: 'bad', action: 'deny' }), (e) => {
      assert.equal(e.code, 1001);
      assert.equal(e.message, 'moderated');
      return true;
    });
    await sa.publish({ text: 'ephemeral', action: 'skip' });
    await ca.publish(channel, { text: 'last', action: 'rewrite' }); // client.publish: no subscription needed
    await waitUntil(() => got.length >= 3, 5000, 'the later publications');
    assert.deepEqual(got.map((p) => p.data), [
      { text: 'HELLO', by: alice },
      { text: 'ephemeral', action: 'skip' },
      { text: 'LAST', by: alice },
    ], 'the refused one was not published');
    const history = await node.api('history', { channel, limit: 10 });
    assert.deepEqual(history.publications.map((p) => p.data), [{ text: 'HELLO', by: alice }, { text: 'LAST', by: alice }]);
    ca.disconnect();
    cb.disconnect();
  });

  it('rpc proxy: data from the backend, a named proxy per namespace, backend errors, timeout, 104 and 108', async () => {
    const user = 'rpc-' + randomId(4);
    const client = proxied(user);
    const ctx = await connected(client);
    const res = await client.rpc('echo', { q: [1, 2, 3] });
    assert.deepEqual(res.data, { echo: { q: [1, 2, 3] }, user });
    const [req] = backend.to('/rpc', (r) => r.body.client === ctx.client);
    assert.deepEqual(req.body, { client: ctx.client, transport: 'websocket', protocol: 'json', encoding: 'json', user, method: 'echo', data: { q: [1, 2, 3] } });

    const named = await client.rpc('ns:x', { a: 1 });
    assert.deepEqual(named.data, { via: 'other', method: 'ns:x', user });
    assert.equal(backend.to('/rpc', (r) => r.body.method === 'ns:x').length, 0);

    const rejectsWith = (p, code, message) => assert.rejects(p, (e) => {
      assert.equal(e.code, code);
      if (message) assert.equal(e.message, message);
      return true;
    });
    await rejectsWith(client.rpc('fail', {}), 1002, 'rpc refused');
    await rejectsWith(client.rpc('boom', {}), 100);
    const slowStart = Date.now();
    await rejectsWith(client.rpc('slow', {}), 100); // the proxy's timeout
    assert.ok(Date.now() - slowStart < 1300, 'gyre answers at its timeout, not when the backend does');
    await rejectsWith(client.rpc('nope:x', {}), 104);
    await rejectsWith(client.rpc('local:x', {}), 108);
    assert.equal(client.state, 'connected');
    client.disconnect();
  });

  it('protobuf client: connect, subscribe, publish and rpc through the proxies as JSON', async () => {
    const user = 'pb-' + randomId(4);
    const client = node.protobufClient({ data: encode({ mode: 'ok', user }) });
    const ctx = await connected(client);
    assert.deepEqual(decode(ctx.data), { welcome: user });
    const [creq] = backend.to('/connect', (r) => r.body.client === ctx.client);
    assert.equal(creq.body.protocol, 'protobuf');
    assert.equal(creq.body.encoding, 'json');
    assert.deepEqual(creq.body.data, { mode: 'ok', user });

    const res = await client.rpc('echo', encode({ n: 2 }));
    assert.deepEqual(decode(res.data), { echo: { n: 2 }, user });

    const channel = 'px:pb-' + randomId();
    const sub = newSub(client, channel);
    const sctx = await subscribed(sub);
    assert.deepEqual(decode(sctx.data), { granted: channel, for: user });
    const got = collect(sub);
    await sub.publish(encode({ text: 'bytes', action: 'rewrite' }));
    await waitUntil(() => got.length >= 1, 5000, 'the rewritten publication');
    assert.deepEqual(decode(got[0].data), { text: 'BYTES', by: user });
    const [preq] = backend.to('/publish', (r) => r.body.channel === channel);
    assert.equal(preq.body.protocol, 'protobuf');
    assert.deepEqual(preq.body.data, { text: 'bytes', action: 'rewrite' });

    // Bytes that are not JSON: a binary_encoding proxy gets them as b64data, its b64data answer
    // comes back as bytes; a JSON proxy cannot carry them (error 100).
    const raw = new Uint8Array([0, 1, 2, 255]);
    const bin = await client.rpc('bin:reverse', raw);
    assert.deepEqual([...bin.data], [255, 2, 1, 0]);
    const [breq] = backend.to('/bin', (r) => r.body.client === ctx.client);
    assert.deepEqual(breq.body, { client: ctx.client, transport: 'websocket', protocol: 'protobuf', encoding: 'binary', user, method: 'bin:reverse', b64data: 'AAEC/w==' });
    await assert.rejects(client.rpc('echo', raw), (e) => e.code === 100);
    client.disconnect();
  });

  it('exports centrifugo_proxy_duration_seconds_histogram and counts failed calls in centrifugo_proxy_errors', async () => {
    const metrics = async () => {
      const res = await fetch(`http://${node.addr}/metrics`, { signal: AbortSignal.timeout(5000) });
      assert.equal(res.status, 200);
      return res.text();
    };
    const before = await metrics();
    const labels = (type, name = 'default') => ({ protocol: 'http', type, name });
    const errors = (text, type) => sample(text, 'centrifugo_proxy_errors', labels(type)) ?? 0;
    const connectErrorsBefore = errors(before, 'connect');
    const rpcErrorsBefore = errors(before, 'rpc');

    // One failed connect call (HTTP 500), then a successful one on the SDK's retry.
    const user = 'm-' + randomId(4);
    const client = node.client({ data: { mode: 'flaky', key: randomId(), user } });
    await connected(client, 8000);
    await assert.rejects(client.rpc('boom', {}), (e) => e.code === 100);
    await client.rpc('echo', 1); // a successful call is not an error
    await client.rpc('ns:m', 1);

    const text = await metrics();
    const connectCount = sample(text, 'centrifugo_proxy_duration_seconds_histogram_count', labels('connect'));
    assert.ok(connectCount >= 2, `both connect calls observed, got ${connectCount}`);
    assert.ok(sample(text, 'centrifugo_proxy_duration_seconds_histogram_bucket', { ...labels('connect'), le: '+Inf' }) >= 2);
    assert.match(text, /# TYPE centrifugo_proxy_duration_seconds_histogram histogram/);
    assert.equal(errors(text, 'connect'), connectErrorsBefore + 1, 'the HTTP 500 connect counted once');
    assert.equal(errors(text, 'rpc'), rpcErrorsBefore + 1, 'the HTTP 500 RPC counted once');
    assert.ok(sample(text, 'centrifugo_proxy_duration_seconds_histogram_count', labels('rpc', 'other')) >= 1, 'the named proxy has its own series');
    client.disconnect();
  });
});

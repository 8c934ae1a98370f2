// Shared harness for the centrifuge-js suites: starts the real gyre binary on a free port,
// signs JWTs with node's crypto, creates SDK clients and waits on real events with bounded
// timeouts. Nothing here sleeps as a readiness check.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');
export const GYRE_BIN = process.env.GYRE_BIN || path.join(REPO_ROOT, 'target', 'debug', 'gyre');

/** Default bounded wait for one real event. */
export const WAIT_MS = 5000;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 5000;

export function randomId(n = 8) {
  return crypto.randomBytes(n).toString('hex');
}

/** Base config: chat (presence, history, recovery, join/leave) and priv (token needed). */
export function baseConfig(secret, apiKey) {
  return {
    client: {
      token: { hmac_secret_key: secret },
      allowed_origins: ['*'],
      expired_close_delay: '2s',
    },
    http_api: { key: apiKey },
    shutdown: { timeout: '3s' },
    channel: {
      without_namespace: { allow_subscribe_for_client: true, allow_publish_for_subscriber: true },
      namespaces: [
        {
          name: 'chat',
          presence: true,
          join_leave: true,
          force_push_join_leave: true,
          history_size: 100,
          history_ttl: '300s',
          force_recovery: true,
          allow_subscribe_for_client: true,
          allow_publish_for_subscriber: true,
          allow_presence_for_subscriber: true,
          allow_history_for_subscriber: true,
        },
        { name: 'priv', presence: true, history_size: 10, history_ttl: '60s' },
        {
          name: 'state',
          history_size: 10,
          history_ttl: '300s',
          force_recovery: true,
          force_recovery_mode: 'cache',
          auto_cache_recover: true,
          allow_subscribe_for_client: true,
        },
        {
          name: 'delta',
          history_size: 100,
          history_ttl: '300s',
          force_recovery: true,
          allowed_delta_types: ['fossil'],
          delta_publish: true,
          allow_subscribe_for_client: true,
          allow_publish_for_subscriber: true,
          allow_history_for_subscriber: true,
        },
      ],
    },
  };
}

function deepMerge(target, patch) {
  for (const [k, v] of Object.entries(patch || {})) {
    if (v && typeof v === 'object' && !Array.isArray(v) && target[k] && typeof target[k] === 'object' && !Array.isArray(target[k])) {
      deepMerge(target[k], v);
    } else {
      target[k] = v;
    }
  }
  return target;
}

const running = new Set();
process.on('exit', () => {
  for (const child of running) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
});

/**
 * Starts gyre with the base config deep-merged with `patch`. Resolves once the process has
 * logged its `listening ... addr=127.0.0.1:PORT` line (bounded by 15 s).
 */
export async function startGyre(patch = {}) {
  if (!fs.existsSync(GYRE_BIN)) {
    throw new Error(`gyre binary not found at ${GYRE_BIN}: run cargo build or set GYRE_BIN`);
  }
  // A patch may set the secret and API key (cluster nodes share them); tokens and API calls
  // use whatever the merged config holds.
  const config = deepMerge(baseConfig('secret-' + randomId(16), 'key-' + randomId()), patch);
  const secret = config.client.token.hmac_secret_key;
  const apiKey = config.http_api.key;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-js-'));
  const configPath = path.join(dir, 'config.json');
  fs.writeFileSync(configPath, JSON.stringify(config, null, 2));

  const child = spawn(GYRE_BIN, ['serve', '--config', configPath, '--port', '0', '--address', '127.0.0.1'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NO_COLOR: '1' },
  });
  running.add(child);
  let log = '';
  let exited = null;
  const onExit = new Promise((resolve) => child.on('exit', (code, signal) => { exited = { code, signal }; running.delete(child); resolve(exited); }));

  const addr = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`gyre did not log a listening line within ${START_TIMEOUT_MS} ms; output:\n${log}`));
    }, START_TIMEOUT_MS);
    const onData = (chunk) => {
      log += chunk.toString();
      // eslint-disable-next-line no-control-regex
      const m = log.replace(/\x1b\[[0-9;]*m/g, '').match(/listening.*addr=(127\.0\.0\.1:\d+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    onExit.then((e) => { clearTimeout(timer); reject(new Error(`gyre exited early (${JSON.stringify(e)}); output:\n${log}`)); });
  }).catch(async (e) => {
    child.kill('SIGKILL');
    throw e;
  });

  const node = {
    addr,
    pid: child.pid,
    secret,
    apiKey,
    config,
    configPath,
    wsUrl: `ws://${addr}/connection/websocket`,
    apiUrl: `http://${addr}/api`,
    log: () => log,
    clients: new Set(),
    /** Connection JWT for `sub` (HS256 with this node's secret). */
    token(sub, extra = {}) {
      return signJwt({ sub, ...extra }, secret);
    },
    /** Subscription JWT for `sub` and `channel`. */
    subToken(sub, channel, extra = {}) {
      return signJwt({ sub, channel, ...extra }, secret);
    },
    /** Calls the server HTTP API, returns the parsed body. Throws on non-200. */
    async api(method, body, key = apiKey) {
      const res = await fetch(`${node.apiUrl}/${method}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-API-Key': key },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      const text = await res.text();
      if (res.status !== 200) throw new Error(`API ${method} -> HTTP ${res.status}: ${text}`);
      const parsed = JSON.parse(text);
      if (parsed.error) throw new Error(`API ${method} -> error ${JSON.stringify(parsed.error)}`);
      return parsed.result;
    },
    /**
     * Calls the server HTTP API without judging the answer: resolves with the HTTP status and
     * the raw body text (e.g. to see an in-body `{"error":...}` during a NATS outage).
     */
    async apiRaw(method, body, key = apiKey) {
      const res = await fetch(`${node.apiUrl}/${method}`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json', 'X-API-Key': key },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(WAIT_MS),
      });
      return { status: res.status, text: await res.text() };
    },
    /** `null` while the gyre process runs, then its `{code, signal}`. */
    exited: () => exited,
    /** Publishes via the HTTP API. */
    publish(channel, data) {
      return node.api('publish', { channel, data });
    },
    /**
     * New centrifuge-js client against this node. Every client gets an `error` listener that
     * records errors (the SDK's bundled EventEmitter throws on an unhandled `error` event).
     */
    client(opts = {}) {
      return node.track(new Centrifuge(node.wsUrl, { websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000, ...opts }));
    },
    /** The same, with the SDK's Protobuf build (subprotocol `centrifuge-protobuf`). */
    protobufClient(opts = {}) {
      return node.track(new ProtobufCentrifuge(node.wsUrl, { websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000, ...opts }));
    },
    track(c) {
      c.errors = [];
      c.on('error', (ctx) => c.errors.push(ctx));
      node.clients.add(c);
      return c;
    },
    /**
     * Kills gyre with SIGKILL (no graceful shutdown: no close frames, no leaving notice to the
     * cluster) and waits, at most 5 s, for the process to exit. Resolves with `{code, signal}`.
     */
    async kill() {
      if (!exited) child.kill('SIGKILL');
      let timer;
      const result = await Promise.race([
        onExit,
        new Promise((_, reject) => { timer = setTimeout(() => reject(new Error(`gyre did not exit within ${STOP_TIMEOUT_MS} ms of SIGKILL`)), STOP_TIMEOUT_MS); }),
      ]).finally(() => clearTimeout(timer));
      return result;
    },
    /** Disconnects all clients, stops gyre (SIGTERM, then SIGKILL after 5 s). */
    async stop() {
      for (const c of node.clients) {
        try { c.disconnect(); } catch { /* ignore */ }
      }
      node.clients.clear();
      if (exited) {
        fs.rmSync(dir, { recursive: true, force: true });
        return exited;
      }
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      const result = await onExit;
      clearTimeout(timer);
      fs.rmSync(dir, { recursive: true, force: true });
      return result;
    },
  };
  return node;
}

function b64url(input) {
  return Buffer.from(input).toString('base64').replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** HS256 JWT with node's crypto. */
export function signJwt(claims, secret) {
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify(claims));
  const sig = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64')
    .replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
  return `${header}.${payload}.${sig}`;
}

export function nowSec() {
  return Math.floor(Date.now() / 1000);
}

/**
 * Waits for `event` on `emitter` (optionally the first one matching `predicate`), at most `ms`.
 * Resolves with the event context.
 */
export function waitFor(emitter, event, ms = WAIT_MS, predicate = () => true) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.removeListener(event, handler);
      reject(new Error(`timed out after ${ms} ms waiting for '${event}'`));
    }, ms);
    function handler(ctx) {
      let ok;
      try { ok = predicate(ctx); } catch (e) { ok = false; }
      if (!ok) return;
      clearTimeout(timer);
      emitter.removeListener(event, handler);
      resolve(ctx);
    }
    emitter.on(event, handler);
  });
}

/**
 * Waits until `check()` returns a truthy value (re-checked on every `emitter` event listed,
 * and every 20 ms as a fallback), at most `ms`. Resolves with that value.
 */
export function waitUntil(check, ms = WAIT_MS, what = 'condition') {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + ms;
    const tick = () => {
      let v;
      try { v = check(); } catch { v = undefined; }
      if (v) return resolve(v);
      if (Date.now() > deadline) return reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/**
 * Like waitUntil for an async check (e.g. an API or SDK call): re-runs it every 50 ms until it
 * returns a truthy value, at most `ms`. The last error or value is reported on timeout.
 */
export async function eventually(check, ms = WAIT_MS, what = 'condition') {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await check();
      if (v) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what} (last: ${last})`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Resolves at the wall-clock time `deadlineMs`. Used only as an observation window for a
 * "nothing bad happens until then" assertion (e.g. no disconnect past a token's expiry),
 * never as a readiness check.
 */
export function observeUntil(deadlineMs) {
  const ms = Math.max(0, deadlineMs - Date.now());
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * New subscription on `client` with an `error` listener that records errors (the SDK's
 * EventEmitter throws on an unhandled `error` event).
 */
export function newSub(client, channel, opts = {}) {
  const sub = client.newSubscription(channel, opts);
  sub.errors = [];
  sub.on('error', (ctx) => sub.errors.push(ctx));
  return sub;
}

/** Subscribes and waits for the `subscribed` event. */
export async function subscribed(sub, ms = WAIT_MS) {
  const p = waitFor(sub, 'subscribed', ms);
  sub.subscribe();
  return p;
}

/** Connects and waits for the `connected` event. */
export async function connected(client, ms = WAIT_MS) {
  const p = waitFor(client, 'connected', ms);
  client.connect();
  return p;
}

/** Records every publication received by `sub` into an array (data only unless full=true). */
export function collect(sub, event = 'publication') {
  const got = [];
  sub.on(event, (ctx) => got.push(ctx));
  return got;
}

// ---------------------------------------------------------------- cluster mode (NATS)

export const NATS_SERVER_BIN = process.env.NATS_SERVER_BIN || 'nats-server';
const NATS_START_TIMEOUT_MS = 10000;

/**
 * `GYRE_CLUSTER_NODES=N` grows every test cluster to N nodes: a test that starts k < N nodes on
 * a nats-server (declared with `startNats({ nodes: k })`) gets N - k bystanders, full gyre nodes
 * started with the config patch of the test's first node on that server, named `bystander-1`,
 * ... They take part in heartbeats, surveys, user actions and JetStream history like any node,
 * reconnect when NATS restarts, and stop when the server's `stop()` is called. Tests count
 * them through `nats.clusterNames(...)`.
 */
const CLUSTER_NODES = wantedClusterNodes();
/** Bystanders by the URL of their nats-server (the same across its restarts). */
const clusters = new Map();

function wantedClusterNodes() {
  const text = process.env.GYRE_CLUSTER_NODES || '0';
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw new Error(`GYRE_CLUSTER_NODES is not a node count: ${text}`);
  return n;
}

/**
 * The bystanders of a server for a test that starts `testNodes` nodes on it (not started yet);
 * none for a server whose test did not say (e.g. the browser tests, whose screenshots list nodes).
 */
function newCluster(url, testNodes) {
  const count = testNodes === undefined ? 0 : Math.max(0, CLUSTER_NODES - testNodes);
  return { url, count, starting: null, nodes: [] };
}

function bystanderNames(cluster) {
  return Array.from({ length: cluster.count }, (_, i) => `bystander-${i + 1}`);
}

/** Starts the cluster's bystanders once, with the config patch of the test's first node. */
function startBystanders(cluster, patch) {
  if (!cluster || cluster.count === 0) return Promise.resolve();
  cluster.starting ??= (async () => {
    const starting = bystanderNames(cluster).map((name) => startGyre(clusterPatch(cluster.url, name, structuredClone(patch))));
    const results = await Promise.allSettled(starting);
    cluster.nodes = results.filter((r) => r.status === 'fulfilled').map((r) => r.value);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  })();
  return cluster.starting;
}

/** Stops the cluster's bystanders (SIGTERM: they leave the cluster); never throws. */
async function stopBystanders(cluster) {
  await cluster.starting?.catch(() => { /* the ones that started are in cluster.nodes */ });
  await Promise.allSettled(cluster.nodes.map((n) => n.stop()));
  cluster.nodes = [];
}

/**
 * Starts a nats-server with JetStream on 127.0.0.1 (a free port, or `opts.port`), storing in
 * `opts.dir` (a fresh temp dir by default), for a test that starts `opts.nodes` gyre nodes on
 * it (how many bystanders to add depends on it). Resolves once the server has written its ports
 * file (it does so when its listener is ready), bounded by 10 s. Returns `{url, port, dir,
 * clusterNames(), stop(), restart(), kill()}`: `kill()` kills the server (SIGKILL: clients see
 * the connection drop) and waits for it to exit; `restart()` starts a new one on the same port
 * and store dir and resolves with its handle; `stop()` stops the bystanders, kills the server
 * and removes the temp dir. The processes are killed when node exits too, and `stop()` is safe
 * to call twice.
 */
export async function startNats(opts = {}) {
  const dir = opts.dir || fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-js-nats-'));
  const ownsDir = opts.ownsDir ?? !opts.dir;
  const args = ['-a', '127.0.0.1', '-p', String(opts.port ?? -1), '-js', '--ports_file_dir', dir, '-sd', path.join(dir, 'js')];
  // `opts.monitor`: the HTTP monitoring endpoint too (`monitorUrl`, e.g. for /jsz API counts).
  if (opts.monitor) args.push('-m', '-1');
  const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  let log = '';
  child.stdout.on('data', (c) => { log += c.toString(); });
  child.stderr.on('data', (c) => { log += c.toString(); });
  let exited = null;
  const onExit = new Promise((resolve) => child.on('exit', (code, signal) => { exited = { code, signal }; running.delete(child); resolve(exited); }));
  let spawnError = null;
  child.on('error', (e) => { spawnError = e; });

  const portsFile = () => path.join(dir, `nats-server_${child.pid}.ports`);
  let url;
  let monitorUrl;
  try {
    url = await new Promise((resolve, reject) => {
      const deadline = Date.now() + NATS_START_TIMEOUT_MS;
      const tick = () => {
        if (spawnError) {
          return reject(new Error(`cannot run ${NATS_SERVER_BIN} (${spawnError.message}); install nats-server (tests/run.sh does) or set NATS_SERVER_BIN`));
        }
        if (exited) return reject(new Error(`nats-server exited early (${JSON.stringify(exited)}); output:\n${log}`));
        try {
          const parsed = JSON.parse(fs.readFileSync(portsFile(), 'utf8'));
          const u = parsed?.nats?.[0];
          monitorUrl = parsed?.monitoring?.[0];
          if (opts.monitor && typeof monitorUrl !== 'string') throw new Error('no monitoring port yet');
          if (typeof u === 'string' && /^nats:\/\/127\.0\.0\.1:\d+$/.test(u)) return resolve(u);
        } catch { /* not written yet (or half written) */ }
        if (Date.now() > deadline) {
          return reject(new Error(`nats-server wrote no ports file within ${NATS_START_TIMEOUT_MS} ms; output:\n${log}`));
        }
        setTimeout(tick, 20);
      };
      tick();
    });
  } catch (e) {
    child.kill('SIGKILL');
    if (ownsDir) fs.rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const port = Number(url.split(':').pop());
  const cluster = opts.cluster ?? newCluster(url, opts.nodes);
  clusters.set(url, cluster);

  const nats = {
    url,
    port,
    dir,
    monitorUrl,
    log: () => log,
    /** The sorted names `info` lists while the test's nodes `names` run (bystanders included). */
    clusterNames(...names) {
      return [...names, ...bystanderNames(cluster)].sort();
    },
    /** Kills the server and waits (bounded) for it to exit; removes its ports file. */
    async kill() {
      if (!exited) {
        child.kill('SIGKILL');
        let timer;
        await Promise.race([onExit, new Promise((r) => { timer = setTimeout(r, STOP_TIMEOUT_MS); })]);
        clearTimeout(timer); // a pending timer would keep the test process alive for 5 s
      }
      fs.rmSync(portsFile(), { force: true });
    },
    /** Starts a new server on the same port and store dir (after `kill()`); bystanders stay, and so does monitoring. */
    async restart() {
      await nats.kill();
      return startNats({ port, dir, ownsDir, cluster, monitor: opts.monitor });
    },
    /** Stops the bystanders, kills the server and removes its temp dir (if this call created it). */
    async stop() {
      await stopBystanders(cluster);
      clusters.delete(url);
      await nats.kill();
      if (ownsDir) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  return nats;
}

/**
 * Starts one gyre node in cluster mode on `natsUrl`, named `name`, with the base config
 * deep-merged with `patch` (pass a shared `client.token.hmac_secret_key` and `http_api.key` to
 * use one token and one API key on every node, as in a real deployment). The first node on a
 * server started by `startNats` brings up that server's bystanders too (see CLUSTER_NODES).
 */
export async function startClusterNode(natsUrl, name, patch = {}) {
  const [node] = await Promise.all([
    startGyre(clusterPatch(natsUrl, name, patch)),
    startBystanders(clusters.get(natsUrl), patch),
  ]);
  return node;
}

function clusterPatch(natsUrl, name, patch) {
  return deepMerge({ broker: { enabled: true, type: 'nats', nats: { url: natsUrl } }, node: { name } }, patch);
}

/** A secret and API key shared by the nodes of one test cluster, as a config patch. */
export function sharedKeys() {
  return { client: { token: { hmac_secret_key: 'secret-' + randomId(16) } }, http_api: { key: 'key-' + randomId() } };
}

/** Names of the nodes that `node`'s API `info` lists, sorted. */
export async function nodeNames(node) {
  const info = await node.api('info', {});
  return info.nodes.map((n) => n.name).sort();
}

/**
 * A TCP proxy on 127.0.0.1:0 that forwards every new client connection to the currently
 * selected backend (`host:port`). Connections already open stay with the backend they were
 * opened to; when either side closes or fails, the other side is closed too (as a load balancer
 * does). `routed` lists the backend chosen for each accepted connection, in order. `cut()` and
 * `restore()` make a partition.
 */
export async function startProxy(backend) {
  let current = backend;
  let cutOff = false;
  const sockets = new Set();
  const routed = [];
  const server = net.createServer((downstream) => {
    if (cutOff) {
      downstream.destroy();
      return;
    }
    const target = current;
    routed.push(target);
    const i = target.lastIndexOf(':');
    const upstream = net.connect({ host: target.slice(0, i), port: Number(target.slice(i + 1)) });
    for (const s of [downstream, upstream]) {
      sockets.add(s);
      s.on('error', () => { downstream.destroy(); upstream.destroy(); });
      s.on('close', () => { sockets.delete(s); downstream.destroy(); upstream.destroy(); });
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address();
  return {
    port,
    wsUrl: `ws://127.0.0.1:${port}/connection/websocket`,
    routed,
    /** New connections go to `addr` from now on. */
    setBackend(addr) { current = addr; },
    /** A partition: resets every proxied connection and refuses new ones until `restore()`. */
    cut() {
      cutOff = true;
      for (const s of sockets) s.destroy();
      sockets.clear();
    },
    /** Ends the partition: new connections are forwarded again. */
    restore() { cutOff = false; },
    /** Stops listening and closes every proxied connection; safe to call twice. */
    async close() {
      for (const s of sockets) s.destroy();
      sockets.clear();
      if (!server.listening) return;
      await new Promise((resolve) => server.close(() => resolve()));
    },
  };
}

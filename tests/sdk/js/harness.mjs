// Shared harness for the centrifuge-js suites: starts the real gyre binary on a free port,
// signs JWTs with node's crypto, creates SDK clients and waits on real events with bounded
// timeouts. Nothing here sleeps as a readiness check.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { Centrifuge } from 'centrifuge';
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
  const secret = 'secret-' + randomId(16);
  const apiKey = 'key-' + randomId();
  const config = deepMerge(baseConfig(secret, apiKey), patch);
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
    /** Publishes via the HTTP API. */
    publish(channel, data) {
      return node.api('publish', { channel, data });
    },
    /**
     * New centrifuge-js client against this node. Every client gets an `error` listener that
     * records errors (the SDK's bundled EventEmitter throws on an unhandled `error` event).
     */
    client(opts = {}) {
      const c = new Centrifuge(node.wsUrl, { websocket: WebSocket, minReconnectDelay: 100, maxReconnectDelay: 1000, ...opts });
      c.errors = [];
      c.on('error', (ctx) => c.errors.push(ctx));
      node.clients.add(c);
      return c;
    },
    /** Disconnects all clients, stops gyre (SIGTERM, then SIGKILL after 5 s). */
    async stop() {
      for (const c of node.clients) {
        try { c.disconnect(); } catch { /* ignore */ }
      }
      node.clients.clear();
      if (exited) return exited;
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

// The admin API the node serves next to this page: /admin/init, /admin/auth, /admin/api
// (server API commands in the legacy body format) and /admin/tail (a channel's live stream).
// URLs are relative to the page, so any admin.handler_prefix works.

const TOKEN_KEY = 'gyre-admin-token';

export class ApiError extends Error {
  constructor(message: string, readonly status = 200, readonly code?: number) {
    super(message);
  }
}

let onUnauthorized: () => void = () => {};
export function setUnauthorizedHandler(f: () => void): void {
  onUnauthorized = f;
}

export function token(): string {
  return sessionStorage.getItem(TOKEN_KEY) || '';
}
export function setToken(t: string): void {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

function url(path: string): string {
  return new URL(path, document.baseURI).toString();
}

function headers(extra: Record<string, string> = {}): Record<string, string> {
  const t = token();
  return t ? { ...extra, Authorization: `token ${t}` } : extra;
}

export interface Init {
  authenticated: boolean;
  edition: string;
  insecure: boolean;
}

export async function init(): Promise<Init> {
  const res = await fetch(url('admin/init'), { method: 'POST', headers: headers() });
  if (!res.ok) throw new ApiError(`admin/init answered HTTP ${res.status}`, res.status);
  return res.json();
}

/** Trades the password for a token (kept in sessionStorage). */
export async function login(password: string): Promise<void> {
  const res = await fetch(url('admin/auth'), {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ password }).toString(),
  });
  if (res.status === 400) throw new ApiError('Wrong password.', 400);
  if (res.status === 429) throw new ApiError('Too many failed attempts from your address: wait a minute, then try again.', 429);
  if (!res.ok) throw new ApiError(`Login failed: the node answered HTTP ${res.status}.`, res.status);
  const body = await res.json();
  if (!body || typeof body.token !== 'string') throw new ApiError('Login failed: no token in the answer.');
  setToken(body.token);
}

let nextId = 1;

/** One command, raw: the HTTP status and the body text as the node sent it. */
export async function raw(method: string, params: unknown): Promise<{ status: number; text: string }> {
  const body = JSON.stringify({ id: nextId++, method, params });
  const res = await fetch(url('admin/api'), { method: 'POST', headers: headers({ 'Content-Type': 'application/json' }), body });
  const text = await res.text();
  if (res.status === 401) onUnauthorized();
  return { status: res.status, text };
}

/** One command: its result, or an ApiError with the node's error code and message. */
export async function call<T = any>(method: string, params: unknown = {}): Promise<T> {
  const { status, text } = await raw(method, params);
  if (status === 401) throw new ApiError('Not logged in (or the session expired).', 401);
  if (status !== 200) throw new ApiError(`HTTP ${status}: ${text.trim() || 'no body'}`, status);
  let reply: any;
  try {
    reply = JSON.parse(text.split('\n')[0]);
  } catch {
    throw new ApiError(`Unreadable answer: ${text.slice(0, 200)}`);
  }
  if (reply.error) throw new ApiError(`${reply.error.message || 'error'} (code ${reply.error.code})`, 200, reply.error.code);
  return (reply.result ?? {}) as T;
}

/**
 * Streams a channel's pushes (JSON lines) until `signal` aborts. Calls `onLine` with each parsed
 * line; resolves when the stream ends, rejects on an HTTP error.
 */
export async function tail(channel: string, signal: AbortSignal, onLine: (line: any) => void): Promise<void> {
  const res = await fetch(url('admin/tail'), {
    method: 'POST',
    headers: headers({ 'Content-Type': 'application/json' }),
    body: JSON.stringify({ channel }),
    signal,
  });
  if (res.status === 401) {
    onUnauthorized();
    throw new ApiError('Not logged in (or the session expired).', 401);
  }
  if (!res.ok || !res.body) throw new ApiError(`Tail refused: HTTP ${res.status} ${(await res.text()).trim()}`, res.status);
  const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += value;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, i).trim();
      buf = buf.slice(i + 1);
      if (!line) continue;
      try {
        onLine(JSON.parse(line));
      } catch {
        onLine({ unparsed: line });
      }
    }
  }
}

export const METHODS = [
  'publish', 'broadcast', 'subscribe', 'unsubscribe', 'disconnect', 'refresh', 'presence',
  'presence_stats', 'history', 'history_remove', 'channels', 'info', 'rpc',
] as const;

/** A starting params object per method, for the console. */
export const TEMPLATES: Record<string, unknown> = {
  publish: { channel: 'chat:index', data: { text: 'hello' } },
  broadcast: { channels: ['chat:a', 'chat:b'], data: { text: 'hello' } },
  subscribe: { user: '42', channel: 'chat:index' },
  unsubscribe: { user: '42', channel: 'chat:index' },
  disconnect: { user: '42', disconnect: { code: 4000, reason: 'disconnected by admin' } },
  refresh: { user: '42', expired: false },
  presence: { channel: 'chat:index' },
  presence_stats: { channel: 'chat:index' },
  history: { channel: 'chat:index', limit: 10, reverse: true },
  history_remove: { channel: 'chat:index' },
  channels: { pattern: '*' },
  info: {},
  rpc: { method: 'ping', params: {} },
};

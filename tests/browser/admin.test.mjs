// The admin web UI in a real browser: Debian's chromium driven by playwright-core, against a real
// 3-node gyre cluster (broker.type nats, on a nats-server started here), with real centrifuge-js
// clients. Logs in (a wrong password refused, repeated failures throttled), sees the three nodes,
// publishes from the UI to an SDK subscriber on another node, sees that client in presence,
// live-tails a channel while the server API publishes, disconnects the user from the UI, and
// checks that markup in channel names, user IDs and payloads is shown as text. Saves a
// screenshot of each page to docs/img/admin-*.png (the pictures in docs/admin.md and README.md).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';

import { chromium } from 'playwright-core';

import {
  REPO_ROOT, collect, connected, eventually, newSub, nodeNames, randomId, sharedKeys, startClusterNode,
  startNats, subscribed, waitFor, waitUntil,
} from '../sdk/js/harness.mjs';

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
// The pictures are refreshed in docs/img only when asked (ADMIN_UI_SCREENSHOTS=1), so a test run
// leaves the working tree as it was; otherwise they go to a temporary folder.
const IMG_DIR = process.env.ADMIN_UI_SCREENSHOTS
  ? path.join(REPO_ROOT, 'docs', 'img')
  : fs.mkdtempSync(path.join(os.tmpdir(), 'admin-ui-'));
/** Bound for cluster-wide conditions that ride on heartbeats (every 3 s). */
const CLUSTER_WAIT_MS = 12000;
/** Bound for something to show in the page. */
const UI_MS = 8000;
const XSS = '<img src=x onerror="window.__xss=1">';
/** The same without spaces, which client channel names may not hold. */
const XSS_NAME = '<img/src=x/onerror=window.__xss=2>';

async function stopAll(nodes, nats) {
  await Promise.allSettled(nodes.filter(Boolean).map((n) => n.stop()));
  await nats?.stop();
}

describe('admin web UI on a 3-node cluster', () => {
  const password = 'pw-' + randomId();
  let nats;
  let a;
  let b;
  let c;
  let browser;
  let page;
  let base;
  const pageErrors = [];

  async function shot(name) {
    fs.mkdirSync(IMG_DIR, { recursive: true });
    await page.screenshot({ path: path.join(IMG_DIR, `admin-${name}.png`) });
  }

  async function go(route) {
    await page.click(`nav a[data-route="${route}"]`);
    await page.waitForSelector(`nav a[data-route="${route}"][aria-current="page"]`, { timeout: UI_MS });
  }

  before(async () => {
    // No `nodes`: never grown by GYRE_CLUSTER_NODES, bystanders would show in the screenshots
    // of docs/admin.md (the cluster suite covers five nodes).
    nats = await startNats();
    const keys = sharedKeys();
    const admin = { admin: { enabled: true, password, secret: 'admin-secret-' + randomId(16) } };
    const patch = { ...keys, ...admin };
    a = await startClusterNode(nats.url, 'node-a', patch);
    b = await startClusterNode(nats.url, 'node-b', patch);
    // Node c serves the UI under a prefix (the page's URLs are relative to it).
    c = await startClusterNode(nats.url, 'node-c', { ...keys, admin: { ...admin.admin, handler_prefix: '/ops' } });
    await eventually(async () => (await nodeNames(a)).join() === 'node-a,node-b,node-c', CLUSTER_WAIT_MS, 'node a to list the three nodes');
    base = `http://${a.addr}/`;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    const context = await browser.newContext({ viewport: { width: 1366, height: 820 }, deviceScaleFactor: 1 });
    page = await context.newPage();
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('dialog', (d) => { pageErrors.push(`dialog: ${d.message()}`); d.dismiss(); });
  });

  afterEach(async (t) => {
    if (process.env.ADMIN_UI_DEBUG) await page?.screenshot({ path: `/tmp/admin-ui-${t.name.slice(0, 20).replace(/\W+/g, '_')}.png` });
  });

  after(async () => {
    await browser?.close().catch(() => {});
    await stopAll([a, b, c], nats);
  });

  it('refuses a wrong password, then logs in with the right one', async () => {
    await page.goto(base);
    const pw = page.getByLabel('Password');
    await pw.waitFor({ timeout: UI_MS });
    await pw.fill('not-the-password');
    await pw.press('Enter');
    await page.locator('.login .status.error', { hasText: 'Wrong password.' }).waitFor({ timeout: UI_MS });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('gyre-admin-token')), null);
    await shot('login');

    await pw.fill(password);
    await pw.press('Enter');
    await page.waitForSelector('nav a[data-route="nodes"][aria-current="page"]', { timeout: UI_MS });
    const token = await page.evaluate(() => sessionStorage.getItem('gyre-admin-token'));
    assert.ok(token && token.length > 20, 'a token in sessionStorage');

    // The token is kept for the session: a reload stays logged in.
    await page.reload();
    await page.waitForSelector('nav a[data-route="nodes"][aria-current="page"]', { timeout: UI_MS });
  });

  it('says when failed logins are throttled (429), under a handler_prefix', async () => {
    const other = await browser.newPage();
    try {
      await other.goto(`http://${c.addr}/ops`);
      assert.equal(new URL(other.url()).pathname, '/ops/', 'redirected to the prefix with its slash');
      const pw = other.getByLabel('Password');
      await pw.waitFor({ timeout: UI_MS });
      for (let i = 0; i < 5; i++) {
        await pw.fill('wrong-' + i);
        await pw.press('Enter');
        await other.locator('.login .status.error', { hasText: 'Wrong password.' }).waitFor({ timeout: UI_MS });
        await other.locator('.login .status').evaluate((el) => { el.textContent = ''; });
      }
      await pw.fill(password);
      await pw.press('Enter');
      await other.locator('.login .status.error', { hasText: 'Too many failed attempts' }).waitFor({ timeout: UI_MS });
    } finally {
      await other.close();
    }
  });

  it('shows the three nodes and their total, refreshing by itself', async () => {
    await go('nodes');
    const rows = page.locator('table[aria-label="Nodes"] tbody tr');
    await waitUntilAsync(async () => (await rows.count()) === 3, 'three node rows');
    assert.deepEqual(await page.locator('table[aria-label="Nodes"] tbody th').allTextContents(), ['node-a', 'node-b', 'node-c']);
    await page.locator('table[aria-label="Nodes"] tfoot', { hasText: 'Total (3 nodes)' }).waitFor({ timeout: UI_MS });

    // A client connecting on node b shows in its row without any click (auto refresh).
    const watcher = b.client({ token: b.token('watcher') });
    await connected(watcher);
    await waitUntilAsync(async () => (await page.locator('tr[data-node="node-b"] td').nth(2).textContent()) === '1', 'node b to show one client', 10000);

    // More clients, a node at a time, one refresh apart: the counts and charts follow.
    const updated = page.locator('#nodes-h + .muted');
    const crowd = [watcher];
    for (const [node, n] of [[c, 3], [a, 2], [b, 2]]) {
      for (let i = 0; i < n; i++) {
        const client = node.client({ token: node.token(`user-${crowd.length % 5}`) });
        await connected(client);
        await subscribed(newSub(client, `chat:lobby-${i % 2}`));
        crowd.push(client);
      }
      const before = await updated.textContent();
      await waitUntilAsync(async () => (await updated.textContent()) !== before, 'a refresh', 8000);
    }
    await page.locator('table[aria-label="Nodes"] tfoot td').nth(2).filter({ hasText: /^8$/ }).waitFor({ timeout: UI_MS });
    assert.equal(await page.locator('tr[data-node="node-c"] td').nth(2).textContent(), '3');
    await shot('nodes');
    for (const client of crowd) client.disconnect();
  });

  it('publishes from the UI to an SDK subscriber on another node, and refuses invalid JSON', async () => {
    const channel = 'chat:ui-' + randomId();
    const alice = b.client({ token: b.token('alice') });
    await connected(alice);
    const sub = newSub(alice, channel);
    const got = collect(sub);
    await subscribed(sub);

    await go('actions');
    const form = page.locator('form#publish');
    await form.getByLabel('Channel').fill(channel);
    await form.getByLabel('Data (JSON)').fill('{"text": "hello", }');
    await form.getByRole('button', { name: 'Publish' }).click();
    await form.locator('.status.error', { hasText: 'Data is not valid JSON' }).waitFor({ timeout: UI_MS });
    assert.equal(got.length, 0);

    await form.getByLabel('Data (JSON)').fill('{"text": "hello from the admin UI"}');
    await form.getByLabel('Data (JSON)').press('Control+Enter');
    await form.locator('.status.ok', { hasText: 'Done: publish' }).waitFor({ timeout: UI_MS });
    await waitUntil(() => got.length >= 1, 5000, 'the publication on the SDK client of node b');
    assert.deepEqual(got[0].data, { text: 'hello from the admin UI' });

    // Broadcast reaches it too.
    const bc = page.locator('form#broadcast');
    await bc.getByLabel(/Channels/).fill(`${channel}, chat:other-${randomId()}`);
    await bc.getByLabel('Data (JSON)').fill('{"n": 2}');
    await bc.getByRole('button', { name: 'Broadcast' }).click();
    await bc.locator('.status.ok').waitFor({ timeout: UI_MS });
    await waitUntil(() => got.length >= 2, 5000, 'the broadcast on the SDK client');
    assert.deepEqual(got[1].data, { n: 2 });
    await shot('actions');
    alice.disconnect();
  });

  it('lists channels with a filter and shows a client of another node in presence, with history', async () => {
    const tag = randomId();
    const channel = `chat:room-${tag}`;
    const bob = b.client({ token: b.token('bob-' + tag) });
    await connected(bob);
    const sub = newSub(bob, channel);
    await subscribed(sub);
    await c.publish(channel, { seq: 1 });
    await c.publish(channel, { seq: 2 });

    await go('channels');
    await page.getByLabel('Filter (glob: * and ?)').fill(`chat:room-${tag.slice(0, 4)}*`);
    await page.getByLabel('Filter (glob: * and ?)').press('Enter');
    const link = page.locator('table[aria-label="Channels"] button', { hasText: channel });
    await waitUntilAsync(async () => {
      if (await link.count()) return true;
      await page.getByRole('button', { name: 'Filter' }).click();
      return false;
    }, 'the channel in the list', CLUSTER_WAIT_MS);
    await link.click();
    await page.locator('.presence-stats', { hasText: '1 client, 1 user' }).waitFor({ timeout: UI_MS });
    await page.locator('table[aria-label="Presence"] td', { hasText: 'bob-' + tag }).waitFor({ timeout: UI_MS });
    await page.locator('.history-pos', { hasText: 'offset 2' }).waitFor({ timeout: UI_MS });
    assert.deepEqual(await page.locator('table[aria-label="History"] tbody td:first-child').allTextContents(), ['2', '1']);
    bob.disconnect();
  });

  it('live-tails a channel while the server API publishes on other nodes', async () => {
    const channel = 'chat:tail-' + randomId();
    await go('channels');
    await page.getByLabel('Open a channel by name').fill(channel);
    await page.getByLabel('Open a channel by name').press('Enter');
    await page.locator('h2.channel-name', { hasText: channel }).waitFor({ timeout: UI_MS });
    await page.getByRole('button', { name: 'Start live tail' }).click();
    await page.locator('.detail .status.ok', { hasText: 'Live' }).waitFor({ timeout: UI_MS });

    await c.publish(channel, { tick: 1 });
    await b.publish(channel, { tick: 2 });
    const items = page.locator('ol.tail li');
    await waitUntilAsync(async () => (await items.count()) >= 2, 'two tailed publications');
    const texts = await items.allTextContents();
    assert.ok(texts.some((t) => t.includes('{"tick":1}')), texts.join('\n'));
    assert.ok(texts.some((t) => t.includes('{"tick":2}')), texts.join('\n'));

    // A subscriber on a third node, then one more publication.
    const carol = c.client({ token: c.token('carol') });
    await connected(carol);
    await subscribed(newSub(carol, channel));
    await c.publish(channel, { tick: 3, note: 'after carol subscribed' });
    await page.locator('ol.tail li', { hasText: '"tick":3' }).waitFor({ timeout: UI_MS });
    await page.getByRole('button', { name: 'Reload' }).click();
    await page.locator('table[aria-label="Presence"] td', { hasText: 'carol' }).waitFor({ timeout: UI_MS });
    await page.getByLabel('Filter (glob: * and ?)').fill('chat:*');
    await page.getByLabel('Filter (glob: * and ?)').press('Enter');
    await page.locator('table[aria-label="Channels"] tr.selected', { hasText: channel }).waitFor({ timeout: UI_MS });
    await shot('channels');

    await page.getByRole('button', { name: 'Stop live tail' }).click();
    await page.locator('.detail .status.info', { hasText: 'Stopped' }).waitFor({ timeout: UI_MS });
    carol.disconnect();
  });

  it('disconnects a user on another node from the UI, and the SDK client gets the code', async () => {
    const user = 'dave-' + randomId();
    const dave = c.client({ token: c.token(user) });
    await connected(dave);

    await go('actions');
    // Server-side subscribe and unsubscribe reach the user's node too.
    const channel = 'chat:srv-' + randomId();
    const joined = waitFor(dave, 'subscribed', 8000, (ctx) => ctx.channel === channel);
    const subForm = page.locator('form#subscribe');
    await subForm.getByLabel('User').fill(user);
    await subForm.getByLabel('Channel').fill(channel);
    await subForm.getByLabel('Channel').press('Enter');
    await subForm.locator('.status.ok', { hasText: 'Done: subscribe' }).waitFor({ timeout: UI_MS });
    await joined;
    const left = waitFor(dave, 'unsubscribed', 8000, (ctx) => ctx.channel === channel);
    const unsubForm = page.locator('form#unsubscribe');
    await unsubForm.getByLabel('User').fill(user);
    await unsubForm.getByLabel('Channel').fill(channel);
    await unsubForm.getByLabel('Channel').press('Enter');
    await unsubForm.locator('.status.ok', { hasText: 'Done: unsubscribe' }).waitFor({ timeout: UI_MS });
    await left;

    // history_remove empties the channel's history on every node (it lives in JetStream).
    await b.publish(channel, { keep: false });
    const hr = page.locator('form#history-remove');
    await hr.getByLabel('Channel').fill(channel);
    await hr.getByLabel('Channel').press('Enter');
    await hr.locator('.status.ok', { hasText: 'Done: history_remove' }).waitFor({ timeout: UI_MS });
    await eventually(async () => ((await b.api('history', { channel, limit: 10 })).publications || []).length === 0, 5000, 'the history to be empty');

    const gone = waitFor(dave, 'disconnected', 8000);
    const form = page.locator('form#disconnect');
    await form.getByLabel('User').fill(user);
    await form.getByLabel('Code').fill('2000');
    await form.getByLabel('Reason').fill('bye from admin');
    await form.getByLabel('Reason').press('Enter');
    await form.locator('.status.error', { hasText: 'from 3000 to 4999' }).waitFor({ timeout: UI_MS });
    await form.getByLabel('Code').fill('4503');
    await form.getByLabel('Reason').press('Enter');
    await form.locator('.status.ok', { hasText: 'Done: disconnect' }).waitFor({ timeout: UI_MS });
    const ctx = await gone;
    assert.equal(ctx.code, 4503);
    assert.equal(ctx.reason, 'bye from admin');
  });

  it('runs any method from the API console and shows the raw answer', async () => {
    await go('console');
    await page.getByLabel('Method').selectOption('info');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.status.ok', { hasText: 'HTTP 200' }).waitFor({ timeout: UI_MS });
    const out = await page.locator('pre.output').textContent();
    for (const n of ['node-a', 'node-b', 'node-c']) assert.ok(out.includes(`"name": "${n}"`), out);
    await shot('console');

    await page.getByLabel('Method').selectOption('presence');
    await page.getByLabel('Params (JSON object)').fill('{"channel": "nope:x"}');
    await page.getByLabel('Params (JSON object)').press('Control+Enter');
    await page.locator('.status.error', { hasText: 'HTTP 200' }).waitFor({ timeout: UI_MS });
    assert.match(await page.locator('pre.output').textContent(), /"error"/);

    await page.getByLabel('Params (JSON object)').fill('[1, 2');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.status.error', { hasText: 'Params is not valid JSON' }).waitFor({ timeout: UI_MS });
    await page.getByLabel('Method').selectOption('history');
    await page.getByRole('button', { name: 'Send' }).click();
    await page.locator('.status.ok', { hasText: 'HTTP 200' }).waitFor({ timeout: UI_MS });
  });

  it('shows markup in channel names, user IDs and payloads as text', async () => {
    const channel = `chat:${XSS_NAME}`;
    const eve = b.client({ token: b.token(`eve${XSS}`) });
    await connected(eve);
    const sub = newSub(eve, channel);
    await subscribed(sub);
    await a.publish(channel, { html: XSS });

    await go('channels');
    await page.getByLabel('Filter (glob: * and ?)').fill('chat:<img/*');
    await page.getByLabel('Filter (glob: * and ?)').press('Enter');
    const link = page.locator('table[aria-label="Channels"] button', { hasText: channel });
    await waitUntilAsync(async () => {
      if (await link.count()) return true;
      await page.getByRole('button', { name: 'Filter' }).click();
      return false;
    }, 'the channel with markup in the list', CLUSTER_WAIT_MS);
    await link.click();
    await page.locator('h2.channel-name', { hasText: channel }).waitFor({ timeout: UI_MS });
    await page.locator('table[aria-label="Presence"] td', { hasText: `eve${XSS}` }).waitFor({ timeout: UI_MS });
    await page.locator('table[aria-label="History"] td', { hasText: JSON.stringify({ html: XSS }) }).waitFor({ timeout: UI_MS });
    await page.getByRole('button', { name: 'Start live tail' }).click();
    await page.locator('.detail .status.ok', { hasText: 'Live' }).waitFor({ timeout: UI_MS });
    await c.publish(channel, { again: XSS });
    await page.locator('ol.tail li', { hasText: JSON.stringify({ again: XSS }) }).waitFor({ timeout: UI_MS });

    assert.equal(await page.locator('main img').count(), 0, 'no <img> element made from the data');
    assert.equal(await page.evaluate(() => window.__xss), undefined, 'no handler ran');
    await page.getByRole('button', { name: 'Stop live tail' }).click();
    eve.disconnect();
  });

  it('sends a forged or foreign token back to the login page', async () => {
    for (const forged of ['forged-token', await adminToken(b)]) {
      await page.evaluate((t) => sessionStorage.setItem('gyre-admin-token', t), forged);
      await page.reload();
      if (forged === 'forged-token') {
        await page.getByLabel('Password').waitFor({ timeout: UI_MS });
        assert.equal(await page.evaluate(() => sessionStorage.getItem('gyre-admin-token')), null);
      } else {
        // A token from another node with the same admin.secret is valid here too.
        await page.waitForSelector('nav a[aria-current="page"]', { timeout: UI_MS });
      }
    }
  });

  it('logs out, and the API refuses the page afterwards', async () => {
    await page.getByRole('button', { name: 'Log out' }).click();
    await page.getByLabel('Password').waitFor({ timeout: UI_MS });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('gyre-admin-token')), null);
    const status = await page.evaluate(async () => (await fetch('admin/api', { method: 'POST', body: '{"method":"info","params":{}}' })).status);
    assert.equal(status, 401);
    assert.deepEqual(pageErrors, [], 'no script errors or dialogs in the page');
  });
});

/** A token from `node`'s /admin/auth (a node whose login throttle has not been tripped). */
async function adminToken(node) {
  const prefix = node.config.admin.handler_prefix || '';
  const res = await fetch(`http://${node.addr}${prefix}/admin/auth`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ password: node.config.admin.password }).toString(),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()).token;
}

/** waitUntil for an async check (re-run every 100 ms), at most `ms`. */
async function waitUntilAsync(check, what, ms = UI_MS) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last: ${last})` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

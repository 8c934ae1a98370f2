// centrifuge-js over wss:// against a node serving http_server.tls, with a CA and a certificate
// made by this test (openssl CLI): JSON and Protobuf clients, publications from the HTTPS API,
// presence, a publication larger than many TLS records, and a client that does not trust the CA.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';

import { Centrifuge } from 'centrifuge';
import { Centrifuge as ProtobufCentrifuge } from 'centrifuge/build/protobuf';
import WebSocket from 'ws';

import { connected, eventually, newSub, startGyre, subscribed, waitFor, WAIT_MS } from './harness.mjs';

/** A CA and a certificate for localhost and 127.0.0.1 signed by it, valid for a day. */
function makeCertificates(dir) {
  const file = (name) => path.join(dir, name);
  const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl('req', '-x509', ...ec, '-keyout', file('ca.key'), '-out', file('ca.pem'), '-days', '1', '-subj', '/CN=gyre test CA');
  openssl('req', ...ec, '-keyout', file('node.key'), '-out', file('node.csr'), '-subj', '/CN=localhost');
  fs.writeFileSync(file('ext.cnf'), 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n');
  openssl('x509', '-req', '-in', file('node.csr'), '-CA', file('ca.pem'), '-CAkey', file('ca.key'), '-CAcreateserial',
    '-out', file('node.pem'), '-days', '1', '-extfile', file('ext.cnf'));
  return { ca: fs.readFileSync(file('ca.pem')), cert: file('node.pem'), key: file('node.key') };
}

/** The `ws` WebSocket, trusting `ca` (centrifuge-js constructs it with the URL and subprotocol). */
function trusting(ca) {
  return class extends WebSocket {
    constructor(address, protocols) {
      super(address, protocols, { ca });
    }
  };
}

/** POST /api/<method> over https, trusting `ca`. */
function httpsApi(node, ca, method, body) {
  return new Promise((resolve, reject) => {
    const request = https.request(`https://localhost:${node.port}/api/${method}`, {
      method: 'POST', ca, headers: { 'Content-Type': 'application/json', 'X-API-Key': node.apiKey },
      timeout: WAIT_MS,
    }, (response) => {
      let text = '';
      response.on('data', (chunk) => { text += chunk; });
      response.on('end', () => {
        if (response.statusCode !== 200) return reject(new Error(`HTTP ${response.statusCode}: ${text}`));
        const answer = JSON.parse(text);
        return answer.error ? reject(new Error(JSON.stringify(answer.error))) : resolve(answer.result);
      });
    });
    request.on('error', reject);
    request.on('timeout', () => request.destroy(new Error(`API ${method} timed out`)));
    request.end(JSON.stringify(body));
  });
}

describe('centrifuge-js over wss', () => {
  let node;
  let pki;
  let dir;
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gyre-tls-'));
    pki = makeCertificates(dir);
    node = await startGyre({ http_server: { tls: { enabled: true, cert_pem: pki.cert, key_pem: pki.key } } });
    node.port = node.addr.split(':')[1];
    node.wssUrl = `wss://localhost:${node.port}/connection/websocket`;
  });
  after(async () => {
    await node?.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  const options = () => ({ websocket: trusting(pki.ca), minReconnectDelay: 100, maxReconnectDelay: 1000 });

  it('connects, subscribes, is in presence and receives what the https API publishes', async () => {
    const client = node.track(new Centrifuge(node.wssUrl, { ...options(), token: node.token('alice') }));
    const ctx = await connected(client);
    assert.equal(ctx.transport, 'websocket');
    const sub = newSub(client, 'chat:tls');
    await subscribed(sub);
    const presence = await httpsApi(node, pki.ca, 'presence', { channel: 'chat:tls' });
    assert.deepEqual(Object.values(presence.presence).map((info) => info.user), ['alice']);
    const got = waitFor(sub, 'publication');
    await httpsApi(node, pki.ca, 'publish', { channel: 'chat:tls', data: { over: 'tls' } });
    assert.deepEqual((await got).data, { over: 'tls' });
    const published = await sub.publish({ from: 'client' });
    assert.equal(typeof published, 'object');
    client.disconnect();
  });

  it('gives a Protobuf client a publication of many TLS records intact', async () => {
    const client = node.track(new ProtobufCentrifuge(node.wssUrl, { ...options(), token: node.token('bob') }));
    await connected(client);
    const sub = newSub(client, 'news-tls');
    await subscribed(sub);
    const big = 'z'.repeat(200_000);
    const got = waitFor(sub, 'publication');
    await httpsApi(node, pki.ca, 'publish', { channel: 'news-tls', data: { big } });
    // The Protobuf SDK hands data over as the bytes sent.
    const received = JSON.parse(Buffer.from((await got).data).toString('utf8')).big;
    assert.equal(received.length, big.length);
    assert.ok(received === big, 'the publication arrives intact');
    client.disconnect();
  });

  it('does not connect a client that does not trust the certificate, and keeps serving others', async () => {
    const distrusting = node.track(new Centrifuge(node.wssUrl, { websocket: WebSocket, token: node.token('eve'), minReconnectDelay: 100, maxReconnectDelay: 1000 }));
    const failed = waitFor(distrusting, 'error');
    distrusting.connect();
    const error = await failed;
    assert.equal(error.type, 'transport');
    assert.notEqual(distrusting.state, 'connected');
    distrusting.disconnect();

    const client = node.track(new Centrifuge(node.wssUrl, { ...options(), token: node.token('carol') }));
    await connected(client);
    // Earlier tests' clients leave asynchronously; only carol stays.
    await eventually(async () => (await httpsApi(node, pki.ca, 'info', {})).nodes[0].num_clients === 1, WAIT_MS, 'one client');
    client.disconnect();
  });
});

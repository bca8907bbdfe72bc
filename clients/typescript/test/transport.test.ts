// Transport failures are errors that say what happened: no node, no answer.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TallyClient, TallyRpcError, TallyTransportError } from '../src/index.js';

test('an unreachable node is a transport error naming the URL', async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((r) => server.close(() => r()));
  const client = new TallyClient(`http://127.0.0.1:${port}`);
  await assert.rejects(client.status(), (e: unknown) => e instanceof TallyTransportError && e.message.includes(`127.0.0.1:${port}`));
});

test('a node that never answers times out after the request bound', async () => {
  const server = createServer(() => { /* never answers */ });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const client = new TallyClient(`http://127.0.0.1:${port}`, { requestTimeoutMs: 300 });
    await assert.rejects(client.status(), /no answer within 300 ms/);
  } finally {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a JSON-RPC error becomes a TallyRpcError with code and kind', async () => {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: 4, message: 'nonce 3 is already used', data: { kind: 'bad_nonce', detail: null } } }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  try {
    const client = new TallyClient(`http://127.0.0.1:${port}`);
    await assert.rejects(client.submitTx('0x00'), (e: unknown) =>
      e instanceof TallyRpcError && e.code === 4 && e.kind === 'bad_nonce' && e.method === 'ledger_submitTx' && /nonce 3/.test(e.message));
  } finally {
    await new Promise<void>((r) => server.close(() => r()));
  }
});

test('a WebSocket call without a WebSocket in the runtime says how to provide one', async () => {
  const client = new TallyClient('ws://127.0.0.1:1');
  if ((globalThis as { WebSocket?: unknown }).WebSocket) return; // Node 22+ has one
  await assert.rejects(client.status(), /no WebSocket: pass one/);
});

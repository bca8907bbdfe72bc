// Subscriptions over a scripted WebSocket: notifications reach the
// subscriber whatever type of id the server chose, and leaving the loop
// unsubscribes with that same id.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TallyClient, TallyTransportError, type WebSocketLike } from '../src/index.js';

/** A subscription test that hangs is a failure, not a stuck run. */
const TEST_TIMEOUT_MS = 5_000;

/**
 * A WebSocket that answers `ledger_subscribeNewHeads` with the id written
 * as the raw JSON text `idJson`, then (with `decoy`) sends a notification
 * for the same characters as the other JSON type, which must not match, then
 * heads 1, 2 and 3. It records the params of every unsubscribe.
 */
function scriptedSocket(idJson: string, decoy: boolean, unsubscribed: unknown[][]) {
  return class implements WebSocketLike {
    readyState = 0;
    onopen: ((ev: unknown) => void) | null = null;
    onmessage: ((ev: { data: unknown }) => void) | null = null;
    onerror: ((ev: unknown) => void) | null = null;
    onclose: ((ev: { code?: number; reason?: string }) => void) | null = null;

    constructor(_url: string) {
      setImmediate(() => {
        this.readyState = 1;
        this.onopen?.({});
      });
    }

    send(data: string): void {
      const req = JSON.parse(data) as { id: number; method: string; params: unknown[] };
      const reply = (text: string) => setImmediate(() => this.onmessage?.({ data: text }));
      if (req.method === 'ledger_subscribeNewHeads') {
        reply(`{"jsonrpc":"2.0","id":${req.id},"result":${idJson}}`);
        const otherType = idJson.startsWith('"') ? idJson.slice(1, -1) : `"${idJson}"`;
        const head = (h: number) => `{"height":"${h}","hash":"0x${'ab'.repeat(32)}","timeMs":"1","txCount":0}`;
        if (decoy) reply(`{"jsonrpc":"2.0","method":"ledger_newHead","params":{"subscription":${otherType},"result":${head(99)}}}`);
        for (const h of [1, 2, 3]) {
          reply(`{"jsonrpc":"2.0","method":"ledger_newHead","params":{"subscription":${idJson},"result":${head(h)}}}`);
        }
      } else if (req.method === 'ledger_unsubscribeNewHeads') {
        unsubscribed.push(req.params);
        reply(`{"jsonrpc":"2.0","id":${req.id},"result":true}`);
      }
    }

    close(): void {
      this.readyState = 3;
    }
  };
}

async function firstHeights(idJson: string, decoy = true): Promise<{ heights: bigint[]; unsubscribed: unknown[][] }> {
  const unsubscribed: unknown[][] = [];
  const client = new TallyClient('ws://127.0.0.1:1', { WebSocket: scriptedSocket(idJson, decoy, unsubscribed) });
  try {
    const heights: bigint[] = [];
    for await (const head of await client.subscribeNewHeads()) {
      heights.push(head.height);
      if (heights.length === 3) break;
    }
    return { heights, unsubscribed };
  } finally {
    client.close();
  }
}

test('a string subscription id: heads arrive and the unsubscribe sends the string', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { heights, unsubscribed } = await firstHeights('"Zq3xP0aLk9Rt2mWb"', false);
  assert.deepEqual(heights, [1n, 2n, 3n]);
  assert.deepEqual(unsubscribed, [['Zq3xP0aLk9Rt2mWb']]);
});

test('a string subscription id of digits is not the number with those digits', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { heights, unsubscribed } = await firstHeights('"7302914455"');
  assert.deepEqual(heights, [1n, 2n, 3n]);
  assert.deepEqual(unsubscribed, [['7302914455']]);
});

test('a numeric subscription id: heads arrive and the unsubscribe sends the number', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { heights, unsubscribed } = await firstHeights('65297412747318');
  assert.deepEqual(heights, [1n, 2n, 3n]);
  assert.deepEqual(unsubscribed, [[65297412747318]]);
});

// Read as a digit string (json.ts), so it cannot be told from the string
// with the same digits: no decoy.
test('a numeric subscription id too long for a double still matches its heads', { timeout: TEST_TIMEOUT_MS }, async () => {
  const { heights } = await firstHeights('12345678901234567890', false);
  assert.deepEqual(heights, [1n, 2n, 3n]);
});

test('an answer that is not a subscription id fails the subscribe call', { timeout: TEST_TIMEOUT_MS }, async () => {
  for (const idJson of ['{"id":1}', '1.5', 'null', '""']) {
    const client = new TallyClient('ws://127.0.0.1:1', { WebSocket: scriptedSocket(idJson, false, []) });
    try {
      await assert.rejects(client.subscribeNewHeads(), (e: unknown) =>
        e instanceof TallyTransportError && /is not a subscription id/.test(e.message), idJson);
    } finally {
      client.close();
    }
  }
});

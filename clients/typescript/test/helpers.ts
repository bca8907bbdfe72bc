// Shared by the tests that run against a devnet.

import type { TallyClient } from '../src/index.js';

/** Polls `check` until it gives a value, or fails after `deadlineMs` naming `what`. */
export async function waitFor<X>(what: string, check: () => Promise<X | undefined | null | false>, deadlineMs = 30_000): Promise<X> {
  const until = Date.now() + deadlineMs;
  let last: unknown = null;
  for (;;) {
    try {
      const got = await check();
      if (got !== undefined && got !== null && got !== false) return got;
    } catch (e) {
      last = e;
    }
    if (Date.now() > until) throw new Error(`timed out after ${deadlineMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function waitForHeight(client: TallyClient, height: bigint, deadlineMs = 30_000): Promise<bigint> {
  return waitFor(`height ${height}`, async () => {
    const h = (await client.status()).latestHeight;
    return h >= height ? h : undefined;
  }, deadlineMs);
}

/** A fetch that lets `mutate` change the JSON answer of calls to `method`. */
export function mutatingFetch(method: string, mutate: (result: any) => void): typeof fetch {
  return async (input, init) => {
    const res = await fetch(input, init);
    const sent = JSON.parse(String(init?.body ?? '{}'));
    if (sent.method !== method) return res;
    const body = await res.json();
    if (body.result) mutate(body.result);
    return new Response(JSON.stringify(body), { status: res.status, headers: { 'content-type': 'application/json' } });
  };
}

/** Flips one byte (at `byteIndex`, negative from the end) of a 0x hex string. */
export function flipByte(hex: string, byteIndex: number): string {
  const digits = hex.slice(2);
  const n = digits.length / 2;
  const i = byteIndex < 0 ? n + byteIndex : byteIndex;
  const byte = parseInt(digits.slice(2 * i, 2 * i + 2), 16) ^ 0x01;
  return '0x' + digits.slice(0, 2 * i) + byte.toString(16).padStart(2, '0') + digits.slice(2 * i + 2);
}

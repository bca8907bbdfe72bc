/**
 * Node-only helpers (never imported by index.ts, so browser bundles stay
 * free of them): key files from disk, and a client with `ws` as WebSocket.
 */

import { readFile } from 'node:fs/promises';
import { WebSocket } from 'ws';
import { Keypair } from './keys.js';
import { TallyClient, type TallyClientOptions } from './rpc.js';
import type { WebSocketConstructor } from './ws.js';

/** Reads a node key file (PKCS#8 PEM), e.g. `<devnet>/accounts/admin.pem`. */
export async function readKeyFile(path: string): Promise<Keypair> {
  const pem = await readFile(path, 'utf8').catch((e: Error) => {
    throw new Error(`cannot read key file ${path}: ${e.message}`);
  });
  try {
    return Keypair.fromPem(pem);
  } catch (e) {
    throw new Error(`${path}: ${(e as Error).message}`);
  }
}

/** A client whose WebSocket (for subscriptions and ws:// URLs) is the `ws` package's. */
export function nodeClient(url: string, opts: TallyClientOptions = {}): TallyClient {
  return new TallyClient(url, { WebSocket: WebSocket as unknown as WebSocketConstructor, ...opts });
}

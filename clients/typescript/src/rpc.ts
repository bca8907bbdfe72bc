/**
 * `TallyClient`: every ledger_* method of docs/rpc.md, typed (see
 * api-types.ts for the conventions), over HTTP (fetch) or a WebSocket, and
 * the two subscriptions as async iterators.
 */

import { asBytes, fromHex, toHex } from './bytes.js';
import * as C from './convert.js';
import { encodeSignedTx, signTx } from './encoding.js';
import type { Genesis } from './genesis.js';
import { parseJsonExact } from './json.js';
import type { Keypair } from './keys.js';
import type { Op, SignedTx } from './types.js';
import type * as T from './api-types.js';
import { Subscription, WsConnection, type RpcErrorObject, type WebSocketConstructor } from './ws.js';

/** A call without an answer within this fails (submitTxAndWait waits longer). */
export const REQUEST_TIMEOUT_MS_DEFAULT = 30_000;
/** A response larger than this is refused (a set-changes page of 1,000 validators is ~10 MB). */
export const RESPONSE_BYTES_MAX_DEFAULT = 16 << 20;
/** `submitTxAndWait` waits at most this long on the node. */
export const SUBMIT_WAIT_MS_MAX = 120_000;
/** `submitTxBatch` takes at most this many transactions. */
export const SUBMIT_BATCH_MAX = 256;
/** Extra time a request has beyond the node's own wait. */
const WAIT_MARGIN_MS = 10_000;

/** The node refused a call: `kind` is `data.kind` (e.g. `bad_nonce`), null for JSON-RPC's own errors. */
export class TallyRpcError extends Error {
  readonly code: number;
  readonly kind: string | null;
  readonly detail: unknown;
  readonly method: string;

  constructor(method: string, e: RpcErrorObject) {
    const data = (e.data ?? null) as { kind?: unknown; detail?: unknown } | null;
    const kind = data && typeof data.kind === 'string' ? data.kind : null;
    super(`${method}: the node refused: ${e.message} [code ${e.code}${kind ? `, ${kind}` : ''}]`);
    this.name = 'TallyRpcError';
    this.code = e.code;
    this.kind = kind;
    this.detail = data?.detail ?? null;
    this.method = method;
  }
}

/** The node could not be reached, or answered something that is not JSON-RPC. */
export class TallyTransportError extends Error {
  constructor(message: string, readonly status?: number) {
    super(message);
    this.name = 'TallyTransportError';
  }
}

export interface TallyClientOptions {
  /** A WebSocket constructor; defaults to globalThis.WebSocket (Node 20: pass `WebSocket` from `ws`). */
  WebSocket?: WebSocketConstructor;
  /** A fetch function; defaults to globalThis.fetch. */
  fetch?: typeof globalThis.fetch;
  /** Calls go over HTTP or a WebSocket; by default as the URL's scheme says. */
  transport?: 'http' | 'ws';
  requestTimeoutMs?: number;
  responseBytesMax?: number;
  /** Sent as `Authorization: Bearer …` on HTTP calls (nodes with `auth_token`). */
  authToken?: string;
}

type TxInput = Uint8Array | string | SignedTx;

function txHex(tx: TxInput): string {
  if (typeof tx === 'string') return toHex(fromHex(tx, 'transaction'));
  return toHex(tx instanceof Uint8Array ? tx : encodeSignedTx(tx));
}

async function readBounded(res: Response, max: number, url: string): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? '0');
  if (declared > max) throw new TallyTransportError(`the answer from ${url} is ${declared} bytes, more than the limit of ${max}`, res.status);
  if (!res.body) return res.text();
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.length;
    if (total > max) {
      await reader.cancel();
      throw new TallyTransportError(`the answer from ${url} exceeds the limit of ${max} bytes`, res.status);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) { all.set(c, at); at += c.length; }
  return new TextDecoder().decode(all);
}

export class TallyClient {
  readonly url: string;
  readonly wsUrl: string;
  private readonly opts: Required<Pick<TallyClientOptions, 'requestTimeoutMs' | 'responseBytesMax'>> & TallyClientOptions;
  private ws: WsConnection | null = null;
  private nextId = 1;
  private chainIdCache: string | null = null;

  constructor(url: string, opts: TallyClientOptions = {}) {
    this.url = url.replace(/\/+$/, '');
    this.wsUrl = this.url.replace(/^http(s?):/, 'ws$1:');
    this.opts = { requestTimeoutMs: REQUEST_TIMEOUT_MS_DEFAULT, responseBytesMax: RESPONSE_BYTES_MAX_DEFAULT, ...opts };
  }

  private get useWs(): boolean {
    return (this.opts.transport ?? (/^wss?:/.test(this.url) ? 'ws' : 'http')) === 'ws';
  }

  private wsConnection(): WsConnection {
    if (!this.ws) {
      const Ctor = this.opts.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
      if (!Ctor) {
        throw new TallyTransportError(
          "this runtime has no WebSocket: pass one, e.g. new TallyClient(url, { WebSocket }) with WebSocket from the 'ws' package",
        );
      }
      this.ws = new WsConnection(this.wsUrl, Ctor, this.opts.responseBytesMax);
    }
    return this.ws;
  }

  /** Any method by name; the raw JSON result (big integers kept as strings). */
  async call(method: string, params: unknown[] = [], timeoutMs = this.opts.requestTimeoutMs): Promise<unknown> {
    const answer = this.useWs
      ? await this.wsConnection().call(method, params, timeoutMs).catch((e: Error) => {
          throw new TallyTransportError(e.message);
        })
      : await this.httpCall(method, params, timeoutMs);
    if ('error' in answer) throw new TallyRpcError(method, answer.error);
    return answer.result;
  }

  private async httpCall(method: string, params: unknown[], timeoutMs: number): Promise<{ result: unknown } | { error: RpcErrorObject }> {
    const doFetch = this.opts.fetch ?? globalThis.fetch;
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (this.opts.authToken) headers['authorization'] = `Bearer ${this.opts.authToken}`;
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    try {
      let res: Response;
      try {
        res = await doFetch(this.url, {
          method: 'POST', headers, signal: abort.signal,
          body: JSON.stringify({ jsonrpc: '2.0', id: this.nextId++, method, params }),
        });
      } catch (e) {
        if (abort.signal.aborted) throw new TallyTransportError(`${method} to ${this.url}: no answer within ${timeoutMs} ms`);
        throw new TallyTransportError(`cannot reach the node at ${this.url}: ${(e as Error).message}. Is it running?`);
      }
      const text = await readBounded(res, this.opts.responseBytesMax, this.url);
      let body: Record<string, unknown>;
      try {
        body = C.obj(parseJsonExact(text), 'response');
      } catch {
        throw new TallyTransportError(`${method} to ${this.url}: HTTP ${res.status}, not a JSON-RPC answer: ${text.slice(0, 200)}`, res.status);
      }
      if (body['error'] !== undefined) return { error: body['error'] as RpcErrorObject };
      if (!res.ok || !('result' in body)) {
        throw new TallyTransportError(`${method} to ${this.url}: HTTP ${res.status} without a result`, res.status);
      }
      return { result: body['result'] };
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the WebSocket, if one is open; its subscriptions end with an error. */
  close(): void {
    this.ws?.close();
    this.ws = null;
  }

  // Submitting.

  submitTx(tx: TxInput): Promise<T.TxSubmitted> {
    return this.call('ledger_submitTx', [txHex(tx)]) as Promise<T.TxSubmitted>;
  }

  /** Submits and waits until committed; a timeout is a TallyRpcError of kind `timeout`. */
  async submitTxAndWait(tx: TxInput, timeoutMs = 30_000): Promise<T.TxCommitted> {
    if (timeoutMs > SUBMIT_WAIT_MS_MAX) throw new RangeError(`timeoutMs ${timeoutMs} is more than the node's limit of ${SUBMIT_WAIT_MS_MAX}`);
    const r = await this.call('ledger_submitTxAndWait', [txHex(tx), String(timeoutMs)], timeoutMs + WAIT_MARGIN_MS);
    return C.toTxCommitted(r);
  }

  async submitTxBatch(txs: TxInput[]): Promise<T.BatchItem[]> {
    if (txs.length > SUBMIT_BATCH_MAX) throw new RangeError(`a batch of ${txs.length} is more than the node's limit of ${SUBMIT_BATCH_MAX}`);
    return (await this.call('ledger_submitTxBatch', [txs.map(txHex)])) as T.BatchItem[];
  }

  // Reading.

  async getTx(hash: string): Promise<T.TxInfo> {
    return C.toTxInfo(await this.call('ledger_getTx', [hash]));
  }

  async getBlockByHeight(height: bigint | number | 'latest', full = false): Promise<T.BlockInfo> {
    return C.toBlock(await this.call('ledger_getBlockByHeight', [height === 'latest' ? height : String(height), full]));
  }

  async getBlockByHash(hash: string, full = false): Promise<T.BlockInfo> {
    return C.toBlock(await this.call('ledger_getBlockByHash', [hash, full]));
  }

  async getCommit(height: bigint | number | 'latest'): Promise<T.CertificateInfo> {
    return C.toCertificate(await this.call('ledger_getCommit', [height === 'latest' ? height : String(height)]));
  }

  async status(): Promise<T.StatusInfo> {
    return C.toStatus(await this.call('ledger_status'));
  }

  async getValidators(height?: bigint | number): Promise<T.ValidatorInfo[]> {
    return C.toValidators(await this.call('ledger_getValidators', height === undefined ? [] : [String(height)]));
  }

  async getSetChanges(after: bigint | number = 0n): Promise<T.SetChangeInfo[]> {
    return C.toSetChanges(await this.call('ledger_getSetChanges', [String(after)]));
  }

  /**
   * Up to `count` (at most 64) committed blocks from `from`, as stored, each
   * with the certificate that decided it; decode them with `decodeBlock`
   * and `decodeCertificate`.
   */
  async getRawBlocks(from: bigint | number, count = 64): Promise<T.RawBlock[]> {
    return C.toRawBlocks(await this.call('ledger_getRawBlocks', [String(from), count]));
  }

  /** The genesis file as JSON; u64 values too large for a double arrive as strings. */
  async getGenesis(): Promise<Genesis> {
    return C.obj(await this.call('ledger_getGenesis'), 'genesis') as unknown as Genesis;
  }

  async health(): Promise<T.HealthInfo> {
    return C.toHealth(await this.call('ledger_health'));
  }

  async getEvidence(opts: { fromHeight?: bigint | number; cursor?: string; limit?: number } = {}): Promise<T.EvidencePage> {
    const params = [opts.fromHeight === undefined ? null : String(opts.fromHeight), opts.cursor ?? null, opts.limit ?? null];
    return C.toEvidencePage(await this.call('ledger_getEvidence', params));
  }

  async getMempool(): Promise<T.MempoolInfo> {
    return C.toMempool(await this.call('ledger_getMempool'));
  }

  async getAccount(account: string | Uint8Array, prove = false): Promise<T.AccountInfo> {
    return C.toAccount(await this.call('ledger_getAccount', [toHex(asBytes(account, 'account', 32)), prove]));
  }

  /** The record `key` (bytes, or hex) in `owner`'s namespace. */
  async getRecord(owner: string | Uint8Array, key: Uint8Array | string, prove = false): Promise<T.RecordInfo> {
    const params = [toHex(asBytes(owner, 'owner', 32)), toHex(asBytes(key, 'record key')), prove];
    return C.toRecord(await this.call('ledger_getRecord', params));
  }

  async getGovernance(prove = false): Promise<T.GovernanceInfo> {
    return C.toGovernance(await this.call('ledger_getGovernance', [prove]));
  }

  async getChange(id: string, prove = false): Promise<T.ChangeInfo> {
    return C.toChange(await this.call('ledger_getChange', [id, prove]));
  }

  async rpcMethods(): Promise<string[]> {
    return (C.obj(await this.call('rpc_methods'), 'rpc_methods')['methods'] as string[]) ?? [];
  }

  // Subscriptions (always over a WebSocket, whatever the transport of calls).

  private async subscribe<X>(method: string, unsubscribe: string, params: unknown[], convert: (v: unknown) => X): Promise<Subscription<X>> {
    const conn = this.wsConnection();
    const sub = new Subscription<X>(method, convert, async (s) => {
      conn.forget(s.id);
      await conn.call(unsubscribe, [s.id], this.opts.requestTimeoutMs).catch(() => undefined);
    });
    let answer;
    try {
      answer = await conn.call(method, params, this.opts.requestTimeoutMs, sub as Subscription<unknown>);
    } catch (e) {
      throw new TallyTransportError((e as Error).message);
    }
    if ('error' in answer) throw new TallyRpcError(method, answer.error);
    // Without an id no notification could be matched: fail, never wait.
    if (sub.id === '') {
      throw new TallyTransportError(`${method}: the answer ${JSON.stringify(answer.result)?.slice(0, 100)} is not a subscription id`);
    }
    return sub;
  }

  /** One item per committed block; leaving the `for await` loop unsubscribes. */
  subscribeNewHeads(): Promise<Subscription<T.HeadInfo>> {
    return this.subscribe('ledger_subscribeNewHeads', 'ledger_unsubscribeNewHeads', [], C.toHead);
  }

  /** The transaction's status now, then on each change, ending with committed or rejected. */
  subscribeTxStatus(hash: string): Promise<Subscription<T.TxInfo>> {
    return this.subscribe('ledger_subscribeTxStatus', 'ledger_unsubscribeTxStatus', [hash], C.toTxInfo);
  }

  // Conveniences.

  /** The chain id (from the genesis, asked once). */
  async chainId(): Promise<string> {
    this.chainIdCache ??= (await this.getGenesis()).chain_id;
    return this.chainIdCache;
  }

  /** The nonce `key`'s next transaction needs: its last committed nonce plus one. */
  async nextNonce(account: string | Uint8Array): Promise<bigint> {
    return (await this.getAccount(account)).nonce + 1n;
  }

  /** Builds and signs a transaction of `key` (nonce from the node unless given). */
  async signOp(key: Keypair, op: Op, nonce?: bigint): Promise<SignedTx> {
    const chainId = await this.chainId();
    return signTx({ chainId, sender: key.publicKey, nonce: nonce ?? (await this.nextNonce(key.publicKey)), op }, key);
  }
}

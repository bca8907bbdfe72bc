// JSON-RPC transport of the explorer: HTTP POST for calls (single and
// batched) and one WebSocket for the newHeads subscription, which
// reconnects by itself. The endpoint comes from /config.json: `rpc: null`
// means the page is served by the node itself, on its RPC port.

/** The longest time one HTTP call may take before the page reports it. */
export const CALL_TIMEOUT_MS = 15_000;
/** The most calls sent in one JSON-RPC batch (the node's default limit is 64). */
export const BATCH_MAX = 32;
/** Delays between WebSocket reconnection attempts, the last one repeated. */
const RECONNECT_DELAYS_MS = [500, 1_000, 2_000, 5_000];

export interface Endpoint {
  http: string;
  ws: string;
}

export class RpcError extends Error {
  constructor(
    readonly method: string,
    readonly code: number,
    readonly kind: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'RpcError';
  }
  get notFound(): boolean {
    return this.kind === 'not_found';
  }
}

/** Reads /config.json and derives the HTTP and WebSocket URLs of the node. */
export async function loadEndpoint(): Promise<Endpoint> {
  let rpc: string | null = null;
  try {
    const res = await fetch(new URL('config.json', location.href), { cache: 'no-store' });
    if (res.ok) {
      const cfg = (await res.json()) as { rpc?: unknown };
      if (typeof cfg.rpc === 'string' && cfg.rpc !== '') rpc = cfg.rpc;
    }
  } catch {
    // No config: the page is on the node's own port.
  }
  const base = new URL(rpc ?? location.origin + '/');
  const http = base.href;
  const ws = new URL(base.href);
  ws.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
  return { http, ws: ws.href };
}

interface Response {
  id?: number;
  result?: unknown;
  error?: { code: number; message: string; data?: { kind?: string } };
}

function toError(method: string, e: NonNullable<Response['error']>): RpcError {
  return new RpcError(method, e.code, e.data?.kind, e.message);
}

export class Rpc {
  private nextId = 1;
  constructor(readonly endpoint: Endpoint) {}

  private async post(body: unknown, what: string): Promise<unknown> {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), CALL_TIMEOUT_MS);
    try {
      const res = await fetch(this.endpoint.http, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
        signal: ctl.signal,
      });
      const text = await res.text();
      try {
        return JSON.parse(text);
      } catch {
        throw new Error(`${what}: the node answered HTTP ${res.status} with no JSON-RPC body: ${text.slice(0, 200)}`);
      }
    } catch (e) {
      if (ctl.signal.aborted) throw new Error(`${what}: no answer from ${this.endpoint.http} within ${CALL_TIMEOUT_MS / 1000} s`);
      if (e instanceof TypeError) throw new Error(`${what}: cannot reach the node at ${this.endpoint.http} (${e.message})`);
      throw e;
    } finally {
      clearTimeout(timer);
    }
  }

  async call<T>(method: string, params: unknown[] = []): Promise<T> {
    const id = this.nextId++;
    const res = (await this.post({ jsonrpc: '2.0', id, method, params }, method)) as Response;
    if (res.error) throw toError(method, res.error);
    return res.result as T;
  }

  /** Many calls of one method, in batches of at most BATCH_MAX; results in order. */
  async many<T>(method: string, paramsList: unknown[][]): Promise<Array<T | RpcError>> {
    const out: Array<T | RpcError> = [];
    for (let i = 0; i < paramsList.length; i += BATCH_MAX) {
      const chunk = paramsList.slice(i, i + BATCH_MAX);
      const first = this.nextId;
      this.nextId += chunk.length;
      const body = chunk.map((params, j) => ({ jsonrpc: '2.0', id: first + j, method, params }));
      const res = await this.post(body, method);
      if (!Array.isArray(res)) {
        const single = res as Response;
        throw single.error ? toError(method, single.error) : new Error(`${method}: a batch was answered with no list`);
      }
      const byId = new Map<number, Response>();
      for (const r of res as Response[]) if (typeof r.id === 'number') byId.set(r.id, r);
      chunk.forEach((_, j) => {
        const r = byId.get(first + j);
        if (!r) out.push(new RpcError(method, 0, undefined, `${method}: no answer in the batch`));
        else if (r.error) out.push(toError(method, r.error));
        else out.push(r.result as T);
      });
    }
    return out;
  }
}

export interface Head {
  height: string;
  hash: string;
  timeMs: string;
  txCount: number;
}

export type FeedState = 'connecting' | 'subscribed' | 'closed';

/**
 * The newHeads subscription on one WebSocket. Listeners get each head as it
 * arrives; after a reconnection they get `onResume`, so a view can fetch
 * what it missed.
 */
export class HeadFeed {
  private ws: WebSocket | null = null;
  private attempt = 0;
  private subId: string | null = null;
  private listeners = new Set<(h: Head) => void>();
  private stateListeners = new Set<(s: FeedState, detail: string) => void>();
  state: FeedState = 'connecting';
  detail = '';

  constructor(private readonly url: string) {
    this.connect();
  }

  onHead(f: (h: Head) => void): () => void {
    this.listeners.add(f);
    return () => this.listeners.delete(f);
  }

  onState(f: (s: FeedState, detail: string) => void): () => void {
    this.stateListeners.add(f);
    f(this.state, this.detail);
    return () => this.stateListeners.delete(f);
  }

  private setState(s: FeedState, detail: string): void {
    this.state = s;
    this.detail = detail;
    for (const f of this.stateListeners) f(s, detail);
  }

  private connect(): void {
    this.setState('connecting', `connecting to ${this.url}`);
    let ws: WebSocket;
    try {
      ws = new WebSocket(this.url);
    } catch (e) {
      this.retry(`cannot open ${this.url}: ${(e as Error).message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      ws.send(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ledger_subscribeNewHeads', params: [] }));
    };
    ws.onmessage = (ev) => {
      let msg: { id?: number; result?: unknown; error?: { message: string }; method?: string; params?: { subscription: string | number; result: Head } };
      try {
        msg = JSON.parse(String(ev.data));
      } catch {
        return;
      }
      if (msg.id === 1) {
        if (msg.error) {
          this.setState('closed', `the node refused the subscription: ${msg.error.message}`);
          ws.close();
          return;
        }
        this.subId = String(msg.result);
        this.attempt = 0;
        this.setState('subscribed', 'live');
        return;
      }
      // Matched by subscription id (a number or a string, as the server
      // writes it), whatever the notification's method is named.
      if (msg.method !== undefined && msg.params && String(msg.params.subscription) === this.subId) {
        for (const f of this.listeners) f(msg.params.result);
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.subId = null;
      this.retry(`the WebSocket to ${this.url} closed`);
    };
  }

  private retry(why: string): void {
    const delay = RECONNECT_DELAYS_MS[Math.min(this.attempt, RECONNECT_DELAYS_MS.length - 1)] ?? 5_000;
    this.attempt++;
    this.setState('closed', `${why}; retrying in ${delay / 1000} s`);
    setTimeout(() => this.connect(), delay);
  }
}

/**
 * One JSON-RPC connection over a WebSocket: calls matched to answers by id,
 * and subscriptions as bounded async iterators.
 */

import { parseJsonExact } from './json.js';

/** What this client needs of a WebSocket (the browser's and `ws`'s both fit). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onclose: ((ev: { code?: number; reason?: string }) => void) | null;
}
export type WebSocketConstructor = new (url: string) => WebSocketLike;

/** Notifications a subscriber may leave unread before the subscription fails. */
export const SUBSCRIPTION_BUFFER_MAX = 1024;

export interface RpcErrorObject { code: number; message: string; data?: unknown }

type Answer = { result: unknown } | { error: RpcErrorObject };

interface Pending {
  settle: (a: Answer | Error) => void;
  timer: ReturnType<typeof setTimeout>;
  /** For a subscribe call: the subscription to register as soon as its id arrives. */
  subscription?: Subscription<unknown>;
}

/** A stream of notifications; leaving a `for await` loop unsubscribes. */
export class Subscription<T> implements AsyncIterableIterator<T> {
  /**
   * The id the server gave, as it gave it: a string (Tally's nodes) or a
   * number (other JSON-RPC servers may send one); it is sent back as is.
   */
  id: string | number = '';
  private queue: T[] = [];
  private waiting: ((r: IteratorResult<T>) => void)[] = [];
  private rejecters: ((e: Error) => void)[] = [];
  private failure: Error | null = null;
  private done = false;

  constructor(
    readonly what: string,
    private readonly convert: (v: unknown) => T,
    private readonly unsubscribe: (s: Subscription<T>) => Promise<void>,
  ) {}

  /** Called by the connection for each notification. */
  push(raw: unknown): void {
    if (this.done) return;
    let item: T;
    try {
      item = this.convert(raw);
    } catch (e) {
      this.fail(e instanceof Error ? e : new Error(String(e)));
      return;
    }
    const w = this.waiting.shift();
    if (w) {
      this.rejecters.shift();
      w({ value: item, done: false });
      return;
    }
    if (this.queue.length >= SUBSCRIPTION_BUFFER_MAX) {
      this.fail(new Error(`${this.what}: more than ${SUBSCRIPTION_BUFFER_MAX} notifications unread; the subscriber fell behind`));
      void this.unsubscribe(this).catch(() => undefined);
      return;
    }
    this.queue.push(item);
  }

  /** Ends the stream with an error (connection lost, overflow). */
  fail(e: Error): void {
    if (this.done) return;
    this.failure = e;
    this.done = true;
    for (const r of this.rejecters) r(e);
    this.waiting = [];
    this.rejecters = [];
  }

  next(): Promise<IteratorResult<T>> {
    const item = this.queue.shift();
    if (item !== undefined) return Promise.resolve({ value: item, done: false });
    if (this.failure) return Promise.reject(this.failure);
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => {
      this.waiting.push(resolve);
      this.rejecters.push(reject);
    });
  }

  async return(): Promise<IteratorResult<T>> {
    if (!this.done) {
      this.done = true;
      for (const w of this.waiting) w({ value: undefined, done: true });
      this.waiting = [];
      this.rejecters = [];
      await this.unsubscribe(this);
    }
    return { value: undefined, done: true };
  }

  [Symbol.asyncIterator](): this {
    return this;
  }
}

/**
 * A subscription id is a string or an integer (JSON-RPC leaves the choice to
 * the server). Integers too long for a double arrive as digit strings (see
 * json.ts), which still match their notifications, read the same way.
 */
function isSubscriptionId(v: unknown): v is string | number {
  return typeof v === 'string' || (typeof v === 'number' && Number.isSafeInteger(v));
}

/** The map key of an id: the number 7 and the string "7" are different ids. */
function subscriptionKey(id: string | number): string {
  return typeof id === 'number' ? `n:${id}` : `s:${id}`;
}

export class WsConnection {
  private socket: WebSocketLike | null = null;
  private opening: Promise<WebSocketLike> | null = null;
  private nextId = 1;
  private pending = new Map<number, Pending>();
  /** By `subscriptionKey` of their ids. */
  private subscriptions = new Map<string, Subscription<unknown>>();

  constructor(
    private readonly url: string,
    private readonly Ctor: WebSocketConstructor,
    private readonly messageBytesMax: number,
  ) {}

  private open(timeoutMs: number): Promise<WebSocketLike> {
    if (this.socket && this.socket.readyState === 1) return Promise.resolve(this.socket);
    if (this.opening) return this.opening;
    this.opening = new Promise<WebSocketLike>((resolve, reject) => {
      const ws = new this.Ctor(this.url);
      const timer = setTimeout(() => {
        reject(new Error(`cannot open a WebSocket to ${this.url}: no answer within ${timeoutMs} ms`));
        ws.close();
      }, timeoutMs);
      ws.onopen = () => {
        clearTimeout(timer);
        this.socket = ws;
        resolve(ws);
      };
      ws.onerror = () => {
        clearTimeout(timer);
        reject(new Error(`cannot open a WebSocket to ${this.url}. Is the node running?`));
      };
      ws.onclose = (ev) => {
        clearTimeout(timer);
        this.closed(new Error(`the WebSocket to ${this.url} closed (code ${ev.code ?? '?'}${ev.reason ? `: ${ev.reason}` : ''})`));
      };
      ws.onmessage = (ev) => this.receive(ev.data);
    }).finally(() => {
      this.opening = null;
    });
    return this.opening;
  }

  private closed(e: Error): void {
    this.socket = null;
    for (const p of this.pending.values()) {
      clearTimeout(p.timer);
      p.settle(e);
    }
    this.pending.clear();
    for (const s of this.subscriptions.values()) s.fail(e);
    this.subscriptions.clear();
  }

  private receive(data: unknown): void {
    const text = typeof data === 'string' ? data : String(data);
    if (text.length > this.messageBytesMax) {
      this.socket?.close(1009, 'message too large');
      this.closed(new Error(`a WebSocket message of ${text.length} bytes exceeds the limit of ${this.messageBytesMax}`));
      return;
    }
    let msg: Record<string, unknown>;
    try {
      msg = parseJsonExact(text) as Record<string, unknown>;
    } catch (e) {
      this.socket?.close(1002, 'not JSON');
      this.closed(new Error(`the node sent a WebSocket message that is not JSON: ${(e as Error).message}`));
      return;
    }
    if (typeof msg['id'] === 'number') {
      const p = this.pending.get(msg['id']);
      if (!p) return;
      this.pending.delete(msg['id']);
      clearTimeout(p.timer);
      if ('error' in msg) p.settle({ error: msg['error'] as RpcErrorObject });
      else {
        const id = msg['result'];
        if (p.subscription && isSubscriptionId(id)) {
          // Registered before any notification of it can be read.
          p.subscription.id = id;
          this.subscriptions.set(subscriptionKey(id), p.subscription);
        }
        p.settle({ result: msg['result'] });
      }
      return;
    }
    const params = msg['params'] as { subscription?: unknown; result?: unknown } | undefined;
    if (params && isSubscriptionId(params.subscription)) {
      this.subscriptions.get(subscriptionKey(params.subscription))?.push(params.result);
    }
  }

  async call(method: string, params: unknown[], timeoutMs: number, subscription?: Subscription<unknown>): Promise<Answer> {
    const ws = await this.open(timeoutMs);
    const id = this.nextId++;
    return new Promise<Answer>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${method} over ${this.url}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const settle = (a: Answer | Error) => (a instanceof Error ? reject(a) : resolve(a));
      this.pending.set(id, subscription ? { settle, timer, subscription } : { settle, timer });
      ws.send(JSON.stringify({ jsonrpc: '2.0', id, method, params }));
    });
  }

  forget(id: string | number): void {
    this.subscriptions.delete(subscriptionKey(id));
  }

  close(): void {
    const ws = this.socket;
    this.closed(new Error('the client was closed'));
    ws?.close(1000, 'client closed');
  }
}

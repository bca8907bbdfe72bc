// What every view shares: the RPC, the head feed, validator sets by hash,
// and the view's lifetime (an async answer for a view already left is
// dropped).

import type { HeadFeed, Rpc } from './rpc.js';
import type { Block, Validator } from './types.js';

/** Validator sets kept in memory, by hash; enough for many set changes. */
const SETS_MAX = 64;

export class Chain {
  private sets = new Map<string, Promise<Validator[]>>();
  constructor(readonly rpc: Rpc, readonly feed: HeadFeed) {}

  /** The validator set that decides `block` (its header's validatorsHash). */
  setOf(block: Block): Promise<Validator[]> {
    const key = block.header.validatorsHash;
    let p = this.sets.get(key);
    if (!p) {
      p = this.rpc.call<Validator[]>('ledger_getValidators', [block.header.height]);
      p.catch(() => this.sets.delete(key));
      if (this.sets.size >= SETS_MAX) {
        const first = this.sets.keys().next().value;
        if (first !== undefined) this.sets.delete(first);
      }
      this.sets.set(key, p);
    }
    return p;
  }
}

export interface View {
  /** The element that replaces the main area. */
  root: HTMLElement;
  /** Stops timers and listeners when the view is left. */
  dispose?: () => void;
}

export class Lifetime {
  private disposers: Array<() => void> = [];
  alive = true;
  onEnd(f: () => void): void {
    this.disposers.push(f);
  }
  end(): void {
    this.alive = false;
    for (const f of this.disposers.splice(0)) f();
  }
  interval(f: () => void, ms: number): void {
    const t = setInterval(f, ms);
    this.onEnd(() => clearInterval(t));
  }
}

export function nameOf(set: Validator[] | undefined, publicKey: string): string {
  const v = set?.find((x) => x.publicKey === publicKey);
  return v ? v.name : publicKey.slice(0, 10) + '…';
}

/** Whether `signed` power is more than two thirds of `total` (as ledger::types does). */
export function quorum(signed: bigint, total: bigint): boolean {
  return signed * 3n > total * 2n;
}

/**
 * The genesis file as `ledger_getGenesis` returns it (snake_case, as in
 * genesis.json), its hash (the `prev_hash` of block 1) and its validator set.
 */

import { BorshWriter } from './borsh.js';
import { TallyDecodeError, fromHexFixed, toHex } from './bytes.js';
import { sha256 } from './hash.js';
import type { Role, Validator } from './types.js';

/** u64 fields arrive as JSON numbers, or as strings when too large for a double. */
export type U64Json = number | string | bigint;

export interface Genesis {
  chain_id: string;
  genesis_time_ms: U64Json;
  params: {
    block_bytes_max: U64Json;
    block_txs_max: number;
    tx_bytes_max: number;
    key_bytes_max: number;
    value_bytes_max: number;
    timeout_propose_ms: U64Json;
    timeout_prevote_ms: U64Json;
    timeout_precommit_ms: U64Json;
    timeout_delta_ms: U64Json;
  };
  validators: { name: string; public_key: string; peer_id: string; power: U64Json }[];
  replicas?: { name: string; peer_id: string }[];
  accounts?: { public_key: string; role: Role; balance: U64Json }[];
  governance?: { threshold?: number; expiry_blocks?: U64Json };
}

/** The governance defaults the node applies when genesis leaves them out. */
const THRESHOLD_DEFAULT = 1;
const EXPIRY_BLOCKS_DEFAULT = 100_000n;

/** Reads a u64 given as a JSON number (safe integers only), a decimal string or a bigint. */
export function toU64(v: unknown, what: string): bigint {
  if (typeof v === 'bigint') return v;
  if (typeof v === 'number') {
    if (!Number.isSafeInteger(v) || v < 0) throw new TallyDecodeError(`${what}: ${v} is not an exact u64`);
    return BigInt(v);
  }
  if (typeof v === 'string' && /^[0-9]{1,20}$/.test(v)) {
    const n = BigInt(v);
    if (n < 1n << 64n) return n;
  }
  throw new TallyDecodeError(`${what}: ${JSON.stringify(v)} is not a decimal u64`);
}

function u32(v: unknown, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 0xffff_ffff) {
    throw new TallyDecodeError(`${what}: ${JSON.stringify(v)} is not a u32`);
  }
  return v;
}

/** `sha256(borsh("tally/genesis/v1") || borsh(genesis))`: the `prev_hash` of block 1. */
export function genesisHash(g: Genesis): string {
  const w = new BorshWriter().string('tally/genesis/v1').string(g.chain_id).u64(toU64(g.genesis_time_ms, 'genesis_time_ms'));
  const p = g.params;
  w.u64(toU64(p.block_bytes_max, 'params.block_bytes_max'))
    .u32(u32(p.block_txs_max, 'params.block_txs_max')).u32(u32(p.tx_bytes_max, 'params.tx_bytes_max'))
    .u32(u32(p.key_bytes_max, 'params.key_bytes_max')).u32(u32(p.value_bytes_max, 'params.value_bytes_max'))
    .u64(toU64(p.timeout_propose_ms, 'params.timeout_propose_ms')).u64(toU64(p.timeout_prevote_ms, 'params.timeout_prevote_ms'))
    .u64(toU64(p.timeout_precommit_ms, 'params.timeout_precommit_ms')).u64(toU64(p.timeout_delta_ms, 'params.timeout_delta_ms'));
  w.u32(g.validators.length);
  g.validators.forEach((v, i) => {
    w.string(v.name).fixed(fromHexFixed(v.public_key, 32, `validators[${i}].public_key`), 32, 'public key')
      .string(v.peer_id).u64(toU64(v.power, `validators[${i}].power`));
  });
  const replicas = g.replicas ?? [];
  w.u32(replicas.length);
  for (const r of replicas) w.string(r.name).string(r.peer_id);
  const accounts = g.accounts ?? [];
  w.u32(accounts.length);
  accounts.forEach((a, i) => {
    const role = ['admin', 'member'].indexOf(a.role);
    if (role < 0) throw new TallyDecodeError(`accounts[${i}].role: ${JSON.stringify(a.role)} is not admin or member`);
    w.fixed(fromHexFixed(a.public_key, 32, `accounts[${i}].public_key`), 32, 'account').u8(role)
      .u64(toU64(a.balance, `accounts[${i}].balance`));
  });
  w.u32(g.governance?.threshold ?? THRESHOLD_DEFAULT);
  w.u64(g.governance?.expiry_blocks === undefined ? EXPIRY_BLOCKS_DEFAULT : toU64(g.governance.expiry_blocks, 'governance.expiry_blocks'));
  return toHex(sha256(w.finish()));
}

/** The validators that decide blocks until the first set change. */
export function genesisValidators(g: Genesis): Validator[] {
  return g.validators.map((v, i) => ({
    publicKey: fromHexFixed(v.public_key, 32, `validators[${i}].public_key`),
    power: toU64(v.power, `validators[${i}].power`),
  }));
}

/**
 * The authenticated state (ledger/src/state.rs): a Jellyfish Merkle Tree
 * over SHA-256 (the `jmt` crate), where a key's position is
 * `sha256(borsh(StateKey))` and a value's leaf commits to `sha256(value)`.
 */

import { BorshReader, BorshWriter } from './borsh.js';
import { TallyDecodeError, bytesEqual, concatBytes, toHex, utf8 } from './bytes.js';
import { sha256 } from './hash.js';
import type { AccountState, Role, StateKey } from './types.js';

const STATE_KEY_KINDS = ['account', 'record', 'council', 'change', 'validators', 'next_validators', 'replicas'] as const;

export function encodeStateKey(key: StateKey): Uint8Array {
  const w = new BorshWriter().u8(STATE_KEY_KINDS.indexOf(key.kind));
  switch (key.kind) {
    case 'account': w.fixed(key.owner, 32, 'owner'); break;
    case 'record': w.fixed(key.owner, 32, 'owner').bytes(key.key); break;
    case 'change': w.fixed(key.id, 32, 'change id'); break;
    default: break;
  }
  return w.finish();
}

/** The key's position in the tree: `sha256(borsh(key))`. */
export function stateKeyHash(key: StateKey): Uint8Array {
  return sha256(encodeStateKey(key));
}

export function decodeAccountState(bytes: Uint8Array): AccountState {
  const r = new BorshReader(bytes, 'account state', 64);
  const roleTag = r.u8('role');
  const role: Role | undefined = (['admin', 'member'] as const)[roleTag];
  if (!role) throw new TallyDecodeError(`account state is malformed: unknown role variant ${roleTag}`);
  const out = { role, active: r.bool('active'), balance: r.u64('balance'), nonce: r.u64('nonce') };
  r.end();
  return out;
}

/** A proof's encoding is never larger than this (257 nodes of 33 bytes, and a leaf). */
export const STATE_PROOF_BYTES_MAX = 257 * 33 + 128;
/** The tree is 256 bits deep. */
const SIBLINGS_MAX = 256;

const LEAF_DOMAIN = utf8.encode('JMT::LeafNode');
const INTERNAL_DOMAIN = utf8.encode('JMT::IntrnalNode');
/** The hash of an empty subtree, as the jmt crate defines it. */
const PLACEHOLDER = utf8.encode('SPARSE_MERKLE_PLACEHOLDER_HASH__');

export interface ProofLeaf {
  keyHash: Uint8Array;
  valueHash: Uint8Array;
}

export type ProofSibling =
  | { kind: 'null' }
  | { kind: 'internal'; left: Uint8Array; right: Uint8Array }
  | { kind: 'leaf'; keyHash: Uint8Array; valueHash: Uint8Array };

/** jmt's `SparseMerkleProof`: the leaf found, and siblings from it up to the root. */
export interface StateProof {
  leaf: ProofLeaf | null;
  siblings: ProofSibling[];
}

export function decodeStateProof(bytes: Uint8Array): StateProof {
  const r = new BorshReader(bytes, 'state proof', STATE_PROOF_BYTES_MAX);
  const leaf = r.option('leaf', () => ({ keyHash: r.fixed(32, 'leaf key hash'), valueHash: r.fixed(32, 'leaf value hash') }));
  const siblings = r.vec('siblings', 1, (i): ProofSibling => {
    const tag = r.u8(`sibling ${i} variant`);
    if (tag === 0) return { kind: 'null' };
    if (tag === 1) return { kind: 'internal', left: r.fixed(32, `sibling ${i} left`), right: r.fixed(32, `sibling ${i} right`) };
    if (tag === 2) return { kind: 'leaf', keyHash: r.fixed(32, `sibling ${i} key hash`), valueHash: r.fixed(32, `sibling ${i} value hash`) };
    throw new TallyDecodeError(`state proof is malformed: sibling ${i} has unknown variant ${tag}`);
  });
  r.end();
  return { leaf, siblings };
}

function leafNodeHash(keyHash: Uint8Array, valueHash: Uint8Array): Uint8Array {
  return sha256(concatBytes(LEAF_DOMAIN, keyHash, valueHash));
}

function internalHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(INTERNAL_DOMAIN, left, right));
}

function siblingHash(s: ProofSibling): Uint8Array {
  switch (s.kind) {
    case 'null': return PLACEHOLDER;
    case 'internal': return internalHash(s.left, s.right);
    case 'leaf': return leafNodeHash(s.keyHash, s.valueHash);
  }
}

/** Bit `i` of a 256-bit key, most significant bit of byte 0 first. */
function bit(key: Uint8Array, i: number): boolean {
  return ((key[i >> 3]! >> (7 - (i & 7))) & 1) === 1;
}

function commonPrefixBits(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  while (n < 256 && bit(a, n) === bit(b, n)) n++;
  return n;
}

/**
 * Checks that under `root` the tree key `keyHash` holds `value` (or, with
 * null, holds nothing), as jmt's `SparseMerkleProof::verify` does. Returns
 * null when it holds, else why not.
 */
export function verifyStateProof(
  root: Uint8Array,
  keyHash: Uint8Array,
  value: Uint8Array | null,
  proof: StateProof,
): string | null {
  if (proof.siblings.length > SIBLINGS_MAX) return `the proof has ${proof.siblings.length} siblings, more than ${SIBLINGS_MAX}`;
  const leaf = proof.leaf;
  if (value !== null) {
    if (!leaf) return 'expected a proof that the key exists, found a proof that it does not';
    if (!bytesEqual(leaf.keyHash, keyHash)) return `the proof is for key ${toHex(leaf.keyHash)}, not ${toHex(keyHash)}`;
    if (!bytesEqual(leaf.valueHash, sha256(value))) return 'the value does not match the value hash in the proof';
  } else if (leaf) {
    if (bytesEqual(leaf.keyHash, keyHash)) return 'expected a proof of absence, but the key exists in the proof';
    if (commonPrefixBits(keyHash, leaf.keyHash) < proof.siblings.length) {
      return 'not a valid proof of absence: the key would not be in the subtree of the leaf shown';
    }
  }
  let hash = leaf ? leafNodeHash(leaf.keyHash, leaf.valueHash) : PLACEHOLDER;
  const n = proof.siblings.length;
  // Siblings go from the leaf up: sibling j sits beside bit n-1-j of the key.
  for (let j = 0; j < n; j++) {
    const sib = siblingHash(proof.siblings[j]!);
    hash = bit(keyHash, n - 1 - j) ? internalHash(sib, hash) : internalHash(hash, sib);
  }
  if (!bytesEqual(hash, root)) return `the proof leads to root ${toHex(hash)}, not ${toHex(root)}`;
  return null;
}

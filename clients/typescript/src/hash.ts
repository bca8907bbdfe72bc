/**
 * SHA-256 and the RFC 6962 Merkle tree over a block's transaction hashes
 * (ledger/src/hash.rs): leaves are hashed as sha256(0x00 || leaf), inner
 * nodes as sha256(0x01 || left || right), the split point is the largest
 * power of two below the leaf count, and the empty tree is sha256("").
 */

import { sha256 as nobleSha256 } from '@noble/hashes/sha2.js';
import { bytesEqual, concatBytes } from './bytes.js';

export function sha256(bytes: Uint8Array): Uint8Array {
  return nobleSha256(bytes);
}

const LEAF_PREFIX = Uint8Array.of(0x00);
const NODE_PREFIX = Uint8Array.of(0x01);
/** A proof longer than this cannot belong to any tree of < 2^64 leaves. */
export const MERKLE_PATH_MAX = 64;

function leafHash(leaf: Uint8Array): Uint8Array {
  return sha256(concatBytes(LEAF_PREFIX, leaf));
}

function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  return sha256(concatBytes(NODE_PREFIX, left, right));
}

/** The largest power of two strictly less than n (n >= 2). */
function splitPoint(n: bigint): bigint {
  let k = 1n;
  while (k * 2n < n) k *= 2n;
  return k;
}

/** RFC 6962 Merkle tree hash over `leaves` (the tx hashes, in order). */
export function merkleRoot(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha256(new Uint8Array(0));
  if (leaves.length === 1) return leafHash(leaves[0]!);
  const k = Number(splitPoint(BigInt(leaves.length)));
  return nodeHash(merkleRoot(leaves.slice(0, k)), merkleRoot(leaves.slice(k)));
}

/** An audit path: sibling hashes from the leaf up to the root. */
export interface MerkleProof {
  index: bigint;
  leafCount: bigint;
  path: Uint8Array[];
}

/** True when `leaf` sits at `proof.index` of a tree whose root is `root`. */
export function verifyMerkleProof(root: Uint8Array, leaf: Uint8Array, proof: MerkleProof): boolean {
  if (proof.index < 0n || proof.index >= proof.leafCount || proof.path.length > MERKLE_PATH_MAX) return false;
  const fold = (index: bigint, count: bigint, path: Uint8Array[]): Uint8Array | null => {
    if (count === 1n) return path.length === 0 ? leafHash(leaf) : null;
    if (path.length === 0) return null;
    const k = splitPoint(count);
    const sibling = path[path.length - 1]!;
    const rest = path.slice(0, -1);
    if (index < k) {
      const inner = fold(index, k, rest);
      return inner && nodeHash(inner, sibling);
    }
    const inner = fold(index - k, count - k, rest);
    return inner && nodeHash(sibling, inner);
  };
  const got = fold(proof.index, proof.leafCount, proof.path);
  return got !== null && bytesEqual(got, root);
}

// Decoders refuse oversize input before reading it, huge length prefixes
// without allocating, and trailing bytes; errors name what is wrong.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Keypair, TallyDecodeError, decodeBlock, decodeCertificate, decodeHeader, decodeSignedTx, encodeBlock,
  encodeCertificate, fromHex, merkleRoot, parseJsonExact, sha256, toHex, verifyMerkleProof,
  type CommitCertificate, type SignedTx,
} from '../src/index.js';

const vectors = JSON.parse(readFileSync(new URL('../../test/vectors.json', import.meta.url), 'utf8'));
const signedHex: string = vectors.transactions[0].signed_tx;

function throwsNaming(f: () => unknown, pattern: RegExp): void {
  assert.throws(f, (e: unknown) => e instanceof TallyDecodeError && pattern.test(e.message));
}

test('a transaction over the limit is refused before decoding', () => {
  const bytes = fromHex(signedHex);
  throwsNaming(() => decodeSignedTx(bytes, bytes.length - 1), /transaction is \d+ bytes, more than the limit/);
});

test('trailing bytes are refused', () => {
  const bytes = fromHex(signedHex + '00');
  throwsNaming(() => decodeSignedTx(bytes), /transaction is malformed: 1 trailing bytes/);
});

test('a truncated transaction names the field that is cut', () => {
  const bytes = fromHex(signedHex).subarray(0, 50);
  throwsNaming(() => decodeSignedTx(bytes), /transaction is malformed: nonce needs 8 bytes/);
});

test('unknown enum variants are refused', () => {
  const bytes = fromHex(signedHex);
  // chain id (4 + 13) + sender (32) + nonce (8): the op tag.
  bytes[4 + 13 + 32 + 8] = 9;
  throwsNaming(() => decodeSignedTx(bytes), /unknown op variant 9/);
});

test('a huge length prefix is refused without allocating', () => {
  const cert = new Uint8Array(8 + 4 + 32 + 4);
  new DataView(cert.buffer).setUint32(44, 0xffff_ffff, true);
  throwsNaming(() => decodeCertificate(cert), /signatures claims 4294967295 elements/);
  const header = Uint8Array.of(0xff, 0xff, 0xff, 0x7f);
  throwsNaming(() => decodeHeader(header), /chain id needs 2147483647 bytes/);
});

test('hex errors name the value', () => {
  throwsNaming(() => fromHex('0xabc', 'tx hash'), /tx hash: odd number/);
  throwsNaming(() => fromHex('0xzz', 'tx hash'), /tx hash: invalid hex digit "z"/);
});

test('a block with transactions and a last commit round-trips', () => {
  const tx: SignedTx = decodeSignedTx(fromHex(signedHex));
  const key = Keypair.fromSeed(new Uint8Array(32).fill(7));
  const cert: CommitCertificate = {
    height: 41n, round: 3, blockHash: sha256(Uint8Array.of(1)),
    signatures: [{ validatorIndex: 0, signature: new Uint8Array(64).fill(5) }, { validatorIndex: 2, signature: new Uint8Array(64).fill(6) }],
  };
  assert.deepEqual(decodeCertificate(encodeCertificate(cert)), cert);
  const h = vectors.header.header;
  const block = {
    header: { ...decodeHeader(fromHex(vectors.header.encoding)), proposer: key.publicKey },
    txs: [tx, tx], lastCommit: cert,
  };
  assert.deepEqual(decodeBlock(encodeBlock(block)), block);
  assert.equal(h.height, 42);
});

test('RFC 6962 root and proofs for small trees, and a tampered path fails', () => {
  const leaves = Array.from({ length: 5 }, (_, i) => sha256(Uint8Array.of(i)));
  // Three leaves: node(node(leaf0, leaf1), leaf2) with 0x00/0x01 prefixes.
  const lh = (x: Uint8Array) => sha256(Uint8Array.of(0, ...x));
  const nh = (a: Uint8Array, b: Uint8Array) => sha256(Uint8Array.of(1, ...a, ...b));
  assert.equal(toHex(merkleRoot(leaves.slice(0, 3))), toHex(nh(nh(lh(leaves[0]!), lh(leaves[1]!)), lh(leaves[2]!))));
  assert.equal(toHex(merkleRoot([])), toHex(sha256(new Uint8Array(0))));
  const root = merkleRoot(leaves);
  // Leaf 4 of 5: its sibling is the root of the first four.
  const proof = { index: 4n, leafCount: 5n, path: [merkleRoot(leaves.slice(0, 4))] };
  assert.ok(verifyMerkleProof(root, leaves[4]!, proof));
  assert.ok(!verifyMerkleProof(root, leaves[3]!, proof));
  assert.ok(!verifyMerkleProof(root, leaves[4]!, { ...proof, path: [sha256(proof.path[0]!)] }));
  assert.ok(!verifyMerkleProof(root, leaves[4]!, { ...proof, index: 5n }));
});

test('JSON integers beyond 2^53 stay exact', () => {
  const v = parseJsonExact('{"a":18446744073709551615,"b":[1,-2.5e3,"x\\"1234567890123456789"],"c":123456789012345}') as Record<string, unknown>;
  assert.equal(v['a'], '18446744073709551615');
  assert.deepEqual(v['b'], [1, -2500, 'x"1234567890123456789']);
  assert.equal(v['c'], 123456789012345);
});

// The signature rule is ZIP-215, as the node's (ledger/tests/signature_rule.rs):
// the twelve ed25519-speccheck vectors with their ZIP-215 verdicts, and the
// small-order and non-canonical cases the node's tests build.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Domain, Keypair, fromHex, isWeakKey, signingBytes, toHex, verifySignedBytes } from '../src/index.js';

// (message, key, signature, valid under ZIP-215), from ed25519-speccheck `cases.txt`.
const SPECCHECK: [string, string, string, boolean][] = [
  ['8c93255d71dcab10e8f379c26200f3c7bd5f09d9bc3068d3ef4edeb4853022b6', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a0000000000000000000000000000000000000000000000000000000000000000', true],
  ['9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43a5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04', true],
  ['aebf3f2601a0c8c5d39cc7d8911642f740b78168218da8471772b35f9d35b9ab', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa8c4bd45aecaca5b24fb97bc10ac27ac8751a7dfe1baff8b953ec9f5833ca260e', true],
  ['9bd9f44f4dcc75bd531b56b2cd280b0bb38fc1cd6d1230e14861d861de092e79', 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d', '9046a64750444938de19f227bb80485e92b83fdb4b6506c160484c016cc1852f87909e14428a7a1d62e9f22f3d3ad7802db02eb2e688b6c52fcd6648a98bd009', true],
  ['e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c', 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d', '160a1cb0dc9c0258cd0a7d23e94d8fa878bcb1925f2c64246b2dee1796bed5125ec6bc982a269b723e0668e540911a9a6a58921d6925e434ab10aa7940551a09', true],
  ['e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec4011eaccd55b53f56c', 'cdb267ce40c5cd45306fa5d2f29731459387dbf9eb933b7bd5aed9a765b88d4d', '21122a84e0b5fca4052f5b1235c80a537878b38f3142356b2c2384ebad4668b7e40bc836dac0f71076f9abe3a53f9c03c1ceeeddb658d0030494ace586687405', true],
  ['85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40', '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623', 'e96f66be976d82e60150baecff9906684aebb1ef181f67a7189ac78ea23b6c0e547f7690a0e2ddcd04d87dbc3490dc19b3b3052f7ff0538cb68afb369ba3a514', false],
  ['85e241a07d148b41e47d62c63f830dc7a6851a0b1f33ae4bb2f507fb6cffec40', '442aad9f089ad9e14647b1ef9099a1ff4798d78589e66f28eca69c11f582a623', '8ce5b96c8f26d0ab6c47958c9e68b937104cd36e13c33566acd2fe8d38aa19427e71f98a473474f2f13f06f97c20d58cc3f54b8bd0d272f42b695dd7e89a8c22', false],
  ['9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff03be9678ac102edcd92b0210bb34d7428d12ffc5df5f37e359941266a4e35f0f', false],
  ['9bedc267423725d473888631ebf45988bad3db83851ee85c85e241a07d148b41', 'f7badec5b8abeaf699583992219b7b223f1df3fbbea919844e3f7c554a43dd43', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffca8c5b64cd208982aa38d4936621a4775aa233aa0505711d8fdcfdaa943d4908', true],
  ['e96b7021eb39c1a163b6da4e3093dcd3f21387da4cc4572be588fafae23c155b', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', 'a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04', true],
  ['39a591f5321bbe07fd5a23dc2f39d025d74526615746727ceefd6e82ae65c06f', 'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff', 'a9d55260f765261eb9b84e106f665e00b867287a761990d7135963ee0a7d59dca5bb704786be79fc476f91d3f3f89b03984d8068dcf1bb7dfc6637b45450ac04', true],
];

for (const [i, [msg, key, sig, valid]] of SPECCHECK.entries()) {
  test(`speccheck case ${i} is ${valid ? 'valid' : 'invalid'} under ZIP-215`, () => {
    assert.equal(verifySignedBytes(fromHex(key), fromHex(msg), fromHex(sig)), valid);
  });
}

/** The group order l, little-endian. */
const L = fromHex('edd3f55c1a631258d69cf7a2def9de1400000000000000000000000000000010');

function addLe(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(32);
  let carry = 0;
  for (let i = 0; i < 32; i++) {
    const v = a[i]! + b[i]! + carry;
    out[i] = v & 0xff;
    carry = v >> 8;
  }
  return out;
}

const IDENTITY = fromHex('0100000000000000000000000000000000000000000000000000000000000000');
// y = p + 1: a non-canonical encoding of the identity.
const IDENTITY_NONCANONICAL = fromHex('eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f');

test('small-order key with R = identity and s = 0 verifies (cofactored equation)', () => {
  const sig = new Uint8Array(64);
  sig.set(IDENTITY, 0);
  assert.equal(verifySignedBytes(IDENTITY, new TextEncoder().encode('edge'), sig), true);
  // The node refuses such a key as an account or validator.
  assert.equal(isWeakKey(IDENTITY), true);
});

test('non-canonical encodings of R and of the key are accepted, as ZIP-215 says', () => {
  const sig = new Uint8Array(64);
  sig.set(IDENTITY_NONCANONICAL, 0);
  assert.equal(verifySignedBytes(IDENTITY_NONCANONICAL, new TextEncoder().encode('edge'), sig), true);
});

test('a non-canonical s (s + l) is refused, the same signature with s verifies', () => {
  const key = Keypair.fromSeed(new Uint8Array(32).fill(9));
  const msg = new TextEncoder().encode('message');
  const sig = key.sign(Domain.Tx, 'c', msg);
  const signed = signingBytes(Domain.Tx, 'c', msg);
  assert.equal(verifySignedBytes(key.publicKey, signed, sig), true);
  const bad = sig.slice();
  bad.set(addLe(sig.subarray(32), L), 32);
  assert.equal(verifySignedBytes(key.publicKey, signed, bad), false);
});

test('a key that is not a curve point, a wrong message, a flipped bit and a wrong domain all fail', () => {
  const key = Keypair.fromSeed(new Uint8Array(32).fill(1));
  const msg = new TextEncoder().encode('hello');
  const sig = key.sign(Domain.Tx, 'c', msg);
  const notAPoint = new Uint8Array(32);
  notAPoint[0] = 2;
  assert.equal(isWeakKey(notAPoint), true);
  assert.equal(isWeakKey(key.publicKey), false);
  assert.equal(verifySignedBytes(notAPoint, signingBytes(Domain.Tx, 'c', msg), sig), false);
  assert.equal(verifySignedBytes(key.publicKey, signingBytes(Domain.Tx, 'c', new TextEncoder().encode('hellp')), sig), false);
  assert.equal(verifySignedBytes(key.publicKey, signingBytes(Domain.Vote, 'c', msg), sig), false);
  assert.equal(verifySignedBytes(key.publicKey, signingBytes(Domain.Tx, 'other', msg), sig), false);
  const flipped = sig.slice();
  flipped[10]! ^= 1;
  assert.equal(verifySignedBytes(key.publicKey, signingBytes(Domain.Tx, 'c', msg), flipped), false);
  assert.equal(toHex(key.publicKey).length, 66);
});

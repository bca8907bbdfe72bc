/**
 * Keys, domain-separated signing and the ZIP-215 signature rule
 * (ledger/src/crypto). Every signed message is
 * `borsh(tag) || borsh(chain_id) || message`.
 */

import * as ed from '@noble/ed25519';
import { sha512 } from '@noble/hashes/sha2.js';
import { BorshWriter } from './borsh.js';
import { TallyDecodeError, bytesEqual, concatBytes, fromHex, toHex } from './bytes.js';

// Synchronous signing and verification need SHA-512 configured once.
ed.hashes.sha512 = sha512;

/** What a signature is for; the tag is part of the signed bytes. */
export const Domain = {
  Tx: 'tally/tx/v1',
  Vote: 'tally/vote/v1',
  Proposal: 'tally/proposal/v1',
  Status: 'tally/status/v1',
  Rotation: 'tally/rotation/v1',
} as const;
export type DomainTag = (typeof Domain)[keyof typeof Domain];

/** The exact bytes signed for `message` in `domain` on `chainId`. */
export function signingBytes(domain: DomainTag, chainId: string, message: Uint8Array): Uint8Array {
  return concatBytes(new BorshWriter().string(domain).string(chainId).finish(), message);
}

/**
 * Checks a signature over exactly `signed` under ZIP-215, the node's rule:
 * s must be canonical, A and R may be non-canonical encodings, and the
 * cofactored equation [8](sB - R - kA) = 0 must hold. noble's default is
 * ZIP-215; it is passed explicitly so a change of default cannot change
 * what this client accepts.
 */
export function verifySignedBytes(publicKey: Uint8Array, signed: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return ed.verify(signature, signed, publicKey, { zip215: true });
  } catch {
    // noble throws only on wrong argument sizes, checked above; any other
    // failure to parse means the signature is not valid.
    return false;
  }
}

/** Checks `signature` over `message` in `domain` on `chainId`. */
export function verify(
  publicKey: Uint8Array,
  domain: DomainTag,
  chainId: string,
  message: Uint8Array,
  signature: Uint8Array,
): boolean {
  return verifySignedBytes(publicKey, signingBytes(domain, chainId, message), signature);
}

/**
 * True for keys that are small-order points or not points at all: the node
 * never admits such a key as an account or validator.
 */
export function isWeakKey(publicKey: Uint8Array): boolean {
  try {
    return ed.Point.fromBytes(publicKey, true).isSmallOrder();
  } catch {
    return true;
  }
}

/** An ed25519 private key. */
export class Keypair {
  readonly publicKey: Uint8Array;

  private constructor(private readonly seedBytes: Uint8Array) {
    this.publicKey = ed.getPublicKey(seedBytes);
  }

  /** The key whose 32-byte secret seed is `seed` (bytes or hex). */
  static fromSeed(seed: Uint8Array | string): Keypair {
    const bytes = typeof seed === 'string' ? fromHex(seed, 'seed', 32) : seed;
    if (bytes.length !== 32) throw new TallyDecodeError(`a seed is 32 bytes, found ${bytes.length}`);
    return new Keypair(bytes.slice());
  }

  /** A fresh key from the platform's secure random source. */
  static generate(): Keypair {
    return new Keypair(ed.utils.randomSecretKey());
  }

  /** Reads the node's key files: PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`). */
  static fromPem(pem: string): Keypair {
    return new Keypair(seedFromPkcs8Pem(pem));
  }

  /** `0x` hex of the public key (the account id). */
  get address(): string {
    return toHex(this.publicKey);
  }

  /** The 32-byte secret seed. Handle with care. */
  seed(): Uint8Array {
    return this.seedBytes.slice();
  }

  sign(domain: DomainTag, chainId: string, message: Uint8Array): Uint8Array {
    return ed.sign(signingBytes(domain, chainId, message), this.seedBytes);
  }
}

/** `rotation_message(old, new)`: borsh of the tuple, the two keys raw. */
export function rotationMessage(oldKey: Uint8Array, newKey: Uint8Array): Uint8Array {
  return new BorshWriter().fixed(oldKey, 32, 'old key').fixed(newKey, 32, 'new key').finish();
}

/** The old key's consent to rotating a validator's key to `newKey`. */
export function signRotationConsent(old: Keypair, newKey: Uint8Array, chainId: string): Uint8Array {
  return old.sign(Domain.Rotation, chainId, rotationMessage(old.publicKey, newKey));
}

// PKCS#8 for ed25519 (RFC 8410): SEQUENCE { INTEGER version, SEQUENCE { OID
// 1.3.101.112 }, OCTET STRING { OCTET STRING seed }, [0] attributes?,
// [1] public key? }.
const ED25519_OID = Uint8Array.of(0x06, 0x03, 0x2b, 0x65, 0x70);
/** A PEM key file longer than this is not an ed25519 key. */
const PEM_CHARS_MAX = 4096;

interface Der {
  tag: number;
  body: Uint8Array;
  next: number;
}

function readDer(buf: Uint8Array, at: number): Der {
  const fail = (why: string) => new TallyDecodeError(`not a PKCS#8 ed25519 private key: ${why}`);
  if (at + 2 > buf.length) throw fail('truncated DER');
  const tag = buf[at]!;
  let len = buf[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 2 || start + n > buf.length) throw fail('bad DER length');
    len = 0;
    for (let i = 0; i < n; i++) len = (len << 8) | buf[start + i]!;
    start += n;
  }
  if (start + len > buf.length) throw fail('DER length past the end');
  return { tag, body: buf.subarray(start, start + len), next: start + len };
}

function seedFromPkcs8Pem(pem: string): Uint8Array {
  const fail = (why: string) => new TallyDecodeError(`not a PKCS#8 ed25519 private key: ${why}`);
  if (pem.length > PEM_CHARS_MAX) throw fail(`${pem.length} characters, more than ${PEM_CHARS_MAX}`);
  const m = /-----BEGIN PRIVATE KEY-----([\s\S]*?)-----END PRIVATE KEY-----/.exec(pem);
  if (!m) throw fail('no "-----BEGIN PRIVATE KEY-----" block');
  const b64 = m[1]!.replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) throw fail('the PEM body is not base64');
  const bin = atob(b64);
  const der = Uint8Array.from(bin, (c) => c.charCodeAt(0));
  const outer = readDer(der, 0);
  if (outer.tag !== 0x30 || outer.next !== der.length) throw fail('expected one DER SEQUENCE');
  const version = readDer(outer.body, 0);
  if (version.tag !== 0x02 || version.body.length !== 1 || version.body[0]! > 1) throw fail('unknown version');
  const alg = readDer(outer.body, version.next);
  if (alg.tag !== 0x30 || !bytesEqual(alg.body, ED25519_OID)) throw fail('the algorithm is not ed25519');
  const key = readDer(outer.body, alg.next);
  if (key.tag !== 0x04) throw fail('expected the private key OCTET STRING');
  const inner = readDer(key.body, 0);
  if (inner.tag !== 0x04 || inner.body.length !== 32 || inner.next !== key.body.length) {
    throw fail('the private key is not a 32-byte seed');
  }
  const seed = inner.body.slice();
  // An embedded public key ([1], version 1 files) must be the seed's.
  let at = key.next;
  while (at < outer.body.length) {
    const field = readDer(outer.body, at);
    if (field.tag === 0x81) {
      const pub = field.body.subarray(1);
      if (field.body[0] !== 0 || !bytesEqual(pub, ed.getPublicKey(seed))) {
        throw fail('its public key does not belong to its private key');
      }
    }
    at = field.next;
  }
  return seed;
}

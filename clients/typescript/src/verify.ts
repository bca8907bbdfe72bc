/**
 * Validator sets and commit certificates, checked as ledger/src/verify.rs
 * and ValidatorSet::new do. A failed check is a value (`string` naming what
 * failed), never an exception: callers report it.
 */

import { bytesEqual, toHex } from './bytes.js';
import { TOTAL_POWER_MAX, VALIDATORS_MAX, certificateVote, encodeVote, validatorSetHash } from './encoding.js';
import { Domain, isWeakKey, signingBytes, verifySignedBytes } from './keys.js';
import type { CommitCertificate, Validator } from './types.js';

/** A validated validator set, with its hash and total power. */
export interface ValidatorSet {
  validators: Validator[];
  totalPower: bigint;
  /** `sha256(borsh(validators))`, as headers name it. */
  hash: Uint8Array;
}

/** Builds a set under the node's rules, or says which rule it breaks. */
export function validatorSet(validators: Validator[]): ValidatorSet | string {
  if (validators.length === 0) return 'the validator set is empty';
  if (validators.length > VALIDATORS_MAX) return `the validator set has ${validators.length} members, more than ${VALIDATORS_MAX}`;
  const seen = new Set<string>();
  let total = 0n;
  for (const v of validators) {
    const key = toHex(v.publicKey);
    if (v.power === 0n) return `validator ${key} has zero voting power`;
    if (seen.has(key)) return `validator ${key} appears twice`;
    seen.add(key);
    if (isWeakKey(v.publicKey)) return `validator ${key} has a weak or malformed public key`;
    total += v.power;
    if (total > TOTAL_POWER_MAX) return `total voting power exceeds the limit of ${TOTAL_POWER_MAX}`;
  }
  return { validators, totalPower: total, hash: validatorSetHash(validators) };
}

/** True when `power` is more than two thirds of `total`. */
export function isQuorum(power: bigint, total: bigint): boolean {
  return power * 3n > total * 2n;
}

/**
 * Checks that `cert` holds for `set` on `chainId`: at least one signature,
 * validator indices strictly increasing and inside the set, more than 2/3 of
 * the power, and every signature a valid precommit for the block. Returns
 * null when it holds, else what failed.
 */
export function verifyCertificate(cert: CommitCertificate, set: ValidatorSet, chainId: string): string | null {
  if (cert.signatures.length === 0) return 'the certificate has no signatures';
  let power = 0n;
  let last = -1;
  for (const [position, sig] of cert.signatures.entries()) {
    if (sig.validatorIndex <= last) {
      return `the certificate's signatures are not sorted by validator index (position ${position}, index ${sig.validatorIndex})`;
    }
    last = sig.validatorIndex;
    const v = set.validators[sig.validatorIndex];
    if (!v) return `signature ${position} names validator ${sig.validatorIndex}, but the set has ${set.validators.length}`;
    power += v.power;
  }
  if (!isQuorum(power, set.totalPower)) {
    return `the certificate is below 2/3 of the power: signed ${power} of ${set.totalPower}`;
  }
  const signed = signingBytes(Domain.Vote, chainId, encodeVote(certificateVote(cert)));
  for (const sig of cert.signatures) {
    const v = set.validators[sig.validatorIndex]!;
    if (!verifySignedBytes(v.publicKey, signed, sig.signature)) {
      return `bad signature of validator ${sig.validatorIndex} (${toHex(v.publicKey)})`;
    }
  }
  return null;
}

export function sameHash(a: Uint8Array, b: Uint8Array): boolean {
  return bytesEqual(a, b);
}

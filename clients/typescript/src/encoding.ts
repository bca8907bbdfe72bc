/**
 * The canonical encoding of every object that is hashed or signed, byte for
 * byte as the node makes it (docs/wire-format.md), and the decoders, each
 * bounded by the node's own size limits.
 */

import { BorshReader, BorshWriter } from './borsh.js';
import { TallyDecodeError } from './bytes.js';
import { sha256, merkleRoot } from './hash.js';
import { Domain, Keypair, signingBytes } from './keys.js';
import type {
  Block, Change, CommitCertificate, Header, Op, Role, SignedTx, Tx, Validator, ValidatorEntry, Vote,
} from './types.js';

/** Hard ceiling on one transaction's encoding (types.rs TX_BYTES_CAP). */
export const TX_BYTES_CAP = 1 << 20;
/** Hard ceiling on one block's encoding. */
export const BLOCK_BYTES_CAP = 64 << 20;
/** The most validators a set may hold. */
export const VALIDATORS_MAX = 1000;
/** Total voting power stays below this. */
export const TOTAL_POWER_MAX = 1n << 60n;
/** The longest chain id, and the longest validator or replica name. */
export const CHAIN_ID_BYTES_MAX = 64;
export const NAME_BYTES_MAX = 64;
export const CERTIFICATE_BYTES_MAX = 64 + VALIDATORS_MAX * (4 + 64) + 16;
export const HEADER_BYTES_MAX = 4 + CHAIN_ID_BYTES_MAX + 8 + 8 + 6 * 32 + 32;
export const VALIDATORS_BYTES_MAX = 4 + VALIDATORS_MAX * (4 + NAME_BYTES_MAX + 32 + 32 + 8);

const ROLES: Role[] = ['admin', 'member'];
const OP_KINDS = ['transfer', 'put', 'delete', 'grant', 'revoke', 'propose', 'approve'] as const;
const CHANGE_KINDS = [
  'grant', 'revoke', 'add_validator', 'remove_validator', 'set_power', 'rotate_key', 'add_replica', 'remove_replica',
] as const;

function writeRole(w: BorshWriter, role: Role): void {
  const i = ROLES.indexOf(role);
  if (i < 0) throw new RangeError(`unknown role ${JSON.stringify(role)} (expected admin or member)`);
  w.u8(i);
}

function readRole(r: BorshReader, field: string): Role {
  const i = r.u8(field);
  const role = ROLES[i];
  if (!role) throw new TallyDecodeError(`${r.what} is malformed: ${field} has unknown role variant ${i}`);
  return role;
}

function writeChange(w: BorshWriter, c: Change): void {
  w.u8(CHANGE_KINDS.indexOf(c.kind));
  switch (c.kind) {
    case 'grant': w.fixed(c.account, 32, 'account'); writeRole(w, c.role); break;
    case 'revoke': w.fixed(c.account, 32, 'account'); break;
    case 'add_validator':
      w.string(c.name).fixed(c.publicKey, 32, 'public key').fixed(c.nodeKey, 32, 'node key').u64(c.power);
      break;
    case 'remove_validator': w.fixed(c.publicKey, 32, 'public key'); break;
    case 'set_power': w.fixed(c.publicKey, 32, 'public key').u64(c.power); break;
    case 'rotate_key':
      w.fixed(c.publicKey, 32, 'public key').fixed(c.newKey, 32, 'new key').fixed(c.consent, 64, 'consent');
      break;
    case 'add_replica': w.string(c.name).fixed(c.nodeKey, 32, 'node key'); break;
    case 'remove_replica': w.fixed(c.nodeKey, 32, 'node key'); break;
    default: throw new RangeError(`unknown change kind ${JSON.stringify((c as { kind: unknown }).kind)}`);
  }
}

function readChange(r: BorshReader): Change {
  const tag = r.u8('change variant');
  const kind = CHANGE_KINDS[tag];
  switch (kind) {
    case 'grant': return { kind, account: r.fixed(32, 'account'), role: readRole(r, 'role') };
    case 'revoke': return { kind, account: r.fixed(32, 'account') };
    case 'add_validator':
      return { kind, name: r.string('name'), publicKey: r.fixed(32, 'public key'), nodeKey: r.fixed(32, 'node key'), power: r.u64('power') };
    case 'remove_validator': return { kind, publicKey: r.fixed(32, 'public key') };
    case 'set_power': return { kind, publicKey: r.fixed(32, 'public key'), power: r.u64('power') };
    case 'rotate_key':
      return { kind, publicKey: r.fixed(32, 'public key'), newKey: r.fixed(32, 'new key'), consent: r.fixed(64, 'consent') };
    case 'add_replica': return { kind, name: r.string('name'), nodeKey: r.fixed(32, 'node key') };
    case 'remove_replica': return { kind, nodeKey: r.fixed(32, 'node key') };
    default: throw new TallyDecodeError(`${r.what} is malformed: unknown change variant ${tag}`);
  }
}

function writeOp(w: BorshWriter, op: Op): void {
  const i = OP_KINDS.indexOf(op.kind);
  if (i < 0) throw new RangeError(`unknown op kind ${JSON.stringify(op.kind)}`);
  w.u8(i);
  switch (op.kind) {
    case 'transfer': w.fixed(op.to, 32, 'to').u64(op.amount); break;
    case 'put': w.bytes(op.key).bytes(op.value); break;
    case 'delete': w.bytes(op.key); break;
    case 'grant': w.fixed(op.account, 32, 'account'); writeRole(w, op.role); break;
    case 'revoke': w.fixed(op.account, 32, 'account'); break;
    case 'propose': writeChange(w, op.change); break;
    case 'approve': w.fixed(op.change, 32, 'change id'); break;
  }
}

function readOp(r: BorshReader): Op {
  const tag = r.u8('op variant');
  const kind = OP_KINDS[tag];
  switch (kind) {
    case 'transfer': return { kind, to: r.fixed(32, 'to'), amount: r.u64('amount') };
    case 'put': return { kind, key: r.bytes('key'), value: r.bytes('value') };
    case 'delete': return { kind, key: r.bytes('key') };
    case 'grant': return { kind, account: r.fixed(32, 'account'), role: readRole(r, 'role') };
    case 'revoke': return { kind, account: r.fixed(32, 'account') };
    case 'propose': return { kind, change: readChange(r) };
    case 'approve': return { kind, change: r.fixed(32, 'change id') };
    default: throw new TallyDecodeError(`${r.what} is malformed: unknown op variant ${tag}`);
  }
}

function writeTx(w: BorshWriter, tx: Tx): void {
  w.string(tx.chainId).fixed(tx.sender, 32, 'sender').u64(tx.nonce);
  writeOp(w, tx.op);
}

function readTx(r: BorshReader): Tx {
  return { chainId: r.string('chain id'), sender: r.fixed(32, 'sender'), nonce: r.u64('nonce'), op: readOp(r) };
}

/** borsh(Tx): the message a transaction's signature covers. */
export function encodeTx(tx: Tx): Uint8Array {
  const w = new BorshWriter();
  writeTx(w, tx);
  return w.finish();
}

/** The exact bytes the sender signs: borsh("tally/tx/v1") || borsh(chain id) || borsh(tx). */
export function txSigningBytes(tx: Tx): Uint8Array {
  return signingBytes(Domain.Tx, tx.chainId, encodeTx(tx));
}

export function signTx(tx: Tx, key: Keypair): SignedTx {
  return { tx, signature: key.sign(Domain.Tx, tx.chainId, encodeTx(tx)) };
}

export function encodeSignedTx(signed: SignedTx): Uint8Array {
  const w = new BorshWriter();
  writeTx(w, signed.tx);
  return w.fixed(signed.signature, 64, 'signature').finish();
}

/** `sha256(borsh(SignedTx))`. */
export function txHash(signed: SignedTx | Uint8Array): Uint8Array {
  return sha256(signed instanceof Uint8Array ? signed : encodeSignedTx(signed));
}

function readSignedTx(r: BorshReader): SignedTx {
  return { tx: readTx(r), signature: r.fixed(64, 'signature') };
}

/** Decodes a signed transaction of at most `maxBytes` (and never over TX_BYTES_CAP). */
export function decodeSignedTx(bytes: Uint8Array, maxBytes = TX_BYTES_CAP): SignedTx {
  const r = new BorshReader(bytes, 'transaction', Math.min(maxBytes, TX_BYTES_CAP));
  const out = readSignedTx(r);
  r.end();
  return out;
}

function writeHeader(w: BorshWriter, h: Header): void {
  w.string(h.chainId).u64(h.height).u64(h.timeMs)
    .fixed(h.prevHash, 32, 'prev hash').fixed(h.txRoot, 32, 'tx root').fixed(h.stateRoot, 32, 'state root')
    .fixed(h.validatorsHash, 32, 'validators hash').fixed(h.nextValidatorsHash, 32, 'next validators hash')
    .fixed(h.proposer, 32, 'proposer').fixed(h.lastCommitHash, 32, 'last commit hash');
}

function readHeader(r: BorshReader): Header {
  return {
    chainId: r.string('chain id'), height: r.u64('height'), timeMs: r.u64('time'),
    prevHash: r.fixed(32, 'prev hash'), txRoot: r.fixed(32, 'tx root'), stateRoot: r.fixed(32, 'state root'),
    validatorsHash: r.fixed(32, 'validators hash'), nextValidatorsHash: r.fixed(32, 'next validators hash'),
    proposer: r.fixed(32, 'proposer'), lastCommitHash: r.fixed(32, 'last commit hash'),
  };
}

export function encodeHeader(h: Header): Uint8Array {
  const w = new BorshWriter();
  writeHeader(w, h);
  return w.finish();
}

/** The block hash: `sha256(borsh(header))`. */
export function headerHash(h: Header): Uint8Array {
  return sha256(encodeHeader(h));
}

export function decodeHeader(bytes: Uint8Array): Header {
  const r = new BorshReader(bytes, 'header', HEADER_BYTES_MAX);
  const out = readHeader(r);
  r.end();
  return out;
}

/** borsh(Vote): the message a validator signs in the vote domain. */
export function encodeVote(v: Vote): Uint8Array {
  const w = new BorshWriter().u8(v.kind === 'prevote' ? 0 : 1).u64(v.height).u32(v.round);
  if (v.value === null) w.u8(0);
  else w.u8(1).fixed(v.value, 32, 'vote value');
  return w.finish();
}

/** The precommit every signature of a certificate signs. */
export function certificateVote(c: CommitCertificate): Vote {
  return { kind: 'precommit', height: c.height, round: c.round, value: c.blockHash };
}

function writeCertificate(w: BorshWriter, c: CommitCertificate): void {
  w.u64(c.height).u32(c.round).fixed(c.blockHash, 32, 'block hash').u32(c.signatures.length);
  for (const s of c.signatures) w.u32(s.validatorIndex).fixed(s.signature, 64, 'signature');
}

function readCertificate(r: BorshReader): CommitCertificate {
  return {
    height: r.u64('height'), round: r.u32('round'), blockHash: r.fixed(32, 'block hash'),
    signatures: r.vec('signatures', 68, () => ({
      validatorIndex: r.u32('validator index'), signature: r.fixed(64, 'signature'),
    })),
  };
}

export function encodeCertificate(c: CommitCertificate): Uint8Array {
  const w = new BorshWriter();
  writeCertificate(w, c);
  return w.finish();
}

export function decodeCertificate(bytes: Uint8Array): CommitCertificate {
  const r = new BorshReader(bytes, 'commit certificate', CERTIFICATE_BYTES_MAX);
  const out = readCertificate(r);
  r.end();
  return out;
}

export function encodeBlock(b: Block): Uint8Array {
  const w = new BorshWriter();
  writeHeader(w, b.header);
  w.u32(b.txs.length);
  for (const t of b.txs) w.raw(encodeSignedTx(t));
  if (b.lastCommit === null) w.u8(0);
  else { w.u8(1); writeCertificate(w, b.lastCommit); }
  return w.finish();
}

export function decodeBlock(bytes: Uint8Array, maxBytes = BLOCK_BYTES_CAP): Block {
  const r = new BorshReader(bytes, 'block', Math.min(maxBytes, BLOCK_BYTES_CAP));
  const header = readHeader(r);
  // The smallest signed transaction: empty chain id, sender, nonce, a delete of nothing, signature.
  const txs = r.vec('transactions', 4 + 32 + 8 + 1 + 4 + 64, () => readSignedTx(r));
  const lastCommit = r.option('last commit', () => readCertificate(r));
  r.end();
  return { header, txs, lastCommit };
}

/** The root a block's header must carry as its `tx_root`. */
export function computeTxRoot(txs: SignedTx[]): Uint8Array {
  return merkleRoot(txs.map((t) => txHash(t)));
}

/** `sha256(borsh(Vec<Validator>))`, committed in every header. */
export function validatorSetHash(validators: Validator[]): Uint8Array {
  const w = new BorshWriter().u32(validators.length);
  for (const v of validators) w.fixed(v.publicKey, 32, 'validator key').u64(v.power);
  return sha256(w.finish());
}

/** Decodes a validator list as the state and `ledger_getSetChanges` encode it. */
export function decodeValidatorEntries(bytes: Uint8Array): ValidatorEntry[] {
  const r = new BorshReader(bytes, 'validator list', VALIDATORS_BYTES_MAX);
  const out = r.vec('validators', 4 + 32 + 32 + 8, () => ({
    name: r.string('name'), publicKey: r.fixed(32, 'public key'), nodeKey: r.fixed(32, 'node key'), power: r.u64('power'),
  }));
  r.end();
  return out;
}

export function encodeValidatorEntries(entries: ValidatorEntry[]): Uint8Array {
  const w = new BorshWriter().u32(entries.length);
  for (const v of entries) w.string(v.name).fixed(v.publicKey, 32, 'public key').fixed(v.nodeKey, 32, 'node key').u64(v.power);
  return w.finish();
}

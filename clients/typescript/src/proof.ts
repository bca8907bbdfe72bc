/**
 * Proof verification, the same chain of checks as `tally query … --prove`
 * (node/src/client.rs): a value against a block's state root (or a
 * transaction against its tx root), the block's header against its hash,
 * the block's certificate against the validator set of its height, and
 * that set proven from the genesis set through every set change. Nothing
 * but the genesis is trusted.
 *
 * A bad proof never throws: the report says ok:false and `detail` names
 * what failed. Network errors and refusals by the node do throw.
 */

import { TallyDecodeError, asBytes, bytesEqual, fromHex, normHex, toHex } from './bytes.js';
import {
  computeTxRoot, decodeCertificate, decodeHeader, decodeSignedTx, decodeValidatorEntries, encodeTx, headerHash,
} from './encoding.js';
import { type Genesis, genesisHash, genesisValidators } from './genesis.js';
import { sha256, verifyMerkleProof } from './hash.js';
import { Domain, verify } from './keys.js';
import type { TallyClient } from './rpc.js';
import type { AccountInfo, RecordInfo, StateProofInfo } from './api-types.js';
import { decodeAccountState, decodeStateProof, stateKeyHash, verifyStateProof } from './state.js';
import type { Header, StateKey } from './types.js';
import { type ValidatorSet, validatorSet, verifyCertificate } from './verify.js';

export interface ProofReport {
  ok: boolean;
  /** The value (or transaction) is proven under the root the block's header carries. */
  rootMatches: boolean;
  /** The block's certificate holds for the validator set proven for its height. */
  certificateHolds: boolean;
  height: bigint;
  /** The block hash, `0x` hex ('' when no block was reached). */
  blockHash: string;
  detail: string;
}

export interface ProofOptions {
  /** The genesis to trust; by default the one the node returns. */
  trustedGenesis?: Genesis;
  /** When given, the genesis (trusted or the node's) must have this hash. */
  genesisHash?: string;
}

/** `ledger_getSetChanges` returns at most this many changes a page. */
export const SET_CHANGES_PAGE_MAX = 16;

/** Runs a check; a decode error becomes the reason it failed. */
function attempt<X>(what: string, f: () => X): X | string {
  try {
    return f();
  } catch (e) {
    if (e instanceof TallyDecodeError || e instanceof RangeError) return `${what}: ${e.message}`;
    throw e;
  }
}

interface Trusted { chainId: string; set: ValidatorSet; walked: number }

/**
 * The validator set that decides `height`, proven from the genesis through
 * each set change (`proven_set` in node/src/client.rs), or why not.
 */
export async function provenSet(client: TallyClient, height: bigint, opts: ProofOptions = {}): Promise<Trusted | string> {
  const genesis = opts.trustedGenesis ?? (await client.getGenesis());
  if (opts.genesisHash !== undefined) {
    const got = attempt('genesis', () => genesisHash(genesis));
    if (got !== normHex(opts.genesisHash)) return `the genesis has hash ${got}, not the trusted ${normHex(opts.genesisHash)}`;
  }
  const chainId = genesis.chain_id;
  const first = attempt('genesis validators', () => validatorSet(genesisValidators(genesis)));
  if (typeof first === 'string') return `the genesis validator set is invalid: ${first}`;
  let set = first;
  let after = 0n;
  let walked = 0;
  for (;;) {
    const page = await client.getSetChanges(after);
    for (const change of page) {
      const at = change.height;
      if (at <= after) return `the node listed the set change at ${at} after the one at ${after}`;
      if (at > height) return { chainId, set, walked };
      const next = attempt(`the set change at height ${at}`, () => {
        const header = decodeHeader(fromHex(change.header, 'set change header'));
        const cert = decodeCertificate(fromHex(change.certificate, 'set change certificate'));
        if (header.height + 1n !== at || cert.height !== header.height || !bytesEqual(cert.blockHash, headerHash(header))) {
          return 'its header or certificate is for another block';
        }
        if (!bytesEqual(header.validatorsHash, set.hash)) {
          return `block ${header.height} was decided by validators ${toHex(header.validatorsHash)}, not by the set proven before it (${toHex(set.hash)}): a change is missing`;
        }
        const bad = verifyCertificate(cert, set, chainId);
        if (bad) return `the certificate of block ${header.height}: ${bad}`;
        const nextSet = validatorSet(decodeValidatorEntries(fromHex(change.validators, 'set change validators')));
        if (typeof nextSet === 'string') return `the new set is invalid: ${nextSet}`;
        if (!bytesEqual(nextSet.hash, header.nextValidatorsHash)) return `the listed validators are not the ones block ${header.height} names`;
        return nextSet;
      });
      if (typeof next === 'string') return `the set change at height ${at}: ${next}`;
      set = next;
      after = at;
      walked++;
    }
    if (page.length < SET_CHANGES_PAGE_MAX) return { chainId, set, walked };
  }
}

interface BlockCheck { header: Header | null; blockHash: string; certificateHolds: boolean; problems: string[]; signers: number }

/** The header (encoded) of `height` and its certificate (encoded), against the proven set. */
function checkBlock(trusted: Trusted, headerHex: string, certHex: string, height: bigint): BlockCheck {
  const problems: string[] = [];
  const header = attempt('header', () => decodeHeader(fromHex(headerHex, 'header')));
  if (typeof header === 'string') return { header: null, blockHash: '', certificateHolds: false, problems: [header], signers: 0 };
  const hash = headerHash(header);
  if (header.height !== height) problems.push(`the header is of height ${header.height}, not ${height}`);
  if (header.chainId !== trusted.chainId) problems.push(`the header names chain ${header.chainId}, not ${trusted.chainId}`);
  const cert = attempt('certificate', () => decodeCertificate(fromHex(certHex, 'certificate')));
  let holds = false;
  let signers = 0;
  if (typeof cert === 'string') problems.push(cert);
  else if (!bytesEqual(cert.blockHash, hash) || cert.height !== header.height) problems.push('the certificate is for another block');
  else if (!bytesEqual(header.validatorsHash, trusted.set.hash)) {
    problems.push(`block ${header.height} names validators ${toHex(header.validatorsHash)}, not the set proven for its height (${toHex(trusted.set.hash)})`);
  } else {
    const bad = verifyCertificate(cert, trusted.set, trusted.chainId);
    if (bad) problems.push(`certificate: ${bad}`);
    else { holds = true; signers = cert.signatures.length; }
  }
  return { header, blockHash: toHex(hash), certificateHolds: holds, problems, signers };
}

function report(height: bigint, blockHash: string, rootMatches: boolean, certificateHolds: boolean, problems: string[], success: string): ProofReport {
  const ok = rootMatches && certificateHolds && problems.length === 0;
  return { ok, rootMatches, certificateHolds, height, blockHash, detail: ok ? success : problems.join('; ') };
}

const walkedNote = (t: Trusted) => (t.walked ? ` (the validator set proven from genesis through ${t.walked} change(s))` : '');

/** A state proof for `key` holding `value` (null: absent), tied to its block. */
async function checkStateProof(
  client: TallyClient, key: StateKey, value: Uint8Array | null, p: StateProofInfo | undefined, height: bigint, opts: ProofOptions,
  extra: string[],
): Promise<ProofReport> {
  if (!p) return report(height, '', false, false, ['the node returned no proof'], '');
  if (height === 0n) {
    return report(0n, '', false, false, ['the state is the genesis state (height 0): no block certifies its root yet'], '');
  }
  const trusted = await provenSet(client, height, opts);
  if (typeof trusted === 'string') return report(height, '', false, false, [trusted], '');
  const block = checkBlock(trusted, p.header, p.certificate, height);
  const problems = [...extra, ...block.problems];
  let rootMatches = false;
  const why = attempt('state proof', () => {
    const root = fromHex(p.stateRoot, 'state root');
    const bad = verifyStateProof(root, stateKeyHash(key), value, decodeStateProof(fromHex(p.proof, 'state proof')));
    if (bad) return `state proof does not verify: ${bad}`;
    if (block.header && !bytesEqual(block.header.stateRoot, root)) return 'the header does not carry this state root';
    return null;
  });
  if (why) problems.push(why);
  else rootMatches = block.header !== null && extra.length === 0;
  return report(height, block.blockHash, rootMatches, block.certificateHolds, problems,
    `valid: state root ${normHex(p.stateRoot).slice(0, 10)} of block ${block.blockHash.slice(0, 10)} (height ${height}) certified by ${block.signers} validators${walkedNote(trusted)}`);
}

/** An account's state at the latest height, proven down to the genesis validators. */
export async function verifyAccountProof(
  client: TallyClient, account: string, opts: ProofOptions = {},
): Promise<ProofReport & { account: AccountInfo }> {
  const owner = asBytes(account, 'account', 32);
  const info = await client.getAccount(owner, true);
  const value = info.proof?.value === undefined ? null : attempt('proof value', () => fromHex(info.proof!.value!, 'proof value'));
  const extra: string[] = [];
  if (typeof value === 'string') extra.push(value);
  else if (value === null && info.exists) extra.push('the node says the account exists but proves it absent');
  else if (value !== null) {
    const state = attempt('proof value', () => decodeAccountState(value));
    if (typeof state === 'string') extra.push(state);
    else if (state.balance !== info.balance || state.nonce !== info.nonce || state.role !== info.role || state.active !== info.active || !info.exists) {
      extra.push('the proven account differs from the one reported');
    }
  }
  const r = await checkStateProof(client, { kind: 'account', owner }, typeof value === 'string' ? null : value, info.proof, info.height, opts, extra);
  return { ...r, account: info };
}

/** A record (key as bytes, or hex) in `owner`'s namespace, proven like an account. */
export async function verifyRecordProof(
  client: TallyClient, owner: string, key: Uint8Array | string, opts: ProofOptions = {},
): Promise<ProofReport & { record: RecordInfo }> {
  const ownerBytes = asBytes(owner, 'owner', 32);
  const keyBytes = asBytes(key, 'record key');
  const info = await client.getRecord(ownerBytes, keyBytes, true);
  const extra: string[] = [];
  const proven = info.proof?.value === undefined ? null : attempt('proof value', () => fromHex(info.proof!.value!, 'proof value'));
  if (typeof proven === 'string') extra.push(proven);
  else if ((proven === null) !== !info.exists || (proven && info.value !== undefined && normHex(info.value) !== toHex(proven))) {
    extra.push('the proven record differs from the one reported');
  }
  const r = await checkStateProof(client, { kind: 'record', owner: ownerBytes, key: keyBytes },
    typeof proven === 'string' ? null : proven, info.proof, info.height, opts, extra);
  return { ...r, record: info };
}

/** A committed transaction: its bytes against its hash, its inclusion under the block's tx root, the block's certificate. */
export async function verifyTxProof(client: TallyClient, txHash: string, opts: ProofOptions = {}): Promise<ProofReport> {
  const info = await client.getTx(txHash);
  if (info.status !== 'committed' || info.height === undefined) {
    return report(info.height ?? 0n, '', false, false, [`the transaction is ${info.status}${info.reason ? `: ${info.reason}` : ''}, not committed`], '');
  }
  const height = info.height;
  const problems: string[] = [];
  const leaf = attempt('tx hash', () => fromHex(txHash, 'tx hash', 32));
  if (typeof leaf === 'string') return report(height, '', false, false, [leaf], '');
  if (info.tx === undefined) problems.push('the node returned no transaction bytes');
  else {
    const bad = attempt('transaction', () => {
      const bytes = fromHex(info.tx!, 'transaction');
      if (!bytesEqual(sha256(bytes), leaf)) return `the transaction's bytes hash to ${toHex(sha256(bytes))}, not ${normHex(txHash)}`;
      const signed = decodeSignedTx(bytes);
      if (!verify(signed.tx.sender, Domain.Tx, signed.tx.chainId, encodeTx(signed.tx), signed.signature)) return "the sender's signature does not verify";
      return null;
    });
    if (bad) problems.push(bad);
  }
  const trusted = await provenSet(client, height, opts);
  if (typeof trusted === 'string') return report(height, '', false, false, [...problems, trusted], '');
  const block = await client.getBlockByHeight(height);
  const certHex = block.certificate?.encoded ?? (await client.getCommit(height)).encoded;
  const checked = checkBlock(trusted, block.encodedHeader, certHex, height);
  problems.push(...checked.problems);
  let rootMatches = false;
  const p = info.proof;
  if (!p) problems.push('the node returned no inclusion proof');
  else if (checked.header) {
    const why = attempt('inclusion proof', () => {
      const root = fromHex(p.txRoot, 'tx root', 32);
      if (!bytesEqual(root, checked.header!.txRoot)) return 'the proof is against another tx root than the header carries';
      const path = p.path.map((h, i) => fromHex(h, `path[${i}]`, 32));
      if (!verifyMerkleProof(root, leaf, { index: p.index, leafCount: p.leafCount, path })) return 'the inclusion proof does not lead to the tx root';
      if (info.index !== undefined && BigInt(info.index) !== p.index) return `the proof is for index ${p.index}, not ${info.index}`;
      return null;
    });
    if (why) problems.push(why);
    else rootMatches = true;
  }
  return report(height, checked.blockHash, rootMatches, checked.certificateHolds, problems,
    `valid: transaction ${normHex(txHash).slice(0, 10)} at index ${info.index} of block ${checked.blockHash.slice(0, 10)} (height ${height}), certified by ${checked.signers} validators${walkedNote(trusted)}`);
}

/** A block: its header against its hash, its transactions against its tx root, its certificate against the proven set. */
export async function verifyBlock(client: TallyClient, height: bigint, opts: ProofOptions = {}): Promise<ProofReport> {
  const block = await client.getBlockByHeight(height, true);
  const trusted = await provenSet(client, height, opts);
  if (typeof trusted === 'string') return report(height, '', false, false, [trusted], '');
  const certHex = block.certificate?.encoded ?? (await client.getCommit(height)).encoded;
  const checked = checkBlock(trusted, block.encodedHeader, certHex, height);
  const problems = [...checked.problems];
  let rootMatches = false;
  if (checked.header) {
    const why = attempt('block', () => {
      if (checked.blockHash !== normHex(block.hash)) return `header hash mismatch: the header hashes to ${checked.blockHash}, the node says ${normHex(block.hash)}`;
      if (toHex(checked.header!.stateRoot) !== normHex(block.header.stateRoot) || toHex(checked.header!.txRoot) !== normHex(block.header.txRoot)) {
        return 'the encoded header differs from the header fields reported';
      }
      const txs = (block.txs ?? []).map((t, i) => decodeSignedTx(fromHex(t, `txs[${i}]`)));
      const hashes = txs.map((t, i) => toHex(sha256(fromHex(block.txs![i]!, `txs[${i}]`))));
      if (hashes.length !== block.txHashes.length || hashes.some((h, i) => h !== normHex(block.txHashes[i]!))) {
        return 'the transactions do not hash to the tx hashes reported';
      }
      if (!bytesEqual(computeTxRoot(txs), checked.header!.txRoot)) return 'tx root mismatch: the transactions do not make the root the header carries';
      return null;
    });
    if (why) problems.push(why);
    else rootMatches = true;
  }
  return report(height, checked.blockHash, rootMatches, checked.certificateHolds, problems,
    `valid: block ${checked.blockHash.slice(0, 10)} (height ${height}) with ${block.txHashes.length} txs, certified by ${checked.signers} validators${walkedNote(trusted)}`);
}

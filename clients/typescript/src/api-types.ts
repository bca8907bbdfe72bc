/**
 * The results of the ledger_* methods (rpc/src/types.rs), as this client
 * returns them. Conventions: hashes, keys and byte strings stay `0x` hex
 * strings (as the node writes them); every u64 (heights, times, balances,
 * nonces, powers, sizes) is a bigint; u32 values (indices, rounds, counts)
 * are numbers.
 */

export interface TxSubmitted { hash: string }
export interface TxCommitted { hash: string; height: bigint; index: number }
export type BatchItem = { hash: string; error?: undefined } | { hash?: undefined; error: { code: number; kind: string; message: string } };

/** An RFC 6962 audit path of a tx hash under the block's txRoot. */
export interface TxProofInfo { txRoot: string; index: bigint; leafCount: bigint; path: string[] }

export interface TxInfo {
  hash: string;
  status: 'pending' | 'rejected' | 'committed';
  reason?: string;
  height?: bigint;
  index?: number;
  /** The signed transaction, encoded, when the node holds it. */
  tx?: string;
  proof?: TxProofInfo;
}

export interface HeaderInfo {
  chainId: string; height: bigint; timeMs: bigint; prevHash: string; txRoot: string; stateRoot: string;
  validatorsHash: string; nextValidatorsHash: string; proposer: string; lastCommitHash: string;
}

export interface CertificateInfo {
  height: bigint; round: number; blockHash: string;
  signatures: { validatorIndex: number; signature: string }[];
  /** The certificate's canonical encoding. */
  encoded: string;
}

export interface BlockInfo {
  hash: string;
  header: HeaderInfo;
  txHashes: string[];
  /** Encoded signed transactions, with `full = true`. */
  txs?: string[];
  certificate: CertificateInfo | null;
  /** The header's canonical encoding (its SHA-256 is `hash`). */
  encodedHeader: string;
}

export interface HeadInfo { height: bigint; hash: string; timeMs: bigint; txCount: number }

export interface PeerSyncInfo { peerId: string; height: bigint; believedHeight: bigint; score: number; banned: boolean }
export interface SyncInfo {
  targetHeight: bigint; blocksBehind: bigint; blocksPerSecond: number; pendingBlocks: number; requests: number; peers: PeerSyncInfo[];
}
export interface StatusInfo {
  chainId: string; nodeId: string; role: string; latestHeight: bigint; latestHash: string | null; latestTime: bigint | null;
  stateRoot: string; catchingUp: boolean; peers: number; round: number; sync: SyncInfo;
}

export interface ValidatorInfo { index: number; name: string; publicKey: string; peerId: string; power: bigint }

/** A change of the validator set: the first height it decides, and the block before it. */
export interface SetChangeInfo { height: bigint; header: string; certificate: string; validators: string }
/** A committed block as stored: its canonical encoding and the certificate that decided it (hex). */
export interface RawBlock { height: bigint; block: string; certificate: string }

export interface HealthInfo { ok: boolean; height: bigint; peers: number }
export interface MempoolInfo { size: bigint; bytes: bigint }

export interface EvidenceInfo { validatorIndex: number; height: bigint; round: number; kind: string; first: string; second: string }
export interface EvidencePage { evidence: EvidenceInfo[]; nextCursor: string | null }

/** A state proof and what it is checked against. */
export interface StateProofInfo {
  stateRoot: string;
  /** The proof's canonical encoding. */
  proof: string;
  /** The stored value's encoding (absent for a proof of absence). */
  value?: string;
  /** The encoded header and certificate of `height` (empty at height 0). */
  header: string;
  certificate: string;
}

export interface AccountInfo {
  exists: boolean; balance: bigint; nonce: bigint; role?: string; active: boolean;
  /** The height whose state this is. */
  height: bigint;
  proof?: StateProofInfo;
}

export interface RecordInfo { exists: boolean; value?: string; height: bigint; proof?: StateProofInfo }

export interface ChangeInfo {
  id: string;
  /** `{ kind: "grant", account, role }`, … as the node writes it. */
  change: Record<string, unknown>;
  proposer: string; proposedAt: bigint; expiresAt: bigint; approvals: string[]; approvalsCounted?: number;
  status: 'pending' | 'applied' | 'withdrawn' | 'expired' | string;
  at?: bigint; height: bigint; proof?: StateProofInfo;
}

export interface GovernanceInfo {
  threshold: number; expiryBlocks: bigint; admins: string[]; pending: ChangeInfo[]; height: bigint; proof?: StateProofInfo;
}

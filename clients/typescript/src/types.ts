/**
 * The ledger's data as this client holds it (ledger/src/types.rs,
 * governance.rs, membership.rs). Keys, hashes and signatures are bytes;
 * u64 values are bigint; u32 values are number.
 */

export type Role = 'admin' | 'member';

/** A change that needs the admins' threshold (governance.rs `Change`). */
export type Change =
  | { kind: 'grant'; account: Uint8Array; role: Role }
  | { kind: 'revoke'; account: Uint8Array }
  | { kind: 'add_validator'; name: string; publicKey: Uint8Array; nodeKey: Uint8Array; power: bigint }
  | { kind: 'remove_validator'; publicKey: Uint8Array }
  | { kind: 'set_power'; publicKey: Uint8Array; power: bigint }
  | { kind: 'rotate_key'; publicKey: Uint8Array; newKey: Uint8Array; consent: Uint8Array }
  | { kind: 'add_replica'; name: string; nodeKey: Uint8Array }
  | { kind: 'remove_replica'; nodeKey: Uint8Array };

/** What a transaction does (types.rs `Op`). */
export type Op =
  | { kind: 'transfer'; to: Uint8Array; amount: bigint }
  | { kind: 'put'; key: Uint8Array; value: Uint8Array }
  | { kind: 'delete'; key: Uint8Array }
  | { kind: 'grant'; account: Uint8Array; role: Role }
  | { kind: 'revoke'; account: Uint8Array }
  | { kind: 'propose'; change: Change }
  | { kind: 'approve'; change: Uint8Array };

export interface Tx {
  chainId: string;
  sender: Uint8Array;
  /** Strictly the sender's previous nonce plus one (the first is 1). */
  nonce: bigint;
  op: Op;
}

export interface SignedTx {
  tx: Tx;
  signature: Uint8Array;
}

export interface Header {
  chainId: string;
  height: bigint;
  timeMs: bigint;
  prevHash: Uint8Array;
  txRoot: Uint8Array;
  stateRoot: Uint8Array;
  validatorsHash: Uint8Array;
  nextValidatorsHash: Uint8Array;
  proposer: Uint8Array;
  lastCommitHash: Uint8Array;
}

export type VoteKind = 'prevote' | 'precommit';

export interface Vote {
  kind: VoteKind;
  height: bigint;
  round: number;
  /** The block hash, or null for a nil vote. */
  value: Uint8Array | null;
}

export interface CommitSig {
  validatorIndex: number;
  signature: Uint8Array;
}

export interface CommitCertificate {
  height: bigint;
  round: number;
  blockHash: Uint8Array;
  signatures: CommitSig[];
}

export interface Block {
  header: Header;
  txs: SignedTx[];
  lastCommit: CommitCertificate | null;
}

/** A validator as consensus counts it. */
export interface Validator {
  publicKey: Uint8Array;
  power: bigint;
}

/** A validator as the state records it (membership.rs `ValidatorEntry`). */
export interface ValidatorEntry extends Validator {
  name: string;
  nodeKey: Uint8Array;
}

/** A key in the state tree (state.rs `StateKey`). */
export type StateKey =
  | { kind: 'account'; owner: Uint8Array }
  | { kind: 'record'; owner: Uint8Array; key: Uint8Array }
  | { kind: 'council' }
  | { kind: 'change'; id: Uint8Array }
  | { kind: 'validators' }
  | { kind: 'next_validators' }
  | { kind: 'replicas' };

/** What the state holds for an account. */
export interface AccountState {
  role: Role;
  /** False once revoked. */
  active: boolean;
  balance: bigint;
  /** The nonce of the account's last transaction (0 before the first). */
  nonce: bigint;
}

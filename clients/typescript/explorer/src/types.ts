// The JSON shapes the explorer reads (docs/rpc.md, rpc/src/types.rs).
// u64 values arrive as decimal strings.

export interface Status {
  chainId: string;
  nodeId: string;
  role: string;
  latestHeight: string;
  latestHash: string | null;
  latestTime: string | null;
  stateRoot: string;
  catchingUp: boolean;
  peers: number;
  round: number;
  sync: { targetHeight: string; blocksBehind: string; blocksPerSecond: number; pendingBlocks: number; requests: number };
}

export interface Header {
  chainId: string;
  height: string;
  timeMs: string;
  prevHash: string;
  txRoot: string;
  stateRoot: string;
  validatorsHash: string;
  nextValidatorsHash: string;
  proposer: string;
  lastCommitHash: string;
}

export interface Certificate {
  height: string;
  round: number;
  blockHash: string;
  signatures: Array<{ validatorIndex: number; signature: string }>;
  encoded: string;
}

export interface Block {
  hash: string;
  header: Header;
  txHashes: string[];
  txs?: string[];
  certificate: Certificate | null;
  encodedHeader: string;
}

export interface TxInfo {
  hash: string;
  status: 'pending' | 'rejected' | 'committed';
  reason?: string;
  height?: string;
  index?: number;
  tx?: string;
  proof?: { txRoot: string; index: string; leafCount: string; path: string[] };
}

export interface Validator {
  index: number;
  name: string;
  publicKey: string;
  peerId: string;
  power: string;
}

export interface Account {
  exists: boolean;
  balance: string;
  nonce: string;
  role?: string;
  active: boolean;
  height: string;
}

export interface RecordInfo {
  exists: boolean;
  value?: string;
  height: string;
}

export interface Evidence {
  validatorIndex: number;
  height: string;
  round: number;
  kind: string;
  first: string;
  second: string;
}

export interface EvidencePage {
  evidence: Evidence[];
  nextCursor: string | null;
}

/**
 * From the node's JSON to the typed results of api-types.ts: u64 decimal
 * strings become bigint. A field missing or of the wrong type is an error
 * naming it.
 */

import { TallyDecodeError } from './bytes.js';
import { toU64 } from './genesis.js';
import type * as T from './api-types.js';

type Json = Record<string, unknown>;

export function obj(v: unknown, what: string): Json {
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new TallyDecodeError(`${what}: expected an object`);
  return v as Json;
}

function arr(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new TallyDecodeError(`${what}: expected an array`);
  return v;
}

const big = (o: Json, k: string, what: string): bigint => toU64(o[k], `${what}.${k}`);
const optBig = (o: Json, k: string, what: string): bigint | undefined =>
  o[k] === undefined || o[k] === null ? undefined : toU64(o[k], `${what}.${k}`);

export const toTxCommitted = (v: unknown): T.TxCommitted => {
  const o = obj(v, 'submitTxAndWait result');
  return { ...(o as object), height: big(o, 'height', 'result') } as T.TxCommitted;
};

export function toTxInfo(v: unknown): T.TxInfo {
  const o = obj(v, 'tx');
  const out = { ...o, height: optBig(o, 'height', 'tx') } as Json;
  if (out['height'] === undefined) delete out['height'];
  if (o['proof'] != null) {
    const p = obj(o['proof'], 'tx.proof');
    out['proof'] = { ...p, index: big(p, 'index', 'tx.proof'), leafCount: big(p, 'leafCount', 'tx.proof') };
  }
  return out as unknown as T.TxInfo;
}

function toHeader(v: unknown): T.HeaderInfo {
  const o = obj(v, 'header');
  return { ...o, height: big(o, 'height', 'header'), timeMs: big(o, 'timeMs', 'header') } as unknown as T.HeaderInfo;
}

export function toCertificate(v: unknown): T.CertificateInfo {
  const o = obj(v, 'certificate');
  return { ...o, height: big(o, 'height', 'certificate') } as unknown as T.CertificateInfo;
}

export function toBlock(v: unknown): T.BlockInfo {
  const o = obj(v, 'block');
  return {
    ...o,
    header: toHeader(o['header']),
    certificate: o['certificate'] == null ? null : toCertificate(o['certificate']),
  } as unknown as T.BlockInfo;
}

export function toHead(v: unknown): T.HeadInfo {
  const o = obj(v, 'head');
  return { ...o, height: big(o, 'height', 'head'), timeMs: big(o, 'timeMs', 'head') } as unknown as T.HeadInfo;
}

export function toStatus(v: unknown): T.StatusInfo {
  const o = obj(v, 'status');
  const s = obj(o['sync'], 'status.sync');
  return {
    ...o,
    latestHeight: big(o, 'latestHeight', 'status'),
    latestTime: optBig(o, 'latestTime', 'status') ?? null,
    sync: {
      ...s,
      targetHeight: big(s, 'targetHeight', 'sync'),
      blocksBehind: big(s, 'blocksBehind', 'sync'),
      peers: arr(s['peers'], 'sync.peers').map((p) => {
        const q = obj(p, 'sync peer');
        return { ...q, height: big(q, 'height', 'peer'), believedHeight: big(q, 'believedHeight', 'peer') };
      }),
    },
  } as unknown as T.StatusInfo;
}

export const toValidators = (v: unknown): T.ValidatorInfo[] =>
  arr(v, 'validators').map((x) => {
    const o = obj(x, 'validator');
    return { ...o, power: big(o, 'power', 'validator') } as unknown as T.ValidatorInfo;
  });

export const toSetChanges = (v: unknown): T.SetChangeInfo[] =>
  arr(v, 'set changes').map((x) => {
    const o = obj(x, 'set change');
    return { ...o, height: big(o, 'height', 'set change') } as unknown as T.SetChangeInfo;
  });

export const toRawBlocks = (v: unknown): T.RawBlock[] =>
  arr(v, 'raw blocks').map((x) => {
    const o = obj(x, 'raw block');
    return { ...o, height: big(o, 'height', 'raw block') } as unknown as T.RawBlock;
  });

export function toHealth(v: unknown): T.HealthInfo {
  const o = obj(v, 'health');
  return { ...o, height: big(o, 'height', 'health') } as unknown as T.HealthInfo;
}

export function toMempool(v: unknown): T.MempoolInfo {
  const o = obj(v, 'mempool');
  return { size: big(o, 'size', 'mempool'), bytes: big(o, 'bytes', 'mempool') };
}

export function toEvidencePage(v: unknown): T.EvidencePage {
  const o = obj(v, 'evidence page');
  return {
    nextCursor: (o['nextCursor'] as string | null) ?? null,
    evidence: arr(o['evidence'], 'evidence').map((x) => {
      const e = obj(x, 'evidence');
      return { ...e, height: big(e, 'height', 'evidence') } as unknown as T.EvidenceInfo;
    }),
  };
}

export function toAccount(v: unknown): T.AccountInfo {
  const o = obj(v, 'account');
  return {
    ...o, balance: big(o, 'balance', 'account'), nonce: big(o, 'nonce', 'account'), height: big(o, 'height', 'account'),
  } as unknown as T.AccountInfo;
}

export function toRecord(v: unknown): T.RecordInfo {
  const o = obj(v, 'record');
  return { ...o, height: big(o, 'height', 'record') } as unknown as T.RecordInfo;
}

export function toChange(v: unknown): T.ChangeInfo {
  const o = obj(v, 'change');
  const out = {
    ...o,
    proposedAt: big(o, 'proposedAt', 'change'),
    expiresAt: big(o, 'expiresAt', 'change'),
    height: big(o, 'height', 'change'),
    at: optBig(o, 'at', 'change'),
  } as Json;
  if (out['at'] === undefined) delete out['at'];
  return out as unknown as T.ChangeInfo;
}

export function toGovernance(v: unknown): T.GovernanceInfo {
  const o = obj(v, 'governance');
  return {
    ...o,
    expiryBlocks: big(o, 'expiryBlocks', 'governance'),
    height: big(o, 'height', 'governance'),
    pending: arr(o['pending'], 'governance.pending').map(toChange),
  } as unknown as T.GovernanceInfo;
}

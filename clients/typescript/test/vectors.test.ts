// The golden vectors written by ledger/tests/wire_vectors.rs, rebuilt byte
// for byte from their seeds and fields.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import {
  Domain, Keypair, decodeHeader, decodeSignedTx, encodeHeader, encodeSignedTx, encodeStateKey, encodeTx, encodeVote,
  fromHex, headerHash, rotationMessage, signRotationConsent, signTx, signingBytes, stateKeyHash, toHex, txHash,
  txSigningBytes, verify, type Change, type Header, type Op, type Role, type StateKey, type Tx,
} from '../src/index.js';

type J = Record<string, any>;
const vectors: J = JSON.parse(readFileSync(new URL('../../test/vectors.json', import.meta.url), 'utf8'));

const b = (h: string) => fromHex(h);

function changeFromJson(c: J): Change {
  switch (c['kind']) {
    case 'grant': return { kind: 'grant', account: b(c['account']), role: c['role'] as Role };
    case 'revoke': return { kind: 'revoke', account: b(c['account']) };
    case 'add_validator':
      return { kind: 'add_validator', name: c['name'], publicKey: b(c['public_key']), nodeKey: b(c['node_key']), power: BigInt(c['power']) };
    case 'remove_validator': return { kind: 'remove_validator', publicKey: b(c['public_key']) };
    case 'set_power': return { kind: 'set_power', publicKey: b(c['public_key']), power: BigInt(c['power']) };
    case 'rotate_key': return { kind: 'rotate_key', publicKey: b(c['public_key']), newKey: b(c['new_key']), consent: b(c['consent']) };
    case 'add_replica': return { kind: 'add_replica', name: c['name'], nodeKey: b(c['node_key']) };
    case 'remove_replica': return { kind: 'remove_replica', nodeKey: b(c['node_key']) };
    default: throw new Error(`unknown change kind in vectors: ${c['kind']}`);
  }
}

function opFromJson(o: J): Op {
  switch (o['kind']) {
    case 'transfer': return { kind: 'transfer', to: b(o['to']), amount: BigInt(o['amount']) };
    case 'put': return { kind: 'put', key: b(o['key']), value: b(o['value']) };
    case 'delete': return { kind: 'delete', key: b(o['key']) };
    case 'grant': return { kind: 'grant', account: b(o['account']), role: o['role'] as Role };
    case 'revoke': return { kind: 'revoke', account: b(o['account']) };
    case 'propose': return { kind: 'propose', change: changeFromJson(o['change']) };
    case 'approve': return { kind: 'approve', change: b(o['change']) };
    default: throw new Error(`unknown op kind in vectors: ${o['kind']}`);
  }
}

test('the vectors cover every op kind and every change kind', () => {
  const ops = new Set(vectors['transactions'].map((v: J) => v['op']['kind']));
  for (const k of ['transfer', 'put', 'delete', 'grant', 'revoke', 'propose', 'approve']) assert.ok(ops.has(k), k);
  const changes = new Set(vectors['transactions'].filter((v: J) => v['op']['kind'] === 'propose').map((v: J) => v['op']['change']['kind']));
  assert.equal(changes.size, 8);
});

test('domain tags', () => {
  assert.deepEqual(vectors['domains'], {
    tx: Domain.Tx, vote: Domain.Vote, proposal: Domain.Proposal, status: Domain.Status, rotation: Domain.Rotation,
  });
});

for (const v of vectors['transactions'] as J[]) {
  test(`transaction vector ${v['name']}`, () => {
    const key = Keypair.fromSeed(v['seed']);
    assert.equal(key.address, v['sender']);
    const tx: Tx = { chainId: v['chain_id'], sender: key.publicKey, nonce: BigInt(v['nonce']), op: opFromJson(v['op']) };
    assert.equal(toHex(encodeTx(tx)), v['tx'], 'unsigned encoding');
    assert.equal(toHex(txSigningBytes(tx)), v['signing_bytes'], 'signing bytes');
    const signed = signTx(tx, key);
    assert.equal(toHex(signed.signature), v['signature'], 'signature');
    assert.equal(toHex(encodeSignedTx(signed)), v['signed_tx'], 'signed encoding');
    assert.equal(toHex(txHash(signed)), v['hash'], 'hash');
    assert.ok(verify(key.publicKey, Domain.Tx, tx.chainId, encodeTx(tx), signed.signature));
    // And back: decoding the signed bytes gives the same fields.
    const back = decodeSignedTx(b(v['signed_tx']));
    assert.deepEqual(back, signed);
    assert.equal(toHex(encodeSignedTx(back)), v['signed_tx']);
  });
}

test('rotation consent vector', () => {
  const r = vectors['rotation_consent'];
  const old = Keypair.fromSeed(r['old_seed']);
  assert.equal(old.address, r['old_key']);
  const message = rotationMessage(old.publicKey, b(r['new_key']));
  assert.equal(toHex(message), r['message']);
  assert.equal(toHex(signingBytes(Domain.Rotation, r['chain_id'], message)), r['signing_bytes']);
  assert.equal(toHex(signRotationConsent(old, b(r['new_key']), r['chain_id'])), r['signature']);
});

test('vote vectors', () => {
  for (const v of vectors['votes'] as J[]) {
    const key = Keypair.fromSeed(v['seed']);
    assert.equal(key.address, v['public_key']);
    const message = encodeVote({ kind: v['kind'], height: BigInt(v['height']), round: v['round'], value: v['value'] === null ? null : b(v['value']) });
    assert.equal(toHex(message), v['message']);
    assert.equal(toHex(signingBytes(Domain.Vote, vectors['header']['header']['chain_id'], message)), v['signing_bytes']);
    assert.equal(toHex(key.sign(Domain.Vote, 'tally-vectors', message)), v['signature']);
  }
});

test('header vector: encoding, hash, and decoding back', () => {
  const h = vectors['header']['header'];
  const header: Header = {
    chainId: h['chain_id'], height: BigInt(h['height']), timeMs: BigInt(h['time_ms']), prevHash: b(h['prev_hash']),
    txRoot: b(h['tx_root']), stateRoot: b(h['state_root']), validatorsHash: b(h['validators_hash']),
    nextValidatorsHash: b(h['next_validators_hash']), proposer: b(h['proposer']), lastCommitHash: b(h['last_commit_hash']),
  };
  assert.equal(toHex(encodeHeader(header)), vectors['header']['encoding']);
  assert.equal(toHex(headerHash(header)), vectors['header']['hash']);
  assert.deepEqual(decodeHeader(b(vectors['header']['encoding'])), header);
});

test('state key vectors: encodings and tree keys', () => {
  for (const v of vectors['state_keys'] as J[]) {
    const owner = b(v['owner']);
    const keys: Record<string, StateKey> = {
      account: { kind: 'account', owner },
      record: { kind: 'record', owner, key: new TextEncoder().encode('invoice/2026-0001') },
      council: { kind: 'council' },
      validators: { kind: 'validators' },
      next_validators: { kind: 'next_validators' },
      replicas: { kind: 'replicas' },
    };
    const key = keys[v['name']];
    assert.ok(key, `a state key named ${v['name']}`);
    assert.equal(toHex(encodeStateKey(key)), v['encoding'], v['name']);
    assert.equal(toHex(stateKeyHash(key)), v['tree_key'], v['name']);
  }
});

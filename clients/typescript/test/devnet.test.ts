// Every transaction kind committed on a real devnet, the node's refusals,
// batches, proofs (and proofs with one byte changed), and subscriptions.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Keypair, TallyClient, TallyRpcError, decodeBlock, decodeCertificate, encodeSignedTx, fromHex, genesisHash,
  headerHash, signTx, toHex, txHash,
  verifyAccountProof, verifyBlock, verifyRecordProof, verifyTxProof, type Op,
} from '../src/index.js';
import { nodeClient, readKeyFile } from '../src/node.js';
import { startDevnet, type Devnet } from './devnet.js';
import { flipByte, mutatingFetch, waitFor, waitForHeight } from './helpers.js';

const text = (s: string) => new TextEncoder().encode(s);

describe('against a devnet', () => {
  let net: Devnet;
  let client: TallyClient;
  let admin: Keypair;
  let users: Keypair[];
  let chainId: string;

  before(async () => {
    net = await startDevnet();
    client = nodeClient(net.rpc[0]!);
    admin = await readKeyFile(net.adminPem);
    users = await Promise.all(net.userPems.map(readKeyFile));
    chainId = await client.chainId();
    await waitForHeight(client, 1n);
  });

  after(async () => {
    client?.close();
    await net?.stop();
  });

  /** Signs `op` by `key` with the next nonce and waits until it is committed. */
  const commit = async (key: Keypair, op: Op) => client.submitTxAndWait(await client.signOp(key, op));

  test('the key files hold the genesis accounts, and the genesis hashes to block 1\'s prev_hash', async () => {
    const genesis = await client.getGenesis();
    const admins = (genesis.accounts ?? []).filter((a) => a.role === 'admin').map((a) => a.public_key);
    assert.deepEqual(admins, [admin.address]);
    const members = (genesis.accounts ?? []).filter((a) => a.role === 'member').map((a) => a.public_key);
    assert.deepEqual(members, users.map((u) => u.address));
    const block1 = await client.getBlockByHeight(1n);
    assert.equal(genesisHash(genesis), block1.header.prevHash);
  });

  test('transfer', async () => {
    const [from, to] = [users[0]!, users[1]!];
    const before = await client.getAccount(to.publicKey);
    const sent = await client.getAccount(from.publicKey);
    const done = await commit(from, { kind: 'transfer', to: to.publicKey, amount: 1234n });
    assert.ok(done.height >= 1n);
    assert.equal((await client.getAccount(to.publicKey)).balance, before.balance + 1234n);
    const after = await client.getAccount(from.publicKey);
    assert.equal(after.balance, sent.balance - 1234n);
    assert.equal(after.nonce, sent.nonce + 1n);
  });

  test('put and delete a record', async () => {
    const owner = users[0]!;
    await commit(owner, { kind: 'put', key: text('invoice/1'), value: text('paid in full') });
    const rec = await client.getRecord(owner.publicKey, text('invoice/1'));
    assert.equal(rec.exists, true);
    assert.equal(rec.value, toHex(text('paid in full')));
    await commit(owner, { kind: 'delete', key: text('invoice/1') });
    assert.equal((await client.getRecord(owner.publicKey, toHex(text('invoice/1')))).exists, false);
  });

  test('grant and revoke an account; a revoked account is refused as not_a_member', async () => {
    const fresh = Keypair.generate();
    await commit(admin, { kind: 'grant', account: fresh.publicKey, role: 'member' });
    const granted = await client.getAccount(fresh.publicKey);
    assert.deepEqual([granted.exists, granted.role, granted.active], [true, 'member', true]);
    await commit(fresh, { kind: 'put', key: text('k'), value: text('v') });
    await commit(admin, { kind: 'revoke', account: fresh.publicKey });
    assert.equal((await client.getAccount(fresh.publicKey)).active, false);
    const tx = await client.signOp(fresh, { kind: 'delete', key: text('k') });
    await assert.rejects(client.submitTx(tx), (e: unknown) => e instanceof TallyRpcError && e.kind === 'not_a_member' && e.code === 5);
  });

  test('proposals of grant, revoke, add_replica and remove_replica apply at once (threshold 1)', async () => {
    const gov = await client.getGovernance();
    assert.equal(gov.threshold, 1);
    const account = Keypair.generate().publicKey;
    const nodeKey = Keypair.generate().publicKey;
    const changes: Op[] = [
      { kind: 'propose', change: { kind: 'grant', account, role: 'member' } },
      { kind: 'propose', change: { kind: 'revoke', account } },
      { kind: 'propose', change: { kind: 'add_replica', name: 'replica-ts', nodeKey } },
      { kind: 'propose', change: { kind: 'remove_replica', nodeKey } },
    ];
    for (const op of changes) {
      const done = await commit(admin, op);
      const change = await client.getChange(done.hash);
      assert.equal(change.status, 'applied', JSON.stringify(change.change));
      assert.equal(change.at, done.height);
    }
    const revoked = await client.getAccount(account);
    assert.deepEqual([revoked.exists, revoked.active], [true, false]);
  });

  test('an approve is decoded and judged by the node: approving an applied change is rejected', async () => {
    const done = await commit(admin, { kind: 'propose', change: { kind: 'grant', account: Keypair.generate().publicKey, role: 'admin' } });
    const approve = await client.signOp(admin, { kind: 'approve', change: fromHex(done.hash) });
    await assert.rejects(client.submitTxAndWait(approve), (e: unknown) =>
      e instanceof TallyRpcError && e.kind === 'rejected' && /already applied/.test(e.message));
    const info = await client.getTx(toHex(txHash(approve)));
    assert.equal(info.status, 'rejected');
    assert.match(info.reason ?? '', /already applied/);
    // A rejected transaction has no inclusion proof to check.
    const report = await verifyTxProof(client, info.hash);
    assert.equal(report.ok, false);
    assert.match(report.detail, /rejected/);
  });

  test('a validator power change applies two blocks later, and proofs walk through it', async () => {
    const validators = await client.getValidators();
    const target = validators[3]!;
    const done = await commit(admin, { kind: 'propose', change: { kind: 'set_power', publicKey: fromHex(target.publicKey), power: 12n } });
    assert.equal((await client.getChange(done.hash)).status, 'applied');
    await waitForHeight(client, done.height + 3n);
    const changes = await client.getSetChanges(0n);
    assert.equal(changes.length, 1);
    assert.equal(changes[0]!.height, done.height + 2n);
    assert.equal((await client.getValidators(done.height + 2n))[3]!.power, 12n);
    const report = await verifyAccountProof(client, admin.address);
    assert.ok(report.ok, report.detail);
    assert.match(report.detail, /through 1 change/);
  });

  test('raw blocks decode to the blocks the node describes, each with the certificate that decided it', async () => {
    const raw = await client.getRawBlocks(1n, 3);
    assert.deepEqual(raw.map((r) => r.height), [1n, 2n, 3n]);
    for (const r of raw) {
      const block = decodeBlock(fromHex(r.block));
      const cert = decodeCertificate(fromHex(r.certificate));
      const described = await client.getBlockByHeight(r.height);
      assert.equal(toHex(headerHash(block.header)), described.hash);
      assert.equal(toHex(cert.blockHash), described.hash);
    }
    await assert.rejects(client.getRawBlocks(1n, 65), (e: unknown) => e instanceof TallyRpcError && /count/.test(e.message));
  });

  test('a signature by another key is refused as bad_signature; a used nonce as bad_nonce', async () => {
    const [owner, other] = [users[2]!, users[3]!];
    const nonce = await client.nextNonce(owner.publicKey);
    const forged = signTx({ chainId, sender: owner.publicKey, nonce, op: { kind: 'put', key: text('x'), value: text('y') } }, other);
    await assert.rejects(client.submitTx(forged), (e: unknown) => e instanceof TallyRpcError && e.kind === 'bad_signature' && e.code === 2);
    await commit(owner, { kind: 'put', key: text('x'), value: text('1') });
    const stale = signTx({ chainId, sender: owner.publicKey, nonce, op: { kind: 'put', key: text('x'), value: text('2') } }, owner);
    await assert.rejects(client.submitTx(stale), (e: unknown) => e instanceof TallyRpcError && e.kind === 'bad_nonce' && e.code === 4);
  });

  test('a batch: each transaction gets its hash or its own error', async () => {
    const owner = users[2]!;
    const nonce = await client.nextNonce(owner.publicKey);
    const a = signTx({ chainId, sender: owner.publicKey, nonce, op: { kind: 'put', key: text('b1'), value: text('1') } }, owner);
    const b = signTx({ chainId, sender: owner.publicKey, nonce: nonce + 1n, op: { kind: 'put', key: text('b2'), value: text('2') } }, owner);
    const items = await client.submitTxBatch([a, encodeSignedTx(b), toHex(encodeSignedTx(a))]);
    assert.equal(items[0]!.hash, toHex(txHash(a)));
    assert.equal(items[1]!.hash, toHex(txHash(b)));
    assert.equal(items[2]!.error?.kind, 'duplicate');
    await waitFor('the batch committed', async () => (await client.getTx(toHex(txHash(b)))).status === 'committed');
  });

  test('proofs verify: account, record, absent record, transaction, block', async () => {
    const owner = users[1]!;
    const put = await commit(owner, { kind: 'put', key: text('proof/1'), value: text('value') });
    const account = await verifyAccountProof(client, owner.address);
    assert.ok(account.ok, account.detail);
    assert.ok(account.rootMatches && account.certificateHolds);
    assert.equal(account.account.exists, true);
    const record = await verifyRecordProof(client, owner.address, text('proof/1'));
    assert.ok(record.ok, record.detail);
    assert.equal(record.record.value, toHex(text('value')));
    const absent = await verifyRecordProof(client, owner.address, toHex(text('never written')));
    assert.ok(absent.ok, absent.detail);
    assert.equal(absent.record.exists, false);
    const tx = await verifyTxProof(client, put.hash);
    assert.ok(tx.ok, tx.detail);
    assert.equal(tx.height, put.height);
    const block = await verifyBlock(client, put.height);
    assert.ok(block.ok, block.detail);
    assert.equal(block.blockHash, (await client.getBlockByHeight(put.height)).hash);
    // A transaction the node does not know is its refusal (not a failed proof).
    await assert.rejects(verifyTxProof(client, toHex(new Uint8Array(32))), (e: unknown) => e instanceof TallyRpcError && e.kind === 'not_found');
  });

  test('a proof with one byte changed fails and says what failed', async () => {
    const url = net.rpc[0]!;
    const owner = users[1]!;
    const at = (method: string, mutate: (r: any) => void) => new TallyClient(url, { fetch: mutatingFetch(method, mutate) });
    for (const index of [1, 40, -1]) {
      const bad = await verifyAccountProof(at('ledger_getAccount', (r) => { r.proof.proof = flipByte(r.proof.proof, index); }), owner.address);
      assert.equal(bad.ok, false, `state proof byte ${index}`);
      assert.equal(bad.rootMatches, false);
    }
    const badValue = await verifyAccountProof(at('ledger_getAccount', (r) => { r.proof.value = flipByte(r.proof.value, -1); }), owner.address);
    assert.equal(badValue.ok, false);
    assert.match(badValue.detail, /differs|value/);
    // Inside the first signature: 8 (height) + 4 (round) + 32 (hash) + 4 (count) + 4 (index).
    const badCert = await verifyAccountProof(at('ledger_getAccount', (r) => { r.proof.certificate = flipByte(r.proof.certificate, 60); }), owner.address);
    assert.equal(badCert.ok, false);
    assert.equal(badCert.certificateHolds, false);
    assert.match(badCert.detail, /bad signature of validator \d/);
    const badHeader = await verifyRecordProof(at('ledger_getRecord', (r) => { r.proof.header = flipByte(r.proof.header, -40); }), owner.address, text('proof/1'));
    assert.equal(badHeader.ok, false);
    assert.equal(badHeader.certificateHolds, false);

    const put = await commit(owner, { kind: 'put', key: text('proof/2'), value: text('v') });
    const badPath = await verifyTxProof(at('ledger_getTx', (r) => {
      r.proof.path = r.proof.path.length ? [flipByte(r.proof.path[0], 0), ...r.proof.path.slice(1)] : [toHex(new Uint8Array(32))];
    }), put.hash);
    assert.equal(badPath.ok, false);
    assert.equal(badPath.rootMatches, false);
    assert.equal(badPath.certificateHolds, true);
    const badBlock = await verifyBlock(at('ledger_getBlockByHeight', (r) => { r.encodedHeader = flipByte(r.encodedHeader, -1); }), put.height);
    assert.equal(badBlock.ok, false);
    assert.match(badBlock.detail, /certificate is for another block|header hash mismatch/);
    const wrongGenesis = await verifyBlock(client, put.height, { genesisHash: toHex(new Uint8Array(32)) });
    assert.equal(wrongGenesis.ok, false);
    assert.match(wrongGenesis.detail, /genesis has hash/);
  });

  test('new heads arrive over a WebSocket, and leaving the loop unsubscribes', async () => {
    // Calls over the WebSocket share the subscription's connection.
    const ws = nodeClient(net.rpc[0]!.replace('http', 'ws'));
    try {
      const sub = await ws.subscribeNewHeads();
      const heights: bigint[] = [];
      for await (const head of sub) {
        heights.push(head.height);
        assert.match(head.hash, /^0x[0-9a-f]{64}$/);
        if (heights.length === 3) break;
      }
      assert.ok(heights[1]! > heights[0]! && heights[2]! > heights[1]!, heights.join(','));
      // The node ended the subscription when the loop was left: a second
      // unsubscribe finds nothing to end. The connection still serves calls.
      assert.equal(typeof sub.id, 'string');
      assert.equal(await ws.call('ledger_unsubscribeNewHeads', [sub.id]), false);
      assert.ok((await ws.call('ledger_health')) !== null);
    } finally {
      ws.close();
    }
  });

  test('a transaction\'s status arrives over a subscription until committed', async () => {
    const tx = await client.signOp(users[3]!, { kind: 'put', key: text('sub'), value: text('1') });
    const hash = toHex(txHash(tx));
    const sub = await client.subscribeTxStatus(hash);
    await client.submitTx(tx);
    let last = '';
    for await (const status of sub) {
      assert.equal(status.hash, hash);
      last = status.status;
      if (last !== 'pending') break;
    }
    assert.equal(last, 'committed');
  });

  test('calls over a ws:// URL, and a replica answers reads', async () => {
    const ws = nodeClient(net.rpc[1]!.replace('http', 'ws'));
    try {
      const status = await ws.status();
      assert.equal(status.chainId, chainId);
      assert.ok((await ws.rpcMethods()).includes('ledger_getAccount'));
    } finally {
      ws.close();
    }
    const replica = new TallyClient(net.replicaRpc[0]!);
    assert.equal((await replica.status()).role, 'replica');
  });

  test('a response over the size limit is refused, naming the limit', async () => {
    const small = new TallyClient(net.rpc[0]!, { responseBytesMax: 100 });
    await assert.rejects(small.getGenesis(), /limit of 100 bytes|more than the limit of 100/);
  });
});

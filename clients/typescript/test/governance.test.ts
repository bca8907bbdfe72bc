// Governance with more than one approval: on a devnet whose genesis has 3
// admins and a threshold of 2, a proposal stays pending until a second admin
// approves it, the approve is committed and applies the change, and the
// node refuses approvals that may not count.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Keypair, TallyClient, TallyRpcError, fromHex, toHex, txHash, verifyAccountProof, verifyTxProof, type Op,
} from '../src/index.js';
import { nodeClient, readKeyFile } from '../src/node.js';
import { startDevnet, type Devnet } from './devnet.js';
import { waitForHeight } from './helpers.js';

describe('against a devnet with 3 admins and threshold 2', () => {
  let net: Devnet;
  let client: TallyClient;
  let admins: Keypair[];
  let members: Keypair[];

  before(async () => {
    net = await startDevnet({ governance: { admins: 3, threshold: 2 } });
    client = nodeClient(net.rpc[0]!);
    admins = await Promise.all(net.adminPems.map(readKeyFile));
    members = await Promise.all(net.userPems.map(readKeyFile));
    await waitForHeight(client, 1n);
  });

  after(async () => {
    client?.close();
    await net?.stop();
  });

  /** Signs `op` by `key` with the next nonce and waits until it is committed. */
  const commit = async (key: Keypair, op: Op) => client.submitTxAndWait(await client.signOp(key, op));

  /** Signs `op` by `key`, expects the node to refuse it with a reason matching `reason`, and returns the reason. */
  const refused = async (key: Keypair, op: Op, reason: RegExp): Promise<string> => {
    const tx = await client.signOp(key, op);
    let message = '';
    await assert.rejects(client.submitTxAndWait(tx), (e: unknown) => {
      assert.ok(e instanceof TallyRpcError, String(e));
      assert.equal(e.kind, 'rejected', e.message);
      assert.match(e.message, reason);
      message = e.message;
      return true;
    });
    const info = await client.getTx(toHex(txHash(tx)));
    assert.equal(info.status, 'rejected');
    assert.match(info.reason ?? '', reason);
    return message;
  };

  test('every node holds the same genesis: the 3 admins and threshold 2', async () => {
    const gov = await client.getGovernance();
    assert.equal(gov.threshold, 2);
    assert.deepEqual([...gov.admins].sort(), admins.map((a) => a.address).sort());
    const genesis = await client.getGenesis();
    const roles = (genesis.accounts ?? []).map((a) => [a.public_key, a.role]);
    assert.deepEqual(roles.filter(([, r]) => r === 'admin').map(([k]) => k), admins.map((a) => a.address));
    assert.deepEqual(roles.filter(([, r]) => r === 'member').map(([k]) => k), members.map((m) => m.address));
    for (const url of [...net.rpc.slice(1), ...net.replicaRpc]) {
      const other = new TallyClient(url);
      assert.equal((await other.getGovernance()).threshold, 2, url);
    }
  });

  test('a proposal stays pending; a second admin\'s approve is committed and applies it', async () => {
    const [a, b] = [admins[0]!, admins[1]!];
    const fresh = Keypair.generate();
    const proposed = await commit(a, { kind: 'propose', change: { kind: 'grant', account: fresh.publicKey, role: 'member' } });

    const pending = await client.getChange(proposed.hash);
    assert.equal(pending.status, 'pending');
    assert.equal(pending.proposer, a.address);
    assert.deepEqual(pending.approvals, [a.address]);
    assert.equal(pending.proposedAt, proposed.height);
    const gov = await client.getGovernance();
    assert.deepEqual(gov.pending.map((c) => c.id), [proposed.hash]);
    assert.equal((await client.getAccount(fresh.publicKey)).exists, false);

    const approve = await client.signOp(b, { kind: 'approve', change: fromHex(proposed.hash) });
    const approved = await client.submitTxAndWait(approve);
    assert.equal(approved.hash, toHex(txHash(approve)));
    assert.ok(approved.height > proposed.height);
    const info = await client.getTx(approved.hash);
    assert.equal(info.status, 'committed');
    assert.equal(info.height, approved.height);
    const included = await verifyTxProof(client, approved.hash);
    assert.ok(included.ok, included.detail);

    const applied = await client.getChange(proposed.hash);
    assert.equal(applied.status, 'applied');
    assert.equal(applied.at, approved.height);
    assert.deepEqual(applied.approvals, [a.address, b.address]);
    assert.deepEqual((await client.getGovernance()).pending, []);

    const granted = await client.getAccount(fresh.publicKey);
    assert.deepEqual([granted.exists, granted.role, granted.active], [true, 'member', true]);
    const proof = await verifyAccountProof(client, fresh.address);
    assert.ok(proof.ok, proof.detail);
    assert.equal(proof.account.exists, true);
    assert.ok(proof.height >= approved.height);
  });

  test('a second approve by the same admin, the proposer\'s own approve and a member\'s approve are refused with the node\'s reason', async () => {
    const [a, b, c] = [admins[0]!, admins[1]!, admins[2]!];
    const member = members[0]!;

    // Applied by a's proposal and b's approve; b approving again is refused.
    const first = await commit(a, { kind: 'propose', change: { kind: 'grant', account: Keypair.generate().publicKey, role: 'member' } });
    await commit(b, { kind: 'approve', change: fromHex(first.hash) });
    assert.equal((await client.getChange(first.hash)).status, 'applied');
    await refused(b, { kind: 'approve', change: fromHex(first.hash) }, /already applied/);

    // Pending: the proposer has approved already, and a member may not approve.
    const fresh = Keypair.generate();
    const second = await commit(a, { kind: 'propose', change: { kind: 'grant', account: fresh.publicKey, role: 'member' } });
    await refused(a, { kind: 'approve', change: fromHex(second.hash) }, /has already approved change/);
    await refused(member, { kind: 'approve', change: fromHex(second.hash) }, /is not an admin/);
    const still = await client.getChange(second.hash);
    assert.equal(still.status, 'pending');
    assert.deepEqual(still.approvals, [a.address]);
    assert.equal((await client.getAccount(fresh.publicKey)).exists, false);

    // The third admin's approve applies it; approving it again is refused too.
    const approved = await commit(c, { kind: 'approve', change: fromHex(second.hash) });
    const applied = await client.getChange(second.hash);
    assert.equal(applied.status, 'applied');
    assert.equal(applied.at, approved.height);
    assert.equal((await client.getAccount(fresh.publicKey)).exists, true);
    await refused(c, { kind: 'approve', change: fromHex(second.hash) }, /already applied/);
  });
});

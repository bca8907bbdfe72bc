//! One block per block rule, each breaking only that rule, and the two ways
//! a node judges a block (before voting, and in block sync). Both the
//! ledger's own rule tests (on in-memory state) and the node's tests (on a
//! real RocksDB store, with `tally audit` as a third judge) run these
//! cases, so the rule and every caller are held to the same list.

use crate::encoding::encode;
use crate::genesis::Params;
use crate::hash::Hash;
use crate::state::StateReader;
use crate::types::{last_commit_hash, Block, CommitCertificate, Op, SignedTx, Tx};
use crate::verify::{ChainRules, Parent, Placement, BLOCK_TIME_MS_MAX};
use crate::Keypair;

use super::TestChain;

/// Blocks committed before the block under test.
pub const BASE: u64 = 3;

/// The limits the cases break: small enough to reach with a few
/// transactions.
pub fn params() -> Params {
    Params {
        block_bytes_max: 60_000,
        block_txs_max: 8,
        ..Params::default()
    }
}

/// Four validators, three accounts, the cases' limits and `BASE` clean
/// blocks of one transfer each.
pub fn base_chain() -> TestChain {
    let mut chain = TestChain::new(4, 3);
    chain.genesis.params = params();
    chain.rules.params = params();
    for _ in 0..BASE {
        let tx = chain.transfer(1, 2, 5);
        // Invariant: a transfer within the test balance executes.
        #[allow(clippy::expect_used)]
        chain.push(vec![tx]).expect("a clean block");
    }
    chain
}

/// A block that breaks one rule.
#[derive(Debug)]
pub struct RuleCase {
    pub rule: &'static str,
    /// Builds the block at `BASE + 1` (and the judging validator's clock,
    /// when not the block's own time).
    pub make: fn(&mut TestChain) -> (Block, Option<u64>),
    /// What every judge's reason starts with.
    pub reason: &'static str,
    /// The audit's name for the check that fails.
    pub audit_check: &'static str,
}

/// The next block over `txs`, built as an honest proposer of round 0 would.
pub fn next_block(chain: &TestChain, txs: Vec<SignedTx>) -> Block {
    // Invariant: the cases only pass transactions that execute.
    #[allow(clippy::expect_used)]
    chain.build_block(txs).expect("the block executes").0
}

/// Replaces `block`'s transactions and recomputes its tx root, so that only
/// the rule under test is broken.
fn with_txs(mut block: Block, txs: Vec<SignedTx>) -> Block {
    block.txs = txs;
    block.header.tx_root = block.compute_tx_root();
    block
}

/// A signed transaction with every field chosen by the caller.
fn raw_tx(key: &Keypair, chain_id: &str, nonce: u64) -> SignedTx {
    Tx {
        chain_id: chain_id.into(),
        sender: key.public(),
        nonce,
        op: Op::Transfer {
            to: key.public(),
            amount: 1,
        },
    }
    .sign(key)
}

fn with_last_commit(mut block: Block, cert: CommitCertificate) -> Block {
    block.last_commit = Some(cert);
    block.header.last_commit_hash = last_commit_hash(block.last_commit.as_ref());
    block
}

fn empty(chain: &mut TestChain) -> Block {
    next_block(chain, vec![])
}

/// Every case, one per rule.
pub fn rule_cases() -> Vec<RuleCase> {
    vec![
        RuleCase {
            rule: "chain id",
            make: |c| {
                let mut b = empty(c);
                b.header.chain_id = "another-chain".into();
                (b, None)
            },
            reason: "block is for chain \"another-chain\"",
            audit_check: "chain_id",
        },
        RuleCase {
            rule: "height",
            make: |c| {
                let mut b = empty(c);
                b.header.height += 1;
                (b, None)
            },
            reason: "block height 5, expected 4",
            audit_check: "block_position",
        },
        RuleCase {
            rule: "prev_hash",
            make: |c| {
                let mut b = empty(c);
                b.header.prev_hash = Hash([7; 32]);
                (b, None)
            },
            reason: "block prev_hash is",
            audit_check: "prev_hash",
        },
        RuleCase {
            rule: "time not after the parent's",
            make: |c| {
                let mut b = empty(c);
                b.header.time_ms = c.parent_of_next().time_ms;
                (b, None)
            },
            reason: "block time 1700000003000 ms is not after its parent's",
            audit_check: "time",
        },
        RuleCase {
            rule: "time past the latest a block may carry",
            make: |c| {
                let mut b = empty(c);
                b.header.time_ms = BLOCK_TIME_MS_MAX + 1;
                (b, Some(BLOCK_TIME_MS_MAX + 1))
            },
            reason: "block time 253402300800000 ms is past the latest time",
            audit_check: "time",
        },
        RuleCase {
            rule: "time at u64::MAX",
            make: |c| {
                let mut b = empty(c);
                b.header.time_ms = u64::MAX;
                (b, Some(u64::MAX))
            },
            reason: "block time 18446744073709551615 ms is past the latest time",
            audit_check: "time",
        },
        RuleCase {
            rule: "block size",
            make: |c| {
                let value = vec![0xab; 16 << 10];
                let txs = (0..4)
                    .map(|i| {
                        c.tx(
                            1,
                            Op::Put {
                                key: vec![i],
                                value: value.clone(),
                            },
                        )
                    })
                    .collect();
                (next_block(c, txs), None)
            },
            reason: "block is 66627 bytes, more than the limit of 60000",
            audit_check: "block_size",
        },
        RuleCase {
            rule: "transaction count",
            make: |c| {
                let txs = (0..9).map(|_| c.transfer(1, 2, 1)).collect();
                (next_block(c, txs), None)
            },
            reason: "block has 9 transactions, more than the limit of 8",
            audit_check: "tx_count",
        },
        RuleCase {
            rule: "tx_root",
            make: |c| {
                let tx = c.transfer(1, 2, 1);
                let mut b = next_block(c, vec![tx]);
                b.header.tx_root = Hash([9; 32]);
                (b, None)
            },
            reason: "block tx_root is 0x0909",
            audit_check: "tx_root",
        },
        RuleCase {
            rule: "validators_hash",
            make: |c| {
                let mut b = empty(c);
                b.header.validators_hash = Hash([3; 32]);
                (b, None)
            },
            reason: "block validators_hash is 0x0303",
            audit_check: "validators_hash",
        },
        RuleCase {
            rule: "next_validators_hash",
            make: |c| {
                let mut b = empty(c);
                b.header.next_validators_hash = Hash([8; 32]);
                (b, None)
            },
            reason: "block next_validators_hash is 0x0808",
            audit_check: "next_validators_hash",
        },
        RuleCase {
            rule: "last_commit_hash",
            make: |c| {
                let mut b = empty(c);
                b.header.last_commit_hash = Hash([4; 32]);
                (b, None)
            },
            reason: "block last_commit_hash is 0x0404",
            audit_check: "last_commit_hash",
        },
        RuleCase {
            rule: "last_commit missing",
            make: |c| {
                let mut b = empty(c);
                b.last_commit = None;
                b.header.last_commit_hash = last_commit_hash(None);
                (b, None)
            },
            reason: "block 4 is missing its last_commit",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "last_commit for another height",
            make: |c| {
                let cert = c.blocks[0].1.clone();
                (with_last_commit(empty(c), cert), None)
            },
            reason: "block last_commit is for height 1, expected 3",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "last_commit for another block",
            make: |c| {
                // A quorum's certificate at the parent's height, for a
                // sibling the chain did not take.
                let parent = &c.blocks[BASE as usize - 1].0;
                let mut sibling = parent.clone();
                sibling.header.time_ms += 1;
                let all: Vec<usize> = (0..c.validator_keys.len()).collect();
                let cert = c.certify(&sibling, 0, &all);
                (with_last_commit(empty(c), cert), None)
            },
            reason: "block last_commit is for block",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "last_commit without a quorum",
            make: |c| {
                let parent = &c.blocks[BASE as usize - 1].0;
                let cert = c.certify(parent, 0, &[0, 1]);
                (with_last_commit(empty(c), cert), None)
            },
            reason: "the block's last_commit is invalid: certificate carries power 20 of 40",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "last_commit with a signer twice",
            make: |c| {
                let parent = &c.blocks[BASE as usize - 1].0;
                // Power 30 of 40 if the repeat were counted.
                let cert = c.certify(parent, 0, &[0, 1, 1]);
                (with_last_commit(empty(c), cert), None)
            },
            reason: "the block's last_commit is invalid: certificate validator indices must strictly increase (validator 1 at position 2",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "last_commit naming a validator the set lacks",
            make: |c| {
                let parent = &c.blocks[BASE as usize - 1].0;
                let mut cert = c.certify(parent, 0, &[0, 1, 2]);
                cert.signatures[2].validator_index = 4;
                (with_last_commit(empty(c), cert), None)
            },
            reason: "the block's last_commit is invalid: certificate signature 2 names validator 4, but the set has 4",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "last_commit with a forged signature",
            make: |c| {
                let parent = &c.blocks[BASE as usize - 1].0;
                let mut cert = c.certify(parent, 0, &[0, 1, 2]);
                cert.signatures[1].signature.0[0] ^= 1;
                (with_last_commit(empty(c), cert), None)
            },
            reason: "the block's last_commit is invalid: certificate signature of validator 1 does not verify",
            audit_check: "last_commit",
        },
        RuleCase {
            rule: "proposer not a validator",
            make: |c| {
                let mut b = empty(c);
                b.header.proposer = Keypair::from_seed([42; 32]).public();
                (b, None)
            },
            reason: "block proposer",
            audit_check: "proposer",
        },
        RuleCase {
            rule: "proposer without a turn",
            make: |c| {
                let mut b = empty(c);
                let turn = c.rules.schedule.proposer(BASE + 1, 0) as usize;
                let other = (turn + 1) % c.validator_keys.len();
                b.header.proposer = c.validator_keys[other].public();
                (b, None)
            },
            reason: "block proposer",
            audit_check: "proposer",
        },
        RuleCase {
            rule: "transaction signature",
            make: |c| {
                let tx = c.transfer(1, 2, 1);
                let mut b = next_block(c, vec![tx]);
                let mut txs = std::mem::take(&mut b.txs);
                txs[0].signature.0[0] ^= 1;
                (with_txs(b, txs), None)
            },
            reason: "transaction 0 (",
            audit_check: "tx_signature",
        },
        RuleCase {
            rule: "transaction for another chain",
            make: |c| {
                let tx = raw_tx(&c.account_keys[1], "another-chain", 1);
                (with_txs(empty(c), vec![tx]), None)
            },
            reason: "transaction 0 (",
            audit_check: "tx_rules",
        },
        RuleCase {
            rule: "state root",
            make: |c| {
                let tx = c.transfer(1, 2, 1);
                let mut b = next_block(c, vec![tx]);
                b.header.state_root = Hash([5; 32]);
                (b, None)
            },
            reason: "state root after execution is",
            audit_check: "state_root",
        },
        RuleCase {
            rule: "transaction that does not execute",
            make: |c| {
                // A nonce far ahead of the account's next one.
                let tx = raw_tx(&c.account_keys[2], &c.genesis.chain_id, 7);
                (with_txs(empty(c), vec![tx]), None)
            },
            reason: "tx 0 (",
            audit_check: "tx_execution",
        },
    ]
}

/// What a validator concludes before it prevotes for `block`, proposed in
/// round 0, with its clock at `now_ms` and `state` after the parent.
pub fn validation_verdict<R: StateReader>(
    rules: &ChainRules,
    block: &Block,
    parent: Parent,
    now_ms: u64,
    state: &R,
) -> Result<(), String> {
    let at = Placement {
        parent,
        round: 0,
        now_ms: Some(now_ms),
    };
    rules
        .check_proposed(block, encode(block).len(), &at, state)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// What block sync concludes about a certified block, in its order: the
/// transactions' signatures (off the driver task), then placement, the
/// certificates by the sets of the block's height, then re-execution. Sync
/// has no clock. `rules` are the rules of the block's height.
pub fn sync_verdict<R: StateReader>(
    rules: &ChainRules,
    block: &Block,
    cert: &CommitCertificate,
    parent: Parent,
    state: &R,
) -> Result<(), String> {
    rules.check_transactions(block).map_err(|e| e.to_string())?;
    let at = Placement {
        parent,
        round: cert.round,
        now_ms: None,
    };
    rules
        .check_block(block, encode(block).len(), &at)
        .map_err(|e| e.to_string())?;
    rules
        .check_certificates(block, Some(cert))
        .map_err(|e| e.to_string())?;
    rules
        .check_state(block, state)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

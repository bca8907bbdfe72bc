//! Builds real, fully signed chains in memory, for tests, benchmarks and
//! simulations: genesis with known keys, signed transactions, executed
//! blocks and commit certificates signed by every validator.

use std::collections::BTreeMap;

use crate::crypto::{Domain, Keypair, PublicKey};
use crate::execution::{execute_block, genesis_state, ApplyError, BlockExecError, BlockExecutor};
use crate::genesis::{peer_id_from_node_key, Genesis, GenesisAccount, GenesisValidator, Params};
use crate::state::{MemoryTreeStore, StateUpdate};
use crate::types::{
    last_commit_hash, Block, CommitCertificate, CommitSig, Header, Op, Role, SignedTx, SignedVote,
    Tx, ValidatorSet, Vote, VoteKind,
};
use crate::verify::{ChainRules, Parent};
use crate::Hash;

pub mod rule_cases;

/// Balance of every test account at genesis.
pub const TEST_BALANCE: u64 = 1_000_000_000;

/// A chain under construction, with every key it needs.
#[derive(Debug)]
pub struct TestChain {
    pub genesis: Genesis,
    pub validator_set: ValidatorSet,
    /// The block rules of the next block (its validator sets and proposer
    /// schedule among them).
    pub rules: ChainRules,
    /// The genesis validators' keys, in genesis order.
    pub validator_keys: Vec<Keypair>,
    /// Keys of validators added later (or rotated to): see
    /// [`TestChain::hold_key`].
    pub later_keys: Vec<Keypair>,
    /// Account 0 is the admin; the others are members.
    pub account_keys: Vec<Keypair>,
    pub state: MemoryTreeStore,
    /// Committed blocks with their certificates, block `h` at index `h - 1`.
    pub blocks: Vec<(Block, CommitCertificate)>,
    nonces: BTreeMap<PublicKey, u64>,
    latest_only: bool,
}

impl TestChain {
    /// A chain with `validators` equal-power validators and `accounts`
    /// funded accounts (the first an admin). Keys derive from small seeds.
    pub fn new(validators: usize, accounts: usize) -> Self {
        Self::with_powers(&vec![10; validators], accounts)
    }

    /// Like [`TestChain::new`] with the given voting powers.
    pub fn with_powers(powers: &[u64], accounts: usize) -> Self {
        let validator_keys: Vec<Keypair> = (0..powers.len())
            .map(|i| Keypair::from_seed(seed(1, i)))
            .collect();
        let account_keys: Vec<Keypair> = (0..accounts)
            .map(|i| Keypair::from_seed(seed(2, i)))
            .collect();
        let genesis = Genesis {
            chain_id: "tally-test".into(),
            genesis_time_ms: 1_700_000_000_000,
            params: Params::default(),
            validators: validator_keys
                .iter()
                .zip(powers)
                .enumerate()
                .map(|(i, (k, p))| GenesisValidator {
                    name: format!("node{i}"),
                    public_key: k.public(),
                    peer_id: peer_id_from_node_key(&Keypair::from_seed(seed(3, i)).public()),
                    power: *p,
                })
                .collect(),
            replicas: vec![],
            accounts: account_keys
                .iter()
                .enumerate()
                .map(|(i, k)| GenesisAccount {
                    public_key: k.public(),
                    role: if i == 0 { Role::Admin } else { Role::Member },
                    balance: TEST_BALANCE,
                })
                .collect(),
            governance: Default::default(),
        };
        Self::from_genesis(genesis, validator_keys, account_keys)
    }

    /// A chain over a given genesis whose keys the caller holds.
    pub fn from_genesis(
        genesis: Genesis,
        validator_keys: Vec<Keypair>,
        account_keys: Vec<Keypair>,
    ) -> Self {
        // Invariant: callers pass a genesis they built valid.
        #[allow(clippy::expect_used)]
        let validator_set = genesis
            .validator_set()
            .expect("test genesis has a valid validator set");
        #[allow(clippy::expect_used)]
        let rules = ChainRules::new(&genesis).expect("test genesis has a valid validator set");
        let mut state = MemoryTreeStore::new();
        #[allow(clippy::expect_used)]
        let update = genesis_state(&state, &genesis).expect("genesis state in memory");
        state.apply(&update.batch.node_batch);
        TestChain {
            genesis,
            validator_set,
            rules,
            validator_keys,
            later_keys: Vec::new(),
            account_keys,
            state,
            blocks: Vec::new(),
            nonces: BTreeMap::new(),
            latest_only: false,
        }
    }

    pub fn chain_id(&self) -> &str {
        &self.genesis.chain_id
    }

    pub fn height(&self) -> u64 {
        self.blocks.len() as u64
    }

    /// Where the next block attaches: the last block, or genesis.
    pub fn parent_of_next(&self) -> Parent {
        match self.blocks.last() {
            Some((block, _)) => Parent::of(block),
            None => Parent {
                height: 0,
                hash: self.genesis.hash(),
                time_ms: self.genesis.genesis_time_ms,
            },
        }
    }

    /// Takes back a transaction that was never committed (a test saw it
    /// refused): its sender's next transaction reuses its nonce.
    pub fn take_back(&mut self, tx: &SignedTx) {
        self.nonces
            .insert(tx.tx.sender, tx.tx.nonce.saturating_sub(1));
    }

    /// Signs `op` from account `from` with its next nonce.
    pub fn tx(&mut self, from: usize, op: Op) -> SignedTx {
        let key = &self.account_keys[from];
        let nonce = self.nonces.entry(key.public()).or_insert(0);
        *nonce += 1;
        Tx {
            chain_id: self.genesis.chain_id.clone(),
            sender: key.public(),
            nonce: *nonce,
            op,
        }
        .sign(key)
    }

    /// Applies `tx` alone on the state of the last block, keeping nothing:
    /// whether the next block could hold it, and why not.
    pub fn try_apply(&self, tx: &SignedTx) -> Result<(), ApplyError> {
        let mut exec = BlockExecutor::new(
            &self.state,
            Some(self.height()),
            self.chain_id(),
            &self.genesis.params,
        )?;
        exec.apply(tx)
    }

    /// A transfer of `amount` from account `from` to account `to`.
    pub fn transfer(&mut self, from: usize, to: usize, amount: u64) -> SignedTx {
        let to = self.account_keys[to].public();
        self.tx(from, Op::Transfer { to, amount })
    }

    /// `n` transfers of 1, round-robin over the member accounts (each to the
    /// next), each sender's in nonce order: load for benchmarks.
    pub fn transfers(&mut self, n: usize) -> Vec<SignedTx> {
        let members = self.account_keys.len() - 1;
        (0..n)
            .map(|i| self.transfer(1 + i % members, 1 + (i + 1) % members, 1))
            .collect()
    }

    /// Builds the next block over `txs` (executing them) without committing.
    pub fn build_block(&self, txs: Vec<SignedTx>) -> Result<(Block, StateUpdate), BlockExecError> {
        let height = self.height() + 1;
        let update = execute_block(
            &self.state,
            height,
            self.chain_id(),
            &self.genesis.params,
            &txs,
        )?;
        let (prev_hash, last_commit) = match self.blocks.last() {
            None => (self.genesis.hash(), None),
            Some((b, c)) => (b.hash(), Some(c.clone())),
        };
        let mut block = Block {
            header: Header {
                chain_id: self.genesis.chain_id.clone(),
                height,
                time_ms: self.genesis.genesis_time_ms + height * 1_000,
                prev_hash,
                tx_root: Default::default(),
                state_root: update.root,
                validators_hash: self.rules.validators_hash(),
                next_validators_hash: self.rules.next_validators_hash(),
                proposer: self.proposer_key(height, 0),
                last_commit_hash: last_commit_hash(last_commit.as_ref()),
            },
            txs,
            last_commit,
        };
        block.header.tx_root = block.compute_tx_root();
        Ok((block, update))
    }

    /// The key of the validator the schedule of the next block names for
    /// `height`, `round`.
    pub fn proposer_key(&self, height: u64, round: u32) -> PublicKey {
        let index = self.rules.schedule.proposer(height, round);
        self.rules
            .set
            .get(index)
            .map_or(self.validator_keys[0].public(), |v| v.public_key)
    }

    /// Holds the secret of a validator key added (or rotated to) later, so
    /// the chain can sign with it.
    pub fn hold_key(&mut self, key: Keypair) {
        self.later_keys.push(key);
    }

    /// The held keypair of validator key `key`.
    pub fn keypair(&self, key: &PublicKey) -> Option<&Keypair> {
        self.validator_keys
            .iter()
            .chain(&self.later_keys)
            .find(|k| k.public() == *key)
    }

    /// A certificate for `block` signed by the validators at `signers`, by
    /// their positions in the set of the next block (the genesis set until
    /// a change applies).
    pub fn certify(&self, block: &Block, round: u32, signers: &[usize]) -> CommitCertificate {
        let mut cert = CommitCertificate {
            height: block.height(),
            round,
            block_hash: block.hash(),
            signatures: vec![],
        };
        let message = cert.vote().message();
        for &i in signers {
            let key = self
                .rules
                .set
                .get(i as u32)
                .and_then(|v| self.keypair(&v.public_key))
                .unwrap_or(&self.validator_keys[i % self.validator_keys.len()]);
            cert.signatures.push(CommitSig {
                validator_index: i as u32,
                signature: key.sign(Domain::Vote, self.chain_id(), &message),
            });
        }
        cert
    }

    /// Validator `from`'s signed vote (`value` `None` is nil).
    pub fn signed_vote(
        &self,
        from: u32,
        kind: VoteKind,
        height: u64,
        round: u32,
        value: Option<Hash>,
    ) -> SignedVote {
        let vote = Vote {
            kind,
            height,
            round,
            value,
        };
        let signature =
            self.validator_keys[from as usize].sign(Domain::Vote, self.chain_id(), &vote.message());
        SignedVote {
            vote,
            validator_index: from,
            signature,
        }
    }

    /// Builds, certifies (all validators) and commits the next block.
    pub fn push(
        &mut self,
        txs: Vec<SignedTx>,
    ) -> Result<(Block, CommitCertificate, StateUpdate), BlockExecError> {
        let (block, update) = self.build_block(txs)?;
        let all: Vec<usize> = (0..self.rules.set.len()).collect();
        let cert = self.certify(&block, 0, &all);
        if self.latest_only {
            self.state.apply_latest(&update.batch);
        } else {
            self.state.apply(&update.batch.node_batch);
        }
        self.blocks.push((block.clone(), cert.clone()));
        let next = self.height() + 1;
        self.rules = self.rules.at_height(&self.state, next)?;
        Ok((block, cert, update))
    }

    /// From now on keeps only the newest state version, and drops the
    /// bodies of all but the last block, so that long chains (benchmarks)
    /// fit in memory. Older state versions cannot be read afterwards.
    pub fn forget_history(&mut self) {
        self.latest_only = true;
        let n = self.blocks.len();
        if n > 1 {
            for (block, _) in &mut self.blocks[..n - 1] {
                block.txs = Vec::new();
                block.last_commit = None;
            }
        }
    }
}

/// A validator set with the given powers and keys from small seeds.
pub fn validator_set(powers: &[u64]) -> ValidatorSet {
    // Invariant: callers pass non-zero powers within the limits.
    #[allow(clippy::expect_used)]
    ValidatorSet::new(
        powers
            .iter()
            .enumerate()
            .map(|(i, p)| crate::types::Validator {
                public_key: Keypair::from_seed(seed(1, i)).public(),
                power: *p,
            })
            .collect(),
    )
    .expect("valid test validator set")
}

fn seed(kind: u8, i: usize) -> [u8; 32] {
    let mut s = [0u8; 32];
    s[0] = kind;
    s[1..9].copy_from_slice(&(i as u64).to_le_bytes());
    s
}

/// A signature over exactly `signed_bytes` by the secret scalar made from
/// `secret`, whose R and key carry the small-order components
/// `EIGHT_TORSION[torsion_r]` and `EIGHT_TORSION[torsion_a]`: valid under
/// the cofactored (ZIP-215) equations, not under cofactorless ones when
/// either index is non-zero. For tests of the signature rule.
pub fn mixed_order_signature(
    secret: [u8; 32],
    torsion_r: usize,
    torsion_a: usize,
    signed_bytes: &[u8],
) -> (PublicKey, crate::crypto::Signature) {
    use curve25519_dalek::{constants, scalar::Scalar};
    use sha2::Digest;
    let t = constants::EIGHT_TORSION;
    let a = Scalar::from_bytes_mod_order(secret);
    let big_a = (constants::ED25519_BASEPOINT_POINT * a + t[torsion_a % 8]).compress();
    let r = Scalar::from_bytes_mod_order([7u8; 32]);
    let big_r = (constants::ED25519_BASEPOINT_POINT * r + t[torsion_r % 8]).compress();
    let k = Scalar::from_bytes_mod_order_wide(
        &sha2::Sha512::new()
            .chain_update(big_r.as_bytes())
            .chain_update(big_a.as_bytes())
            .chain_update(signed_bytes)
            .finalize()
            .into(),
    );
    let s = r + k * a;
    let mut sig = [0u8; 64];
    sig[..32].copy_from_slice(big_r.as_bytes());
    sig[32..].copy_from_slice(s.as_bytes());
    (PublicKey(big_a.to_bytes()), crate::crypto::Signature(sig))
}

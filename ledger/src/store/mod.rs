//! The RocksDB store: blocks, certificates, indexes, the state tree and
//! metadata, each in its own column family.
//!
//! Committing a block is one atomic `WriteBatch` written with sync: after a
//! crash the store holds either the old tip or the new one, never half. On
//! open the store checks its format, that it belongs to this genesis, and
//! that the tip it records can be read back and verified (the second half of
//! the pair assertion made before writing).

use jmt::{KeyHash, Version};
use rocksdb::{ColumnFamilyDescriptor, IteratorMode, WriteBatch, WriteOptions, DB};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use crate::encoding::{self, decode, encode};
use crate::execution::genesis_state;
use crate::genesis::Genesis;
use crate::hash::Hash;
use crate::state::{self, StateError, StateUpdate};
use crate::types::{Block, CommitCertificate, Evidence, BLOCK_BYTES_CAP};
use crate::verify::{check_certificate_matches, BlockError};

mod latest;
mod options;
use latest::LatestValues;
use options::{block_cache, db_options};

/// The on-disk format this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

const CF_BLOCKS: &str = "blocks";
const CF_BLOCK_HASHES: &str = "block_hashes";
const CF_CERTIFICATES: &str = "certificates";
const CF_TXS: &str = "txs";
const CF_STATE_NODES: &str = "state_nodes";
const CF_STATE_VALUES: &str = "state_values";
const CF_META: &str = "meta";
const CF_EVIDENCE: &str = "evidence";
const COLUMN_FAMILIES: [&str; 8] = [
    CF_BLOCKS,
    CF_BLOCK_HASHES,
    CF_CERTIFICATES,
    CF_TXS,
    CF_STATE_NODES,
    CF_STATE_VALUES,
    CF_META,
    CF_EVIDENCE,
];

/// Synced writes (each an fsync of RocksDB's log) this process has made.
static SYNCED_WRITES: AtomicU64 = AtomicU64::new(0);

/// How many synced writes this process's stores have made so far (block
/// commits, signer records, locked blocks). The node exports it, so that a
/// benchmark can report fsyncs per second.
pub fn synced_writes() -> u64 {
    SYNCED_WRITES.load(Ordering::Relaxed)
}

/// The most evidence records one page returns.
pub const EVIDENCE_PAGE_MAX: usize = 100;
/// Bound on one stored evidence record (two votes).
const EVIDENCE_BYTES_MAX: usize = 4096;

const META_FORMAT: &[u8] = b"format_version";
const META_GENESIS: &[u8] = b"genesis_hash";
const META_TIP: &[u8] = b"tip";
const META_SIGNER: &[u8] = b"signer_state";
const META_LOCKED_BLOCK: &[u8] = b"locked_block";
const META_SIGNER_PASSED: &[u8] = b"signer_passed";
/// Followed by a height's 8 big-endian bytes: a new validator set decides
/// blocks from that height (see [`Store::set_changes`]).
const META_SET_CHANGE: &[u8] = b"set_change/";

/// Bounds on stored values, checked before decoding what the disk returns.
const NODE_BYTES_MAX: usize = 4096;
const META_BYTES_MAX: usize = 1 << 20;

/// Why the store failed. `Corrupt` and `Open` name what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open database at {path}: {reason}. If the files are damaged, restore them from a backup or remove the folder and let the node sync again")]
    Open { path: PathBuf, reason: String },
    #[error("database at {path} has format {found}, newer than this build supports ({supported}); run a newer tally")]
    NewerFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("database at {path} has format {found}, which this build cannot read (it reads {supported})")]
    OlderFormat {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("database at {path} belongs to another chain (genesis {found}, this genesis is {expected}); point --home at the right folder or remove it")]
    WrongChain {
        path: PathBuf,
        expected: Hash,
        found: Hash,
    },
    #[error("database is corrupt: {0}. Restore it from a backup or remove the folder and let the node sync again")]
    Corrupt(String),
    #[error("RocksDB failed: {0}")]
    Db(#[from] rocksdb::Error),
    #[error("refusing to commit block: {0}")]
    Rejected(String),
    #[error("refusing to commit block: {0}")]
    Block(#[from] BlockError),
    #[error(transparent)]
    State(#[from] StateError),
}

/// The last committed block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct Tip {
    pub height: u64,
    pub block_hash: Hash,
    pub state_root: Hash,
    pub time_ms: u64,
}

/// Where a committed transaction sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct TxLocation {
    pub height: u64,
    pub index: u32,
}

/// The node's database.
#[derive(Debug)]
pub struct Store {
    db: DB,
    path: PathBuf,
    genesis_hash: Hash,
    genesis_root: Hash,
    genesis_time_ms: u64,
    tip: RwLock<Option<Tip>>,
    /// Held for a whole commit, so commits run one at a time; the tip's own
    /// lock is taken only to publish the new tip, so readers of the tip
    /// never wait for a commit's synced write.
    committing: Mutex<()>,
    /// Values at the tip, for a store that this process writes (`None` for
    /// read-only and audit instances, whose database another process may
    /// change).
    latest: Option<LatestValues>,
}

/// Refuses to write more than `max` bytes of `what`.
fn within(bytes: &[u8], max: usize, what: &str) -> Result<(), StoreError> {
    if bytes.len() > max {
        return Err(StoreError::Rejected(format!(
            "{what} is {} bytes, more than {max}",
            bytes.len()
        )));
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Write,
    ReadOnly,
    Audit,
}

fn height_key(height: u64) -> [u8; 8] {
    height.to_be_bytes()
}

fn value_key(key_hash: &KeyHash, version: Version) -> [u8; 40] {
    let mut k = [0u8; 40];
    k[..32].copy_from_slice(&key_hash.0);
    k[32..].copy_from_slice(&version.to_be_bytes());
    k
}

impl Store {
    /// Opens (creating if needed) the database at `path` for `genesis`. A new
    /// database is initialised with the genesis state in one synced batch.
    pub fn open(path: &Path, genesis: &Genesis) -> Result<Self, StoreError> {
        let cache = block_cache();
        let cfs = COLUMN_FAMILIES
            .iter()
            .map(|name| ColumnFamilyDescriptor::new(*name, db_options(true, &cache)));
        let db = DB::open_cf_descriptors(&db_options(true, &cache), path, cfs).map_err(|e| {
            StoreError::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Self::from_db(db, path, genesis, Mode::Write)
    }

    /// Opens the database read-only (for `audit` beside a running node, or
    /// inspection). Nothing is created or written.
    pub fn open_read_only(path: &Path, genesis: &Genesis) -> Result<Self, StoreError> {
        let db = DB::open_cf_for_read_only(
            &db_options(false, &block_cache()),
            path,
            COLUMN_FAMILIES,
            false,
        )
        .map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        Self::from_db(db, path, genesis, Mode::ReadOnly)
    }

    /// Opens the database as a RocksDB secondary instance: it reads a
    /// consistent view of what the node (the primary) has written so far,
    /// while the node keeps running and writing. `scratch` holds the
    /// secondary's own log files. The tip is not checked here: `audit`
    /// checks every block itself and must name the fault, not refuse to
    /// open.
    pub fn open_secondary(
        path: &Path,
        scratch: &Path,
        genesis: &Genesis,
    ) -> Result<Self, StoreError> {
        let mut opts = db_options(false, &block_cache());
        // Keep every file open: the primary may compact and delete files
        // this instance still reads.
        opts.set_max_open_files(-1);
        let open_err = |e: rocksdb::Error| StoreError::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        };
        let db =
            DB::open_cf_as_secondary(&opts, path, scratch, COLUMN_FAMILIES).map_err(open_err)?;
        db.try_catch_up_with_primary().map_err(open_err)?;
        Self::from_db(db, path, genesis, Mode::Audit)
    }

    fn from_db(db: DB, path: &Path, genesis: &Genesis, mode: Mode) -> Result<Self, StoreError> {
        let genesis_hash = genesis.hash();
        let mut store = Store {
            db,
            path: path.to_path_buf(),
            genesis_hash,
            genesis_root: Hash::ZERO,
            genesis_time_ms: genesis.genesis_time_ms,
            tip: RwLock::new(None),
            committing: Mutex::new(()),
            latest: None,
        };
        match store.get_meta(META_FORMAT)? {
            None if mode == Mode::Write => store.initialise(genesis)?,
            None => {
                return Err(StoreError::Corrupt(format!(
                    "{} has no format version: it is not a Tally database",
                    path.display()
                )))
            }
            Some(bytes) => {
                let found: u32 = decode(&bytes, 4, "format version")
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                if found > FORMAT_VERSION {
                    return Err(StoreError::NewerFormat {
                        path: path.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
                if found < FORMAT_VERSION {
                    return Err(StoreError::OlderFormat {
                        path: path.to_path_buf(),
                        found,
                        supported: FORMAT_VERSION,
                    });
                }
            }
        }
        let stored: Hash = match store.get_meta(META_GENESIS)? {
            Some(bytes) => decode(&bytes, 32, "genesis hash")
                .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            None => return Err(StoreError::Corrupt("the genesis hash is missing".into())),
        };
        if stored != genesis_hash {
            return Err(StoreError::WrongChain {
                path: path.to_path_buf(),
                expected: genesis_hash,
                found: stored,
            });
        }
        store.genesis_root = state::root_at(&store, 0)
            .map_err(|e| StoreError::Corrupt(format!("the genesis state cannot be read: {e}")))?;
        let tip = match store.get_meta(META_TIP)? {
            None => None,
            Some(bytes) => Some(
                decode::<Tip>(&bytes, META_BYTES_MAX, "tip")
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?,
            ),
        };
        if let (Some(tip), false) = (tip, mode == Mode::Audit) {
            store.check_tip(&tip)?;
        }
        *store.tip.get_mut().unwrap_or_else(|p| p.into_inner()) = tip;
        if mode == Mode::Write {
            store.latest = Some(LatestValues::new(tip.map_or(0, |t| t.height)));
        }
        Ok(store)
    }

    fn initialise(&self, genesis: &Genesis) -> Result<(), StoreError> {
        let update = genesis_state(self, genesis)?;
        let mut batch = WriteBatch::default();
        self.put_state(&mut batch, &update);
        batch.put_cf(self.cf(CF_META), META_FORMAT, encode(&FORMAT_VERSION));
        batch.put_cf(self.cf(CF_META), META_GENESIS, encode(&genesis.hash()));
        self.write_synced(batch)
    }

    /// Reads back the recorded tip and checks it against what is stored.
    fn check_tip(&self, tip: &Tip) -> Result<(), StoreError> {
        let corrupt =
            |what: String| StoreError::Corrupt(format!("tip at height {}: {what}", tip.height));
        let block = self
            .block(tip.height)?
            .ok_or_else(|| corrupt("the block is missing".into()))?;
        if block.hash() != tip.block_hash {
            return Err(corrupt(format!(
                "the block hashes to {}, the tip records {}",
                block.hash(),
                tip.block_hash
            )));
        }
        if block.compute_tx_root() != block.header.tx_root {
            return Err(corrupt(
                "the block's transactions do not match its tx_root".into(),
            ));
        }
        if crate::types::last_commit_hash(block.last_commit.as_ref())
            != block.header.last_commit_hash
        {
            return Err(corrupt(
                "the block's last_commit does not match its header".into(),
            ));
        }
        let cert = self
            .certificate(tip.height)?
            .ok_or_else(|| corrupt("the commit certificate is missing".into()))?;
        check_certificate_matches(&block, &cert).map_err(|e| corrupt(e.to_string()))?;
        let root = state::root_at(self, tip.height).map_err(|e| corrupt(e.to_string()))?;
        if root != block.header.state_root || root != tip.state_root {
            return Err(corrupt(format!(
                "the state root is {root}, the block header says {}",
                block.header.state_root
            )));
        }
        if self.block_height(&tip.block_hash)? != Some(tip.height) {
            return Err(corrupt("the block hash index disagrees".into()));
        }
        Ok(())
    }

    fn cf(&self, name: &str) -> &rocksdb::ColumnFamily {
        // Invariant: every column family in COLUMN_FAMILIES is opened (or
        // created) by `open`/`open_read_only`, which fail otherwise.
        #[allow(clippy::expect_used)]
        self.db
            .cf_handle(name)
            .expect("column family opened with the database")
    }

    fn write_synced(&self, batch: WriteBatch) -> Result<(), StoreError> {
        SYNCED_WRITES.fetch_add(1, Ordering::Relaxed);
        let mut opts = WriteOptions::default();
        opts.set_sync(true);
        self.db.write_opt(batch, &opts)?;
        Ok(())
    }

    fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_META), key)?)
    }

    fn put_state(&self, batch: &mut WriteBatch, update: &StateUpdate) {
        let nodes = self.cf(CF_STATE_NODES);
        for (key, node) in update.batch.node_batch.nodes() {
            batch.put_cf(nodes, encode(key), encode(node));
        }
        let values = self.cf(CF_STATE_VALUES);
        for ((version, key_hash), value) in update.batch.node_batch.values() {
            batch.put_cf(values, value_key(key_hash, *version), encode(value));
        }
    }

    /// The database folder.
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn genesis_hash(&self) -> Hash {
        self.genesis_hash
    }

    /// The state root of genesis (version 0).
    pub fn genesis_state_root(&self) -> Hash {
        self.genesis_root
    }

    /// The last committed block, or `None` before block 1.
    pub fn tip(&self) -> Option<Tip> {
        *self.tip.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The height of the last committed block (0 before block 1).
    pub fn height(&self) -> u64 {
        self.tip().map_or(0, |t| t.height)
    }

    /// What block `height + 1` must attach to.
    pub fn parent_of_next(&self) -> crate::verify::Parent {
        match self.tip() {
            Some(t) => crate::verify::Parent {
                height: t.height,
                hash: t.block_hash,
                time_ms: t.time_ms,
            },
            None => crate::verify::Parent {
                height: 0,
                hash: self.genesis_hash,
                time_ms: self.genesis_time_ms,
            },
        }
    }

    /// Commits a decided block with its certificate and the state it
    /// produced, atomically and synced. Checks first that the block extends
    /// the tip and that the certificate and state update belong to it.
    pub fn commit_block(
        &self,
        block: &Block,
        cert: &CommitCertificate,
        update: &StateUpdate,
    ) -> Result<Tip, StoreError> {
        self.commit_blocks(&[(block, cert, update)])
    }

    /// Commits consecutive decided blocks in one atomic, synced write (block
    /// sync commits a run at once: one fsync instead of one per block). Each
    /// must extend the one before (the first, the tip), with its own
    /// certificate and state update. Returns the new tip.
    pub fn commit_blocks(
        &self,
        blocks: &[(&Block, &CommitCertificate, &StateUpdate)],
    ) -> Result<Tip, StoreError> {
        let _committing = self.committing.lock().unwrap_or_else(|p| p.into_inner());
        let mut tip = self.tip();
        let mut batch = WriteBatch::default();
        for (block, cert, update) in blocks {
            let next = self.add_block(&mut batch, tip, block, cert, update)?;
            tip = Some(next);
        }
        let Some(tip) = tip.filter(|_| !blocks.is_empty()) else {
            return Err(StoreError::Rejected("no block to commit".into()));
        };
        batch.put_cf(self.cf(CF_META), META_TIP, encode(&tip));
        self.write_synced(batch)?;
        // Readers see the new tip and its values together.
        let mut tip_guard = self.tip.write().unwrap_or_else(|p| p.into_inner());
        if let Some(latest) = &self.latest {
            latest.committed(
                tip.height,
                blocks
                    .iter()
                    .flat_map(|(_, _, update)| update.batch.node_batch.values())
                    .map(|((_, key), value)| (key, value)),
            );
        }
        *tip_guard = Some(tip);
        Ok(tip)
    }

    /// The heights after `after` from which a new validator set decided
    /// blocks (the block before each names it in its header), at most
    /// `limit`, in order. A light client walks them from genesis.
    pub fn set_changes(&self, after: u64, limit: usize) -> Result<Vec<u64>, StoreError> {
        let mut start = META_SET_CHANGE.to_vec();
        start.extend_from_slice(&height_key(after.saturating_add(1)));
        let mut out = Vec::new();
        let iter = self.db.iterator_cf(
            self.cf(CF_META),
            IteratorMode::From(&start, rocksdb::Direction::Forward),
        );
        for item in iter {
            let (key, _) = item?;
            let Some(height) = key.strip_prefix(META_SET_CHANGE) else {
                break;
            };
            let height: [u8; 8] = height.try_into().map_err(|_| {
                StoreError::Corrupt(format!("a set change key of {} bytes", key.len()))
            })?;
            if out.len() >= limit {
                break;
            }
            out.push(u64::from_be_bytes(height));
        }
        Ok(out)
    }

    /// Adds `block` on top of `tip` to `batch`, after checking that it
    /// extends it and that the certificate and update are its own.
    fn add_block(
        &self,
        batch: &mut WriteBatch,
        tip: Option<Tip>,
        block: &Block,
        cert: &CommitCertificate,
        update: &StateUpdate,
    ) -> Result<Tip, StoreError> {
        let parent = match tip {
            Some(t) => (t.height, t.block_hash),
            None => (0, self.genesis_hash),
        };
        let height = block.height();
        if height != parent.0 + 1 || block.header.prev_hash != parent.1 {
            return Err(StoreError::Rejected(format!(
                "block {height} (prev {}) does not extend the tip at height {} ({})",
                block.header.prev_hash, parent.0, parent.1
            )));
        }
        check_certificate_matches(block, cert)?;
        if update.version != height || update.root != block.header.state_root {
            return Err(StoreError::Rejected(format!(
                "state update (version {}, root {}) does not match block {height} (state root {})",
                update.version, update.root, block.header.state_root
            )));
        }
        let block_bytes = encode(block);
        if block_bytes.len() > BLOCK_BYTES_CAP {
            return Err(StoreError::Rejected(format!(
                "block is {} bytes, more than {BLOCK_BYTES_CAP}",
                block_bytes.len()
            )));
        }
        let hash = block.hash();
        batch.put_cf(self.cf(CF_BLOCKS), height_key(height), &block_bytes);
        batch.put_cf(self.cf(CF_BLOCK_HASHES), hash.0, height_key(height));
        batch.put_cf(self.cf(CF_CERTIFICATES), height_key(height), encode(cert));
        if block.header.next_validators_hash != block.header.validators_hash {
            let mut key = META_SET_CHANGE.to_vec();
            key.extend_from_slice(&height_key(height + 1));
            batch.put_cf(self.cf(CF_META), key, []);
        }
        let txs = self.cf(CF_TXS);
        for (index, tx_hash) in update.tx_hashes_of(block).iter().enumerate() {
            let location = TxLocation {
                height,
                index: index as u32,
            };
            batch.put_cf(txs, tx_hash.0, encode(&location));
        }
        self.put_state(batch, update);
        Ok(Tip {
            height,
            block_hash: hash,
            state_root: update.root,
            time_ms: block.header.time_ms,
        })
    }

    /// The block at `height`.
    pub fn block(&self, height: u64) -> Result<Option<Block>, StoreError> {
        match self
            .db
            .get_pinned_cf(self.cf(CF_BLOCKS), height_key(height))?
        {
            None => Ok(None),
            Some(bytes) => {
                let block = Block::decode(&bytes, BLOCK_BYTES_CAP)
                    .map_err(|e| StoreError::Corrupt(format!("block {height}: {e}")))?;
                if block.height() != height {
                    return Err(StoreError::Corrupt(format!(
                        "the block stored at height {height} says it is height {}",
                        block.height()
                    )));
                }
                Ok(Some(block))
            }
        }
    }

    /// The raw encoded block at `height`, as stored (for serving peers).
    pub fn block_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.cf(CF_BLOCKS), height_key(height))?)
    }

    /// The height of the block with hash `hash`.
    pub fn block_height(&self, hash: &Hash) -> Result<Option<u64>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(CF_BLOCK_HASHES), hash.0)?
            .map(|b| {
                <[u8; 8]>::try_from(&b[..])
                    .map(u64::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt(format!("block hash index entry for {hash}")))
            })
            .transpose()
    }

    /// The block with hash `hash`.
    pub fn block_by_hash(&self, hash: &Hash) -> Result<Option<Block>, StoreError> {
        match self.block_height(hash)? {
            None => Ok(None),
            Some(h) => self.block(h),
        }
    }

    /// The commit certificate of the block at `height`.
    pub fn certificate(&self, height: u64) -> Result<Option<CommitCertificate>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(CF_CERTIFICATES), height_key(height))?
            .map(|b| {
                CommitCertificate::decode(&b)
                    .map_err(|e| StoreError::Corrupt(format!("certificate {height}: {e}")))
            })
            .transpose()
    }

    /// Where the transaction with hash `hash` was committed.
    pub fn tx_location(&self, hash: &Hash) -> Result<Option<TxLocation>, StoreError> {
        self.db
            .get_pinned_cf(self.cf(CF_TXS), hash.0)?
            .map(|b| {
                decode::<TxLocation>(&b, 12, "tx location")
                    .map_err(|e| StoreError::Corrupt(format!("tx index entry {hash}: {e}")))
            })
            .transpose()
    }

    /// The number of entries in the block-hash and transaction indexes.
    pub fn index_counts(&self) -> Result<(u64, u64), StoreError> {
        let count = |cf: &str| -> Result<u64, StoreError> {
            let mut n = 0u64;
            for item in self.db.iterator_cf(self.cf(cf), IteratorMode::Start) {
                item?;
                n += 1;
            }
            Ok(n)
        };
        Ok((count(CF_BLOCK_HASHES)?, count(CF_TXS)?))
    }

    /// The raw stored certificate at `height`, as stored.
    pub fn certificate_bytes(&self, height: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .db
            .get_cf(self.cf(CF_CERTIFICATES), height_key(height))?)
    }

    /// Writes raw bytes into a column family, bypassing every check. Only for
    /// tests that tamper with a database to prove the checks catch it.
    #[doc(hidden)]
    pub fn tamper_raw(
        &self,
        column: &str,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), StoreError> {
        let cf = self
            .db
            .cf_handle(column)
            .ok_or_else(|| StoreError::Rejected(format!("no column family {column}")))?;
        match value {
            Some(v) => self.db.put_cf(cf, key, v)?,
            None => self.db.delete_cf(cf, key)?,
        }
        if let Some(latest) = &self.latest {
            latest.clear();
        }
        Ok(())
    }
}

mod records;
mod tree;

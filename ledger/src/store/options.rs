//! RocksDB's options for the store: memory bounds, durability checks,
//! compression, and the priority of background work.

use rocksdb::{DBRecoveryMode, Options};

/// Memory RocksDB may use, for every column family together: memtables
/// (written, not yet flushed) and the cache of read blocks. Without these
/// bounds each of the eight column families has its own 64 MiB memtables
/// and its own block cache, and a node under load grows past 400 MB.
const MEMTABLES_BYTES: usize = 64 << 20;
const MEMTABLE_BYTES_PER_COLUMN: usize = 16 << 20;
const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// Write-ahead log kept on disk at most (about). A log file is deleted only
/// when every column family written in it has flushed, so without a bound
/// one rarely written family keeps every log since its last flush: a node
/// that ran for 30 minutes held 25 logs (368 MB) beside 11 table files.
/// Past this size RocksDB flushes the families that pin the oldest log.
const WAL_BYTES: u64 = 2 * MEMTABLES_BYTES as u64;

/// One block cache for a database's column families.
pub(super) fn block_cache() -> rocksdb::Cache {
    rocksdb::Cache::new_lru_cache(BLOCK_CACHE_BYTES)
}

/// RocksDB's process-wide environment, with its compaction threads at the
/// lowest CPU priority (nice 19). Compaction is background work that can
/// wait; consensus cannot. On a busy machine a compaction at normal
/// priority takes cores from voting for seconds (every node compacts the
/// same data at about the same time), and commit latency spikes with it
/// (ADR 14). Flushes keep their own pool at normal priority, so memtables
/// still drain and writes never stall behind a starved flush.
fn background_env() -> Option<rocksdb::Env> {
    let mut env = rocksdb::Env::new().ok()?;
    env.lower_thread_pool_cpu_priority();
    Some(env)
}

pub(super) fn db_options(create: bool, cache: &rocksdb::Cache) -> Options {
    let mut opts = Options::default();
    if let Some(env) = background_env() {
        opts.set_env(&env);
    }
    opts.set_db_write_buffer_size(MEMTABLES_BYTES);
    opts.set_write_buffer_size(MEMTABLE_BYTES_PER_COLUMN);
    opts.set_max_total_wal_size(WAL_BYTES);
    let mut table = rocksdb::BlockBasedOptions::default();
    table.set_block_cache(cache);
    opts.set_block_based_table_factory(&table);
    opts.create_if_missing(create);
    opts.create_missing_column_families(create);
    // A torn or corrupt WAL is an error, never silently truncated: every
    // commit was synced, so a damaged log means lost acknowledged data.
    opts.set_wal_recovery_mode(DBRecoveryMode::AbsoluteConsistency);
    opts.set_paranoid_checks(true);
    opts.set_compression_type(rocksdb::DBCompressionType::Lz4);
    opts.set_bottommost_compression_type(rocksdb::DBCompressionType::Zstd);
    opts.set_max_open_files(512);
    opts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test

    use super::*;

    /// The nice value of each of this process's threads named `name`.
    fn nice_of_threads(name: &str) -> Vec<i64> {
        let mut nices = Vec::new();
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let comm = std::fs::read_to_string(task.join("comm")).unwrap_or_default();
            if comm.trim() != name {
                continue;
            }
            let stat = std::fs::read_to_string(task.join("stat")).unwrap();
            // Fields after the command (which ends with ')'): state is the
            // 3rd field of the line, nice the 19th.
            let after = &stat[stat.rfind(')').unwrap() + 2..];
            nices.push(after.split(' ').nth(16).unwrap().parse().unwrap());
        }
        nices
    }

    /// A compaction runs on a thread at nice 19, a flush at normal
    /// priority (ADR 14).
    #[cfg(target_os = "linux")]
    #[test]
    fn compactions_run_at_the_lowest_cpu_priority() {
        let dir = tempfile::tempdir().unwrap();
        let db = rocksdb::DB::open(&db_options(true, &block_cache()), dir.path()).unwrap();
        for round in 0u32..3 {
            for i in 0u32..100 {
                db.put([round.to_be_bytes(), i.to_be_bytes()].concat(), [7u8; 64])
                    .unwrap();
            }
            db.flush().unwrap();
        }
        // A pool thread takes its priority when it picks up its next job.
        db.compact_range(None::<&[u8]>, None::<&[u8]>);
        db.compact_range(None::<&[u8]>, None::<&[u8]>);
        let low = nice_of_threads("rocksdb:low");
        assert!(!low.is_empty(), "no compaction thread found");
        assert!(
            low.iter().all(|&n| n == 19),
            "compaction threads' nice values: {low:?}"
        );
        let high = nice_of_threads("rocksdb:high");
        assert!(
            high.iter().all(|&n| n == 0),
            "flush threads' nice values: {high:?}"
        );
    }
}

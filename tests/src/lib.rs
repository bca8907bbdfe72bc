//! Shared helpers for Tally's cross-crate integration tests (in `tests/`).

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

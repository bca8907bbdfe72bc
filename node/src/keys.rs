//! Key files: PKCS#8 PEM, written atomically with mode 0600, and refused
//! when group or others can read them.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tally_ledger::Keypair;

/// A key file larger than this is refused before it is read.
pub const KEY_FILE_BYTES_MAX: u64 = 4096;

/// What is wrong with a key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write key file {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error(
        "key file {path} is readable by group or others (mode {mode:o}); run `chmod 600 {path}`"
    )]
    Permissions { path: PathBuf, mode: u32 },
    #[error("key file {path} is {len} bytes, more than the limit of {KEY_FILE_BYTES_MAX}: is it a key file?")]
    TooLarge { path: PathBuf, len: u64 },
    #[error("key file {path} holds no usable key: {reason}")]
    Format { path: PathBuf, reason: String },
    #[error("key file {path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
}

/// Writes `key` to `path` atomically (temporary file, fsync, rename) with
/// mode 0600. Refuses to overwrite an existing file.
pub fn write_key_file(path: &Path, key: &Keypair) -> Result<(), KeyFileError> {
    let err = |e: &dyn std::fmt::Display| KeyFileError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    if path.exists() {
        return Err(KeyFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let pem = key.to_pkcs8_pem().map_err(|e| err(&e))?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    fs::create_dir_all(&dir).map_err(|e| err(&e))?;
    let file_name = path
        .file_name()
        .ok_or_else(|| err(&"the path has no file name"))?
        .to_string_lossy()
        .to_string();
    let tmp = dir.join(format!(".{file_name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| err(&e))?;
    file.write_all(pem.as_bytes()).map_err(|e| err(&e))?;
    file.sync_all().map_err(|e| err(&e))?;
    drop(file);
    fs::rename(&tmp, path).map_err(|e| err(&e))?;
    if let Ok(d) = fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Reads a key file, refusing one that group or others may read.
pub fn read_key_file(path: &Path) -> Result<Keypair, KeyFileError> {
    let read_err = |e: std::io::Error| KeyFileError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let meta = fs::metadata(path).map_err(read_err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyFileError::Permissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    if meta.len() > KEY_FILE_BYTES_MAX {
        return Err(KeyFileError::TooLarge {
            path: path.to_path_buf(),
            len: meta.len(),
        });
    }
    let mut text = String::new();
    fs::File::open(path)
        .map_err(read_err)?
        .take(KEY_FILE_BYTES_MAX)
        .read_to_string(&mut text)
        .map_err(|e| KeyFileError::Format {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    Keypair::from_pkcs8_pem(&text).map_err(|e| KeyFileError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// The libp2p PeerId of a node key, computed by libp2p itself.
pub fn peer_id(key: &Keypair) -> libp2p_identity::PeerId {
    // Invariant: every 32-byte seed is a valid ed25519 secret.
    #[allow(clippy::expect_used)]
    let kp =
        libp2p_identity::Keypair::ed25519_from_bytes(key.seed()).expect("32-byte ed25519 seed");
    kp.public().to_peer_id()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_keys_are_private_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        let key = Keypair::generate().unwrap();
        write_key_file(&path, &key).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key_file(&path).unwrap().public(), key.public());
        assert!(matches!(
            write_key_file(&path, &key),
            Err(KeyFileError::Exists { .. })
        ));
    }

    #[test]
    fn group_readable_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.pem");
        write_key_file(&path, &Keypair::generate().unwrap()).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        let err = read_key_file(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Permissions { mode: 0o640, .. }));
        assert!(err.to_string().contains("chmod 600"));
    }

    #[test]
    fn junk_and_huge_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.pem");
        fs::write(&path, "not a key").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::Format { .. })
        ));
        fs::write(&path, vec![b'a'; 10_000]).unwrap();
        assert!(matches!(
            read_key_file(&path),
            Err(KeyFileError::TooLarge { .. })
        ));
    }

    #[test]
    fn ledger_and_libp2p_agree_on_peer_ids() {
        for i in 0..20u8 {
            let key = Keypair::from_seed([i; 32]);
            let ours = tally_ledger::genesis::peer_id_from_node_key(&key.public());
            assert_eq!(ours, peer_id(&key).to_base58());
            let parsed: libp2p_identity::PeerId = ours.parse().unwrap();
            assert_eq!(parsed, peer_id(&key));
        }
    }
}

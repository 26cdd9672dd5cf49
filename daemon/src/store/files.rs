//! The state directory and the database file on disk: ownership and mode
//! checks, and the lock one process at a time holds.

use super::*;

/// Takes the state directory's lock (flock on `twofactor.lock`), or fails
/// at once if another process holds it. The lock lasts as long as the
/// returned value.
pub(super) fn lock_dir(dir: &Path) -> Result<nix::fcntl::Flock<std::fs::File>, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)
        .map_err(|source| StoreError::Io {
            path: path.clone(),
            source,
        })?;
    nix::fcntl::Flock::lock(file, nix::fcntl::FlockArg::LockExclusiveNonblock)
        .map_err(|_| StoreError::Busy { path })
}

/// The lock file that one process at a time holds on a state directory
/// (the daemon while it runs, a key rotation while it re-seals).
pub const LOCK_FILE: &str = "twofactor.lock";

/// The state directory must be a real directory owned by us and closed to
/// everyone else. A missing one is created 0700.
pub(super) fn prepare_dir(dir: &Path, mode: Mode) -> Result<(), StoreError> {
    let unsafe_dir = |message: String| StoreError::Unsafe {
        path: dir.to_path_buf(),
        message,
    };
    match std::fs::symlink_metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && mode == Mode::Create => {
            std::fs::DirBuilder::new()
                .recursive(false)
                .mode(0o700)
                .create(dir)
                .map_err(|source| StoreError::Io {
                    path: dir.to_path_buf(),
                    source,
                })?;
            Ok(())
        }
        Err(source) => Err(StoreError::Io {
            path: dir.to_path_buf(),
            source,
        }),
        Ok(meta) => {
            if !meta.is_dir() {
                return Err(unsafe_dir(
                    "is not a directory (symlinks are refused)".into(),
                ));
            }
            if meta.uid() != nix::unistd::geteuid().as_raw() {
                return Err(unsafe_dir(format!(
                    "is owned by uid {}, not by the daemon's uid {}",
                    meta.uid(),
                    nix::unistd::geteuid()
                )));
            }
            if meta.permissions().mode() & 0o077 != 0 {
                return Err(unsafe_dir(format!(
                    "has mode {:o}; it must be 0700 (chmod 0700 {})",
                    meta.permissions().mode() & 0o7777,
                    dir.display()
                )));
            }
            Ok(())
        }
    }
}

/// Creates the database file 0600 if missing, and refuses a symlink or a
/// file others can read.
pub(super) fn prepare_file(path: &Path, mode: Mode) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(mode == Mode::Create)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.is_file() || meta.permissions().mode() & 0o077 != 0 {
        return Err(StoreError::Unsafe {
            path: path.to_path_buf(),
            message: format!(
                "has mode {:o}; it must be a regular file with mode 0600",
                meta.permissions().mode() & 0o7777
            ),
        });
    }
    Ok(())
}

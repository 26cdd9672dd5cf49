//! Writing a file that only its owner can read: the backup codes a user
//! saves with `--save FILE`.
//!
//! The CLI runs as the user, so the file is created by (and belongs to) the
//! user. The rules:
//!
//! - A new file is created with `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC` and
//!   mode 0600, so it is never readable by others, not even for a moment,
//!   and an existing name (a symbolic link included, dangling or not) makes
//!   the creation fail instead of being followed or replaced.
//! - An existing file is replaced only when asked (`--force`), and only if
//!   it is a regular file of the caller's own with no other hard link. It is
//!   opened with `O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC` (a link is refused, a
//!   FIFO cannot block us) and checked with `fstat` on the open descriptor;
//!   only then is it set to 0600 (`fchmod`) and emptied (`ftruncate`). It is
//!   not opened with `O_TRUNC`: that would empty a file the checks then
//!   refuse (someone else's file we may write to, or a hard link to one).
//! - The path is looked at (`lstat`) before anything is opened, to give a
//!   clear reason early; the checks on the open descriptor are the ones
//!   that hold if the name changes in between.
//!
//! Only the last component is protected against links: directories on the
//! way are the caller's choice, as with any other program.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::error::{Failure, Reason};
use crate::text::one_line;

/// The only mode the file ever has.
pub const MODE: u32 = 0o600;

/// Why the file was not written.
#[derive(Debug)]
pub enum SaveError {
    /// The path is empty.
    NoName,
    /// The directory the file would be created in does not exist (or is not
    /// a directory).
    NoDirectory(PathBuf),
    /// The file exists and replacing it was not asked for.
    Exists,
    /// The name is a symbolic link (never followed).
    Symlink,
    /// The name is a directory, a FIFO, a device or a socket.
    NotRegular,
    /// The file belongs to another user.
    NotOwned,
    /// The caller may not write this (the directory, or the file).
    NotWritable(PathBuf),
    /// The file has other hard links (writing would change them too).
    HardLinked,
    Io(io::Error),
}

impl SaveError {
    /// The refusals are about the file named by the user (exit status 2);
    /// an I/O error is exit status 4.
    pub fn reason(&self) -> Reason {
        match self {
            SaveError::Io(_) => Reason::Io,
            _ => Reason::Usage,
        }
    }

    /// What went wrong with `path`, one line. `force_hint`: say that
    /// `--force` would replace an existing file.
    pub fn describe(&self, path: &Path, force_hint: bool) -> String {
        let name = shown(path);
        match self {
            SaveError::NoName => "no file name given".to_owned(),
            SaveError::NoDirectory(dir) => {
                format!("{name}: the directory {} does not exist", shown(dir))
            }
            SaveError::Exists if force_hint => {
                format!("{name} already exists; not replaced (add --force to replace it)")
            }
            SaveError::Exists => format!("{name} already exists; not replaced"),
            SaveError::Symlink => format!(
                "{name} is a symbolic link; backup codes are never written through a link \
                 (not even with --force)"
            ),
            SaveError::NotRegular => format!("{name} is not a regular file; not replaced"),
            SaveError::NotOwned => format!("{name} belongs to another user; not replaced"),
            SaveError::NotWritable(p) if p.as_path() == path => {
                format!("{name}: you may not write to this file")
            }
            SaveError::NotWritable(dir) => {
                format!("{name}: you may not create files in {}", shown(dir))
            }
            SaveError::HardLinked => format!("{name} has other hard links; not replaced"),
            SaveError::Io(e) => format!("cannot write {name}: {e}"),
        }
    }

    /// As a failure of the command, with `doing` in front (may be empty).
    pub fn failure(&self, doing: &str, path: &Path, force_hint: bool) -> Failure {
        Failure::new(
            self.reason(),
            format!("{doing}{}", self.describe(path, force_hint)),
        )
    }
}

/// A path for messages (one line; the path is never secret).
pub fn shown(path: &Path) -> String {
    one_line(&path.display().to_string())
}

/// Whether `path` may be written, without touching it: it does not exist
/// and its directory does and is writable by the caller, or (`replace`) it
/// is a regular file of the caller's own with a single link, writable. A
/// symbolic link is always refused. (Writability is asked with
/// `access(2)`, by the real uid: the CLI is not set-uid.)
pub fn check(path: &Path, replace: bool) -> Result<(), SaveError> {
    if path.as_os_str().is_empty() {
        return Err(SaveError::NoName);
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            may_replace(&meta, replace)?;
            writable(path)
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let dir = directory_of(path);
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => writable(&dir),
                _ => Err(SaveError::NoDirectory(dir)),
            }
        }
        Err(e) => Err(lookup_error(path, e)),
    }
}

/// `lstat` failed for another reason than "not there".
fn lookup_error(path: &Path, err: io::Error) -> SaveError {
    match err.raw_os_error() {
        // A directory on the way may not be searched: nothing can be
        // created there either.
        Some(libc::EACCES) => SaveError::NotWritable(directory_of(path)),
        // A file name used as a directory on the way.
        Some(libc::ENOTDIR) => SaveError::NoDirectory(directory_of(path)),
        _ => SaveError::Io(err),
    }
}

fn writable(path: &Path) -> Result<(), SaveError> {
    use nix::unistd::{access, AccessFlags};
    match access(path, AccessFlags::W_OK) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EACCES | nix::errno::Errno::EROFS | nix::errno::Errno::EPERM) => {
            Err(SaveError::NotWritable(path.to_path_buf()))
        }
        Err(e) => Err(SaveError::Io(e.into())),
    }
}

/// Writes `contents` to `path` under the rules of this module; the file
/// has mode 0600 and is synced to disk when this returns `Ok`.
pub fn write(path: &Path, contents: &[u8], replace: bool) -> Result<(), SaveError> {
    check(path, replace)?;
    write_unchecked(path, contents, replace)
}

/// [`write`] without the early look at the path: the guarantees come from
/// the open flags and the checks on the descriptor alone.
fn write_unchecked(path: &Path, contents: &[u8], replace: bool) -> Result<(), SaveError> {
    let (mut file, created) = match create_new(path) {
        Ok(file) => (file, true),
        Err(SaveError::Exists) if replace => (open_existing(path)?, false),
        Err(e) => return Err(e),
    };
    let written = fill(&mut file, contents, created);
    if written.is_err() && created {
        // Nothing half-written is left behind under a name we created
        // ourselves. Best effort: the error below says what failed.
        drop(file);
        let _ = std::fs::remove_file(path);
    }
    written
}

/// `O_CREAT|O_EXCL|O_NOFOLLOW|O_CLOEXEC`, mode 0600.
fn create_new(path: &Path) -> Result<File, SaveError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| open_error(path, e))
}

/// An existing file, for replacing: `O_WRONLY|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`
/// (no `O_CREAT`, no `O_TRUNC`), then checked on the descriptor.
fn open_existing(path: &Path) -> Result<File, SaveError> {
    let file = OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(SaveError::Io)?;
    may_replace(&meta, true)?;
    Ok(file)
}

/// Mode 0600 (the umask may have taken bits away, or an old file had
/// others), empty, then the contents, synced.
fn fill(file: &mut File, contents: &[u8], created: bool) -> Result<(), SaveError> {
    file.set_permissions(std::fs::Permissions::from_mode(MODE))
        .map_err(SaveError::Io)?;
    if !created {
        file.set_len(0).map_err(SaveError::Io)?;
    }
    file.write_all(contents).map_err(SaveError::Io)?;
    file.sync_all().map_err(SaveError::Io)
}

/// The rules for an existing file (from `lstat` or `fstat`).
fn may_replace(meta: &Metadata, replace: bool) -> Result<(), SaveError> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(SaveError::Symlink);
    }
    if !replace {
        return Err(SaveError::Exists);
    }
    if !kind.is_file() {
        return Err(SaveError::NotRegular);
    }
    if meta.uid() != nix::unistd::geteuid().as_raw() {
        return Err(SaveError::NotOwned);
    }
    if meta.nlink() > 1 {
        return Err(SaveError::HardLinked);
    }
    Ok(())
}

/// Errors of `open(2)` in the terms of this module.
fn open_error(path: &Path, err: io::Error) -> SaveError {
    match err.raw_os_error() {
        // O_EXCL: the name exists; say so more precisely if it is a link.
        Some(libc::EEXIST) => match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => SaveError::Symlink,
            _ => SaveError::Exists,
        },
        // O_NOFOLLOW on a symbolic link.
        Some(libc::ELOOP) => SaveError::Symlink,
        // A FIFO without a reader (O_NONBLOCK), or a device that is not there.
        Some(libc::ENXIO) => SaveError::NotRegular,
        Some(libc::EISDIR) => SaveError::NotRegular,
        Some(libc::ENOENT) => SaveError::NoDirectory(directory_of(path)),
        _ => SaveError::Io(err),
    }
}

/// The directory a file name is created in (`.` for a bare name).
fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        Some(_) => PathBuf::from("."),
        None => PathBuf::from("/"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().unwrap()
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn new_file_has_mode_0600_and_the_contents() {
        let d = dir();
        let path = d.path().join("codes.txt");
        write(&path, b"abcd-efgh-jkmn\n", false).unwrap();
        assert_eq!(mode(&path), 0o600);
        assert_eq!(std::fs::read(&path).unwrap(), b"abcd-efgh-jkmn\n");
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!(meta.uid(), nix::unistd::geteuid().as_raw());
    }

    #[test]
    fn new_file_is_0600_even_with_a_permissive_umask() {
        // The mode is given at creation; a umask of 0 must not widen it.
        let d = dir();
        let path = d.path().join("codes.txt");
        let old = nix::sys::stat::umask(nix::sys::stat::Mode::empty());
        let r = create_new(&path);
        nix::sys::stat::umask(old);
        drop(r.unwrap());
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn existing_file_is_not_replaced_without_force() {
        let d = dir();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"old").unwrap();
        let err = write(&path, b"new", false).unwrap_err();
        assert!(matches!(err, SaveError::Exists), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        // Also when the early look is skipped (O_EXCL holds on its own).
        let err = write_unchecked(&path, b"new", false).unwrap_err();
        assert!(matches!(err, SaveError::Exists), "{err:?}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");

        let f = err.failure("", &path, true);
        assert_eq!(f.exit_code(), 2);
        assert!(f.message().contains(&path.display().to_string()));
        assert!(f.message().contains("--force"), "{}", f.message());
    }

    #[test]
    fn force_replaces_a_regular_file_and_makes_it_0600() {
        let d = dir();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"a much longer old content than the new one\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        write(&path, b"new\n", true).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn force_on_a_missing_file_creates_it() {
        let d = dir();
        let path = d.path().join("codes.txt");
        write(&path, b"x\n", true).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn symlink_is_never_followed_even_with_force() {
        let d = dir();
        let target = d.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = d.path().join("link");
        symlink(&target, &link).unwrap();
        for replace in [false, true] {
            let err = write(&link, b"codes", replace).unwrap_err();
            assert!(matches!(err, SaveError::Symlink), "{replace}: {err:?}");
            // The open flags alone refuse it too (a link made after the check).
            let err = write_unchecked(&link, b"codes", replace).unwrap_err();
            assert!(matches!(err, SaveError::Symlink), "{replace}: {err:?}");
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        assert_eq!(mode(&target), 0o644);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        let f = SaveError::Symlink.failure("", &link, true);
        assert_eq!(f.exit_code(), 2);
        assert!(f.message().contains("symbolic link"));
    }

    #[test]
    fn opening_for_replacement_never_follows_a_link() {
        // The step that matters when a link replaces the file between the
        // O_EXCL attempt and the opening of the existing file.
        let d = dir();
        let target = d.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = d.path().join("link");
        symlink(&target, &link).unwrap();
        assert!(matches!(open_existing(&link), Err(SaveError::Symlink)));
        assert!(open_existing(&target).is_ok());
    }

    #[test]
    fn dangling_symlink_is_not_created_through() {
        let d = dir();
        let target = d.path().join("would-be-created");
        let link = d.path().join("link");
        symlink(&target, &link).unwrap();
        for replace in [false, true] {
            assert!(matches!(
                write_unchecked(&link, b"codes", replace),
                Err(SaveError::Symlink)
            ));
            assert!(matches!(
                write(&link, b"codes", replace),
                Err(SaveError::Symlink)
            ));
        }
        assert!(!target.exists());
    }

    #[test]
    fn hard_link_is_not_replaced() {
        let d = dir();
        let path = d.path().join("codes.txt");
        let other = d.path().join("other");
        std::fs::write(&other, b"precious").unwrap();
        std::fs::hard_link(&other, &path).unwrap();
        assert!(matches!(
            write(&path, b"new", true),
            Err(SaveError::HardLinked)
        ));
        assert!(matches!(
            write_unchecked(&path, b"new", true),
            Err(SaveError::HardLinked)
        ));
        assert_eq!(std::fs::read(&other).unwrap(), b"precious");
    }

    #[test]
    fn fifo_and_directory_are_refused_without_blocking() {
        let d = dir();
        let fifo = d.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap();
        assert!(made.success());
        assert!(matches!(
            write(&fifo, b"x", true),
            Err(SaveError::NotRegular)
        ));
        assert!(matches!(
            write_unchecked(&fifo, b"x", true),
            Err(SaveError::NotRegular)
        ));
        let sub = d.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        assert!(matches!(
            write(&sub, b"x", true),
            Err(SaveError::NotRegular)
        ));
        assert!(matches!(
            write_unchecked(&sub, b"x", true),
            Err(SaveError::NotRegular)
        ));
        assert!(matches!(write(&sub, b"x", false), Err(SaveError::Exists)));
    }

    #[test]
    fn someone_elses_file_is_not_replaced() {
        // The early look, on a file that is surely not ours (read-only).
        if !is_root() {
            assert!(matches!(
                check(Path::new("/etc/passwd"), true),
                Err(SaveError::NotOwned)
            ));
            return;
        }
        // As root: a file given to another uid, which root could write.
        let d = dir();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"theirs").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        assert!(matches!(
            write(&path, b"new", true),
            Err(SaveError::NotOwned)
        ));
        assert!(matches!(
            write_unchecked(&path, b"new", true),
            Err(SaveError::NotOwned)
        ));
        assert_eq!(std::fs::read(&path).unwrap(), b"theirs");
    }

    #[test]
    fn missing_directory_and_empty_name() {
        let d = dir();
        let path = d.path().join("no/such/dir/codes.txt");
        let err = write(&path, b"x", false).unwrap_err();
        assert!(matches!(err, SaveError::NoDirectory(_)), "{err:?}");
        assert!(err.describe(&path, true).contains("no/such/dir"));
        assert_eq!(err.reason().exit_code(), 2);
        assert!(matches!(
            write(Path::new(""), b"x", false),
            Err(SaveError::NoName)
        ));
    }

    #[test]
    fn unwritable_directory_is_refused_early() {
        if is_root() {
            // access(2) lets root write anywhere; nothing to refuse.
            return;
        }
        let d = dir();
        let ro = d.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        let path = ro.join("codes.txt");
        let err = check(&path, false).unwrap_err();
        assert!(matches!(err, SaveError::NotWritable(_)), "{err:?}");
        assert_eq!(err.reason().exit_code(), 2);
        assert!(err
            .describe(&path, true)
            .contains("may not create files in"));
    }

    #[test]
    fn unsearchable_directory_is_a_refusal() {
        let path = Path::new("/root/codes.txt");
        let err = lookup_error(path, io::Error::from_raw_os_error(libc::EACCES));
        assert!(matches!(&err, SaveError::NotWritable(d) if d == Path::new("/root")));
        assert_eq!(err.reason().exit_code(), 2);
        // A file on the way where a directory should be.
        let d = dir();
        let file = d.path().join("file");
        std::fs::write(&file, b"").unwrap();
        let err = check(&file.join("codes.txt"), false).unwrap_err();
        assert!(matches!(err, SaveError::NoDirectory(_)), "{err:?}");
    }

    #[test]
    fn io_errors_are_exit_4() {
        let e = SaveError::Io(io::Error::from_raw_os_error(libc::ENOSPC));
        assert_eq!(e.reason().exit_code(), 4);
        assert!(e.describe(Path::new("/x/y"), true).contains("/x/y"));
    }

    #[test]
    fn bare_names_are_in_the_current_directory() {
        assert_eq!(directory_of(Path::new("codes.txt")), PathBuf::from("."));
        assert_eq!(directory_of(Path::new("/codes.txt")), PathBuf::from("/"));
        assert_eq!(directory_of(Path::new("a/b")), PathBuf::from("a"));
    }
}

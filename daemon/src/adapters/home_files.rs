//! Reading a file in a user's home directory on an administrator's word
//! (`twofactorctl admin import google-authenticator`): the daemon reads it
//! as root, so
//!
//! - the path must be inside the user's own home directory (from the passwd
//!   entry). This is decided lexically, before any file-system access, and
//!   every path outside gets the same message, so the answer never tells
//!   whether something exists outside the home;
//! - no symbolic link anywhere in the path: the home is opened `O_PATH` with
//!   `openat2(RESOLVE_NO_SYMLINKS)`, the file below it with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS` (and `O_NOFOLLOW`, `O_NONBLOCK`);
//! - the opened file must be a regular file owned by the user (not root),
//!   with exactly one hard link (checked with `fstat` on the descriptor);
//! - at most [`MAX_BYTES`] are read, and the file's content is never put in
//!   an error message.
//!
//! What the text means is `rules::google_authenticator`'s business.

use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Largest file read.
const MAX_BYTES: u64 = 64 * 1024;

/// Whose file is read: the user's name, uid and home directory (passwd).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub user: &'a str,
    pub uid: u32,
    pub home: &'a Path,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReadError {
    /// Any path outside the home: one message, whatever is there.
    #[error("the file must be inside {0}'s home directory ({1})")]
    Outside(String, String),
    #[error("{0}'s home directory {1} cannot be used: {2}")]
    Home(String, String, String),
    #[error("no file at {0}")]
    Missing(String),
    #[error("{0} is reached through a symbolic link; symlinks are not followed")]
    Symlink(String),
    #[error("{0} is not a regular file")]
    NotRegular(String),
    #[error("{0} is not owned by {1} (the file must belong to the user whose secret it is)")]
    NotOwned(String, String),
    #[error("{0} has more than one hard link; only a file with a single link is read")]
    HardLinked(String),
    #[error("{0} could not be read: {1}")]
    Unreadable(String, String),
}

/// The components of an absolute path after lexical normalisation: `.`
/// dropped, `..` taking off the component before it (at `/` it stays at
/// `/`, as the kernel does). None for a relative path. Lexical is exact
/// here because no symbolic link is ever followed when the file is opened.
fn normalise(path: &Path) -> Option<Vec<&OsStr>> {
    let mut components = path.components();
    if components.next() != Some(Component::RootDir) {
        return None;
    }
    let mut out = Vec::new();
    for c in components {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

/// The part of `path` strictly below `home` (relative, with no `.` or `..`),
/// decided lexically: no file-system access. None when `path` is not
/// inside `home`, is `home` itself, or is relative.
pub fn beneath(home: &Path, path: &Path) -> Option<PathBuf> {
    let home = normalise(home)?;
    let path = normalise(path)?;
    if home.is_empty() || path.len() <= home.len() || path[..home.len()] != home[..] {
        return None;
    }
    Some(path[home.len()..].iter().collect())
}

/// `openat2(dirfd, path, how)` as an owned descriptor.
fn open2(dirfd: RawFd, path: &Path, flags: OFlag, resolve: ResolveFlag) -> Result<OwnedFd, Errno> {
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(resolve);
    let fd = nix::fcntl::openat2(dirfd, path, how)?;
    // SAFETY: openat2 just returned this descriptor; nothing else owns or
    // closes it, so the OwnedFd is its only owner.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// What an errno means to the administrator.
fn describe(e: Errno) -> String {
    match e {
        Errno::ENOSYS => "openat2(2) is not available (Linux 5.6 or later is needed)".into(),
        e => std::io::Error::from(e).kind().to_string(),
    }
}

/// Opens and reads `path` for `owner`, under the rules of this module.
pub fn read(owner: Owner<'_>, path: &Path) -> Result<String, ReadError> {
    let home_shown = owner.home.display().to_string();
    let outside = || ReadError::Outside(owner.user.to_string(), home_shown.clone());
    let home_error = |why: String| ReadError::Home(owner.user.to_string(), home_shown.clone(), why);
    // Lexically, before anything is opened: the answer for a path outside
    // the home is the same whether or not it exists.
    if normalise(owner.home).is_none_or(|h| h.is_empty()) {
        return Err(home_error("not an absolute path below /".into()));
    }
    let relative = beneath(owner.home, path).ok_or_else(outside)?;
    let shown = owner.home.join(&relative).display().to_string();
    let home = open2(
        libc::AT_FDCWD,
        owner.home,
        OFlag::O_PATH | OFlag::O_DIRECTORY,
        ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| match e {
        Errno::ELOOP => {
            home_error("a symbolic link in its path (symlinks are not followed)".into())
        }
        e => home_error(describe(e)),
    })?;
    let fd = open2(
        home.as_raw_fd(),
        &relative,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
        ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS,
    )
    .map_err(|e| match e {
        Errno::ENOENT => ReadError::Missing(shown.clone()),
        Errno::ELOOP => ReadError::Symlink(shown.clone()),
        // Not reachable without `..` or a symlink, both refused above.
        Errno::EXDEV => outside(),
        e => ReadError::Unreadable(shown.clone(), describe(e)),
    })?;
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| ReadError::Unreadable(shown.clone(), e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular(shown));
    }
    if meta.uid() != owner.uid {
        return Err(ReadError::NotOwned(shown, owner.user.to_string()));
    }
    if meta.nlink() != 1 {
        return Err(ReadError::HardLinked(shown));
    }
    let mut text = String::new();
    file.take(MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| ReadError::Unreadable(shown.clone(), e.kind().to_string()))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Any content: what it means is not read here.
    const TOTP_FILE: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" TOTP_AUTH\n12345678\n";

    /// A fresh directory standing for a home (no symlink in its path).
    struct Dir(PathBuf);
    impl Dir {
        fn new(tag: &str) -> Dir {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let base = std::env::temp_dir().canonicalize().unwrap();
            let dir = base.join(format!(
                "tf-ga-{tag}-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir(&dir).unwrap();
            Dir(dir)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn me() -> u32 {
        nix::unistd::geteuid().as_raw()
    }
    fn owner(home: &Path, uid: u32) -> Owner<'_> {
        Owner {
            user: "alice",
            uid,
            home,
        }
    }

    #[test]
    fn reads_a_file_of_the_user_in_their_home() {
        let d = Dir::new("ok");
        std::fs::create_dir(d.0.join("sub")).unwrap();
        for f in [d.0.join("ga"), d.0.join("sub/ga")] {
            std::fs::write(&f, TOTP_FILE).unwrap();
            assert_eq!(read(owner(&d.0, me()), &f).unwrap(), TOTP_FILE);
        }
        // `.` and `..` that stay inside are normalised lexically.
        let odd = d.0.join("sub/.././sub/ga");
        assert_eq!(read(owner(&d.0, me()), &odd).unwrap(), TOTP_FILE);
        assert_eq!(
            read(owner(&d.0, me()), &d.0.join("none")),
            Err(ReadError::Missing(d.0.join("none").display().to_string()))
        );
    }

    #[test]
    fn refuses_a_symlink_anywhere_in_the_path() {
        let d = Dir::new("link");
        let real = d.0.join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("ga"), TOTP_FILE).unwrap();
        // The file itself is a link.
        std::os::unix::fs::symlink(real.join("ga"), d.0.join("ga")).unwrap();
        assert!(matches!(
            read(owner(&d.0, me()), &d.0.join("ga")),
            Err(ReadError::Symlink(_))
        ));
        // A directory of the path is a link (to a directory inside the home).
        std::os::unix::fs::symlink(&real, d.0.join("dir")).unwrap();
        let e = read(owner(&d.0, me()), &d.0.join("dir/ga")).unwrap_err();
        assert!(matches!(e, ReadError::Symlink(_)), "{e:?}");
        assert!(e.to_string().contains("symlinks are not followed"), "{e}");
        // The home itself is reached through a link.
        let home_link = d.0.join("home-link");
        std::os::unix::fs::symlink(&real, &home_link).unwrap();
        let e = read(owner(&home_link, me()), &home_link.join("ga")).unwrap_err();
        assert!(matches!(e, ReadError::Home(..)), "{e:?}");
        assert!(e.to_string().contains("symbolic link"), "{e}");
        // Without the links, the same file reads.
        assert_eq!(
            read(owner(&d.0, me()), &real.join("ga")).unwrap(),
            TOTP_FILE
        );
    }

    #[test]
    fn refuses_a_file_of_another_owner() {
        // Owned by the test's uid (root when run as root), read for another
        // uid: a root-owned file in a user's home is refused like any other.
        let d = Dir::new("owner");
        let f = d.0.join("ga");
        std::fs::write(&f, TOTP_FILE).unwrap();
        let other = me().wrapping_add(1);
        assert_eq!(
            read(owner(&d.0, other), &f),
            Err(ReadError::NotOwned(f.display().to_string(), "alice".into()))
        );
    }

    #[test]
    fn refuses_a_hard_linked_file() {
        let d = Dir::new("nlink");
        let f = d.0.join("ga");
        std::fs::write(&f, TOTP_FILE).unwrap();
        std::fs::hard_link(&f, d.0.join("ga2")).unwrap();
        for p in [&f, &d.0.join("ga2")] {
            assert_eq!(
                read(owner(&d.0, me()), p),
                Err(ReadError::HardLinked(p.display().to_string()))
            );
        }
        std::fs::remove_file(d.0.join("ga2")).unwrap();
        assert_eq!(read(owner(&d.0, me()), &f).unwrap(), TOTP_FILE);
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let d = Dir::new("kind");
        std::fs::create_dir(d.0.join("dir")).unwrap();
        let fifo = d.0.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        for p in [d.0.join("dir"), fifo] {
            assert_eq!(
                read(owner(&d.0, me()), &p),
                Err(ReadError::NotRegular(p.display().to_string()))
            );
        }
    }

    #[test]
    fn a_path_outside_the_home_gets_one_message_whether_or_not_it_exists() {
        let d = Dir::new("out");
        let home = d.0.join("alice");
        std::fs::create_dir(&home).unwrap();
        // A sibling whose name starts with the home's, with a real file.
        let sibling = d.0.join("alice2");
        std::fs::create_dir(&sibling).unwrap();
        std::fs::write(sibling.join("ga"), TOTP_FILE).unwrap();
        let expected = ReadError::Outside("alice".into(), home.display().to_string());
        let paths = [
            PathBuf::from("/etc/shadow"),
            PathBuf::from("/etc/passwd"),
            PathBuf::from("/root/x"),
            PathBuf::from("/nonexistent/x"),
            PathBuf::from("/"),
            home.clone(),
            home.join("."),
            home.join("sub/.."),
            home.join("../alice2/ga"),
            home.join("../../../../../../etc/shadow"),
            home.join("../alice/../alice2/ga"),
            sibling.join("ga"),
            PathBuf::from("relative/ga"),
            PathBuf::from("ga"),
            PathBuf::new(),
        ];
        for p in &paths {
            let e = read(owner(&home, me()), p).unwrap_err();
            assert_eq!(e, expected, "{}", p.display());
            assert_eq!(
                e.to_string(),
                format!(
                    "the file must be inside alice's home directory ({})",
                    home.display()
                )
            );
        }
    }

    #[test]
    fn the_home_must_be_a_usable_absolute_path() {
        for home in ["/", "relative", ""] {
            let e = read(owner(Path::new(home), me()), Path::new("/etc/shadow")).unwrap_err();
            assert!(matches!(e, ReadError::Home(..)), "{home}: {e:?}");
        }
        let e = read(
            owner(Path::new("/nonexistent-home-of-tf"), me()),
            Path::new("/nonexistent-home-of-tf/ga"),
        )
        .unwrap_err();
        assert!(matches!(e, ReadError::Home(..)), "{e:?}");
    }

    #[test]
    fn beneath_is_lexical() {
        let h = Path::new("/home/alice");
        let b = |p: &str| beneath(h, Path::new(p));
        assert_eq!(b("/home/alice/ga"), Some(PathBuf::from("ga")));
        assert_eq!(b("/home/alice//x/./y"), Some(PathBuf::from("x/y")));
        assert_eq!(b("/home/alice/x/../y"), Some(PathBuf::from("y")));
        assert_eq!(b("/home/alice/../alice/y"), Some(PathBuf::from("y")));
        assert_eq!(b("/home/alice"), None);
        assert_eq!(b("/home/alice/"), None);
        assert_eq!(b("/home/alice/x/.."), None);
        assert_eq!(b("/home/alicex/ga"), None);
        assert_eq!(b("/home/alice/../bob/ga"), None);
        assert_eq!(b("/../home/alice/ga"), Some(PathBuf::from("ga")));
        assert_eq!(b("home/alice/ga"), None);
        assert_eq!(beneath(Path::new("/"), Path::new("/etc/shadow")), None);
    }
}

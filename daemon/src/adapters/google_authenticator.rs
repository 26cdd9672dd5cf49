//! Reading `~/.google_authenticator` files (google-authenticator-libpam),
//! for `twofactorctl admin import google-authenticator`.
//!
//! The file is: the base32 secret on the first line, option lines starting
//! with `"` (`" TOTP_AUTH`, `" HOTP_COUNTER n`, `" RATE_LIMIT`, …), then
//! 8-digit scratch codes, one per line. Only TOTP files are imported; the
//! scratch codes become backup codes.
//!
//! The daemon reads the file as root, on an administrator's word, so:
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

use crate::rules::backup_codes::{self, Code};
use crate::rules::totp::Secret;
use nix::errno::Errno;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag};
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// Largest file read.
const MAX_BYTES: u64 = 64 * 1024;

/// What a file holds.
pub struct Parsed {
    pub secret: Secret,
    pub scratch: Vec<Code>,
    /// Scratch lines that were not 8 digits.
    pub skipped_lines: u32,
}

/// Whose file is read: the user's name, uid and home directory (passwd).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    pub user: &'a str,
    pub uid: u32,
    pub home: &'a Path,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImportError {
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
    #[error("{0} is an HOTP (counter-based) file; only TOTP (time-based) secrets can be imported. The user must enrol anew with `twofactorctl enable app`")]
    Hotp(String),
    #[error("{0} does not hold a valid base32 secret of at least 128 bits on its first line")]
    BadSecret(String),
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
pub fn read(owner: Owner<'_>, path: &Path) -> Result<String, ImportError> {
    let home_shown = owner.home.display().to_string();
    let outside = || ImportError::Outside(owner.user.to_string(), home_shown.clone());
    let home_error =
        |why: String| ImportError::Home(owner.user.to_string(), home_shown.clone(), why);
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
        Errno::ENOENT => ImportError::Missing(shown.clone()),
        Errno::ELOOP => ImportError::Symlink(shown.clone()),
        // Not reachable without `..` or a symlink, both refused above.
        Errno::EXDEV => outside(),
        e => ImportError::Unreadable(shown.clone(), describe(e)),
    })?;
    let file = std::fs::File::from(fd);
    let meta = file
        .metadata()
        .map_err(|e| ImportError::Unreadable(shown.clone(), e.kind().to_string()))?;
    if !meta.is_file() {
        return Err(ImportError::NotRegular(shown));
    }
    if meta.uid() != owner.uid {
        return Err(ImportError::NotOwned(shown, owner.user.to_string()));
    }
    if meta.nlink() != 1 {
        return Err(ImportError::HardLinked(shown));
    }
    let mut text = String::new();
    file.take(MAX_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| ImportError::Unreadable(shown.clone(), e.kind().to_string()))?;
    Ok(text)
}

/// Parses the text of a file (`shown` names it in errors).
pub fn parse(text: &str, shown: &str) -> Result<Parsed, ImportError> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let mut scratch = Vec::new();
    let mut skipped_lines = 0;
    for line in lines {
        let line = line.trim();
        if let Some(option) = line.strip_prefix('"') {
            if option.split_whitespace().next() == Some("HOTP_COUNTER") {
                return Err(ImportError::Hotp(shown.to_string()));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let is_scratch =
            line.len() == backup_codes::SCRATCH_LEN && line.bytes().all(|b| b.is_ascii_digit());
        match backup_codes::parse(line).filter(|_| is_scratch) {
            Some(code) => scratch.push(code),
            None => skipped_lines += 1,
        }
    }
    let bytes = totp_rs::Secret::Encoded(first.to_ascii_uppercase())
        .to_bytes()
        .map_err(|_| ImportError::BadSecret(shown.to_string()))?;
    if bytes.len() < 16 {
        return Err(ImportError::BadSecret(shown.to_string()));
    }
    Ok(Parsed {
        secret: Secret::from_bytes(bytes),
        scratch,
        skipped_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP_FILE: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n87654321\n";

    #[test]
    fn totp_file_with_scratch_codes() {
        let p = parse(TOTP_FILE, "f").unwrap();
        assert_eq!(p.secret.bytes().len(), 20);
        assert_eq!(p.scratch.len(), 2);
        assert_eq!(p.scratch[0].display(), "1234-5678");
        assert_eq!(p.skipped_lines, 0);
    }

    #[test]
    fn hotp_and_bad_files_are_refused_without_their_content() {
        let hotp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 1\n12345678\n";
        assert_eq!(parse(hotp, "f").err(), Some(ImportError::Hotp("f".into())));
        let e = parse("not base32 at all!\n", "f").err().unwrap();
        assert_eq!(e, ImportError::BadSecret("f".into()));
        assert!(!e.to_string().contains("base32 at all"));
        assert!(parse("JBSWY3DP\n", "f").is_err(), "too short");
        assert!(parse("", "f").is_err());
    }

    #[test]
    fn odd_scratch_lines_are_skipped() {
        let p = parse(
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n1234\nabcdefgh\n11112222\n",
            "f",
        )
        .unwrap();
        assert_eq!(p.scratch.len(), 1);
        assert_eq!(p.skipped_lines, 2);
    }

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
            Err(ImportError::Missing(d.0.join("none").display().to_string()))
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
            Err(ImportError::Symlink(_))
        ));
        // A directory of the path is a link (to a directory inside the home).
        std::os::unix::fs::symlink(&real, d.0.join("dir")).unwrap();
        let e = read(owner(&d.0, me()), &d.0.join("dir/ga")).unwrap_err();
        assert!(matches!(e, ImportError::Symlink(_)), "{e:?}");
        assert!(e.to_string().contains("symlinks are not followed"), "{e}");
        // The home itself is reached through a link.
        let home_link = d.0.join("home-link");
        std::os::unix::fs::symlink(&real, &home_link).unwrap();
        let e = read(owner(&home_link, me()), &home_link.join("ga")).unwrap_err();
        assert!(matches!(e, ImportError::Home(..)), "{e:?}");
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
            Err(ImportError::NotOwned(
                f.display().to_string(),
                "alice".into()
            ))
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
                Err(ImportError::HardLinked(p.display().to_string()))
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
                Err(ImportError::NotRegular(p.display().to_string()))
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
        let expected = ImportError::Outside("alice".into(), home.display().to_string());
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
            assert!(matches!(e, ImportError::Home(..)), "{home}: {e:?}");
        }
        let e = read(
            owner(Path::new("/nonexistent-home-of-tf"), me()),
            Path::new("/nonexistent-home-of-tf/ga"),
        )
        .unwrap_err();
        assert!(matches!(e, ImportError::Home(..)), "{e:?}");
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

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any file text: no panic; what is accepted has a secret of at
        /// least 16 bytes and only 8-digit scratch codes.
        #[test]
        fn parse_any_text(text in any::<String>()) {
            if let Ok(p) = parse(&text, "f") {
                prop_assert!(p.secret.bytes().len() >= 16);
                prop_assert!(p.scratch.iter().all(|c| c.display().replace('-', "").len() == backup_codes::SCRATCH_LEN));
            }
        }

        /// Files shaped like real ones (a base32 line, options, codes).
        #[test]
        fn parse_shaped_files(
            secret in "[A-Za-z2-7=]{0,40}",
            lines in proptest::collection::vec(prop_oneof![
                "[0-9]{6,10}",
                "\" [A-Z_]{1,12}( [0-9]{0,3})?",
                "\\PC{0,12}",
            ], 0..8),
        ) {
            let text = format!("{secret}\n{}\n", lines.join("\n"));
            if let Ok(p) = parse(&text, "f") {
                prop_assert!(p.secret.bytes().len() >= 16);
                let codes = lines.iter().filter(|l| l.trim().len() == 8 && l.trim().bytes().all(|b| b.is_ascii_digit())).count();
                prop_assert_eq!(p.scratch.len(), codes);
            }
        }
    }
}

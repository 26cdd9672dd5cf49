//! The account a name stands for ([`super::nss::Users::canonical`]),
//! remembered while `/etc/passwd` alone decides it.
//!
//! Every login asks it: two look-ups through the name service (getpwnam,
//! then getpwuid for the uid's own name), and glibc's `files` source reads
//! and parses `/etc/passwd` line by line for each (about 35 µs each with a
//! few hundred lines, more with more: docs/performance.md). An answer is
//! kept only where no other source could have given it, and only while
//! that stays so:
//! - `/etc/nsswitch.conf` has one `passwd:` line, which names `files` first
//!   and has no `[action]` (Debian's `files systemd`): a name that `files` finds is
//!   never asked of a later source, and neither is the uid of its line;
//! - `/etc/passwd` has a line for the name, whose uid is the uid the name
//!   service gave, and the first line with that uid has the name the name
//!   service gave for the uid (so `files` gave both answers);
//! - neither file has changed since (device, inode, size, modification and
//!   change times, looked at on every use: an account added, renamed or
//!   removed with any tool is seen by the next login).
//!
//! Anything else is looked up as before, every time: a name that only
//! LDAP, SSSD or systemd knows, a spelling that only a case-insensitive
//! source accepts, a name with no account (nothing is kept of a name that
//! has none).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The most names kept; past it the cache starts again (a flood of
/// distinct names that have accounts is bounded by the accounts).
const MAX_NAMES: usize = 4096;
/// The largest `/etc/passwd` read to confirm an answer; a larger one is
/// not cached from.
const MAX_PASSWD_BYTES: u64 = 16 << 20;

/// What identifies a file's content without reading it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
        Stamp {
            dev: meta.dev(),
            ino: meta.ino(),
            size: meta.size(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// The cache of [`super::nss::SystemUsers`].
pub struct PasswdCache {
    passwd: PathBuf,
    nsswitch: PathBuf,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    /// The files' stamps the names below were confirmed against.
    stamps: Option<(Stamp, Stamp)>,
    names: HashMap<String, (String, u32)>,
}

impl Default for PasswdCache {
    fn default() -> Self {
        PasswdCache::over(Path::new("/etc/passwd"), Path::new("/etc/nsswitch.conf"))
    }
}

impl PasswdCache {
    /// A cache that reads these files (tests give their own).
    pub fn over(passwd: &Path, nsswitch: &Path) -> PasswdCache {
        PasswdCache {
            passwd: passwd.to_path_buf(),
            nsswitch: nsswitch.to_path_buf(),
            kept: Mutex::new(Kept::default()),
        }
    }

    /// The account `name` stands for: from the cache while the files are
    /// unchanged, else from `look_up` (the name service), kept when only
    /// `/etc/passwd` gave it.
    pub fn canonical(
        &self,
        name: &str,
        look_up: impl FnOnce(&str) -> Option<(String, u32)>,
    ) -> Option<(String, u32)> {
        let before = self.stamps();
        if let (Some(stamps), Ok(mut kept)) = (before, self.kept.lock()) {
            if kept.stamps != Some(stamps) {
                kept.stamps = Some(stamps);
                kept.names.clear();
            }
            if let Some(found) = kept.names.get(name) {
                return Some(found.clone());
            }
        }
        let found = look_up(name)?;
        if let Some(stamps) = before {
            if self.confirmed(name, &found, stamps) {
                if let Ok(mut kept) = self.kept.lock() {
                    if kept.stamps == Some(stamps) {
                        if kept.names.len() >= MAX_NAMES {
                            kept.names.clear();
                        }
                        kept.names.insert(name.to_string(), found.clone());
                    }
                }
            }
        }
        Some(found)
    }

    /// Both files' stamps; None when either cannot be looked at.
    fn stamps(&self) -> Option<(Stamp, Stamp)> {
        let passwd = std::fs::metadata(&self.passwd).ok()?;
        let nsswitch = std::fs::metadata(&self.nsswitch).ok()?;
        Some((Stamp::of(&passwd), Stamp::of(&nsswitch)))
    }

    /// Whether `files` alone gave `found` for `name`, with the files as
    /// `stamps` says they were before the look-up (and still are).
    fn confirmed(&self, name: &str, found: &(String, u32), stamps: (Stamp, Stamp)) -> bool {
        let Ok(nsswitch) = std::fs::read(&self.nsswitch) else {
            return false;
        };
        if !files_first(&String::from_utf8_lossy(&nsswitch)) {
            return false;
        }
        let Ok(file) = std::fs::File::open(&self.passwd) else {
            return false;
        };
        let Ok(meta) = file.metadata() else {
            return false;
        };
        if meta.size() > MAX_PASSWD_BYTES {
            return false;
        }
        let mut text = Vec::new();
        if std::io::Read::read_to_end(&mut std::io::Read::take(&file, MAX_PASSWD_BYTES), &mut text)
            .is_err()
        {
            return false;
        }
        // Read what was looked up: unchanged since before the look-up.
        if self.stamps() != Some(stamps) || Stamp::of(&meta) != stamps.0 {
            return false;
        }
        let (canonical, uid) = found;
        first_uid_of_name(&text, name) == Some(*uid)
            && first_name_of_uid(&text, *uid).as_deref() == Some(canonical.as_str())
    }
}

/// Whether nsswitch.conf has one `passwd:` line, naming `files` first,
/// with no `[action]` anywhere on it (two such lines, or a line written
/// another way, are left to glibc: no cache).
fn files_first(nsswitch: &str) -> bool {
    let mut lines = nsswitch
        .lines()
        .map(|l| l.split('#').next().unwrap_or_default().trim())
        .filter_map(|l| l.strip_prefix("passwd:"));
    match (lines.next(), lines.next()) {
        (Some(sources), None) => {
            !sources.contains('[') && sources.split_whitespace().next() == Some("files")
        }
        _ => false,
    }
}

/// The entries of a passwd file as glibc's `files` source reads them:
/// (name, uid) of each line with seven fields and a numeric uid; blank and
/// `#` lines skipped, leading blanks ignored.
fn entries(text: &[u8]) -> impl Iterator<Item = (&[u8], u32)> {
    text.split(|b| *b == b'\n').filter_map(|line| {
        let line = line.trim_ascii_start();
        if line.is_empty() || line.first() == Some(&b'#') {
            return None;
        }
        let fields: Vec<&[u8]> = line.split(|b| *b == b':').collect();
        if fields.len() != 7 {
            return None;
        }
        let name = *fields.first()?;
        let uid = std::str::from_utf8(fields.get(2)?).ok()?;
        if uid.is_empty() || !uid.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((name, uid.parse().ok()?))
    })
}

fn first_uid_of_name(text: &[u8], name: &str) -> Option<u32> {
    entries(text).find_map(|(n, uid)| (n == name.as_bytes()).then_some(uid))
}

fn first_name_of_uid(text: &[u8], uid: u32) -> Option<String> {
    entries(text).find_map(|(n, u)| (u == uid).then(|| String::from_utf8_lossy(n).into_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    const PASSWD: &str = "root:x:0:0:root:/root:/bin/bash\n\
                          # a comment\n\
                          \n\
                          alice:x:1000:1000::/home/alice:/bin/sh\n\
                          toor:x:0:0::/root:/bin/sh\n\
                          broken:x:12\n\
                          bob:x:1001:1001::/home/bob:/bin/sh\n";

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new(passwd: &str, nsswitch: &str) -> Files {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("passwd"), passwd).unwrap();
            std::fs::write(dir.path().join("nsswitch.conf"), nsswitch).unwrap();
            Files { dir }
        }
        fn cache(&self) -> PasswdCache {
            PasswdCache::over(
                &self.dir.path().join("passwd"),
                &self.dir.path().join("nsswitch.conf"),
            )
        }
        fn rewrite_passwd(&self, text: &str) {
            // As shadow's tools do: a new file renamed over the old one.
            let new = self.dir.path().join("passwd+");
            std::fs::write(&new, text).unwrap();
            std::fs::rename(&new, self.dir.path().join("passwd")).unwrap();
        }
    }

    /// A name service that counts its look-ups and answers from a table.
    fn service<'a>(
        calls: &'a Cell<u32>,
        table: &'a [(&'a str, &'a str, u32)],
    ) -> impl Fn(&str) -> Option<(String, u32)> + 'a {
        move |name| {
            calls.set(calls.get() + 1);
            table
                .iter()
                .find(|(n, _, _)| *n == name)
                .map(|(_, canonical, uid)| (canonical.to_string(), *uid))
        }
    }

    const TABLE: &[(&str, &str, u32)] = &[
        ("alice", "alice", 1000),
        ("toor", "root", 0),
        ("Alice", "alice", 1000),
        ("dyn", "dyn", 61000),
        ("bob", "bob", 1001),
    ];

    #[test]
    fn an_answer_only_passwd_gave_is_kept_until_the_file_changes() {
        let files = Files::new(PASSWD, "passwd: files systemd\ngroup: files\n");
        let cache = files.cache();
        let calls = Cell::new(0);
        let ns = service(&calls, TABLE);
        for _ in 0..3 {
            assert_eq!(cache.canonical("alice", &ns), Some(("alice".into(), 1000)));
        }
        assert_eq!(calls.get(), 1, "asked once, then kept");
        // A same-uid alias: its line and the uid's first line agree.
        assert_eq!(cache.canonical("toor", &ns), Some(("root".into(), 0)));
        assert_eq!(cache.canonical("toor", &ns), Some(("root".into(), 0)));
        assert_eq!(calls.get(), 2);
        // Renamed: the next look-up sees it.
        files.rewrite_passwd(&PASSWD.replace("alice:x:1000", "alicia:x:1000"));
        let renamed: &[(&str, &str, u32)] = &[("alice", "alicia", 1000)];
        let calls_after = Cell::new(0);
        let ns_after = service(&calls_after, renamed);
        assert_eq!(
            cache.canonical("alice", &ns_after),
            Some(("alicia".into(), 1000))
        );
        assert_eq!(calls_after.get(), 1, "the change was seen");
        // And "alice" has no line any more: not kept, asked every time.
        assert_eq!(
            cache.canonical("alice", &ns_after),
            Some(("alicia".into(), 1000))
        );
        assert_eq!(calls_after.get(), 2);
    }

    #[test]
    fn what_another_source_gave_is_asked_every_time() {
        let files = Files::new(PASSWD, "passwd:         files systemd\n");
        let cache = files.cache();
        let calls = Cell::new(0);
        let ns = service(&calls, TABLE);
        for _ in 0..2 {
            // Only a case-insensitive source knows "Alice".
            assert_eq!(cache.canonical("Alice", &ns), Some(("alice".into(), 1000)));
            // A dynamic user (systemd), not in the file.
            assert_eq!(cache.canonical("dyn", &ns), Some(("dyn".into(), 61000)));
            // No account.
            assert_eq!(cache.canonical("nobody-here", &ns), None);
            // A line glibc would not parse.
            assert_eq!(cache.canonical("broken", &ns), None);
        }
        assert_eq!(calls.get(), 8, "nothing of these was kept");
    }

    #[test]
    fn an_answer_the_file_does_not_confirm_is_not_kept() {
        let files = Files::new(PASSWD, "passwd: files\n");
        let cache = files.cache();
        let calls = Cell::new(0);
        // The name service says another uid than the file's line.
        let odd: &[(&str, &str, u32)] = &[("bob", "bob", 4242)];
        let ns = service(&calls, odd);
        for _ in 0..2 {
            assert_eq!(cache.canonical("bob", &ns), Some(("bob".into(), 4242)));
        }
        assert_eq!(calls.get(), 2);
    }

    #[test]
    fn nothing_is_kept_unless_files_answers_first() {
        for nsswitch in [
            "passwd: sss files\n",
            "passwd: files [NOTFOUND=return] systemd\n",
            "passwd: compat\n",
            "group: files\n",
            "passwd: files\npasswd: ldap files\n",
            "passwd: ldap\npasswd: files\n",
        ] {
            let files = Files::new(PASSWD, nsswitch);
            let cache = files.cache();
            let calls = Cell::new(0);
            let ns = service(&calls, TABLE);
            cache.canonical("alice", &ns);
            cache.canonical("alice", &ns);
            assert_eq!(calls.get(), 2, "{nsswitch:?}");
        }
        let files = Files::new(PASSWD, "passwd: files\n");
        let cache = files.cache();
        let calls = Cell::new(0);
        let ns = service(&calls, TABLE);
        cache.canonical("alice", &ns);
        // nsswitch.conf changed to put another source first: asked again.
        std::fs::write(
            files.dir.path().join("nsswitch.conf"),
            "passwd: ldap files\n",
        )
        .unwrap();
        cache.canonical("alice", &ns);
        cache.canonical("alice", &ns);
        assert_eq!(calls.get(), 3);
    }

    #[test]
    fn missing_files_mean_no_cache() {
        let dir = tempfile::tempdir().unwrap();
        let cache = PasswdCache::over(&dir.path().join("passwd"), &dir.path().join("ns"));
        let calls = Cell::new(0);
        let ns = service(&calls, TABLE);
        assert_eq!(cache.canonical("alice", &ns), Some(("alice".into(), 1000)));
        assert_eq!(cache.canonical("alice", &ns), Some(("alice".into(), 1000)));
        assert_eq!(calls.get(), 2);
    }
}

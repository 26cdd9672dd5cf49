//! The login socket's listener: handed over by systemd (`twofactord.socket`,
//! the `LISTEN_FDS` protocol of sd_listen_fds(3)), or made by the daemon
//! itself under another init.
//!
//! The socket is `/run/twofactor/login` unless configured otherwise: its
//! directory is root's, mode 0755, so no one else can put a socket of
//! their own at that path; the socket itself is mode 0666, since every
//! login program (and a user's screen locker) connects to it. Who
//! connected is read from the kernel (`SO_PEERCRED`) at accept.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

/// The first descriptor systemd passes (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// A listener the daemon bound itself: its socket file is removed when
/// it is dropped (at exit), unless another daemon has replaced it since.
#[derive(Debug)]
pub struct Bound {
    pub listener: UnixListener,
    path: PathBuf,
    inode: u64,
}

impl Drop for Bound {
    fn drop(&mut self) {
        use std::os::unix::fs::MetadataExt;
        let ours = std::fs::symlink_metadata(&self.path)
            .map(|m| m.ino() == self.inode)
            .unwrap_or(false);
        if ours {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Why the login socket could not be had.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("systemd passed {count} sockets (LISTEN_FDS); twofactord.socket has one")]
    TooMany { count: u32 },
    #[error("the socket systemd passed is not a listening Unix stream socket")]
    NotAUnixListener,
    #[error(
        "{path} is served by another process (another twofactord?): it accepted a \
         connection; stop that one first"
    )]
    InUse { path: PathBuf },
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{path} is not a directory owned by root and writable by root alone (mode {mode:o}, \
         owner {owner}): another user could put a socket of their own there"
    )]
    UnsafeDirectory {
        path: PathBuf,
        mode: u32,
        owner: u32,
    },
}

/// The listener systemd passed, if it passed one to this process
/// (`LISTEN_PID` is this pid). Call before any thread starts and before
/// detaching (the pid changes): the variables are removed from the
/// environment, so that no child inherits them.
pub fn from_systemd() -> Result<Option<UnixListener>, ListenError> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    if !passed_to_us(pid.as_deref(), fds.as_deref(), std::process::id())? {
        return Ok(None);
    }
    if !is_unix_stream_listener(LISTEN_FDS_START) {
        return Err(ListenError::NotAUnixListener);
    }
    // SAFETY: systemd passed descriptor 3 to this process for it to own
    // (LISTEN_PID is our pid, LISTEN_FDS is 1); nothing else in the
    // daemon has taken it, and it was just checked to be an open
    // listening Unix stream socket.
    let fd = unsafe { OwnedFd::from_raw_fd(LISTEN_FDS_START) };
    let _ = nix::fcntl::fcntl(
        std::os::fd::AsRawFd::as_raw_fd(&fd),
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    );
    Ok(Some(UnixListener::from(fd)))
}

/// Whether systemd passed this process its one socket, by the values of
/// `LISTEN_PID` and `LISTEN_FDS`.
fn passed_to_us(pid: Option<&str>, fds: Option<&str>, me: u32) -> Result<bool, ListenError> {
    let ours = pid.and_then(|p| p.parse::<u32>().ok()) == Some(me);
    let count = fds.and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    match count {
        _ if !ours => Ok(false),
        0 => Ok(false),
        1 => Ok(true),
        count => Err(ListenError::TooMany { count }),
    }
}

/// Whether `fd` is an open, listening `AF_UNIX` `SOCK_STREAM` socket.
fn is_unix_stream_listener(fd: RawFd) -> bool {
    use nix::sys::socket::{getsockname, getsockopt, sockopt, SockType, UnixAddr};
    // SAFETY: the descriptor is only borrowed for the checks below, while
    // this function runs; a descriptor that is not open fails them.
    let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    let stream = matches!(
        getsockopt(&borrowed, sockopt::SockType),
        Ok(SockType::Stream)
    );
    let listening = matches!(getsockopt(&borrowed, sockopt::AcceptConn), Ok(true));
    let unix = getsockname::<UnixAddr>(fd).is_ok();
    stream && listening && unix
}

/// Binds the socket at `path` (its directory made if missing, root's and
/// mode 0755; a directory anyone else could write to is refused), mode
/// 0666. A socket file left by an earlier daemon is replaced; one that a
/// live process still serves (it accepts a connection) is not: a second
/// daemon must never take the logins of the first.
pub fn bind_own(path: &Path) -> Result<Bound, ListenError> {
    use std::os::unix::fs::MetadataExt;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ListenError::Io { path, source }
    };
    let dir = path.parent().unwrap_or(Path::new("/"));
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(dir)
            .map_err(io(dir))?;
        // Whatever the umask (the daemon's is 077): every login program
        // must reach the socket.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).map_err(io(dir))?;
    }
    let meta = std::fs::symlink_metadata(dir).map_err(io(dir))?;
    let me = nix::unistd::geteuid().as_raw();
    if !meta.is_dir() || meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(ListenError::UnsafeDirectory {
            path: dir.to_path_buf(),
            mode: meta.mode() & 0o7777,
            owner: meta.uid(),
        });
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_dir() => {
            return Err(io(path)(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "a directory is in the way",
            )))
        }
        Ok(m) => {
            use std::os::unix::fs::FileTypeExt;
            if m.file_type().is_socket() && std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(ListenError::InUse {
                    path: path.to_path_buf(),
                });
            }
            std::fs::remove_file(path).map_err(io(path))?
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path).map_err(io(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666)).map_err(io(path))?;
    let inode = std::fs::symlink_metadata(path).map_err(io(path))?.ino();
    Ok(Bound {
        listener,
        path: path.to_path_buf(),
        inode,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("twofactord-listen-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn binds_in_a_new_directory_and_removes_the_socket_when_dropped() {
        use std::os::unix::fs::MetadataExt;
        let dir = temp("new");
        let path = dir.join("sub").join("login");
        let bound = bind_own(&path);
        assert!(bound.is_ok(), "{bound:?}");
        let meta = std::fs::metadata(&path).map(|m| m.mode() & 0o777);
        assert_eq!(meta.ok(), Some(0o666));
        let dir_mode = std::fs::metadata(dir.join("sub")).map(|m| m.mode() & 0o777);
        assert_eq!(dir_mode.ok(), Some(0o755));
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        drop(bound);
        assert!(std::fs::symlink_metadata(&path).is_err(), "left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_served_socket_is_kept_and_a_stale_one_replaced() {
        let dir = temp("stale");
        let path = dir.join("login");
        let first = bind_own(&path);
        let Ok(first) = first else {
            panic!("{first:?}")
        };
        // A second daemon while the first serves: refused, the first's
        // socket untouched.
        let second = bind_own(&path);
        assert!(
            matches!(second, Err(ListenError::InUse { .. })),
            "{second:?}"
        );
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        // The first one gone without removing its file (killed): stale,
        // replaced.
        let stale = std::fs::rename(&path, dir.join("kept"));
        assert!(stale.is_ok());
        drop(first);
        assert!(std::fs::rename(dir.join("kept"), &path).is_ok());
        assert!(std::os::unix::net::UnixStream::connect(&path).is_err());
        let third = bind_own(&path);
        assert!(third.is_ok(), "{third:?}");
        assert!(std::os::unix::net::UnixStream::connect(&path).is_ok());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_others_may_write_to_is_refused() {
        let dir = temp("open");
        assert!(std::fs::create_dir_all(&dir).is_ok());
        assert!(std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).is_ok());
        let result = bind_own(&dir.join("login"));
        assert!(
            matches!(result, Err(ListenError::UnsafeDirectory { .. })),
            "{result:?}"
        );
        assert!(std::fs::symlink_metadata(dir.join("login")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_listening_unix_stream_socket_is_taken() {
        use std::os::fd::AsRawFd;
        let dir = temp("kinds");
        let bound = bind_own(&dir.join("login"));
        let Ok(bound) = bound else {
            panic!("{bound:?}")
        };
        assert!(is_unix_stream_listener(bound.listener.as_raw_fd()));
        let pair = std::os::unix::net::UnixStream::pair();
        let Ok((a, _b)) = pair else { panic!("pair") };
        assert!(!is_unix_stream_listener(a.as_raw_fd()), "not listening");
        let file = std::fs::File::open("/dev/null");
        let Ok(file) = file else { panic!("open") };
        assert!(!is_unix_stream_listener(file.as_raw_fd()), "not a socket");
        drop(bound);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_default_path_is_the_contracts() {
        assert_eq!(
            crate::args::DEFAULT_LOGIN_SOCKET,
            twofactor_proto::names::LOGIN_SOCKET_PATH
        );
    }

    #[test]
    fn only_sockets_passed_to_this_pid_are_taken() {
        assert!(matches!(passed_to_us(Some("77"), Some("1"), 77), Ok(true)));
        // Meant for another process (a parent that did not clear them).
        assert!(matches!(passed_to_us(Some("1"), Some("1"), 77), Ok(false)));
        assert!(matches!(passed_to_us(None, Some("1"), 77), Ok(false)));
        assert!(matches!(passed_to_us(Some("77"), None, 77), Ok(false)));
        assert!(matches!(passed_to_us(Some("77"), Some("0"), 77), Ok(false)));
        assert!(matches!(passed_to_us(Some("x"), Some("1"), 77), Ok(false)));
        assert!(matches!(
            passed_to_us(Some("77"), Some("2"), 77),
            Err(ListenError::TooMany { count: 2 })
        ));
    }
}

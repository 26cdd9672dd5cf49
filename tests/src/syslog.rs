//! Catching what a program sends to syslog, without touching the machine's
//! /dev/log: a datagram socket in a temporary directory, and the program run
//! in a private mount namespace (`unshare -m`, root only) whose /dev is a
//! tmpfs with the usual device nodes bound in and /dev/log pointing at our
//! socket.

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

pub struct SyslogSink {
    dir: tempfile::TempDir,
    lines: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    reader: Option<JoinHandle<()>>,
}

const SETUP: &str = r#"set -e
d="$TFT_NS_DIR"
mkdir -p "$d/olddev"
mount --rbind /dev "$d/olddev"
mount -t tmpfs -o mode=755 tmpfs /dev
for n in null zero full random urandom tty; do
  touch "/dev/$n"
  mount --bind "$d/olddev/$n" "/dev/$n"
done
ln -s "$d/log.sock" /dev/log
exec "$@"
"#;

// `new()` binds a socket and starts a reader thread: an action, not a default value.
#[allow(clippy::new_without_default)]
impl SyslogSink {
    pub fn new() -> SyslogSink {
        assert!(
            crate::is_root(),
            "syslog capture needs root (mount namespace)"
        );
        let dir = crate::temp_dir("tft-syslog-");
        let path = dir.path().join("log.sock");
        let sock = UnixDatagram::bind(&path).expect("bind syslog socket");
        crate::set_mode(&path, 0o666);
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .expect("socket timeout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (lines.clone(), stop.clone());
        let reader = std::thread::spawn(move || {
            let mut buf = vec![0u8; 65536];
            while !s.load(Ordering::SeqCst) {
                if let Ok(n) = sock.recv(&mut buf) {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    l.lock().unwrap_or_else(|p| p.into_inner()).push(text);
                }
            }
        });
        SyslogSink {
            dir,
            lines,
            stop,
            reader: Some(reader),
        }
    }

    /// `program args...` wrapped so that its /dev/log is this sink.
    pub fn wrap(&self, program: &std::path::Path) -> Command {
        let mut cmd = Command::new("unshare");
        cmd.arg("--mount")
            .arg("--propagation")
            .arg("private")
            .arg("sh")
            .arg("-c")
            .arg(SETUP)
            .arg("sh")
            .arg(program)
            .env("TFT_NS_DIR", self.dir.path());
        cmd
    }

    /// The records received so far (raw, with the `<PRI>` prefix). Waits a
    /// moment for records still in flight.
    pub fn lines(&self) -> Vec<String> {
        std::thread::sleep(Duration::from_millis(200));
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn text(&self) -> String {
        self.lines().join("\n")
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.reader.take() {
            let _ = h.join();
        }
    }
}

//! A real SMTP server for the mail tests: Debian's `python3-aiosmtpd`
//! (`python3 -m aiosmtpd`) on a free loopback port, storing what it
//! receives in a Maildir that the test reads back (parsed by Python's
//! `email` package: headers decoded, body decoded from its transfer
//! encoding). Plain SMTP, STARTTLS (required) or implicit TLS, with
//! certificates made per test by `openssl`; for SMTP AUTH, a few lines of
//! Python around aiosmtpd's `SMTP` class (its command line cannot
//! authenticate). And a relay that never answers, for timeouts.
//!
//! The server is killed (by pid) when the value is dropped.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::proc;

/// Always Debian's interpreter (a `python3` earlier in PATH may be a pyenv
/// shim without aiosmtpd).
pub const PYTHON: &str = "/usr/bin/python3";

/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A port on 127.0.0.1 that nothing listened on a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

/// A CA and a server certificate signed by it, as PEM files in a
/// temporary directory.
pub struct Certs {
    _dir: tempfile::TempDir,
    /// The CA certificate (what a client puts in `ca_file`).
    pub ca: PathBuf,
    /// The server's certificate and key.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Certs {
    /// A fresh CA and a certificate for `localhost` and 127.0.0.1.
    pub fn localhost() -> Certs {
        Certs::for_names("DNS:localhost,IP:127.0.0.1")
    }

    /// A fresh CA and a server certificate whose subjectAltName is `sans`
    /// (openssl syntax: `DNS:name,IP:address`).
    pub fn for_names(sans: &str) -> Certs {
        let dir = crate::var_temp_dir("tft-certs-");
        let p = |name: &str| dir.path().join(name);
        let (ca, ca_key, cert, key, csr, ext) = (
            p("ca.pem"),
            p("ca.key"),
            p("server.pem"),
            p("server.key"),
            p("server.csr"),
            p("server.ext"),
        );
        crate::write_file(
            &ext,
            format!(
                "subjectAltName={sans}\nbasicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            ),
            0o644,
        );
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-days", "2"])
                .args(ec)
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca)
                .arg("-subj")
                .arg(format!("/CN=twofactor test CA {}", crate::random_hex(4)))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        );
        openssl(
            Command::new("openssl")
                .arg("req")
                .args(ec)
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr)
                .args(["-subj", "/CN=twofactor test relay"]),
        );
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&ca)
                .arg("-CAkey")
                .arg(&ca_key)
                .arg("-set_serial")
                .arg(format!("0x{}", crate::random_hex(8)))
                .arg("-extfile")
                .arg(&ext)
                .arg("-out")
                .arg(&cert),
        );
        Certs {
            _dir: dir,
            ca,
            cert,
            key,
        }
    }
}

fn openssl(cmd: &mut Command) {
    let out = proc::run(cmd, b"", Duration::from_secs(30));
    assert!(out.success(), "openssl failed: {}", out.describe());
}

/// How the server protects the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    Plain,
    /// STARTTLS offered and required before MAIL FROM.
    StartTls,
    /// TLS from the first byte (SMTPS).
    Tls,
}

/// One message as the server stored it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub from: String,
    pub to: String,
    pub subject: String,
    /// `text/plain`, ...
    pub content_type: String,
    pub charset: String,
    /// Decoded, with `\n` line ends.
    pub body: String,
    /// The header as it was on the wire (for "this is not in it" checks).
    pub raw: String,
}

/// A running aiosmtpd.
pub struct SmtpServer {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

/// aiosmtpd's SMTP class with AUTH (PLAIN, LOGIN) required and STARTTLS
/// required before it: argv is HOST PORT MAILDIR CERT KEY USER
/// PASSWORD_FILE (the password is read from the file, never argv).
const PY_AUTH_SERVER: &str = r#"
import asyncio, ssl, sys
from aiosmtpd.smtp import SMTP, AuthResult
from aiosmtpd.handlers import Mailbox
host, port, maildir, cert, key, user, pwfile = sys.argv[1:]
with open(pwfile) as f:
    password = f.readline().rstrip("\n")
def authenticator(server, session, envelope, mechanism, data):
    ok = (getattr(data, "login", None) == user.encode()
          and getattr(data, "password", None) == password.encode())
    return AuthResult(success=ok, handled=False)
ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(cert, key)
handler = Mailbox(maildir)
def factory():
    return SMTP(handler, tls_context=ctx, require_starttls=True,
                authenticator=authenticator, auth_required=True)
loop = asyncio.new_event_loop()
loop.run_until_complete(loop.create_server(factory, host, int(port)))
loop.run_forever()
"#;

/// Reads MAILDIR/new: one JSON object per message, oldest first.
const PY_READ_MAILDIR: &str = r#"
import email, email.policy, json, os, sys
new = os.path.join(sys.argv[1], "new")
names = os.listdir(new) if os.path.isdir(new) else []
names.sort(key=lambda n: os.stat(os.path.join(new, n)).st_mtime_ns)
out = []
for n in names:
    with open(os.path.join(new, n), "rb") as f:
        raw = f.read()
    m = email.message_from_bytes(raw, policy=email.policy.default)
    out.append({
        "from": str(m.get("From", "")),
        "to": str(m.get("To", "")),
        "subject": str(m.get("Subject", "")),
        "content_type": m.get_content_type(),
        "charset": m.get_content_charset() or "",
        "body": m.get_content().replace("\r\n", "\n"),
        "raw": raw.decode("utf-8", "replace"),
    })
print(json.dumps(out))
"#;

impl SmtpServer {
    /// Plain SMTP on 127.0.0.1.
    pub fn plain() -> SmtpServer {
        SmtpServer::start(Security::Plain, None)
    }

    /// STARTTLS (required) or implicit TLS with `certs`' server certificate.
    pub fn tls(security: Security, certs: &Certs) -> SmtpServer {
        SmtpServer::start(security, Some(certs))
    }

    fn start(security: Security, certs: Option<&Certs>) -> SmtpServer {
        let dir = crate::temp_dir("tft-smtp-");
        let port = free_port();
        let mut cmd = Command::new(PYTHON);
        cmd.args(["-m", "aiosmtpd", "-n"])
            .arg("-l")
            .arg(format!("127.0.0.1:{port}"));
        let tls_args = match security {
            Security::Plain => None,
            Security::StartTls => Some(("--tlscert", "--tlskey")),
            Security::Tls => Some(("--smtpscert", "--smtpskey")),
        };
        if let Some((cert_arg, key_arg)) = tls_args {
            let certs = certs.expect("a TLS server needs certificates");
            cmd.arg(cert_arg)
                .arg(&certs.cert)
                .arg(key_arg)
                .arg(&certs.key);
        }
        cmd.args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(dir.path().join("Maildir"));
        SmtpServer::spawn(dir, port, cmd)
    }

    /// STARTTLS required, then AUTH PLAIN/LOGIN as `user` with the
    /// password on the first line of `password_file`, required before
    /// MAIL FROM.
    pub fn with_auth(certs: &Certs, user: &str, password_file: &Path) -> SmtpServer {
        let dir = crate::temp_dir("tft-smtp-");
        let port = free_port();
        let mut cmd = Command::new(PYTHON);
        cmd.arg("-c")
            .arg(PY_AUTH_SERVER)
            .arg("127.0.0.1")
            .arg(port.to_string())
            .arg(dir.path().join("Maildir"))
            .arg(&certs.cert)
            .arg(&certs.key)
            .arg(user)
            .arg(password_file);
        SmtpServer::spawn(dir, port, cmd)
    }

    fn spawn(dir: tempfile::TempDir, port: u16, mut cmd: Command) -> SmtpServer {
        let log = std::fs::File::create(dir.path().join("server.log")).expect("server log");
        let child = cmd
            .env_clear()
            .env("PATH", crate::PATH)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("server log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {PYTHON} (aiosmtpd): {e}"));
        let mut server = SmtpServer { dir, port, child };
        let listening = crate::wait_until(START_TIMEOUT, || {
            server.exited() || TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
        });
        if !listening || server.exited() {
            panic!(
                "aiosmtpd did not listen on 127.0.0.1:{port} (is python3-aiosmtpd installed?):\n{}",
                server.log()
            );
        }
        server
    }

    fn exited(&mut self) -> bool {
        !matches!(self.child.try_wait(), Ok(None))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the server printed (errors, tracebacks).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    fn stored(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("Maildir/new"))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Every message received so far, oldest first.
    pub fn messages(&self) -> Vec<Received> {
        if self.stored() == 0 {
            return Vec::new();
        }
        let out = proc::run(
            Command::new(PYTHON)
                .arg("-c")
                .arg(PY_READ_MAILDIR)
                .arg(self.dir.path().join("Maildir")),
            b"",
            Duration::from_secs(30),
        );
        assert!(out.success(), "reading the Maildir: {}", out.describe());
        let list: serde_json::Value =
            serde_json::from_str(&out.stdout()).expect("the Maildir reader prints JSON");
        let text = |m: &serde_json::Value, k: &str| {
            m.get(k)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_string()
        };
        list.as_array()
            .map(|ms| {
                ms.iter()
                    .map(|m| Received {
                        from: text(m, "from"),
                        to: text(m, "to"),
                        subject: text(m, "subject"),
                        content_type: text(m, "content_type"),
                        charset: text(m, "charset"),
                        body: text(m, "body"),
                        raw: text(m, "raw"),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Waits (at most `timeout`) for a received message for which `pred`
    /// holds.
    pub fn wait_for_message(
        &self,
        timeout: Duration,
        pred: impl Fn(&Received) -> bool,
    ) -> Option<Received> {
        let mut parsed = 0;
        let mut found = None;
        crate::wait_until(timeout, || {
            // Python only when a new file arrived.
            let stored = self.stored();
            if stored == parsed {
                return false;
            }
            parsed = stored;
            found = self.messages().into_iter().find(|m| pred(m));
            found.is_some()
        });
        found
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A "relay" that accepts TCP connections and never says a word: it
/// listens but never calls accept(2), so the kernel completes each
/// connection and the client waits for a greeting that never comes.
pub struct SilentRelay {
    listener: TcpListener,
}

impl SilentRelay {
    pub fn start() -> SilentRelay {
        SilentRelay {
            listener: TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port"),
        }
    }

    pub fn port(&self) -> u16 {
        self.listener
            .local_addr()
            .map(|a| a.port())
            .expect("a bound listener has an address")
    }
}

//! A real, private PostgreSQL server for the tests of the daemon's
//! `postgresql` store: Debian's postgresql-15 binaries, a fresh cluster
//! (`initdb`) in a temporary directory under /var/tmp, listening on
//! 127.0.0.1 at a free port and on a Unix socket in that directory, with
//! TLS (a server certificate for `127.0.0.1` and `localhost` signed by a
//! CA made per server by `openssl`) and a login role `twofactor` with a
//! random password kept in a root-only file.
//!
//! The server never runs as root (PostgreSQL refuses to): when the tests
//! run as root, every server program runs as the `postgres` user through
//! `runuser -u postgres --`; otherwise as the test's own user.
//!
//! Layout of the temporary directory (owned by the test's user):
//!
//! ```text
//! password            the role's password, 0600, the test's user
//! ca.pem, ca.key      the test CA (ca.key 0600)
//! server/             owned by the server's user
//!   data/             the cluster (0700)
//!   server.pem/.key   the server's certificate and key (key 0600)
//!   server.log        what the server printed
//!   .s.PGSQL.<port>   the Unix socket
//! ```
//!
//! The socket is in `server/`, not in the top directory, so that the
//! directory holding the password file stays writable by the test's user
//! only.
//!
//! On `Drop` (also when a test panics) the server is stopped
//! (`pg_ctl stop -m immediate`), killed by its pid if it is still there,
//! and the directory removed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::proc::{self, Finished};

/// Where Debian's postgresql-15 keeps its programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";

/// The cluster's superuser (reached over the Unix socket, `trust`).
pub const SUPERUSER: &str = "postgres";

/// The login role the daemon connects as.
pub const ROLE: &str = "twofactor";

/// The OS user the server runs as when the tests run as root.
pub const SERVER_OS_USER: &str = "postgres";

/// The address the server listens on.
const HOST: &str = "127.0.0.1";

/// How long `initdb` may take (it writes a whole cluster; the machine may
/// be busy building).
const INITDB_TIMEOUT: Duration = Duration::from_secs(180);

/// How long the server may take to start or stop (`pg_ctl -t`), and the
/// bound on waiting for `pg_ctl` itself (a bit longer).
const PG_CTL_WAIT_SECONDS: u64 = 120;
const PG_CTL_TIMEOUT: Duration = Duration::from_secs(PG_CTL_WAIT_SECONDS + 30);

/// How long a client program (psql, pg_isready, openssl) may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// Whether postgresql-15 is installed (its `initdb` exists).
pub fn available() -> bool {
    Path::new(PG_BIN).join("initdb").is_file()
}

/// Tests that need PostgreSQL call this first and return when it gives
/// false: without postgresql-15 they are skipped, unless
/// `TWOFACTOR_REQUIRE_ROOT=1` (CI, where everything must run), where a
/// missing PostgreSQL is a failure.
pub fn postgres_or_skip(test: &str) -> bool {
    if available() {
        return true;
    }
    if std::env::var(crate::REQUIRE_ROOT_ENV).as_deref() == Ok("1") {
        panic!(
            "{test} needs PostgreSQL 15 ({PG_BIN}/initdb; apt-get install postgresql-15), \
             and {}=1 says every test must run",
            crate::REQUIRE_ROOT_ENV
        );
    }
    eprintln!("SKIPPED (needs postgresql-15): {test}");
    false
}

/// `if !need_postgres!() { return; }` with the test's name in the message.
#[macro_export]
macro_rules! need_postgres {
    () => {
        $crate::postgres::postgres_or_skip(module_path!())
    };
}

/// A path of a program of postgresql-15.
pub fn pg_bin(program: &str) -> PathBuf {
    Path::new(PG_BIN).join(program)
}

/// `n` random ASCII letters and digits from /dev/urandom (unbiased:
/// bytes of 248 and above, 4 × 62, are thrown away).
pub fn random_alphanumeric(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut urandom = std::fs::File::open("/dev/urandom").expect("open /dev/urandom");
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 64];
    while out.len() < n {
        urandom.read_exact(&mut buf).expect("read /dev/urandom");
        for &b in &buf {
            if out.len() == n {
                break;
            }
            if usize::from(b) < ALPHABET.len() * 4 {
                out.push(char::from(ALPHABET[usize::from(b) % ALPHABET.len()]));
            }
        }
    }
    out
}

/// Whether process `pid` exists and has not ended (a zombie has ended:
/// the server is not our child, and whoever adopted it may be slow to reap
/// it).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": the state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| state != 'Z' && state != 'X'),
        Err(_) => false,
    }
}

/// The processes whose parent is `pid` (the postmaster's backends and
/// helpers: each is in a process group of its own, so they are found by
/// their parent).
fn children(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&child| {
            std::fs::read_to_string(format!("/proc/{child}/stat"))
                .ok()
                .and_then(|stat| {
                    // "pid (comm) S ppid ...": the parent follows the state.
                    let (_, rest) = stat.rsplit_once(')')?;
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                })
                == Some(pid)
        })
        .collect()
}

/// Runs `cmd` with no input and output, at most `timeout` (then kills it);
/// whether it succeeded. Never panics: for `Drop`.
fn run_quietly(cmd: &mut Command, timeout: Duration) -> bool {
    let Ok(mut child) = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    match proc::wait_timeout(&mut child, timeout) {
        Some(status) => status.success(),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            false
        }
    }
}

/// `id -u NAME` / `id -g NAME`.
fn os_id(flag: &str, name: &str) -> u32 {
    let out = proc::run(
        Command::new("id")
            .arg(flag)
            .arg(name)
            .env_clear()
            .env("PATH", crate::PATH),
        b"",
        CLIENT_TIMEOUT,
    );
    assert!(out.success(), "id {flag} {name}: {}", out.describe());
    out.stdout()
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("id {flag} {name} printed {:?}: {e}", out.stdout()))
}

fn chown(path: &Path, owner: (u32, u32)) {
    std::os::unix::fs::chown(path, Some(owner.0), Some(owner.1))
        .unwrap_or_else(|e| panic!("chown {}:{} {}: {e}", owner.0, owner.1, path.display()));
}

/// A running private PostgreSQL server (see the module's documentation).
pub struct PgServer {
    dir: tempfile::TempDir,
    port: u16,
    /// The postmaster's pid while the server runs.
    pid: Option<u32>,
    /// The server's uid and gid when the tests run as root (the server
    /// then runs as [`SERVER_OS_USER`]); `None`: the test's own user.
    server_owner: Option<(u32, u32)>,
}

impl PgServer {
    /// A new cluster, configured and started; returns when it accepts
    /// connections on 127.0.0.1, with the role [`ROLE`] in place.
    pub fn start() -> PgServer {
        let dir = crate::var_temp_dir("tft-pg-");
        let server_owner =
            crate::is_root().then(|| (os_id("-u", SERVER_OS_USER), os_id("-g", SERVER_OS_USER)));
        // From here on a failure drops the value, which stops whatever was
        // started.
        let mut pg = PgServer {
            dir,
            port: crate::smtp::free_port(),
            pid: None,
            server_owner,
        };
        let server_dir = pg.server_dir();
        std::fs::create_dir(&server_dir).expect("create the server's directory");
        crate::set_mode(&server_dir, 0o755);
        if let Some(owner) = pg.server_owner {
            chown(&server_dir, owner);
        }
        pg.make_certificates();
        pg.initdb();
        pg.configure();
        pg.launch();

        let password = random_alphanumeric(24);
        crate::write_file(&pg.password_file(), format!("{password}\n"), 0o600);
        // On stdin, not argv: the password is in no process list.
        let out = pg.psql_stdin(
            "postgres",
            &format!("CREATE ROLE {ROLE} LOGIN PASSWORD '{password}';\n"),
        );
        assert!(
            out.success(),
            "creating the role {ROLE}: {}",
            out.describe()
        );
        pg
    }

    /// The directory of everything the server's user owns (also the Unix
    /// socket's directory).
    fn server_dir(&self) -> PathBuf {
        self.dir.path().join("server")
    }

    fn data_dir(&self) -> PathBuf {
        self.server_dir().join("data")
    }

    fn log_path(&self) -> PathBuf {
        self.server_dir().join("server.log")
    }

    /// A command running postgresql-15's `program` as the server's user
    /// (through `runuser` when the tests run as root), in the server's
    /// directory, with a clean environment.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = if self.server_owner.is_some() {
            let mut c = Command::new("runuser");
            c.args(["-u", SERVER_OS_USER, "--"]).arg(pg_bin(program));
            c
        } else {
            Command::new(pg_bin(program))
        };
        cmd.current_dir(self.server_dir())
            .env_clear()
            .env("PATH", crate::PATH);
        cmd
    }

    /// The test CA (the same kind the SMTP tests use) and the server's
    /// certificate (SANs `DNS:localhost`, `IP:127.0.0.1`) and key, the key
    /// readable by the server's user only.
    fn make_certificates(&self) {
        let certs = crate::smtp::Certs::localhost();
        let (cert, key) = (
            self.server_dir().join("server.pem"),
            self.server_dir().join("server.key"),
        );
        for (from, to) in [
            (&certs.ca, &self.ca_file()),
            (&certs.cert, &cert),
            (&certs.key, &key),
        ] {
            std::fs::copy(from, to).expect("copy a test certificate");
        }
        crate::set_mode(&self.ca_file(), 0o644);
        crate::set_mode(&cert, 0o644);
        // PostgreSQL refuses a key that its group or others may read, or
        // that someone other than the server's user (or root) owns.
        crate::set_mode(&key, 0o600);
        if let Some(owner) = self.server_owner {
            chown(&cert, owner);
            chown(&key, owner);
        }
    }

    /// `initdb`: superuser [`SUPERUSER`], `trust` on the Unix socket,
    /// scram-sha-256 over TCP, UTF-8 without a locale. `--no-sync` only
    /// skips initdb's own final flush; the server runs with fsync on.
    fn initdb(&self) {
        let out = proc::run(
            self.server_command("initdb")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-U", SUPERUSER])
                .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
                .args(["-E", "UTF8", "--no-locale", "--no-sync"]),
            b"",
            INITDB_TIMEOUT,
        );
        assert!(out.success(), "initdb failed: {}", out.describe());
    }

    /// postgresql.conf (settings appended, so later ones win) and
    /// pg_hba.conf (replaced).
    fn configure(&self) {
        let data = self.data_dir();
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .unwrap_or_else(|e| panic!("read {}: {e}", conf.display()));
        text.push_str(&format!(
            "\n# twofactor tests\n\
             listen_addresses = '{HOST}'\n\
             port = {port}\n\
             unix_socket_directories = '{socket}'\n\
             max_connections = 50\n\
             shared_buffers = 16MB\n\
             fsync = on\n\
             ssl = on\n\
             ssl_cert_file = '{cert}'\n\
             ssl_key_file = '{key}'\n\
             password_encryption = 'scram-sha-256'\n",
            port = self.port,
            socket = self.socket_dir().display(),
            cert = self.server_dir().join("server.pem").display(),
            key = self.server_dir().join("server.key").display(),
        ));
        std::fs::write(&conf, text).unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
        let hba = data.join("pg_hba.conf");
        std::fs::write(
            &hba,
            "# twofactor tests: the superuser over the socket; passwords over TCP,\n\
             # with or without TLS.\n\
             local all all trust\n\
             hostssl all all 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 scram-sha-256\n",
        )
        .unwrap_or_else(|e| panic!("write {}: {e}", hba.display()));
        // initdb made both files as the server's user, who keeps them.
    }

    /// `pg_ctl start -w`, then waits until 127.0.0.1:port accepts
    /// connections; keeps the postmaster's pid.
    fn launch(&mut self) {
        assert!(self.pid.is_none(), "the server is running already");
        let out = proc::run(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .arg("-l")
                .arg(self.log_path())
                .args(["-w", "-t", &PG_CTL_WAIT_SECONDS.to_string(), "start"]),
            b"",
            PG_CTL_TIMEOUT,
        );
        self.pid = self.postmaster_pid();
        assert!(
            out.success(),
            "pg_ctl start failed: {}\n--- server log ---\n{}",
            out.describe(),
            self.log()
        );
        assert!(
            self.pid.is_some(),
            "the server started but wrote no pid to postmaster.pid:\n{}",
            self.log()
        );
        let ready = crate::wait_until(Duration::from_secs(PG_CTL_WAIT_SECONDS), || self.ready());
        assert!(
            ready,
            "the server does not accept connections on {HOST}:{}:\n{}",
            self.port,
            self.log()
        );
    }

    /// `pg_isready` over TCP: whether the server accepts connections.
    pub fn ready(&self) -> bool {
        proc::run(
            Command::new(pg_bin("pg_isready"))
                .args(["-q", "-t", "5", "-h", HOST, "-p", &self.port.to_string()])
                .args(["-d", "postgres", "-U", SUPERUSER])
                .env_clear()
                .env("PATH", crate::PATH),
            b"",
            CLIENT_TIMEOUT,
        )
        .success()
    }

    /// The first line of the data directory's postmaster.pid, if there is
    /// one.
    fn postmaster_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data_dir().join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    /// The postmaster's pid while the server runs.
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }

    /// Stops the server (`pg_ctl stop -m fast`: sessions are ended, data
    /// is kept) and waits until its process is gone.
    pub fn stop(&mut self) {
        let Some(pid) = self.pid else {
            panic!("the server is not running");
        };
        let out = proc::run(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "fast", "-w", "-t", &PG_CTL_WAIT_SECONDS.to_string()])
                .arg("stop"),
            b"",
            PG_CTL_TIMEOUT,
        );
        assert!(
            out.success(),
            "pg_ctl stop failed: {}\n--- server log ---\n{}",
            out.describe(),
            self.log()
        );
        let gone = crate::wait_until(Duration::from_secs(PG_CTL_WAIT_SECONDS), || !alive(pid));
        assert!(
            gone,
            "the postmaster ({pid}) is still there after pg_ctl stop"
        );
        self.pid = None;
    }

    /// Starts the server again after [`PgServer::stop`]: same port, same
    /// data; returns when it accepts connections.
    pub fn start_again(&mut self) {
        self.launch();
    }

    /// A new database, named `tf_<pid>_<n>`, owned by [`ROLE`]; its name.
    pub fn create_database(&self) -> String {
        let name = format!("tf_{}_{}", std::process::id(), crate::unique());
        self.psql("postgres", &format!("CREATE DATABASE {name} OWNER {ROLE}"));
        name
    }

    /// Runs `sql` in `dbname` as the superuser over the Unix socket
    /// (`psql -X -A -t -v ON_ERROR_STOP=1 -c SQL`); what it printed,
    /// trimmed. Panics (with psql's stderr and the server's log) if it
    /// fails.
    pub fn psql(&self, dbname: &str, sql: &str) -> String {
        let out = proc::run(
            self.psql_command(dbname).arg("-c").arg(sql),
            b"",
            CLIENT_TIMEOUT,
        );
        assert!(
            out.success(),
            "psql -d {dbname} -c {sql:?} failed: {}\n--- server log ---\n{}",
            out.describe(),
            self.log()
        );
        out.stdout().trim().to_string()
    }

    /// Like [`PgServer::psql`] with the SQL on stdin, unchecked.
    fn psql_stdin(&self, dbname: &str, sql: &str) -> Finished {
        proc::run(
            &mut self.psql_command(dbname),
            sql.as_bytes(),
            CLIENT_TIMEOUT,
        )
    }

    fn psql_command(&self, dbname: &str) -> Command {
        let mut cmd = Command::new(pg_bin("psql"));
        cmd.arg("-h")
            .arg(self.socket_dir())
            .args(["-p", &self.port.to_string(), "-U", SUPERUSER, "-d", dbname])
            .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", crate::PATH);
        cmd
    }

    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The address the server listens on: `127.0.0.1`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The file with [`ROLE`]'s password on its first line (0600, owned by
    /// the test's user).
    pub fn password_file(&self) -> PathBuf {
        self.dir.path().join("password")
    }

    /// [`ROLE`]'s password.
    pub fn password(&self) -> String {
        let text = std::fs::read_to_string(self.password_file()).expect("read the password file");
        text.lines().next().unwrap_or_default().to_string()
    }

    /// The CA certificate that signed the server's certificate (a client's
    /// `sslrootcert` / the daemon's `ca_file`).
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The directory of the server's Unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.server_dir()
    }

    /// What the server has logged so far.
    pub fn log(&self) -> String {
        std::fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The daemon's `[store]` section for `dbname` on this server, as
    /// [`ROLE`], over TLS checked against [`PgServer::ca_file`]
    /// (`sslmode = "verify-full"`) or without TLS (`"disable"`).
    pub fn store_toml(&self, dbname: &str, tls: bool) -> String {
        let mut toml = format!(
            "[store]\n\
             backend = \"postgresql\"\n\
             host = {host:?}\n\
             port = {port}\n\
             dbname = {dbname:?}\n\
             user = {ROLE:?}\n\
             password_file = {password:?}\n",
            host = HOST,
            port = self.port,
            password = self.password_file().display().to_string(),
        );
        if tls {
            toml.push_str(&format!(
                "sslmode = \"verify-full\"\nca_file = {:?}\n",
                self.ca_file().display().to_string()
            ));
        } else {
            toml.push_str("sslmode = \"disable\"\n");
        }
        toml
    }
}

impl Drop for PgServer {
    /// Stops the server at once (`pg_ctl stop -m immediate`) and, if its
    /// postmaster is still there, kills it and its children (which are
    /// each in a process group of their own) with SIGKILL, each by its
    /// pid; the directory goes with the `TempDir`. Never panics.
    fn drop(&mut self) {
        // Also a server whose start failed half-way: its pid file tells.
        let Some(pid) = self.pid.take().or_else(|| self.postmaster_pid()) else {
            return;
        };
        if !alive(pid) {
            return;
        }
        run_quietly(
            self.server_command("pg_ctl")
                .arg("-D")
                .arg(self.data_dir())
                .args(["-m", "immediate", "-w", "-t", "20"])
                .arg("stop"),
            Duration::from_secs(30),
        );
        if alive(pid) {
            // The children first: once the postmaster is gone they are
            // no longer known by their parent.
            let mut pids = children(pid);
            pids.push(pid);
            for &p in &pids {
                proc::signal(p, libc::SIGKILL);
            }
            crate::wait_until(Duration::from_secs(10), || pids.iter().all(|&p| !alive(p)));
        }
    }
}

/// Environment variable that runs the behaviour tests against PostgreSQL:
/// `TWOFACTOR_TEST_STORE=postgresql` gives every test daemon that names
/// no store of its own a fresh database on one server shared by the test
/// binary (one suite, two stores; see the Makefile's `test`).
pub const STORE_ENV: &str = "TWOFACTOR_TEST_STORE";

/// Whether the tests run against PostgreSQL ([`STORE_ENV`]).
pub fn selected() -> bool {
    std::env::var(STORE_ENV).is_ok_and(|v| v == "postgresql")
}

static SHARED: std::sync::Mutex<Option<PgServer>> = std::sync::Mutex::new(None);

/// Stops the shared server when the test binary exits.
extern "C" fn stop_shared() {
    let server = SHARED.lock().ok().and_then(|mut s| s.take());
    drop(server);
}

/// The `[store]` section of a fresh database on the test binary's shared
/// server (started at the first call; stopped when the binary exits, from
/// an `atexit` handler, since a static is never dropped).
pub fn shared_store_toml() -> String {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if shared.is_none() {
        *shared = Some(PgServer::start());
        // SAFETY: registers a plain `extern "C" fn()` that takes no
        // arguments; libc calls it once at exit().
        let registered = unsafe { libc::atexit(stop_shared) };
        assert_eq!(registered, 0, "atexit failed");
    }
    let pg = shared.as_ref().expect("started above");
    let db = pg.create_database();
    pg.store_toml(&db, false)
}

//! twofactord: the root daemon that owns all two-factor state and makes
//! every decision. See the README and docs/ for how it is run.

use clap::Parser;
use std::process::ExitCode;
use std::sync::Arc;
use twofactor_proto::names::{BUS_NAME, OBJECT_PATH};
use twofactord::adapters::syslog::{Audit, Event, Sinks};
use twofactord::adapters::{fleet_tls, listen, nss, pam_reauth, sealing, smtp, verifiers};
use twofactord::api::fleet::{host, host_requests, verifier};
use twofactord::api::requests::{AccountRequests, AdminRequests};
use twofactord::api::{account, admin, bus, login, login_socket};
use twofactord::args::Args;
use twofactord::config::{self, Config};
use twofactord::services::passwords::Passwords;
use twofactord::services::{Handles, Outside};
use twofactord::{clock, random, store};

fn main() -> ExitCode {
    // Before anything else: the variables name this pid, and no child may
    // inherit them.
    let systemd_socket = listen::from_systemd();
    let args = Args::parse();
    // Files the daemon creates are for root only.
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));

    let explicit = args.config.as_os_str() != config::DEFAULT_PATH;
    let config = match Config::load(&args.config, explicit) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("twofactord: configuration error: {e}");
            return ExitCode::from(1);
        }
    };
    if args.check_config {
        // The mail files (password_file, ca_file) too, as start-up would
        // read them; also when mail is still off but they are named.
        let e = &config.email;
        if e.in_use()
            || !e.password_file.as_os_str().is_empty()
            || !e.ca_file.as_os_str().is_empty()
        {
            if let Err(e) = smtp::Smtp::new(e) {
                eprintln!(
                    "twofactord: configuration error: {}: [email]: {e}",
                    args.config.display()
                );
                return ExitCode::from(1);
            }
        }
        // The store's files (password_file, ca_file) by the very code a
        // connection runs first, without connecting; also when the store
        // is still SQLite but they are named.
        let s = &config.store;
        if s.backend == config::Backend::Postgresql
            || !s.password_file.as_os_str().is_empty()
            || !s.ca_file.as_os_str().is_empty()
        {
            if let Err(e) = s.check_files() {
                eprintln!(
                    "twofactord: configuration error: {}: {e}",
                    args.config.display()
                );
                return ExitCode::from(1);
            }
        }
        // The fleet's certificate files, as start-up reads them.
        let fleet = match config.fleet.role {
            config::Role::None => Ok(()),
            config::Role::Host => fleet_tls::client(&config.fleet).map(drop),
            config::Role::Verifier => fleet_tls::server(&config.fleet).map(drop),
        };
        if let Err(e) = fleet {
            eprintln!(
                "twofactord: configuration error: {}: {e}",
                args.config.display()
            );
            return ExitCode::from(1);
        }
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    if args.init {
        return init(&config);
    }
    if args.rotate_key {
        return rotate_key(&config);
    }
    if let Some(target) = &args.copy_store_to {
        return copy_store(&config, target);
    }
    if let Some(add) = &args.add_host {
        return fleet_hosts(&config, HostsCommand::Add(&add[0], &add[1]));
    }
    if let Some(name) = &args.remove_host {
        return fleet_hosts(&config, HostsCommand::Remove(name));
    }
    if args.hosts {
        return fleet_hosts(&config, HostsCommand::List);
    }
    if config.fleet.role == config::Role::Host {
        return host_main(&args, config, systemd_socket);
    }
    // Refuse a missing database or key file before detaching, where the
    // message can still be seen.
    let keys = match keys_for(&config) {
        Ok(k) => k,
        Err(e) => {
            audit_for(&args, false).log(Event::Error {
                context: "key-file",
                error: &e,
            });
            eprintln!("twofactord: {e}");
            return ExitCode::from(1);
        }
    };
    let db = config.state_dir.join(store::DB_FILE);
    let sqlite = config.store.backend == config::Backend::Sqlite;
    if sqlite && std::fs::symlink_metadata(&db).is_err() {
        let e = store::StoreError::Missing { path: db }.to_string();
        audit_for(&args, false).log(Event::Error {
            context: "database",
            error: &e,
        });
        eprintln!("twofactord: cannot open the database: {e}");
        return ExitCode::from(1);
    }
    // The login socket too: a socket that cannot be made where it was
    // asked for stops the daemon here.
    let socket = match login_socket_for(&args, systemd_socket) {
        Ok(s) => s,
        Err(e) => {
            audit_for(&args, false).log(Event::Error {
                context: "login-socket",
                error: &e,
            });
            eprintln!("twofactord: {e}");
            return ExitCode::from(1);
        }
    };
    raise_descriptor_limit();
    // A verifier's TLS and address, before detaching: a bad file or a
    // taken port stops the daemon where the message can still be seen.
    let fleet = if config.fleet.role == config::Role::Verifier {
        let started = fleet_tls::server(&config.fleet)
            .map_err(|e| format!("configuration error: {}: {e}", args.config.display()))
            .and_then(|tls| {
                std::net::TcpListener::bind(config.fleet.listen.as_str())
                    .map(|l| (l, tls))
                    .map_err(|e| format!("cannot listen on {}: {e}", config.fleet.listen))
            });
        match started {
            Ok(f) => Some(f),
            Err(e) => {
                audit_for(&args, false).log(Event::Error {
                    context: "fleet",
                    error: &e,
                });
                eprintln!("twofactord: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        None
    };
    // The mailer reads its password file now, before detaching, so that a
    // bad file stops the daemon where the message can still be seen.
    let mailer: Arc<dyn smtp::Mailer> = if config.email.in_use() {
        match smtp::Smtp::new(&config.email) {
            Ok(m) => Arc::new(m),
            Err(e) => {
                let e = format!("{}: [email]: {e}", args.config.display());
                audit_for(&args, false).log(Event::Error {
                    context: "mail",
                    error: &e,
                });
                eprintln!("twofactord: configuration error: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        Arc::new(smtp::Disabled)
    };
    // Detach before any thread exists (the store writer, the runtime).
    let detached = match detach(&args) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let store = match store::Store::open_configured(&config, keys, store::Mode::Existing) {
        Ok(s) => s,
        Err(e) => {
            audit_for(&args, detached).log(Event::Error {
                context: "database",
                error: &e.to_string(),
            });
            eprintln!("twofactord: cannot open the database: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let audit = Arc::new(audit_for(&args, detached));
    let served = runtime.block_on(serve(
        config,
        store,
        mailer,
        (args.bus, socket, fleet),
        audit.clone(),
    ));
    ended(served, &audit)
}

/// Detaches unless `--foreground`; whether it did.
fn detach(args: &Args) -> Result<bool, ExitCode> {
    if args.foreground {
        return Ok(false);
    }
    nix::unistd::daemon(false, args.log_stderr).map_err(|e| {
        eprintln!("twofactord: cannot detach: {e}");
        ExitCode::from(1)
    })?;
    Ok(true)
}

/// The daemon's runtime: two async workers.
fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("twofactord: cannot start: {e}");
            ExitCode::from(1)
        })
}

/// The exit of a daemon that served: logged, and said on stderr.
fn ended(served: Result<(), String>, audit: &Audit) -> ExitCode {
    match served {
        Ok(()) => {
            audit.log(Event::Stop);
            ExitCode::SUCCESS
        }
        Err(e) => {
            audit.log(Event::Error {
                context: "startup",
                error: &e,
            });
            eprintln!("twofactord: {e}");
            ExitCode::from(1)
        }
    }
}

/// A fleet's host (`[fleet] role = "host"`): no key file, no database;
/// every login goes to a verifier.
fn host_main(
    args: &Args,
    config: Config,
    systemd_socket: Result<Option<std::os::unix::net::UnixListener>, listen::ListenError>,
) -> ExitCode {
    let fail = |e: String| {
        audit_for(args, false).log(Event::Error {
            context: "fleet",
            error: &e,
        });
        eprintln!("twofactord: {e}");
        ExitCode::from(1)
    };
    let verifiers = match fleet_tls::client(&config.fleet)
        .map_err(|e| format!("configuration error: {}: {e}", args.config.display()))
        .and_then(|tls| {
            verifiers::Verifiers::new(
                &config.fleet.verifiers,
                tls,
                std::time::Duration::from_secs(config.fleet.timeout_seconds.into()),
            )
        }) {
        Ok(v) => Arc::new(v),
        Err(e) => return fail(e),
    };
    let socket = match login_socket_for(args, systemd_socket) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    raise_descriptor_limit();
    let detached = match detach(args) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let runtime = match runtime() {
        Ok(r) => r,
        Err(code) => return code,
    };
    let audit = Arc::new(audit_for(args, detached));
    // A key file left on a host is one its root can read: said at every
    // start until it is gone.
    if std::fs::symlink_metadata(&config.key_file).is_ok() {
        audit.log(Event::Error {
            context: "fleet",
            error: &format!(
                "{} exists on this fleet host, which never reads it: delete it (the verifiers \
                 hold the key)",
                config.key_file.display()
            ),
        });
    }
    // A password is checked here, where it was typed; its attempts are
    // counted at a verifier.
    let passwords = Arc::new(Passwords::new(
        Arc::new(pam_reauth::PamReauth {
            service: config.reauth_service.clone(),
        }),
        Arc::new(host_requests::VerifierTally::new(
            verifiers.clone(),
            audit.clone(),
        )),
        audit.clone(),
    ));
    let requests = Arc::new(host_requests::Requests::new(
        verifiers.clone(),
        Arc::new(nss::SystemUsers::default()),
        passwords,
        audit.clone(),
    ));
    let logins: Arc<dyn login::LoginSteps> = Arc::new(host::Forwarder::new(
        verifiers,
        Arc::new(nss::SystemUsers::default()),
        Arc::new(config),
        audit.clone(),
    ));
    let served = runtime.block_on(faces(
        Faces {
            logins,
            accounts: Some(requests.clone()),
            admin: Some(requests),
        },
        args.bus.clone(),
        socket,
        audit.clone(),
    ));
    ended(served, &audit)
}

/// `--add-host`, `--remove-host`, `--hosts`.
enum HostsCommand<'a> {
    Add(&'a str, &'a str),
    Remove(&'a str),
    List,
}

/// The hosts a verifier answers (`rules::fleet_hosts`), changed or listed
/// beside the running daemons: every verifier reads the table at every
/// request.
fn fleet_hosts(config: &Config, command: HostsCommand) -> ExitCode {
    use twofactord::rules::fleet_hosts;
    let result = (|| -> Result<String, String> {
        if config.fleet.role != config::Role::Verifier {
            return Err(
                "this is not a fleet's verifier ([fleet] role = \"verifier\" in its \
                 configuration)"
                    .into(),
            );
        }
        let keys = keys_for(config)?;
        let store = store::Store::open_configured(config, keys, store::Mode::Existing)
            .map_err(|e| e.to_string())?;
        let now = clock::Clock::now(&clock::SystemClock);
        match command {
            HostsCommand::Add(name, cert) => {
                let fingerprint = fleet_tls::fingerprint_of_file(std::path::Path::new(cert))
                    .map_err(|e| e.to_string().replacen("[fleet] cert_file ", "", 1))?;
                let (n, f) = (name.to_string(), fingerprint.clone());
                block_on(store.run(move |c| fleet_hosts::add(c, &n, &f, now)))
                    .map_err(|e| e.to_string())?
                    .map_err(|e| format!("{name}: {e}"))?;
                Ok(format!(
                    "Host {name} added (certificate sha256 {fingerprint}). Every verifier \
                     takes its requests now."
                ))
            }
            HostsCommand::Remove(name) => {
                let n = name.to_string();
                if block_on(store.run(move |c| fleet_hosts::remove(c, &n)))
                    .map_err(|e| e.to_string())?
                {
                    Ok(format!(
                        "Host {name} removed. Every verifier refuses its next request."
                    ))
                } else {
                    Err(format!("no host {name} is registered"))
                }
            }
            HostsCommand::List => {
                let hosts = block_on(store.read(fleet_hosts::list)).map_err(|e| e.to_string())?;
                let mut out = String::from("HOST\tADDED\tCERTIFICATE SHA-256");
                for (name, fingerprint, added) in hosts {
                    out.push_str(&format!("\n{name}\t{added}\t{fingerprint}"));
                }
                Ok(out)
            }
        }
    })();
    match result {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twofactord: {e}");
            ExitCode::from(1)
        }
    }
}

/// Where the login socket comes from.
enum LoginSocket {
    None,
    /// Passed by systemd (twofactord.socket), which owns its file.
    Systemd(std::os::unix::net::UnixListener),
    /// Bound by the daemon, which removes its file at exit.
    Own(listen::Bound),
    /// The default path could not be bound: logins use the bus; said in
    /// the log once the daemon runs.
    Unavailable(String),
}

/// The login socket the command line and systemd ask for (see
/// `--login-socket`).
fn login_socket_for(
    args: &Args,
    systemd: Result<Option<std::os::unix::net::UnixListener>, listen::ListenError>,
) -> Result<LoginSocket, String> {
    let systemd = systemd.map_err(|e| format!("the socket systemd passed: {e}"))?;
    if let Some(listener) = systemd {
        return Ok(LoginSocket::Systemd(listener));
    }
    match &args.login_socket {
        Some(path) if path.as_os_str() == "none" => Ok(LoginSocket::None),
        Some(path) => listen::bind_own(path)
            .map(LoginSocket::Own)
            .map_err(|e| format!("cannot make the login socket: {e}")),
        None if args.bus.is_some() => Ok(LoginSocket::None),
        None => Ok(
            match listen::bind_own(std::path::Path::new(twofactord::args::DEFAULT_LOGIN_SOCKET)) {
                Ok(bound) => LoginSocket::Own(bound),
                Err(e) => LoginSocket::Unavailable(format!(
                    "cannot make the login socket: {e}; logins use the system bus"
                )),
            },
        ),
    }
}

/// Up to 8192 descriptors (within the hard limit): each connection to
/// the login socket holds one.
fn raise_descriptor_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    const WANTED: u64 = 8192;
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let target = WANTED.min(hard);
        if soft < target {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, target, hard);
        }
    }
}

/// The audit the command line asks for. Lines the syslog socket cannot
/// take go to stderr, unless the daemon detached without `--log-stderr`
/// (stderr is /dev/null then: they are counted as dropped); without
/// syslog, every line goes to stderr.
fn audit_for(args: &Args, detached: bool) -> Audit {
    Audit::start(
        Sinks {
            syslog: (!args.no_syslog).then(|| args.syslog_socket.clone()),
            copy_to_stderr: args.log_stderr || args.no_syslog,
            stderr_fallback: !detached || args.log_stderr,
        },
        Arc::new(clock::SystemClock),
    )
}

/// The key file, loaded, with a message for the administrator otherwise.
fn keys_for(config: &Config) -> Result<Arc<sealing::Keys>, String> {
    match sealing::Keys::load(&config.key_file) {
        Ok(k) => Ok(Arc::new(k)),
        Err(sealing::SealError::Io { path, source })
            if source.kind() == std::io::ErrorKind::NotFound =>
        {
            Err(format!(
                "the key file {} does not exist. Secrets in the database are sealed with \
                 it: restore it from its backup. On a new installation, run \
                 `twofactord --init` once.",
                path.display()
            ))
        }
        Err(e) => Err(format!("cannot use the key file: {e}")),
    }
}

/// `--init`: creates what a first installation needs.
fn init(config: &Config) -> ExitCode {
    if config.fleet.role == config::Role::Host {
        println!(
            "This machine is a host of a fleet ([fleet] role = \"host\"): it holds no key file \
             and no database; nothing to initialise."
        );
        return ExitCode::SUCCESS;
    }
    let (db, have_db) = match config.store.backend {
        config::Backend::Sqlite => {
            let path = config.state_dir.join(store::DB_FILE);
            (
                path.display().to_string(),
                std::fs::symlink_metadata(&path).is_ok(),
            )
        }
        // Created below unless it exists (then --init says so).
        config::Backend::Postgresql => (
            format!("the PostgreSQL database {}", config.store.dbname),
            false,
        ),
    };
    let have_key = std::fs::symlink_metadata(&config.key_file).is_ok();
    if have_db && have_key {
        eprintln!(
            "twofactord: {} and {} exist already; nothing to initialise",
            db,
            config.key_file.display()
        );
        return ExitCode::from(1);
    }
    let keys = if have_key {
        match keys_for(config) {
            Ok(k) => k,
            Err(e) => {
                eprintln!("twofactord: {e}");
                return ExitCode::from(1);
            }
        }
    } else {
        let made = sealing::Keys::generate().and_then(|k| {
            k.create_file(&config.key_file)?;
            Ok(k)
        });
        match made {
            Ok(k) => {
                println!(
                    "Created the key file {} (key {}). Back it up apart from the database.",
                    config.key_file.display(),
                    k.current_id()
                );
                Arc::new(k)
            }
            Err(e) => {
                eprintln!("twofactord: cannot create the key file: {e}");
                return ExitCode::from(1);
            }
        }
    };
    let mode = if have_db {
        store::Mode::Existing
    } else {
        store::Mode::Create
    };
    let opened = store::Store::open_configured(config, keys, mode);
    let checked = match &opened {
        Ok(store) => block_on(store.verify_sealed()),
        Err(_) => Ok(()),
    };
    match (opened, checked) {
        (Ok(_), Ok(())) => {
            if have_db {
                println!("Sealed the secrets of {db} with the new key.");
            } else {
                println!("Created {db}.");
            }
            ExitCode::SUCCESS
        }
        (Err(e), _) => {
            // Nothing was sealed with a key made just now: take it back, so
            // that a second --init after fixing the cause starts clean.
            if !have_key {
                let _ = std::fs::remove_file(&config.key_file);
            }
            eprintln!("twofactord: {e}");
            ExitCode::from(1)
        }
        (Ok(_), Err(e)) => {
            eprintln!("twofactord: {e}");
            ExitCode::from(1)
        }
    }
}

/// `--rotate-key`: a new key seals everything; the old one is dropped.
/// The key file first gets the new key in front of the old ones, so that
/// every value opens whatever happens next (a crash, a running daemon that
/// holds the state directory); only once everything is sealed again do the
/// old keys leave the file.
fn rotate_key(config: &Config) -> ExitCode {
    let current = match keys_for(config) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("twofactord: {e}");
            return ExitCode::from(1);
        }
    };
    let open = |keys| {
        store::Store::open_configured(config, keys, store::Mode::Existing).map_err(|e| match e {
            store::StoreError::Busy { .. } => {
                format!("{e}: stop twofactord first (it went on sealing with the old key)")
            }
            e => e.to_string(),
        })
    };
    let result = (|| -> Result<(String, usize), String> {
        // No daemon may use the store while its key changes (in a fleet,
        // the other hosts would go on sealing with a key the new key file
        // lacks): checked before the key file is touched, and again after.
        refuse_beside_daemons(&open(current)?)?;
        let rotation = sealing::rotate(&config.key_file).map_err(|e| e.to_string())?;
        let store = open(rotation.during.clone())?;
        refuse_beside_daemons(&store)?;
        let n = block_on(store.reseal()).map_err(|e| e.to_string())?;
        let id = rotation.finish().map_err(|e| e.to_string())?;
        Ok((id, n))
    })();
    match result {
        Ok((id, n)) => {
            println!(
                "Sealed {n} values with the new key {id}; the old key is no longer in {}. \
                 Back up the key file again.",
                config.key_file.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "twofactord: key rotation failed: {e}. The key file still holds every key \
                 the database needs; run --rotate-key again."
            );
            ExitCode::from(1)
        }
    }
}

/// `--copy-store-to FILE`: everything in this configuration's store into
/// the (new or empty) store FILE names, with this configuration's keys.
fn copy_store(config: &Config, target: &std::path::Path) -> ExitCode {
    let result = (|| -> Result<store::copy::Counts, String> {
        let keys = keys_for(config)?;
        let target_config = Config::load(target, true).map_err(|e| e.to_string())?;
        let from = store::Store::open_configured(config, keys.clone(), store::Mode::Existing)
            .map_err(|e| match e {
                store::StoreError::Busy { .. } => format!("{e}: stop twofactord first"),
                e => format!("the source store: {e}"),
            })?;
        refuse_beside_daemons(&from)?;
        let to = match store::Store::open_configured(
            &target_config,
            keys.clone(),
            store::Mode::Create,
        ) {
            Err(store::StoreError::Exists { .. }) => {
                store::Store::open_configured(&target_config, keys, store::Mode::Existing)
            }
            other => other,
        }
        .map_err(|e| format!("the target store: {e}"))?;
        refuse_beside_daemons(&to)?;
        block_on(store::copy::copy(&from, &to)).map_err(|e| e.to_string())
    })();
    match result {
        Ok(counts) => {
            let total: u64 = counts.iter().map(|(_, n)| n).sum();
            println!(
                "Copied {total} rows into the store of {}:",
                target.display()
            );
            for (table, n) in counts {
                println!("  {table}: {n}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("twofactord: copy failed: {e}");
            ExitCode::from(1)
        }
    }
}

/// A shared store in use by running daemons: an error saying to stop
/// them (a rotation beside them would leave values sealed with a key the
/// new key file no longer has; a copy would miss their changes).
fn refuse_beside_daemons(store: &store::Store) -> Result<(), String> {
    match block_on(store.other_daemons()) {
        Ok(0) => Ok(()),
        Ok(n) => Err(format!(
            "{n} twofactord connection(s) are using the shared database: stop twofactord on \
             every host first"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Runs a store job to its end outside the daemon's runtime.
fn block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    match tokio::runtime::Builder::new_current_thread().build() {
        Ok(rt) => rt.block_on(f),
        Err(e) => {
            eprintln!("twofactord: cannot start: {e}");
            std::process::exit(1)
        }
    }
}

async fn serve(
    config: Config,
    store: store::Store,
    mailer: Arc<dyn smtp::Mailer>,
    (bus, socket, fleet): (Option<String>, LoginSocket, Option<HostsListener>),
    audit: Arc<Audit>,
) -> Result<(), String> {
    // A shared database may be down when a host starts: the daemon serves
    // anyway and refuses logins until the database answers (every store
    // job tries to connect again), and says so now.
    if config.store.backend == config::Backend::Postgresql {
        if let Err(e) = store.probe().await {
            audit.log(Event::Error {
                context: "database",
                error: &format!("{e}; logins are refused until the database can be used"),
            });
        }
    }
    let reauth = Arc::new(pam_reauth::PamReauth {
        service: config.reauth_service.clone(),
    });
    let handles = Handles::new(
        config,
        store,
        Outside {
            clock: Arc::new(clock::SystemClock),
            rng: Arc::new(random::OsRandom),
            users: Arc::new(nss::SystemUsers::default()),
            reauth,
            mailer,
            audit: audit.clone(),
        },
    );
    // The decoy hash for attempts that match no code, made now so that no
    // attempt pays for it.
    {
        let hashing = handles.hashing.clone();
        let _ = tokio::task::spawn_blocking(move || hashing.decoy_hash().is_some()).await;
    }
    let logins = Arc::new(login::Logins::new(&handles));
    let accounts = Arc::new(account::Accounts::new(&handles));
    let admin = Arc::new(admin::Admin::new(&handles));
    // A fleet's verifier answers its hosts too, with the same logins.
    let hosts_task = match fleet {
        Some((listener, tls)) => {
            let address = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            let task = verifier::serve(
                listener,
                tls,
                Arc::new(verifier::Verifier::new(
                    &handles,
                    logins.clone(),
                    accounts.clone(),
                    admin.clone(),
                )),
            )?;
            audit.log(Event::FleetVerifier { address: &address });
            Some(task)
        }
        None => None,
    };
    let served = faces(
        Faces {
            logins,
            accounts: Some(accounts),
            admin: Some(admin),
        },
        bus,
        socket,
        audit,
    )
    .await;
    if let Some(task) = hosts_task {
        task.abort();
    }
    served
}

/// A verifier's listener for its hosts, and its TLS.
type HostsListener = (std::net::TcpListener, Arc<rustls::ServerConfig>);

/// The faces a daemon serves: `Login1` always (on the bus and the login
/// socket); `Account1` and `Admin1`, decided here or at a verifier.
struct Faces {
    logins: Arc<dyn login::LoginSteps>,
    accounts: Option<Arc<dyn AccountRequests>>,
    admin: Option<Arc<dyn AdminRequests>>,
}

/// Serves `faces` until SIGTERM or SIGINT.
async fn faces(
    faces: Faces,
    bus: Option<String>,
    socket: LoginSocket,
    audit: Arc<Audit>,
) -> Result<(), String> {
    let Faces {
        logins,
        accounts,
        admin,
    } = faces;
    let builder = match &bus {
        Some(address) => zbus::connection::Builder::address(address.as_str()),
        None => zbus::connection::Builder::system(),
    }
    .map_err(|e| format!("cannot connect to the bus: {e}"))?;
    // One table of callers for the three interfaces: a connection's uid is
    // asked of the bus once.
    let callers = Arc::new(bus::Callers::default());
    let set_up = |e: zbus::Error| format!("cannot set up the bus connection: {e}");
    let mut builder = builder
        .serve_at(
            OBJECT_PATH,
            bus::LoginInterface {
                logins: logins.clone(),
                callers: callers.clone(),
            },
        )
        .map_err(set_up)?;
    if let Some(accounts) = accounts {
        builder = builder
            .serve_at(
                OBJECT_PATH,
                bus::AccountInterface {
                    accounts,
                    callers: callers.clone(),
                },
            )
            .map_err(set_up)?;
    }
    if let Some(admin) = admin {
        builder = builder
            .serve_at(
                OBJECT_PATH,
                bus::AdminInterface {
                    admin,
                    callers: callers.clone(),
                },
            )
            .map_err(set_up)?;
    }
    let _conn = builder
        .build()
        .await
        .map_err(|e| format!("cannot connect to the bus: {e}"))?;
    // The name, once the interfaces are served: never taken from another
    // daemon, never given up to one, never waited for in a queue (zbus's
    // defaults allow all three). A second twofactord on the same bus
    // stops here instead of taking the first one's logins.
    let taken = || {
        format!(
            "{BUS_NAME} is owned by another process on this bus (another twofactord?); \
             not starting"
        )
    };
    let owned = _conn
        .request_name_with_flags(BUS_NAME, zbus::fdo::RequestNameFlags::DoNotQueue.into())
        .await
        .map_err(|e| match e {
            zbus::Error::NameTaken => taken(),
            e => format!("cannot own {BUS_NAME} on the bus: {e}"),
        })?;
    if !matches!(
        owned,
        zbus::fdo::RequestNameReply::PrimaryOwner | zbus::fdo::RequestNameReply::AlreadyOwner
    ) {
        return Err(taken());
    }
    audit.log(Event::Start {
        version: env!("CARGO_PKG_VERSION"),
    });

    let departures = watch_departures(&_conn, logins.clone(), callers).await?;
    // The login socket, once the bus name is owned: a login that comes
    // through either finds the same daemon ready.
    let (listener, from, _bound) = match socket {
        LoginSocket::None => (None, "", None),
        LoginSocket::Systemd(l) => (Some(l), "systemd", None),
        LoginSocket::Own(b) => match b.listener.try_clone() {
            Ok(l) => (Some(l), "daemon", Some(b)),
            Err(e) => return Err(format!("cannot serve the login socket: {e}")),
        },
        LoginSocket::Unavailable(e) => {
            audit.log(Event::Error {
                context: "login-socket",
                error: &e,
            });
            (None, "", None)
        }
    };
    let socket_task = match listener {
        Some(listener) => {
            let path = listener
                .local_addr()
                .ok()
                .and_then(|a| a.as_pathname().map(|p| p.display().to_string()))
                .unwrap_or_default();
            let task = login_socket::serve(listener, logins.clone(), audit.clone())?;
            audit.log(Event::LoginSocket { path: &path, from });
            Some(task)
        }
        None => None,
    };
    let expiry = {
        let logins = logins.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                logins.expire().await;
            }
        })
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(|e| format!("cannot watch signals: {e}"))?;
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    expiry.abort();
    departures.abort();
    if let Some(task) = socket_task {
        task.abort();
    }
    Ok(())
}

/// Drops the logins and the cached uid of every bus connection that leaves
/// the bus (the bus
/// announces it with `NameOwnerChanged(name, old, "")` for its unique
/// name, which the bus never gives out again).
async fn watch_departures(
    conn: &zbus::Connection,
    logins: Arc<dyn login::LoginSteps>,
    callers: Arc<bus::Callers>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    use futures_util::StreamExt;
    let proxy = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| format!("cannot watch the bus: {e}"))?;
    // Only departures (new owner ""): the bus then sends this daemon one
    // signal per connection that leaves, not also one per connection that
    // comes (every login's module connects anew).
    let mut changes = proxy
        .receive_name_owner_changed_with_args(&[(2, "")])
        .await
        .map_err(|e| format!("cannot watch the bus: {e}"))?;
    Ok(tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            let Ok(args) = change.args() else {
                continue;
            };
            if args.new_owner().is_none() && args.name().starts_with(':') {
                callers.forget(args.name());
                logins.connection_closed(args.name()).await;
            }
        }
    }))
}

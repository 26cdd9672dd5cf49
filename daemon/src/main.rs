//! twofactord: the root daemon that owns all two-factor state and makes
//! every decision. See the README and docs/ for how it is run.

use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use twofactor_proto::names::{BUS_NAME, OBJECT_PATH};
use twofactord::audit::{Audit, Event};
use twofactord::config::{self, Config};
use twofactord::{account, admin, bus, clock, core, login, random, reauth, store, users};

/// The twofactor daemon: verifies second factors for pam_twofactor.so and
/// serves twofactorctl, over the system D-Bus.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// Stay in the foreground (systemd, containers, tests). Without it the
    /// daemon detaches once it is ready to start.
    #[arg(long)]
    foreground: bool,
    /// Configuration file.
    #[arg(long, value_name = "FILE", default_value = config::DEFAULT_PATH)]
    config: PathBuf,
    /// Check the configuration file and exit (0: valid).
    #[arg(long)]
    check_config: bool,
    /// Connect to this bus address instead of the system bus (tests, demo).
    #[arg(long, value_name = "ADDRESS")]
    bus: Option<String>,
    /// Also write audit and diagnostic lines to stderr.
    #[arg(long)]
    log_stderr: bool,
    /// Do not write to syslog (tests that read stderr instead).
    #[arg(long, hide = true)]
    no_syslog: bool,
}

fn main() -> ExitCode {
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
        println!("{}: configuration is valid", args.config.display());
        return ExitCode::SUCCESS;
    }
    if !args.foreground {
        // Detach before any thread exists (the store writer, the runtime).
        if let Err(e) = nix::unistd::daemon(false, args.log_stderr) {
            eprintln!("twofactord: cannot detach: {e}");
            return ExitCode::from(1);
        }
    }
    let store = match store::Store::open(&config.state_dir) {
        Ok(s) => s,
        Err(e) => {
            let audit = Audit::new(!args.no_syslog, true);
            audit.log(Event::Error {
                context: "database",
                error: &e.to_string(),
            });
            eprintln!("twofactord: cannot open the database: {e}");
            return ExitCode::from(1);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("twofactord: cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let audit = Arc::new(Audit::new(!args.no_syslog, args.log_stderr));
    match runtime.block_on(serve(config, store, args.bus, audit.clone())) {
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

async fn serve(
    config: Config,
    store: store::Store,
    bus: Option<String>,
    audit: Arc<Audit>,
) -> Result<(), String> {
    let reauth = Arc::new(reauth::PamReauth {
        service: config.reauth_service.clone(),
    });
    let core = Arc::new(core::Core::new(
        config,
        store,
        Arc::new(clock::SystemClock),
        Arc::new(random::OsRandom),
        Arc::new(users::SystemUsers),
        reauth,
        audit.clone(),
    ));
    let logins = Arc::new(login::Logins::new(core.clone()));
    let accounts = Arc::new(account::Accounts::new(core.clone()));
    let admin = Arc::new(admin::Admin::new(core.clone()));

    let builder = match &bus {
        Some(address) => zbus::connection::Builder::address(address.as_str()),
        None => zbus::connection::Builder::system(),
    }
    .map_err(|e| format!("cannot connect to the bus: {e}"))?;
    let _conn = builder
        .serve_at(
            OBJECT_PATH,
            bus::LoginInterface {
                logins: logins.clone(),
            },
        )
        .and_then(|b| b.serve_at(OBJECT_PATH, bus::AccountInterface { accounts }))
        .and_then(|b| b.serve_at(OBJECT_PATH, bus::AdminInterface { admin }))
        .and_then(|b| b.name(BUS_NAME))
        .map_err(|e| format!("cannot set up the bus connection: {e}"))?
        .build()
        .await
        .map_err(|e| format!("cannot connect to the bus or own {BUS_NAME}: {e}"))?;
    audit.log(Event::Start {
        version: env!("CARGO_PKG_VERSION"),
    });

    let departures = watch_departures(&_conn, logins.clone()).await?;
    let expiry = {
        let logins = logins.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(30));
            loop {
                tick.tick().await;
                logins.expire();
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
    Ok(())
}

/// Drops the logins of every bus connection that leaves the bus (the bus
/// announces it with `NameOwnerChanged(name, old, "")` for its unique
/// name, which the bus never gives out again).
async fn watch_departures(
    conn: &zbus::Connection,
    logins: Arc<login::Logins>,
) -> Result<tokio::task::JoinHandle<()>, String> {
    use futures_util::StreamExt;
    let proxy = zbus::fdo::DBusProxy::new(conn)
        .await
        .map_err(|e| format!("cannot watch the bus: {e}"))?;
    let mut changes = proxy
        .receive_name_owner_changed()
        .await
        .map_err(|e| format!("cannot watch the bus: {e}"))?;
    Ok(tokio::spawn(async move {
        while let Some(change) = changes.next().await {
            let Ok(args) = change.args() else {
                continue;
            };
            if args.new_owner().is_none() && args.name().starts_with(':') {
                logins.connection_closed(args.name()).await;
            }
        }
    }))
}

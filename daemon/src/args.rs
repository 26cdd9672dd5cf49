//! twofactord's command line. Self-contained (clap only), so that the man
//! page generator (`tools/gendocs`) reads the same definitions.

use clap::Parser;
use std::path::PathBuf;

/// The login socket when neither `--login-socket` nor `--bus` is given
/// (the same as `twofactor_proto::names::LOGIN_SOCKET_PATH`; a unit test
/// in `adapters::listen` keeps them equal).
pub const DEFAULT_LOGIN_SOCKET: &str = "/run/twofactor/login";

/// The configuration file read when `--config` is not given (the same as
/// `config::DEFAULT_PATH`; a unit test there keeps them equal).
pub const DEFAULT_CONFIG: &str = "/etc/twofactor/twofactord.toml";

/// The syslog socket when `--syslog-socket` is not given (the same as
/// `adapters::syslog::DEV_LOG`; a unit test there keeps them equal).
pub const DEFAULT_SYSLOG_SOCKET: &str = "/dev/log";

/// What `twofactord --help` and twofactord(8) say about the daemon.
const LONG_ABOUT: &str = "twofactord owns every two-factor secret and decision of the machine: \
pam_twofactor.so asks it over the system D-Bus (org.twofactor.Daemon1) whether a login's second \
factor is right (or peer to peer on its own socket, /run/twofactor/login, which the module \
tries first), and twofactorctl enrols and administers through it. It runs as root, usually \
started by systemd (twofactord.service) or by D-Bus activation, reads \
/etc/twofactor/twofactord.toml (twofactord.toml(5)), keeps its SQLite database in \
/var/lib/twofactor and seals every secret in it with the key in /etc/twofactor/twofactord.key.

Run `twofactord --init` once at installation: it creates the key file and the database. The \
daemon never creates them itself: a missing, deleted or emptied database, or a missing key \
file, stops it with a message, because starting afresh would let every enrolled user in \
without a code. Back up the database and the key file apart; `twofactord --rotate-key` (daemon \
stopped) seals everything with a new key.

A fleet shares one PostgreSQL database ([store] backend = \"postgresql\"): run `--init` on one \
host, copy its key file to the others; `twofactord --copy-store-to FILE` moves an existing \
store into the one FILE names. A fleet without shared secrets ([fleet] role = \"verifier\" on \
the machines that hold the key file and the database, role = \"host\" on the others) keeps both \
off the login hosts: a host asks a verifier over HTTPS with mutual TLS, and `--add-host` / \
`--remove-host` at a verifier say which hosts it answers.

Audit lines go to syslog, facility authpriv, ident twofactord, and to stderr (the journal under \
systemd) while the syslog socket cannot take them. See /usr/share/doc/twofactor.";

/// The twofactor daemon: verifies second factors for pam_twofactor.so and
/// serves twofactorctl, over the system D-Bus.
#[derive(Parser, Debug)]
#[command(
    name = "twofactord",
    version,
    about = "The twofactor daemon: verifies second factors for pam_twofactor.so and serves \
             twofactorctl, over the system D-Bus",
    long_about = LONG_ABOUT
)]
pub struct Args {
    /// Stay in the foreground (systemd, containers, tests). Without it the
    /// daemon detaches once it is ready to start.
    #[arg(long)]
    pub foreground: bool,
    /// Configuration file.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,
    /// Check the configuration file and exit (0: valid).
    #[arg(long)]
    pub check_config: bool,
    /// Connect to this bus address instead of the system bus (tests, demo).
    #[arg(long, value_name = "ADDRESS")]
    pub bus: Option<String>,
    /// Serve org.twofactor.Login1 peer to peer on this Unix socket too
    /// (pam_twofactor.so connects to it first, and to the bus when it is
    /// missing); `none` for no socket. Default: the socket systemd passes
    /// (twofactord.socket), else /run/twofactor/login, made by the daemon
    /// (its directory root's, mode 0755; the socket mode 0666); with
    /// --bus, none. Whatever this says, a socket systemd passes is served.
    #[arg(long, value_name = "PATH|none")]
    pub login_socket: Option<PathBuf>,
    /// Also write audit and diagnostic lines to stderr.
    #[arg(long)]
    pub log_stderr: bool,
    /// The syslog socket audit lines are sent to. While it cannot take
    /// them (missing, refusing, too slow), they go to stderr instead (the
    /// journal under systemd) as `<N>EVENT key=value ...`, N their syslog
    /// level; one audit-syslog-unreachable line says so when that begins,
    /// and one audit-syslog-restored line, with how many lines went to
    /// stderr and how many were lost, when the socket takes lines again
    /// (tried again after 1 s, then at doubling intervals up to 1 min, as
    /// lines come). Detached without --log-stderr, stderr is /dev/null:
    /// such lines are then lost, and counted.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SYSLOG_SOCKET)]
    pub syslog_socket: PathBuf,
    /// Do not write to syslog (tests that read stderr instead): audit
    /// lines go to stderr.
    #[arg(long, hide = true, conflicts_with = "syslog_socket")]
    pub no_syslog: bool,
    /// First installation: create the key file and the database (each only
    /// if missing; refuses when both exist), then exit.
    #[arg(long, conflicts_with_all = ["check_config", "rotate_key"])]
    pub init: bool,
    /// Seal every secret with a new key, then drop the old key from the key
    /// file; run while the daemon is stopped (it refuses otherwise).
    #[arg(long, conflicts_with = "check_config")]
    pub rotate_key: bool,
    /// Copy everything in this configuration's store into the store that
    /// the configuration FILE names (SQLite to PostgreSQL when a machine
    /// joins a fleet, or back), then exit. The target must be new or empty;
    /// both use this configuration's key file. Stop the daemons first.
    #[arg(
        long,
        value_name = "FILE",
        conflicts_with_all = ["check_config", "init", "rotate_key"]
    )]
    pub copy_store_to: Option<PathBuf>,
    /// At a fleet's verifier ([fleet] role = "verifier"): take requests
    /// from the host NAME, known by the certificate in CERT (PEM, signed by
    /// the fleet's CA); its fingerprint is stored, shared by every
    /// verifier. Runs beside the daemons, then exits.
    #[arg(long, num_args = 2, value_names = ["NAME", "CERT"], conflicts_with_all = ["check_config", "init", "rotate_key", "copy_store_to"])]
    pub add_host: Option<Vec<String>>,
    /// At a fleet's verifier: revoke the host NAME. Every verifier refuses
    /// its next request; runs beside the daemons, then exits.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["check_config", "init", "rotate_key", "copy_store_to", "add_host"])]
    pub remove_host: Option<String>,
    /// At a fleet's verifier: list the hosts it takes requests from, then
    /// exit.
    #[arg(long, conflicts_with_all = ["check_config", "init", "rotate_key", "copy_store_to", "add_host", "remove_host"])]
    pub hosts: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_arguments_are_consistent() {
        Args::command().debug_assert();
    }
}

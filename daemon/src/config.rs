//! `/etc/twofactor/twofactord.toml`: parsing and validation.
//!
//! Unknown keys are errors, and every error names the file, the line and the
//! key, so that a typo never silently turns a security setting off.

use serde::Deserialize;
use std::path::{Path, PathBuf};
use twofactor_proto::key::UserVerification;

pub const DEFAULT_PATH: &str = "/etc/twofactor/twofactord.toml";

/// `protected_groups` when the file does not write it: root's own group
/// and the groups that give root (or its disks, logs or password hashes)
/// on Debian, Ubuntu, Fedora, Arch and friends. A group the host does not
/// have matches nobody.
pub const DEFAULT_PROTECTED_GROUPS: &[&str] = &[
    "sudo", "wheel", "admin", "root", "adm", "docker", "lxd", "libvirt", "disk", "shadow",
];

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding the SQLite database (0700; created by
    /// `twofactord --init`).
    pub state_dir: PathBuf,
    /// The key that seals secrets in the database (0600, root only; created
    /// by `twofactord --init`). Kept apart from the database so that a copy
    /// of the database alone is useless.
    pub key_file: PathBuf,
    /// Issuer shown in the authenticator app; empty means the host name.
    pub issuer: String,
    /// PAM service used to check an account password again.
    pub reauth_service: String,
    /// Members of this group may use the admin commands (after their own
    /// password, for every change). Empty: only root.
    pub admin_group: String,
    /// Members of these groups (primary or supplementary), like root and
    /// the members of `admin_group`, are reset, unlocked, imported for and
    /// cleared of trusted devices by root only (rules::protected). An
    /// empty list, written on purpose, protects only root and
    /// administrators.
    pub protected_groups: Vec<String>,
    pub totp: TotpConfig,
    pub limits: LimitsConfig,
    pub login: LoginConfig,
    pub policy: PolicyConfig,
    pub email: EmailConfig,
    pub devices: DevicesConfig,
    pub keys: KeysConfig,
    pub store: StoreConfig,
    pub fleet: FleetConfig,
}

/// Where the daemon keeps its state: the SQLite file in `state_dir` (one
/// machine), or a PostgreSQL database the daemons of many hosts share.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    pub backend: Backend,
    /// PostgreSQL server: a host name, an IP address, or the directory of
    /// its Unix socket (starting with `/`).
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub user: String,
    /// File holding the database password (root-only, first line); never
    /// the password itself in this file. Empty: no password (e.g. peer
    /// authentication over the Unix socket).
    pub password_file: PathBuf,
    /// `verify-full` (TLS; the server's certificate and name checked) or
    /// `disable` (only to a server on this machine).
    pub sslmode: SslMode,
    /// CA certificate(s) (PEM) the server's certificate is checked
    /// against; empty: the system's CA store.
    pub ca_file: PathBuf,
    /// Longest wait for a connection.
    pub connect_timeout_seconds: u32,
    /// Longest time a statement, or a wait for a row lock, may take.
    pub statement_timeout_seconds: u32,
}

/// A fleet without shared secrets (docs/fleet.md): `verifier`s hold the
/// key file and the database; a `host` holds neither and asks a verifier
/// over HTTPS with mutual TLS. `role = "none"` (the default): this machine decides alone
/// (its own store, SQLite or a shared PostgreSQL).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct FleetConfig {
    pub role: Role,
    /// A host's verifiers, tried in this order (`https://NAME[:PORT]`).
    pub verifiers: Vec<String>,
    /// A verifier's address to listen on (`ADDRESS:PORT`).
    pub listen: String,
    /// The fleet's CA (PEM): what a verifier's certificate (for a host) or
    /// a host's certificate (for a verifier) must be signed by.
    pub ca_file: PathBuf,
    /// This machine's certificate (PEM, chain first to last).
    pub cert_file: PathBuf,
    /// Its private key (PEM, root's, mode 0600 or 0400).
    pub key_file: PathBuf,
    /// A host's longest wait for one answer of a verifier.
    pub timeout_seconds: u32,
    /// At a verifier: the registered hosts from which `Admin1` calls are
    /// taken (`"*"`: every host). There, the host's root acts as root of
    /// the fleet, and a member of `admin_group` (by the verifier's own
    /// name service) as an administrator whose password that host checked.
    /// Empty (the default): administration from a verifier only.
    pub admin_hosts: Vec<String>,
}

impl FleetConfig {
    /// Whether `Admin1` calls are taken from `host`.
    pub fn admin_from(&self, host: &str) -> bool {
        self.admin_hosts.iter().any(|h| h == "*" || h == host)
    }
}

impl Default for FleetConfig {
    fn default() -> Self {
        FleetConfig {
            role: Role::None,
            verifiers: Vec::new(),
            listen: String::new(),
            ca_file: PathBuf::from("/etc/twofactor/fleet-ca.pem"),
            cert_file: PathBuf::from("/etc/twofactor/fleet-cert.pem"),
            key_file: PathBuf::from("/etc/twofactor/fleet-key.pem"),
            timeout_seconds: 5,
            admin_hosts: Vec::new(),
        }
    }
}

/// What this machine is in a fleet.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Not in a verifier fleet: decides alone.
    #[default]
    None,
    /// Asks a verifier; holds no key file and no database.
    Host,
    /// Holds the key file and the database; answers hosts.
    Verifier,
}

/// The store's engine.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    #[default]
    Sqlite,
    Postgresql,
}

/// How the connection to PostgreSQL is protected.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    #[default]
    VerifyFull,
    Disable,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            backend: Backend::Sqlite,
            host: "localhost".into(),
            port: 5432,
            dbname: "twofactor".into(),
            user: "twofactor".into(),
            password_file: PathBuf::new(),
            sslmode: SslMode::VerifyFull,
            ca_file: PathBuf::new(),
            connect_timeout_seconds: 3,
            statement_timeout_seconds: 5,
        }
    }
}

/// Trusted devices ("don't ask again on this device").
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DevicesConfig {
    /// Offer trust after a right app or email code, on logins that present
    /// a device.
    pub enabled: bool,
    /// How long trust lasts, in days (at most 30; never extended by use).
    pub days: u32,
    /// PAM services that are sshd: only their `SSH_AUTH_INFO_0` is read.
    pub ssh_services: Vec<String>,
    /// Bind trust to the client address as well as the key.
    pub bind_address: bool,
    /// Trust a bare client address when no key was proved (password-only
    /// SSH). Weak: everyone behind the same NAT shares it. Off by default.
    pub address_only: bool,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            enabled: true,
            days: 30,
            ssh_services: vec!["sshd".into()],
            bind_address: false,
            address_only: false,
        }
    }
}

/// Security keys, two ways:
/// - FIDO2 keys touched at a local login (console, `su`, `sudo`, a screen
///   locker): the module runs the key helper, the daemon verifies
///   (`rules/security_keys`);
/// - OpenSSH security-key public keys (`sk-ssh-ed25519@openssh.com`,
///   `sk-ecdsa-sha2-nistp256@openssh.com`) registered as a method, counted
///   as the second factor of an SSH login that proved one
///   (`SSH_AUTH_INFO_0`, read as trusted devices read it: from root's
///   logins of `[devices] ssh_services`), and only while sshd requires a
///   touch for every key.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct KeysConfig {
    /// Offer FIDO2 security keys at local logins (no `PAM_RHOST`).
    pub local: bool,
    /// The relying party of the credentials; empty: `twofactor:` and the
    /// host name. A fleet sets one name for all its hosts.
    pub rp_id: String,
    /// `discouraged`, `preferred` or `required` (a PIN or a fingerprint
    /// on the key; with `required` a key without one cannot be enrolled).
    pub user_verification: String,
    /// Offer security-key SSH keys as a method.
    pub ssh: bool,
    /// The sshd whose effective configuration (`sshd -T`) must say
    /// `pubkeyauthoptions touch-required` for the login's user and address.
    pub sshd: PathBuf,
    /// Its configuration file; empty: sshd's own default
    /// (`/etc/ssh/sshd_config`).
    pub sshd_config: PathBuf,
}

impl Default for KeysConfig {
    fn default() -> Self {
        KeysConfig {
            local: true,
            rp_id: String::new(),
            user_verification: "preferred".into(),
            ssh: true,
            sshd: PathBuf::from("/usr/sbin/sshd"),
            sshd_config: PathBuf::new(),
        }
    }
}

/// Mail: email codes as a second-factor method, security notices, and the
/// SMTP relay both are sent through. With both off (the default) the
/// daemon sends no mail and opens no network connection.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct EmailConfig {
    /// Offer codes sent by email as a method (NIST SP 800-63B rev 4 does
    /// not accept email as a second factor: an administrator's choice).
    pub codes: bool,
    /// Tell users by email when their 2FA changes (a reset, a method added
    /// or removed, new backup codes).
    pub notices: bool,
    /// SMTP relay host name or address.
    pub relay: String,
    pub port: u16,
    /// `none` (plain SMTP: only to a relay on this machine), `starttls` or
    /// `tls` (implicit TLS), both with certificate checks.
    pub security: SmtpSecurity,
    /// SMTP user name; empty: no authentication.
    pub username: String,
    /// File holding the SMTP password (root-only); never the password
    /// itself in this file.
    pub password_file: PathBuf,
    /// Extra CA certificate (PEM) trusted for the relay; empty: the
    /// system's CA store only.
    pub ca_file: PathBuf,
    /// Sender address; empty: `twofactor@HOSTNAME`.
    pub from: String,
    /// Longest time one delivery may take.
    pub timeout_seconds: u32,
    /// How long an email code stays valid, in minutes (at most 15).
    pub code_minutes: u32,
    /// Codes sent to one account per hour, at most.
    pub max_sends_per_hour: u32,
    /// Subject of the code mail; `{host}` is replaced.
    pub subject: String,
    /// Body of the code mail; `{code}`, `{host}`, `{service}`, `{minutes}`
    /// are replaced.
    pub body: String,
    /// Notices to a user without a confirmed address go to
    /// `USER@mailbox_domain` (the local mailbox, as cron's mail); empty:
    /// such users get no notice.
    pub mailbox_domain: String,
}

/// How the connection to the SMTP relay is protected.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    #[default]
    None,
    Starttls,
    Tls,
}

impl EmailConfig {
    /// Whether any mail is sent at all.
    pub fn in_use(&self) -> bool {
        self.codes || self.notices
    }
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            codes: false,
            notices: false,
            relay: "localhost".into(),
            port: 25,
            security: SmtpSecurity::None,
            username: String::new(),
            password_file: PathBuf::new(),
            ca_file: PathBuf::new(),
            from: String::new(),
            timeout_seconds: 5,
            code_minutes: 10,
            max_sends_per_hour: 5,
            subject: "Your verification code for {host}".into(),
            body: "Your verification code for {service} on {host} is {code}.\n\n\
                   It is valid for {minutes} minutes and can be used once. If you \
                   did not try to log in, someone who knows your password may be \
                   trying to: change your password.\n"
                .into(),
            mailbox_domain: "localhost".into(),
        }
    }
}

/// The initial mandatory policy: used only while the database holds no
/// policy yet. Once an administrator sets the policy with `twofactorctl
/// admin policy`, the database wins and these keys are ignored.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub mandatory: bool,
    pub groups: Vec<String>,
    /// `YYYY-MM-DD`, or empty.
    pub from: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct TotpConfig {
    /// Accepted clock skew in 30-second steps, each side.
    pub skew_steps: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Failures (wrong codes, wrong passwords) from one source (a remote
    /// host, or a local terminal) before attempts from that source must
    /// wait.
    pub max_failures: u32,
    /// First wait after `max_failures`; doubles with each further failure.
    pub lockout_seconds: u32,
    /// Longest wait.
    pub max_lockout_seconds: u32,
    /// Consecutive failures of an account from all sources together before
    /// every source must wait `max_lockout_seconds` (NIST SP 800-63B: at
    /// most 100).
    pub account_max_failures: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct LoginConfig {
    /// A login that is not answered within this time is forgotten.
    pub session_timeout_seconds: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            state_dir: PathBuf::from("/var/lib/twofactor"),
            key_file: PathBuf::from("/etc/twofactor/twofactord.key"),
            issuer: String::new(),
            reauth_service: "twofactor-reauth".into(),
            admin_group: String::new(),
            protected_groups: DEFAULT_PROTECTED_GROUPS
                .iter()
                .map(|g| g.to_string())
                .collect(),
            totp: TotpConfig::default(),
            limits: LimitsConfig::default(),
            login: LoginConfig::default(),
            policy: PolicyConfig::default(),
            email: EmailConfig::default(),
            devices: DevicesConfig::default(),
            keys: KeysConfig::default(),
            store: StoreConfig::default(),
            fleet: FleetConfig::default(),
        }
    }
}

impl Default for TotpConfig {
    fn default() -> Self {
        TotpConfig { skew_steps: 1 }
    }
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_failures: 5,
            lockout_seconds: 60,
            max_lockout_seconds: 3600,
            account_max_failures: 100,
        }
    }
}

impl Default for LoginConfig {
    fn default() -> Self {
        LoginConfig {
            session_timeout_seconds: 120,
        }
    }
}

/// A configuration error, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}: {message}")]
    Parse {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{path}:{line}: key `{key}`: {message}")]
    Invalid {
        path: String,
        line: usize,
        key: String,
        message: String,
    },
}

impl Config {
    /// Reads and validates a config file. A missing file at the default path
    /// means the defaults; a missing file named explicitly is an error.
    pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, &shown),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok(Config::default())
            }
            Err(source) => Err(ConfigError::Read {
                path: shown,
                source,
            }),
        }
    }

    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(0);
            let message = e.message().trim().to_string();
            match key_at_line(text, line) {
                // Unknown keys name themselves; type errors do not.
                Some(key)
                    if !message
                        .contains(&format!("`{}`", key.rsplit('.').next().unwrap_or(""))) =>
                {
                    ConfigError::Invalid {
                        path: path.to_string(),
                        line,
                        key,
                        message,
                    }
                }
                _ => ConfigError::Parse {
                    path: path.to_string(),
                    line,
                    message,
                },
            }
        })?;
        config.validate(text, path)?;
        Ok(config)
    }

    fn validate(&self, text: &str, path: &str) -> Result<(), ConfigError> {
        let invalid = |section: &str, key: &str, message: String| ConfigError::Invalid {
            path: path.to_string(),
            line: line_of_key(text, section, key),
            key: if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            },
            message,
        };
        if !self.key_file.is_absolute() {
            return Err(invalid("", "key_file", "must be an absolute path".into()));
        }
        if self.key_file.starts_with(&self.state_dir) {
            return Err(invalid(
                "",
                "key_file",
                "must not be inside state_dir: a backup of the database must not carry its key"
                    .into(),
            ));
        }
        if !self.state_dir.is_absolute() {
            return Err(invalid("", "state_dir", "must be an absolute path".into()));
        }
        if self.issuer.contains(':') || self.issuer.chars().any(char::is_control) {
            return Err(invalid(
                "",
                "issuer",
                "must not contain ':' or control characters".into(),
            ));
        }
        if !valid_service_name(&self.reauth_service) {
            return Err(invalid(
                "",
                "reauth_service",
                "must be a PAM service name (letters, digits, - _ .)".into(),
            ));
        }
        if !self.admin_group.is_empty() && !twofactor_proto::group::is_valid_name(&self.admin_group)
        {
            return Err(invalid(
                "",
                "admin_group",
                "is not a valid group name".into(),
            ));
        }
        for (section, key, groups) in [
            ("", "protected_groups", &self.protected_groups),
            ("policy", "groups", &self.policy.groups),
        ] {
            if let Some(message) = group_list_error(groups) {
                return Err(invalid(section, key, message));
            }
        }
        if !self.policy.from.is_empty()
            && !twofactor_proto::date::is_calendar_date(&self.policy.from)
        {
            return Err(invalid(
                "policy",
                "from",
                "must be a date written YYYY-MM-DD".into(),
            ));
        }
        if self.totp.skew_steps > 2 {
            return Err(invalid(
                "totp",
                "skew_steps",
                format!("{} is out of range 0..=2", self.totp.skew_steps),
            ));
        }
        let l = &self.limits;
        if !(1..=100).contains(&l.max_failures) {
            return Err(invalid(
                "limits",
                "max_failures",
                format!(
                    "{} is out of range 1..=100 (failures are always limited)",
                    l.max_failures
                ),
            ));
        }
        if !(1..=86_400).contains(&l.lockout_seconds) {
            return Err(invalid(
                "limits",
                "lockout_seconds",
                format!("{} is out of range 1..=86400", l.lockout_seconds),
            ));
        }
        if l.max_lockout_seconds < l.lockout_seconds || l.max_lockout_seconds > 7 * 86_400 {
            return Err(invalid(
                "limits",
                "max_lockout_seconds",
                format!(
                    "{} must be between lockout_seconds ({}) and 604800",
                    l.max_lockout_seconds, l.lockout_seconds
                ),
            ));
        }
        if !(l.max_failures..=100).contains(&l.account_max_failures) {
            return Err(invalid(
                "limits",
                "account_max_failures",
                format!(
                    "{} must be between max_failures ({}) and 100",
                    l.account_max_failures, l.max_failures
                ),
            ));
        }
        if !(10..=3600).contains(&self.login.session_timeout_seconds) {
            return Err(invalid(
                "login",
                "session_timeout_seconds",
                format!(
                    "{} is out of range 10..=3600",
                    self.login.session_timeout_seconds
                ),
            ));
        }
        let d = &self.devices;
        if !(1..=30).contains(&d.days) {
            return Err(invalid(
                "devices",
                "days",
                format!(
                    "{} is out of range 1..=30 (trust never lasts longer)",
                    d.days
                ),
            ));
        }
        if let Some(bad) = d.ssh_services.iter().find(|s| !valid_service_name(s)) {
            return Err(invalid(
                "devices",
                "ssh_services",
                format!(
                    "{:?} is not a PAM service name (letters, digits, - _ .)",
                    bad.chars().take(64).collect::<String>()
                ),
            ));
        }
        let k = &self.keys;
        if UserVerification::parse(&k.user_verification).is_none() {
            return Err(invalid(
                "keys",
                "user_verification",
                format!(
                    "{:?} is not one of discouraged, preferred, required",
                    k.user_verification.chars().take(64).collect::<String>()
                ),
            ));
        }
        if k.rp_id.len() > 128 || k.rp_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(
                "keys",
                "rp_id",
                "must be at most 128 characters, without spaces".into(),
            ));
        }
        if !k.sshd.is_absolute() {
            return Err(invalid("keys", "sshd", "must be an absolute path".into()));
        }
        if !k.sshd_config.as_os_str().is_empty() && !k.sshd_config.is_absolute() {
            return Err(invalid(
                "keys",
                "sshd_config",
                "must be an absolute path (or empty: sshd's own default)".into(),
            ));
        }
        self.validate_email(text, &invalid)?;
        self.validate_store(text, &invalid)?;
        self.validate_fleet(text, &invalid)
    }

    /// `[fleet]`: a host names its verifiers, a verifier its address;
    /// both their certificate files. The files themselves are read at
    /// start-up and by `--check-config` (`adapters::fleet_tls`).
    fn validate_fleet(
        &self,
        _text: &str,
        invalid: &dyn Fn(&str, &str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let f = &self.fleet;
        let bad = |key: &str, message: String| Err(invalid("fleet", key, message));
        for (key, path) in [
            ("ca_file", &f.ca_file),
            ("cert_file", &f.cert_file),
            ("key_file", &f.key_file),
        ] {
            if !path.is_absolute() {
                return bad(key, "must be an absolute path".into());
            }
        }
        if !(1..=10).contains(&f.timeout_seconds) {
            return bad(
                "timeout_seconds",
                format!(
                    "{} is out of range 1..=10 (pam_twofactor waits 15 s for the daemon)",
                    f.timeout_seconds
                ),
            );
        }
        for h in &f.admin_hosts {
            let name_like = !h.is_empty()
                && h.len() <= 64
                && h.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if h != "*" && !name_like {
                return bad(
                    "admin_hosts",
                    format!("{h:?} is not a host's name (as given to --add-host) or \"*\""),
                );
            }
        }
        match f.role {
            Role::None => Ok(()),
            Role::Host => {
                if f.verifiers.is_empty() {
                    return bad(
                        "verifiers",
                        "a host needs at least one verifier (\"https://NAME:PORT\")".into(),
                    );
                }
                if f.verifiers.len() > 16 {
                    return bad("verifiers", "at most 16 verifiers".into());
                }
                for v in &f.verifiers {
                    if let Err(e) = verifier_url(v) {
                        return bad("verifiers", format!("{v:?}: {e}"));
                    }
                }
                Ok(())
            }
            Role::Verifier if self.store.backend != Backend::Postgresql => bad(
                "role",
                "a verifier keeps its state in PostgreSQL ([store] backend = \"postgresql\"), \
                 which every verifier of the fleet shares"
                    .into(),
            ),
            Role::Verifier => match f.listen.parse::<std::net::SocketAddr>() {
                Ok(_) => Ok(()),
                Err(_) => bad(
                    "listen",
                    format!(
                        "{:?} is not ADDRESS:PORT (for example \"0.0.0.0:8443\" or \"[::]:8443\")",
                        f.listen
                    ),
                ),
            },
        }
    }

    /// `[store]`, checked whichever backend is chosen (a typo is a typo).
    /// The password and CA files themselves are read when connecting.
    fn validate_store(
        &self,
        text: &str,
        invalid: &dyn Fn(&str, &str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let s = &self.store;
        let bad = |key: &str, message: String| Err(invalid("store", key, message));
        let socket = s.host.starts_with('/');
        if !socket && !valid_relay(&s.host) {
            return bad(
                "host",
                "must be a host name, an IP address or a socket directory (/…)".into(),
            );
        }
        if s.port == 0 {
            return bad("port", "0 is out of range 1..=65535".into());
        }
        for (key, value) in [("dbname", &s.dbname), ("user", &s.user)] {
            if value.is_empty() || value.len() > 63 || value.chars().any(char::is_control) {
                return bad(
                    key,
                    "must be 1 to 63 characters without control characters".into(),
                );
            }
        }
        for (key, path) in [("password_file", &s.password_file), ("ca_file", &s.ca_file)] {
            if !path.as_os_str().is_empty() && !path.is_absolute() {
                return bad(key, "must be empty or an absolute path".into());
            }
        }
        if s.sslmode == SslMode::Disable && !socket && !crate::message::is_loopback(&s.host) {
            let key = if line_of_key(text, "store", "sslmode") != 0 {
                "sslmode"
            } else {
                "host"
            };
            return bad(
                key,
                format!(
                    "\"disable\" (no TLS) is allowed only with a server on this machine \
                     (localhost, 127.0.0.0/8, ::1, a socket directory), not {}: use \
                     \"verify-full\"",
                    s.host
                ),
            );
        }
        if !(1..=10).contains(&s.connect_timeout_seconds) {
            return bad(
                "connect_timeout_seconds",
                format!("{} is out of range 1..=10", s.connect_timeout_seconds),
            );
        }
        if !(1..=10).contains(&s.statement_timeout_seconds) {
            return bad(
                "statement_timeout_seconds",
                format!(
                    "{} is out of range 1..=10 (pam_twofactor waits 15 s for the daemon)",
                    s.statement_timeout_seconds
                ),
            );
        }
        // A batch meets a dead connection (its statement deadline, plus a
        // second), then connects again: both within the module's wait.
        if s.connect_timeout_seconds + s.statement_timeout_seconds > 12 {
            return bad(
                "statement_timeout_seconds",
                format!(
                    "connect_timeout_seconds + statement_timeout_seconds is {}; at most 12 \
                     (pam_twofactor waits 15 s for the daemon)",
                    s.connect_timeout_seconds + s.statement_timeout_seconds
                ),
            );
        }
        Ok(())
    }

    /// `[email]`, checked whether mail is on or not (a typo is a typo). The
    /// password and CA files themselves are checked when the mailer is
    /// made (`smtp::Smtp::new`, at start-up and by `--check-config`).
    fn validate_email(
        &self,
        text: &str,
        invalid: &dyn Fn(&str, &str, String) -> ConfigError,
    ) -> Result<(), ConfigError> {
        let e = &self.email;
        let bad = |key: &str, message: String| Err(invalid("email", key, message));
        if !valid_relay(&e.relay) {
            return bad(
                "relay",
                "must be a host name or an IP address (\"localhost\" for the local MTA)".into(),
            );
        }
        if e.port == 0 {
            return bad("port", "0 is out of range 1..=65535".into());
        }
        if e.security == SmtpSecurity::None && !crate::message::is_loopback(&e.relay) {
            // Blame the line written: `security` if set, else `relay`.
            let key = if line_of_key(text, "email", "security") != 0 {
                "security"
            } else {
                "relay"
            };
            return bad(
                key,
                format!(
                    "\"none\" (plain SMTP) is allowed only with a relay on this machine \
                     (localhost, 127.0.0.0/8, ::1), not {}: use \"starttls\" or \"tls\"",
                    e.relay
                ),
            );
        }
        if !(1..=10).contains(&e.timeout_seconds) {
            return bad(
                "timeout_seconds",
                format!(
                    "{} is out of range 1..=10 (a login waits for the send, and \
                     pam_twofactor waits 15 s for the daemon)",
                    e.timeout_seconds
                ),
            );
        }
        if !(1..=15).contains(&e.code_minutes) {
            return bad(
                "code_minutes",
                format!("{} is out of range 1..=15", e.code_minutes),
            );
        }
        if !(1..=60).contains(&e.max_sends_per_hour) {
            return bad(
                "max_sends_per_hour",
                format!("{} is out of range 1..=60", e.max_sends_per_hour),
            );
        }
        if e.subject.trim().is_empty() || e.subject.chars().any(char::is_control) {
            return bad(
                "subject",
                "must be one non-empty line without control characters".into(),
            );
        }
        if !e.body.contains("{code}") {
            return bad("body", "must contain {code}".into());
        }
        if !e.from.is_empty() && !crate::message::valid_address(&e.from) {
            return bad(
                "from",
                "must be empty (twofactor@HOSTNAME) or one address local@domain".into(),
            );
        }
        for (key, path) in [("password_file", &e.password_file), ("ca_file", &e.ca_file)] {
            if !path.as_os_str().is_empty() && !path.is_absolute() {
                return bad(key, "must be empty or an absolute path".into());
            }
        }
        if !e.username.is_empty() && e.password_file.as_os_str().is_empty() {
            return bad(
                "username",
                "is set, so password_file must name the file holding the password".into(),
            );
        }
        if e.username.chars().any(char::is_control) {
            return bad("username", "must not contain control characters".into());
        }
        if !e.mailbox_domain.is_empty() && !valid_domain(&e.mailbox_domain) {
            return bad(
                "mailbox_domain",
                "must be empty or a domain name (letters, digits, '-' and '.')".into(),
            );
        }
        Ok(())
    }

    /// The relying party of security keys: `[keys] rp_id`, else
    /// `twofactor:` and the host name.
    pub fn key_rp_id(&self) -> String {
        if !self.keys.rp_id.is_empty() {
            return self.keys.rp_id.clone();
        }
        format!("twofactor:{}", hostname())
    }

    /// `[keys] user_verification` (validated when the file was read).
    pub fn key_user_verification(&self) -> UserVerification {
        UserVerification::parse(&self.keys.user_verification).unwrap_or_default()
    }

    /// The issuer to show in the app.
    pub fn issuer_or_hostname(&self) -> String {
        if !self.issuer.is_empty() {
            return self.issuer.clone();
        }
        hostname().replace(':', "-")
    }
}

/// A PAM service name: letters, digits, `-`, `_`, `.`.
/// What is wrong with a list of group names (`protected_groups`,
/// `[policy] groups`), if anything: the contract's name rule and limit
/// (twofactor_proto::group).
fn group_list_error(groups: &[String]) -> Option<String> {
    use twofactor_proto::group::{is_valid_name, MAX_NAME_BYTES, MAX_POLICY_GROUPS};
    if let Some(bad) = groups.iter().find(|g| !is_valid_name(g)) {
        return Some(format!(
            "{:?} is not a valid group name",
            bad.chars().take(MAX_NAME_BYTES).collect::<String>()
        ));
    }
    (groups.len() > MAX_POLICY_GROUPS).then(|| {
        format!(
            "names {} groups; at most {MAX_POLICY_GROUPS} may be named",
            groups.len()
        )
    })
}

fn valid_service_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// A domain name: dot-separated labels of letters, digits and '-' (not
/// at either end of a label), at most 253 characters.
pub fn valid_domain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// An SMTP relay: a host name or an IP address (v4, or v6 without
/// brackets).
pub fn valid_relay(relay: &str) -> bool {
    relay.parse::<std::net::IpAddr>().is_ok() || valid_domain(relay)
}

/// A verifier's URL, `https://NAME[:PORT]` (no path, no user, no query),
/// as (name, port): the name is what its certificate must be valid for.
pub fn verifier_url(url: &str) -> Result<(String, u16), String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or("must start with https://")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    if rest.contains(['/', '@', '?', '#']) || rest.chars().any(|c| c.is_control() || c == ' ') {
        return Err("must be https://NAME[:PORT], without a path".into());
    }
    let (name, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']').ok_or("an IPv6 address needs its ]")?;
        let port = match after.strip_prefix(':') {
            Some(p) => p,
            None if after.is_empty() => "443",
            None => return Err("must be https://[ADDRESS]:PORT".into()),
        };
        (addr.to_string(), port)
    } else {
        match rest.rsplit_once(':') {
            Some((n, p)) => (n.to_string(), p),
            None => (rest.to_string(), "443"),
        }
    };
    if !valid_relay(&name) {
        return Err(format!("{name:?} is not a host name or an IP address"));
    }
    let port: u16 = port
        .parse()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(|| format!("{port:?} is not a port"))?;
    Ok((name, port))
}

/// The machine's host name ("localhost" if it has none).
pub fn hostname() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map(|t| t.matches('\n').count() + 1)
        .unwrap_or(0)
}

/// The dotted key (`section.key`) set on 1-based `line`, if that line is
/// a `key = value` line.
fn key_at_line(text: &str, line: usize) -> Option<String> {
    let mut section = String::new();
    for (i, raw) in text.lines().enumerate() {
        let l = raw.trim();
        if let Some(rest) = l.strip_prefix('[') {
            section = rest.trim_end_matches(']').trim().to_string();
        } else if i + 1 == line {
            let key = l.split('=').next()?.trim();
            if key.is_empty() || l == key {
                return None;
            }
            return Some(if section.is_empty() {
                key.to_string()
            } else {
                format!("{section}.{key}")
            });
        }
    }
    None
}

/// 1-based line on which `key` is set inside `[section]` ("" = top level);
/// 0 if the key is not written (a default value).
fn line_of_key(text: &str, section: &str, key: &str) -> usize {
    let mut current = String::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(rest) = line.strip_prefix('[') {
            current = rest.trim_end_matches(']').trim().to_string();
            continue;
        }
        if current == section {
            if let Some(rest) = line.strip_prefix(key) {
                if rest.trim_start().starts_with('=') {
                    return i + 1;
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_default_is_this_path() {
        assert_eq!(crate::args::DEFAULT_CONFIG, DEFAULT_PATH);
    }

    #[test]
    fn empty_file_is_defaults() {
        assert_eq!(Config::parse("", "t.toml").unwrap(), Config::default());
    }

    #[test]
    fn full_file_parses() {
        let c = Config::parse(
            "state_dir = \"/tmp/x\"\nissuer = \"Example\"\n[totp]\nskew_steps = 0\n\
             [limits]\nmax_failures = 3\nlockout_seconds = 2\nmax_lockout_seconds = 4\n\
             [login]\nsession_timeout_seconds = 60\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.limits.max_failures, 3);
        assert_eq!(c.totp.skew_steps, 0);
        assert_eq!(c.issuer_or_hostname(), "Example");
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let e = Config::parse("issuer = \"x\"\n[limits]\nmax_failure = 3\n", "/etc/t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/etc/t.toml:3:"), "{e}");
        assert!(e.contains("max_failure"), "{e}");
    }

    #[test]
    fn wrong_type_names_line_and_key() {
        let e = Config::parse("\n[totp]\nskew_steps = \"one\"\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:3: key `totp.skew_steps`:"), "{e}");
        let e = Config::parse("state_dir = 5\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:1: key `state_dir`:"), "{e}");
        let e = Config::parse("[login]\nsession_timeout_seconds = \"long\"\n", "c")
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("c:2: key `login.session_timeout_seconds`:"),
            "{e}"
        );
        assert!(e.contains("expected u32"), "{e}");
    }

    #[test]
    fn out_of_range_names_line_and_key() {
        let e = Config::parse("[limits]\nmax_failures = 0\n", "c")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c:2: key `limits.max_failures`: 0 is out of range 1..=100 (failures are always limited)"
        );
        let e = Config::parse("state_dir = \"rel\"\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:1: key `state_dir`"), "{e}");
        let e = Config::parse("[totp]\nskew_steps = 3\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("totp.skew_steps"), "{e}");
    }

    /// One quoted group name more than the contract allows, for a TOML
    /// array.
    fn too_many_groups() -> String {
        (0..=twofactor_proto::group::MAX_POLICY_GROUPS)
            .map(|i| format!("\"g{i}\""))
            .collect::<Vec<_>>()
            .join(", ")
    }

    #[test]
    fn policy_and_admin_group() {
        let c = Config::parse(
            "admin_group = \"sudo\"\n[policy]\nmandatory = true\ngroups = [\"staff\", \"ops\"]\nfrom = \"2026-12-01\"\n",
            "c",
        )
        .unwrap();
        assert!(c.policy.mandatory);
        assert_eq!(c.policy.groups, vec!["staff", "ops"]);
        let e = Config::parse("[policy]\nfrom = \"2026-13-01\"\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2: key `policy.from`"), "{e}");
        let e = Config::parse("[policy]\ngroups = [\"a b\"]\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.contains("policy.groups"), "{e}");
        // The contract's rule (proto::group): no number, `$` only last.
        for bad in ["1000", "st$ff"] {
            let e = Config::parse(&format!("admin_group = \"{bad}\"\n"), "c")
                .unwrap_err()
                .to_string();
            assert!(e.contains("admin_group"), "{e}");
        }
        let e = Config::parse(
            &format!("[policy]\ngroups = [{}]\n", too_many_groups()),
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("at most 256"), "{e}");
        assert!(twofactor_proto::date::is_calendar_date("2026-01-31"));
        assert!(!twofactor_proto::date::is_calendar_date("2026-1-31"));
        assert!(!twofactor_proto::date::is_calendar_date("2026-01-3x"));
    }

    /// `protected_groups`: the root-equivalent groups when not written; an
    /// empty list is taken as written; a bad name or too many names are
    /// refused with the file, the line and the key.
    #[test]
    fn protected_groups() {
        let default = Config::parse("", "c").unwrap().protected_groups;
        for g in [
            "sudo", "wheel", "admin", "root", "adm", "docker", "lxd", "libvirt", "disk", "shadow",
        ] {
            assert!(default.iter().any(|d| d == g), "{g} in {default:?}");
        }
        let c = Config::parse("protected_groups = []\n", "c").unwrap();
        assert!(c.protected_groups.is_empty());
        let c = Config::parse(
            "protected_groups = [\"sudo\", \"no-such-group-here\"]\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.protected_groups, vec!["sudo", "no-such-group-here"]);
        for bad in ["1000", "st$ff", "a b", "", "-x"] {
            let e = Config::parse(
                &format!("issuer = \"x\"\nprotected_groups = [\"sudo\", {bad:?}]\n[limits]\n"),
                "/etc/t.toml",
            )
            .unwrap_err()
            .to_string();
            assert_eq!(
                e,
                format!("/etc/t.toml:2: key `protected_groups`: {bad:?} is not a valid group name")
            );
        }
        let e = Config::parse("protected_groups = \"sudo\"\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:1: key `protected_groups`:"), "{e}");
        let e = Config::parse(
            &format!("\nprotected_groups = [{}]\n", too_many_groups()),
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("c:2: key `protected_groups`: names 257 groups; at most 256"),
            "{e}"
        );
    }

    #[test]
    fn dates_are_real_calendar_days() {
        for d in [
            "2026-01-31",
            "2026-02-28",
            "2028-02-29",
            "2000-02-29",
            "2026-04-30",
            "2026-12-31",
            "1970-01-01",
            "9999-12-31",
        ] {
            assert!(twofactor_proto::date::is_calendar_date(d), "{d}");
        }
        for d in [
            "2026-02-31",
            "2026-02-30",
            "2026-02-29",
            "1900-02-29",
            "2100-02-29",
            "2026-04-31",
            "2026-06-31",
            "2026-09-31",
            "2026-11-31",
            "2026-00-10",
            "2026-13-01",
            "2026-01-00",
            "2026-01-32",
            "1969-12-31",
            "+026-01-01",
            "2026-+1-01",
            "２０２６-01-01",
            "2026-01-01\n",
            "",
        ] {
            assert!(!twofactor_proto::date::is_calendar_date(d), "{d:?}");
        }
        // In the file, the error keeps its `file:line: key` form.
        let e = Config::parse(
            "\n[policy]\nmandatory = true\nfrom = \"2026-02-31\"\n",
            "/etc/t.toml",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "/etc/t.toml:4: key `policy.from`: must be a date written YYYY-MM-DD"
        );
    }

    /// The error for one `[email]` line after a few others.
    fn email_error(line: &str) -> String {
        Config::parse(
            &format!("issuer = \"x\"\n[email]\nnotices = false\n{line}\n"),
            "/etc/t.toml",
        )
        .unwrap_err()
        .to_string()
    }

    #[test]
    fn email_values_are_checked_with_file_line_and_key() {
        for (line, key, says) in [
            ("relay = \"\"", "relay", "host name"),
            ("relay = \"mail server\"", "relay", "host name"),
            ("relay = \"-x.example\"", "relay", "host name"),
            ("port = 0", "port", "1..=65535"),
            (
                "relay = \"mail.example.com\"",
                "relay",
                "not mail.example.com",
            ),
            ("relay = \"10.0.0.25\"", "relay", "starttls"),
            ("timeout_seconds = 0", "timeout_seconds", "1..=10"),
            ("timeout_seconds = 11", "timeout_seconds", "1..=10"),
            ("code_minutes = 0", "code_minutes", "1..=15"),
            ("code_minutes = 16", "code_minutes", "1..=15"),
            ("max_sends_per_hour = 0", "max_sends_per_hour", "1..=60"),
            ("max_sends_per_hour = 61", "max_sends_per_hour", "1..=60"),
            ("subject = \"\"", "subject", "non-empty"),
            ("subject = \"a\\nBcc: x@y\"", "subject", "control"),
            ("body = \"no code here\"", "body", "{code}"),
            ("from = \"not an address\"", "from", "local@domain"),
            ("password_file = \"secret\"", "password_file", "absolute"),
            ("ca_file = \"ca.pem\"", "ca_file", "absolute"),
            ("username = \"mailer\"", "username", "password_file"),
            ("mailbox_domain = \"a..b\"", "mailbox_domain", "domain"),
            ("security = \"ssl\"", "security", "unknown variant"),
            ("port = 70000", "port", ""),
        ] {
            let e = email_error(line);
            assert!(
                e.starts_with(&format!("/etc/t.toml:4: key `email.{key}`:")),
                "{line}: {e}"
            );
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn plain_smtp_to_a_remote_relay_blames_the_security_line_when_written() {
        let e = Config::parse(
            "[email]\nrelay = \"mail.example.com\"\nsecurity = \"none\"\n",
            "c",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("c:3: key `email.security`:"), "{e}");
    }

    #[test]
    fn email_settings_that_are_allowed() {
        for text in [
            "[email]\nrelay = \"127.0.0.1\"\nport = 2525\n",
            "[email]\nrelay = \"::1\"\nusername = \"u\"\npassword_file = \"/etc/twofactor/smtp-password\"\n",
            "[email]\nrelay = \"smtp.example.com\"\nport = 587\nsecurity = \"starttls\"\n\
             username = \"u\"\npassword_file = \"/etc/twofactor/smtp-password\"\n\
             ca_file = \"/etc/twofactor/relay-ca.pem\"\nfrom = \"2fa@example.com\"\n",
            "[email]\nrelay = \"192.0.2.7\"\nport = 465\nsecurity = \"tls\"\ntimeout_seconds = 10\n\
             code_minutes = 15\nmax_sends_per_hour = 60\nmailbox_domain = \"\"\n",
        ] {
            let c = Config::parse(text, "c").unwrap_or_else(|e| panic!("{text}: {e}"));
            assert!(!c.email.in_use());
        }
    }

    #[test]
    fn store_values_are_checked_with_file_line_and_key() {
        for (line, key, says) in [
            ("backend = \"mysql\"", "backend", "unknown variant"),
            ("host = \"db server\"", "host", "socket directory"),
            ("port = 0", "port", "1..=65535"),
            ("user = \"a\\u0001\"", "user", "control"),
            ("user = \"\"", "user", "1 to 63"),
            ("password_file = \"pw\"", "password_file", "absolute"),
            ("ca_file = \"ca.pem\"", "ca_file", "absolute"),
            ("sslmode = \"require\"", "sslmode", "unknown variant"),
            (
                "host = \"db.example.com\"\nsslmode = \"disable\"",
                "sslmode",
                "verify-full",
            ),
            (
                "connect_timeout_seconds = 0",
                "connect_timeout_seconds",
                "1..=10",
            ),
            (
                "statement_timeout_seconds = 11",
                "statement_timeout_seconds",
                "1..=10",
            ),
            (
                "connect_timeout_seconds = 3\nstatement_timeout_seconds = 10",
                "statement_timeout_seconds",
                "at most 12",
            ),
        ] {
            let text = format!("issuer = \"x\"\n[store]\ndbname = \"tf\"\n{line}\n");
            let e = Config::parse(&text, "/etc/t.toml").unwrap_err().to_string();
            let at = line.lines().count() + 3;
            assert!(
                e.starts_with(&format!("/etc/t.toml:{at}: key `store.{key}`:")),
                "{line}: {e}"
            );
            assert!(e.contains(says), "{line}: {e}");
        }
    }

    #[test]
    fn store_settings_that_are_allowed() {
        for text in [
            "[store]\nbackend = \"sqlite\"\n",
            "[store]\nbackend = \"postgresql\"\nhost = \"db.example.com\"\n\
             password_file = \"/etc/twofactor/db-password\"\nca_file = \"/etc/twofactor/db-ca.pem\"\n",
            "[store]\nbackend = \"postgresql\"\nhost = \"127.0.0.1\"\nsslmode = \"disable\"\n",
            "[store]\nbackend = \"postgresql\"\nhost = \"/var/run/postgresql\"\nsslmode = \"disable\"\n",
        ] {
            Config::parse(text, "c").unwrap_or_else(|e| panic!("{text}: {e}"));
        }
        assert_eq!(Config::default().store.backend, Backend::Sqlite);
    }

    #[test]
    fn missing_default_file_is_defaults_but_explicit_is_error() {
        let p = Path::new("/nonexistent/twofactord.toml");
        assert_eq!(Config::load(p, false).unwrap(), Config::default());
        assert!(Config::load(p, true).is_err());
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    const SHIPPED: &str = include_str!("../../config/twofactord.toml");

    /// Whatever is accepted obeys the rules `validate` enforces.
    fn obeys_the_rules(c: &Config) -> bool {
        c.state_dir.is_absolute()
            && c.totp.skew_steps <= 2
            && (1..=100).contains(&c.limits.max_failures)
            && (1..=86_400).contains(&c.limits.lockout_seconds)
            && (c.limits.lockout_seconds..=604_800).contains(&c.limits.max_lockout_seconds)
            && (10..=3600).contains(&c.login.session_timeout_seconds)
            && (c.policy.from.is_empty() || twofactor_proto::date::is_calendar_date(&c.policy.from))
            && c.policy
                .groups
                .iter()
                .all(|g| twofactor_proto::group::is_valid_name(g))
            && c.policy.groups.len() <= twofactor_proto::group::MAX_POLICY_GROUPS
            && c.protected_groups
                .iter()
                .all(|g| twofactor_proto::group::is_valid_name(g))
            && c.protected_groups.len() <= twofactor_proto::group::MAX_POLICY_GROUPS
            && (1..=30).contains(&c.devices.days)
            && (1..=10).contains(&c.email.timeout_seconds)
            && (1..=15).contains(&c.email.code_minutes)
            && (1..=60).contains(&c.email.max_sends_per_hour)
            && c.email.port != 0
            && c.email.body.contains("{code}")
            && (c.email.security != SmtpSecurity::None
                || crate::message::is_loopback(&c.email.relay))
            && (1..=10).contains(&c.store.connect_timeout_seconds)
            && (1..=10).contains(&c.store.statement_timeout_seconds)
            && c.store.connect_timeout_seconds + c.store.statement_timeout_seconds <= 12
            && c.store.port != 0
            && (c.store.sslmode != SslMode::Disable
                || c.store.host.starts_with('/')
                || crate::message::is_loopback(&c.store.host))
    }

    /// An error names the file and a line of it.
    fn well_formed(e: &ConfigError, text: &str) -> bool {
        let lines = text.lines().count().max(1);
        match e {
            ConfigError::Read { .. } => false,
            ConfigError::Parse { path, line, .. } | ConfigError::Invalid { path, line, .. } => {
                path == "p.toml" && *line <= lines + 1
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn any_text(text in any::<String>()) {
            match Config::parse(&text, "p.toml") {
                Ok(c) => prop_assert!(obeys_the_rules(&c)),
                Err(e) => prop_assert!(well_formed(&e, &text), "{}", e),
            }
        }

        /// The shipped file with one line replaced or one byte range cut.
        #[test]
        fn mutated_shipped_file(
            line in any::<prop::sample::Index>(),
            value in prop_oneof![
                "[a-z_.]{1,20} = [0-9-]{1,12}",
                "from = \"[0-9]{4}-[0-9]{2}-[0-9]{2}\"",
                "groups = \\[\"\\PC{0,10}\"\\]",
                "protected_groups = \\[\"\\PC{0,10}\"\\]",
                "\\[[a-z]{0,8}\\]",
                "\\PC{0,30}",
            ],
            cut in any::<(prop::sample::Index, prop::sample::Index)>(),
        ) {
            let mut lines: Vec<&str> = SHIPPED.lines().collect();
            let i = line.index(lines.len());
            lines[i] = &value;
            let text = lines.join("\n");
            for text in [text, {
                let (a, b) = (cut.0.index(SHIPPED.len()), cut.1.index(SHIPPED.len()));
                let (a, b) = (a.min(b), a.max(b));
                format!("{}{}", SHIPPED.get(..a).unwrap_or(""), SHIPPED.get(b..).unwrap_or(""))
            }] {
                match Config::parse(&text, "p.toml") {
                    Ok(c) => prop_assert!(obeys_the_rules(&c)),
                    Err(e) => prop_assert!(well_formed(&e, &text), "{}", e),
                }
            }
        }
    }

    #[test]
    fn the_shipped_file_parses() {
        assert!(Config::parse(SHIPPED, "p.toml").is_ok());
    }

    #[test]
    fn trust_never_lasts_more_than_thirty_days() {
        let e = Config::parse("[devices]\ndays = 31\n", "c")
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "c:2: key `devices.days`: 31 is out of range 1..=30 (trust never lasts longer)"
        );
        let e = Config::parse("[keys]\nuser_verification = \"always\"\n", "c")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2: key `keys.user_verification`:"), "{e}");
        let e = Config::parse("[keys]\nrp_id = \"a b\"\n", "c")
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2: key `keys.rp_id`:"), "{e}");
        let c = Config::parse(
            "[keys]\nrp_id = \"twofactor:fleet\"\nuser_verification = \"required\"\n",
            "c",
        )
        .unwrap();
        assert_eq!(c.key_rp_id(), "twofactor:fleet");
        assert_eq!(c.key_user_verification(), UserVerification::Required);
        assert!(Config::default().key_rp_id().starts_with("twofactor:"));
        let e = Config::parse("[keys]\nsshd = \"sshd\"\n", "c")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "c:2: key `keys.sshd`: must be an absolute path");
        let e = Config::parse("[keys]\nssh = true\nsshd_config = \"etc/x\"\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:3: key `keys.sshd_config`:"), "{e}");
        let e = Config::parse("[devices]\nssh_services = [\"sshd\", \"a b\"]\n", "c")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("c:2: key `devices.ssh_services`:"), "{e}");
        let shipped = Config::parse(SHIPPED, "p.toml").unwrap();
        assert_eq!(shipped.devices, DevicesConfig::default());
        assert_eq!(shipped.keys, KeysConfig::default());
    }

    /// The shipped file shows `protected_groups` commented out, with the
    /// built-in list: taking the `#` away changes nothing.
    #[test]
    fn the_shipped_protected_groups_line_is_the_default() {
        let line = SHIPPED
            .lines()
            .find(|l| l.starts_with("#protected_groups = "))
            .expect("a commented protected_groups line");
        let uncommented = SHIPPED.replace(line, &line[1..]);
        assert_ne!(line_of_key(&uncommented, "", "protected_groups"), 0);
        assert_eq!(
            Config::parse(&uncommented, "p.toml").unwrap(),
            Config::parse(SHIPPED, "p.toml").unwrap()
        );
        assert_eq!(
            Config::parse(SHIPPED, "p.toml").unwrap().protected_groups,
            DEFAULT_PROTECTED_GROUPS
        );
    }

    /// The shipped file writes every `[email]` key with its built-in
    /// default (the body too, character for character).
    #[test]
    fn the_shipped_email_section_is_the_defaults() {
        let shipped = Config::parse(SHIPPED, "p.toml").unwrap();
        assert_eq!(shipped.email, EmailConfig::default());
        for key in [
            "codes",
            "notices",
            "relay",
            "port",
            "security",
            "username",
            "password_file",
            "ca_file",
            "from",
            "timeout_seconds",
            "code_minutes",
            "max_sends_per_hour",
            "subject",
            "body",
            "mailbox_domain",
        ] {
            assert_ne!(
                line_of_key(SHIPPED, "email", key),
                0,
                "email.{key} is not shipped"
            );
        }
    }

    #[test]
    fn fleet_roles_are_checked_with_their_keys() {
        let e = |text: &str| Config::parse(text, "f.toml").unwrap_err().to_string();
        let pg = "[store]\nbackend = \"postgresql\"\nhost = \"localhost\"\nsslmode = \"disable\"\n";
        assert!(e("[fleet]\nrole = \"host\"\n").contains("fleet.verifiers"));
        assert!(
            e("[fleet]\nrole = \"host\"\nverifiers = [\"http://v1:8443\"]\n")
                .contains("must start with https://")
        );
        assert!(
            e("[fleet]\nrole = \"host\"\nverifiers = [\"https://v1:8443/x\"]\n")
                .contains("without a path")
        );
        assert!(e("[fleet]\nrole = \"hosts\"\n").contains("f.toml:2"));
        assert!(
            e("[fleet]\nrole = \"verifier\"\nlisten = \"0.0.0.0:8443\"\n").contains("PostgreSQL")
        );
        assert!(e(&format!(
            "{pg}[fleet]\nrole = \"verifier\"\nlisten = \"8443\"\n"
        ))
        .contains("fleet.listen"));
        assert!(e("[fleet]\ncert_file = \"cert.pem\"\n").contains("fleet.cert_file"));
        assert!(e("[fleet]\ntimeout_seconds = 30\n").contains("fleet.timeout_seconds"));
        assert!(e("[fleet]\nadmin_hosts = [\"a b\"]\n").contains("fleet.admin_hosts"));
        assert!(e("[fleet]\nadmin_hosts = [\"\"]\n").contains("fleet.admin_hosts"));
        let host = Config::parse(
            "[fleet]\nrole = \"host\"\nverifiers = [\"https://v1.example.com:8443\", \"https://[::1]:9443\"]\n",
            "f.toml",
        )
        .unwrap();
        assert_eq!(host.fleet.role, Role::Host);
        let verifier = Config::parse(
            &format!("{pg}[fleet]\nrole = \"verifier\"\nlisten = \"[::]:8443\"\n"),
            "f.toml",
        )
        .unwrap();
        assert_eq!(verifier.fleet.role, Role::Verifier);
        assert!(!verifier.fleet.admin_from("bastion"), "none by default");
        let admin = Config::parse(
            &format!(
                "{pg}[fleet]\nrole = \"verifier\"\nlisten = \"[::]:8443\"\nadmin_hosts = [\"bastion\"]\n"
            ),
            "f.toml",
        )
        .unwrap();
        assert!(admin.fleet.admin_from("bastion"));
        assert!(!admin.fleet.admin_from("web1"));
        let all = Config::parse("[fleet]\nadmin_hosts = [\"*\"]\n", "f.toml").unwrap();
        assert!(all.fleet.admin_from("web1"));
        assert_eq!(
            verifier_url("https://v1.example.com:8443"),
            Ok(("v1.example.com".into(), 8443))
        );
        assert_eq!(verifier_url("https://[::1]"), Ok(("::1".into(), 443)));
        assert!(verifier_url("https://user@v1:8443").is_err());
        assert!(verifier_url("https://v1:0").is_err());
    }
}

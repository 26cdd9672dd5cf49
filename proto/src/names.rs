//! Bus names, object paths, interface names and fixed limits.

/// Well-known bus name owned by `twofactord` on the system bus.
pub const BUS_NAME: &str = "org.twofactor.Daemon1";
/// The one object the daemon serves.
pub const OBJECT_PATH: &str = "/org/twofactor/Daemon1";
/// Interface called by `pam_twofactor.so`.
pub const LOGIN_INTERFACE: &str = "org.twofactor.Login1";
/// Interface a user calls about their own account.
pub const ACCOUNT_INTERFACE: &str = "org.twofactor.Account1";
/// Interface for administrators (uid 0 or `admin_group`).
pub const ADMIN_INTERFACE: &str = "org.twofactor.Admin1";
/// Prefix of every error name the daemon returns.
pub const ERROR_PREFIX: &str = "org.twofactor.Error";

/// The system bus socket. The PAM module connects here (or to the address in
/// its `bus=` argument), never to an address taken from the environment.
pub const SYSTEM_BUS_ADDRESS: &str = "unix:path=/run/dbus/system_bus_socket";

/// The daemon's own socket: `Login1`, peer to peer (no bus), for the PAM
/// module. Its directory is root's (0755); the module checks that the
/// process serving it is root before it sends anything, and uses the
/// system bus when the socket is missing.
pub const LOGIN_SOCKET_PATH: &str = "/run/twofactor/login";

/// Longest answer (`Login1.Answer`, and a code given to `Account1`) the
/// daemon looks at; longer answers are refused unread.
pub const MAX_ANSWER_BYTES: usize = 1024;
/// Longest password the daemon passes to the re-authentication service.
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// The keys of `Login1.Begin`'s details (`a{sv}`); every value is a string
/// (`s`). `user` is required; a missing other key is empty; keys the daemon
/// does not know are ignored, so a newer module works with an older
/// daemon.
pub mod detail {
    /// `PAM_USER`.
    pub const USER: &str = "user";
    /// `PAM_SERVICE`.
    pub const SERVICE: &str = "service";
    /// `PAM_RHOST`.
    pub const RHOST: &str = "rhost";
    /// `PAM_TTY`.
    pub const TTY: &str = "tty";
    /// `SSH_AUTH_INFO_0` from the PAM environment (what sshd reports of
    /// the methods the client already passed, e.g. `publickey ssh-ed25519
    /// AAAA...`); the daemon uses it only for services it knows as sshd.
    pub const SSH_AUTH_INFO: &str = "ssh_auth_info";
    /// `"1"` when the module can run a security key (its key helper is
    /// installed): the daemon may then answer with a key step
    /// ([`crate::Action::UseKey`]) at a login without `PAM_RHOST`.
    pub const SECURITY_KEYS: &str = "security_keys";
    /// `"1"` when the module sends `Commit` for a plain login without
    /// waiting for its reply: the daemon may then end such a login's auth
    /// phase with [`crate::Action::AcceptReport`] instead of
    /// [`crate::Action::AcceptPending`].
    pub const COMMIT_REPORT: &str = "commit_report";

    /// Longest value of [`USER`], [`SERVICE`], [`RHOST`] and [`TTY`], in
    /// bytes; the daemon refuses a `Begin` with a longer one.
    pub const MAX_VALUE_BYTES: usize = 1024;
    /// Longest [`SSH_AUTH_INFO`], in bytes (a large certificate fits); the
    /// daemon refuses a `Begin` with a longer one.
    pub const MAX_SSH_AUTH_INFO_BYTES: usize = 16 * 1024;
}

/// Method names of `org.twofactor.Login1`, for clients that do not use the
/// zbus proxies (the PAM module). The signatures of their bodies are in
/// [`crate::signature::login`].
pub mod login {
    /// `Begin(details a{sv}) -> (session s, step (a(us)us))`: the login's
    /// details by name (see [`detail`]), so that later details do not change
    /// the signature.
    pub const BEGIN: &str = "Begin";
    /// `Answer(session s, answer ay) -> step (a(us)us)`
    pub const ANSWER: &str = "Answer";
    /// `Cancel(session s)`: the conversation failed; forget the session.
    pub const CANCEL: &str = "Cancel";
    /// `Commit(session s) -> step (a(us)us)`: the whole PAM auth stack
    /// succeeded (called from `pam_sm_acct_mgmt`); store what the login
    /// left pending. The step is `Accept` or `Deny`. After
    /// [`crate::Action::AcceptReport`] the module sends it without waiting
    /// for the reply.
    pub const COMMIT: &str = "Commit";
}

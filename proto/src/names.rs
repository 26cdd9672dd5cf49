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

/// Longest answer the daemon looks at; longer answers are refused unread.
pub const MAX_ANSWER_BYTES: usize = 1024;
/// Longest password the daemon passes to the re-authentication service.
pub const MAX_PASSWORD_BYTES: usize = 4096;

/// Method names of `org.twofactor.Login1`, for clients that do not use the
/// zbus proxies (the PAM module).
pub mod login {
    /// `Begin(user s, service s, rhost s, tty s) -> (session s, step (a(us)us))`
    pub const BEGIN: &str = "Begin";
    /// `Answer(session s, answer ay) -> step (a(us)us)`
    pub const ANSWER: &str = "Answer";
    /// `Cancel(session s)`: the conversation failed; forget the session.
    pub const CANCEL: &str = "Cancel";
    /// `Commit(session s) -> step (a(us)us)`: the whole PAM auth stack
    /// succeeded (called from `pam_sm_acct_mgmt`); store what the login
    /// left pending. The step is `Accept` or `Deny`.
    pub const COMMIT: &str = "Commit";
}

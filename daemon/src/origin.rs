//! Where a login comes from, as the module reports it: a plain value that
//! the rules (rate limits, trusted devices), the faces and the audit log
//! all read.

/// Who and where, for login events.
#[derive(Clone, Default)]
pub struct Origin {
    pub user: String,
    pub service: String,
    pub rhost: String,
    pub tty: String,
    /// `SSH_AUTH_INFO_0` as the module found it in the PAM environment
    /// (used only to recognise a trusted device; never logged).
    pub ssh_auth_info: String,
}

impl std::fmt::Debug for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Origin")
            .field("user", &self.user)
            .field("service", &self.service)
            .field("rhost", &self.rhost)
            .field("tty", &self.tty)
            .finish_non_exhaustive()
    }
}

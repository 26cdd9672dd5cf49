//! The outside world: SMTP, syslog, PAM, the name service, the sealing
//! key, google-authenticator files, `/proc`, sshd's configuration and the login socket. Adapters know nothing of the
//! layers above them.

pub mod argon2id;
pub mod fleet_tls;
pub mod home_files;
pub mod listen;
pub mod named_files;
pub mod nss;
pub mod pam_reauth;
pub mod passwd_cache;
pub mod procfs;
pub mod sealing;
pub mod smtp;
pub mod sshd;
pub mod syslog;
pub mod verifiers;

//! A fleet without shared secrets (docs/fleet.md). A **verifier** holds the
//! key file and the database and decides every login with the one login
//! state machine ([`crate::api::login::Logins`]); a **host** holds neither:
//! its daemon serves the module and `twofactorctl` exactly as before and
//! forwards each call, with what its own system says of the user
//! ([`crate::origin::HostFacts`]), to a verifier over HTTPS with mutual
//! TLS.
//!
//! - `messages`: what travels between them (JSON over HTTP/2).
//! - `verifier`: the verifier's HTTPS face: who the host is (its
//!   certificate, registered in `rules::fleet_hosts`), then the call.
//! - `host`: the host's [`crate::api::login::LoginSteps`] over its
//!   verifiers (`adapters::verifiers`).
//! - `host_requests`: the host's `Account1` and `Admin1` calls, sent on
//!   without the password, which the host's PAM checks (its attempts
//!   counted at a verifier).

pub mod host;
pub mod host_requests;
pub mod messages;
pub mod verifier;

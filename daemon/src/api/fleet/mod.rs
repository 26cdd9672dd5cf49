//! A fleet without shared secrets (docs/fleet.md). A **verifier** holds the
//! key file and the database and decides every login with the one login
//! state machine ([`crate::api::login::Logins`]); a **host** holds neither:
//! its daemon serves the module exactly as before and forwards each call
//! of a login, with what its own system says of the user
//! ([`crate::origin::HostFacts`]), to a verifier over HTTPS with mutual
//! TLS.
//!
//! - `messages`: what travels between them (JSON over HTTP/2).
//! - `verifier`: the verifier's HTTPS face: who the host is (its
//!   certificate, registered in `rules::fleet_hosts`), then the call.
//! - `host`: the host's [`crate::api::login::LoginSteps`] over its
//!   verifiers (`adapters::verifiers`).

pub mod host;
pub mod messages;
pub mod verifier;

//! `pam_twofactor.so`: the second factor for Linux logins, as a thin PAM
//! module. It reads the login's user, service, remote host and tty, asks
//! `twofactord` over D-Bus (`org.twofactor.Login1`), shows what the daemon
//! says, asks what it asks, and maps the daemon's verdict to a PAM code. No
//! secret, crypto, storage or policy lives here.
//!
//! ```text
//! auth    required pam_twofactor.so [socket=PATH|none] [bus=ADDRESS] [failmode=secure|safe]
//!                                   [timeout=SECONDS] [key_helper=PATH|none] [key_timeout=SECONDS]
//! account required pam_twofactor.so
//! ```
//!
//! `pam_sm_authenticate` runs the login. A change the login set up
//! (enrolment at the prompt, a recovery code) is stored only from
//! `pam_sm_acct_mgmt`, which libpam calls after the whole auth stack
//! succeeded; without a pending change that hook returns `PAM_IGNORE`.
//! `pam_sm_setcred` returns `PAM_SUCCESS`; the session and password hooks
//! return `PAM_IGNORE`. Every hook runs inside `catch_unwind`: a panic becomes
//! `PAM_SERVICE_ERR` and never unwinds into libpam.

// The module runs inside sshd, su, sudo: no path of its own may panic.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::unreachable,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod args;
pub mod conv;
pub mod dbus;
pub mod flow;
pub mod hooks;
pub mod key;
pub mod log;

use std::ffi::CStr;

use pam::constants::{PamFlag, PamResultCode};
use pam::module::{PamHandle, PamHooks};
use pam::pam_hooks;

/// The module, as seen by pam-bindings' `pam_hooks!`.
pub struct TwoFactor;

pam_hooks!(TwoFactor);

impl PamHooks for TwoFactor {
    fn sm_authenticate(pamh: &mut PamHandle, args: Vec<&CStr>, flags: PamFlag) -> PamResultCode {
        hooks::guard(|| hooks::authenticate(pamh, &args, flags))
    }

    fn sm_setcred(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        hooks::guard(|| PamResultCode::PAM_SUCCESS)
    }

    fn acct_mgmt(pamh: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        hooks::guard(|| hooks::account(pamh))
    }

    fn sm_chauthtok(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        hooks::guard(|| PamResultCode::PAM_IGNORE)
    }

    fn sm_open_session(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        hooks::guard(|| PamResultCode::PAM_IGNORE)
    }

    fn sm_close_session(_: &mut PamHandle, _: Vec<&CStr>, _: PamFlag) -> PamResultCode {
        hooks::guard(|| PamResultCode::PAM_IGNORE)
    }
}

//! The glue between libpam and the login loop: panic guard, module arguments,
//! PAM items, and the real conversation, daemon and log.

use std::cell::RefCell;
use std::ffi::CStr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use pam::constants::{PamFlag, PamResultCode, PAM_SILENT};
use pam::items::{RHost, Service, Tty, User};
use pam::module::PamHandle;

use crate::args;
use crate::conv::PamConversation;
use crate::dbus::bus::BusDaemon;
use crate::dbus::LoginRequest;
use crate::flow::{self, Settings};
use crate::key::{HelperKeys, Keys};
use crate::log::{Level, Log, Syslog};

/// Runs a hook; a panic becomes `PAM_SERVICE_ERR` instead of unwinding into
/// libpam.
pub fn guard<F: FnOnce() -> PamResultCode>(hook: F) -> PamResultCode {
    match catch_unwind(AssertUnwindSafe(hook)) {
        Ok(code) => code,
        Err(payload) => {
            // Dropping a panic payload can itself panic; leak it instead.
            std::mem::forget(payload);
            let logged = catch_unwind(|| {
                Syslog::new("?", "auth").log(Level::Error, "internal error (panic); login refused");
            });
            if let Err(payload) = logged {
                std::mem::forget(payload);
            }
            PamResultCode::PAM_SERVICE_ERR
        }
    }
}

/// `pam_sm_authenticate`.
pub fn authenticate(pamh: &mut PamHandle, raw_args: &[&CStr], flags: PamFlag) -> PamResultCode {
    let service = item(pamh.get_item::<Service>().map(|o| o.map(|s| s.0)));
    let mut log = Syslog::new(&service, "auth");
    // A change an earlier pam_authenticate on this handle left pending
    // belongs to that authentication alone: `login` and other programs
    // that retry keep one handle, and the earlier attempt may have been
    // another user's, after a wrong password. It is dropped before
    // anything else, whatever this attempt becomes.
    if let Some(mut stale) = take_pending(pamh) {
        flow::discard(
            &mut stale.daemon,
            &mut log,
            &stale.session,
            "authentication began again",
        );
    }

    let args = match args::parse(raw_args.iter().map(|a| a.to_bytes())) {
        Ok(a) => a,
        Err(e) => {
            log.log(Level::Error, &format!("{e}; login refused"));
            return PamResultCode::PAM_SERVICE_ERR;
        }
    };

    let user = match pamh.get_user(None) {
        Ok(u) if !u.is_empty() => u,
        Ok(_) => {
            log.log(Level::Error, "empty user name; login refused");
            return PamResultCode::PAM_USER_UNKNOWN;
        }
        Err(code) => {
            log.log(
                Level::Error,
                &format!("cannot get the user name ({code:?}); login refused"),
            );
            return refusal(code);
        }
    };

    let request = LoginRequest {
        user,
        service,
        rhost: item(pamh.get_item::<RHost>().map(|o| o.map(|s| s.0))),
        tty: item(pamh.get_item::<Tty>().map(|o| o.map(|s| s.0))),
        ssh_auth_info: pam_env(pamh, c"SSH_AUTH_INFO_0"),
        security_keys: false,
    };
    let mut keys = HelperKeys {
        helper: args.key_helper.clone(),
        touch_timeout: args.key_timeout,
        test_device: args.key_device.clone(),
    };
    // A key is offered only where the helper is installed, and only at a
    // login without a remote host (the daemon checks that too).
    let request = LoginRequest {
        security_keys: request.rhost.is_empty() && keys.available(),
        ..request
    };
    let settings = Settings {
        failmode: args.failmode,
        silent: flags & PAM_SILENT != 0,
    };
    let mut daemon = BusDaemon::new(args.socket.as_deref(), &args.bus, args.timeout);
    let outcome = {
        let mut conv = PamConversation::new(pamh);
        flow::run(
            &mut daemon,
            &mut conv,
            &mut keys,
            &mut log,
            &request,
            settings,
        )
    };
    let Some(session) = outcome.pending else {
        return outcome.code;
    };
    // The login set something up: keep the session (and the connection it
    // is bound to) with the handle until the account phase commits it.
    // When the handle ends without that, libpam drops the data, the
    // connection closes and the daemon forgets the change.
    let pending = Pending {
        daemon,
        session,
        user: request.user.clone(),
        silent: settings.silent,
        report_only: outcome.report_only,
    };
    match pamh.set_data(PENDING_KEY, Box::new(RefCell::new(Some(pending)))) {
        Ok(()) => outcome.code,
        Err(code) => {
            log.log(
                Level::Error,
                &format!("cannot keep the login for the account phase ({code:?}); login refused"),
            );
            PamResultCode::PAM_AUTH_ERR
        }
    }
}

/// Where the auth phase leaves a login whose change waits for the account
/// phase. The key is this module's own.
const PENDING_KEY: &str = "pam_twofactor/pending-commit";

/// A login's change that waits for `pam_sm_acct_mgmt`.
struct Pending {
    daemon: BusDaemon,
    session: String,
    /// `PAM_USER` when the change was made: only an account phase for the
    /// same name commits it.
    user: String,
    silent: bool,
    /// Nothing waits to be stored: the success is only reported
    /// (`AcceptReport`).
    report_only: bool,
}

/// Takes the change the auth phase left on the handle, if any (the handle
/// keeps an empty slot).
fn take_pending(pamh: &mut PamHandle) -> Option<Pending> {
    // SAFETY: PENDING_KEY is set only by `authenticate`, always with a
    // `RefCell<Option<Pending>>`, so the type read back is the one stored;
    // the reference is used (to take the value out) before `pamh` is used
    // again.
    unsafe { pamh.get_data::<RefCell<Option<Pending>>>(PENDING_KEY) }
        .ok()
        .and_then(|cell| cell.try_borrow_mut().ok().and_then(|mut p| p.take()))
}

/// `pam_sm_acct_mgmt`: libpam runs it only after `pam_authenticate`
/// succeeded, so a change that the auth phase left pending (a method set up
/// at the prompt, a recovery code) is committed here, if `PAM_USER` is still
/// the name it was made for (any later `pam_authenticate` has dropped it
/// already). A handle without one (this module asked nothing, or the
/// application authenticated otherwise) has nothing to say: `PAM_IGNORE`.
pub fn account(pamh: &mut PamHandle) -> PamResultCode {
    let Some(mut pending) = take_pending(pamh) else {
        return PamResultCode::PAM_IGNORE;
    };
    let service = item(pamh.get_item::<Service>().map(|o| o.map(|s| s.0)));
    let mut log = Syslog::new(&service, "account");
    let user = item(pamh.get_item::<User>().map(|o| o.map(|s| s.0)));
    if user != pending.user {
        // The name changed after the authentication that made the change:
        // whoever this account phase is for, it is not that user's.
        flow::discard(
            &mut pending.daemon,
            &mut log,
            &pending.session,
            "the user changed",
        );
        return PamResultCode::PAM_PERM_DENIED;
    }
    if pending.report_only {
        return flow::report(&mut pending.daemon, &mut log, &pending.session);
    }
    let mut conv = PamConversation::new(pamh);
    flow::commit(
        &mut pending.daemon,
        &mut conv,
        &mut log,
        &pending.session,
        pending.silent,
    )
}

/// A string item; unset (or unreadable) is empty. D-Bus strings are UTF-8, so
/// other bytes are replaced.
fn item<E>(value: Result<Option<&CStr>, E>) -> String {
    match value {
        Ok(Some(s)) => s.to_string_lossy().into_owned(),
        _ => String::new(),
    }
}

extern "C" {
    fn pam_getenv(pamh: *mut PamHandle, name: *const libc::c_char) -> *const libc::c_char;
}

/// A variable of the **PAM** environment (`pam_getenv`), never of the
/// process environment: what sshd put there for this handle. Empty if
/// unset or not UTF-8. The daemon decides whether to believe it (only for
/// services it knows as sshd, only from root).
fn pam_env(pamh: &mut PamHandle, name: &CStr) -> String {
    // SAFETY: `pamh` is the live handle libpam passed to this hook, and
    // `name` a NUL-terminated string that outlives the call. pam_getenv
    // returns NULL or a pointer into the handle's own environment list,
    // valid until the handle's environment changes; it is copied at once,
    // before the handle is used again.
    let value = unsafe { pam_getenv(pamh as *mut PamHandle, name.as_ptr()) };
    if value.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL: a NUL-terminated string owned by libpam (above).
    let text = unsafe { CStr::from_ptr(value) };
    text.to_str().map(str::to_string).unwrap_or_default()
}

/// An error code from libpam, made sure not to be a success.
fn refusal(code: PamResultCode) -> PamResultCode {
    match code {
        PamResultCode::PAM_SUCCESS | PamResultCode::PAM_IGNORE => PamResultCode::PAM_SERVICE_ERR,
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_service_err() {
        let code = guard(|| std::panic::resume_unwind(Box::new("a bug in the module")));
        assert_eq!(code, PamResultCode::PAM_SERVICE_ERR);
    }

    #[test]
    fn hooks_pass_codes_through() {
        assert_eq!(
            guard(|| PamResultCode::PAM_IGNORE),
            PamResultCode::PAM_IGNORE
        );
    }

    #[test]
    fn refusals_are_never_success() {
        assert_eq!(
            refusal(PamResultCode::PAM_SUCCESS),
            PamResultCode::PAM_SERVICE_ERR
        );
        assert_eq!(
            refusal(PamResultCode::PAM_IGNORE),
            PamResultCode::PAM_SERVICE_ERR
        );
        assert_eq!(
            refusal(PamResultCode::PAM_CONV_ERR),
            PamResultCode::PAM_CONV_ERR
        );
    }
}

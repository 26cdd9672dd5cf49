//! What can go wrong, sorted into what callers must tell apart.

use std::ffi::{c_int, CStr};
use std::fmt;

use crate::ffi;

/// A libfido2 call that failed, or a verification that did not hold.
///
/// Every variant but [`FidoError::Verify`] names the libfido2 call and its
/// return code (`fido_strerr` gives the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FidoError {
    /// The key holds none of the credentials asked for
    /// (FIDO_ERR_NO_CREDENTIALS).
    NoCredentials { call: &'static str, code: c_int },
    /// The key wants its PIN (FIDO_ERR_PIN_REQUIRED; FIDO_ERR_UV_BLOCKED:
    /// built-in verification is blocked and the PIN is the way left), or
    /// user verification was required and the key can do none without one
    /// (FIDO_ERR_UNSUPPORTED_OPTION / FIDO_ERR_INVALID_OPTION to `uv`: the
    /// key has neither a PIN given nor built-in verification; see
    /// [`crate::Device::has_pin`] to tell "ask for the PIN" from "the key
    /// has no PIN set").
    PinRequired { call: &'static str, code: c_int },
    /// The key refused the PIN or the user's verification, or is blocked
    /// (FIDO_ERR_PIN_INVALID, FIDO_ERR_PIN_BLOCKED,
    /// FIDO_ERR_PIN_AUTH_BLOCKED, FIDO_ERR_UV_INVALID).
    PinInvalid { call: &'static str, code: c_int },
    /// Nobody touched the key in time: the key said so
    /// (FIDO_ERR_ACTION_TIMEOUT, FIDO_ERR_USER_ACTION_TIMEOUT), or the
    /// time set with [`crate::Device::set_timeout`] ran out while it was
    /// still waiting. libfido2 1.12 reports the latter as FIDO_ERR_RX: its
    /// receive loop skips the key's KEEPALIVE reports, charging each wait
    /// to the time left, and the read after the time ran out fails.
    Timeout { call: &'static str, code: c_int },
    /// The key already holds one of the excluded credentials
    /// (FIDO_ERR_CREDENTIAL_EXCLUDED).
    Excluded { call: &'static str, code: c_int },
    /// A credential or an assertion that does not verify: why.
    Verify(&'static str),
    /// Anything else libfido2 returned.
    Lib { call: &'static str, code: c_int },
}

/// What a device call was asked, for sorting its error.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Context {
    /// `uv` was set to true and no PIN was given.
    pub uv_asked: bool,
    /// A timeout was set and has elapsed since the call began.
    pub timed_out: bool,
}

impl FidoError {
    /// Sorts a libfido2 return code (not FIDO_OK) from `call`.
    pub(crate) fn from_code(call: &'static str, code: c_int, cx: Context) -> FidoError {
        match code {
            ffi::FIDO_ERR_NO_CREDENTIALS => FidoError::NoCredentials { call, code },
            ffi::FIDO_ERR_PIN_REQUIRED | ffi::FIDO_ERR_UV_BLOCKED => {
                FidoError::PinRequired { call, code }
            }
            ffi::FIDO_ERR_UNSUPPORTED_OPTION | ffi::FIDO_ERR_INVALID_OPTION if cx.uv_asked => {
                FidoError::PinRequired { call, code }
            }
            ffi::FIDO_ERR_PIN_INVALID
            | ffi::FIDO_ERR_PIN_BLOCKED
            | ffi::FIDO_ERR_PIN_AUTH_BLOCKED
            | ffi::FIDO_ERR_UV_INVALID => FidoError::PinInvalid { call, code },
            ffi::FIDO_ERR_ACTION_TIMEOUT | ffi::FIDO_ERR_USER_ACTION_TIMEOUT => {
                FidoError::Timeout { call, code }
            }
            ffi::FIDO_ERR_RX if cx.timed_out => FidoError::Timeout { call, code },
            ffi::FIDO_ERR_CREDENTIAL_EXCLUDED => FidoError::Excluded { call, code },
            _ => FidoError::Lib { call, code },
        }
    }

    /// The libfido2 call and code, when there is one.
    pub fn call_and_code(&self) -> Option<(&'static str, c_int)> {
        match *self {
            FidoError::NoCredentials { call, code }
            | FidoError::PinRequired { call, code }
            | FidoError::PinInvalid { call, code }
            | FidoError::Timeout { call, code }
            | FidoError::Excluded { call, code }
            | FidoError::Lib { call, code } => Some((call, code)),
            FidoError::Verify(_) => None,
        }
    }
}

/// libfido2's name for `code` ("FIDO_ERR_PIN_INVALID", …).
pub(crate) fn strerr(code: c_int) -> String {
    // SAFETY: fido_strerr takes any int and returns a pointer to a static
    // NUL-terminated string (never freed); NULL is checked.
    let p = unsafe { ffi::fido_strerr(code) };
    if p.is_null() {
        return format!("libfido2 error {code}");
    }
    // SAFETY: p is non-NULL, NUL-terminated and static (above).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

impl fmt::Display for FidoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            FidoError::Verify(why) => return write!(f, "security key verification failed: {why}"),
            FidoError::NoCredentials { .. } => "the key holds none of the credentials",
            FidoError::PinRequired { .. } => "the key wants its PIN",
            FidoError::PinInvalid { .. } => "the key refused the PIN",
            FidoError::Timeout { .. } => "the key was not touched in time",
            FidoError::Excluded { .. } => "the key is already registered",
            FidoError::Lib { .. } => "",
        };
        let (call, code) = self.call_and_code().unwrap_or(("", 0));
        if what.is_empty() {
            write!(f, "{call}: {}", strerr(code))
        } else {
            write!(f, "{what} ({call}: {})", strerr(code))
        }
    }
}

impl std::error::Error for FidoError {}

/// `Ok(())` for FIDO_OK, else `call`'s error, sorted without context
/// (setters and verifiers: no timeout, no `uv`).
pub(crate) fn check(call: &'static str, code: c_int) -> Result<(), FidoError> {
    if code == ffi::FIDO_OK {
        Ok(())
    } else {
        Err(FidoError::from_code(call, code, Context::default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_sort_into_what_callers_tell_apart() {
        let none = Context::default();
        let uv = Context {
            uv_asked: true,
            ..none
        };
        let late = Context {
            timed_out: true,
            ..none
        };
        let c = "fido_dev_get_assert";
        let sort = |code, cx| FidoError::from_code(c, code, cx);
        assert!(matches!(
            sort(ffi::FIDO_ERR_NO_CREDENTIALS, none),
            FidoError::NoCredentials { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_PIN_REQUIRED, none),
            FidoError::PinRequired { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_UV_BLOCKED, none),
            FidoError::PinRequired { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_UNSUPPORTED_OPTION, uv),
            FidoError::PinRequired { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_UNSUPPORTED_OPTION, none),
            FidoError::Lib { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_PIN_INVALID, none),
            FidoError::PinInvalid { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_PIN_BLOCKED, none),
            FidoError::PinInvalid { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_PIN_AUTH_BLOCKED, none),
            FidoError::PinInvalid { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_ACTION_TIMEOUT, none),
            FidoError::Timeout { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_USER_ACTION_TIMEOUT, none),
            FidoError::Timeout { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_RX, late),
            FidoError::Timeout { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_RX, none),
            FidoError::Lib { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_CREDENTIAL_EXCLUDED, none),
            FidoError::Excluded { .. }
        ));
        assert!(matches!(
            sort(ffi::FIDO_ERR_INTERNAL, uv),
            FidoError::Lib { .. }
        ));
    }

    #[test]
    fn the_text_names_the_call_and_libfido2s_name_for_the_code() {
        let e = FidoError::from_code(
            "fido_dev_get_assert",
            ffi::FIDO_ERR_PIN_INVALID,
            Context::default(),
        );
        assert_eq!(
            e.to_string(),
            "the key refused the PIN (fido_dev_get_assert: FIDO_ERR_PIN_INVALID)"
        );
        let e = FidoError::Lib {
            call: "fido_dev_open",
            code: ffi::FIDO_ERR_RX,
        };
        assert_eq!(e.to_string(), "fido_dev_open: FIDO_ERR_RX");
        // Codes libfido2 does not know still give a text.
        assert!(!strerr(12345).is_empty());
        assert_eq!(
            FidoError::Verify("the signature does not verify").to_string(),
            "security key verification failed: the signature does not verify"
        );
    }
}

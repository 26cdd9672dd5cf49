//! Checking an account password again, through the PAM service
//! `twofactor-reauth` (pam_unix only; never pam_twofactor, or checking a
//! password would ask for a code). Blocking: callers run it on a blocking
//! thread, a few at a time.

use std::ffi::{c_char, c_int, c_void, CString};
use twofactor_proto::names::MAX_PASSWORD_BYTES;
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum ReauthError {
    #[error("PAM service {service}: {message}")]
    Pam { service: String, message: String },
}

/// Checks a user's password.
pub trait Reauth: Send + Sync {
    /// `Ok(true)`: right password. `Ok(false)`: wrong password, unknown or
    /// disabled account. `Err`: PAM itself failed (the caller fails closed).
    fn check(&self, user: &str, password: &[u8]) -> Result<bool, ReauthError>;
}

/// The real check, through libpam.
pub struct PamReauth {
    pub service: String,
}

impl Reauth for PamReauth {
    fn check(&self, user: &str, password: &[u8]) -> Result<bool, ReauthError> {
        if password.is_empty() || password.len() > MAX_PASSWORD_BYTES || password.contains(&0) {
            return Ok(false);
        }
        let err = |message: String| ReauthError::Pam {
            service: self.service.clone(),
            message,
        };
        let service = CString::new(self.service.as_str()).map_err(|_| err("bad name".into()))?;
        let Ok(c_user) = CString::new(user) else {
            return Ok(false);
        };
        let secret = Zeroizing::new(password.to_vec());
        let mut handle = ffi::Handle::start(&service, &c_user, &secret).map_err(err)?;
        match handle.authenticate() {
            ffi::PAM_SUCCESS => {}
            code if refused(code) => return Ok(false),
            code => return Err(err(handle.describe(code))),
        }
        match handle.acct_mgmt() {
            // The password was right; an expired password is still the
            // user's password, so re-authentication holds.
            ffi::PAM_SUCCESS | ffi::PAM_NEW_AUTHTOK_REQD => Ok(true),
            code if refused(code) => Ok(false),
            code => Err(err(handle.describe(code))),
        }
    }
}

/// PAM results that mean "no" rather than "PAM is broken".
fn refused(code: c_int) -> bool {
    matches!(
        code,
        ffi::PAM_AUTH_ERR
            | ffi::PAM_USER_UNKNOWN
            | ffi::PAM_MAXTRIES
            | ffi::PAM_PERM_DENIED
            | ffi::PAM_ACCT_EXPIRED
            | ffi::PAM_CRED_INSUFFICIENT
            | ffi::PAM_AUTHTOK_EXPIRED
    )
}

/// The few libpam calls a PAM *application* needs. Every `unsafe` of the
/// daemon is here.
mod ffi {
    use super::*;

    pub const PAM_SUCCESS: c_int = 0;
    pub const PAM_PERM_DENIED: c_int = 6;
    pub const PAM_AUTH_ERR: c_int = 7;
    pub const PAM_CRED_INSUFFICIENT: c_int = 8;
    pub const PAM_USER_UNKNOWN: c_int = 10;
    pub const PAM_MAXTRIES: c_int = 11;
    pub const PAM_NEW_AUTHTOK_REQD: c_int = 12;
    pub const PAM_ACCT_EXPIRED: c_int = 13;
    pub const PAM_AUTHTOK_EXPIRED: c_int = 27;
    const PAM_BUF_ERR: c_int = 5;
    const PAM_CONV_ERR: c_int = 19;
    const PAM_SILENT: c_int = 0x8000;
    const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;
    const PAM_PROMPT_ECHO_OFF: c_int = 1;
    const PAM_PROMPT_ECHO_ON: c_int = 2;

    #[repr(C)]
    struct PamMessage {
        msg_style: c_int,
        msg: *const c_char,
    }

    #[repr(C)]
    struct PamResponse {
        resp: *mut c_char,
        resp_retcode: c_int,
    }

    type ConvFn =
        extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int;

    #[repr(C)]
    struct PamConv {
        conv: ConvFn,
        appdata_ptr: *mut c_void,
    }

    enum PamHandleT {}

    #[link(name = "pam")]
    extern "C" {
        fn pam_start(
            service: *const c_char,
            user: *const c_char,
            conv: *const PamConv,
            pamh: *mut *mut PamHandleT,
        ) -> c_int;
        fn pam_authenticate(pamh: *mut PamHandleT, flags: c_int) -> c_int;
        fn pam_acct_mgmt(pamh: *mut PamHandleT, flags: c_int) -> c_int;
        fn pam_end(pamh: *mut PamHandleT, status: c_int) -> c_int;
        fn pam_strerror(pamh: *mut PamHandleT, errnum: c_int) -> *const c_char;
    }

    /// What the conversation answers: the user name to echo-on prompts,
    /// the password to echo-off prompts.
    struct Answers<'a> {
        user: &'a CString,
        password: &'a [u8],
    }

    /// A started PAM transaction; ended on drop.
    pub struct Handle<'a> {
        pamh: *mut PamHandleT,
        last: c_int,
        // Boxed so their addresses stay put while libpam holds them.
        _conv: Box<PamConv>,
        _answers: Box<Answers<'a>>,
    }

    impl<'a> Handle<'a> {
        pub fn start(
            service: &CString,
            user: &'a CString,
            password: &'a [u8],
        ) -> Result<Handle<'a>, String> {
            let mut answers = Box::new(Answers { user, password });
            let conv = Box::new(PamConv {
                conv: converse,
                appdata_ptr: (&mut *answers as *mut Answers<'a>).cast::<c_void>(),
            });
            let mut pamh: *mut PamHandleT = std::ptr::null_mut();
            // SAFETY: service and user are NUL-terminated and outlive the
            // call; conv points to a boxed PamConv that lives as long as the
            // handle (it is dropped after pam_end); pamh is a valid out
            // pointer.
            let rc = unsafe { pam_start(service.as_ptr(), user.as_ptr(), &*conv, &mut pamh) };
            if rc != PAM_SUCCESS || pamh.is_null() {
                return Err(format!("pam_start failed ({rc})"));
            }
            Ok(Handle {
                pamh,
                last: rc,
                _conv: conv,
                _answers: answers,
            })
        }

        pub fn authenticate(&mut self) -> c_int {
            // SAFETY: pamh came from a successful pam_start and is not ended.
            self.last =
                unsafe { pam_authenticate(self.pamh, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK) };
            self.last
        }

        pub fn acct_mgmt(&mut self) -> c_int {
            // SAFETY: as above.
            self.last = unsafe { pam_acct_mgmt(self.pamh, PAM_SILENT) };
            self.last
        }

        pub fn describe(&self, code: c_int) -> String {
            // SAFETY: pam_strerror returns a pointer to a static or
            // handle-owned NUL-terminated string, or NULL.
            let p = unsafe { pam_strerror(self.pamh, code) };
            if p.is_null() {
                return format!("PAM error {code}");
            }
            // SAFETY: p is non-null and NUL-terminated (see above).
            let text = unsafe { std::ffi::CStr::from_ptr(p) };
            format!("{} ({code})", text.to_string_lossy())
        }
    }

    impl Drop for Handle<'_> {
        fn drop(&mut self) {
            // SAFETY: pamh came from a successful pam_start; pam_end is
            // called exactly once, here.
            unsafe {
                pam_end(self.pamh, self.last);
            }
        }
    }

    /// Copies bytes into a malloc'ed NUL-terminated string (libpam frees
    /// responses with free()).
    fn c_copy(bytes: &[u8]) -> *mut c_char {
        // SAFETY: calloc of len+1 bytes; checked for NULL before use.
        let p = unsafe { libc::calloc(bytes.len() + 1, 1) }.cast::<c_char>();
        if !p.is_null() {
            // SAFETY: p has room for bytes.len() + 1 bytes and does not
            // overlap bytes; the last byte stays 0 from calloc.
            unsafe {
                std::ptr::copy_nonoverlapping(bytes.as_ptr().cast::<c_char>(), p, bytes.len())
            };
        }
        p
    }

    extern "C" fn converse(
        num_msg: c_int,
        msg: *mut *const PamMessage,
        resp: *mut *mut PamResponse,
        appdata: *mut c_void,
    ) -> c_int {
        let run = || -> c_int {
            if num_msg <= 0 || num_msg > 32 || msg.is_null() || resp.is_null() || appdata.is_null()
            {
                return PAM_CONV_ERR;
            }
            let n = num_msg as usize;
            // SAFETY: appdata is the Answers box set in Handle::start, alive
            // for the whole transaction.
            let answers = unsafe { &*appdata.cast::<Answers<'_>>() };
            // SAFETY: calloc of n responses; checked for NULL.
            let out = unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }
                .cast::<PamResponse>();
            if out.is_null() {
                return PAM_BUF_ERR;
            }
            for i in 0..n {
                // SAFETY: Linux-PAM passes an array of n message pointers.
                let m = unsafe { *msg.add(i) };
                if m.is_null() {
                    continue;
                }
                // SAFETY: m points to a valid pam_message.
                let style = unsafe { (*m).msg_style };
                let answer = match style {
                    PAM_PROMPT_ECHO_OFF => c_copy(answers.password),
                    PAM_PROMPT_ECHO_ON => c_copy(answers.user.as_bytes()),
                    _ => std::ptr::null_mut(),
                };
                // SAFETY: out has n zeroed entries; i < n.
                unsafe { (*out.add(i)).resp = answer };
            }
            // SAFETY: resp is a valid out pointer; libpam frees out and
            // every resp in it.
            unsafe { *resp = out };
            PAM_SUCCESS
        };
        std::panic::catch_unwind(run).unwrap_or(PAM_CONV_ERR)
    }
}

#[cfg(test)]
pub mod testing {
    use super::*;
    use std::collections::HashMap;

    /// Passwords from a table.
    pub struct FakeReauth(pub HashMap<String, Vec<u8>>);

    impl FakeReauth {
        pub fn new(entries: &[(&str, &str)]) -> Self {
            FakeReauth(
                entries
                    .iter()
                    .map(|(u, p)| (u.to_string(), p.as_bytes().to_vec()))
                    .collect(),
            )
        }
    }

    impl Reauth for FakeReauth {
        fn check(&self, user: &str, password: &[u8]) -> Result<bool, ReauthError> {
            Ok(self.0.get(user).map(|p| p == password).unwrap_or(false))
        }
    }
}

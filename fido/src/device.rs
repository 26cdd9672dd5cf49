//! The key's side: finding keys, creating a credential, signing a
//! challenge.

use std::ffi::{c_char, c_int, CStr};
use std::ptr::{self, NonNull};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

use crate::error::{check, Context, FidoError};
use crate::{c_string, copy_bytes, ffi, init, RP_NAME};
use twofactor_proto::key::{
    Assertion, AssertionRequest, Attestation, CredentialRequest, UserVerification,
};

/// The most keys [`devices`] lists.
pub const MAX_DEVICES: usize = 16;

/// How long opening a key may take (CTAPHID_INIT and authenticatorGetInfo:
/// no touch involved), whatever [`Device::set_timeout`] says later.
const OPEN_TIMEOUT_MS: c_int = 5_000;

/// An error this close to the timeout (or later) counts as the timeout
/// running out: libfido2 rounds the time charged to each read down to the
/// millisecond.
const TIMEOUT_SLACK: Duration = Duration::from_millis(100);

/// `fido_dev_info_new(n)`'s list, freed with `fido_dev_info_free`.
struct DevInfoList {
    ptr: NonNull<ffi::fido_dev_info_t>,
    n: usize,
}

impl DevInfoList {
    fn new(n: usize) -> Result<Self, FidoError> {
        // SAFETY: fido_dev_info_new allocates n zeroed entries or returns
        // NULL (checked).
        let p = unsafe { ffi::fido_dev_info_new(n) };
        NonNull::new(p)
            .map(|ptr| DevInfoList { ptr, n })
            .ok_or(FidoError::Lib {
                call: "fido_dev_info_new",
                code: ffi::FIDO_ERR_INTERNAL,
            })
    }
}

impl Drop for DevInfoList {
    fn drop(&mut self) {
        let mut p = self.ptr.as_ptr();
        // SAFETY: p came from fido_dev_info_new(self.n) and is freed once,
        // with the same count.
        unsafe { ffi::fido_dev_info_free(&mut p, self.n) }
    }
}

/// The paths of the security keys plugged in (hidraw devices that say
/// they are FIDO), at most [`MAX_DEVICES`].
pub fn devices() -> Result<Vec<String>, FidoError> {
    init();
    let list = DevInfoList::new(MAX_DEVICES)?;
    let mut found = 0usize;
    // SAFETY: list holds MAX_DEVICES entries; found is a valid out
    // pointer.
    let r = unsafe { ffi::fido_dev_info_manifest(list.ptr.as_ptr(), MAX_DEVICES, &mut found) };
    check("fido_dev_info_manifest", r)?;
    let mut paths = Vec::new();
    for i in 0..found.min(MAX_DEVICES) {
        // SAFETY: i < found <= MAX_DEVICES entries of list; the result
        // points into list (or is NULL, checked).
        let di = unsafe { ffi::fido_dev_info_ptr(list.ptr.as_ptr(), i) };
        if di.is_null() {
            continue;
        }
        // SAFETY: di is one of list's entries; the path is NULL or a
        // NUL-terminated string owned by the entry, copied before list is
        // freed.
        let path = unsafe { ffi::fido_dev_info_path(di) };
        if path.is_null() {
            continue;
        }
        // SAFETY: non-NULL, NUL-terminated, alive while list is (above).
        if let Ok(s) = unsafe { CStr::from_ptr(path) }.to_str() {
            paths.push(s.to_owned());
        }
    }
    Ok(paths)
}

/// `fido_cred_new()`, freed with `fido_cred_free`.
pub(crate) struct Cred(NonNull<ffi::fido_cred_t>);

impl Cred {
    pub(crate) fn new() -> Result<Self, FidoError> {
        // SAFETY: no arguments; NULL (out of memory) is checked.
        NonNull::new(unsafe { ffi::fido_cred_new() })
            .map(Cred)
            .ok_or(FidoError::Lib {
                call: "fido_cred_new",
                code: ffi::FIDO_ERR_INTERNAL,
            })
    }
    pub(crate) fn ptr(&self) -> *mut ffi::fido_cred_t {
        self.0.as_ptr()
    }

    /// A credential set up for `req`, as both sides need it: making it on
    /// a key and verifying what the key made. Type ES256, the client data
    /// hash, the relying party, and user verification asked (true) only
    /// for [`UserVerification::Required`].
    pub(crate) fn for_request(req: &CredentialRequest) -> Result<Self, FidoError> {
        let rp = c_string(&req.rp_id, "fido_cred_set_rp")?;
        let rp_name = c_string(RP_NAME, "fido_cred_set_rp")?;
        let uv = if req.user_verification == UserVerification::Required {
            ffi::FIDO_OPT_TRUE
        } else {
            ffi::FIDO_OPT_OMIT
        };
        let cred = Cred::new()?;
        let c = cred.ptr();
        // SAFETY: (the setters below) c is a live fido_cred_t; every
        // pointer is valid for its length (or NUL-terminated) during the
        // call, and libfido2 copies what it keeps.
        unsafe {
            check(
                "fido_cred_set_type",
                ffi::fido_cred_set_type(c, ffi::COSE_ES256),
            )?;
            check(
                "fido_cred_set_clientdata_hash",
                ffi::fido_cred_set_clientdata_hash(
                    c,
                    req.client_data_hash.as_ptr(),
                    req.client_data_hash.len(),
                ),
            )?;
            check(
                "fido_cred_set_rp",
                ffi::fido_cred_set_rp(c, rp.as_ptr(), rp_name.as_ptr()),
            )?;
            check("fido_cred_set_uv", ffi::fido_cred_set_uv(c, uv))?;
        }
        Ok(cred)
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        let mut p = self.0.as_ptr();
        // SAFETY: p came from fido_cred_new and is freed once.
        unsafe { ffi::fido_cred_free(&mut p) }
    }
}

/// `fido_assert_new()`, freed with `fido_assert_free`.
pub(crate) struct Assert(NonNull<ffi::fido_assert_t>);

impl Assert {
    pub(crate) fn new() -> Result<Self, FidoError> {
        // SAFETY: no arguments; NULL (out of memory) is checked.
        NonNull::new(unsafe { ffi::fido_assert_new() })
            .map(Assert)
            .ok_or(FidoError::Lib {
                call: "fido_assert_new",
                code: ffi::FIDO_ERR_INTERNAL,
            })
    }
    pub(crate) fn ptr(&self) -> *mut ffi::fido_assert_t {
        self.0.as_ptr()
    }
}

impl Drop for Assert {
    fn drop(&mut self) {
        let mut p = self.0.as_ptr();
        // SAFETY: p came from fido_assert_new and is freed once.
        unsafe { ffi::fido_assert_free(&mut p) }
    }
}

/// The PIN as libfido2 takes it (NUL-terminated), wiped when dropped. An
/// empty PIN is no PIN; one with a NUL byte is not a PIN any key accepts.
fn pin_c(pin: Option<&str>, call: &'static str) -> Result<Option<Zeroizing<Vec<u8>>>, FidoError> {
    match pin {
        None | Some("") => Ok(None),
        Some(p) if p.as_bytes().contains(&0) => Err(FidoError::PinInvalid {
            call,
            code: ffi::FIDO_ERR_PIN_INVALID,
        }),
        Some(p) => {
            let mut v = Zeroizing::new(Vec::with_capacity(p.len() + 1));
            v.extend_from_slice(p.as_bytes());
            v.push(0);
            Ok(Some(v))
        }
    }
}

fn pin_ptr(pin: &Option<Zeroizing<Vec<u8>>>) -> *const c_char {
    pin.as_ref()
        .map_or(ptr::null(), |p| p.as_ptr().cast::<c_char>())
}

/// An open security key.
///
/// The timeout ([`Device::set_timeout`]) starts as libfido2's default: no
/// limit. Dropping it closes the device (`fido_dev_close`) and frees it.
pub struct Device {
    dev: NonNull<ffi::fido_dev_t>,
    open: bool,
    timeout_ms: c_int,
}

// SAFETY: a fido_dev_t has no tie to the thread that made it: libfido2
// keeps no per-device thread-local state (its one thread-local flag, the
// U2F fallback switch of fido_init, stays at the default fido_init(0)
// sets). Device is not Sync, so one thread at a time uses it.
unsafe impl Send for Device {}

impl Device {
    /// `fido_dev_new()`, closed.
    fn new() -> Result<Self, FidoError> {
        init();
        // SAFETY: no arguments; NULL (out of memory) is checked.
        let p = unsafe { ffi::fido_dev_new() };
        let dev = NonNull::new(p).ok_or(FidoError::Lib {
            call: "fido_dev_new",
            code: ffi::FIDO_ERR_INTERNAL,
        })?;
        Ok(Device {
            dev,
            open: false,
            timeout_ms: -1,
        })
    }

    /// `fido_dev_open(path)` with [`OPEN_TIMEOUT_MS`], then back to no
    /// limit.
    fn open_path(mut self, path: &CStr, call: &'static str) -> Result<Self, FidoError> {
        self.set_timeout(OPEN_TIMEOUT_MS)?;
        let start = Instant::now();
        // SAFETY: self.dev is a live, closed fido_dev_t; path is
        // NUL-terminated and outlives the call (libfido2 copies what it
        // keeps).
        let r = unsafe { ffi::fido_dev_open(self.dev.as_ptr(), path.as_ptr()) };
        if r != ffi::FIDO_OK {
            return Err(FidoError::from_code(call, r, self.context(start, false)));
        }
        self.open = true;
        self.set_timeout(-1)?;
        Ok(self)
    }

    /// Opens the key at `path` (a hidraw device from [`devices`]).
    pub fn open(path: &str) -> Result<Device, FidoError> {
        let c = c_string(path, "fido_dev_open")?;
        Device::new()?.open_path(&c, "fido_dev_open")
    }

    /// Opens the software authenticator listening on the Unix stream
    /// socket `socket` (tests only): each 65-byte HID report libfido2
    /// writes (report id 0, then 64 bytes) goes to the socket as is, and
    /// each 64-byte report it reads comes from it.
    #[cfg(feature = "test-transport")]
    pub fn open_test(socket: &std::path::Path) -> Result<Device, FidoError> {
        use std::os::unix::ffi::OsStrExt;
        let path =
            std::ffi::CString::new(socket.as_os_str().as_bytes()).map_err(|_| FidoError::Lib {
                call: crate::transport::OPEN_CALL,
                code: ffi::FIDO_ERR_INVALID_ARGUMENT,
            })?;
        let dev = Device::new()?;
        let io = crate::transport::io_functions();
        // SAFETY: dev is a live fido_dev_t with no handle open; libfido2
        // copies the four (non-NULL) function pointers out of io.
        let r = unsafe { ffi::fido_dev_set_io_functions(dev.dev.as_ptr(), &io) };
        check(crate::transport::SET_IO_CALL, r)?;
        dev.open_path(&path, crate::transport::OPEN_CALL)
    }

    /// How long one operation may wait for the key (touch included), in
    /// milliseconds; -1: no limit (`fido_dev_set_timeout`).
    pub fn set_timeout(&mut self, ms: i32) -> Result<(), FidoError> {
        // SAFETY: self.dev is a live fido_dev_t; libfido2 refuses ms < -1.
        let r = unsafe { ffi::fido_dev_set_timeout(self.dev.as_ptr(), ms) };
        check("fido_dev_set_timeout", r)?;
        self.timeout_ms = ms;
        Ok(())
    }

    /// The key verifies its user itself (a fingerprint is enrolled).
    pub fn has_builtin_uv(&self) -> bool {
        // SAFETY: self.dev is a live fido_dev_t; this reads flags set at
        // open.
        unsafe { ffi::fido_dev_has_uv(self.dev.as_ptr()) }
    }

    /// The key has a PIN set.
    pub fn has_pin(&self) -> bool {
        // SAFETY: as in has_builtin_uv.
        unsafe { ffi::fido_dev_has_pin(self.dev.as_ptr()) }
    }

    fn context(&self, start: Instant, uv_asked: bool) -> Context {
        let timed_out = u64::try_from(self.timeout_ms)
            .is_ok_and(|ms| start.elapsed() + TIMEOUT_SLACK >= Duration::from_millis(ms));
        Context {
            uv_asked,
            timed_out,
        }
    }

    /// Has the key create a credential (ES256, not resident) for `req`;
    /// the user touches it. The PIN, when given, goes to
    /// `fido_dev_make_cred`; `uv` is asked (true) only for
    /// [`UserVerification::Required`] (libfido2 then gets a token from
    /// the PIN or the key's built-in verification).
    pub fn make_credential(
        &mut self,
        req: &CredentialRequest,
        pin: Option<&str>,
    ) -> Result<Attestation, FidoError> {
        let cred = Cred::for_request(req)?;
        let c = cred.ptr();
        let name = c_string(&req.user_name, "fido_cred_set_user")?;
        let required = req.user_verification == UserVerification::Required;
        // SAFETY: (the setters below) c is a live fido_cred_t; every
        // pointer is valid for its length (or NUL-terminated) during the
        // call, and libfido2 copies what it keeps.
        unsafe {
            check(
                "fido_cred_set_user",
                ffi::fido_cred_set_user(
                    c,
                    req.user_id.as_ptr(),
                    req.user_id.len(),
                    name.as_ptr(),
                    ptr::null(),
                    ptr::null(),
                ),
            )?;
            for id in &req.exclude {
                check(
                    "fido_cred_exclude",
                    ffi::fido_cred_exclude(c, id.as_ptr(), id.len()),
                )?;
            }
        }
        let pin = pin_c(pin, "fido_dev_make_cred")?;
        let uv_asked = required && pin.is_none();
        let start = Instant::now();
        // SAFETY: self.dev is live (open or not: libfido2 checks), c is a
        // live fido_cred_t, the PIN is NULL or NUL-terminated and outlives
        // the call.
        let r = unsafe { ffi::fido_dev_make_cred(self.dev.as_ptr(), c, pin_ptr(&pin)) };
        drop(pin);
        if r != ffi::FIDO_OK {
            let cx = self.context(start, uv_asked);
            return Err(FidoError::from_code("fido_dev_make_cred", r, cx));
        }
        // SAFETY: (the getters below) c is live; each pointer/length pair
        // describes memory owned by c, copied before c is freed.
        let fmt = unsafe {
            let p = ffi::fido_cred_fmt(c);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        };
        // SAFETY: as above.
        let att = unsafe {
            Attestation {
                fmt,
                authdata: copy_bytes(
                    ffi::fido_cred_authdata_ptr(c),
                    ffi::fido_cred_authdata_len(c),
                ),
                x5c: copy_bytes(ffi::fido_cred_x5c_ptr(c), ffi::fido_cred_x5c_len(c)),
                signature: copy_bytes(ffi::fido_cred_sig_ptr(c), ffi::fido_cred_sig_len(c)),
            }
        };
        Ok(att)
    }

    /// Has the key sign `req`'s challenge with one of `req.allow`
    /// (assertion 0 of what it returns). `up`: whether the user must touch
    /// it; `up = false` is libfido2's silent probe (option `up: false`),
    /// which tells whether the key holds one of the credentials without
    /// a touch (a U2F-only key answers FIDO_ERR_USER_PRESENCE_REQUIRED
    /// when it does). `uv` is asked (true) only for
    /// [`UserVerification::Required`]. The credential id is returned as
    /// the key gave it; a key may leave it out when the allow list has a
    /// single entry, and then it is that entry.
    pub fn get_assertion(
        &mut self,
        req: &AssertionRequest,
        pin: Option<&str>,
        up: bool,
    ) -> Result<Assertion, FidoError> {
        let assert = Assert::new()?;
        let a = assert.ptr();
        let rp = c_string(&req.rp_id, "fido_assert_set_rp")?;
        let required = req.user_verification == UserVerification::Required;
        // SAFETY: (the setters below) a is a live fido_assert_t; every
        // pointer is valid for its length (or NUL-terminated) during the
        // call, and libfido2 copies what it keeps.
        unsafe {
            check(
                "fido_assert_set_rp",
                ffi::fido_assert_set_rp(a, rp.as_ptr()),
            )?;
            check(
                "fido_assert_set_clientdata_hash",
                ffi::fido_assert_set_clientdata_hash(
                    a,
                    req.client_data_hash.as_ptr(),
                    req.client_data_hash.len(),
                ),
            )?;
            for id in &req.allow {
                check(
                    "fido_assert_allow_cred",
                    ffi::fido_assert_allow_cred(a, id.as_ptr(), id.len()),
                )?;
            }
            let up = if up {
                ffi::FIDO_OPT_TRUE
            } else {
                ffi::FIDO_OPT_FALSE
            };
            check("fido_assert_set_up", ffi::fido_assert_set_up(a, up))?;
            let uv = if required {
                ffi::FIDO_OPT_TRUE
            } else {
                ffi::FIDO_OPT_OMIT
            };
            check("fido_assert_set_uv", ffi::fido_assert_set_uv(a, uv))?;
        }
        let pin = pin_c(pin, "fido_dev_get_assert")?;
        let uv_asked = required && pin.is_none();
        let start = Instant::now();
        // SAFETY: self.dev is live (libfido2 checks it is open), a is a
        // live fido_assert_t, the PIN is NULL or NUL-terminated and
        // outlives the call.
        let r = unsafe { ffi::fido_dev_get_assert(self.dev.as_ptr(), a, pin_ptr(&pin)) };
        drop(pin);
        if r != ffi::FIDO_OK {
            let cx = self.context(start, uv_asked);
            return Err(FidoError::from_code("fido_dev_get_assert", r, cx));
        }
        // SAFETY: a is live.
        if unsafe { ffi::fido_assert_count(a) } == 0 {
            return Err(FidoError::Lib {
                call: "fido_dev_get_assert",
                code: ffi::FIDO_ERR_RX_INVALID_CBOR,
            });
        }
        // SAFETY: (the getters below) a is live and holds assertion 0
        // (count checked); each pointer/length pair describes memory owned
        // by a, copied before a is freed.
        let mut out = unsafe {
            Assertion {
                credential_id: copy_bytes(
                    ffi::fido_assert_id_ptr(a, 0),
                    ffi::fido_assert_id_len(a, 0),
                ),
                authdata: copy_bytes(
                    ffi::fido_assert_authdata_ptr(a, 0),
                    ffi::fido_assert_authdata_len(a, 0),
                ),
                signature: copy_bytes(
                    ffi::fido_assert_sig_ptr(a, 0),
                    ffi::fido_assert_sig_len(a, 0),
                ),
            }
        };
        if out.credential_id.is_empty() {
            if let [only] = req.allow.as_slice() {
                out.credential_id = only.clone();
            }
        }
        Ok(out)
    }

    /// Tells the key to stop waiting for a touch (CTAPHID_CANCEL), e.g.
    /// after a timeout, so that it stops blinking. Errors are ignored.
    pub fn cancel(&mut self) {
        if self.open {
            // SAFETY: self.dev is a live, open fido_dev_t.
            let _ = unsafe { ffi::fido_dev_cancel(self.dev.as_ptr()) };
        }
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        if self.open {
            // SAFETY: self.dev is live and open; fido_dev_free does not
            // close, so close first (for the test transport this drops
            // the socket).
            let _ = unsafe { ffi::fido_dev_close(self.dev.as_ptr()) };
        }
        let mut p = self.dev.as_ptr();
        // SAFETY: p came from fido_dev_new and is freed once.
        unsafe { ffi::fido_dev_free(&mut p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_pin_is_no_pin_and_a_pin_is_nul_terminated() {
        assert!(pin_c(None, "x").unwrap().is_none());
        assert!(pin_c(Some(""), "x").unwrap().is_none());
        assert_eq!(
            pin_c(Some("1234"), "x").unwrap().unwrap().as_slice(),
            b"1234\0"
        );
        assert!(matches!(
            pin_c(Some("12\u{0}34"), "x"),
            Err(FidoError::PinInvalid { .. })
        ));
    }

    #[test]
    fn a_path_that_is_no_device_fails_to_open() {
        assert!(Device::open("/nonexistent/hidraw99").is_err());
        assert!(Device::open("a\u{0}b").is_err());
    }

    #[test]
    fn listing_devices_works_without_any() {
        // No assumption about what is plugged in: only that it answers.
        let paths = devices().unwrap();
        assert!(paths.len() <= MAX_DEVICES);
    }
}

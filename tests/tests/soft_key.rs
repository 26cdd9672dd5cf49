//! The software security key (`twofactor_tests::soft_key`) driven by the
//! real libfido2: the library frames CTAPHID, encodes the requests,
//! parses the replies strictly and checks the signatures, so what passes
//! here is what libfido2 accepts from a real key, and each misbehaviour is
//! shown with what libfido2 makes of it.
//!
//! libfido2 reaches the key through `fido_dev_set_io_functions`: io
//! callbacks here connect to the key's Unix socket. The handful of libfido2
//! functions needed are declared privately below (the workspace's libfido2
//! wrapper crate is not used, so that this test stands on its own).

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use twofactor_tests::soft_key::{Behaviour, SoftKey, SoftKeyOptions, COSE_EDDSA, COSE_ES256};

mod ffi {
    #![allow(non_camel_case_types)]
    use std::ffi::{c_char, c_int, c_void};

    #[repr(C)]
    pub struct fido_dev_t {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct fido_cred_t {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct fido_assert_t {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct es256_pk_t {
        _private: [u8; 0],
    }
    #[repr(C)]
    pub struct eddsa_pk_t {
        _private: [u8; 0],
    }

    /// `fido_dev_io_t` of <fido/types.h>.
    #[repr(C)]
    pub struct fido_dev_io_t {
        pub open: unsafe extern "C" fn(*const c_char) -> *mut c_void,
        pub close: unsafe extern "C" fn(*mut c_void),
        pub read: unsafe extern "C" fn(*mut c_void, *mut u8, usize, c_int) -> c_int,
        pub write: unsafe extern "C" fn(*mut c_void, *const u8, usize) -> c_int,
    }

    pub const FIDO_OK: c_int = 0;
    pub const FIDO_DISABLE_U2F_FALLBACK: c_int = 0x02;
    /// fido_opt_t
    pub const FIDO_OPT_TRUE: c_int = 2;

    pub const FIDO_ERR_CREDENTIAL_EXCLUDED: c_int = 0x19;
    pub const FIDO_ERR_UNSUPPORTED_ALGORITHM: c_int = 0x26;
    pub const FIDO_ERR_UNSUPPORTED_OPTION: c_int = 0x2b;
    pub const FIDO_ERR_KEEPALIVE_CANCEL: c_int = 0x2d;
    pub const FIDO_ERR_NO_CREDENTIALS: c_int = 0x2e;
    pub const FIDO_ERR_RX: c_int = -2;
    pub const FIDO_ERR_RX_NOT_CBOR: c_int = -3;
    pub const FIDO_ERR_INVALID_PARAM: c_int = -5;
    pub const FIDO_ERR_INVALID_SIG: c_int = -6;

    pub const COSE_RS256: c_int = -257;

    #[link(name = "fido2")]
    extern "C" {
        pub fn fido_init(flags: c_int);
        pub fn fido_strerr(n: c_int) -> *const c_char;

        pub fn fido_dev_new() -> *mut fido_dev_t;
        pub fn fido_dev_free(dev: *mut *mut fido_dev_t);
        pub fn fido_dev_set_io_functions(dev: *mut fido_dev_t, io: *const fido_dev_io_t) -> c_int;
        pub fn fido_dev_set_timeout(dev: *mut fido_dev_t, ms: c_int) -> c_int;
        pub fn fido_dev_open(dev: *mut fido_dev_t, path: *const c_char) -> c_int;
        pub fn fido_dev_close(dev: *mut fido_dev_t) -> c_int;
        pub fn fido_dev_cancel(dev: *mut fido_dev_t) -> c_int;
        pub fn fido_dev_is_fido2(dev: *const fido_dev_t) -> bool;
        pub fn fido_dev_has_uv(dev: *const fido_dev_t) -> bool;

        pub fn fido_cred_new() -> *mut fido_cred_t;
        pub fn fido_cred_free(cred: *mut *mut fido_cred_t);
        pub fn fido_cred_set_type(cred: *mut fido_cred_t, cose_alg: c_int) -> c_int;
        pub fn fido_cred_set_clientdata_hash(
            cred: *mut fido_cred_t,
            hash: *const u8,
            len: usize,
        ) -> c_int;
        pub fn fido_cred_set_rp(
            cred: *mut fido_cred_t,
            id: *const c_char,
            name: *const c_char,
        ) -> c_int;
        pub fn fido_cred_set_user(
            cred: *mut fido_cred_t,
            user_id: *const u8,
            user_id_len: usize,
            name: *const c_char,
            display_name: *const c_char,
            icon: *const c_char,
        ) -> c_int;
        pub fn fido_cred_set_uv(cred: *mut fido_cred_t, uv: c_int) -> c_int;
        pub fn fido_cred_exclude(cred: *mut fido_cred_t, id: *const u8, len: usize) -> c_int;
        pub fn fido_dev_make_cred(
            dev: *mut fido_dev_t,
            cred: *mut fido_cred_t,
            pin: *const c_char,
        ) -> c_int;
        pub fn fido_cred_verify_self(cred: *const fido_cred_t) -> c_int;
        pub fn fido_cred_id_ptr(cred: *const fido_cred_t) -> *const u8;
        pub fn fido_cred_id_len(cred: *const fido_cred_t) -> usize;
        pub fn fido_cred_pubkey_ptr(cred: *const fido_cred_t) -> *const u8;
        pub fn fido_cred_pubkey_len(cred: *const fido_cred_t) -> usize;
        pub fn fido_cred_aaguid_ptr(cred: *const fido_cred_t) -> *const u8;
        pub fn fido_cred_aaguid_len(cred: *const fido_cred_t) -> usize;
        pub fn fido_cred_fmt(cred: *const fido_cred_t) -> *const c_char;
        pub fn fido_cred_flags(cred: *const fido_cred_t) -> u8;
        pub fn fido_cred_sigcount(cred: *const fido_cred_t) -> u32;

        pub fn fido_assert_new() -> *mut fido_assert_t;
        pub fn fido_assert_free(assert: *mut *mut fido_assert_t);
        pub fn fido_assert_set_rp(assert: *mut fido_assert_t, id: *const c_char) -> c_int;
        pub fn fido_assert_set_clientdata_hash(
            assert: *mut fido_assert_t,
            hash: *const u8,
            len: usize,
        ) -> c_int;
        pub fn fido_assert_allow_cred(
            assert: *mut fido_assert_t,
            id: *const u8,
            len: usize,
        ) -> c_int;
        pub fn fido_assert_set_up(assert: *mut fido_assert_t, up: c_int) -> c_int;
        pub fn fido_assert_set_uv(assert: *mut fido_assert_t, uv: c_int) -> c_int;
        pub fn fido_dev_get_assert(
            dev: *mut fido_dev_t,
            assert: *mut fido_assert_t,
            pin: *const c_char,
        ) -> c_int;
        pub fn fido_assert_count(assert: *const fido_assert_t) -> usize;
        pub fn fido_assert_flags(assert: *const fido_assert_t, idx: usize) -> u8;
        pub fn fido_assert_sigcount(assert: *const fido_assert_t, idx: usize) -> u32;
        pub fn fido_assert_id_ptr(assert: *const fido_assert_t, idx: usize) -> *const u8;
        pub fn fido_assert_id_len(assert: *const fido_assert_t, idx: usize) -> usize;
        pub fn fido_assert_verify(
            assert: *const fido_assert_t,
            idx: usize,
            cose_alg: c_int,
            pk: *const c_void,
        ) -> c_int;

        pub fn es256_pk_new() -> *mut es256_pk_t;
        pub fn es256_pk_free(pk: *mut *mut es256_pk_t);
        pub fn es256_pk_from_ptr(pk: *mut es256_pk_t, ptr: *const c_void, len: usize) -> c_int;
        pub fn eddsa_pk_new() -> *mut eddsa_pk_t;
        pub fn eddsa_pk_free(pk: *mut *mut eddsa_pk_t);
        pub fn eddsa_pk_from_ptr(pk: *mut eddsa_pk_t, ptr: *const c_void, len: usize) -> c_int;
    }
}

// ---------------------------------------------------------------------
// io callbacks: the "device" is a Unix stream connection to the key.

/// open(path): connect; the handle is a boxed stream.
unsafe extern "C" fn io_open(path: *const c_char) -> *mut c_void {
    if path.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: libfido2 passes the NUL-terminated path given to
    // fido_dev_open.
    let path = unsafe { CStr::from_ptr(path) };
    let path = Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()));
    match UnixStream::connect(path) {
        Ok(stream) => Box::into_raw(Box::new(stream)).cast(),
        Err(e) => {
            eprintln!("io_open {}: {e}", path.display());
            std::ptr::null_mut()
        }
    }
}

unsafe extern "C" fn io_close(handle: *mut c_void) {
    if !handle.is_null() {
        // SAFETY: the handle is the Box io_open leaked; libfido2 closes
        // it once.
        drop(unsafe { Box::from_raw(handle.cast::<UnixStream>()) });
    }
}

/// write(handle, buf, len): all of it (libfido2 writes 65-byte reports).
unsafe extern "C" fn io_write(handle: *mut c_void, buf: *const u8, len: usize) -> c_int {
    if handle.is_null() || buf.is_null() {
        return -1;
    }
    // SAFETY: a live handle from io_open; libfido2 passes len readable
    // bytes at buf.
    let (mut stream, data) = unsafe {
        (
            &*handle.cast::<UnixStream>(),
            std::slice::from_raw_parts(buf, len),
        )
    };
    match stream.write_all(data) {
        Ok(()) => c_int::try_from(len).unwrap_or(-1),
        Err(_) => -1,
    }
}

/// read(handle, buf, len, ms): exactly len bytes (one 64-byte report),
/// waiting at most ms milliseconds in all (-1: no limit); -1 on timeout.
unsafe extern "C" fn io_read(handle: *mut c_void, buf: *mut u8, len: usize, ms: c_int) -> c_int {
    if handle.is_null() || buf.is_null() {
        return -1;
    }
    // SAFETY: a live handle from io_open; libfido2 passes len writable
    // bytes at buf.
    let (mut stream, out) = unsafe {
        (
            &*handle.cast::<UnixStream>(),
            std::slice::from_raw_parts_mut(buf, len),
        )
    };
    let deadline = (ms >= 0).then(|| Instant::now() + Duration::from_millis(ms as u64));
    let mut got = 0;
    while got < len {
        let wait = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now()).as_millis();
                c_int::try_from(left).unwrap_or(c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd on the stream's open descriptor.
        let n = unsafe { libc::poll(&mut pfd, 1, wait) };
        if n == 0 {
            return -1;
        }
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return -1;
        }
        match stream.read(&mut out[got..]) {
            Ok(0) => return -1,
            Ok(k) => got += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return -1,
        }
    }
    c_int::try_from(len).unwrap_or(-1)
}

static IO: ffi::fido_dev_io_t = ffi::fido_dev_io_t {
    open: io_open,
    close: io_close,
    read: io_read,
    write: io_write,
};

// ---------------------------------------------------------------------
// Small owners of libfido2 objects.

fn strerr(r: c_int) -> String {
    // SAFETY: fido_strerr returns a static string for any code.
    let s = unsafe { CStr::from_ptr(ffi::fido_strerr(r)) };
    format!("{} ({r})", s.to_string_lossy())
}

fn init() {
    // FIDO_DISABLE_U2F_FALLBACK: without it, a getInfo that fails to parse
    // makes fido_dev_open quietly treat the key as U2F-only. The flag is
    // thread-local in libfido2 (built with TLS=__thread), and every test
    // runs on a thread of its own: so, on each open.
    // SAFETY: fido_init only sets library flags (and debug logging).
    unsafe { ffi::fido_init(ffi::FIDO_DISABLE_U2F_FALLBACK) };
}

struct Dev(*mut ffi::fido_dev_t);

impl Dev {
    /// A libfido2 device on the key's socket, opened (CTAPHID_INIT and
    /// getInfo happen here).
    fn open(key: &SoftKey, timeout_ms: c_int) -> Dev {
        init();
        // SAFETY: plain constructor.
        let dev = Dev(unsafe { ffi::fido_dev_new() });
        assert!(!dev.0.is_null(), "fido_dev_new");
        // SAFETY: a fresh device and a static io table.
        let r = unsafe { ffi::fido_dev_set_io_functions(dev.0, &IO) };
        assert_eq!(r, ffi::FIDO_OK, "fido_dev_set_io_functions: {}", strerr(r));
        // SAFETY: a valid device.
        let r = unsafe { ffi::fido_dev_set_timeout(dev.0, timeout_ms) };
        assert_eq!(r, ffi::FIDO_OK, "fido_dev_set_timeout: {}", strerr(r));
        let path = CString::new(key.path().as_os_str().as_bytes()).expect("socket path");
        // SAFETY: a valid device and a NUL-terminated path.
        let r = unsafe { ffi::fido_dev_open(dev.0, path.as_ptr()) };
        assert_eq!(r, ffi::FIDO_OK, "fido_dev_open: {}", strerr(r));
        // SAFETY: an open device.
        assert!(unsafe { ffi::fido_dev_is_fido2(dev.0) }, "a FIDO2 device");
        dev
    }

    fn has_uv(&self) -> bool {
        // SAFETY: an open device.
        unsafe { ffi::fido_dev_has_uv(self.0) }
    }
}

impl Drop for Dev {
    fn drop(&mut self) {
        // SAFETY: the device this owns; close fails harmlessly if not open.
        unsafe {
            ffi::fido_dev_close(self.0);
            ffi::fido_dev_free(&mut self.0);
        }
    }
}

/// What libfido2 made of a makeCredential.
struct MadeCred {
    id: Vec<u8>,
    pubkey: Vec<u8>,
    alg: c_int,
    flags: u8,
    sigcount: u32,
}

struct Cred(*mut ffi::fido_cred_t);

impl Cred {
    fn new(alg: c_int, rp: &str, cdh: &[u8; 32]) -> Cred {
        // SAFETY: plain constructor.
        let cred = Cred(unsafe { ffi::fido_cred_new() });
        assert!(!cred.0.is_null(), "fido_cred_new");
        let rp = CString::new(rp).expect("rp id");
        let name = CString::new("Alice").expect("user name");
        // SAFETY: a valid cred; every pointer is valid for the call.
        unsafe {
            check(ffi::fido_cred_set_type(cred.0, alg), "fido_cred_set_type");
            check(
                ffi::fido_cred_set_clientdata_hash(cred.0, cdh.as_ptr(), cdh.len()),
                "fido_cred_set_clientdata_hash",
            );
            check(
                ffi::fido_cred_set_rp(cred.0, rp.as_ptr(), std::ptr::null()),
                "fido_cred_set_rp",
            );
            check(
                ffi::fido_cred_set_user(
                    cred.0,
                    b"user-1".as_ptr(),
                    6,
                    name.as_ptr(),
                    name.as_ptr(),
                    std::ptr::null(),
                ),
                "fido_cred_set_user",
            );
        }
        cred
    }

    fn exclude(&self, id: &[u8]) {
        // SAFETY: a valid cred and id slice.
        check(
            unsafe { ffi::fido_cred_exclude(self.0, id.as_ptr(), id.len()) },
            "fido_cred_exclude",
        );
    }

    fn require_uv(&self) {
        // SAFETY: a valid cred.
        check(
            unsafe { ffi::fido_cred_set_uv(self.0, ffi::FIDO_OPT_TRUE) },
            "fido_cred_set_uv",
        );
    }

    fn make(&self, dev: &Dev) -> c_int {
        // SAFETY: an open device and a valid cred; no PIN.
        unsafe { ffi::fido_dev_make_cred(dev.0, self.0, std::ptr::null()) }
    }

    fn verify_self(&self) -> c_int {
        // SAFETY: a valid cred.
        unsafe { ffi::fido_cred_verify_self(self.0) }
    }

    fn made(&self, alg: c_int) -> MadeCred {
        // SAFETY: a valid cred; the pointers it returns stay valid while
        // it lives and are copied at once.
        unsafe {
            MadeCred {
                id: copy(ffi::fido_cred_id_ptr(self.0), ffi::fido_cred_id_len(self.0)),
                pubkey: copy(
                    ffi::fido_cred_pubkey_ptr(self.0),
                    ffi::fido_cred_pubkey_len(self.0),
                ),
                alg,
                flags: ffi::fido_cred_flags(self.0),
                sigcount: ffi::fido_cred_sigcount(self.0),
            }
        }
    }

    fn aaguid(&self) -> Vec<u8> {
        // SAFETY: as in made().
        unsafe {
            copy(
                ffi::fido_cred_aaguid_ptr(self.0),
                ffi::fido_cred_aaguid_len(self.0),
            )
        }
    }

    fn fmt(&self) -> String {
        // SAFETY: a valid cred; fmt is NULL or a NUL-terminated string.
        unsafe {
            let p = ffi::fido_cred_fmt(self.0);
            if p.is_null() {
                String::new()
            } else {
                CStr::from_ptr(p).to_string_lossy().into_owned()
            }
        }
    }
}

impl Drop for Cred {
    fn drop(&mut self) {
        // SAFETY: the cred this owns.
        unsafe { ffi::fido_cred_free(&mut self.0) };
    }
}

struct Assert(*mut ffi::fido_assert_t);

impl Assert {
    fn new(rp: &str, cdh: &[u8; 32], allow: &[u8]) -> Assert {
        // SAFETY: plain constructor.
        let a = Assert(unsafe { ffi::fido_assert_new() });
        assert!(!a.0.is_null(), "fido_assert_new");
        let rp = CString::new(rp).expect("rp id");
        // SAFETY: a valid assert; every pointer is valid for the call.
        unsafe {
            check(
                ffi::fido_assert_set_rp(a.0, rp.as_ptr()),
                "fido_assert_set_rp",
            );
            check(
                ffi::fido_assert_set_clientdata_hash(a.0, cdh.as_ptr(), cdh.len()),
                "fido_assert_set_clientdata_hash",
            );
            check(
                ffi::fido_assert_allow_cred(a.0, allow.as_ptr(), allow.len()),
                "fido_assert_allow_cred",
            );
            // Ask for (and, in fido_assert_verify, insist on) presence.
            check(
                ffi::fido_assert_set_up(a.0, ffi::FIDO_OPT_TRUE),
                "fido_assert_set_up",
            );
        }
        a
    }

    fn require_uv(&self) {
        // SAFETY: a valid assert.
        check(
            unsafe { ffi::fido_assert_set_uv(self.0, ffi::FIDO_OPT_TRUE) },
            "fido_assert_set_uv",
        );
    }

    fn get(&self, dev: &Dev) -> c_int {
        // SAFETY: an open device and a valid assert; no PIN.
        unsafe { ffi::fido_dev_get_assert(dev.0, self.0, std::ptr::null()) }
    }

    fn count(&self) -> usize {
        // SAFETY: a valid assert.
        unsafe { ffi::fido_assert_count(self.0) }
    }

    fn flags(&self) -> u8 {
        // SAFETY: a valid assert; index 0 is checked by libfido2.
        unsafe { ffi::fido_assert_flags(self.0, 0) }
    }

    fn sigcount(&self) -> u32 {
        // SAFETY: as in flags().
        unsafe { ffi::fido_assert_sigcount(self.0, 0) }
    }

    fn id(&self) -> Vec<u8> {
        // SAFETY: as in flags(); the id is copied at once.
        unsafe {
            copy(
                ffi::fido_assert_id_ptr(self.0, 0),
                ffi::fido_assert_id_len(self.0, 0),
            )
        }
    }

    /// fido_assert_verify with the credential's public key.
    fn verify(&self, cred: &MadeCred) -> c_int {
        // SAFETY: each key object is created, filled from the bytes
        // libfido2 itself gave for the credential, used and freed here.
        unsafe {
            match cred.alg {
                COSE_ES256 => {
                    let mut pk = ffi::es256_pk_new();
                    assert!(!pk.is_null(), "es256_pk_new");
                    check(
                        ffi::es256_pk_from_ptr(pk, cred.pubkey.as_ptr().cast(), cred.pubkey.len()),
                        "es256_pk_from_ptr",
                    );
                    let r = ffi::fido_assert_verify(self.0, 0, COSE_ES256, pk.cast_const().cast());
                    ffi::es256_pk_free(&mut pk);
                    r
                }
                COSE_EDDSA => {
                    let mut pk = ffi::eddsa_pk_new();
                    assert!(!pk.is_null(), "eddsa_pk_new");
                    check(
                        ffi::eddsa_pk_from_ptr(pk, cred.pubkey.as_ptr().cast(), cred.pubkey.len()),
                        "eddsa_pk_from_ptr",
                    );
                    let r = ffi::fido_assert_verify(self.0, 0, COSE_EDDSA, pk.cast_const().cast());
                    ffi::eddsa_pk_free(&mut pk);
                    r
                }
                other => panic!("no verifier for COSE algorithm {other}"),
            }
        }
    }
}

impl Drop for Assert {
    fn drop(&mut self) {
        // SAFETY: the assert this owns.
        unsafe { ffi::fido_assert_free(&mut self.0) };
    }
}

fn check(r: c_int, what: &str) {
    assert_eq!(r, ffi::FIDO_OK, "{what}: {}", strerr(r));
}

/// # Safety
/// `ptr` is NULL or points at `len` readable bytes.
unsafe fn copy(ptr: *const u8, len: usize) -> Vec<u8> {
    if ptr.is_null() {
        return Vec::new();
    }
    // SAFETY: the caller's promise.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

// ---------------------------------------------------------------------

const RP: &str = "twofactor.test";
const CDH: [u8; 32] = [0x42; 32];
const TIMEOUT_MS: c_int = 5000;

fn start(dir: &tempfile::TempDir, options: SoftKeyOptions) -> SoftKey {
    SoftKey::start(&dir.path().join("key.sock"), options).expect("start the soft key")
}

/// makeCredential through libfido2, checked with fido_cred_verify_self.
fn make_credential(key: &SoftKey, alg: c_int) -> MadeCred {
    let dev = Dev::open(key, TIMEOUT_MS);
    let cred = Cred::new(alg, RP, &CDH);
    check(cred.make(&dev), "fido_dev_make_cred");
    check(cred.verify_self(), "fido_cred_verify_self");
    assert_eq!(cred.fmt(), "packed");
    assert_eq!(cred.aaguid(), SoftKey::AAGUID);
    cred.made(alg)
}

/// getAssertion through libfido2 (up required), on a fresh connection.
fn get_assertion(key: &SoftKey, cred: &MadeCred) -> (c_int, Assert) {
    let dev = Dev::open(key, TIMEOUT_MS);
    let a = Assert::new(RP, &[0x17; 32], &cred.id);
    let r = a.get(&dev);
    (r, a)
}

#[test]
fn es256_credential_and_assertion_verify_in_libfido2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    assert_eq!(cred.id.len(), 32);
    assert_eq!(cred.pubkey.len(), 64, "ES256 x‖y");
    assert_eq!(cred.flags, 0x41, "UP and AT");
    assert_eq!(cred.sigcount, 1);
    assert_eq!(key.credentials(), vec![(cred.id.clone(), RP.to_string())]);
    assert_eq!(
        key.public_key(&cred.id),
        Some((COSE_ES256, cred.pubkey.clone()))
    );

    for n in 0..2u32 {
        let (r, a) = get_assertion(&key, &cred);
        check(r, "fido_dev_get_assert");
        assert_eq!(a.count(), 1);
        check(a.verify(&cred), "fido_assert_verify");
        assert_eq!(a.flags(), 0x01, "UP only");
        assert_eq!(a.sigcount(), 2 + n, "the counter goes up by one");
        assert_eq!(a.id(), cred.id);
    }
    assert_eq!(key.assertions_made(), 2);
}

#[test]
fn eddsa_credential_and_assertion_verify_in_libfido2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_EDDSA);
    assert_eq!(cred.pubkey.len(), 32);
    let (r, a) = get_assertion(&key, &cred);
    check(r, "fido_dev_get_assert");
    check(a.verify(&cred), "fido_assert_verify");

    // Forced to EdDSA, a key refuses a client that offers only ES256.
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(
        &dir,
        SoftKeyOptions {
            alg: Some(COSE_EDDSA),
            ..SoftKeyOptions::default()
        },
    );
    let dev = Dev::open(&key, TIMEOUT_MS);
    let r = Cred::new(COSE_ES256, RP, &CDH).make(&dev);
    assert_eq!(r, ffi::FIDO_ERR_UNSUPPORTED_ALGORITHM, "{}", strerr(r));
    let r = Cred::new(ffi::COSE_RS256, RP, &CDH).make(&dev);
    assert_eq!(r, ffi::FIDO_ERR_UNSUPPORTED_ALGORITHM, "{}", strerr(r));
}

#[test]
fn exclusion_unknown_credentials_and_uv() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    let dev = Dev::open(&key, TIMEOUT_MS);
    assert!(!dev.has_uv());

    let again = Cred::new(COSE_ES256, RP, &CDH);
    again.exclude(&cred.id);
    let r = again.make(&dev);
    assert_eq!(r, ffi::FIDO_ERR_CREDENTIAL_EXCLUDED, "{}", strerr(r));
    // The same id for another rp is not its credential there.
    let elsewhere = Cred::new(COSE_ES256, "elsewhere.test", &CDH);
    elsewhere.exclude(&cred.id);
    check(elsewhere.make(&dev), "fido_dev_make_cred, other rp");

    let a = Assert::new(RP, &CDH, &[7; 32]);
    let r = a.get(&dev);
    assert_eq!(r, ffi::FIDO_ERR_NO_CREDENTIALS, "{}", strerr(r));
    let a = Assert::new("elsewhere.test", &CDH, &cred.id);
    let r = a.get(&dev);
    assert_eq!(r, ffi::FIDO_ERR_NO_CREDENTIALS, "{}", strerr(r));

    let uv = Cred::new(COSE_ES256, RP, &CDH);
    uv.require_uv();
    let r = uv.make(&dev);
    assert_eq!(r, ffi::FIDO_ERR_UNSUPPORTED_OPTION, "{}", strerr(r));
    let a = Assert::new(RP, &CDH, &cred.id);
    a.require_uv();
    let r = a.get(&dev);
    assert_eq!(r, ffi::FIDO_ERR_UNSUPPORTED_OPTION, "{}", strerr(r));
}

#[test]
fn builtin_uv_sets_the_uv_flag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(
        &dir,
        SoftKeyOptions {
            builtin_uv: true,
            ..SoftKeyOptions::default()
        },
    );
    let dev = Dev::open(&key, TIMEOUT_MS);
    assert!(dev.has_uv(), "getInfo says uv");
    let c = Cred::new(COSE_ES256, RP, &CDH);
    c.require_uv();
    check(c.make(&dev), "fido_dev_make_cred with uv");
    check(c.verify_self(), "fido_cred_verify_self with uv");
    let cred = c.made(COSE_ES256);
    assert_eq!(cred.flags, 0x45, "UP, UV and AT");
    let a = Assert::new(RP, &CDH, &cred.id);
    a.require_uv();
    check(a.get(&dev), "fido_dev_get_assert with uv");
    check(a.verify(&cred), "fido_assert_verify with uv");
    assert_eq!(a.flags(), 0x05);
}

#[test]
fn wrong_signature_fails_fido_assert_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    for alg in [COSE_ES256, COSE_EDDSA] {
        let cred = make_credential(&key, alg);
        key.set_behaviour(Behaviour::WrongSignature);
        let (r, a) = get_assertion(&key, &cred);
        check(r, "fido_dev_get_assert");
        let r = a.verify(&cred);
        assert_eq!(r, ffi::FIDO_ERR_INVALID_SIG, "{}", strerr(r));
        key.set_behaviour(Behaviour::Normal);
        let (r, a) = get_assertion(&key, &cred);
        check(r, "fido_dev_get_assert");
        check(a.verify(&cred), "fido_assert_verify after Normal again");
    }
}

#[test]
fn garbled_cbor_fails_fido_dev_get_assert() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    key.set_behaviour(Behaviour::GarbledCbor);
    let (r, _) = get_assertion(&key, &cred);
    assert_eq!(r, ffi::FIDO_ERR_RX_NOT_CBOR, "{}", strerr(r));
    let dev = Dev::open(&key, TIMEOUT_MS);
    let r = Cred::new(COSE_ES256, RP, &CDH).make(&dev);
    assert_eq!(r, ffi::FIDO_ERR_RX_NOT_CBOR, "{}", strerr(r));
    assert_eq!(key.assertions_made(), 0);
}

#[test]
fn never_touched_times_out_within_the_device_timeout() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    key.set_behaviour(Behaviour::NeverTouched);
    let dev = Dev::open(&key, 1000);
    let a = Assert::new(RP, &CDH, &cred.id);
    let started = Instant::now();
    let r = a.get(&dev);
    let took = started.elapsed();
    eprintln!("never touched: {} after {took:?}", strerr(r));
    assert_eq!(r, ffi::FIDO_ERR_RX, "{}", strerr(r));
    assert!(
        took >= Duration::from_millis(900),
        "gave up too early: {took:?}"
    );
    assert!(took < Duration::from_secs(10), "took {took:?}");
    drop(dev);
    assert_eq!(key.assertions_made(), 0);

    // Touched after all: the key answers normally on the next connection.
    key.set_behaviour(Behaviour::Normal);
    let (r, a) = get_assertion(&key, &cred);
    check(r, "fido_dev_get_assert");
    check(a.verify(&cred), "fido_assert_verify");
}

/// fido_dev_cancel from another thread while the key waits for a touch:
/// the key answers CTAP2_ERR_KEEPALIVE_CANCEL.
#[test]
fn never_touched_then_cancelled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    key.set_behaviour(Behaviour::NeverTouched);
    let dev = Dev::open(&key, -1);

    struct SendDev(*mut ffi::fido_dev_t);
    // SAFETY: fido_dev_cancel only writes one CTAPHID_CANCEL packet
    // through the io callbacks, whose stream may be written from any
    // thread; the device outlives the thread (joined below).
    unsafe impl Send for SendDev {}
    let handle = SendDev(dev.0);
    let canceller = std::thread::spawn(move || {
        let handle = handle;
        std::thread::sleep(Duration::from_millis(500));
        // SAFETY: see SendDev.
        unsafe { ffi::fido_dev_cancel(handle.0) }
    });
    let a = Assert::new(RP, &CDH, &cred.id);
    let started = Instant::now();
    let r = a.get(&dev);
    let cancelled = canceller.join().expect("canceller thread");
    check(cancelled, "fido_dev_cancel");
    assert_eq!(r, ffi::FIDO_ERR_KEEPALIVE_CANCEL, "{}", strerr(r));
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn counter_back_lowers_the_sigcount() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    key.set_counter(100);
    let (r, a) = get_assertion(&key, &cred);
    check(r, "fido_dev_get_assert");
    let before = a.sigcount();
    assert_eq!(before, 101);
    key.set_behaviour(Behaviour::CounterBack);
    let (r, a) = get_assertion(&key, &cred);
    check(r, "fido_dev_get_assert");
    // libfido2 does not judge counters: the signature is fine.
    check(a.verify(&cred), "fido_assert_verify");
    assert_eq!(a.sigcount(), 96);
    assert!(a.sigcount() < before);
}

#[test]
fn no_presence_clears_up_and_fails_verify_when_up_was_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    key.set_behaviour(Behaviour::NoPresence);
    let (r, a) = get_assertion(&key, &cred);
    check(r, "fido_dev_get_assert");
    assert_eq!(a.flags() & 0x01, 0, "UP clear");
    let r = a.verify(&cred);
    assert_eq!(r, ffi::FIDO_ERR_INVALID_PARAM, "{}", strerr(r));
}

#[test]
fn other_credential_id_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let cred = make_credential(&key, COSE_ES256);
    key.set_behaviour(Behaviour::OtherCredentialId);
    let (r, a) = get_assertion(&key, &cred);
    check(r, "fido_dev_get_assert");
    assert_ne!(a.id(), cred.id);
    assert_eq!(a.id().len(), 32);
    // The signature is still the credential's: libfido2 itself does not
    // compare the id with the allow list.
    check(a.verify(&cred), "fido_assert_verify");
}

#[test]
fn drop_stops_the_key_and_removes_the_socket() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = start(&dir, SoftKeyOptions::default());
    let path = key.path().to_path_buf();
    assert!(path.exists());
    // A client that connected and never said anything.
    let _idle = UnixStream::connect(&path).expect("connect");
    key.set_behaviour(Behaviour::NeverTouched);
    let started = Instant::now();
    drop(key);
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!path.exists());
}

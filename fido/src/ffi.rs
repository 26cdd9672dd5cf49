//! The part of libfido2's C API (1.12, `<fido.h>`, `<fido/es256.h>`,
//! `<fido/eddsa.h>`, `<fido/err.h>`, `<fido/param.h>`) this crate uses,
//! declared by hand. Opaque types are zero-sized `#[repr(C)]` structs only
//! ever seen behind pointers.

#![allow(non_camel_case_types)]

use std::ffi::{c_char, c_int, c_uchar, c_void};

#[repr(C)]
pub struct fido_dev_t {
    _private: [u8; 0],
}
#[repr(C)]
pub struct fido_dev_info_t {
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

/// `fido_opt_t` (a C enum: an `int`).
pub type fido_opt_t = c_int;
pub const FIDO_OPT_OMIT: fido_opt_t = 0;
pub const FIDO_OPT_FALSE: fido_opt_t = 1;
pub const FIDO_OPT_TRUE: fido_opt_t = 2;

#[cfg(feature = "test-transport")]
pub type fido_dev_io_open_t = unsafe extern "C" fn(*const c_char) -> *mut c_void;
#[cfg(feature = "test-transport")]
pub type fido_dev_io_close_t = unsafe extern "C" fn(*mut c_void);
#[cfg(feature = "test-transport")]
pub type fido_dev_io_read_t =
    unsafe extern "C" fn(*mut c_void, *mut c_uchar, usize, c_int) -> c_int;
#[cfg(feature = "test-transport")]
pub type fido_dev_io_write_t = unsafe extern "C" fn(*mut c_void, *const c_uchar, usize) -> c_int;

/// `fido_dev_io_t`: four function pointers, none of them NULL when given
/// to `fido_dev_set_io_functions` (the test transport only).
#[cfg(feature = "test-transport")]
#[repr(C)]
pub struct fido_dev_io_t {
    pub open: Option<fido_dev_io_open_t>,
    pub close: Option<fido_dev_io_close_t>,
    pub read: Option<fido_dev_io_read_t>,
    pub write: Option<fido_dev_io_write_t>,
}

// <fido/param.h>
pub const COSE_ES256: c_int = -7;
pub const COSE_EDDSA: c_int = -8;
pub const CTAP_AUTHDATA_USER_PRESENT: u8 = 0x01;
pub const CTAP_AUTHDATA_USER_VERIFIED: u8 = 0x04;

// <fido/err.h>: CTAP status codes the authenticator returns, as is, and
// libfido2's own negative codes.
pub const FIDO_OK: c_int = 0x00;
pub const FIDO_ERR_CREDENTIAL_EXCLUDED: c_int = 0x19;
pub const FIDO_ERR_UNSUPPORTED_OPTION: c_int = 0x2b;
pub const FIDO_ERR_INVALID_OPTION: c_int = 0x2c;
pub const FIDO_ERR_NO_CREDENTIALS: c_int = 0x2e;
pub const FIDO_ERR_USER_ACTION_TIMEOUT: c_int = 0x2f;
pub const FIDO_ERR_PIN_INVALID: c_int = 0x31;
pub const FIDO_ERR_PIN_BLOCKED: c_int = 0x32;
pub const FIDO_ERR_PIN_AUTH_BLOCKED: c_int = 0x34;
pub const FIDO_ERR_PIN_REQUIRED: c_int = 0x36;
pub const FIDO_ERR_ACTION_TIMEOUT: c_int = 0x3a;
pub const FIDO_ERR_UV_BLOCKED: c_int = 0x3c;
pub const FIDO_ERR_UV_INVALID: c_int = 0x3f;
pub const FIDO_ERR_RX: c_int = -2;
pub const FIDO_ERR_RX_INVALID_CBOR: c_int = -4;
pub const FIDO_ERR_INVALID_PARAM: c_int = -5;
pub const FIDO_ERR_INVALID_SIG: c_int = -6;
pub const FIDO_ERR_INVALID_ARGUMENT: c_int = -7;
pub const FIDO_ERR_INTERNAL: c_int = -9;

#[link(name = "fido2")]
extern "C" {
    pub fn fido_init(flags: c_int);
    pub fn fido_strerr(code: c_int) -> *const c_char;

    // Devices.
    pub fn fido_dev_info_new(n: usize) -> *mut fido_dev_info_t;
    pub fn fido_dev_info_free(devlist_p: *mut *mut fido_dev_info_t, n: usize);
    pub fn fido_dev_info_manifest(
        devlist: *mut fido_dev_info_t,
        ilen: usize,
        olen: *mut usize,
    ) -> c_int;
    pub fn fido_dev_info_ptr(devlist: *const fido_dev_info_t, i: usize) -> *const fido_dev_info_t;
    pub fn fido_dev_info_path(di: *const fido_dev_info_t) -> *const c_char;

    pub fn fido_dev_new() -> *mut fido_dev_t;
    pub fn fido_dev_free(dev_p: *mut *mut fido_dev_t);
    pub fn fido_dev_open(dev: *mut fido_dev_t, path: *const c_char) -> c_int;
    pub fn fido_dev_close(dev: *mut fido_dev_t) -> c_int;
    pub fn fido_dev_cancel(dev: *mut fido_dev_t) -> c_int;
    pub fn fido_dev_set_timeout(dev: *mut fido_dev_t, ms: c_int) -> c_int;
    #[cfg(feature = "test-transport")]
    pub fn fido_dev_set_io_functions(dev: *mut fido_dev_t, io: *const fido_dev_io_t) -> c_int;
    pub fn fido_dev_has_pin(dev: *const fido_dev_t) -> bool;
    pub fn fido_dev_has_uv(dev: *const fido_dev_t) -> bool;
    pub fn fido_dev_make_cred(
        dev: *mut fido_dev_t,
        cred: *mut fido_cred_t,
        pin: *const c_char,
    ) -> c_int;
    pub fn fido_dev_get_assert(
        dev: *mut fido_dev_t,
        assert: *mut fido_assert_t,
        pin: *const c_char,
    ) -> c_int;

    // Credentials.
    pub fn fido_cred_new() -> *mut fido_cred_t;
    pub fn fido_cred_free(cred_p: *mut *mut fido_cred_t);
    pub fn fido_cred_set_type(cred: *mut fido_cred_t, cose_alg: c_int) -> c_int;
    pub fn fido_cred_set_clientdata_hash(
        cred: *mut fido_cred_t,
        hash: *const c_uchar,
        len: usize,
    ) -> c_int;
    pub fn fido_cred_set_rp(
        cred: *mut fido_cred_t,
        id: *const c_char,
        name: *const c_char,
    ) -> c_int;
    pub fn fido_cred_set_user(
        cred: *mut fido_cred_t,
        user_id: *const c_uchar,
        user_id_len: usize,
        name: *const c_char,
        display_name: *const c_char,
        icon: *const c_char,
    ) -> c_int;
    pub fn fido_cred_exclude(cred: *mut fido_cred_t, id: *const c_uchar, len: usize) -> c_int;
    pub fn fido_cred_set_uv(cred: *mut fido_cred_t, uv: fido_opt_t) -> c_int;
    pub fn fido_cred_set_authdata(cred: *mut fido_cred_t, ptr: *const c_uchar, len: usize)
        -> c_int;
    pub fn fido_cred_set_x509(cred: *mut fido_cred_t, ptr: *const c_uchar, len: usize) -> c_int;
    pub fn fido_cred_set_sig(cred: *mut fido_cred_t, ptr: *const c_uchar, len: usize) -> c_int;
    pub fn fido_cred_set_fmt(cred: *mut fido_cred_t, fmt: *const c_char) -> c_int;
    pub fn fido_cred_verify(cred: *const fido_cred_t) -> c_int;
    pub fn fido_cred_verify_self(cred: *const fido_cred_t) -> c_int;
    pub fn fido_cred_fmt(cred: *const fido_cred_t) -> *const c_char;
    pub fn fido_cred_authdata_ptr(cred: *const fido_cred_t) -> *const c_uchar;
    pub fn fido_cred_authdata_len(cred: *const fido_cred_t) -> usize;
    pub fn fido_cred_x5c_ptr(cred: *const fido_cred_t) -> *const c_uchar;
    pub fn fido_cred_x5c_len(cred: *const fido_cred_t) -> usize;
    pub fn fido_cred_sig_ptr(cred: *const fido_cred_t) -> *const c_uchar;
    pub fn fido_cred_sig_len(cred: *const fido_cred_t) -> usize;
    pub fn fido_cred_id_ptr(cred: *const fido_cred_t) -> *const c_uchar;
    pub fn fido_cred_id_len(cred: *const fido_cred_t) -> usize;
    pub fn fido_cred_pubkey_ptr(cred: *const fido_cred_t) -> *const c_uchar;
    pub fn fido_cred_pubkey_len(cred: *const fido_cred_t) -> usize;
    pub fn fido_cred_aaguid_ptr(cred: *const fido_cred_t) -> *const c_uchar;
    pub fn fido_cred_aaguid_len(cred: *const fido_cred_t) -> usize;
    pub fn fido_cred_type(cred: *const fido_cred_t) -> c_int;
    pub fn fido_cred_flags(cred: *const fido_cred_t) -> u8;
    pub fn fido_cred_sigcount(cred: *const fido_cred_t) -> u32;

    // Assertions.
    pub fn fido_assert_new() -> *mut fido_assert_t;
    pub fn fido_assert_free(assert_p: *mut *mut fido_assert_t);
    pub fn fido_assert_set_rp(assert: *mut fido_assert_t, id: *const c_char) -> c_int;
    pub fn fido_assert_set_clientdata_hash(
        assert: *mut fido_assert_t,
        hash: *const c_uchar,
        len: usize,
    ) -> c_int;
    pub fn fido_assert_allow_cred(
        assert: *mut fido_assert_t,
        id: *const c_uchar,
        len: usize,
    ) -> c_int;
    pub fn fido_assert_set_up(assert: *mut fido_assert_t, up: fido_opt_t) -> c_int;
    pub fn fido_assert_set_uv(assert: *mut fido_assert_t, uv: fido_opt_t) -> c_int;
    pub fn fido_assert_set_count(assert: *mut fido_assert_t, n: usize) -> c_int;
    pub fn fido_assert_set_authdata(
        assert: *mut fido_assert_t,
        idx: usize,
        ptr: *const c_uchar,
        len: usize,
    ) -> c_int;
    pub fn fido_assert_set_sig(
        assert: *mut fido_assert_t,
        idx: usize,
        ptr: *const c_uchar,
        len: usize,
    ) -> c_int;
    pub fn fido_assert_verify(
        assert: *const fido_assert_t,
        idx: usize,
        cose_alg: c_int,
        pk: *const c_void,
    ) -> c_int;
    pub fn fido_assert_count(assert: *const fido_assert_t) -> usize;
    pub fn fido_assert_id_ptr(assert: *const fido_assert_t, idx: usize) -> *const c_uchar;
    pub fn fido_assert_id_len(assert: *const fido_assert_t, idx: usize) -> usize;
    pub fn fido_assert_authdata_ptr(assert: *const fido_assert_t, idx: usize) -> *const c_uchar;
    pub fn fido_assert_authdata_len(assert: *const fido_assert_t, idx: usize) -> usize;
    pub fn fido_assert_sig_ptr(assert: *const fido_assert_t, idx: usize) -> *const c_uchar;
    pub fn fido_assert_sig_len(assert: *const fido_assert_t, idx: usize) -> usize;
    pub fn fido_assert_flags(assert: *const fido_assert_t, idx: usize) -> u8;
    pub fn fido_assert_sigcount(assert: *const fido_assert_t, idx: usize) -> u32;

    // Public keys.
    pub fn es256_pk_new() -> *mut es256_pk_t;
    pub fn es256_pk_free(pk_p: *mut *mut es256_pk_t);
    pub fn es256_pk_from_ptr(pk: *mut es256_pk_t, ptr: *const c_void, len: usize) -> c_int;
    pub fn eddsa_pk_new() -> *mut eddsa_pk_t;
    pub fn eddsa_pk_free(pk_p: *mut *mut eddsa_pk_t);
    pub fn eddsa_pk_from_ptr(pk: *mut eddsa_pk_t, ptr: *const c_void, len: usize) -> c_int;
}

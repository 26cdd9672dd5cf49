//! Security keys (FIDO2) for twofactor, through the system's libfido2.
//!
//! Two sides use it:
//!
//! - the key's side, [`Device`]: `twofactorctl` creates a credential at
//!   enrolment ([`Device::make_credential`]) and the `twofactor-key` helper,
//!   run by the PAM module, has a key sign a login's challenge
//!   ([`Device::get_assertion`]);
//! - the daemon's side, [`verify_attestation`] and [`verify_assertion`]:
//!   `twofactord` checks what came back against the request it made. It
//!   never talks to a key.
//!
//! The values that travel between them are [`twofactor_proto::key`]'s,
//! re-exported here.
//!
//! # Why a hand-written binding
//!
//! There is no well-kept `-sys` crate for libfido2: `libfido2-sys` and
//! `fido2-rs` build their own libfido2 from source with cmake (pulling a
//! C toolchain, cmake, and a second libfido2 next to the distribution's)
//! and are barely maintained. This crate declares the few dozen functions
//! it needs itself (`src/ffi.rs`, checked against libfido2 1.12's headers) and
//! links the distribution's `libfido2.so.1` (Debian: `libfido2-1`, built
//! against `libfido2-dev`). Every object libfido2 allocates is owned by a
//! small RAII type that frees it with libfido2's own `*_free`.
//!
//! # Test transport
//!
//! With the `test-transport` feature, `Device::open_test` talks to a
//! software authenticator over a Unix stream socket instead of a hidraw
//! device (`fido_dev_set_io_functions`). Only the tests crate turns it on;
//! the shipped binaries must not carry it (scripts/check-module greps the
//! helper for the text of `TEST_TRANSPORT_MARKER`).

// Linked into twofactord and run by the PAM module: no path of its own
// may panic on what comes from outside.
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
#![deny(clippy::undocumented_unsafe_blocks, unsafe_op_in_unsafe_fn)]

mod device;
mod error;
mod ffi;
#[cfg(feature = "test-transport")]
mod transport;
mod verify;

pub use device::{devices, Device, MAX_DEVICES};
pub use error::FidoError;
#[cfg(feature = "test-transport")]
pub use transport::TEST_TRANSPORT_MARKER;
pub use twofactor_proto::key::{
    Assertion, AssertionRequest, Attestation, CredentialRequest, HelperInput, KeyAnswer,
    KeyWireError, UserVerification, HASH_LEN,
};
pub use verify::{verify_assertion, verify_attestation, Alg, Credential, Verified};
/// What [`HelperInput::pin`] is held in (wiped when dropped).
pub use zeroize::Zeroizing;

/// The relying party name given to keys at enrolment (some show it).
pub const RP_NAME: &str = "twofactor";

/// The environment variable that points `twofactorctl` at a software key
/// (its Unix socket), read only by builds with the test transport.
pub const TEST_KEY_VAR: &str = "TWOFACTOR_TEST_KEY";

/// The software key a test build's environment names ([`TEST_KEY_VAR`]);
/// always None in builds without the test transport (the shipped ones).
/// For programs run by the user for themselves (`twofactorctl`), never for
/// one that runs with another's privileges.
pub fn test_key_from_environment() -> Option<std::path::PathBuf> {
    #[cfg(feature = "test-transport")]
    {
        std::env::var_os(TEST_KEY_VAR)
            .filter(|v| !v.is_empty())
            .map(std::path::PathBuf::from)
    }
    #[cfg(not(feature = "test-transport"))]
    {
        None
    }
}

/// Opens the software key at `socket` (see [`test_key_from_environment`]).
pub fn open_test_key(socket: &std::path::Path) -> Result<Device, FidoError> {
    #[cfg(feature = "test-transport")]
    {
        Device::open_test(socket)
    }
    #[cfg(not(feature = "test-transport"))]
    {
        let _ = socket;
        Err(FidoError::Verify("this build has no test transport"))
    }
}

/// `fido_init(0)`, once per process, before any other libfido2 call.
/// (`FIDO_DEBUG` in the environment turns libfido2's debug log on; the
/// helper runs with an empty environment.)
pub(crate) fn init() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        // SAFETY: fido_init only sets libfido2's logging and U2F-fallback
        // flags; it takes no pointer. Once runs it a single time.
        unsafe { ffi::fido_init(0) }
    });
}

/// Copies `len` bytes libfido2 points at; NULL or 0 is an empty vector.
///
/// # Safety
/// `ptr` is NULL or points at `len` readable bytes that stay valid for
/// the call (a libfido2 getter's result on an object the caller holds).
pub(crate) unsafe fn copy_bytes(ptr: *const u8, len: usize) -> Vec<u8> {
    if ptr.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: the caller promises ptr..ptr+len is readable.
    unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec()
}

/// A Rust string as a C string for `call`; an interior NUL is libfido2's
/// FIDO_ERR_INVALID_ARGUMENT (nothing libfido2 would accept anyway).
pub(crate) fn c_string(s: &str, call: &'static str) -> Result<std::ffi::CString, FidoError> {
    std::ffi::CString::new(s).map_err(|_| FidoError::Lib {
        call,
        code: ffi::FIDO_ERR_INVALID_ARGUMENT,
    })
}

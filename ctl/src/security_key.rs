//! The security key (FIDO2) plugged into this machine, through the
//! `twofactor-fido` wrapper of the system's libfido2: finding it, and having
//! it create a credential for `enable key`.
//!
//! The commands see keys through [`Keys`] and [`Key`], so that their flow
//! is tested without a device (`commands::enable::key`'s tests script
//! both). [`Fido`] is the real thing.
//!
//! In builds whose `twofactor-fido` has its test transport (the tests
//! crate's workspace builds, never the shipped CLI),
//! `TWOFACTOR_TEST_KEY=SOCKET` in the environment replaces the keys plugged
//! in by the software authenticator listening on the Unix socket SOCKET
//! (the end-to-end tests' `soft_key`). Other builds never look at it.

use twofactor_fido::{Attestation, CredentialRequest, FidoError};

/// How long the key may wait for the touch (and its PIN check), in
/// milliseconds.
pub const TOUCH_TIMEOUT_MS: i32 = 30_000;

/// What went wrong with the key, as far as the commands tell apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The key wants its PIN, or user verification was required and it
    /// can do none without one (no PIN given, no built-in verification).
    PinRequired,
    /// The key refused the PIN (or the user's verification), or is
    /// blocked.
    PinInvalid,
    /// Nobody touched the key in time.
    Timeout,
    /// The key holds one of the credentials to exclude: it is registered
    /// for the account already.
    Excluded,
    /// Anything else (libfido2's own text: the call and its error name).
    Other(String),
}

impl From<FidoError> for KeyError {
    fn from(e: FidoError) -> Self {
        match e {
            FidoError::PinRequired { .. } => KeyError::PinRequired,
            FidoError::PinInvalid { .. } => KeyError::PinInvalid,
            FidoError::Timeout { .. } => KeyError::Timeout,
            FidoError::Excluded { .. } => KeyError::Excluded,
            other => KeyError::Other(other.to_string()),
        }
    }
}

/// An open security key.
pub trait Key {
    /// The key has a PIN set.
    fn has_pin(&self) -> bool;
    /// The key verifies its user itself (a fingerprint is enrolled).
    fn has_builtin_uv(&self) -> bool;
    /// Has the key create a credential for `request` (the user touches
    /// it), with its PIN when given; at most [`TOUCH_TIMEOUT_MS`].
    fn make_credential(
        &mut self,
        request: &CredentialRequest,
        pin: Option<&str>,
    ) -> Result<Attestation, KeyError>;
}

/// Where keys are found.
pub trait Keys {
    /// The keys plugged in, by path (hidraw devices); empty when none is.
    fn paths(&self) -> Result<Vec<String>, KeyError>;
    /// Opens the key at `path` (one of [`Keys::paths`]).
    fn open(&self, path: &str) -> Result<Box<dyn Key>, KeyError>;
}

/// The keys of this machine, through libfido2.
pub struct Fido {
    /// The software key's socket (`TWOFACTOR_TEST_KEY`), test builds only.
    test_socket: Option<std::path::PathBuf>,
}

impl Fido {
    pub fn this_machine() -> Fido {
        Fido {
            test_socket: twofactor_fido::test_key_from_environment(),
        }
    }
}

impl Keys for Fido {
    fn paths(&self) -> Result<Vec<String>, KeyError> {
        if let Some(socket) = &self.test_socket {
            return Ok(vec![socket.to_string_lossy().into_owned()]);
        }
        Ok(twofactor_fido::devices()?)
    }

    fn open(&self, path: &str) -> Result<Box<dyn Key>, KeyError> {
        if let Some(socket) = &self.test_socket {
            return opened(twofactor_fido::open_test_key(socket)?);
        }
        opened(twofactor_fido::Device::open(path)?)
    }
}

/// `device` with the touch timeout set.
fn opened(mut device: twofactor_fido::Device) -> Result<Box<dyn Key>, KeyError> {
    device.set_timeout(TOUCH_TIMEOUT_MS)?;
    Ok(Box::new(FidoKey(device)))
}

struct FidoKey(twofactor_fido::Device);

impl Key for FidoKey {
    fn has_pin(&self) -> bool {
        self.0.has_pin()
    }
    fn has_builtin_uv(&self) -> bool {
        self.0.has_builtin_uv()
    }
    fn make_credential(
        &mut self,
        request: &CredentialRequest,
        pin: Option<&str>,
    ) -> Result<Attestation, KeyError> {
        Ok(self.0.make_credential(request, pin)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fido_errors_sort_into_what_the_command_tells_apart() {
        let call = "fido_dev_make_cred";
        for (e, want) in [
            (
                FidoError::PinRequired { call, code: 0x36 },
                KeyError::PinRequired,
            ),
            (
                FidoError::PinInvalid { call, code: 0x31 },
                KeyError::PinInvalid,
            ),
            (FidoError::Timeout { call, code: 0x2f }, KeyError::Timeout),
            (FidoError::Excluded { call, code: 0x19 }, KeyError::Excluded),
        ] {
            assert_eq!(KeyError::from(e), want);
        }
        match KeyError::from(FidoError::Lib { call, code: -1 }) {
            KeyError::Other(text) => assert!(text.starts_with(call), "{text}"),
            other => panic!("{other:?}"),
        }
    }
}

//! `twofactor-key`: has a security key sign the daemon's challenge for
//! the PAM module.
//!
//! The module does not link libfido2 (nor libcrypto, libcbor, libudev):
//! when the daemon asks for a key, it runs this helper (as root for su,
//! sudo and login, as the user for a screen locker) with an empty
//! environment, writes one [`HelperInput`] to its standard input (the
//! daemon's encoded [`AssertionRequest`], unread, and the PIN when the user
//! gave one) and reads one encoded [`KeyAnswer`] from its standard output.
//! The helper decides nothing: the daemon verifies the assertion.
//!
//! ```text
//! twofactor-key [--timeout-ms N] [--probe]   (touch timeout, 1000..=120000, default 30000)
//! ```
//!
//! It first asks each key silently (user presence false: no touch, no
//! blinking) whether it holds one of the user's credentials, then asks the
//! one that does for the touch. A key that holds none is answered at once
//! (NotRegistered) without a touch: the daemon may then ask for the
//! credentials of another relying party (an SSH key's `ssh:`), and the
//! user touches once.

// Run by the PAM module on every key login: no panics on what comes in.
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

use std::io::Read;
use std::path::PathBuf;

use clap::Parser;
use zeroize::Zeroizing;

use twofactor_fido::{
    Assertion, AssertionRequest, Device, FidoError, HelperInput, KeyAnswer, UserVerification,
};

/// The most bytes read from standard input.
pub const MAX_INPUT: usize = 16 * 1024;

/// How long the silent probe of each key may take (no touch involved).
const PROBE_TIMEOUT_MS: i32 = 5_000;

/// What `--test-device` says in a build without the test transport.
pub const NO_TEST_TRANSPORT: &str =
    "--test-device: this build has no test transport (build with the feature test-transport)";

#[derive(Parser, Debug, Clone, PartialEq, Eq)]
#[command(
    name = "twofactor-key",
    version,
    about = "Has a security key sign twofactord's challenge (run by pam_twofactor.so)",
    long_about = "Has a security key sign twofactord's challenge. Run by pam_twofactor.so: \
                  reads one request from standard input, writes one answer to standard output."
)]
pub struct Args {
    /// How long to wait for the user to touch the key, in milliseconds.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 30_000,
        value_parser = clap::value_parser!(i32).range(1_000..=120_000)
    )]
    pub timeout_ms: i32,
    /// Tests only: the software authenticator listening on this Unix
    /// socket instead of the keys plugged in.
    #[arg(long, value_name = "PATH", hide = !cfg!(feature = "test-transport"))]
    pub test_device: Option<PathBuf>,
    /// Only find out, silently (no touch), whether a key that may hold one
    /// of the credentials is plugged in: answers Ready, NotRegistered or
    /// NoDevice. The module shows "touch your key" only after Ready.
    #[arg(long)]
    pub probe: bool,
}

/// What the helper needs of a key (a [`Device`]; a stand-in in tests).
pub trait Key {
    fn set_timeout(&mut self, ms: i32) -> Result<(), FidoError>;
    fn get_assertion(
        &mut self,
        req: &AssertionRequest,
        pin: Option<&str>,
        up: bool,
    ) -> Result<Assertion, FidoError>;
    fn cancel(&mut self);
}

impl Key for Device {
    fn set_timeout(&mut self, ms: i32) -> Result<(), FidoError> {
        Device::set_timeout(self, ms)
    }
    fn get_assertion(
        &mut self,
        req: &AssertionRequest,
        pin: Option<&str>,
        up: bool,
    ) -> Result<Assertion, FidoError> {
        Device::get_assertion(self, req, pin, up)
    }
    fn cancel(&mut self) {
        Device::cancel(self)
    }
}

/// The answer for a key's refusal of the real (touched) request.
/// `pin_given`: the user gave a PIN and it went to the key, so a key that
/// still wants one refused it.
pub fn answer_for(e: &FidoError, pin_given: bool) -> KeyAnswer {
    match e {
        FidoError::NoCredentials { .. } => KeyAnswer::NotRegistered,
        FidoError::PinRequired { .. } if pin_given => KeyAnswer::PinInvalid,
        FidoError::PinRequired { .. } => KeyAnswer::PinRequired,
        FidoError::PinInvalid { .. } => KeyAnswer::PinInvalid,
        FidoError::Timeout { .. } => KeyAnswer::NoTouch,
        // The text names a libfido2 call and code, or what did not verify:
        // never the PIN or the request.
        e => KeyAnswer::Failed(e.to_string()),
    }
}

/// Asks the opened keys to sign `req`, after a silent probe of each.
/// `pin`: empty for none.
pub fn sign<K: Key>(
    mut keys: Vec<K>,
    req: &AssertionRequest,
    pin: &str,
    timeout_ms: i32,
) -> KeyAnswer {
    let pin = (!pin.is_empty()).then_some(pin);
    if keys.is_empty() {
        return KeyAnswer::NoDevice;
    }
    let Some(chosen) = probe(&mut keys, req) else {
        return KeyAnswer::NotRegistered;
    };
    let Some(key) = keys.get_mut(chosen) else {
        return KeyAnswer::NoDevice;
    };
    if let Err(e) = key.set_timeout(timeout_ms) {
        return KeyAnswer::Failed(e.to_string());
    }
    match key.get_assertion(req, pin, true) {
        Ok(a) => KeyAnswer::Assertion(a),
        Err(e) => {
            if matches!(e, FidoError::Timeout { .. }) {
                // Stop the key blinking for a touch nobody will give.
                key.cancel();
            }
            answer_for(&e, pin.is_some())
        }
    }
}

/// The key to ask among several: the first whose silent probe (no touch,
/// no PIN, no user verification) found a credential; else the first that
/// did not say it holds none (a U2F-only key answers a probe that found
/// its credential with "user presence required"; a key that wants its
/// PIN for everything says so); else none.
fn probe<K: Key>(keys: &mut [K], req: &AssertionRequest) -> Option<usize> {
    let silent = AssertionRequest {
        user_verification: UserVerification::Discouraged,
        ..req.clone()
    };
    let mut maybe = None;
    for (i, key) in keys.iter_mut().enumerate() {
        if key.set_timeout(PROBE_TIMEOUT_MS).is_err() {
            continue;
        }
        match key.get_assertion(&silent, None, false) {
            Ok(_) => return Some(i),
            Err(FidoError::NoCredentials { .. }) => {}
            Err(_) => {
                maybe = maybe.or(Some(i));
            }
        }
    }
    maybe
}

/// Where the keys come from.
pub enum Source {
    /// The keys plugged in (libfido2's device list).
    Plugged,
    /// The software authenticator of the tests, on this socket.
    #[cfg(feature = "test-transport")]
    Test(PathBuf),
}

/// Opens the keys of `source`; `Err` is the answer when there is none to
/// ask.
fn open(source: &Source) -> Result<Vec<Device>, KeyAnswer> {
    let keys: Vec<Device> = match source {
        Source::Plugged => {
            let paths = twofactor_fido::devices().map_err(|e| KeyAnswer::Failed(e.to_string()))?;
            paths.iter().filter_map(|p| Device::open(p).ok()).collect()
        }
        #[cfg(feature = "test-transport")]
        Source::Test(path) => Device::open_test(path).into_iter().collect(),
    };
    if keys.is_empty() {
        // None plugged in, or none that would open.
        Err(KeyAnswer::NoDevice)
    } else {
        Ok(keys)
    }
}

/// The probe's answer for the opened keys: Ready when one may hold a
/// credential of `req` (see [`probe`]), else NotRegistered.
pub fn probe_only<K: Key>(mut keys: Vec<K>, req: &AssertionRequest) -> KeyAnswer {
    if keys.is_empty() {
        return KeyAnswer::NoDevice;
    }
    match probe(&mut keys, req) {
        Some(_) => KeyAnswer::Ready,
        None => KeyAnswer::NotRegistered,
    }
}

/// The whole run: `input` is what came on standard input.
pub fn run(source: &Source, timeout_ms: i32, input: &[u8]) -> KeyAnswer {
    run_as(source, timeout_ms, input, false)
}

/// [`run`], or with `only_probe` the silent probe alone.
pub fn run_as(source: &Source, timeout_ms: i32, input: &[u8], only_probe: bool) -> KeyAnswer {
    let input = match HelperInput::decode(input) {
        Ok(i) => i,
        Err(e) => return KeyAnswer::Failed(format!("helper input: {e}")),
    };
    let req = match AssertionRequest::decode(&input.request) {
        Ok(r) => r,
        Err(e) => return KeyAnswer::Failed(format!("helper request: {e}")),
    };
    match open(source) {
        Ok(keys) if only_probe => probe_only(keys, &req),
        Ok(keys) => sign(keys, &req, &input.pin, timeout_ms),
        Err(answer) => answer,
    }
}

/// Standard input, at most [`MAX_INPUT`] bytes (wiped when dropped: the
/// PIN is in it); `None` when there is more.
pub fn read_input(mut r: impl Read) -> std::io::Result<Option<Zeroizing<Vec<u8>>>> {
    let mut buf = Zeroizing::new(Vec::with_capacity(MAX_INPUT + 1));
    (&mut r).take(MAX_INPUT as u64 + 1).read_to_end(&mut buf)?;
    Ok((buf.len() <= MAX_INPUT).then_some(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    fn req() -> AssertionRequest {
        AssertionRequest {
            rp_id: "twofactor:host".into(),
            client_data_hash: [9; 32],
            allow: vec![vec![1; 16]],
            user_verification: UserVerification::Required,
        }
    }

    fn assertion() -> Assertion {
        Assertion {
            credential_id: vec![1; 16],
            authdata: vec![0x58, 0x25],
            signature: vec![0x30; 70],
        }
    }

    /// A key that answers from a script and records what it was asked.
    #[derive(Default)]
    struct Fake {
        answers: VecDeque<Result<Assertion, FidoError>>,
        asked: Vec<(bool, Option<String>, UserVerification, i32)>,
        cancelled: bool,
        timeout: i32,
    }

    impl Fake {
        fn with(answers: Vec<Result<Assertion, FidoError>>) -> Self {
            Fake {
                answers: answers.into(),
                ..Fake::default()
            }
        }
    }

    impl Key for &mut Fake {
        fn set_timeout(&mut self, ms: i32) -> Result<(), FidoError> {
            self.timeout = ms;
            Ok(())
        }
        fn get_assertion(
            &mut self,
            req: &AssertionRequest,
            pin: Option<&str>,
            up: bool,
        ) -> Result<Assertion, FidoError> {
            self.asked.push((
                up,
                pin.map(str::to_owned),
                req.user_verification,
                self.timeout,
            ));
            self.answers.pop_front().unwrap_or(Err(FidoError::Lib {
                call: "fake",
                code: -9, /* FIDO_ERR_INTERNAL */
            }))
        }
        fn cancel(&mut self) {
            self.cancelled = true;
        }
    }

    fn err(kind: fn(&'static str, i32) -> FidoError) -> FidoError {
        kind("fido_dev_get_assert", 0)
    }
    fn no_creds(call: &'static str, code: i32) -> FidoError {
        FidoError::NoCredentials { call, code }
    }
    fn pin_required(call: &'static str, code: i32) -> FidoError {
        FidoError::PinRequired { call, code }
    }
    fn pin_invalid(call: &'static str, code: i32) -> FidoError {
        FidoError::PinInvalid { call, code }
    }
    fn timeout(call: &'static str, code: i32) -> FidoError {
        FidoError::Timeout { call, code }
    }
    fn lib(call: &'static str, _: i32) -> FidoError {
        FidoError::Lib {
            call,
            code: -2, /* FIDO_ERR_RX */
        }
    }

    #[test]
    fn errors_map_to_answers() {
        assert_eq!(answer_for(&err(no_creds), false), KeyAnswer::NotRegistered);
        assert_eq!(
            answer_for(&err(pin_required), false),
            KeyAnswer::PinRequired
        );
        assert_eq!(answer_for(&err(pin_required), true), KeyAnswer::PinInvalid);
        assert_eq!(answer_for(&err(pin_invalid), false), KeyAnswer::PinInvalid);
        assert_eq!(answer_for(&err(pin_invalid), true), KeyAnswer::PinInvalid);
        assert_eq!(answer_for(&err(timeout), false), KeyAnswer::NoTouch);
        assert_eq!(
            answer_for(&err(lib), false),
            KeyAnswer::Failed("fido_dev_get_assert: FIDO_ERR_RX".into())
        );
        let excluded = FidoError::Excluded {
            call: "fido_dev_get_assert",
            code: 0x19, /* FIDO_ERR_CREDENTIAL_EXCLUDED */
        };
        assert!(matches!(answer_for(&excluded, false), KeyAnswer::Failed(_)));
        assert!(matches!(
            answer_for(&FidoError::Verify("x"), false),
            KeyAnswer::Failed(t) if t.contains('x')
        ));
    }

    #[test]
    fn no_key_is_no_device() {
        assert_eq!(
            sign(Vec::<&mut Fake>::new(), &req(), "", 30_000),
            KeyAnswer::NoDevice
        );
    }

    #[test]
    fn one_key_is_probed_then_asked_with_a_touch_and_the_pin() {
        let mut k = Fake::with(vec![Ok(assertion()), Ok(assertion())]);
        assert_eq!(
            sign(vec![&mut k], &req(), "1234", 30_000),
            KeyAnswer::Assertion(assertion())
        );
        assert_eq!(
            k.asked,
            vec![
                (false, None, UserVerification::Discouraged, PROBE_TIMEOUT_MS),
                (
                    true,
                    Some("1234".into()),
                    UserVerification::Required,
                    30_000
                )
            ]
        );
        // A key that holds none of the credentials: no touch asked.
        let mut k = Fake::with(vec![Err(err(no_creds))]);
        assert_eq!(
            sign(vec![&mut k], &req(), "", 30_000),
            KeyAnswer::NotRegistered
        );
        assert_eq!(k.asked.len(), 1);
    }

    #[test]
    fn an_empty_pin_is_not_passed_and_a_refusal_asks_for_one() {
        let mut k = Fake::with(vec![Ok(assertion()), Err(err(pin_required))]);
        assert_eq!(
            sign(vec![&mut k], &req(), "", 30_000),
            KeyAnswer::PinRequired
        );
        assert_eq!(k.asked[1].1, None);
        let mut k = Fake::with(vec![Ok(assertion()), Err(err(pin_required))]);
        assert_eq!(
            sign(vec![&mut k], &req(), "0000", 30_000),
            KeyAnswer::PinInvalid
        );
    }

    #[test]
    fn a_timeout_is_no_touch_and_cancels() {
        let mut k = Fake::with(vec![Ok(assertion()), Err(err(timeout))]);
        assert_eq!(sign(vec![&mut k], &req(), "", 1_000), KeyAnswer::NoTouch);
        assert!(k.cancelled);
    }

    #[test]
    fn several_keys_are_probed_silently_then_the_holder_is_asked() {
        let mut a = Fake::with(vec![Err(err(no_creds))]);
        let mut b = Fake::with(vec![Ok(assertion()), Ok(assertion())]);
        let mut c = Fake::with(vec![]);
        let answer = sign(vec![&mut a, &mut b, &mut c], &req(), "1234", 30_000);
        assert_eq!(answer, KeyAnswer::Assertion(assertion()));
        // The probe: no touch, no PIN, no user verification, short.
        assert_eq!(
            a.asked,
            vec![(false, None, UserVerification::Discouraged, PROBE_TIMEOUT_MS)]
        );
        assert_eq!(
            b.asked,
            vec![
                (false, None, UserVerification::Discouraged, PROBE_TIMEOUT_MS),
                (
                    true,
                    Some("1234".into()),
                    UserVerification::Required,
                    30_000
                )
            ]
        );
        // The first holder found: the others are not asked.
        assert!(c.asked.is_empty());
    }

    #[test]
    fn the_probe_alone_touches_nothing_and_says_whether_a_key_is_there() {
        let mut holder = Fake::with(vec![Ok(assertion())]);
        assert_eq!(probe_only(vec![&mut holder], &req()), KeyAnswer::Ready);
        assert_eq!(
            holder.asked,
            vec![(false, None, UserVerification::Discouraged, PROBE_TIMEOUT_MS)]
        );
        let mut other = Fake::with(vec![Err(err(no_creds))]);
        assert_eq!(
            probe_only(vec![&mut other], &req()),
            KeyAnswer::NotRegistered
        );
        assert_eq!(
            probe_only(Vec::<&mut Fake>::new(), &req()),
            KeyAnswer::NoDevice
        );
    }

    #[test]
    fn several_keys_none_holding_a_credential_is_not_registered() {
        let mut a = Fake::with(vec![Err(err(no_creds))]);
        let mut b = Fake::with(vec![Err(err(no_creds))]);
        assert_eq!(
            sign(vec![&mut a, &mut b], &req(), "", 30_000),
            KeyAnswer::NotRegistered
        );
        assert_eq!(a.asked.len() + b.asked.len(), 2);
    }

    #[test]
    fn a_key_whose_probe_is_unclear_is_asked_when_none_is_sure() {
        // A U2F-only key holding the credential answers the probe with
        // "user presence required" (a libfido2 error).
        let mut a = Fake::with(vec![Err(err(no_creds))]);
        let mut b = Fake::with(vec![Err(err(lib)), Err(err(timeout))]);
        assert_eq!(
            sign(vec![&mut a, &mut b], &req(), "", 30_000),
            KeyAnswer::NoTouch
        );
        assert_eq!(b.asked.len(), 2);
        assert!(b.asked[1].0, "the real request is touched");
    }

    #[test]
    fn malformed_input_is_a_failed_answer() {
        let source = Source::Plugged;
        assert!(matches!(run(&source, 30_000, b""), KeyAnswer::Failed(_)));
        assert!(matches!(
            run(&source, 30_000, b"garbage"),
            KeyAnswer::Failed(_)
        ));
        let input = HelperInput {
            request: b"not a request".to_vec(),
            pin: Zeroizing::new("1234".into()),
        };
        match run(&source, 30_000, &input.encode()) {
            KeyAnswer::Failed(why) => assert!(!why.contains("1234"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn input_is_bounded() {
        let ok = vec![1u8; MAX_INPUT];
        assert_eq!(read_input(ok.as_slice()).unwrap().unwrap().len(), MAX_INPUT);
        let big = vec![1u8; MAX_INPUT + 1];
        assert!(read_input(big.as_slice()).unwrap().is_none());
    }

    #[test]
    fn arguments() {
        let a = Args::try_parse_from(["twofactor-key"]).unwrap();
        assert_eq!(a.timeout_ms, 30_000);
        assert_eq!(a.test_device, None);
        let a = Args::try_parse_from(["twofactor-key", "--timeout-ms", "1000"]).unwrap();
        assert_eq!(a.timeout_ms, 1_000);
        for bad in ["999", "120001", "x", "-1"] {
            assert!(
                Args::try_parse_from(["twofactor-key", "--timeout-ms", bad]).is_err(),
                "{bad}"
            );
        }
        assert!(Args::try_parse_from(["twofactor-key", "extra"]).is_err());
    }
}

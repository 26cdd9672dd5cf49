//! `twofactorctl enable key [--name LABEL]`: register a FIDO2 security key
//! plugged into this machine as a method. A local login (console, su,
//! sudo, a screen locker) then takes a touch of the key instead of a code.
//!
//! Flow: Status → the `--save` FILE is checked (and refused when the user
//! has a method already: no backup codes come then) → the name is checked
//! → the key is found and opened (none plugged in: refused here, before
//! the password; several: the first, and the person is told which) →
//! password (and a current second factor when the account has a method) →
//! EnrollKey → its `CredentialRequest` decoded → the key's PIN when the
//! request requires user verification and the key has a PIN but no
//! built-in verification (a key with neither is refused here) → "Touch
//! your security key." → the key creates the credential (when it wants its
//! PIN, the PIN is asked and it is tried once more) → ConfirmKey with the
//! encoded `Attestation` → "Security key registered as ID (NAME)." → when
//! it is the first method, the first set of backup codes, shown and saved
//! as after `enable app`.

use std::io::Write;

use twofactor_proto::key::{Attestation, CredentialRequest, UserVerification};
use zeroize::Zeroizing;

use super::{first_set, no_save_without_a_first_set};
use crate::cli::EnableKeyArgs;
use crate::client::Account;
use crate::commands::backup::{self, Here};
use crate::commands::{proof, write_failure};
use crate::error::{Failure, Reason};
use crate::input::{Input, Password};
use crate::security_key::{Key, KeyError, Keys};
use crate::text::one_line;

/// The refusal when no key is plugged in.
pub const NO_KEY: &str = "No security key found: plug one in and try again";
/// Said (stderr) before the key waits for the touch.
pub const TOUCH: &str = "Touch your security key.";
/// The question for the key's PIN (echo off).
pub const PIN_PROMPT: &str = "Security key PIN: ";
/// How the line on stdout on success starts.
pub const REGISTERED: &str = "Security key registered as";
/// The name twofactord gives a key registered without one.
pub const DEFAULT_NAME: &str = "security key";
/// The longest name twofactord takes, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// The longest PIN read: CTAP2 PINs are at most 63 bytes.
pub const MAX_PIN_BYTES: usize = 63;
/// The key holds a credential of the account already.
pub const ALREADY_REGISTERED: &str = "this security key is registered for your account already";
/// Nobody touched the key within the time allowed.
pub const NOT_TOUCHED: &str = "the key was not touched in time";
/// The key refused the PIN.
pub const WRONG_PIN: &str = "wrong PIN (or the key is blocked)";
/// User verification is required and the key can do none.
pub const NEEDS_VERIFICATION: &str = "this machine requires a key with a PIN or fingerprint \
     ([keys] user_verification = required); set a PIN on your key first (e.g. `fido2-token -S`)";
/// The key wants a PIN and has none set.
pub const NO_PIN_SET: &str = "the security key asks for a PIN but has none set; set a PIN on \
     your key first (e.g. `fido2-token -S`)";
/// Said (stderr) after the registration: where the key counts.
pub const WHERE_IT_COUNTS: &str = "At a local login (console, su, sudo, a screen locker), \
     touch it when asked instead of typing a code. Over SSH, use another method or a backup \
     code.";
/// How a failure to save the first set starts: the key is registered all
/// the same.
const KEY_ON: &str = "the security key is registered";

pub fn run(
    account: &dyn Account,
    keys: &dyn Keys,
    input: &mut Input,
    out: &mut dyn Write,
    args: &EnableKeyArgs,
    here: &Here,
) -> Result<(), Failure> {
    let status = account.status()?;
    no_save_without_a_first_set(&status, &args.save)?;
    backup::check_save(&args.save)?;
    let name = args.name.as_deref().unwrap_or("");
    check_name(name)?;
    let mut key = find(keys, input)?;
    let user = one_line(&status.user);
    let (enrolment, request) = {
        let proven = proof::ask(account, input, &status)?;
        account.enroll_key(proven.proof())?
    };
    let request = CredentialRequest::decode(&request).map_err(|e| {
        Failure::new(
            Reason::Unexpected,
            format!(
                "twofactord's request for the key is not understood ({e}); nothing was registered"
            ),
        )
    })?;
    let attestation = create(key.as_mut(), &request, input)?;
    drop(key);
    let (id, codes) = account.confirm_key(&enrolment, name, &attestation.encode())?;
    let codes = Zeroizing::new(codes);
    let shown = match name.trim() {
        "" => DEFAULT_NAME,
        given => given,
    };
    writeln!(out, "{REGISTERED} {} ({}).", one_line(&id), one_line(shown))
        .map_err(write_failure)?;
    input.tell(WHERE_IT_COUNTS)?;
    if codes.is_empty() {
        return out.flush().map_err(write_failure);
    }
    first_set(input, out, &args.save, &codes, &here.origin(&user), KEY_ON)
}

/// The name as twofactord takes it (checked again there): at most
/// [`MAX_NAME_CHARS`] once trimmed, no control characters. Refused before
/// anything is asked.
fn check_name(name: &str) -> Result<(), Failure> {
    let trimmed = name.trim();
    if trimmed.chars().count() > MAX_NAME_CHARS {
        return Err(Failure::usage(format!(
            "--name: longer than {MAX_NAME_CHARS} characters; nothing was changed"
        )));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(Failure::usage(
            "--name: control characters are not allowed; nothing was changed",
        ));
    }
    Ok(())
}

/// The key to use, opened: the first one plugged in (the person is told
/// which when there are several).
fn find(keys: &dyn Keys, input: &mut Input) -> Result<Box<dyn Key>, Failure> {
    let paths = keys
        .paths()
        .map_err(|e| device_failure("could not look for security keys", e))?;
    let Some(path) = paths.first() else {
        return Err(Failure::new(Reason::SecurityKey, NO_KEY));
    };
    if paths.len() > 1 {
        input.tell(&format!(
            "{} security keys are plugged in: using the one at {} (unplug the others to \
             register another).",
            paths.len(),
            one_line(path)
        ))?;
    }
    keys.open(path).map_err(|e| {
        device_failure(
            &format!("could not open the security key at {}", one_line(path)),
            e,
        )
    })
}

/// Has `key` create the credential `request` asks for: with its PIN when
/// user verification is required and the key verifies by PIN only, and
/// once more with the PIN when the key asks for it.
fn create(
    key: &mut dyn Key,
    request: &CredentialRequest,
    input: &mut Input,
) -> Result<Attestation, Failure> {
    let required = request.user_verification == UserVerification::Required;
    let mut pin: Option<Password> = None;
    if required && !key.has_builtin_uv() {
        if !key.has_pin() {
            return Err(Failure::new(Reason::SecurityKey, NEEDS_VERIFICATION));
        }
        pin = Some(ask_pin(input)?);
    }
    loop {
        input.tell(TOUCH)?;
        let given = pin.as_ref().map(|p| pin_text(p)).transpose()?;
        match key.make_credential(request, given) {
            Ok(attestation) => return Ok(attestation),
            Err(KeyError::PinRequired) if pin.is_none() && key.has_pin() => {
                pin = Some(ask_pin(input)?);
            }
            Err(e) => return Err(key_failure(e, required, pin.is_some())),
        }
    }
}

/// The key's PIN, echo off (the next line of stdin for a script).
fn ask_pin(input: &mut Input) -> Result<Password, Failure> {
    let pin = input.hidden(PIN_PROMPT, "the security key's PIN", MAX_PIN_BYTES)?;
    if pin.is_empty() {
        return Err(Failure::new(
            Reason::SecurityKey,
            "no PIN was given; the security key was not registered",
        ));
    }
    Ok(pin)
}

fn pin_text(pin: &[u8]) -> Result<&str, Failure> {
    std::str::from_utf8(pin).map_err(|_| {
        Failure::usage("the PIN is not UTF-8 text; the security key was not registered")
    })
}

/// What the person is told when the key did not create the credential.
/// `required`: the request required user verification; `pin_given`: a
/// PIN went with the last try.
fn key_failure(e: KeyError, required: bool, pin_given: bool) -> Failure {
    match e {
        KeyError::Excluded => Failure::new(Reason::AlreadyEnrolled, ALREADY_REGISTERED),
        KeyError::Timeout => Failure::new(Reason::SecurityKey, NOT_TOUCHED),
        KeyError::PinInvalid => Failure::new(Reason::SecurityKey, WRONG_PIN),
        // The key still wants its PIN after it was given: blocked.
        KeyError::PinRequired if pin_given => Failure::new(Reason::SecurityKey, WRONG_PIN),
        KeyError::PinRequired if required => Failure::new(Reason::SecurityKey, NEEDS_VERIFICATION),
        KeyError::PinRequired => Failure::new(Reason::SecurityKey, NO_PIN_SET),
        KeyError::Other(text) => Failure::new(
            Reason::Io,
            format!("the security key failed: {text}; nothing was registered"),
        ),
    }
}

/// Finding or opening the key failed: `doing`, and libfido2's reason.
fn device_failure(doing: &str, e: KeyError) -> Failure {
    match e {
        KeyError::Other(text) => Failure::new(Reason::Io, format!("{doing}: {text}")),
        other => key_failure(other, false, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SaveArgs;
    use crate::commands::backup::{CODES_HEADER, SAVED_PREFIX};
    use crate::commands::fake::{
        assert_in_order, here, saved_codes, scripted, status, ten_codes, FakeAccount,
    };
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    /// What the fake key was asked, in order.
    type Log = Rc<RefCell<Vec<String>>>;

    /// A scripted key: its PIN and built-in verification, and the answers
    /// of `make_credential` in order.
    #[derive(Clone, Default)]
    struct FakeKey {
        pin: bool,
        uv: bool,
        answers: Rc<RefCell<VecDeque<Result<Attestation, KeyError>>>>,
        log: Log,
    }

    impl Key for FakeKey {
        fn has_pin(&self) -> bool {
            self.pin
        }
        fn has_builtin_uv(&self) -> bool {
            self.uv
        }
        fn make_credential(
            &mut self,
            request: &CredentialRequest,
            pin: Option<&str>,
        ) -> Result<Attestation, KeyError> {
            assert_eq!(request, &credential_request(request.user_verification));
            self.log
                .borrow_mut()
                .push(format!("MakeCredential({})", pin.unwrap_or("-")));
            self.answers
                .borrow_mut()
                .pop_front()
                .unwrap_or(Err(KeyError::Other("unscripted".into())))
        }
    }

    /// The keys plugged in: `paths`, each opening as `key` (or failing).
    struct FakeKeys {
        paths: Result<Vec<String>, KeyError>,
        key: Result<FakeKey, KeyError>,
    }

    impl FakeKeys {
        fn one(key: &FakeKey) -> FakeKeys {
            FakeKeys {
                paths: Ok(vec!["/dev/hidraw3".into()]),
                key: Ok(key.clone()),
            }
        }
        fn none() -> FakeKeys {
            FakeKeys {
                paths: Ok(Vec::new()),
                key: Err(KeyError::Other("not plugged in".into())),
            }
        }
    }

    impl Keys for FakeKeys {
        fn paths(&self) -> Result<Vec<String>, KeyError> {
            self.paths.clone()
        }
        fn open(&self, path: &str) -> Result<Box<dyn Key>, KeyError> {
            let key = self.key.clone()?;
            key.log.borrow_mut().push(format!("Open({path})"));
            Ok(Box::new(key))
        }
    }

    fn credential_request(uv: UserVerification) -> CredentialRequest {
        CredentialRequest {
            rp_id: "twofactor:testhost".into(),
            user_id: vec![7; 16],
            user_name: "alice".into(),
            client_data_hash: [9; 32],
            user_verification: uv,
            exclude: vec![vec![1, 2, 3]],
        }
    }

    fn attestation() -> Attestation {
        Attestation {
            fmt: "packed".into(),
            authdata: vec![0xa5; 164],
            x5c: Vec::new(),
            signature: vec![0x30; 70],
        }
    }

    /// alice's daemon with `methods`, answering EnrollKey with a request
    /// of `uv` and ConfirmKey with `confirmed`.
    fn daemon(
        methods: &[&str],
        uv: UserVerification,
        confirmed: Result<(String, Vec<String>), Failure>,
    ) -> FakeAccount {
        let account = FakeAccount::with_status(status(methods));
        account
            .key_enrolments
            .borrow_mut()
            .push_back(Ok(("k1".into(), credential_request(uv).encode())));
        account.key_confirms.borrow_mut().push_back(confirmed);
        account
    }

    /// A key without PIN or built-in verification that answers `answers`.
    fn key(answers: Vec<Result<Attestation, KeyError>>) -> FakeKey {
        let key = FakeKey::default();
        key.answers.borrow_mut().extend(answers);
        key
    }

    fn args(name: Option<&str>, save: SaveArgs) -> EnableKeyArgs {
        EnableKeyArgs {
            name: name.map(str::to_owned),
            save,
        }
    }

    /// Result, stdout and what was said (stderr).
    fn run_with(
        account: &FakeAccount,
        keys: &FakeKeys,
        args: &EnableKeyArgs,
        stdin: &[u8],
        interactive: bool,
    ) -> (Result<(), Failure>, String, String) {
        scripted(stdin, interactive, |input, out| {
            run(account, keys, input, out, args, &here())
        })
    }

    fn confirm_call(name: &str) -> String {
        format!(
            "ConfirmKey(k1,{name},{} bytes)",
            attestation().encode().len()
        )
    }

    #[test]
    fn a_first_key_is_registered_and_brings_backup_codes() {
        let account = daemon(
            &[],
            UserVerification::Preferred,
            Ok(("0a1b2c3d".into(), ten_codes())),
        );
        let k = key(vec![Ok(attestation())]);
        let keys = FakeKeys::one(&k);
        let (r, out, said) = run_with(
            &account,
            &keys,
            &args(Some("blue key"), SaveArgs::default()),
            b"secret\n",
            false,
        );
        r.unwrap();
        let mut want = vec![
            "Security key registered as 0a1b2c3d (blue key).".to_owned(),
            String::new(),
            CODES_HEADER.to_owned(),
        ];
        want.extend(ten_codes());
        assert_eq!(out.lines().collect::<Vec<_>>(), want);
        assert_in_order(&said, &["Password for alice: ", TOUCH, "local login"]);
        assert!(!said.contains(PIN_PROMPT), "{said}");
        assert!(!said.contains(&ten_codes()[0]), "codes never on stderr");
        assert_eq!(
            account.calls(),
            [
                "Status".to_owned(),
                "EnrollKey(secret)".to_owned(),
                confirm_call("blue key")
            ]
        );
        assert_eq!(*k.log.borrow(), ["Open(/dev/hidraw3)", "MakeCredential(-)"]);
        // What the key made goes to the daemon encoded, unchanged.
        let sent = account.key_attestations.borrow();
        assert_eq!(sent.len(), 1);
        assert_eq!(Attestation::decode(&sent[0]).ok(), Some(attestation()));
    }

    #[test]
    fn a_later_key_needs_a_code_and_brings_no_codes() {
        let account = daemon(
            &["app"],
            UserVerification::Preferred,
            Ok(("0a1b2c3e".into(), vec![])),
        );
        let keys = FakeKeys::one(&key(vec![Ok(attestation())]));
        let (r, out, _) = run_with(
            &account,
            &keys,
            &args(None, SaveArgs::default()),
            b"pw\n123456\n",
            false,
        );
        r.unwrap();
        // No name: twofactord's default, and "" is sent.
        assert_eq!(out, format!("{REGISTERED} 0a1b2c3e ({DEFAULT_NAME}).\n"));
        assert_eq!(
            account.calls(),
            [
                "Status".to_owned(),
                "EnrollKey(pw+123456)".to_owned(),
                confirm_call("")
            ]
        );
    }

    #[test]
    fn the_first_set_is_saved_with_save() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let account = daemon(
            &[],
            UserVerification::Preferred,
            Ok(("0a1b2c3d".into(), ten_codes())),
        );
        let keys = FakeKeys::one(&key(vec![Ok(attestation())]));
        let save = SaveArgs {
            save: Some(path.clone()),
            force: false,
        };
        let (r, out, _) = run_with(&account, &keys, &args(None, save), b"pw\n", false);
        r.unwrap();
        assert_eq!(saved_codes(&path), ten_codes());
        assert!(
            out.lines().last().unwrap().starts_with(SAVED_PREFIX),
            "{out}"
        );
    }

    #[test]
    fn no_key_is_refused_before_the_password() {
        let account = daemon(&[], UserVerification::Preferred, Ok(("x".into(), vec![])));
        let (r, out, said) = run_with(
            &account,
            &FakeKeys::none(),
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        let err = r.unwrap_err();
        assert_eq!((err.message(), err.exit_code()), (NO_KEY, 1));
        assert_eq!(account.calls(), ["Status"]);
        assert!(out.is_empty());
        assert!(!said.contains("Password"), "{said}");

        // libfido2 could not even list them: an error of this machine.
        let account = daemon(&[], UserVerification::Preferred, Ok(("x".into(), vec![])));
        let keys = FakeKeys {
            paths: Err(KeyError::Other(
                "fido_dev_info_manifest: FIDO_ERR_INTERNAL".into(),
            )),
            key: Err(KeyError::Other("x".into())),
        };
        let (r, _, _) = run_with(
            &account,
            &keys,
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(err
            .message()
            .starts_with("could not look for security keys: fido_dev_info"));
    }

    #[test]
    fn a_key_that_cannot_be_opened_is_named() {
        let account = daemon(&[], UserVerification::Preferred, Ok(("x".into(), vec![])));
        let keys = FakeKeys {
            paths: Ok(vec!["/dev/hidraw5".into()]),
            key: Err(KeyError::Other("fido_dev_open: FIDO_ERR_RX".into())),
        };
        let (r, _, _) = run_with(
            &account,
            &keys,
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        let err = r.unwrap_err();
        assert_eq!(
            err.message(),
            "could not open the security key at /dev/hidraw5: fido_dev_open: FIDO_ERR_RX"
        );
        assert_eq!(account.calls(), ["Status"]);
    }

    #[test]
    fn with_several_keys_the_first_is_used_and_named() {
        let account = daemon(
            &[],
            UserVerification::Preferred,
            Ok(("0a1b2c3d".into(), vec![])),
        );
        let k = key(vec![Ok(attestation())]);
        let keys = FakeKeys {
            paths: Ok(vec!["/dev/hidraw1".into(), "/dev/hidraw2".into()]),
            key: Ok(k.clone()),
        };
        let (r, _, said) = run_with(
            &account,
            &keys,
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        r.unwrap();
        assert!(
            said.contains("2 security keys are plugged in: using the one at /dev/hidraw1"),
            "{said}"
        );
        assert_eq!(k.log.borrow()[0], "Open(/dev/hidraw1)");
    }

    #[test]
    fn key_errors_are_told_and_nothing_is_confirmed() {
        for (answer, message, code) in [
            (KeyError::Excluded, ALREADY_REGISTERED, 1),
            (KeyError::Timeout, NOT_TOUCHED, 1),
            (KeyError::PinInvalid, WRONG_PIN, 1),
            (KeyError::PinRequired, NO_PIN_SET, 1),
            (
                KeyError::Other("fido_dev_make_cred: FIDO_ERR_TX".into()),
                "the security key failed: fido_dev_make_cred: FIDO_ERR_TX; nothing was registered",
                4,
            ),
        ] {
            let account = daemon(
                &[],
                UserVerification::Preferred,
                Ok(("x".into(), ten_codes())),
            );
            let keys = FakeKeys::one(&key(vec![Err(answer.clone())]));
            let (r, out, said) = run_with(
                &account,
                &keys,
                &args(None, SaveArgs::default()),
                b"pw\n",
                false,
            );
            let err = r.unwrap_err();
            assert_eq!(
                (err.message(), err.exit_code()),
                (message, code),
                "{answer:?}"
            );
            assert_eq!(account.calls(), ["Status", "EnrollKey(pw)"], "{answer:?}");
            assert!(out.is_empty());
            assert!(said.contains(TOUCH));
        }
    }

    #[test]
    fn the_pin_is_asked_when_the_key_wants_it_and_tried_once_more() {
        let account = daemon(
            &[],
            UserVerification::Preferred,
            Ok(("0a1b2c3d".into(), vec![])),
        );
        let k = FakeKey {
            pin: true,
            ..key(vec![Err(KeyError::PinRequired), Ok(attestation())])
        };
        let (r, _, said) = run_with(
            &account,
            &FakeKeys::one(&k),
            &args(None, SaveArgs::default()),
            b"pw\n1234\n",
            false,
        );
        r.unwrap();
        assert_eq!(
            *k.log.borrow(),
            [
                "Open(/dev/hidraw3)",
                "MakeCredential(-)",
                "MakeCredential(1234)"
            ]
        );
        assert_in_order(&said, &[TOUCH, PIN_PROMPT, TOUCH]);

        // A wrong PIN: once more only, then told.
        let account = daemon(
            &[],
            UserVerification::Preferred,
            Ok(("0a1b2c3d".into(), vec![])),
        );
        let k = FakeKey {
            pin: true,
            ..key(vec![Err(KeyError::PinRequired), Err(KeyError::PinInvalid)])
        };
        let (r, _, _) = run_with(
            &account,
            &FakeKeys::one(&k),
            &args(None, SaveArgs::default()),
            b"pw\n0000\n1111\n",
            false,
        );
        assert_eq!(r.unwrap_err().message(), WRONG_PIN);
        assert_eq!(k.log.borrow().len(), 3, "no third try");
        assert_eq!(account.calls(), ["Status", "EnrollKey(pw)"]);
    }

    #[test]
    fn required_verification_asks_the_pin_first_unless_the_key_reads_fingerprints() {
        let pin_key = FakeKey {
            pin: true,
            ..key(vec![Ok(attestation())])
        };
        let account = daemon(
            &[],
            UserVerification::Required,
            Ok(("0a1b2c3d".into(), vec![])),
        );
        let (r, _, said) = run_with(
            &account,
            &FakeKeys::one(&pin_key),
            &args(None, SaveArgs::default()),
            b"pw\n1234\n",
            false,
        );
        r.unwrap();
        assert_eq!(pin_key.log.borrow()[1], "MakeCredential(1234)");
        assert_in_order(&said, &[PIN_PROMPT, TOUCH]);

        let fingerprint = FakeKey {
            pin: true,
            uv: true,
            ..key(vec![Ok(attestation())])
        };
        let account = daemon(
            &[],
            UserVerification::Required,
            Ok(("0a1b2c3d".into(), vec![])),
        );
        let (r, _, said) = run_with(
            &account,
            &FakeKeys::one(&fingerprint),
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        r.unwrap();
        assert!(!said.contains(PIN_PROMPT), "{said}");
        assert_eq!(fingerprint.log.borrow()[1], "MakeCredential(-)");
    }

    #[test]
    fn required_verification_refuses_a_key_with_neither() {
        let plain = key(vec![Ok(attestation())]);
        let account = daemon(&[], UserVerification::Required, Ok(("x".into(), vec![])));
        let (r, _, said) = run_with(
            &account,
            &FakeKeys::one(&plain),
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        let err = r.unwrap_err();
        assert_eq!((err.message(), err.exit_code()), (NEEDS_VERIFICATION, 1));
        assert!(err.message().contains("fido2-token -S"));
        assert!(
            !said.contains(TOUCH),
            "not asked to touch for nothing: {said}"
        );
        assert_eq!(*plain.log.borrow(), ["Open(/dev/hidraw3)"]);

        // The key says so itself (e.g. its PIN is not set after all).
        let account = daemon(&[], UserVerification::Required, Ok(("x".into(), vec![])));
        let k = FakeKey {
            uv: true,
            ..key(vec![Err(KeyError::PinRequired)])
        };
        let (r, _, _) = run_with(
            &account,
            &FakeKeys::one(&k),
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        assert_eq!(r.unwrap_err().message(), NEEDS_VERIFICATION);
    }

    #[test]
    fn a_missing_or_empty_pin_ends_it() {
        for (stdin, exit) in [(&b"pw\n"[..], 2), (b"pw\n\n", 1)] {
            let account = daemon(&[], UserVerification::Preferred, Ok(("x".into(), vec![])));
            let k = FakeKey {
                pin: true,
                ..key(vec![Err(KeyError::PinRequired)])
            };
            let (r, _, _) = run_with(
                &account,
                &FakeKeys::one(&k),
                &args(None, SaveArgs::default()),
                stdin,
                false,
            );
            let err = r.unwrap_err();
            assert_eq!(err.exit_code(), exit, "{}", err.message());
            assert!(!err.message().contains("password"), "{}", err.message());
            assert_eq!(k.log.borrow().len(), 2);
        }
    }

    #[test]
    fn refused_before_anything_is_asked() {
        // --save when no backup codes will come; a name twofactord refuses.
        let d = tempfile::tempdir().unwrap();
        let save = SaveArgs {
            save: Some(d.path().join("codes.txt")),
            force: false,
        };
        for (methods, args) in [
            (&["app"][..], args(None, save)),
            (
                &[],
                args(Some(&"x".repeat(MAX_NAME_CHARS + 1)), SaveArgs::default()),
            ),
            (&[], args(Some("blue\x1bkey"), SaveArgs::default())),
        ] {
            let account = daemon(
                methods,
                UserVerification::Preferred,
                Ok(("x".into(), vec![])),
            );
            let k = key(vec![]);
            let (r, _, said) =
                run_with(&account, &FakeKeys::one(&k), &args, b"pw\n123456\n", false);
            assert_eq!(r.unwrap_err().exit_code(), 2);
            assert_eq!(account.calls(), ["Status"]);
            assert!(k.log.borrow().is_empty(), "the key was not opened");
            assert!(!said.contains("Password"), "{said}");
        }
        // 64 characters and spaces around are fine.
        assert!(check_name(&format!("  {}  ", "é".repeat(MAX_NAME_CHARS))).is_ok());
    }

    #[test]
    fn daemon_refusals_are_passed_on() {
        // The password, at EnrollKey: the key is not asked to do anything.
        let account = FakeAccount::with_status(status(&[]));
        account
            .key_enrolments
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::BadPassword, "Wrong password.")));
        let k = key(vec![]);
        let (r, _, said) = run_with(
            &account,
            &FakeKeys::one(&k),
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        assert_eq!(r.unwrap_err().message(), "Wrong password.");
        assert!(!said.contains(TOUCH));
        // The answer, at ConfirmKey.
        let account = daemon(
            &[],
            UserVerification::Preferred,
            Err(Failure::new(
                Reason::BadCode,
                "the security key's answer was not accepted",
            )),
        );
        let keys = FakeKeys::one(&key(vec![Ok(attestation())]));
        let (r, out, _) = run_with(
            &account,
            &keys,
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        assert_eq!(r.unwrap_err().reason, Reason::BadCode);
        assert!(out.is_empty());
    }

    #[test]
    fn a_request_not_understood_is_not_shown_to_the_key() {
        let account = FakeAccount::with_status(status(&[]));
        account
            .key_enrolments
            .borrow_mut()
            .push_back(Ok(("k1".into(), vec![0x43, 0, 1])));
        let k = key(vec![Ok(attestation())]);
        let (r, _, _) = run_with(
            &account,
            &FakeKeys::one(&k),
            &args(None, SaveArgs::default()),
            b"pw\n",
            false,
        );
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(
            err.message().contains("not understood"),
            "{}",
            err.message()
        );
        assert_eq!(*k.log.borrow(), ["Open(/dev/hidraw3)"]);
    }
}

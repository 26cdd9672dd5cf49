//! The libfido2 wrapper (`twofactor-fido`) and the key helper
//! (`twofactor-key`) against the software security key (`soft_key`),
//! through the real libfido2 and the wrapper's test transport: enrolment
//! and verification as twofactorctl and twofactord do them, the ways a
//! request or a key can be wrong, and the built helper as the PAM module
//! runs it. Any user; no bus, no daemon.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use twofactor_fido::{
    verify_assertion, verify_attestation, Alg, Assertion, AssertionRequest, Credential,
    CredentialRequest, Device, FidoError, HelperInput, KeyAnswer, UserVerification, Zeroizing,
};
use twofactor_tests::soft_key::{Behaviour, SoftKey, SoftKeyOptions};

const RP: &str = "twofactor:testhost";

fn key(dir: &Path, options: SoftKeyOptions) -> SoftKey {
    SoftKey::start(&dir.join("key.sock"), options).expect("start the soft key")
}

fn open(k: &SoftKey) -> Device {
    let mut d = Device::open_test(k.path()).expect("open the soft key");
    d.set_timeout(10_000).expect("set_timeout");
    d
}

fn cred_req(uv: UserVerification) -> CredentialRequest {
    CredentialRequest {
        rp_id: RP.into(),
        user_id: vec![0x11; 16],
        user_name: "alice".into(),
        client_data_hash: [0x22; 32],
        user_verification: uv,
        exclude: vec![],
    }
}

fn assert_req(allow: &[u8], uv: UserVerification) -> AssertionRequest {
    AssertionRequest {
        rp_id: RP.into(),
        client_data_hash: [0x33; 32],
        allow: vec![allow.to_vec()],
        user_verification: uv,
    }
}

/// Enrols a credential on `k` as twofactorctl and twofactord do.
fn enrol(k: &SoftKey) -> Credential {
    let req = cred_req(UserVerification::Preferred);
    let att = open(k)
        .make_credential(&req, None)
        .expect("make_credential");
    verify_attestation(&att, &req).expect("verify_attestation")
}

fn is_verify(r: Result<impl std::fmt::Debug, FidoError>) -> &'static str {
    match r {
        Err(FidoError::Verify(why)) => why,
        other => panic!("expected a verification failure, got {other:?}"),
    }
}

#[test]
fn a_credential_enrols_and_its_assertions_verify() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let req = cred_req(UserVerification::Preferred);
    let mut dev = open(&k);
    assert!(!dev.has_builtin_uv());
    assert!(!dev.has_pin());
    let att = dev.make_credential(&req, None).expect("make_credential");
    assert_eq!(att.fmt, "packed");
    let cred = verify_attestation(&att, &req).expect("verify_attestation");
    assert_eq!(cred.alg, Alg::Es256);
    assert_eq!(cred.aaguid, SoftKey::AAGUID);
    assert_eq!(k.credentials(), vec![(cred.id.clone(), RP.to_string())]);
    assert_eq!(
        k.public_key(&cred.id),
        Some((Alg::Es256.cose(), cred.public_key.clone()))
    );

    let areq = assert_req(&cred.id, UserVerification::Preferred);
    let a = dev.get_assertion(&areq, None, true).expect("get_assertion");
    assert_eq!(a.credential_id, cred.id);
    let v = verify_assertion(&a, &areq, cred.alg, &cred.public_key).expect("verify_assertion");
    assert!(v.sign_count > cred.sign_count, "{v:?} after {cred:?}");
    // The next one counts up again.
    let b = dev.get_assertion(&areq, None, true).expect("get_assertion");
    let w = verify_assertion(&b, &areq, cred.alg, &cred.public_key).expect("verify_assertion");
    assert!(w.sign_count > v.sign_count);
    // The device is closed on drop and the key serves the next one.
    drop(dev);
    let c = open(&k).get_assertion(&areq, None, true).expect("reopen");
    assert!(verify_assertion(&c, &areq, cred.alg, &cred.public_key).is_ok());
}

#[test]
fn what_answers_another_request_does_not_verify() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let req = cred_req(UserVerification::Preferred);
    let att = open(&k)
        .make_credential(&req, None)
        .expect("make_credential");
    // The attestation against another relying party, another challenge.
    let other_rp = CredentialRequest {
        rp_id: "twofactor:otherhost".into(),
        ..req.clone()
    };
    is_verify(verify_attestation(&att, &other_rp));
    let other_cdh = CredentialRequest {
        client_data_hash: [0x44; 32],
        ..req.clone()
    };
    is_verify(verify_attestation(&att, &other_cdh));
    let cred = verify_attestation(&att, &req).expect("verify_attestation");

    let areq = assert_req(&cred.id, UserVerification::Preferred);
    let a = open(&k)
        .get_assertion(&areq, None, true)
        .expect("get_assertion");
    let check = |r: &AssertionRequest| verify_assertion(&a, r, cred.alg, &cred.public_key);
    assert!(check(&areq).is_ok());
    let other_rp = AssertionRequest {
        rp_id: "twofactor:otherhost".into(),
        ..areq.clone()
    };
    assert!(is_verify(check(&other_rp)).contains("relying party"));
    let other_cdh = AssertionRequest {
        client_data_hash: [0x55; 32],
        ..areq.clone()
    };
    assert!(is_verify(check(&other_cdh)).contains("signature"));
    // User verification required, but the key did none.
    let uv = AssertionRequest {
        user_verification: UserVerification::Required,
        ..areq.clone()
    };
    assert!(is_verify(check(&uv)).contains("verified"));
    // Another credential's public key.
    let other = enrol(&k);
    is_verify(verify_assertion(&a, &areq, other.alg, &other.public_key));

    // A key that signs wrongly, or says nobody touched it.
    k.set_behaviour(Behaviour::WrongSignature);
    let bad = open(&k)
        .get_assertion(&areq, None, true)
        .expect("get_assertion");
    assert!(
        is_verify(verify_assertion(&bad, &areq, cred.alg, &cred.public_key)).contains("signature")
    );
    k.set_behaviour(Behaviour::NoPresence);
    let untouched = open(&k)
        .get_assertion(&areq, None, true)
        .expect("get_assertion");
    assert!(is_verify(verify_assertion(
        &untouched,
        &areq,
        cred.alg,
        &cred.public_key
    ))
    .contains("present"));
    // The credential id is handed back as the key gave it (the daemon
    // looks the credential up by it).
    k.set_behaviour(Behaviour::OtherCredentialId);
    let renamed = open(&k)
        .get_assertion(&areq, None, true)
        .expect("get_assertion");
    assert_ne!(renamed.credential_id, cred.id);
}

#[test]
fn user_verification_required_needs_a_key_that_can_verify() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let req = cred_req(UserVerification::Required);
    match open(&k).make_credential(&req, None) {
        Err(FidoError::PinRequired { call, .. }) => assert_eq!(call, "fido_dev_make_cred"),
        other => panic!("expected PinRequired, got {other:?}"),
    }
    assert!(k.credentials().is_empty());
    drop(k);

    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(
        dir.path(),
        SoftKeyOptions {
            builtin_uv: true,
            ..SoftKeyOptions::default()
        },
    );
    let mut dev = open(&k);
    assert!(dev.has_builtin_uv());
    let att = dev
        .make_credential(&req, None)
        .expect("make_credential with UV");
    let cred = verify_attestation(&att, &req).expect("verify_attestation");
    assert!(cred.user_verified);
    let areq = assert_req(&cred.id, UserVerification::Required);
    let a = dev
        .get_assertion(&areq, None, true)
        .expect("get_assertion with UV");
    let v = verify_assertion(&a, &areq, cred.alg, &cred.public_key).expect("verify_assertion");
    assert!(v.user_verified);
}

#[test]
fn a_silent_probe_finds_the_credential_without_a_touch() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    // Nobody would touch it: a probe must not need it.
    k.set_behaviour(Behaviour::NeverTouched);
    let areq = assert_req(&cred.id, UserVerification::Preferred);
    let mut dev = open(&k);
    let start = Instant::now();
    let probe = dev.get_assertion(&areq, None, false).expect("probe");
    assert!(start.elapsed() < Duration::from_secs(5));
    // Signed, but without user presence: no login accepts it.
    assert!(
        is_verify(verify_assertion(&probe, &areq, cred.alg, &cred.public_key)).contains("present")
    );
    let unknown = assert_req(&[0x99; 32], UserVerification::Preferred);
    assert!(matches!(
        dev.get_assertion(&unknown, None, false),
        Err(FidoError::NoCredentials { .. })
    ));
}

#[test]
fn an_excluded_credential_is_refused() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    let req = CredentialRequest {
        exclude: vec![vec![0x77; 32], cred.id.clone()],
        ..cred_req(UserVerification::Preferred)
    };
    assert!(matches!(
        open(&k).make_credential(&req, None),
        Err(FidoError::Excluded { .. })
    ));
    assert_eq!(k.credentials().len(), 1);
}

#[test]
fn no_touch_in_time_is_a_timeout() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    k.set_behaviour(Behaviour::NeverTouched);
    let mut dev = open(&k);
    dev.set_timeout(1_000).expect("set_timeout");
    let start = Instant::now();
    let r = dev.get_assertion(
        &assert_req(&cred.id, UserVerification::Preferred),
        None,
        true,
    );
    let took = start.elapsed();
    // libfido2 1.12 says FIDO_ERR_RX (-2): its read after the time ran out
    // failed; the key itself never said "timeout".
    assert!(
        matches!(r, Err(FidoError::Timeout { code: -2, .. })),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
    dev.cancel();
}

#[test]
fn garbage_from_the_key_is_an_error() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    k.set_behaviour(Behaviour::GarbledCbor);
    let mut dev = open(&k);
    assert!(matches!(
        dev.get_assertion(
            &assert_req(&cred.id, UserVerification::Preferred),
            None,
            true
        ),
        Err(FidoError::Lib { .. })
    ));
    assert!(dev
        .make_credential(&cred_req(UserVerification::Preferred), None)
        .is_err());
}

#[test]
fn a_key_that_makes_only_eddsa_is_refused_at_enrolment() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(
        dir.path(),
        SoftKeyOptions {
            alg: Some(twofactor_tests::soft_key::COSE_EDDSA),
            ..SoftKeyOptions::default()
        },
    );
    let req = cred_req(UserVerification::Preferred);
    // Asked for ES256 only: the key refuses, or its credential does not
    // pass as one.
    if let Ok(att) = open(&k).make_credential(&req, None) {
        assert!(verify_attestation(&att, &req).is_err());
    }
}

#[test]
fn a_socket_nobody_serves_does_not_open() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let e = Device::open_test(&dir.path().join("none.sock"))
        .err()
        .expect("no device");
    assert!(e.to_string().contains("test transport"), "{e}");
}

// The built helper, as the PAM module runs it.

/// Runs `target/debug/twofactor-key --test-device SOCK` with an empty
/// environment; its decoded answer. `None` when this build of the
/// helper has no test transport (built alone rather than with the
/// workspace).
fn helper(
    sock: &Path,
    timeout_ms: Option<u32>,
    req: &AssertionRequest,
    pin: &str,
) -> Option<KeyAnswer> {
    let mut cmd = Command::new(twofactor_tests::built("twofactor-key"));
    cmd.env_clear().arg("--test-device").arg(sock);
    if let Some(ms) = timeout_ms {
        cmd.arg("--timeout-ms").arg(ms.to_string());
    }
    let input = HelperInput {
        request: req.encode(),
        pin: Zeroizing::new(pin.into()),
    };
    let out = twofactor_tests::proc::run(&mut cmd, &input.encode(), Duration::from_secs(60));
    if out.status.code() == Some(2) && out.stderr().contains("no test transport") {
        return None;
    }
    assert!(out.success(), "{}", out.describe());
    Some(KeyAnswer::decode(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.describe())))
}

macro_rules! helper_or_skip {
    ($($arg:expr),*) => {
        match helper($($arg),*) {
            Some(a) => a,
            None => {
                panic!(
                    "target/debug/twofactor-key has no test transport: build the workspace \
                     (cargo build --workspace --all-targets), not the helper alone"
                );
            }
        }
    };
}

#[test]
fn the_helper_has_the_key_sign_and_the_daemon_accepts_it() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    let areq = assert_req(&cred.id, UserVerification::Preferred);
    let answer = helper_or_skip!(k.path(), None, &areq, "");
    let KeyAnswer::Assertion(a) = answer else {
        panic!("expected an assertion, got {answer:?}");
    };
    let a: Assertion = a;
    assert_eq!(a.credential_id, cred.id);
    verify_assertion(&a, &areq, cred.alg, &cred.public_key).expect("verify_assertion");
}

#[test]
fn the_helper_says_no_touch_when_nobody_touches() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    k.set_behaviour(Behaviour::NeverTouched);
    let start = Instant::now();
    let answer = helper_or_skip!(
        k.path(),
        Some(1_000),
        &assert_req(&cred.id, UserVerification::Preferred),
        ""
    );
    assert_eq!(answer, KeyAnswer::NoTouch);
    assert!(
        start.elapsed() < Duration::from_secs(8),
        "{:?}",
        start.elapsed()
    );
}

#[test]
fn the_helper_says_not_registered_for_a_key_without_the_credential() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let answer = helper_or_skip!(
        k.path(),
        None,
        &assert_req(&[0x5a; 64], UserVerification::Preferred),
        ""
    );
    assert_eq!(answer, KeyAnswer::NotRegistered);
}

#[test]
fn the_helper_asks_for_a_pin_when_verification_needs_one() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let k = key(dir.path(), SoftKeyOptions::default());
    let cred = enrol(&k);
    let areq = assert_req(&cred.id, UserVerification::Required);
    // No PIN, no built-in verification: the key wants a PIN.
    assert_eq!(
        helper_or_skip!(k.path(), None, &areq, ""),
        KeyAnswer::PinRequired
    );
}

#[test]
fn the_helper_without_a_key_says_no_device() {
    let dir = twofactor_tests::temp_dir("tft-fido-");
    let answer = helper_or_skip!(
        &dir.path().join("none.sock"),
        None,
        &assert_req(&[1; 16], UserVerification::Preferred),
        ""
    );
    assert_eq!(answer, KeyAnswer::NoDevice);
}

//! FIDO2 security keys at local logins, end to end: `twofactorctl enable
//! key` registers a credential of a software authenticator (tests/src/
//! soft_key.rs, real P-256 keys, CTAP2 over CTAPHID) that the real libfido2
//! talks to through its I/O hook; a login through the built module under
//! real libpam runs the built key helper, and the real daemon verifies.
//! The software key is reached through the test builds' `key_device=`
//! (module) and `TWOFACTOR_TEST_KEY` (twofactorctl), which release builds do
//! not have (scripts/check-module checks the helper).

use base64::Engine as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use twofactor_tests::pam::{PamRun, PamService};
use twofactor_tests::proc::Finished;
use twofactor_tests::soft_key::{Behaviour, SoftKey, SoftKeyOptions};
use twofactor_tests::totp::Codes;
use twofactor_tests::{admin, need_root, DaemonConfig, Enrolled, Env, TestUser};

const TOUCH: &str = "Touch your security key.";

/// A software key whose socket the user's twofactorctl can reach too.
struct Key {
    key: SoftKey,
    _dir: tempfile::TempDir,
}

impl Key {
    fn start(options: SoftKeyOptions) -> Key {
        let dir = twofactor_tests::var_temp_dir("tft-key-");
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let path = dir.path().join("key.sock");
        let key = SoftKey::start(&path, options).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o666))
            .unwrap();
        Key { key, _dir: dir }
    }
    fn plain() -> Key {
        Key::start(SoftKeyOptions::default())
    }
    fn path(&self) -> &Path {
        self.key.path()
    }
}

/// The module with the built helper and, when given, a software key.
fn pam_with_key(env: &Env, device: Option<&Path>, extra: &str) -> PamService {
    let helper = twofactor_tests::built("twofactor-key");
    let device = device
        .map(|d| format!("key_device={}", d.display()))
        .unwrap_or_default();
    env.pam(&format!(
        "key_helper={} key_timeout=5 {device} {extra}",
        helper.display()
    ))
}

/// `twofactorctl enable key [ARGS]` as `user` with `key`, typing `typed`.
fn enable_key(env: &Env, user: &TestUser, key: &Key, args: &[&str], typed: &str) -> Finished {
    let mut all = vec!["enable", "key"];
    all.extend_from_slice(args);
    let mut cmd = env.ctl().command(user, &all);
    cmd.env("TWOFACTOR_TEST_KEY", key.path());
    twofactor_tests::proc::run(&mut cmd, typed.as_bytes(), Duration::from_secs(60))
}

/// Registers `key` for an enrolled user (password, then a fresh code).
fn register(s: &Enrolled, codes: &Codes, key: &Key, name: &str) -> Finished {
    let code = codes.fresh();
    let typed = format!("{}\n{code}\n", s.user.password());
    let out = enable_key(&s.env, &s.user, key, &["--name", name], &typed);
    assert!(
        out.success(),
        "enable key failed:\n{}\n--- daemon log ---\n{}",
        out.describe(),
        s.env.daemon.log()
    );
    out
}

fn keys_json(env: &Env, user: &TestUser) -> Vec<serde_json::Value> {
    let out = env.ctl().run(user, &["keys", "--json"], b"");
    assert!(out.success(), "{}", out.describe());
    let v: serde_json::Value = serde_json::from_str(out.stdout().trim())
        .unwrap_or_else(|e| panic!("keys --json is not JSON ({e}): {}", out.stdout()));
    v.as_array()
        .cloned()
        .unwrap_or_else(|| panic!("not a list: {v}"))
}

fn local_login(pam: &PamService, user: &str, answers: &[&str]) -> PamRun {
    let mut login = pam.login(user);
    for a in answers {
        login = login.answer(a);
    }
    login.run()
}

#[test]
fn a_registered_key_is_touched_at_a_local_login_and_its_counter_is_checked() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    let key = Key::plain();
    register(&s, &codes, &key, "blue key");
    let listed = keys_json(&s.env, &s.user);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["label"], "blue key", "{listed:?}");
    assert_eq!(key.key.credentials().len(), 1, "one credential made");

    let pam = pam_with_key(&s.env, Some(key.path()), "");
    let run = local_login(&pam, &s.user.name, &[]);
    run.assert_result("PAM_SUCCESS").assert_no_prompt();
    assert!(run.infos.iter().any(|i| i == TOUCH), "{}", run.describe());
    let log = s.env.daemon.log();
    assert!(
        log.contains(&format!("second-factor-accepted user={}", s.user.name))
            && log.contains("method=key"),
        "{log}"
    );
    assert_eq!(
        keys_json(&s.env, &s.user)[0]["last_used"]
            .as_i64()
            .map(|t| t > 0),
        Some(true)
    );

    // A counter that goes back: refused, and said why, in the audit too.
    key.key.set_behaviour(Behaviour::CounterBack);
    let run = local_login(&pam, &s.user.name, &[]);
    run.assert_result("PAM_AUTH_ERR").assert_no_prompt();
    assert!(
        run.errors.iter().any(|e| e.contains("counter went back")),
        "{}",
        run.describe()
    );
    assert!(
        s.env
            .daemon
            .log()
            .contains("reason=security-key-counter-went-back"),
        "{}",
        s.env.daemon.log()
    );
    // The key, behaving again, works (its counter is past the stored one).
    key.key.set_behaviour(Behaviour::Normal);
    local_login(&pam, &s.user.name, &[]).assert_result("PAM_SUCCESS");
    s.assert_log_clean(&[]);
}

#[test]
fn a_misbehaving_key_is_refused_or_leads_to_the_other_method() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    let key = Key::plain();
    register(&s, &codes, &key, "");
    let pam = pam_with_key(&s.env, Some(key.path()), "");
    // Answers that are signatures but not right ones: refused, counted.
    for (behaviour, reason) in [
        (Behaviour::WrongSignature, "bad-security-key-signature"),
        (Behaviour::NoPresence, "bad-security-key-signature"),
        (Behaviour::OtherCredentialId, "unknown-security-key"),
    ] {
        key.key.set_behaviour(behaviour);
        let run = local_login(&pam, &s.user.name, &[]);
        run.assert_result("PAM_AUTH_ERR").assert_no_prompt();
        assert!(
            s.env.daemon.log().contains(&format!("reason={reason}")),
            "{behaviour:?}: {}\n{}",
            run.describe(),
            s.env.daemon.log()
        );
    }
    assert_eq!(s.failures(), 3, "each bad signature counts");
    // No signature at all (garbage, or no touch in time): not an attempt;
    // the app's code is asked and works.
    for behaviour in [Behaviour::GarbledCbor, Behaviour::NeverTouched] {
        key.key.set_behaviour(behaviour);
        let code = codes.fresh();
        let started = Instant::now();
        let run = local_login(&pam, &s.user.name, &[&code]);
        run.assert_result("PAM_SUCCESS").assert_asked_code();
        // key_timeout=5: the helper gives up, and the module waits at most
        // that and its grace.
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{behaviour:?} took {:?}",
            started.elapsed()
        );
    }
}

#[test]
fn without_a_key_plugged_in_or_over_ssh_the_other_methods_are_asked() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    let key = Key::plain();
    register(&s, &codes, &key, "");
    // No device at the path: the key is not offered (no "touch" message,
    // nothing said about keys), the code is asked.
    let nowhere = PathBuf::from("/nonexistent/tft-key.sock");
    let pam = pam_with_key(&s.env, Some(&nowhere), "");
    let code = codes.fresh();
    let run = local_login(&pam, &s.user.name, &[&code]);
    run.assert_result("PAM_SUCCESS").assert_asked_code();
    assert!(
        !run.infos.iter().any(|i| i.to_lowercase().contains("key")),
        "{}",
        run.describe()
    );
    // A remote login never asks for a key, not even with one plugged in.
    let pam = pam_with_key(&s.env, Some(key.path()), "");
    let code = codes.fresh();
    let run = pam
        .login(&s.user.name)
        .rhost("192.0.2.9")
        .answer(&code)
        .run();
    run.assert_result("PAM_SUCCESS").assert_asked_code();
    assert!(!run.infos.iter().any(|i| i == TOUCH), "{}", run.describe());
    assert_eq!(key.key.assertions_made(), 0);
    // A service without the helper (key_helper=none): no key step.
    let pam = s.env.pam("key_helper=none");
    let code = codes.fresh();
    let run = local_login(&pam, &s.user.name, &[&code]);
    run.assert_result("PAM_SUCCESS").assert_asked_code();
    assert!(!run.infos.iter().any(|i| i == TOUCH), "{}", run.describe());
}

#[test]
fn a_second_key_works_and_a_removed_key_no_longer_does() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    let (blue, spare) = (Key::plain(), Key::plain());
    register(&s, &codes, &blue, "blue");
    register(&s, &codes, &spare, "spare");
    let listed = keys_json(&s.env, &s.user);
    assert_eq!(listed.len(), 2, "{listed:?}");
    for key in [&blue, &spare] {
        let pam = pam_with_key(&s.env, Some(key.path()), "");
        local_login(&pam, &s.user.name, &[]).assert_result("PAM_SUCCESS");
    }
    // Remove the blue one (password and a current code).
    let id = listed
        .iter()
        .find(|k| k["label"] == "blue")
        .and_then(|k| k["id"].as_str())
        .unwrap()
        .to_string();
    let code = codes.fresh();
    let out = s.env.ctl().run(
        &s.user,
        &["disable", "key", &id],
        format!("{}\n{code}\n", s.user.password()).as_bytes(),
    );
    assert!(out.success(), "{}\n{}", out.describe(), s.env.daemon.log());
    assert_eq!(keys_json(&s.env, &s.user).len(), 1);
    // The blue key holds no credential the login asks for: no touch is
    // asked, and the other method is, saying why.
    let pam = pam_with_key(&s.env, Some(blue.path()), "");
    let code = codes.fresh();
    let run = local_login(&pam, &s.user.name, &[&code]);
    run.assert_result("PAM_SUCCESS").assert_asked_code();
    assert!(
        run.infos.iter().any(|i| i.contains("not registered")),
        "{}",
        run.describe()
    );
    assert!(!run.infos.iter().any(|i| i == TOUCH), "{}", run.describe());
}

#[test]
fn user_verification_required_takes_only_a_key_that_verifies() {
    if !need_root!() {
        return;
    }
    let config = DaemonConfig {
        extra: "\n[keys]\nuser_verification = \"required\"\n".into(),
        ..DaemonConfig::default()
    };
    let s = Enrolled::on_clock(&config);
    let codes = s.codes();
    let plain = Key::plain();
    let code = codes.fresh();
    let out = enable_key(
        &s.env,
        &s.user,
        &plain,
        &[],
        &format!("{}\n{code}\n", s.user.password()),
    );
    assert!(
        !out.success(),
        "a key without UV was taken:\n{}",
        out.describe()
    );
    assert!(plain.key.credentials().is_empty() || keys_json(&s.env, &s.user).is_empty());
    let verifying = Key::start(SoftKeyOptions {
        builtin_uv: true,
        ..SoftKeyOptions::default()
    });
    register(&s, &codes, &verifying, "bio");
    let pam = pam_with_key(&s.env, Some(verifying.path()), "");
    local_login(&pam, &s.user.name, &[]).assert_result("PAM_SUCCESS");
}

#[test]
fn an_administrators_reset_removes_the_keys() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    let key = Key::plain();
    register(&s, &codes, &key, "");
    let before = admin::user_json(&s.env, &s.user.name);
    assert!(
        before["methods"]
            .as_array()
            .is_some_and(|m| m.iter().any(|m| m == "key")),
        "admin user shows the key method: {before}"
    );
    let keys = before["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 1, "{before}");
    assert_eq!(keys[0]["method"], "key", "{before}");
    assert!(keys[0].get("credential").is_none() && keys[0].get("public_key").is_none());
    admin::reset(&s.env, &s.user.name);
    assert!(keys_json(&s.env, &s.user).is_empty());
    // The key no longer counts: no key step, a code is asked.
    let pam = pam_with_key(&s.env, Some(key.path()), "");
    let run = pam.login(&s.user.name).answer("x").run();
    assert!(!run.infos.iter().any(|i| i == TOUCH), "{}", run.describe());
    assert_eq!(key.key.assertions_made(), 0);
}

/// An OpenSSH security-key private file (`ssh-keygen -t ecdsa-sk` makes
/// one) for a credential the software key made under OpenSSH's relying
/// party `ssh:`: unencrypted, as OpenSSH writes it (PROTOCOL.key,
/// PROTOCOL.u2f). A security key's file holds no secret: the key handle
/// is useless without the token.
fn ecdsa_sk_private_file(point_xy: &[u8], key_handle: &[u8]) -> String {
    fn string(out: &mut Vec<u8>, s: &[u8]) {
        out.extend_from_slice(&(s.len() as u32).to_be_bytes());
        out.extend_from_slice(s);
    }
    const KIND: &[u8] = b"sk-ecdsa-sha2-nistp256@openssh.com";
    let mut q = vec![4u8];
    q.extend_from_slice(point_xy);
    let mut public = Vec::new();
    string(&mut public, KIND);
    string(&mut public, b"nistp256");
    string(&mut public, &q);
    string(&mut public, b"ssh:");
    let mut private = Vec::new();
    private.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    private.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    string(&mut private, KIND);
    string(&mut private, b"nistp256");
    string(&mut private, &q);
    string(&mut private, b"ssh:");
    private.push(0x01); // user presence required
    string(&mut private, key_handle);
    string(&mut private, b""); // reserved
    string(&mut private, b"alice@test");
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }
    let mut file = b"openssh-key-v1\0".to_vec();
    string(&mut file, b"none");
    string(&mut file, b"none");
    string(&mut file, b"");
    file.extend_from_slice(&1u32.to_be_bytes());
    string(&mut file, &public);
    string(&mut file, &private);
    let b64 = base64::engine::general_purpose::STANDARD.encode(&file);
    let mut text = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(70) {
        text.push_str(std::str::from_utf8(chunk).unwrap());
        text.push('\n');
    }
    text.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    text
}

/// Makes a credential on `key` under `ssh:`, as `ssh-keygen -t ecdsa-sk`
/// has a key do; returns its public point (x‖y) and key handle.
fn ssh_credential_on(key: &Key) -> (Vec<u8>, Vec<u8>) {
    use twofactor_fido::{CredentialRequest, UserVerification};
    let request = CredentialRequest {
        rp_id: "ssh:".into(),
        user_id: vec![0; 32],
        user_name: "openssh".into(),
        client_data_hash: [5; 32],
        user_verification: UserVerification::Discouraged,
        exclude: Vec::new(),
    };
    let mut device = twofactor_fido::Device::open_test(key.path()).unwrap();
    let made = device.make_credential(&request, None).unwrap();
    drop(device);
    let credential = twofactor_fido::verify_attestation(&made, &request).unwrap();
    (credential.public_key, credential.id)
}

#[test]
fn an_ssh_keys_private_file_also_serves_local_logins() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    let ssh_key = Key::plain();
    let (point, handle) = ssh_credential_on(&ssh_key);
    let dir = twofactor_tests::var_temp_dir("tft-sk-file-");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let file = dir.path().join("id_ecdsa_sk");
    twofactor_tests::write_file(&file, ecdsa_sk_private_file(&point, &handle), 0o644);
    let code = codes.fresh();
    let out = s.env.ctl().run(
        &s.user,
        &["enable", "ssh-key", &file.display().to_string()],
        format!("{}\n{code}\n", s.user.password()).as_bytes(),
    );
    assert!(
        out.success() && out.stderr().contains("local logins"),
        "{}\n{}",
        out.describe(),
        s.env.daemon.log()
    );
    // One registration: an SSH key, and a credential for local logins.
    let ssh_keys = s.env.ctl().run(&s.user, &["ssh-keys", "--json"], b"");
    assert!(ssh_keys
        .stdout()
        .contains("sk-ecdsa-sha2-nistp256@openssh.com"));
    assert_eq!(keys_json(&s.env, &s.user).len(), 1);

    // The console: touch the key, no code.
    let pam = pam_with_key(&s.env, Some(ssh_key.path()), "");
    let run = local_login(&pam, &s.user.name, &[]);
    run.assert_result("PAM_SUCCESS").assert_no_prompt();
    assert!(s.env.daemon.log().contains("method=key"));

    // With a key registered for this machine as well, the ssh: credential
    // is asked for next, when the key plugged in holds none of this
    // machine's: still one touch.
    let other = Key::plain();
    register(&s, &codes, &other, "other");
    let before = ssh_key.key.assertions_made();
    local_login(&pam, &s.user.name, &[]).assert_result("PAM_SUCCESS");
    assert!(ssh_key.key.assertions_made() > before);
}

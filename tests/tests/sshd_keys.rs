//! SSH logins that prove a key first (`AuthenticationMethods
//! publickey,keyboard-interactive`): real key pairs from ssh-keygen, the
//! user's ~/.ssh/authorized_keys under StrictModes, the real client offering
//! one key, then the PAM stack (pam_unix's password, the module's code) in
//! keyboard-interactive with the proved key in `SSH_AUTH_INFO_0`. Root only
//! (sshd, real users).

use twofactor_tests::proc::Finished;
use twofactor_tests::sshd::{Scripted, Sshd, SshdOptions};
use twofactor_tests::sshkeys::{AuthInfoProbe, KeyKind, KeyPair};
use twofactor_tests::{need_root, totp, Enrolled, CODE_PROMPT};

fn logged_in(out: &Finished) -> bool {
    out.success() && out.stdout().lines().any(|l| l == "LOGGED-IN")
}

fn module_args(s: &Enrolled) -> String {
    format!("bus={}", s.env.bus.plain_address())
}

/// Answers the password prompt, then the module's code prompt with `code`;
/// the end of the login.
fn password_then_code(s: &Enrolled, sshd: &Sshd, ssh: Scripted, code: &str) -> Finished {
    let first = ssh.wait_prompt(1);
    assert!(
        first.contains("assword"),
        "first prompt {first:?}\nsshd log:\n{}",
        sshd.log()
    );
    ssh.answer(1, s.user.password());
    let second = ssh.wait_prompt(2);
    assert!(
        second.contains(CODE_PROMPT.trim_end()),
        "the module did not ask for the code: {second:?}\nsshd log:\n{}\ndaemon log:\n{}",
        sshd.log(),
        s.env.daemon.log()
    );
    ssh.answer(2, code);
    ssh.finish()
}

/// A user enrolled with the app, an ed25519 key in their authorized_keys,
/// and a publickey-first sshd with the module.
fn enrolled_with_key() -> (Enrolled, KeyPair, Sshd) {
    let s = Enrolled::with_defaults();
    let key = KeyPair::new(KeyKind::Ed25519);
    s.user.authorize_key(&key);
    let sshd = Sshd::start_with(&module_args(&s), &SshdOptions::publickey_first());
    (s, key, sshd)
}

/// Key, then password, then code: in. sshd logs the key's fingerprint as
/// the partial success, the module is asked in keyboard-interactive.
#[test]
fn authorized_key_then_password_and_code_in() {
    if !need_root!() {
        return;
    }
    let (s, key, sshd) = enrolled_with_key();

    let out = password_then_code(
        &s,
        &sshd,
        sshd.ssh_scripted_with_key(&s.user, Some(&key)),
        &s.code_now(),
    );
    assert!(
        logged_in(&out),
        "key, password and code did not log in: {}\nsshd log:\n{}\ndaemon log:\n{}",
        out.describe(),
        sshd.log(),
        s.env.daemon.log()
    );
    let log = sshd.log();
    assert!(
        log.lines().any(|l| l.contains("Partial publickey for")
            && l.contains(&s.user.name)
            && l.contains(&key.fingerprint)),
        "no partial publickey success with {} in the sshd log:\n{log}",
        key.fingerprint
    );
    assert!(
        log.contains(&format!(
            "Accepted keyboard-interactive/pam for {}",
            s.user.name
        )),
        "{log}"
    );
    assert!(
        s.env.daemon.log().contains(&format!(
            "login-success user={} service={}",
            s.user.name, sshd.service
        )),
        "the daemon did not see the login:\n{}",
        s.env.daemon.log()
    );

    // The code is still checked after the key: a wrong one is refused.
    let out = password_then_code(
        &s,
        &sshd,
        sshd.ssh_scripted_with_key(&s.user, Some(&key)),
        &totp::wrong_code(&s.code_now()),
    );
    assert!(
        !logged_in(&out),
        "wrong code after the key: {}",
        out.describe()
    );
}

/// A key that is not in authorized_keys, or no key at all, is refused by
/// the publickey stage: the PAM stack is never reached (nothing is asked).
/// The authorized key, as a control, reaches the password prompt.
#[test]
fn unauthorized_key_or_no_key_refused_before_any_prompt() {
    if !need_root!() {
        return;
    }
    let (s, authorized, sshd) = enrolled_with_key();
    let other = KeyPair::new(KeyKind::Ed25519);

    let out = sshd.ssh_with_key(&s.user, Some(&other), s.user.password(), &s.code_now());
    assert!(
        !logged_in(&out),
        "an unlisted key got in: {}",
        out.describe()
    );
    assert!(
        out.stderr().contains("Permission denied (publickey)"),
        "{}",
        out.describe()
    );
    let out = sshd.ssh(&s.user, s.user.password(), &s.code_now());
    assert!(!logged_in(&out), "no key got in: {}", out.describe());
    assert_eq!(
        sshd.asked_prompts(),
        "",
        "a prompt came without the key; sshd log:\n{}",
        sshd.log()
    );
    let log = sshd.log();
    assert!(
        !log.contains("Partial publickey"),
        "a key was accepted:\n{log}"
    );

    // Control: the listed key gets to the PAM stack.
    let out = password_then_code(
        &s,
        &sshd,
        sshd.ssh_scripted_with_key(&s.user, Some(&authorized)),
        &s.code_now(),
    );
    assert!(logged_in(&out), "control: {}", out.describe());
}

/// A user enrolled with the app and an sshd set up as `options` say, with
/// an [`AuthInfoProbe`] before the module in its PAM stack.
fn probed(options: SshdOptions) -> (Enrolled, AuthInfoProbe, Sshd) {
    let s = Enrolled::with_defaults();
    let probe = AuthInfoProbe::new();
    let options = SshdOptions {
        extra_pam_auth: probe.pam_line(),
        ..options
    };
    let sshd = Sshd::start_with(&module_args(&s), &options);
    (s, probe, sshd)
}

/// During keyboard-interactive the PAM environment holds
/// `SSH_AUTH_INFO_0=publickey TYPE BASE64` of the key the client proved,
/// ed25519 and RSA alike (a pam_exec probe before the module records it).
#[test]
fn ssh_auth_info_0_names_the_proved_key() {
    if !need_root!() {
        return;
    }
    let (s, probe, sshd) = probed(SshdOptions::publickey_first());
    let keys = [KeyPair::new(KeyKind::Ed25519), KeyPair::new(KeyKind::Rsa)];
    for key in &keys {
        s.user.authorize_key(key);
    }
    assert_eq!(keys[0].key_type(), "ssh-ed25519");
    assert_eq!(keys[1].key_type(), "ssh-rsa");

    // One code step each: a code is good for one login only.
    totp::ensure_step_margin(3);
    for (step, key) in (0..).zip(&keys) {
        let code = totp::code_at_step_offset(&s.secret, step);
        let out = password_then_code(
            &s,
            &sshd,
            sshd.ssh_scripted_with_key(&s.user, Some(key)),
            &code,
        );
        assert!(
            logged_in(&out),
            "{:?}: {}\nsshd log:\n{}",
            key.kind,
            out.describe(),
            sshd.log()
        );
        let recorded = probe
            .recorded()
            .unwrap_or_else(|| panic!("the pam_exec probe never ran; sshd log:\n{}", sshd.log()));
        assert_eq!(
            recorded.trim_end(),
            key.auth_info(),
            "SSH_AUTH_INFO_0 during keyboard-interactive ({:?} key)",
            key.kind
        );
    }
}

/// The default test sshd (keyboard-interactive only) is unchanged: no key
/// is asked for, and SSH_AUTH_INFO_0 names no key.
#[test]
fn keyboard_interactive_only_has_no_key_in_auth_info() {
    if !need_root!() {
        return;
    }
    let (s, probe, sshd) = probed(SshdOptions::default());
    let out = password_then_code(&s, &sshd, sshd.ssh_scripted(&s.user), &s.code_now());
    assert!(
        logged_in(&out),
        "{}\nsshd log:\n{}",
        out.describe(),
        sshd.log()
    );
    let recorded = probe.recorded().expect("the pam_exec probe ran");
    assert!(
        !recorded.contains("publickey"),
        "SSH_AUTH_INFO_0 names a key without publickey: {recorded:?}"
    );
}

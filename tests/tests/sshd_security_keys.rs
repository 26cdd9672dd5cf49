//! Security keys over SSH (issue 20): a user registers an OpenSSH
//! security-key public key with `twofactorctl enable ssh-key FILE`, and an
//! SSH login that proves that key first (`AuthenticationMethods
//! publickey,keyboard-interactive`) asks no code, on an sshd that requires
//! a touch for every key. Real keys from `ssh-keygen -t ed25519-sk`, held
//! by OpenSSH's software security key (sk-dummy, built from the installed
//! OpenSSH's source), the real client and a real sshd; the module under
//! sshd's libpam; twofactord reads sshd's configuration with `sshd -T`.
//! Root only.
//!
//! The three cases of the issue:
//! - sshd with `PubkeyAuthOptions touch-required`: the key counts, no code;
//! - a key made with `-O no-touch-required`, listed with
//!   `no-touch-required` in `authorized_keys`, on an sshd without
//!   `touch-required`: sshd lets it in, and twofactord does not count it (a
//!   code is asked);
//! - the same key on an sshd with `touch-required`: sshd itself refuses.

use std::path::{Path, PathBuf};

use twofactor_tests::sshd::{logged_in, Sshd, SshdOptions};
use twofactor_tests::sshkeys::{KeyKind, KeyPair};
use twofactor_tests::{need_root, totp, DaemonConfig, Enrolled, TestUser};

const TOUCH_REQUIRED: &str = "PubkeyAuthOptions touch-required\n";

/// Restarts the daemon with `sshd`'s PAM service among the services that
/// are sshd, and `conf` as the sshd_config it reads with `sshd -T`.
fn serving(s: &mut Enrolled, sshd: &Sshd, conf: &Path) {
    let config = DaemonConfig {
        extra: format!(
            "\n[devices]\nssh_services = [\"sshd\", {:?}]\n\
             \n[keys]\nssh = true\nsshd = \"/usr/sbin/sshd\"\nsshd_config = {:?}\n",
            sshd.service,
            conf.display().to_string()
        ),
        ..DaemonConfig::default()
    };
    s.env
        .daemon
        .write_config(&config.to_toml(&s.env.daemon.state_dir()));
    s.env.restart_daemon();
}

/// `twofactorctl enable ssh-key` as `user`, the key's .pub file in their
/// home; the answers on stdin (password, and a code when they have a
/// method).
fn register(s: &Enrolled, user: &TestUser, key: &KeyPair, stdin: &str) -> String {
    let file = user
        .home()
        .join(format!("key-{}.pub", twofactor_tests::unique()));
    twofactor_tests::write_file(&file, format!("{}\n", key.public), 0o644);
    user.chown(&file);
    let out = s.env.ctl().run(
        user,
        &["enable", "ssh-key", &file.display().to_string()],
        stdin.as_bytes(),
    );
    assert!(out.success(), "enable ssh-key: {}", out.describe());
    assert!(
        out.stdout()
            .starts_with("Security key registered for SSH logins (ID "),
        "{}",
        out.describe()
    );
    out.stdout()
}

fn sshd_at(s: &mut Enrolled, conf: &Path, extra: &str) -> Sshd {
    let sshd = Sshd::start_with(
        &format!("bus={}", s.env.bus.plain_address()),
        &SshdOptions {
            publickey_first: true,
            extra_config: extra.to_string(),
            config_path: Some(conf.to_path_buf()),
            ..SshdOptions::default()
        },
    );
    serving(s, &sshd, conf);
    sshd
}

/// An enrolled user (app), fresh codes of their app, and where the test's
/// sshd_config goes (under /var/tmp: the daemon's /tmp is its own); the
/// daemon is told about the sshd once it runs ([`sshd_at`]).
fn setup() -> (tempfile::TempDir, PathBuf, Enrolled, totp::Codes) {
    let dir = twofactor_tests::var_temp_dir("tft-sk-conf-");
    let conf = dir.path().join("sshd_config");
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let codes = s.codes();
    (dir, conf, s, codes)
}

#[test]
fn a_registered_security_key_replaces_the_code_where_sshd_requires_a_touch() {
    if !need_root!() {
        return;
    }
    let (_dir, conf, mut s, codes) = setup();
    let key = KeyPair::new(KeyKind::Ed25519Sk);
    s.user.authorize_key(&key);
    // A second method: the password and a current code.
    let said = register(
        &s,
        &s.user,
        &key,
        &format!("{}\n{}\n", s.user.password(), codes.fresh()),
    );
    assert!(
        !said.contains('-'),
        "no backup codes for a second method: {said}"
    );
    let listed = s.env.ctl().run(&s.user, &["ssh-keys", "--json"], b"");
    assert!(listed.success(), "{}", listed.describe());
    let fingerprint = key.fingerprint.clone();
    assert!(
        listed
            .stdout()
            .contains(&format!("sk-ssh-ed25519@openssh.com {fingerprint}")),
        "{}",
        listed.describe()
    );
    assert!(s
        .env
        .ctl()
        .methods(&s.user)
        .contains(&"ssh-key".to_string()));

    let sshd = sshd_at(&mut s, &conf, TOUCH_REQUIRED);
    // The code is never asked: a wrong one is given to show it is not read.
    let out = sshd.ssh_with_key(&s.user, Some(&key), s.user.password(), "000000");
    assert!(
        logged_in(&out),
        "{}\nsshd log:\n{}\ndaemon log:\n{}",
        out.describe(),
        sshd.log(),
        s.env.daemon.log()
    );
    assert!(
        !sshd.asked_prompts().contains("erification"),
        "a code was asked: {}",
        sshd.asked_prompts()
    );
    let log = s.env.daemon.log();
    assert!(
        log.contains(&format!(
            "second-factor-accepted user={} service={}",
            s.user.name, sshd.service
        )) && log.contains("method=ssh-key"),
        "{log}"
    );
    assert!(log.contains("login-success"), "{log}");
    // Its use is recorded.
    let listed = s.env.ctl().run(&s.user, &["ssh-keys", "--json"], b"");
    assert!(
        !listed.stdout().contains("\"last_used\":0"),
        "{}",
        listed.describe()
    );

    // Another key, not registered: the code is asked as usual.
    let other = KeyPair::new(KeyKind::Ed25519);
    s.user.authorize_key(&other);
    let code = codes.fresh();
    let out = sshd.ssh_with_key(&s.user, Some(&other), s.user.password(), &code);
    assert!(logged_in(&out), "{}", out.describe());
    assert!(
        sshd.asked_prompts().contains("erification"),
        "{}",
        sshd.asked_prompts()
    );

    // Removed: the security key alone no longer lets in.
    let removed = s
        .env
        .ctl()
        .disable(&s.user, "ssh-key", s.user.password(), &codes.fresh());
    assert!(removed.success(), "{}", removed.describe());
    let out = sshd.ssh_with_key(&s.user, Some(&key), s.user.password(), "000000");
    assert!(!logged_in(&out), "{}", out.describe());
    s.assert_log_clean(&[]);
}

#[test]
fn a_key_without_touch_is_not_counted_and_sshd_with_touch_required_refuses_it() {
    if !need_root!() {
        return;
    }
    let (_dir, conf, mut s, codes) = setup();
    let key = KeyPair::new(KeyKind::Ed25519SkNoTouch);
    s.user.authorize_key_with(&key, "no-touch-required");
    register(
        &s,
        &s.user,
        &key,
        &format!("{}\n{}\n", s.user.password(), codes.fresh()),
    );
    // sshd without touch-required: it lets the key in untouched, so the
    // key does not count; the code is asked, and a right one lets in.
    let sshd = sshd_at(&mut s, &conf, "");
    let wrong = sshd.ssh_with_key(&s.user, Some(&key), s.user.password(), "000000");
    assert!(!logged_in(&wrong), "{}", wrong.describe());
    assert!(
        sshd.asked_prompts().contains("erification"),
        "{}",
        sshd.asked_prompts()
    );
    let log = s.env.daemon.log();
    assert!(log.contains("ssh-key-not-counted"), "{log}");
    assert!(log.contains("touch-required"), "the log says why: {log}");
    let code = codes.fresh();
    let right = sshd.ssh_with_key(&s.user, Some(&key), s.user.password(), &code);
    assert!(logged_in(&right), "{}", right.describe());
    drop(sshd);
    // sshd with touch-required: it refuses the untouched signature itself.
    let sshd = sshd_at(&mut s, &conf, TOUCH_REQUIRED);
    let out = sshd.ssh_with_key(&s.user, Some(&key), s.user.password(), "000000");
    assert!(!logged_in(&out), "{}", out.describe());
    assert!(
        !sshd.asked_prompts().contains("assword"),
        "sshd refused the key before the PAM stack: {}",
        sshd.asked_prompts()
    );
}

/// A user whose only method is a security key, at a login that is not
/// SSH with the key: asked for a backup code, and a code is refused.
#[test]
fn a_security_key_alone_brings_backup_codes_for_the_other_logins() {
    if !need_root!() {
        return;
    }
    let s = Enrolled::on_clock(&DaemonConfig::default());
    let user = TestUser::new();
    let key = KeyPair::new(KeyKind::Ed25519Sk);
    // A first method: the password only, and a first set of backup codes.
    let said = register(&s, &user, &key, &format!("{}\n", user.password()));
    let codes: Vec<&str> = said
        .lines()
        .map(str::trim)
        .filter(|l| l.len() == 14 && l.matches('-').count() == 2)
        .collect();
    assert_eq!(codes.len(), 10, "{said}");
    let console = s.env.pam("");
    let run = console
        .login(&user.name)
        .answer(totp::wrong_code("123456"))
        .run();
    run.assert_result("PAM_AUTH_ERR");
    assert_eq!(run.prompts.len(), 1, "{}", run.describe());
    assert_eq!(run.prompts[0].text, "Backup code: ", "{}", run.describe());
    assert!(
        run.errors.iter().any(|e| e.contains("security key")),
        "{}",
        run.describe()
    );
    let run = console.login(&user.name).answer(codes[0]).run();
    run.assert_result("PAM_SUCCESS");
}

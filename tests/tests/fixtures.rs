//! The fixtures themselves and the shipped bus policy, on what exists
//! without the project's programs: dbus-daemon, users, oathtool, syslog.

use std::time::Duration;

use twofactor_tests::syslog::SyslogSink;
use twofactor_tests::{need_root, totp, users, PrivateBus, TestUser};

#[test]
fn oathtool_gives_rfc6238_codes() {
    // RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", 6 digits.
    let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    assert_eq!(totp::oathtool(secret, Some(59)), "287082");
    assert_eq!(totp::oathtool(secret, Some(1111111109)), "081804");
    assert_eq!(totp::oathtool(secret, Some(1234567890)), "005924");
    assert_eq!(totp::oathtool(secret, Some(2000000000)), "279037");
    assert_eq!(
        totp::base32_decode(secret).unwrap(),
        b"12345678901234567890"
    );
}

#[test]
fn private_bus_answers() {
    let bus = PrivateBus::start();
    assert!(bus.address().starts_with("unix:path="));
    assert!(bus.has_owner("org.freedesktop.DBus"));
    assert!(!bus.has_owner("org.twofactor.Daemon1"));
}

/// The shipped policy: only root may own org.twofactor.Daemon1, so no user
/// can put up a fake daemon on the system bus.
#[test]
fn shipped_policy_lets_only_root_own_the_name() {
    if !need_root!() {
        return;
    }
    let bus = PrivateBus::start();
    let user = TestUser::new();
    let request = |as_user| {
        bus.send_as(
            as_user,
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.RequestName",
            &["string:org.twofactor.Daemon1", "uint32:0"],
        )
    };
    let out = request(Some(user.ids()));
    assert!(
        !out.success(),
        "a user owned the daemon's name: {}",
        out.describe()
    );
    assert!(
        out.stderr()
            .contains("org.freedesktop.DBus.Error.AccessDenied"),
        "{}",
        out.describe()
    );
    let out = request(None);
    assert!(out.success(), "root may own the name: {}", out.describe());
}

#[test]
fn test_user_exists_until_dropped() {
    if !need_root!() {
        return;
    }
    let user = TestUser::new();
    let name = user.name.clone();
    let (uid, _) = users::lookup(&name).expect("user exists");
    assert_eq!(uid, user.uid);
    assert_ne!(uid, 0);
    assert!(user.home().is_dir());
    drop(user);
    assert!(users::lookup(&name).is_none(), "{name} left behind");
}

#[test]
fn syslog_sink_catches_records() {
    if !need_root!() {
        return;
    }
    let sink = SyslogSink::new();
    let mut cmd = sink.wrap(std::path::Path::new("logger"));
    cmd.args(["-p", "authpriv.notice", "-t", "tft-probe", "hello sink"]);
    let out = twofactor_tests::proc::run(&mut cmd, b"", Duration::from_secs(20));
    assert!(out.success(), "{}", out.describe());
    let text = sink.text();
    assert!(
        text.contains("tft-probe") && text.contains("hello sink"),
        "{text:?}"
    );
    assert!(!std::path::Path::new("/dev/log").exists() || text.contains("hello"));
}

/// Programs run "as the user" really run with the user's ids only: no root
/// group left over from the test process.
#[test]
fn commands_as_user_drop_root_groups() {
    if !need_root!() {
        return;
    }
    use std::os::unix::process::CommandExt;
    let user = TestUser::new();
    let mut cmd = std::process::Command::new("id");
    cmd.uid(user.uid).gid(user.gid);
    let out = twofactor_tests::proc::run(&mut cmd, b"", Duration::from_secs(10));
    let text = out.stdout();
    assert!(out.success(), "{}", out.describe());
    assert!(text.contains(&format!("uid={}(", user.uid)), "{text}");
    assert!(!text.contains("(root)"), "root ids left: {text}");
}

//! twofactorctl typed at a terminal that is not the process's controlling
//! terminal, as under `su - user -c 'twofactorctl ...'` (su runs the command
//! in a new session): `/dev/tty` does not open (ENXIO), so the password is
//! read from stdin, with echo off.

use std::os::unix::process::CommandExt;
use std::process::Command;

use twofactor_tests::{ctl, need_root, proc, DaemonConfig, Env, TestUser, PATH};

/// expect(1) gives the command a pseudo-terminal on stdin; `setsid -w` then
/// runs twofactorctl in a new session, with that terminal on stdin but no
/// controlling terminal. Arguments and the password travel in the
/// environment, never through Tcl quoting.
const EXPECT_SCRIPT: &str = r#"
set timeout 30
spawn -noecho setsid -w $env(CTL) --bus $env(BUS) disable app
expect {
    "Password for " {}
    timeout { puts "\nEXPECT: no password prompt"; exit 97 }
    eof { puts "\nEXPECT: ended before the password prompt"; catch wait r; exit [lindex $r 3] }
}
send -- "$env(PW)\r"
expect {
    "Current code from your authenticator app" {}
    timeout { puts "\nEXPECT: no code prompt"; exit 96 }
    eof { puts "\nEXPECT: ended before the code prompt"; catch wait r; exit [lindex $r 3] }
}
send -- "$env(CODE)\r"
expect {
    eof {}
    timeout { puts "\nEXPECT: no end"; exit 98 }
}
catch wait result
exit [lindex $result 3]
"#;

#[test]
fn password_from_a_terminal_on_stdin_without_a_controlling_terminal() {
    if !need_root!() {
        return;
    }
    let env = Env::start(&DaemonConfig::default());
    let user = TestUser::new();
    let secret = env.ctl().enroll_app(&user).compact_secret();
    assert_eq!(env.ctl().methods(&user), vec!["app".to_string()]);
    // The current code confirms the change, read the same way (echo off).
    let code = twofactor_tests::totp::code_at_step_offset(&secret, 0);

    let mut cmd = Command::new("expect");
    cmd.arg("-c")
        .arg(EXPECT_SCRIPT)
        .env_clear()
        .env("PATH", PATH)
        .env("HOME", user.home())
        .env("USER", &user.name)
        .env("LOGNAME", &user.name)
        .env("LANG", "C.UTF-8")
        .env("CTL", twofactor_tests::twofactorctl_bin())
        .env("BUS", env.bus.address())
        .env("PW", user.password())
        .env("CODE", &code)
        .uid(user.uid)
        .gid(user.gid);
    let out = proc::run(&mut cmd, b"", ctl::TIMEOUT);
    let shown = out.stdout();
    assert!(out.success(), "{}", out.describe());
    assert!(
        !shown.contains("No such device or address"),
        "{}",
        out.describe()
    );
    // Echo was off: the terminal did not show the password or the code.
    assert!(!shown.contains(user.password()), "{}", out.describe());
    assert!(!shown.contains(&code), "{}", out.describe());
    assert!(env.ctl().methods(&user).is_empty(), "{}", out.describe());
}

//! `make demo` cleans up on every way out (issue 7): when its terminal is
//! closed, or when it alone gets SIGHUP while it waits at a password prompt,
//! its private dbus-daemon, twofactord and temporary directory go away.
//! The real script, on a real pseudo-terminal (`script`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use twofactor_tests::proc::Interactive;
use twofactor_tests::wait_until;

/// Processes whose command line mentions `needle`.
fn processes_with(needle: &str) -> Vec<(u32, String)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(raw) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&raw).replace('\0', " ");
        if cmdline.contains(needle) && pid != std::process::id() {
            found.push((pid, cmdline));
        }
    }
    found
}

/// The parent of process `pid` (from `/proc/PID/stat`).
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(") ")?.1;
    after.split(' ').nth(1)?.parse().ok()
}

/// Whether `ancestor` is `pid`'s parent, or its parent's, … (a few levels).
fn descends_from(pid: u32, ancestor: u32) -> bool {
    let mut at = pid;
    for _ in 0..8 {
        match parent_of(at) {
            Some(p) if p == ancestor => return true,
            Some(p) if p > 1 => at = p,
            _ => return false,
        }
    }
    false
}

/// Starts the interactive demo on a pseudo-terminal and waits until it
/// asks for the password of its enrolment; returns it and its temporary
/// directory.
fn demo_at_the_password_prompt() -> (Interactive, PathBuf) {
    let mut demo = Interactive::spawn(
        Command::new("script")
            .args(["-qfec", "scripts/demo", "/dev/null"])
            .current_dir(twofactor_tests::repo_root())
            .env_clear()
            .env("PATH", twofactor_tests::PATH)
            .env(
                "HOME",
                std::env::var("HOME").unwrap_or_else(|_| "/root".into()),
            )
            .env("TERM", "dumb")
            .env("CARGO_TARGET_DIR", twofactor_tests::target_root())
            .env("TWOFACTOR_DEMO_PREBUILT", "1"),
    );
    let line = demo.expect_line(Duration::from_secs(300), |l| l.contains("(state in /tmp/"));
    let tmp = line
        .find("/tmp/twofactor-demo.")
        .and_then(|at| line.get(at..))
        .and_then(|rest| rest.split(')').next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no state directory in {line:?}"));
    // This demo's own twofactorctl (its bus is under its directory): the
    // other test's demo runs at the same time.
    let own_bus = tmp.join("bus").display().to_string();
    assert!(
        wait_until(Duration::from_secs(120), || {
            processes_with("twofactorctl")
                .iter()
                .any(|(_, c)| c.contains("enable app") && c.contains(&own_bus))
        }),
        "the demo never reached its enrolment:\n{}",
        demo.seen()
    );
    (demo, tmp)
}

fn assert_all_gone(tmp: &Path, demo: &mut Interactive) {
    let needle = tmp.display().to_string();
    let gone = wait_until(Duration::from_secs(30), || {
        processes_with(&needle).is_empty() && !tmp.exists()
    });
    let left = processes_with(&needle);
    for (pid, _) in &left {
        // Clean up after a failure, by pid, only what this demo started.
        twofactor_tests::proc::signal(*pid, libc::SIGKILL);
    }
    let _ = std::fs::remove_dir_all(tmp);
    demo.kill();
    assert!(
        gone,
        "left behind by the demo: {left:?}, {} exists: {}\n{}",
        needle,
        tmp.exists(),
        demo.seen()
    );
}

#[test]
fn closing_the_demos_terminal_leaves_nothing_running() {
    if !twofactor_tests::need_root!() {
        return;
    }
    let (mut demo, tmp) = demo_at_the_password_prompt();
    // The terminal goes away: `script` (the terminal's owner) dies.
    twofactor_tests::proc::signal(demo.pid(), libc::SIGKILL);
    assert_all_gone(&tmp, &mut demo);
}

#[test]
fn a_sighup_to_the_demo_alone_leaves_nothing_running() {
    if !twofactor_tests::need_root!() {
        return;
    }
    let (mut demo, tmp) = demo_at_the_password_prompt();
    // This demo's own shell (a child of its `script`): the other test's
    // demo runs at the same time and must not get the signal.
    let shells: Vec<u32> = processes_with("scripts/demo")
        .into_iter()
        .filter(|(pid, c)| {
            c.contains("bash")
                && *pid != demo.pid()
                && !c.contains("script -q")
                && descends_from(*pid, demo.pid())
        })
        .map(|(pid, _)| pid)
        .collect();
    assert!(!shells.is_empty(), "the demo's shell is not running");
    for pid in shells {
        twofactor_tests::proc::signal(pid, libc::SIGHUP);
    }
    assert_all_gone(&tmp, &mut demo);
}

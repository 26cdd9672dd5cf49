//! The module's bus connection (pam-module/src/dbus/bus.rs) reading an
//! arbitrary byte stream as what the bus sends: the authentication lines,
//! then messages, read whole or skipped (an oversized signal), matched to
//! the calls by serial. One login is run over it: Begin, then Answer,
//! Commit and Cancel while the stream still answers.

#![no_main]

use std::io::Write;
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pam_twofactor::dbus::bus::BusDaemon;
use pam_twofactor::dbus::{Daemon, LoginRequest};

/// What the socket pair holds without a reader (the module reads only
/// after it wrote its own messages, and nobody reads those).
const MAX_STREAM: usize = 64 * 1024;

fuzz_target!(|data: &[u8]| {
    let data = data.get(..MAX_STREAM).unwrap_or(data);
    let Ok((ours, mut bus)) = UnixStream::pair() else {
        return;
    };
    if bus.write_all(data).is_err() || bus.shutdown(Shutdown::Write).is_err() {
        return;
    }
    // The stream ends where the input does: no call waits for the timeout.
    let Ok(mut daemon) = BusDaemon::over(ours, Duration::from_secs(10)) else {
        return;
    };
    let request = LoginRequest {
        user: "alice".into(),
        service: "sshd".into(),
        rhost: "192.0.2.7".into(),
        tty: "ssh".into(),
        ssh_auth_info: String::new(),
        security_keys: false,
    };
    if let Ok((session, _)) = daemon.begin(&request) {
        if daemon.answer(&session, b"123456").is_ok() {
            let _ = daemon.commit(&session);
        }
        let _ = daemon.cancel(&session);
    }
    drop(bus);
});

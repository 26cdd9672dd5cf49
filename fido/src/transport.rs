//! The test transport (feature `test-transport`): libfido2's HID reports
//! over a Unix stream socket, to the software authenticator of the tests.
//!
//! libfido2 1.12 calls these through `fido_dev_set_io_functions`, which
//! also marks the device's I/O as its caller's own (`io_own`):
//! `fido_dev_open` then takes 64-byte reports both ways instead of asking
//! the hidraw report descriptor, so nothing else needs setting. It writes
//! 65 bytes per report (report id 0, then 64) and reads 64.

use std::ffi::{c_char, c_int, c_uchar, c_void, CStr};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::ffi;

/// Text only the test transport puts in a binary (in its error messages):
/// scripts/check-module fails a shipped helper that contains it.
pub const TEST_TRANSPORT_MARKER: &str = "twofactor-fido test transport";

// The marker spelled out in the calls' names (concat! needs literals; a
// test checks they agree).
pub(crate) const OPEN_CALL: &str = "fido_dev_open (twofactor-fido test transport)";
pub(crate) const SET_IO_CALL: &str = "fido_dev_set_io_functions (twofactor-fido test transport)";

pub(crate) fn io_functions() -> ffi::fido_dev_io_t {
    ffi::fido_dev_io_t {
        open: Some(io_open),
        close: Some(io_close),
        read: Some(io_read),
        write: Some(io_write),
    }
}

/// Connects to the socket at `path`; the handle is a boxed stream.
unsafe extern "C" fn io_open(path: *const c_char) -> *mut c_void {
    if path.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: libfido2 passes the NUL-terminated path given to
    // fido_dev_open, alive during the call.
    let path = unsafe { CStr::from_ptr(path) };
    match UnixStream::connect(Path::new(std::ffi::OsStr::from_bytes(path.to_bytes()))) {
        Ok(s) => Box::into_raw(Box::new(s)).cast(),
        Err(_) => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn io_close(handle: *mut c_void) {
    if !handle.is_null() {
        // SAFETY: handle came from io_open's Box::into_raw and libfido2
        // closes it once (fido_dev_close, or open's failure path).
        drop(unsafe { Box::from_raw(handle.cast::<UnixStream>()) });
    }
}

/// Writes the whole report; returns `len`, or -1.
unsafe extern "C" fn io_write(handle: *mut c_void, buf: *const c_uchar, len: usize) -> c_int {
    let Ok(n) = c_int::try_from(len) else {
        return -1;
    };
    if handle.is_null() || buf.is_null() {
        return -1;
    }
    // SAFETY: handle is io_open's live stream (libfido2 uses it between
    // open and close only, from one thread).
    let stream = unsafe { &*handle.cast::<UnixStream>() };
    // SAFETY: libfido2 passes len readable bytes.
    let mut data = unsafe { std::slice::from_raw_parts(buf, len) };
    while !data.is_empty() {
        // SAFETY: the fd is the stream's, open; data is readable for its
        // length. MSG_NOSIGNAL: a peer gone is an error, not SIGPIPE.
        let r = unsafe {
            libc::send(
                stream.as_raw_fd(),
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL,
            )
        };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return -1;
        }
        let Some(rest) = data.get(r.unsigned_abs()..) else {
            return -1;
        };
        data = rest;
    }
    n
}

/// Reads exactly `len` bytes, waiting at most `ms` milliseconds in all
/// (`ms < 0`: no limit); returns `len`, or -1 on timeout, error or end of
/// stream.
unsafe extern "C" fn io_read(
    handle: *mut c_void,
    buf: *mut c_uchar,
    len: usize,
    ms: c_int,
) -> c_int {
    let Ok(n) = c_int::try_from(len) else {
        return -1;
    };
    if handle.is_null() || buf.is_null() {
        return -1;
    }
    // SAFETY: as in io_write.
    let mut stream = unsafe { &*handle.cast::<UnixStream>() };
    // SAFETY: libfido2 passes len writable bytes.
    let out = unsafe { std::slice::from_raw_parts_mut(buf, len) };
    let deadline = u64::try_from(ms)
        .ok()
        .map(|ms| Instant::now() + Duration::from_millis(ms));
    let mut got = 0;
    while got < len {
        let wait: c_int = match deadline {
            None => -1,
            Some(d) => {
                let left = d.saturating_duration_since(Instant::now());
                // Rounded up: never 0 while time is left.
                c_int::try_from(left.as_micros().div_ceil(1000)).unwrap_or(c_int::MAX)
            }
        };
        let mut pfd = libc::pollfd {
            fd: stream.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, wait) };
        if r < 0 {
            if std::io::Error::last_os_error().kind() == ErrorKind::Interrupted {
                continue;
            }
            return -1;
        }
        if r == 0 {
            return -1; // timed out
        }
        let Some(rest) = out.get_mut(got..) else {
            return -1;
        };
        match stream.read(rest) {
            Ok(0) => return -1,
            Ok(k) => got += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return -1,
        }
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calls_carry_the_marker() {
        assert!(OPEN_CALL.contains(TEST_TRANSPORT_MARKER));
        assert!(SET_IO_CALL.contains(TEST_TRANSPORT_MARKER));
    }

    #[test]
    fn reads_time_out_and_reports_travel_whole() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let h = Box::into_raw(Box::new(a)).cast::<c_void>();
        let mut buf = [0u8; 64];
        let start = Instant::now();
        // SAFETY: h is a boxed stream as io_open makes; buf is 64 bytes.
        assert_eq!(unsafe { io_read(h, buf.as_mut_ptr(), 64, 200) }, -1);
        assert!(start.elapsed() >= Duration::from_millis(190));
        // Half a report now, the rest later: one read gets it all.
        std::io::Write::write_all(&mut b, &[1; 32]).unwrap();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            std::io::Write::write_all(&mut b, &[2; 32]).unwrap();
            b
        });
        // SAFETY: as above.
        assert_eq!(unsafe { io_read(h, buf.as_mut_ptr(), 64, 2000) }, 64);
        assert_eq!(&buf[..32], &[1; 32]);
        assert_eq!(&buf[32..], &[2; 32]);
        let mut b = t.join().unwrap();
        let report = [0x5a; 65];
        // SAFETY: h as above; report is 65 readable bytes.
        assert_eq!(unsafe { io_write(h, report.as_ptr(), 65) }, 65);
        let mut got = [0u8; 65];
        b.read_exact(&mut got).unwrap();
        assert_eq!(got, report);
        // The peer gone: end of stream is -1, and writing is -1, not
        // SIGPIPE.
        drop(b);
        // SAFETY: as above.
        assert_eq!(unsafe { io_read(h, buf.as_mut_ptr(), 64, -1) }, -1);
        // SAFETY: as above.
        assert_eq!(unsafe { io_write(h, report.as_ptr(), 65) }, -1);
        // SAFETY: h is closed once.
        unsafe { io_close(h) };
    }

    #[test]
    fn a_socket_nobody_listens_on_fails_to_open() {
        let dir = std::env::temp_dir().join(format!("tf-fido-{}", std::process::id()));
        assert!(crate::Device::open_test(&dir.join("none.sock")).is_err());
    }
}

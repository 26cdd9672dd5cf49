//! Running child processes with bounded waits: every program a test starts
//! is waited on with a timeout and killed if it hangs, so a broken program
//! fails its test instead of hanging the suite.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// What a finished program printed.
#[derive(Debug, Clone)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Finished {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
    pub fn success(&self) -> bool {
        self.status.success()
    }
    /// Both streams, for failure messages.
    pub fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// Sends a signal to a process (by pid; used only on children we started).
pub fn signal(pid: u32, sig: i32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // SAFETY: kill(2) takes plain integers; the pid is one of our own
    // children that has not been reaped yet.
    unsafe {
        libc::kill(pid, sig);
    }
}

/// Waits for a child for at most `timeout`; `None` if it is still running.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(2);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for a child failed: {e}"),
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

fn drain<R: Read + Send + 'static>(r: Option<R>) -> Option<JoinHandle<Vec<u8>>> {
    r.map(|mut r| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    })
}

/// Runs `cmd` with `input` on stdin, waits at most `timeout`, kills it and
/// panics (with what it printed) if it takes longer.
pub fn run(cmd: &mut Command, input: &[u8], timeout: Duration) -> Finished {
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
    let out = drain(child.stdout.take());
    let err = drain(child.stderr.take());
    let input = input.to_vec();
    let writer = child.stdin.take().map(|mut w| {
        thread::spawn(move || {
            // A program may exit without reading everything: ignore EPIPE.
            let _ = w.write_all(&input);
        })
    });
    let status = wait_timeout(&mut child, timeout);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            let stdout = out
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            let stderr = err
                .map(|h| h.join().unwrap_or_default())
                .unwrap_or_default();
            panic!(
                "{what} did not finish within {timeout:?}; killed.\n--- stdout ---\n{}\n--- stderr ---\n{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            );
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Finished {
        status,
        stdout: out
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default(),
        stderr: err
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default(),
    }
}

/// A running program driven line by line: its stdout is read by a thread
/// and handed over line by line, so the test can wait for a line with a
/// timeout, answer on stdin, and so on.
pub struct Interactive {
    what: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<Vec<u8>>,
    seen: Vec<Vec<u8>>,
    stdout_done: Option<JoinHandle<()>>,
    stderr: Option<JoinHandle<Vec<u8>>>,
}

impl Interactive {
    pub fn spawn(cmd: &mut Command) -> Interactive {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let stdout_done = thread::spawn(move || {
            let mut r = BufReader::new(stdout);
            loop {
                let mut line = Vec::new();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                }
            }
        });
        let stderr = drain(child.stderr.take());
        Interactive {
            what,
            child,
            stdin,
            lines: rx,
            seen: Vec::new(),
            stdout_done: Some(stdout_done),
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything read from stdout so far.
    pub fn seen(&self) -> String {
        self.seen
            .iter()
            .map(|l| String::from_utf8_lossy(l).into_owned())
            .collect()
    }

    /// Waits (at most `timeout`) for a stdout line for which `pred` holds:
    /// the line (without the newline), or None when none came in that
    /// time or the program's output ended.
    pub fn line_within(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Option<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self.lines.recv_timeout(left).ok()?;
            let text = String::from_utf8_lossy(&line)
                .trim_end_matches(['\n', '\r'])
                .to_string();
            self.seen.push(line);
            if pred(&text) {
                return Some(text);
            }
        }
    }

    /// Waits (at most `timeout`) for a stdout line for which `pred` holds and
    /// returns it (without the newline). Panics with everything seen so far
    /// if the program ends or the time runs out first.
    pub fn expect_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .to_string();
                    self.seen.push(line);
                    if pred(&text) {
                        return text;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    let seen = self.seen();
                    self.kill();
                    panic!(
                        "{}: expected line not printed within {timeout:?}.\n--- stdout so far ---\n{seen}",
                        self.what
                    );
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let seen = self.seen();
                    let rest = self.finish(Duration::from_secs(10));
                    panic!(
                        "{}: ended before printing the expected line.\n--- stdout ---\n{seen}{}\n--- stderr ---\n{}\nstatus: {}",
                        self.what,
                        rest.stdout(),
                        rest.stderr(),
                        rest.status
                    );
                }
            }
        }
    }

    /// Writes raw bytes to the program's stdin.
    pub fn write(&mut self, bytes: &[u8]) {
        if let Some(w) = self.stdin.as_mut() {
            // The program may have gone away already; the result tells.
            let _ = w.write_all(bytes);
            let _ = w.flush();
        }
    }

    /// Closes stdin (end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Closes stdin, waits at most `timeout` for the end (kills and panics
    /// after that) and returns all output, including lines already seen.
    pub fn finish(&mut self, timeout: Duration) -> Finished {
        self.stdin = None;
        let status = match wait_timeout(&mut self.child, timeout) {
            Some(s) => s,
            None => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "{} did not finish within {timeout:?}; killed.\n--- stdout so far ---\n{}",
                    self.what,
                    self.seen()
                );
            }
        };
        if let Some(h) = self.stdout_done.take() {
            let _ = h.join();
        }
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        Finished {
            status,
            stdout: self.seen.concat(),
            stderr,
        }
    }
}

impl Drop for Interactive {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `f` on `n` threads released together (behind a barrier) and
/// returns their results in thread order: concurrent logins.
pub fn all_at_once<T: Send>(n: usize, f: impl Fn() -> T + Sync) -> Vec<T> {
    let barrier = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                let (f, barrier) = (&f, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    f()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    })
}

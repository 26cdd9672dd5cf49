//! TOTP codes computed independently of the project, by Debian's `oathtool`.

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::admin::FakeClock;
use crate::proc;

pub const STEP: i64 = 30;

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

/// The 6-digit code of `secret` (base32, spaces allowed) at unix time `at`
/// (now if `None`), from `oathtool --totp -b - [-N @T]` with the secret on
/// stdin (never on argv, even in tests).
pub fn oathtool(secret: &str, at: Option<i64>) -> String {
    let compact: String = secret.chars().filter(|c| !c.is_whitespace()).collect();
    let mut cmd = Command::new("oathtool");
    cmd.arg("--totp").arg("-b").arg("-");
    if let Some(t) = at {
        cmd.arg("-N").arg(format!("@{t}"));
    }
    let out = proc::run(
        &mut cmd,
        format!("{compact}\n").as_bytes(),
        Duration::from_secs(10),
    );
    assert!(out.success(), "oathtool failed: {}", out.describe());
    let code = out.stdout().trim().to_string();
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "oathtool printed {code:?}"
    );
    code
}

/// The code of the current step.
pub fn code_now(secret: &str) -> String {
    oathtool(secret, None)
}

/// The code `steps` steps away from now (negative: earlier).
pub fn code_at_step_offset(secret: &str, steps: i64) -> String {
    oathtool(secret, Some(now() + steps * STEP))
}

/// Seconds left in the current 30 s step.
pub fn seconds_left_in_step() -> i64 {
    STEP - now().rem_euclid(STEP)
}

/// If fewer than `secs` seconds are left in the current step, waits for the
/// next step, so that a test that needs "this step" or "the step before"
/// does not cross a step boundary halfway.
pub fn ensure_step_margin(secs: i64) {
    assert!(secs < STEP - 2, "a margin of {secs} s cannot be had");
    let left = seconds_left_in_step();
    if left < secs {
        std::thread::sleep(Duration::from_millis((left as u64) * 1000 + 300));
    }
}

/// Fresh codes one after another for a daemon whose clock is the real one
/// plus `offset` seconds: each code is of a later step than the last one
/// handed out (the daemon never accepts a step twice), within the step the
/// daemon is in or the next (its ±1 step window); when both are used up,
/// waits for the daemon's next step, or, for a daemon on a [`FakeClock`]
/// ([`Codes::on`]), moves that clock a step on instead of waiting.
pub struct Codes {
    secret: String,
    last: std::cell::Cell<i64>,
    clock: Option<FakeClock>,
}

impl Codes {
    pub fn new(secret: &str) -> Codes {
        Codes {
            secret: secret.to_string(),
            last: std::cell::Cell::new(i64::MIN),
            clock: None,
        }
    }

    /// Codes after `last_step` (a step the daemon already used).
    pub fn resume(secret: &str, last_step: i64) -> Codes {
        let c = Codes::new(secret);
        c.last.set(last_step);
        c
    }

    /// Codes for a daemon on `clock`: [`Codes::fresh`] moves it a step on
    /// when this step and the next are used up, rather than waiting.
    pub fn on(secret: &str, clock: &FakeClock) -> Codes {
        Codes {
            secret: secret.to_string(),
            last: std::cell::Cell::new(i64::MIN),
            clock: Some(clock.clone()),
        }
    }

    /// [`Codes::on`], after `last_step` (a step the daemon already used).
    pub fn resume_on(secret: &str, last_step: i64, clock: &FakeClock) -> Codes {
        let c = Codes::on(secret, clock);
        c.last.set(last_step);
        c
    }

    /// The step of the last code handed out.
    pub fn last_step(&self) -> i64 {
        self.last.get()
    }

    /// The next fresh code, for a daemon `offset` seconds ahead.
    pub fn next(&self, offset: i64) -> String {
        loop {
            let current = (now() + offset).div_euclid(STEP);
            let step = current.max(self.last.get().saturating_add(1));
            if step <= current + 1 && (step > current || seconds_left_in_step() >= 5) {
                self.last.set(step);
                return oathtool(&self.secret, Some(step * STEP));
            }
            let start = now();
            crate::wait_until(Duration::from_secs(STEP as u64 + 2), || {
                (now() + offset).div_euclid(STEP) > start.saturating_add(offset).div_euclid(STEP)
            });
        }
    }

    /// The next fresh code for the daemon on the clock of [`Codes::on`]:
    /// of a step after the last one, within the daemon's window (its step
    /// or the next; the next when fewer than 5 s are left in its step).
    /// When the last code was of the daemon's next step already, the clock
    /// is moved one step (30 s) on first, never more. For codes made with
    /// [`Codes::new`]: [`Codes::next`]`(0)`, which waits instead.
    pub fn fresh(&self) -> String {
        let Some(clock) = self.clock.as_ref() else {
            return self.next(0);
        };
        let daemon_now = now() + clock.offset();
        let mut current = daemon_now.div_euclid(STEP);
        let left = STEP - daemon_now.rem_euclid(STEP);
        let earliest = if left < 5 { current + 1 } else { current };
        let step = earliest.max(self.last.get().saturating_add(1));
        if step > current + 1 {
            clock.advance(((step - current - 1) * STEP) as u32);
            current = step - 1;
        }
        assert!(
            step <= current + 1,
            "step {step} outside the daemon's window"
        );
        self.last.set(step);
        oathtool(&self.secret, Some(step * STEP))
    }
}

/// Decodes RFC 4648 base32 (no padding needed, case-insensitive, spaces
/// ignored). `None` if a character is not base32.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut acc: u64 = 0;
    let mut bits = 0u32;
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = match c.to_ascii_uppercase() {
            c @ 'A'..='Z' => c as u64 - 'A' as u64,
            c @ '2'..='7' => c as u64 - '2' as u64 + 26,
            _ => return None,
        };
        acc = (acc << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// A code different from `code` (for "wrong code" tests).
pub fn wrong_code(code: &str) -> String {
    code.bytes()
        .map(|b| char::from(b'0' + (b - b'0' + 5) % 10))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base32_rfc4648_vectors() {
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(base32_decode("mzxw 6ytb oi").unwrap(), b"foobar");
        assert!(base32_decode("MZ1W").is_none());
    }

    #[test]
    fn wrong_code_differs_in_every_digit() {
        let w = wrong_code("012345");
        assert_eq!(w, "567890");
    }
}

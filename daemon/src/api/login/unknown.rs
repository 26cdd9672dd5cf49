//! Names the system does not know: they get the same prompt, the same
//! refusal and, after `max_failures` guesses, the same lockout message as an
//! account, so that the answers do not tell which names exist. Their
//! failures are kept in memory only (no row is ever written for them).

use std::collections::HashMap;
use std::sync::Mutex;

use crate::config::LimitsConfig;
use crate::rules::ratelimit;

/// Names whose failures are remembered at once (oldest forgotten first).
const MAX_UNKNOWN_NAMES: usize = 4096;

/// Failures and lock of each unknown name: (failures, locked until).
#[derive(Default)]
pub(super) struct UnknownNames(Mutex<HashMap<String, (u32, i64)>>);

impl UnknownNames {
    /// A guess for `name`: the seconds left to wait if the name is locked
    /// (nothing is counted then), else None after counting the failure.
    pub(super) fn failure(&self, name: &str, now: i64, limits: &LimitsConfig) -> Option<i64> {
        let Ok(mut table) = self.0.lock() else {
            return None;
        };
        if table.len() >= MAX_UNKNOWN_NAMES && !table.contains_key(name) {
            table.retain(|_, (_, until)| *until > now);
            if table.len() >= MAX_UNKNOWN_NAMES {
                table.clear();
            }
        }
        let entry = table.entry(name.to_string()).or_insert((0, 0));
        if entry.1 > now {
            return Some(entry.1 - now);
        }
        entry.0 = entry.0.saturating_add(1);
        if let Some(w) = ratelimit::wait_after(entry.0, limits) {
            entry.1 = now + w;
        }
        None
    }
}

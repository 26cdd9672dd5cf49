//! Time, injected so that tests control it.

#[cfg(test)]
use std::sync::atomic::{AtomicI64, Ordering};
#[cfg(test)]
use std::sync::Arc;

/// Seconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now(&self) -> i64;
}

/// The system clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    }
}

/// A clock the test sets by hand.
#[cfg(test)]
#[derive(Clone, Default)]
pub struct ManualClock(Arc<AtomicI64>);

#[cfg(test)]
impl ManualClock {
    pub fn at(t: i64) -> Self {
        ManualClock(Arc::new(AtomicI64::new(t)))
    }
    pub fn set(&self, t: i64) {
        self.0.store(t, Ordering::SeqCst);
    }
    pub fn advance(&self, secs: i64) {
        self.0.fetch_add(secs, Ordering::SeqCst);
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The local calendar date (`YYYY-MM-DD`) of a Unix time, in the daemon's
/// time zone (TZ, else /etc/localtime).
pub fn local_date(t: i64) -> String {
    let time: libc::time_t = t;
    // SAFETY: tm is plain old data, fully written by localtime_r on
    // success; localtime_r is the thread-safe variant and reads only `time`.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are valid for the duration of the call.
    let ok = unsafe { !libc::localtime_r(&time, &mut tm).is_null() };
    if !ok {
        return "1970-01-01".into();
    }
    format!(
        "{:04}-{:02}-{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_date_in_utc() {
        // The test process may have any TZ; 12:00 UTC is the same date in
        // every zone within ±11 h.
        assert_eq!(
            super::local_date(1_700_000_000 - 1_700_000_000 % 86_400 + 43_200),
            "2023-11-14"
        );
    }
}

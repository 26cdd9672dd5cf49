//! Showing times to a person: Unix times in the local time zone, and
//! durations in words.

/// `ts` (Unix seconds) as `YYYY-MM-DD HH:MM:SS ZONE` in the local time zone
/// (the `TZ` variable, else `/etc/localtime`). Falls back to the raw number
/// if the C library cannot convert it.
pub fn format(ts: i64) -> String {
    local(ts, c"%Y-%m-%d %H:%M:%S %Z").unwrap_or_else(|| format!("{ts} (Unix time)"))
}

/// The local date of `ts` (Unix seconds) as `YYYY-MM-DD`, if the C library
/// can convert it.
pub fn date(ts: i64) -> Option<String> {
    local(ts, c"%Y-%m-%d")
}

fn local(ts: i64, fmt: &std::ffi::CStr) -> Option<String> {
    // time_t is 64 bits here but 32 bits on some targets.
    #[allow(clippy::useless_conversion)]
    let t: libc::time_t = ts.try_into().ok()?;
    let mut tm = std::mem::MaybeUninit::<libc::tm>::zeroed();
    // SAFETY: `t` is a valid time_t and `tm` points to writable memory for
    // one `struct tm`; localtime_r is the thread-safe variant and keeps no
    // pointer to either.
    let converted = unsafe { libc::localtime_r(&t, tm.as_mut_ptr()) };
    if converted.is_null() {
        return None;
    }
    // SAFETY: localtime_r returned non-null, so it filled in `tm` (and it was
    // zero-initialised before, which is a valid `struct tm` anyway).
    let tm = unsafe { tm.assume_init() };
    let mut buf = [0u8; 128];
    // SAFETY: `buf` is writable for `buf.len()` bytes, `fmt` is a
    // NUL-terminated string and `tm` is an initialised `struct tm`;
    // strftime writes at most `buf.len()` bytes and returns how many (0 if
    // they did not fit).
    let written = unsafe { libc::strftime(buf.as_mut_ptr().cast(), buf.len(), fmt.as_ptr(), &tm) };
    if written == 0 {
        return None;
    }
    String::from_utf8(buf.get(..written)?.to_vec()).ok()
}

/// A duration in whole seconds, in words: `45 seconds`, `3 min 5 s`,
/// `2 h 10 min`.
pub fn duration(secs: u64) -> String {
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    match (h, m, s) {
        (0, 0, 1) => "1 second".to_owned(),
        (0, 0, s) => format!("{s} seconds"),
        (0, m, 0) => format!("{m} min"),
        (0, m, s) => format!("{m} min {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} min"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_a_date_in_the_expected_shape() {
        let s = format(1_700_000_000);
        // 2023-11-14 in every time zone.
        assert!(s.starts_with("2023-11-1"), "{s}");
        let bytes = s.as_bytes();
        assert_eq!(bytes[4], b'-');
        assert_eq!(bytes[7], b'-');
        assert_eq!(bytes[10], b' ');
        assert_eq!(bytes[13], b':');
        assert_eq!(bytes[16], b':');
    }

    #[test]
    fn dates_are_the_start_of_the_full_format() {
        let d = date(1_700_000_000).unwrap();
        assert_eq!(d.len(), 10);
        assert!(format(1_700_000_000).starts_with(&d));
        assert!(date(i64::MAX).is_none());
    }

    #[test]
    fn out_of_range_falls_back() {
        assert_eq!(format(i64::MAX), format!("{} (Unix time)", i64::MAX));
    }

    #[test]
    fn durations_in_words() {
        assert_eq!(duration(1), "1 second");
        assert_eq!(duration(45), "45 seconds");
        assert_eq!(duration(60), "1 min");
        assert_eq!(duration(185), "3 min 5 s");
        assert_eq!(duration(3600), "1 h");
        assert_eq!(duration(7800), "2 h 10 min");
    }
}

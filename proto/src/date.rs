//! The one date form of the contract: a policy's start date, `YYYY-MM-DD`,
//! checked the same way by the daemon (config file and `Admin1.SetPolicy`)
//! and by `twofactorctl admin policy --from`.

/// A real calendar day written `YYYY-MM-DD` (years 1970 to 9999; February
/// has 29 days in leap years only).
pub fn is_calendar_date(text: &str) -> bool {
    let b = text.as_bytes();
    let shaped = b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        });
    if !shaped {
        return false;
    }
    let num = |r: std::ops::Range<usize>| text.get(r).and_then(|t| t.parse::<u32>().ok());
    let (Some(y), Some(m), Some(d)) = (num(0..4), num(5..7), num(8..10)) else {
        return false;
    };
    (1970..=9999).contains(&y) && (1..=days_in_month(y, m)).contains(&d)
}

/// Days in month `m` (1..=12) of year `y`; 0 for a month that does not exist.
fn days_in_month(y: u32, m: u32) -> u32 {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_real_days() {
        for good in [
            "2026-02-28",
            "2028-02-29",
            "2000-02-29",
            "1970-01-01",
            "9999-12-31",
        ] {
            assert!(is_calendar_date(good), "{good}");
        }
        for bad in [
            "2026-02-31",
            "2027-02-29",
            "2100-02-29",
            "2026-11-31",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "1969-12-31",
            "2026-1-01",
            "2026/01/01",
            "+026-01-01",
            "２０２６-01-01",
            "",
        ] {
            assert!(!is_calendar_date(bad), "{bad}");
        }
    }
}

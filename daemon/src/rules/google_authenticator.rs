//! What a `~/.google_authenticator` file (google-authenticator-libpam)
//! holds, for `twofactorctl admin import google-authenticator`: the base32
//! secret on the first line, option lines starting with `"` (`" TOTP_AUTH`,
//! `" HOTP_COUNTER n`, `" RATE_LIMIT`, …), then 8-digit scratch codes, one
//! per line. Only TOTP files are imported; the scratch codes become backup
//! codes. Reading the file safely is `adapters::home_files`'s business;
//! this is the text alone, and no error carries any of it.

use crate::rules::backup_codes::{self, Code};
use crate::rules::totp::Secret;

/// What a file holds.
pub struct Parsed {
    pub secret: Secret,
    pub scratch: Vec<Code>,
    /// Scratch lines that were not 8 digits.
    pub skipped_lines: u32,
}

/// Why a file's text cannot be imported.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("{0} is an HOTP (counter-based) file; only TOTP (time-based) secrets can be imported. The user must enrol anew with `twofactorctl enable app`")]
    Hotp(String),
    #[error("{0} does not hold a valid base32 secret of at least 128 bits on its first line")]
    BadSecret(String),
}

/// Parses the text of a file (`shown` names it in errors).
pub fn parse(text: &str, shown: &str) -> Result<Parsed, FormatError> {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim();
    let mut scratch = Vec::new();
    let mut skipped_lines = 0;
    for line in lines {
        let line = line.trim();
        if let Some(option) = line.strip_prefix('"') {
            if option.split_whitespace().next() == Some("HOTP_COUNTER") {
                return Err(FormatError::Hotp(shown.to_string()));
            }
            continue;
        }
        if line.is_empty() {
            continue;
        }
        let is_scratch =
            line.len() == backup_codes::SCRATCH_LEN && line.bytes().all(|b| b.is_ascii_digit());
        match backup_codes::parse(line).filter(|_| is_scratch) {
            Some(code) => scratch.push(code),
            None => skipped_lines += 1,
        }
    }
    let bytes = totp_rs::Secret::Encoded(first.to_ascii_uppercase())
        .to_bytes()
        .map_err(|_| FormatError::BadSecret(shown.to_string()))?;
    if bytes.len() < 16 {
        return Err(FormatError::BadSecret(shown.to_string()));
    }
    Ok(Parsed {
        secret: Secret::from_bytes(bytes),
        scratch,
        skipped_lines,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOTP_FILE: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" RATE_LIMIT 3 30\n\" WINDOW_SIZE 17\n\" DISALLOW_REUSE\n\" TOTP_AUTH\n12345678\n87654321\n";

    #[test]
    fn totp_file_with_scratch_codes() {
        let p = parse(TOTP_FILE, "f").unwrap();
        assert_eq!(p.secret.bytes().len(), 20);
        assert_eq!(p.scratch.len(), 2);
        assert_eq!(p.scratch[0].display(), "1234-5678");
        assert_eq!(p.skipped_lines, 0);
    }

    #[test]
    fn hotp_and_bad_files_are_refused_without_their_content() {
        let hotp = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n\" HOTP_COUNTER 1\n12345678\n";
        assert_eq!(parse(hotp, "f").err(), Some(FormatError::Hotp("f".into())));
        let e = parse("not base32 at all!\n", "f").err().unwrap();
        assert_eq!(e, FormatError::BadSecret("f".into()));
        assert!(!e.to_string().contains("base32 at all"));
        assert!(parse("JBSWY3DP\n", "f").is_err(), "too short");
        assert!(parse("", "f").is_err());
    }

    #[test]
    fn odd_scratch_lines_are_skipped() {
        let p = parse(
            "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP\n1234\nabcdefgh\n11112222\n",
            "f",
        )
        .unwrap();
        assert_eq!(p.scratch.len(), 1);
        assert_eq!(p.skipped_lines, 2);
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        /// Any file text: no panic; what is accepted has a secret of at
        /// least 16 bytes and only 8-digit scratch codes.
        #[test]
        fn parse_any_text(text in any::<String>()) {
            if let Ok(p) = parse(&text, "f") {
                prop_assert!(p.secret.bytes().len() >= 16);
                prop_assert!(p.scratch.iter().all(|c| c.display().replace('-', "").len() == backup_codes::SCRATCH_LEN));
            }
        }

        /// Files shaped like real ones (a base32 line, options, codes).
        #[test]
        fn parse_shaped_files(
            secret in "[A-Za-z2-7=]{0,40}",
            lines in proptest::collection::vec(prop_oneof![
                "[0-9]{6,10}",
                "\" [A-Z_]{1,12}( [0-9]{0,3})?",
                "\\PC{0,12}",
            ], 0..8),
        ) {
            let text = format!("{secret}\n{}\n", lines.join("\n"));
            if let Ok(p) = parse(&text, "f") {
                prop_assert!(p.secret.bytes().len() >= 16);
                let codes = lines.iter().filter(|l| l.trim().len() == 8 && l.trim().bytes().all(|b| b.is_ascii_digit())).count();
                prop_assert_eq!(p.scratch.len(), codes);
            }
        }
    }
}

//! Backup codes: showing a new set.

use std::io::Write;

use super::write_failure;
use crate::error::Failure;
use crate::text::one_line;

/// The line before the codes.
pub const CODES_HEADER: &str =
    "Backup codes (each works once; keep them somewhere safe, away from the phone):";

/// Prints a set of backup codes, one per line, as the daemon made them.
pub fn show_codes(out: &mut dyn Write, codes: &[String]) -> Result<(), Failure> {
    if codes.is_empty() {
        return Ok(());
    }
    writeln!(out, "\n{CODES_HEADER}").map_err(write_failure)?;
    for code in codes {
        writeln!(out, "{}", one_line(code)).map_err(write_failure)?;
    }
    Ok(())
}

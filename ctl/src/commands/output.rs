//! How the commands lay out what they print: label lines, JSON lines,
//! counted nouns. Shared by the user's and the administrator's commands.

use crate::error::Failure;

/// `Label: value` lines, the values aligned one column after the longest
/// label.
pub fn label_lines(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(label, _)| label.chars().count() + 2)
        .max()
        .unwrap_or(0);
    let mut text = String::new();
    for (label, value) in rows {
        text.push_str(&format!("{:<width$}{value}\n", format!("{label}:")));
    }
    text
}

/// One value as a JSON line: `encoded` is `serde_json::to_string(value)`.
pub fn json_line(
    encoded: Result<String, serde_json::Error>,
    what: &str,
) -> Result<String, Failure> {
    let mut json = encoded.map_err(|e| {
        Failure::new(
            crate::error::Reason::Unexpected,
            format!("could not encode {what}: {e}"),
        )
    })?;
    json.push('\n');
    Ok(json)
}

/// `n` with the noun in the singular or the plural.
pub fn count(n: u32, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {many}")
    }
}

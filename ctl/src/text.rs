//! Making text that comes from elsewhere (the daemon, the system) safe to
//! print as one terminal line.

/// Longest line shown for a piece of foreign text, in characters.
const MAX_CHARS: usize = 300;

/// Replaces control characters (newlines, escape sequences) with spaces,
/// collapses runs of whitespace, trims, and caps the length, so that a
/// message stays one line and cannot drive the terminal.
pub fn one_line(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_CHARS));
    let mut count = 0;
    let mut pending_space = false;
    for c in text.chars() {
        if c.is_control() || c.is_whitespace() {
            pending_space = !out.is_empty();
            continue;
        }
        if count >= MAX_CHARS {
            out.push('…');
            break;
        }
        if pending_space {
            out.push(' ');
            count += 1;
            pending_space = false;
        }
        out.push(c);
        count += 1;
    }
    out
}

/// Removes control characters and whitespace, nothing else: for a token
/// that must be shown whole (an otpauth URI, a base32 secret).
pub fn token(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() && !c.is_whitespace())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_controls_and_newlines() {
        assert_eq!(one_line("  a\n\tb\x1b[2Jc \r\n"), "a b [2Jc");
        assert_eq!(one_line(""), "");
        assert_eq!(one_line("plain text."), "plain text.");
    }

    #[test]
    fn token_keeps_everything_printable() {
        let uri = format!("otpauth://totp/a?secret=AB&issuer={}", "x".repeat(500));
        assert_eq!(token(&uri), uri);
        assert_eq!(token("AB CD\x1b\n"), "ABCD");
    }

    #[test]
    fn caps_length() {
        let long = "x".repeat(10_000);
        let s = one_line(&long);
        assert_eq!(s.chars().count(), MAX_CHARS + 1);
        assert!(s.ends_with('…'));
    }
}

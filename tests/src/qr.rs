//! Reading back a QR code drawn in the terminal with Unicode half blocks
//! (`█`, `▀`, `▄`, space: two modules per character cell), with rqrr, so a
//! test can check that the code a phone would scan holds the right URI.

/// The longest run of consecutive lines made only of half blocks and spaces
/// (with at least one block): the drawn QR code, if any.
pub fn block_lines(text: &str) -> Vec<String> {
    let is_block_line = |l: &str| {
        let l = strip_ansi(l);
        !l.trim().is_empty()
            && l.chars().any(|c| matches!(c, '█' | '▀' | '▄'))
            && l.chars().all(|c| matches!(c, '█' | '▀' | '▄' | ' '))
    };
    let mut best: Vec<String> = Vec::new();
    let mut cur: Vec<String> = Vec::new();
    for line in text.lines() {
        if is_block_line(line) {
            cur.push(strip_ansi(line));
        } else {
            if cur.len() > best.len() {
                best = std::mem::take(&mut cur);
            }
            cur.clear();
        }
    }
    if cur.len() > best.len() {
        best = cur;
    }
    best
}

/// Removes ANSI colour sequences (`ESC [ ... m`).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Decodes the QR code drawn in `lines`; tries both polarities (blocks as
/// dark modules, blocks as light modules). `None` if neither decodes.
pub fn decode(lines: &[String]) -> Option<String> {
    const SCALE: usize = 6;
    const BORDER: usize = 4;
    let width = lines.iter().map(|l| l.chars().count()).max()?;
    let height = lines.len() * 2;
    // modules[y][x]: true where a block half is drawn.
    let mut modules = vec![vec![false; width]; height];
    for (row, line) in lines.iter().enumerate() {
        for (x, c) in line.chars().enumerate() {
            let (top, bottom) = match c {
                '█' => (true, true),
                '▀' => (true, false),
                '▄' => (false, true),
                _ => (false, false),
            };
            modules[row * 2][x] = top;
            modules[row * 2 + 1][x] = bottom;
        }
    }
    for blocks_are_dark in [true, false] {
        let w = (width + 2 * BORDER) * SCALE;
        let h = (height + 2 * BORDER) * SCALE;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
            let (mx, my) = (x / SCALE, y / SCALE);
            let block = mx >= BORDER
                && my >= BORDER
                && mx - BORDER < width
                && my - BORDER < height
                && modules[my - BORDER][mx - BORDER];
            // The border is light (quiet zone) in either polarity.
            let inside =
                mx >= BORDER && my >= BORDER && mx - BORDER < width && my - BORDER < height;
            let dark = if inside {
                block == blocks_are_dark
            } else {
                false
            };
            if dark {
                0
            } else {
                255
            }
        });
        for grid in img.detect_grids() {
            if let Ok((_, content)) = grid.decode() {
                return Some(content);
            }
        }
    }
    None
}

/// Percent-decoding for URI parts (`%40` -> `@`).
pub fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query parameters of a URI, percent-decoded.
pub fn query_params(uri: &str) -> Vec<(String, String)> {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    query
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (percent_decode(k), percent_decode(v)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent() {
        assert_eq!(percent_decode("a%40b%3Ac"), "a@b:c");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%4"), "%4");
    }

    /// The decoder reads what the qrcode crate draws, in both polarities.
    #[test]
    fn decodes_half_block_drawing() {
        use qrcode::render::unicode::Dense1x2;
        let uri = "otpauth://totp/host:alice%40host?secret=JBSWY3DPEHPK3PXP&issuer=host";
        let code = qrcode::QrCode::new(uri.as_bytes()).unwrap();
        for (dark, light) in [
            (Dense1x2::Dark, Dense1x2::Light),
            (Dense1x2::Light, Dense1x2::Dark),
        ] {
            let text = code
                .render::<Dense1x2>()
                .dark_color(dark)
                .light_color(light)
                .build();
            let text = format!("Scan this:\n\n{text}\nSecret: X\n");
            let lines = block_lines(&text);
            assert!(lines.len() > 10, "{text}");
            assert_eq!(decode(&lines).as_deref(), Some(uri));
        }
    }
}

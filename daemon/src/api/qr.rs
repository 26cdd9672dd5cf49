//! QR codes drawn in text, for enrolment inside a login conversation (the
//! PAM module shows text only). Two module rows per line with Unicode half
//! blocks, dark modules on a light quiet zone, so it fits 80 columns and
//! scans from a dark or light terminal alike.

use qrcode::{Color, EcLevel, QrCode};

/// Quiet zone in modules (the standard asks for 4; 2 scans fine on screens
/// and keeps the block under 80 columns).
const QUIET: usize = 2;

pub fn render(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L).ok()?;
    let width = code.width();
    let colors = code.to_colors();
    let dark = |x: isize, y: isize| -> bool {
        if x < 0 || y < 0 || x as usize >= width || y as usize >= width {
            return false;
        }
        colors[y as usize * width + x as usize] == Color::Dark
    };
    let size = (width + 2 * QUIET) as isize;
    let q = QUIET as isize;
    let mut out = String::new();
    let mut y = 0;
    while y < size {
        for x in 0..size {
            // Light modules are drawn as ink (the terminal's foreground),
            // dark modules as background: inverted, which is what reads on
            // both dark and light terminals once the quiet zone is inked.
            let top = !dark(x - q, y - q);
            let bottom = y + 1 < size && !dark(x - q, y + 1 - q);
            out.push(match (top, bottom) {
                (true, true) => '█',
                (true, false) => '▀',
                (false, true) => '▄',
                (false, false) => ' ',
            });
        }
        out.push('\n');
        y += 2;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_80_columns_and_is_square_ish() {
        let uri = "otpauth://totp/host.example.org:someuser%40host.example.org?secret=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA&issuer=host.example.org";
        let text = render(uri).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let width = lines[0].chars().count();
        assert!(width <= 80, "{width}");
        assert!(lines.iter().all(|l| l.chars().count() == width));
        assert_eq!(lines.len(), width.div_ceil(2));
    }
}

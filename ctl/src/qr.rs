//! Drawing a QR code in the terminal with Unicode half blocks (two modules
//! per character cell), quiet zone included.
//!
//! On a terminal the code is drawn black on white with explicit colours, so
//! it scans whatever the terminal's own colours are. Without colours (stdout
//! is not a terminal, `NO_COLOR` is set, or `TERM=dumb`) the code is drawn
//! for a dark background (light modules as blocks), unless `COLORFGBG` says
//! the background is light.

use qrcode::render::unicode::Dense1x2;
use qrcode::QrCode;
use zeroize::Zeroizing;

const BLACK_ON_WHITE: &str = "\x1b[30;47m";
const RESET: &str = "\x1b[0m";

/// How the code is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// Explicit black on white (ANSI colours): right on any terminal.
    Colour,
    /// No colours; blocks are light on a dark background.
    DarkBackground,
    /// No colours; blocks are dark on a light background (or paper).
    LightBackground,
}

impl Style {
    /// The style for stdout, from whether it is a terminal and the standard
    /// environment variables `NO_COLOR`, `TERM` and `COLORFGBG`.
    pub fn for_stdout() -> Style {
        use std::io::IsTerminal;
        let tty = std::io::stdout().is_terminal();
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var("TERM").is_ok_and(|t| t == "dumb");
        let colorfgbg = std::env::var("COLORFGBG").ok();
        Style::choose(tty && !no_color && !dumb, colorfgbg.as_deref())
    }

    fn choose(colours: bool, colorfgbg: Option<&str>) -> Style {
        if colours {
            Style::Colour
        } else if background_is_light(colorfgbg) {
            Style::LightBackground
        } else {
            Style::DarkBackground
        }
    }
}

/// `COLORFGBG` is "fg;bg" (or "fg;default;bg") in the 16 ANSI colours;
/// 7 and 9..=15 are light backgrounds.
fn background_is_light(colorfgbg: Option<&str>) -> bool {
    colorfgbg
        .and_then(|v| v.rsplit(';').next())
        .and_then(|bg| bg.trim().parse::<u8>().ok())
        .is_some_and(|bg| bg == 7 || (9..=15).contains(&bg))
}

/// Draws `data` as a QR code, one text line per two module rows, each line
/// ending with `\n`. `None` if the data does not fit in a QR code.
/// The result is wiped when dropped (it encodes a secret).
pub fn render(data: &str, style: Style) -> Option<Zeroizing<String>> {
    let code = QrCode::new(data.as_bytes()).ok()?;
    let mut renderer = code.render::<Dense1x2>();
    let (dark, light) = match style {
        Style::Colour | Style::LightBackground => (Dense1x2::Dark, Dense1x2::Light),
        Style::DarkBackground => (Dense1x2::Light, Dense1x2::Dark),
    };
    let image = renderer
        .dark_color(dark)
        .light_color(light)
        .quiet_zone(true)
        .module_dimensions(1, 1)
        .build();
    let image = Zeroizing::new(image);
    let mut out = Zeroizing::new(String::with_capacity(image.len() * 2));
    for line in image.lines() {
        if style == Style::Colour {
            out.push_str(BLACK_ON_WHITE);
            out.push_str(line);
            out.push_str(RESET);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use qrcode::Color;

    /// Width of the quiet zone the renderer draws on each side, in modules.
    const QUIET_ZONE: usize = 4;

    const URI: &str = "otpauth://totp/example.org:alice%40example.org?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=example.org&algorithm=SHA1&digits=6&period=30";

    /// The module matrix (true = dark), quiet zone included, as the text shows it.
    fn decode(text: &str, style: Style) -> Vec<Vec<bool>> {
        let ink_is_dark = style != Style::DarkBackground;
        let mut rows = Vec::new();
        for line in text.lines() {
            let line = line.strip_prefix(BLACK_ON_WHITE).unwrap_or(line);
            let line = line.strip_suffix(RESET).unwrap_or(line);
            let (mut top, mut bottom) = (Vec::new(), Vec::new());
            for c in line.chars() {
                let (t, b) = match c {
                    ' ' => (false, false),
                    '\u{2580}' => (true, false),
                    '\u{2584}' => (false, true),
                    '\u{2588}' => (true, true),
                    other => panic!("unexpected character {other:?}"),
                };
                top.push(t == ink_is_dark);
                bottom.push(b == ink_is_dark);
            }
            rows.push(top);
            rows.push(bottom);
        }
        rows
    }

    fn expected(data: &str) -> Vec<Vec<bool>> {
        let code = QrCode::new(data.as_bytes()).unwrap();
        let w = code.width();
        let colours = code.to_colors();
        let full = w + 2 * QUIET_ZONE;
        let mut rows = vec![vec![false; full]; full];
        for y in 0..w {
            for x in 0..w {
                rows[y + QUIET_ZONE][x + QUIET_ZONE] = colours[y * w + x] == Color::Dark;
            }
        }
        rows
    }

    #[test]
    fn lines_have_one_width_and_the_right_count() {
        for style in [Style::Colour, Style::DarkBackground, Style::LightBackground] {
            let text = render(URI, style).unwrap();
            let full = QrCode::new(URI.as_bytes()).unwrap().width() + 2 * QUIET_ZONE;
            let plain: Vec<String> = text
                .lines()
                .map(|l| l.replace(BLACK_ON_WHITE, "").replace(RESET, ""))
                .collect();
            assert_eq!(plain.len(), full.div_ceil(2), "{style:?}");
            for line in &plain {
                assert_eq!(line.chars().count(), full, "{style:?}");
            }
            assert!(text.ends_with('\n'));
        }
    }

    #[test]
    fn text_decodes_to_the_code_with_quiet_zone() {
        for style in [Style::Colour, Style::DarkBackground, Style::LightBackground] {
            let text = render(URI, style).unwrap();
            let mut got = decode(&text, style);
            let want = expected(URI);
            // An odd module count leaves half a text row below the image;
            // its lower halves are never drawn (terminal background).
            if got.len() == want.len() + 1 {
                got.pop();
                let last = text.lines().last().unwrap();
                let last = last.replace(BLACK_ON_WHITE, "").replace(RESET, "");
                assert!(
                    last.chars().all(|c| c == ' ' || c == '\u{2580}'),
                    "{style:?}"
                );
            }
            assert_eq!(got, want, "{style:?}");
        }
    }

    #[test]
    fn colour_lines_are_black_on_white_and_reset() {
        let text = render(URI, Style::Colour).unwrap();
        for line in text.lines() {
            assert!(line.starts_with(BLACK_ON_WHITE));
            assert!(line.ends_with(RESET));
        }
        let plain = render(URI, Style::DarkBackground).unwrap();
        assert!(!plain.contains('\x1b'));
    }

    #[test]
    fn quiet_zone_is_light_in_every_style() {
        // Dark background: the quiet zone is drawn with blocks (light).
        let text = render(URI, Style::DarkBackground).unwrap();
        assert!(text
            .lines()
            .next()
            .unwrap()
            .chars()
            .all(|c| c == '\u{2588}'));
        // Light background and colour: the quiet zone is blank.
        let text = render(URI, Style::LightBackground).unwrap();
        assert!(text.lines().next().unwrap().chars().all(|c| c == ' '));
    }

    #[test]
    fn too_much_data_gives_none() {
        assert!(render(&"x".repeat(5000), Style::Colour).is_none());
    }

    #[test]
    fn style_choice() {
        assert_eq!(Style::choose(true, Some("0;15")), Style::Colour);
        assert_eq!(Style::choose(false, None), Style::DarkBackground);
        assert_eq!(Style::choose(false, Some("15;0")), Style::DarkBackground);
        assert_eq!(Style::choose(false, Some("0;15")), Style::LightBackground);
        assert_eq!(
            Style::choose(false, Some("0;default;7")),
            Style::LightBackground
        );
        assert_eq!(Style::choose(false, Some("junk")), Style::DarkBackground);
    }
}

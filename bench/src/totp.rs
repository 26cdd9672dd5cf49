//! RFC 6238 TOTP as both systems use it: HMAC-SHA1, 30-second steps, six
//! digits; and RFC 4648 base32 for the secrets.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECONDS: u64 = 30;

/// Decodes base32 (upper or lower case, `=` padding and spaces ignored, as
/// google-authenticator-libpam reads its first line). None for any other
/// character or an empty secret.
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 5 / 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a',
            b'2'..=b'7' => c - b'2' + 26,
            b'=' | b' ' | b'-' => continue,
            _ => return None,
        };
        buffer = (buffer << 5) | u32::from(value);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

/// The six-digit code of `secret` for time step `step`.
pub fn code(secret: &[u8], step: u64) -> String {
    // HMAC accepts a key of any length, so this cannot fail.
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&step.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let binary = u32::from_be_bytes([
        digest[offset] & 0x7f,
        digest[offset + 1],
        digest[offset + 2],
        digest[offset + 3],
    ]);
    format!("{:06}", binary % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, SHA1, 8 digits; the last 6 of them.
        let secret = b"12345678901234567890";
        assert_eq!(code(secret, 59 / 30), "287082");
        assert_eq!(code(secret, 1111111109 / 30), "081804");
        assert_eq!(code(secret, 1234567890 / 30), "005924");
        assert_eq!(code(secret, 20000000000 / 30), "353130");
    }

    #[test]
    fn base32() {
        assert_eq!(
            base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").as_deref(),
            Some(&b"12345678901234567890"[..])
        );
        assert_eq!(base32_decode("gezdgnbv").as_deref(), Some(&b"12345"[..]));
        assert_eq!(base32_decode("GEZ1"), None);
        assert_eq!(base32_decode(""), None);
    }
}

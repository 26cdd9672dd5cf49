//! Mail as plain values that every layer may use: a message as the daemon
//! composes it (a rule returns one, the outbox sends it), a user's mailbox
//! address as the daemon accepts it, how it is shown before the second
//! factor, and whether a host is this machine.

/// One message to one address.
#[derive(Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

impl std::fmt::Debug for Mail {
    /// The body may hold a code: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mail")
            .field("subject", &self.subject)
            .finish_non_exhaustive()
    }
}

/// Whether `relay` names this machine: `localhost`, 127.0.0.0/8 or `::1`.
pub fn is_loopback(relay: &str) -> bool {
    let relay = relay.trim();
    relay.eq_ignore_ascii_case("localhost")
        || relay
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A valid mailbox address as the daemon accepts it from a user: one
/// `local@domain`, no spaces or control characters, at most 254 bytes.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.rsplit_once('@') else {
        return false;
    };
    address.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.is_ascii()
        && !address.chars().any(|c| c.is_control() || c.is_whitespace())
        && !local.contains('@')
        && !"<>()[],;:\\\"".chars().any(|c| address.contains(c))
        && domain
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// An address as it may be shown before the second factor: the first
/// character of the local part, then `***`, then the domain
/// (`a***@example.com`). ASCII on purpose: prompts go through every PAM
/// client, and OpenSSH's client escapes what a C locale cannot print
/// (`•` would show as `\342\200\242`).
pub fn masked(address: &str) -> String {
    match address.rsplit_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for good in [
            "a@example.com",
            "first.last+tag@mail.example.org",
            "u@localhost",
        ] {
            assert!(valid_address(good), "{good}");
        }
        for bad in [
            "",
            "a",
            "@example.com",
            "a@",
            "a b@example.com",
            "a@b@c",
            "a@example.com\nBcc: x@y",
            "<a@example.com>",
            "a@.example.com",
            "ä@example.com",
        ] {
            assert!(!valid_address(bad), "{bad:?}");
        }
        assert!(!valid_address(&format!("{}@example.com", "a".repeat(65))));
    }

    #[test]
    fn loopback_relays() {
        for relay in ["localhost", "LOCALHOST", "127.0.0.1", "127.1.2.3", "::1"] {
            assert!(is_loopback(relay), "{relay}");
        }
        for relay in [
            "",
            "mail.example.com",
            "10.0.0.1",
            "::",
            "localhost.example.com",
        ] {
            assert!(!is_loopback(relay), "{relay}");
        }
    }

    #[test]
    fn masking_shows_one_letter_and_the_domain() {
        assert_eq!(masked("alice@example.com"), "a***@example.com");
        assert_eq!(masked("x@y"), "x***@y");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any string: the check never panics, and what it accepts can go
        /// into a mail header as it is (one ASCII line, one `@`, no
        /// header or angle-bracket syntax) and masks to the same domain.
        #[test]
        fn the_address_check_on_any_string(address in proptest::prelude::any::<String>()) {
            if valid_address(&address) {
                proptest::prop_assert!(address.len() <= 254 && address.is_ascii());
                proptest::prop_assert_eq!(address.matches('@').count(), 1);
                proptest::prop_assert!(!address.contains(['\r', '\n', '<', '>', ',', ';', ' ']));
                let (_, domain) = address.rsplit_once('@').unwrap_or_default();
                let tail = format!("***@{domain}");
                proptest::prop_assert!(masked(&address).ends_with(&tail));
            }
            let _ = masked(&address);
            let _ = is_loopback(&address);
        }

        /// Address-shaped strings with any bytes around the `@`.
        #[test]
        fn the_address_check_near_addresses(local in "[a-z.+\\-<>@ \n\u{e4}]{0,70}", domain in "[a-z0-9.\\- @\u{0}]{0,40}") {
            let address = format!("{local}@{domain}");
            let ok = valid_address(&address);
            proptest::prop_assert_eq!(
                ok,
                !local.is_empty() && local.len() <= 64 && address.len() <= 254
                    && !domain.is_empty() && !domain.starts_with('.') && !domain.ends_with('.')
                    && local.bytes().all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
                    && domain.bytes().all(|b| b.is_ascii_alphanumeric() || b".-".contains(&b)),
                "{:?}", address
            );
        }
    }
}

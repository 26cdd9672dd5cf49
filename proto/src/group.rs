//! Group names in the contract: `admin_group`, `protected_groups` and the
//! mandatory policy's groups (`Admin1.SetPolicy`, `[policy] groups` in
//! twofactord.toml, `twofactorctl admin policy --groups`), checked by one
//! rule in the daemon and in the CLI.

/// Longest group name accepted, in bytes.
pub const MAX_NAME_BYTES: usize = 64;

/// Most groups a policy may name (`Admin1.SetPolicy`); also the most
/// `protected_groups` may name.
pub const MAX_POLICY_GROUPS: usize = 256;

/// A group name as shadow's `groupadd` accepts it (without
/// `--badname`): letters, digits, `.`, `_` and `-`, not starting with
/// `-`, with one `$` allowed as the last character (Samba machine
/// accounts); not `.` or `..`, not all digits (a number is read as a gid
/// by `chgrp`, `getent` and friends); at most [`MAX_NAME_BYTES`].
pub fn is_valid_name(name: &str) -> bool {
    let b = name.as_bytes();
    let Some((&first, _)) = b.split_first() else {
        return false;
    };
    let portable = |c: u8| c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || c == b'-';
    // The `$` may only end the name; what comes before it follows the
    // portable set.
    let stem = b.strip_suffix(b"$").unwrap_or(b);
    b.len() <= MAX_NAME_BYTES
        && !stem.is_empty()
        && first != b'-'
        && stem.iter().all(|&c| portable(c))
        && name != "."
        && name != ".."
        && !b.iter().all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_names() {
        for good in [
            "staff",
            "sudo",
            "Domain_Admins",
            "ops-team",
            "a.b",
            "_ssh",
            "g1",
            "1g",
            "wheel$",
            ".hidden",
            "..x",
            "x",
            &"a".repeat(MAX_NAME_BYTES),
        ] {
            assert!(is_valid_name(good), "{good:?}");
        }
    }

    #[test]
    fn what_groupadd_refuses() {
        for bad in [
            "",
            "-staff",
            "a b",
            "a,b",
            "a:b",
            "a/b",
            "a$b",
            "$",
            "$a",
            "a$$",
            "-$",
            ".",
            "..",
            "1000",
            "0",
            "st\u{e4}ff",
            "staff\n",
            "staff\0",
            "\u{ff53}taff",
            &"a".repeat(MAX_NAME_BYTES + 1),
            &format!("{}$", "a".repeat(MAX_NAME_BYTES)),
        ] {
            assert!(!is_valid_name(bad), "{bad:?}");
        }
    }

    /// The rule written out the other way: shadow's regular expression
    /// `[A-Za-z0-9_.][A-Za-z0-9_.-]*\$?`, less `.`, `..` and all-digit
    /// names, at most 64 bytes; over every name of up to 3 characters
    /// from an alphabet with each kind of character.
    #[test]
    fn the_regular_expression_agrees_on_short_names() {
        let alphabet = ["a", "Z", "0", "7", ".", "_", "-", "$", " ", ":", "é"];
        let reference = |s: &str| {
            let stem = s.strip_suffix('$').unwrap_or(s);
            let mut chars = stem.chars();
            let first_ok = chars
                .next()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
            first_ok
                && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
                && s != "."
                && s != ".."
                && !s.chars().all(|c| c.is_ascii_digit())
        };
        let mut names = vec![String::new()];
        for _ in 0..3 {
            let longer: Vec<String> = names
                .iter()
                .flat_map(|n| alphabet.iter().map(move |c| format!("{n}{c}")))
                .collect();
            names.extend(longer);
        }
        names.sort();
        names.dedup();
        for name in &names {
            assert_eq!(is_valid_name(name), reference(name), "{name:?}");
        }
    }
}

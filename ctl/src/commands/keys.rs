//! `twofactorctl keys [--json]`: the caller's FIDO2 security keys (`enable
//! key` adds one; `disable key ID` removes one, `disable key --all` every
//! one).

use std::io::Write;

use twofactor_proto::types::SecurityKey;

use super::output::{json_line, label_lines};
use super::write_failure;
use crate::client::Account;
use crate::error::Failure;
use crate::localtime;
use crate::text::one_line;

/// The line when there is no key.
pub const NO_KEYS: &str = "No security keys.";

/// Lists the caller's security keys.
pub fn list(account: &dyn Account, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    write_list(&account.list_keys()?, "Name", NO_KEYS, json, out)
}

/// Keys (these, or the SSH keys of `ssh-keys`) as one `Label: value`
/// block each, the label of a key's name being `name`; `none` when there
/// is none; or as a JSON array.
pub(super) fn write_list(
    keys: &[SecurityKey],
    name: &str,
    none: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let text = if json {
        json_line(serde_json::to_string(keys), "the keys")?
    } else if keys.is_empty() {
        format!("{none}\n")
    } else {
        keys.iter()
            .map(|k| block(k, name))
            .collect::<Vec<_>>()
            .join("\n")
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// One key as `Label: value` lines.
fn block(k: &SecurityKey, name: &str) -> String {
    label_lines(&[
        ("ID", one_line(&k.id)),
        (name, one_line(&k.label)),
        ("Added", localtime::format(k.added)),
        (
            "Last used",
            if k.last_used <= 0 {
                "never".to_owned()
            } else {
                localtime::format(k.last_used)
            },
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::FakeAccount;
    use crate::error::Reason;

    fn key(id: &str, label: &str, last_used: i64) -> SecurityKey {
        SecurityKey {
            id: id.into(),
            label: label.into(),
            added: 1_700_000_000,
            last_used,
        }
    }

    fn listed(account: &FakeAccount, json: bool) -> String {
        let mut out = Vec::new();
        assert!(list(account, json, &mut out).is_ok());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn keys_are_listed_one_block_each() {
        let account = FakeAccount::default();
        account.key_lists.borrow_mut().push_back(Ok(vec![
            key("0a1b2c3d", "blue key", 0),
            key("4e5f6a7b", "spare\x1b[2J", 1_700_000_100),
        ]));
        let text = listed(&account, false);
        let blocks: Vec<&str> = text.split("\n\n").collect();
        assert_eq!(blocks.len(), 2, "{text}");
        assert!(blocks[0].starts_with("ID:        0a1b2c3d\n"), "{text}");
        assert!(blocks[0].contains("Name:      blue key\n"), "{text}");
        assert!(blocks[0].contains("Added:     2023-11-1"), "{text}");
        assert!(blocks[0].ends_with("Last used: never"), "{text}");
        // What the daemon sends is shown on one line, without escapes.
        assert!(blocks[1].contains("Name:      spare [2J\n"), "{text}");
        assert!(!blocks[1].contains("never"), "{text}");
        assert_eq!(account.calls(), ["ListKeys"]);
    }

    #[test]
    fn json_is_one_array_line_and_no_key_one_line() {
        let account = FakeAccount::default();
        account
            .key_lists
            .borrow_mut()
            .push_back(Ok(vec![key("0a1b2c3d", "blue key", 0)]));
        assert_eq!(
            listed(&account, true),
            "[{\"id\":\"0a1b2c3d\",\"label\":\"blue key\",\"added\":1700000000,\"last_used\":0}]\n"
        );
        account.key_lists.borrow_mut().push_back(Ok(Vec::new()));
        assert_eq!(listed(&account, false), format!("{NO_KEYS}\n"));
        account.key_lists.borrow_mut().push_back(Ok(Vec::new()));
        assert_eq!(listed(&account, true), "[]\n");
    }

    #[test]
    fn a_refusal_is_passed_on() {
        let account = FakeAccount::default();
        account
            .key_lists
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::Internal, "database busy")));
        let mut out = Vec::new();
        let err = list(&account, false, &mut out).unwrap_err();
        assert_eq!(err.exit_code(), 4);
        assert!(out.is_empty());
    }
}

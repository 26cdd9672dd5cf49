//! `twofactorctl ssh-keys [--json]`: the caller's security-key SSH keys
//! (`enable ssh-key FILE` adds one; `disable ssh-key` removes them all).

use std::io::Write;

use twofactor_proto::types::SshKey;

use super::output::{json_line, label_lines};
use super::write_failure;
use crate::client::Account;
use crate::error::Failure;
use crate::localtime;
use crate::text::one_line;

/// The line when there is no key.
pub const NO_KEYS: &str = "No security keys for SSH.";

/// Lists the caller's security-key SSH keys.
pub fn list(account: &dyn Account, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let keys = account.list_ssh_keys()?;
    let text = if json {
        json_line(serde_json::to_string(&keys), "the keys")?
    } else if keys.is_empty() {
        format!("{NO_KEYS}\n")
    } else {
        keys.iter().map(block).collect::<Vec<_>>().join("\n")
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// One key as `Label: value` lines.
fn block(k: &SshKey) -> String {
    label_lines(&[
        ("ID", one_line(&k.id)),
        ("Key", one_line(&k.label)),
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

    #[test]
    fn keys_are_listed_one_block_each_or_as_json() {
        let key = SshKey {
            id: "0a1b2c3d".into(),
            label: "sk-ssh-ed25519@openssh.com SHA256:abc".into(),
            added: 1_700_000_000,
            last_used: 0,
        };
        let account = FakeAccount::default();
        account
            .ssh_key_lists
            .borrow_mut()
            .push_back(Ok(vec![key.clone()]));
        let mut out = Vec::new();
        assert!(list(&account, false, &mut out).is_ok());
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("0a1b2c3d"), "{text}");
        assert!(
            text.contains("sk-ssh-ed25519@openssh.com SHA256:abc"),
            "{text}"
        );
        assert!(text.contains("never"), "{text}");
        account.ssh_key_lists.borrow_mut().push_back(Ok(vec![key]));
        let mut out = Vec::new();
        assert!(list(&account, true, &mut out).is_ok());
        assert!(String::from_utf8_lossy(&out).starts_with("[{\"id\":\"0a1b2c3d\""));
        account.ssh_key_lists.borrow_mut().push_back(Ok(Vec::new()));
        let mut out = Vec::new();
        assert!(list(&account, false, &mut out).is_ok());
        assert_eq!(String::from_utf8_lossy(&out), format!("{NO_KEYS}\n"));
    }
}

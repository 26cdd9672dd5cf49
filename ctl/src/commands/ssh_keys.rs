//! `twofactorctl ssh-keys [--json]`: the caller's security-key SSH keys
//! (`enable ssh-key FILE` adds one; `disable ssh-key` removes them all).

use std::io::Write;

use crate::client::Account;
use crate::error::Failure;

/// The line when there is no key.
pub const NO_KEYS: &str = "No security keys for SSH.";

/// Lists the caller's security-key SSH keys (as `keys` lists FIDO2 keys,
/// the name being the key's type and fingerprint).
pub fn list(account: &dyn Account, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    super::keys::write_list(&account.list_ssh_keys()?, "Key", NO_KEYS, json, out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::FakeAccount;
    use twofactor_proto::types::SshKey;

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

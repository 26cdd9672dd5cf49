//! `twofactorctl enable ssh-key FILE`: register an OpenSSH security-key
//! public key (`ssh-keygen -t ed25519-sk`, `-t ecdsa-sk`) as a method. An
//! SSH login that proves that key before keyboard-interactive, on an sshd
//! that requires a touch for every key, then needs no code.
//!
//! FILE may also be the key's private file (`id_ed25519_sk`, without a
//! passphrase): a security key's holds no secret, only the key handle that
//! the token needs to find its credential. Then the same credential also
//! serves local logins (console, su, sudo: touch the key), under the
//! relying party OpenSSH gave it (`ssh:`). The file is read here; only the
//! public key and the key handle are sent. Any other private key is refused
//! before anything is sent.
//!
//! Flow: Status → the `--save` FILE is checked (and refused when the user
//! has a method already: no backup codes come then) → FILE read (a regular
//! file of at most 8 KiB) →
//! password (and a current second factor when the account has a method) →
//! EnrollSshKey → "Security key registered (ID …)." → when it is the
//! first method, the first set of backup codes, shown and saved as after
//! `enable app`.

use std::io::{Read, Write};
use std::path::Path;

use zeroize::Zeroizing;

use super::{first_set, no_save_without_a_first_set};
use crate::cli::EnableSshKeyArgs;
use crate::client::Account;
use crate::commands::backup::{self, Here};
use crate::commands::write_failure;
use crate::error::Failure;
use crate::input::Input;
use crate::text::one_line;

/// The longest key file read (an OpenSSH public key line is under 1 KiB).
pub const MAX_FILE_BYTES: u64 = 8 * 1024;
/// How the line on stdout on success starts.
pub const REGISTERED: &str = "Security key registered for SSH logins";
/// Said (stderr) after the registration: where the key counts.
pub const WHERE_IT_COUNTS: &str = "It replaces the code at an SSH login that proves this key \
     first (AuthenticationMethods publickey,keyboard-interactive) on a server that requires \
     a touch (PubkeyAuthOptions touch-required). Elsewhere, use another method or a backup \
     code.";
/// Said (stderr) when the private file was given: the key also counts at
/// local logins.
pub const ALSO_LOCAL: &str = "With its key handle, the same key also counts at local logins \
     (console, su, sudo): touch it when asked.";
/// How a failure to save the first set starts: the key is registered all
/// the same.
const KEY_ON: &str = "the security key is registered";

pub fn run(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    args: &EnableSshKeyArgs,
    here: &Here,
) -> Result<(), Failure> {
    let status = account.status()?;
    no_save_without_a_first_set(&status, &args.save)?;
    backup::check_save(&args.save)?;
    let key = read_key_file(&args.file)?;
    let user = one_line(&status.user);
    let (id, codes) = {
        let proven = crate::commands::proof::ask(account, input, &status)?;
        account.enroll_ssh_key(&key.public_key, &key.key_handle, proven.proof())?
    };
    let codes = Zeroizing::new(codes);
    writeln!(out, "{REGISTERED} (ID {}).", one_line(&id)).map_err(write_failure)?;
    input.tell(WHERE_IT_COUNTS)?;
    if !key.key_handle.is_empty() {
        input.tell(ALSO_LOCAL)?;
    }
    if codes.is_empty() {
        return out.flush().map_err(write_failure);
    }
    first_set(input, out, &args.save, &codes, &here.origin(&user), KEY_ON)
}

/// What is sent of a key file: the public key line, and the key handle
/// when the file was a security key's private file (empty otherwise).
#[derive(Debug, PartialEq, Eq)]
pub struct KeyFile {
    pub public_key: String,
    pub key_handle: Vec<u8>,
}

/// The key file at `path`: a `.pub` file's text as it is, or from a
/// security key's private file (OpenSSH format, no passphrase) its public
/// key line and key handle. Any other private key is refused, and nothing
/// of it is sent.
pub fn read_key_file(path: &Path) -> Result<KeyFile, Failure> {
    let text = Zeroizing::new(read_text(path)?);
    if !text.contains("PRIVATE KEY") {
        return Ok(KeyFile {
            public_key: text.to_string(),
            key_handle: Vec::new(),
        });
    }
    let shown = path.display();
    let refuse = |what: &str| Failure::usage(format!("{shown}: {what}; nothing was sent"));
    if !text.contains("BEGIN OPENSSH PRIVATE KEY") {
        return Err(refuse(
            "this is a private key: give the public key, the file ending in .pub",
        ));
    }
    let key = ssh_key::PrivateKey::from_openssh(text.as_bytes())
        .map_err(|_| refuse("not a readable OpenSSH private key file"))?;
    if key.is_encrypted() {
        return Err(refuse(
            "this key file has a passphrase: give its .pub file (for local logins too, \
             remove the passphrase with `ssh-keygen -p -f FILE`, or register the key with \
             `twofactorctl enable key`)",
        ));
    }
    let key_handle = match key.key_data() {
        ssh_key::private::KeypairData::SkEd25519(k) => k.key_handle().to_vec(),
        ssh_key::private::KeypairData::SkEcdsaSha2NistP256(k) => k.key_handle().to_vec(),
        _ => {
            return Err(refuse(
                "this is the private key of a key that is not a security key's: give a \
                 security key's (ssh-keygen -t ed25519-sk or ecdsa-sk)",
            ))
        }
    };
    let public_key = key
        .public_key()
        .to_openssh()
        .map_err(|_| refuse("its public key cannot be written out"))?;
    Ok(KeyFile {
        public_key,
        key_handle,
    })
}

/// The text of the key file at `path`: a regular file of at most
/// [`MAX_FILE_BYTES`], UTF-8.
fn read_text(path: &Path) -> Result<String, Failure> {
    let shown = path.display();
    let bad = |what: String| Failure::usage(format!("{shown}: {what}; nothing was changed"));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if !meta.is_file() {
        return Err(bad("not a regular file".into()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(bad(format!(
            "longer than {MAX_FILE_BYTES} bytes: not a public key file"
        )));
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_end(&mut bytes))
        .map_err(|e| bad(e.to_string()))?;
    let bytes = Zeroizing::new(bytes);
    String::from_utf8(bytes.to_vec()).map_err(|_| bad("not text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::{here, scripted, status, ten_codes, FakeAccount};

    fn temp(name: &str, text: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("ctl-ssh-key-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join(name);
        assert!(std::fs::write(&path, text).is_ok());
        path
    }

    #[test]
    fn a_private_key_or_a_big_file_is_never_sent() {
        let private = temp(
            "id",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        );
        let e = read_key_file(&private).map(|_| ()).unwrap_err();
        assert!(
            e.message().contains("OpenSSH private key"),
            "{}",
            e.message()
        );
        let big = temp("big.pub", &"a".repeat(MAX_FILE_BYTES as usize + 1));
        assert!(read_key_file(&big).is_err());
        assert!(read_key_file(Path::new("/nonexistent.pub")).is_err());
        assert!(read_key_file(&std::env::temp_dir()).is_err(), "a directory");
        let good = temp("k.pub", "sk-ssh-ed25519@openssh.com AAAA x\n");
        assert_eq!(
            read_key_file(&good).ok(),
            Some(KeyFile {
                public_key: "sk-ssh-ed25519@openssh.com AAAA x\n".into(),
                key_handle: Vec::new(),
            })
        );
        // Another private key (not a security key's), one with a
        // passphrase, and a PEM one: refused, nothing sent.
        for (name, text, says) in [
            (
                "plain",
                include_str!("../../../testdata/plain"),
                "not a security key",
            ),
            (
                "sk_pass",
                include_str!("../../../testdata/sk_pass"),
                "passphrase",
            ),
            (
                "pem",
                "-----BEGIN RSA PRIVATE KEY-----\nMII\n-----END RSA PRIVATE KEY-----\n",
                "give the public key",
            ),
        ] {
            let e = read_key_file(&temp(name, text)).map(|_| ()).unwrap_err();
            assert!(e.message().contains(says), "{name}: {}", e.message());
            assert!(e.message().contains("nothing was sent"), "{}", e.message());
        }
        // Refused before the password: the daemon is asked nothing but
        // Status.
        let account = FakeAccount::with_status(status(&[]));
        let args = EnableSshKeyArgs {
            file: private,
            save: Default::default(),
        };
        let (result, _, _) = scripted(b"secret\n", false, |input, out| {
            run(&account, input, out, &args, &here())
        });
        assert!(result.is_err());
        assert_eq!(account.calls(), vec!["Status".to_string()]);
    }

    #[test]
    fn a_security_keys_private_file_gives_its_public_key_and_key_handle() {
        for (name, text, public) in [
            (
                "sk_plain",
                include_str!("../../../testdata/sk_plain"),
                include_str!("../../../testdata/sk_plain.pub"),
            ),
            (
                "sk_ecdsa",
                include_str!("../../../testdata/sk_ecdsa"),
                include_str!("../../../testdata/sk_ecdsa.pub"),
            ),
        ] {
            let file = read_key_file(&temp(name, text)).unwrap();
            assert_eq!(file.public_key.trim(), public.trim(), "{name}");
            assert!(!file.key_handle.is_empty() && file.key_handle.len() <= 255);
        }
        // Sent with the handle, and the user is told it serves local
        // logins too.
        let account = FakeAccount::with_status(status(&[]));
        account
            .ssh_key_enrolments
            .borrow_mut()
            .push_back(Ok(("0a0b0c0d".into(), Vec::new())));
        let args = EnableSshKeyArgs {
            file: temp("sk_plain", include_str!("../../../testdata/sk_plain")),
            save: Default::default(),
        };
        let (result, _, err) = scripted(b"secret\n", false, |input, out| {
            run(&account, input, out, &args, &here())
        });
        assert!(result.is_ok(), "{result:?}");
        assert!(
            account.calls().iter().any(|c| c
                .starts_with("EnrollSshKey(sk-ssh-ed25519@openssh.com ")
                && c.contains(",handle ")),
            "{:?}",
            account.calls()
        );
        assert!(err.contains("local logins"), "{err}");
    }

    #[test]
    fn a_first_key_brings_backup_codes_and_a_later_one_none() {
        let file = temp("first.pub", "sk-ssh-ed25519@openssh.com AAAA x\n");
        let args = EnableSshKeyArgs {
            file: file.clone(),
            save: Default::default(),
        };
        let account = FakeAccount::with_status(status(&[]));
        account
            .ssh_key_enrolments
            .borrow_mut()
            .push_back(Ok(("0a1b2c3d".into(), ten_codes())));
        let (result, out, said) = scripted(b"secret\n", false, |input, out| {
            run(&account, input, out, &args, &here())
        });
        assert!(result.is_ok(), "{result:?}");
        assert!(
            out.starts_with(&format!("{REGISTERED} (ID 0a1b2c3d).")),
            "{out}"
        );
        assert!(out.contains(&ten_codes()[0]), "{out}");
        assert!(said.contains("touch-required"), "{said}");
        assert_eq!(
            account.calls(),
            vec![
                "Status".to_string(),
                "EnrollSshKey(sk-ssh-ed25519@openssh.com AAAA x\n,secret)".to_string()
            ]
        );
        // A second key: the password and a code, no codes shown.
        let account = FakeAccount::with_status(status(&["app"]));
        account
            .ssh_key_enrolments
            .borrow_mut()
            .push_back(Ok(("0a1b2c3e".into(), Vec::new())));
        let (result, out, _) = scripted(b"secret\n123456\n", false, |input, out| {
            run(&account, input, out, &args, &here())
        });
        assert!(result.is_ok(), "{result:?}");
        assert_eq!(out, format!("{REGISTERED} (ID 0a1b2c3e).\n"));
        assert_eq!(
            account.calls()[1],
            "EnrollSshKey(sk-ssh-ed25519@openssh.com AAAA x\n,secret+123456)"
        );
    }
}

//! What confirms a change to one's own account: the account password, then,
//! once the account has a method, a current second factor: a code from the
//! app, a code sent by email, or a backup code. The daemon checks both (the
//! password first); a user's session or malware running as the user, or
//! someone who only knows the password, cannot take over or remove the
//! second factor. A user who lost every factor asks an administrator for a
//! reset.

use twofactor_proto::names::MAX_PASSWORD_BYTES;
use twofactor_proto::types::method;
use twofactor_proto::AccountStatus;
use zeroize::Zeroizing;

use crate::client::{Account, Proof};
use crate::error::Failure;
use crate::input::{Input, Password};
use crate::text::one_line;

/// Longest code line read (a TOTP code is 6 digits, perhaps with spaces; a
/// backup code 12 letters with separators).
pub const MAX_CODE_BYTES: usize = 64;
// A code read whole is never one the daemon refuses unread.
const _: () = assert!(MAX_CODE_BYTES <= twofactor_proto::names::MAX_ANSWER_BYTES);

/// The question for the code when the account has the app.
pub const APP_CODE_PROMPT: &str =
    "Current code from your authenticator app (or a backup code; Enter: a code by email): ";
/// The question for the code when the app is the only way.
pub const APP_ONLY_CODE_PROMPT: &str =
    "Current code from your authenticator app (or a backup code): ";
/// The question when the account has no method that gives codes here.
pub const BACKUP_CODE_PROMPT: &str = "A backup code: ";

/// The password and the code, wiped when dropped.
pub struct Proven {
    password: Password,
    code: Zeroizing<Vec<u8>>,
}

impl Proven {
    pub fn proof(&self) -> Proof<'_> {
        Proof {
            password: &self.password,
            code: &self.code,
        }
    }
}

/// "Password for USER: "
pub fn password_prompt(status: &AccountStatus) -> String {
    format!("Password for {}: ", one_line(&status.user))
}

/// Asks the password, then (when `status` has a method) a current second
/// factor. With the app, an empty answer sends a code by email instead
/// (when the account has email too); with email alone, a code is sent
/// first.
pub fn ask(
    account: &dyn Account,
    input: &mut Input,
    status: &AccountStatus,
) -> Result<Proven, Failure> {
    let password = input.password(&password_prompt(status), MAX_PASSWORD_BYTES)?;
    let code = if status.methods.is_empty() {
        Zeroizing::new(Vec::new())
    } else {
        ask_code(account, input, status)?
    };
    Ok(Proven { password, code })
}

fn ask_code(
    account: &dyn Account,
    input: &mut Input,
    status: &AccountStatus,
) -> Result<Zeroizing<Vec<u8>>, Failure> {
    let has = |m: &str| status.methods.iter().any(|x| x == m);
    if has(method::APP) {
        let prompt = if has(method::EMAIL) {
            APP_CODE_PROMPT
        } else {
            APP_ONLY_CODE_PROMPT
        };
        let code = input.password(prompt, MAX_CODE_BYTES)?;
        if !code.is_empty() || !has(method::EMAIL) {
            return Ok(code);
        }
    }
    if has(method::EMAIL) {
        let masked = one_line(&account.send_code()?);
        input.tell(&format!("A code was sent to {masked}."))?;
        return input.password(
            &format!("Code sent to {masked} (or a backup code): "),
            MAX_CODE_BYTES,
        );
    }
    input.password(BACKUP_CODE_PROMPT, MAX_CODE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::{scripted, status, FakeAccount};

    fn proof_of(f: &FakeAccount, methods: &[&str], stdin: &[u8]) -> (String, String, String) {
        let mut got = (String::new(), String::new());
        let (r, _, said) = scripted(stdin, true, |input, _| {
            let p = ask(f, input, &status(methods))?;
            got = (
                String::from_utf8_lossy(p.proof().password).into_owned(),
                String::from_utf8_lossy(p.proof().code).into_owned(),
            );
            Ok(())
        });
        r.unwrap();
        (got.0, got.1, said)
    }

    #[test]
    fn a_first_method_needs_only_the_password() {
        let f = FakeAccount::default();
        let (password, code, said) = proof_of(&f, &[], b"pw\n123456\n");
        assert_eq!((password.as_str(), code.as_str()), ("pw", ""));
        assert!(!said.contains("code"), "{said}");
    }

    #[test]
    fn with_the_app_its_code_or_a_backup_code() {
        let f = FakeAccount::default();
        let (password, code, said) = proof_of(&f, &["app"], b"pw\nabcd-efgh-jkmn\n");
        assert_eq!((password.as_str(), code.as_str()), ("pw", "abcd-efgh-jkmn"));
        assert!(said.contains(APP_ONLY_CODE_PROMPT), "{said}");
        assert!(f.calls().is_empty(), "nothing sent: {:?}", f.calls());
    }

    #[test]
    fn with_email_a_code_is_sent_first_or_on_enter_after_the_apps_prompt() {
        let f = FakeAccount::default();
        f.email_sends
            .borrow_mut()
            .push_back(Ok("a***@example.com".into()));
        let (_, code, said) = proof_of(&f, &["email"], b"pw\n424242\n");
        assert_eq!(code, "424242");
        assert!(
            said.contains("A code was sent to a***@example.com."),
            "{said}"
        );
        assert_eq!(f.calls(), ["SendCode"]);

        let f = FakeAccount::default();
        f.email_sends
            .borrow_mut()
            .push_back(Ok("a***@example.com".into()));
        let (_, code, said) = proof_of(&f, &["app", "email"], b"pw\n\n424242\n");
        assert_eq!(code, "424242");
        assert!(said.contains(APP_CODE_PROMPT), "{said}");
        assert_eq!(f.calls(), ["SendCode"]);
    }
}

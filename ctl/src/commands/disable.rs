//! `twofactorctl disable app|email|ssh-key|key ID|key --all|all`: turn
//! methods off, after the account password (and a current second factor)
//! is given again. What was removed is read back from the daemon (status
//! before and after), not assumed. `key ID` removes one security key
//! (`RemoveKey`; the last one is the method); `key --all` is `Disable(key)`.

use std::io::Write;

use super::{describe_all, proof, write_failure};
use crate::cli::{DisableArgs, DisableMethod, WhichKeys};
use crate::client::Account;
use crate::error::Failure;
use crate::input::Input;
use crate::text::one_line;

/// The line after everything was removed.
pub const NOW_OFF: &str = "Two-factor authentication is now off for your account.";

pub fn run(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    args: &DisableArgs,
) -> Result<(), Failure> {
    let one_key = match &args.method {
        DisableMethod::Key(which) => key_to_remove(which)?,
        _ => None,
    };
    let before = account.status()?;
    {
        let proven = proof::ask(account, input, &before)?;
        match one_key {
            Some(id) => account.remove_key(id, proven.proof())?,
            None => account.disable(args.method.wire_name(), proven.proof())?,
        }
    }
    // The change is made; if the status cannot be read back, say what was
    // asked for instead of failing.
    let after = account.status().ok();
    let mut text = String::new();
    if let Some(id) = one_key {
        text.push_str(&format!("Removed the security key {}.\n", one_line(id)));
    } else {
        let removed: Vec<String> = match &after {
            Some(after) => before
                .methods
                .iter()
                .filter(|m| !after.methods.contains(m))
                .cloned()
                .collect(),
            None => match &args.method {
                DisableMethod::All => before.methods.clone(),
                one => vec![one.wire_name().to_owned()],
            },
        };
        if removed.is_empty() {
            text.push_str("Nothing was removed: no such method was active.\n");
        } else {
            text.push_str(&format!("Removed: {}.\n", describe_all(&removed)));
        }
    }
    match after {
        Some(after) if after.methods.is_empty() => text.push_str(&format!("{NOW_OFF}\n")),
        Some(after) => text.push_str(&format!(
            "Still active: {}.\n",
            describe_all(&after.methods)
        )),
        None => {}
    }
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// The one key `disable key` removes, or `None` for --all. An ID spelt
/// `all` is refused, so that every key is removed only when asked for by
/// name (--all).
fn key_to_remove(which: &WhichKeys) -> Result<Option<&str>, Failure> {
    if which.all {
        return Ok(None);
    }
    match which.id.as_deref().map(str::trim) {
        Some(id) if id.eq_ignore_ascii_case("all") => Err(Failure::usage(
            "\"all\" is not a key ID: give --all to remove every security key \
             (nothing was removed)",
        )),
        Some(id) if !id.is_empty() => Ok(Some(id)),
        _ => Err(Failure::usage(
            "give the key's ID (`twofactorctl keys` lists them) or --all \
             (nothing was removed)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::{status, FakeAccount};
    use crate::error::Reason;

    fn run_with(
        fake: &FakeAccount,
        method: DisableMethod,
        stdin: &[u8],
    ) -> (Result<(), Failure>, String) {
        let mut input = Input::scripted(stdin, false);
        let mut out = Vec::new();
        let r = run(fake, &mut input, &mut out, &DisableArgs { method });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn disable_app_reports_what_went() {
        let f = FakeAccount::with_status(status(&["app"]));
        f.disables.borrow_mut().push_back(Ok(()));
        f.statuses.borrow_mut().push_back(Ok(status(&[])));
        let (r, out) = run_with(&f, DisableMethod::App, b"secret pw\n654321\n");
        r.unwrap();
        assert_eq!(out, format!("Removed: authenticator app.\n{NOW_OFF}\n"));
        assert_eq!(
            f.calls(),
            ["Status", "Disable(app,secret pw+654321)", "Status"]
        );
    }

    #[test]
    fn disable_all_sends_all() {
        let f = FakeAccount::with_status(status(&["app"]));
        f.disables.borrow_mut().push_back(Ok(()));
        f.statuses.borrow_mut().push_back(Ok(status(&[])));
        let (r, _) = run_with(&f, DisableMethod::All, b"pw\n654321\n");
        r.unwrap();
        assert_eq!(f.calls()[1], "Disable(all,pw+654321)");
    }

    #[test]
    fn removing_one_of_two_methods_keeps_the_other() {
        for (method, left, said) in [
            (
                DisableMethod::App,
                "email",
                "Removed: authenticator app.\nStill active: codes by email.\n",
            ),
            (
                DisableMethod::Email,
                "app",
                "Removed: codes by email.\nStill active: authenticator app.\n",
            ),
        ] {
            let f = FakeAccount::with_status(status(&["app", "email"]));
            f.disables.borrow_mut().push_back(Ok(()));
            f.statuses.borrow_mut().push_back(Ok(status(&[left])));
            let call = format!("Disable({},pw+654321)", method.wire_name());
            let (r, out) = run_with(&f, method, b"pw\n654321\n");
            r.unwrap();
            assert_eq!(out, said);
            assert_eq!(f.calls(), ["Status", call.as_str(), "Status"]);
        }
    }

    #[test]
    fn status_unreadable_afterwards_still_reports() {
        for (method, said) in [
            (DisableMethod::App, "Removed: authenticator app.\n"),
            (DisableMethod::Email, "Removed: codes by email.\n"),
        ] {
            let f = FakeAccount::with_status(status(&["app", "email"]));
            f.disables.borrow_mut().push_back(Ok(()));
            let (r, out) = run_with(&f, method, b"pw\n654321\n");
            r.unwrap();
            assert_eq!(out, said);
        }
    }

    #[test]
    fn refusal_is_passed_on_and_nothing_printed() {
        let f = FakeAccount::with_status(status(&["app"]));
        f.disables
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::BadPassword, "wrong password")));
        let (r, out) = run_with(&f, DisableMethod::App, b"bad\n654321\n");
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::BadPassword, 1));
        assert!(out.is_empty());
        assert_eq!(f.calls().len(), 2);
    }

    #[test]
    fn mandatory_policy_refusal_shows_the_daemons_explanation() {
        const WHY: &str = "two-factor authentication is mandatory for your account, so its \
                           last method cannot be removed. To move to a new phone, run \
                           `twofactorctl enable app` again (the new app replaces the old one)";
        for (method, had) in [
            (DisableMethod::App, "app"),
            (DisableMethod::Email, "email"),
            (DisableMethod::All, "app"),
        ] {
            let f = FakeAccount::with_status(status(&[had]));
            f.disables
                .borrow_mut()
                .push_back(Err(Failure::new(Reason::PermissionDenied, WHY)));
            // With email alone, the code to confirm with is sent first.
            let sends = usize::from(had == "email");
            if sends == 1 {
                f.email_sends
                    .borrow_mut()
                    .push_back(Ok("a***@example.com".into()));
            }
            let (r, out) = run_with(&f, method, b"pw\n654321\n");
            let err = r.unwrap_err();
            assert_eq!((err.reason, err.exit_code()), (Reason::PermissionDenied, 1));
            assert_eq!(err.message(), WHY);
            assert!(out.is_empty(), "nothing claimed as removed: {out}");
            assert_eq!(f.calls().len(), 2 + sends, "no status read-back");
        }
    }

    fn key(id: Option<&str>, all: bool) -> DisableMethod {
        DisableMethod::Key(WhichKeys {
            id: id.map(str::to_owned),
            all,
        })
    }

    #[test]
    fn disable_key_id_removes_that_key() {
        let f = FakeAccount::with_status(status(&["app", "key"]));
        f.key_removals.borrow_mut().push_back(Ok(()));
        f.statuses
            .borrow_mut()
            .push_back(Ok(status(&["app", "key"])));
        let (r, out) = run_with(&f, key(Some("0a1b2c3d"), false), b"pw\n654321\n");
        r.unwrap();
        assert_eq!(
            out,
            "Removed the security key 0a1b2c3d.\n\
             Still active: authenticator app, security keys.\n"
        );
        assert_eq!(
            f.calls(),
            ["Status", "RemoveKey(0a1b2c3d,pw+654321)", "Status"]
        );
    }

    #[test]
    fn removing_the_last_key_may_turn_2fa_off() {
        let f = FakeAccount::with_status(status(&["key"]));
        f.key_removals.borrow_mut().push_back(Ok(()));
        f.statuses.borrow_mut().push_back(Ok(status(&[])));
        let (r, out) = run_with(&f, key(Some("0a1b2c3d"), false), b"pw\nabcd-efgh-jkmn\n");
        r.unwrap();
        assert_eq!(
            out,
            format!("Removed the security key 0a1b2c3d.\n{NOW_OFF}\n")
        );
        // Status unreadable afterwards: the first line still.
        let f = FakeAccount::with_status(status(&["key"]));
        f.key_removals.borrow_mut().push_back(Ok(()));
        let (r, out) = run_with(&f, key(Some("0a1b2c3d"), false), b"pw\nabcd-efgh-jkmn\n");
        r.unwrap();
        assert_eq!(out, "Removed the security key 0a1b2c3d.\n");
    }

    #[test]
    fn disable_key_all_disables_the_method() {
        let f = FakeAccount::with_status(status(&["app", "key"]));
        f.disables.borrow_mut().push_back(Ok(()));
        f.statuses.borrow_mut().push_back(Ok(status(&["app"])));
        let (r, out) = run_with(&f, key(None, true), b"pw\n654321\n");
        r.unwrap();
        assert_eq!(
            out,
            "Removed: security keys.\nStill active: authenticator app.\n"
        );
        assert_eq!(f.calls(), ["Status", "Disable(key,pw+654321)", "Status"]);
        // Status unreadable afterwards: what was asked for.
        let f = FakeAccount::with_status(status(&["app", "key"]));
        f.disables.borrow_mut().push_back(Ok(()));
        let (r, out) = run_with(&f, key(None, true), b"pw\n654321\n");
        r.unwrap();
        assert_eq!(out, "Removed: security keys.\n");
    }

    #[test]
    fn a_key_id_that_is_not_one_is_refused_before_anything() {
        for id in ["all", "ALL", " ", ""] {
            let f = FakeAccount::with_status(status(&["key"]));
            let (r, out) = run_with(&f, key(Some(id), false), b"pw\n654321\n");
            let err = r.unwrap_err();
            assert_eq!(err.exit_code(), 2, "{id:?}");
            assert!(err.message().contains("--all"), "{}", err.message());
            assert!(f.calls().is_empty(), "{id:?}: {:?}", f.calls());
            assert!(out.is_empty());
        }
    }

    #[test]
    fn an_unknown_key_is_the_daemons_refusal() {
        let f = FakeAccount::with_status(status(&["key"]));
        f.key_removals.borrow_mut().push_back(Err(Failure::new(
            Reason::NotFound,
            "you have no security key \"99\" (`twofactorctl keys` lists them)",
        )));
        let (r, out) = run_with(&f, key(Some("99"), false), b"pw\n654321\n");
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::NotFound, 1));
        assert!(out.is_empty());
        assert_eq!(f.calls(), ["Status", "RemoveKey(99,pw+654321)"]);
    }

    #[test]
    fn no_password_no_call() {
        let f = FakeAccount::with_status(status(&["app"]));
        let (r, _) = run_with(&f, DisableMethod::App, b"");
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert_eq!(f.calls(), ["Status"]);
    }
}

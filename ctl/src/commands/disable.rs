//! `twofactorctl disable app|email|all`: turn methods off, after the account
//! password is given again. What was removed is read back from the daemon
//! (status before and after), not assumed.

use std::io::Write;

use super::{describe_all, proof, write_failure};
use crate::cli::{DisableArgs, DisableMethod};
use crate::client::Account;
use crate::error::Failure;
use crate::input::Input;

/// The line after everything was removed.
pub const NOW_OFF: &str = "Two-factor authentication is now off for your account.";

pub fn run(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    args: &DisableArgs,
) -> Result<(), Failure> {
    let before = account.status()?;
    {
        let proven = proof::ask(account, input, &before)?;
        account.disable(args.method.wire_name(), proven.proof())?;
    }
    // The change is made; if the status cannot be read back, say what was
    // asked for instead of failing.
    let after = account.status().ok();
    let removed: Vec<String> = match &after {
        Some(after) => before
            .methods
            .iter()
            .filter(|m| !after.methods.contains(m))
            .cloned()
            .collect(),
        None => match args.method {
            DisableMethod::All => before.methods.clone(),
            one => vec![one.wire_name().to_owned()],
        },
    };
    let mut text = String::new();
    if removed.is_empty() {
        text.push_str("Nothing was removed: no such method was active.\n");
    } else {
        text.push_str(&format!("Removed: {}.\n", describe_all(&removed)));
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
            let (r, out) = run_with(&f, method, b"pw\n654321\n");
            r.unwrap();
            assert_eq!(out, said);
            let call = format!("Disable({},pw+654321)", method.wire_name());
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

    #[test]
    fn no_password_no_call() {
        let f = FakeAccount::with_status(status(&["app"]));
        let (r, _) = run_with(&f, DisableMethod::App, b"");
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert_eq!(f.calls(), ["Status"]);
    }
}

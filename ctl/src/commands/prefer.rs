//! `twofactorctl prefer app|email|none`: the method a login asks first.
//! twofactord checks that the user has the method; no password is needed,
//! since the choice weakens nothing (every method stays available at the
//! login prompt).

use std::io::Write;

use super::write_failure;
use crate::cli::{PreferArgs, PreferMethod};
use crate::client::Account;
use crate::error::Failure;

/// The line on stdout once the preference is stored.
pub fn done_line(method: PreferMethod) -> &'static str {
    match method {
        PreferMethod::App => "Logins now ask for a code from the authenticator app first.",
        PreferMethod::Email => "Logins now ask for codes by email first.",
        PreferMethod::None => "Logins now ask first for the method you used last.",
    }
}

pub fn run(account: &dyn Account, out: &mut dyn Write, args: &PreferArgs) -> Result<(), Failure> {
    account.set_preferred(args.method.wire_name())?;
    writeln!(out, "{}", done_line(args.method)).map_err(write_failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::FakeAccount;
    use crate::error::Reason;

    fn run_with(fake: &FakeAccount, method: PreferMethod) -> (Result<(), Failure>, String) {
        let mut out = Vec::new();
        let r = run(fake, &mut out, &PreferArgs { method });
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn each_choice_sends_its_wire_name_and_says_what_now_happens() {
        for (method, wire, line) in [
            (
                PreferMethod::App,
                "app",
                "Logins now ask for a code from the authenticator app first.\n",
            ),
            (
                PreferMethod::Email,
                "email",
                "Logins now ask for codes by email first.\n",
            ),
            (
                PreferMethod::None,
                "",
                "Logins now ask first for the method you used last.\n",
            ),
        ] {
            let f = FakeAccount::default();
            f.prefers.borrow_mut().push_back(Ok(()));
            let (r, out) = run_with(&f, method);
            r.unwrap();
            assert_eq!(out, line);
            assert_eq!(f.calls(), [format!("SetPreferred({wire})")]);
        }
    }

    #[test]
    fn a_method_not_enrolled_is_refused_with_the_daemon_text() {
        const WHY: &str = "you have no email method; set it up first (`twofactorctl enable email`)";
        let f = FakeAccount::default();
        f.prefers
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::NotEnrolled, WHY)));
        let (r, out) = run_with(&f, PreferMethod::Email);
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::NotEnrolled, 1));
        assert_eq!(err.message(), WHY);
        assert!(out.is_empty(), "nothing claimed: {out}");
    }

    #[test]
    fn other_refusals_are_passed_on() {
        for (reason, code) in [
            (Reason::InvalidInput, 1),
            (Reason::Unreachable, 3),
            (Reason::Internal, 4),
        ] {
            let f = FakeAccount::default();
            f.prefers
                .borrow_mut()
                .push_back(Err(Failure::new(reason, "no")));
            let (r, out) = run_with(&f, PreferMethod::App);
            assert_eq!(r.unwrap_err().exit_code(), code);
            assert!(out.is_empty());
        }
    }
}

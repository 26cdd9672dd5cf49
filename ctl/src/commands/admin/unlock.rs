//! `twofactorctl admin unlock NAME`: clear a user's lockout and failed
//! attempts.
//!
//! Flow: GetUser (an administrator check that needs no password; also: does
//! the user exist, are they locked) → the password (not for root) → Unlock
//! → one line saying what was cleared.

use std::io::Write;

use super::{count, Me};
use crate::client::Admin;
use crate::commands::write_failure;
use crate::error::Failure;
use crate::input::Input;
use crate::localtime;
use crate::text::one_line;

pub fn run(
    admin: &dyn Admin,
    input: &mut Input,
    out: &mut dyn Write,
    name: &str,
    me: &Me,
    now: i64,
) -> Result<(), Failure> {
    let before = admin.get_user(name)?;
    {
        let password = me.password(input)?;
        admin.unlock(name, &password)?;
    }
    let user = one_line(&before.user);
    let failures = count(before.failures, "failed attempt", "failed attempts");
    let line = if before.locked_until > now {
        format!(
            "Unlocked {user}: the lockout (until {}) and {failures} are cleared; their \
             next login is not delayed.",
            localtime::format(before.locked_until)
        )
    } else if before.failures > 0 {
        format!("Unlocked {user}: {failures} cleared (they were not locked out).")
    } else {
        format!("Unlocked {user}: they were not locked out and had no failed attempts.")
    };
    writeln!(out, "{line}").map_err(write_failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::admin::fake::{carol, denied, report, root, FakeAdmin};
    use crate::error::Reason;
    use twofactor_proto::types::UserReport;

    const NOW: i64 = 1_700_000_000;

    fn run_with(f: &FakeAdmin, me: &Me, stdin: &[u8]) -> (Result<(), Failure>, String, String) {
        let (mut input, seen) = Input::scripted_seen(stdin, false);
        let mut out = Vec::new();
        let r = run(f, &mut input, &mut out, "alice", me, NOW);
        (r, String::from_utf8(out).unwrap(), seen.text())
    }

    fn locked() -> UserReport {
        UserReport {
            failures: 5,
            locked_until: NOW + 60,
            ..report("alice", 1000)
        }
    }

    #[test]
    fn an_admin_gives_their_password() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(locked()));
        f.unlocks.borrow_mut().push_back(Ok(()));
        let (r, out, said) = run_with(&f, &carol(), b"carol pw\n");
        r.unwrap();
        assert_eq!(f.calls(), ["GetUser(alice)", "Unlock(alice,carol pw)"]);
        assert_eq!(said, "Password for carol: ");
        assert_eq!(out.lines().count(), 1);
        assert!(
            out.starts_with("Unlocked alice: the lockout (until "),
            "{out}"
        );
        assert!(out.contains("and 5 failed attempts are cleared"));
    }

    #[test]
    fn root_is_not_asked() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.unlocks.borrow_mut().push_back(Ok(()));
        let (r, out, said) = run_with(&f, &root(), b"");
        r.unwrap();
        assert_eq!(f.calls(), ["GetUser(alice)", "Unlock(alice,)"]);
        assert_eq!(said, "");
        assert_eq!(
            out,
            "Unlocked alice: they were not locked out and had no failed attempts.\n"
        );
    }

    #[test]
    fn failures_without_a_lock() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(UserReport {
            failures: 1,
            ..report("alice", 1000)
        }));
        f.unlocks.borrow_mut().push_back(Ok(()));
        let (r, out, _) = run_with(&f, &root(), b"");
        r.unwrap();
        assert_eq!(
            out,
            "Unlocked alice: 1 failed attempt cleared (they were not locked out).\n"
        );
    }

    #[test]
    fn refusals_before_and_after_the_password() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Err(denied()));
        let (r, out, said) = run_with(&f, &carol(), b"pw\n");
        assert_eq!(r.unwrap_err().exit_code(), 1);
        assert!(out.is_empty() && said.is_empty());
        assert_eq!(f.calls(), ["GetUser(alice)"]);

        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(locked()));
        f.unlocks
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::BadPassword, "wrong password")));
        let (r, out, _) = run_with(&f, &carol(), b"bad\n");
        let e = r.unwrap_err();
        assert_eq!((e.reason, e.exit_code()), (Reason::BadPassword, 1));
        assert!(out.is_empty());

        // No password line: usage, and nothing unlocked.
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(locked()));
        let (r, _, _) = run_with(&f, &carol(), b"");
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert_eq!(f.calls(), ["GetUser(alice)"]);
    }
}

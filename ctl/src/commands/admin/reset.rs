//! `twofactorctl admin reset NAME [--yes]`: remove a user's two-factor
//! methods and make a one-time recovery code, valid for 24 hours.
//!
//! Flow: without --yes, stdin must be a terminal (else exit status 2,
//! before anything) → GetUser (an administrator check that needs no
//! password; also: does the user exist, what do they have) → what will be
//! removed (stderr) → "Reset two-factor authentication of NAME? [y/N]" (not
//! with --yes) → the password (not for root) → Reset → the recovery code and
//! what to do with it (stdout).

use std::io::Write;

use twofactor_proto::types::{Recovery, UserReport};
use zeroize::{Zeroize, Zeroizing};

use super::{count, Me};
use crate::cli::ResetArgs;
use crate::client::Admin;
use crate::commands::{describe_all, write_failure};
use crate::error::{Failure, Reason};
use crate::input::Input;
use crate::localtime;
use crate::text::{one_line, token};

/// Longest answer read at the confirmation question (a local question:
/// not the contract's `names::MAX_ANSWER_BYTES`).
const MAX_CONFIRMATION_BYTES: usize = 64;
/// Start of the line with the recovery code.
pub const CODE_PREFIX: &str = "Recovery code: ";
/// Start of the line with the expiry.
pub const VALID_PREFIX: &str = "Valid until:   ";

/// The recovery code as the daemon sent it, wiped when dropped.
struct Shown(Recovery);

impl Drop for Shown {
    fn drop(&mut self) {
        self.0.code.zeroize();
    }
}

/// The confirmation question.
pub fn question(user: &str) -> String {
    format!("Reset two-factor authentication of {user}? [y/N] ")
}

pub fn run(
    admin: &dyn Admin,
    input: &mut Input,
    out: &mut dyn Write,
    args: &ResetArgs,
    me: &Me,
    now: i64,
) -> Result<(), Failure> {
    if !args.yes && !input.is_interactive() {
        return Err(Failure::usage(
            "stdin is not a terminal: give --yes to reset without the confirmation \
             question (nothing was changed)",
        ));
    }
    let report = admin.get_user(&args.name)?;
    let user = one_line(&report.user);
    if !report.known_to_system {
        return Err(Failure::new(
            Reason::NotFound,
            format!(
                "{user} is not a user of this system (any more); a reset is only for \
                 system users (nothing was changed)"
            ),
        ));
    }
    for line in explanation(&report, now) {
        input.tell(&line)?;
    }
    if !args.yes && !confirmed(input, &user)? {
        return Err(Failure::new(
            Reason::Declined,
            format!("the reset of {user} was not confirmed; nothing was changed"),
        ));
    }
    let recovery = {
        let password = me.password(input)?;
        Shown(admin.reset(&args.name, &password)?)
    };
    let text = result_text(&user, &recovery.0, now);
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// What the reset removes, from the user's report (said on stderr before
/// the question). The report does not count trusted devices; the last line
/// says that their trust ends too.
pub fn explanation(r: &UserReport, now: i64) -> Vec<String> {
    let user = one_line(&r.user);
    let mut items = Vec::new();
    if !r.methods.is_empty() {
        items.push(format!("  - their {}", describe_all(&r.methods)));
    }
    if r.backup_codes_left > 0 {
        items.push(format!(
            "  - their {}",
            count(
                r.backup_codes_left,
                "unused backup code",
                "unused backup codes"
            )
        ));
    }
    if r.locked_until > now {
        items.push(format!(
            "  - their lockout (until {}) and {}",
            localtime::format(r.locked_until),
            count(r.failures, "failed attempt", "failed attempts")
        ));
    } else if r.failures > 0 {
        items.push(format!(
            "  - their {}",
            count(r.failures, "failed attempt", "failed attempts")
        ));
    }
    if r.recovery_pending {
        items.push("  - the unused recovery code of an earlier reset".to_owned());
    }
    let mut lines = if items.is_empty() {
        vec![format!(
            "{user} has no method, backup code, lockout or recovery code now: nothing \
             is removed."
        )]
    } else {
        let mut v = vec![format!(
            "Resetting two-factor authentication of {user} removes:"
        )];
        v.extend(items);
        v
    };
    lines.push(format!(
        "Devices {user} trusted (if any) are no longer trusted. A new recovery code lets \
         {user} log in once within 24 hours; they must then set up a new method before \
         that login completes."
    ));
    lines
}

/// Asks the question at the terminal: only `y` or `yes` (any case) goes
/// on; anything else, or Ctrl-D, does not.
fn confirmed(input: &mut Input, user: &str) -> Result<bool, Failure> {
    let answer = input.optional_answer(&question(user), "the answer", MAX_CONFIRMATION_BYTES)?;
    Ok(answer.is_some_and(|a| matches!(a.to_ascii_lowercase().as_str(), "y" | "yes")))
}

/// The code, its expiry and what to do with it.
fn result_text(user: &str, recovery: &Recovery, now: i64) -> Zeroizing<String> {
    let code = Zeroizing::new(token(&recovery.code));
    let left = u64::try_from(recovery.expires.saturating_sub(now)).unwrap_or(0);
    let mut text = Zeroizing::new(String::new());
    text.push_str(&format!("Two-factor authentication of {user} was reset.\n"));
    text.push_str(&format!("{CODE_PREFIX}{}\n", code.as_str()));
    text.push_str(&format!(
        "{VALID_PREFIX}{} (works once; {} from now)\n\n",
        localtime::format(recovery.expires),
        localtime::duration(left)
    ));
    text.push_str(&format!(
        "Give this code to {user} over a secure channel: in person, by phone (once you\n\
         recognise them), or by signed and encrypted mail; never by plain mail or chat.\n\
         It is shown only this once. At the \"Verification code ...:\" prompt of their\n\
         next login, {user} types it instead of a code; it works once, and they must\n\
         then set up a new method before that login completes. A new reset voids it.\n"
    ));
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::admin::fake::{carol, denied, report, root, FakeAdmin};

    const NOW: i64 = 1_700_000_000;
    const CODE: &str = "abcd-efgh-jkmn-pqrs";

    fn alice() -> UserReport {
        UserReport {
            methods: vec!["app".into()],
            backup_codes_left: 7,
            failures: 5,
            locked_until: NOW + 60,
            ..report("alice", 1000)
        }
    }

    fn fake() -> FakeAdmin {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(alice()));
        f.resets.borrow_mut().push_back(Ok(Recovery {
            code: CODE.into(),
            expires: NOW + 86_400,
        }));
        f
    }

    /// Runs the reset: result, stdout, stderr.
    fn run_with(
        f: &FakeAdmin,
        me: &Me,
        stdin: &[u8],
        terminal: bool,
        yes: bool,
    ) -> (Result<(), Failure>, String, String) {
        let (mut input, seen) = Input::scripted_seen(stdin, terminal);
        let mut out = Vec::new();
        let args = ResetArgs {
            name: "alice".into(),
            yes,
        };
        let r = run(f, &mut input, &mut out, &args, me, NOW);
        (r, String::from_utf8(out).unwrap(), seen.text())
    }

    #[test]
    fn at_a_terminal_explains_asks_then_prints_the_code_once() {
        let f = fake();
        let (r, out, said) = run_with(&f, &carol(), b"y\ncarol pw\n", true, false);
        r.unwrap();
        assert_eq!(f.calls(), ["GetUser(alice)", "Reset(alice,carol pw)"]);
        // Explained, then asked, then the password.
        let removes = said
            .find("Resetting two-factor authentication of alice removes:")
            .unwrap_or_else(|| panic!("{said}"));
        assert!(said.contains("  - their authenticator app\n"), "{said}");
        assert!(said.contains("  - their 7 unused backup codes\n"));
        assert!(said.contains("and 5 failed attempts\n"), "{said}");
        let asked = said.find(&question("alice")).expect("asked");
        let password = said.find("Password for carol: ").expect("password");
        assert!(removes < asked && asked < password, "{said}");
        // stdout: the code exactly once, its expiry, the instructions.
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "Two-factor authentication of alice was reset.");
        assert_eq!(lines[1], format!("{CODE_PREFIX}{CODE}"));
        assert_eq!(
            lines[2],
            format!(
                "{VALID_PREFIX}{} (works once; 24 h from now)",
                localtime::format(NOW + 86_400)
            )
        );
        assert_eq!(out.matches(CODE).count(), 1);
        assert!(out.contains("secure channel: in person, by phone"));
        assert!(out.contains("signed and encrypted mail"));
        assert!(out.contains("\"Verification code ...:\" prompt"));
        assert!(out.contains("set up a new method before that login completes"));
        // Never on stderr.
        assert!(!said.contains(CODE));
    }

    #[test]
    fn root_is_not_asked_for_a_password() {
        let f = fake();
        let (r, out, said) = run_with(&f, &root(), b"yes\n", true, false);
        r.unwrap();
        assert_eq!(f.calls(), ["GetUser(alice)", "Reset(alice,)"]);
        assert!(!said.contains("Password"), "{said}");
        assert!(out.contains(CODE));
    }

    #[test]
    fn anything_but_yes_changes_nothing() {
        for answer in [&b"n\n"[..], b"\n", b"", b"yess\n", b"no\n"] {
            let f = fake();
            let (r, out, said) = run_with(&f, &carol(), answer, true, false);
            let e = r.unwrap_err();
            assert_eq!((e.reason, e.exit_code()), (Reason::Declined, 1));
            assert!(e.message().contains("nothing was changed"));
            assert_eq!(f.calls(), ["GetUser(alice)"]);
            assert!(out.is_empty());
            assert!(!said.contains("Password"));
        }
        let f = fake();
        let (r, _, _) = run_with(&f, &root(), b"YES\n", true, false);
        r.unwrap();
    }

    #[test]
    fn yes_skips_the_question() {
        let f = fake();
        let (r, out, said) = run_with(&f, &carol(), b"carol pw\n", true, true);
        r.unwrap();
        assert!(!said.contains("[y/N]"), "{said}");
        assert_eq!(f.calls()[1], "Reset(alice,carol pw)");
        assert!(out.contains(CODE));
    }

    #[test]
    fn a_script_needs_yes() {
        let f = fake();
        let (r, out, said) = run_with(&f, &root(), b"y\n", false, false);
        let e = r.unwrap_err();
        assert_eq!((e.reason, e.exit_code()), (Reason::Usage, 2));
        assert!(e.message().contains("--yes"));
        assert!(f.calls().is_empty(), "nothing asked of the daemon");
        assert!(out.is_empty() && said.is_empty());

        // With --yes: line 1 is the password, nothing else is read.
        let f = fake();
        let (r, out, _) = run_with(&f, &carol(), b"carol pw\n", false, true);
        r.unwrap();
        assert_eq!(f.calls()[1], "Reset(alice,carol pw)");
        assert!(out.contains(CODE));
        let f = fake();
        let (r, _, _) = run_with(&f, &root(), b"", false, true);
        r.unwrap();
        assert_eq!(f.calls()[1], "Reset(alice,)");
    }

    #[test]
    fn a_non_admin_is_refused_before_any_question() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Err(denied()));
        let (r, out, said) = run_with(&f, &carol(), b"y\npw\n", true, false);
        let e = r.unwrap_err();
        assert_eq!((e.reason, e.exit_code()), (Reason::PermissionDenied, 1));
        assert!(out.is_empty() && said.is_empty());
        assert_eq!(f.calls(), ["GetUser(alice)"]);
    }

    #[test]
    fn the_daemons_refusal_is_passed_on() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(alice()));
        f.resets
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::BadPassword, "wrong password")));
        let (r, out, _) = run_with(&f, &carol(), b"bad\n", false, true);
        assert_eq!(r.unwrap_err().reason, Reason::BadPassword);
        assert!(out.is_empty());
    }

    #[test]
    fn a_user_unknown_to_the_system_is_refused() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(UserReport {
            known_to_system: false,
            uid: 0,
            ..alice()
        }));
        let (r, _, _) = run_with(&f, &root(), b"", false, true);
        let e = r.unwrap_err();
        assert_eq!((e.reason, e.exit_code()), (Reason::NotFound, 1));
        assert_eq!(f.calls(), ["GetUser(alice)"]);
    }

    #[test]
    fn explanation_lists_only_what_is_there() {
        let lines = explanation(&report("bob", 1001), NOW);
        assert!(lines[0].starts_with("bob has no method"), "{lines:?}");
        assert_eq!(lines.len(), 2);
        let r = UserReport {
            backup_codes_left: 1,
            failures: 2,
            recovery_pending: true,
            ..report("bob", 1001)
        };
        let lines = explanation(&r, NOW).join("\n");
        assert!(
            lines.contains("  - their 1 unused backup code\n"),
            "{lines}"
        );
        assert!(lines.contains("  - their 2 failed attempts\n"));
        assert!(lines.contains("  - the unused recovery code of an earlier reset\n"));
        assert!(!lines.contains("authenticator app\n"));
    }
}

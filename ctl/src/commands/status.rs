//! `twofactorctl status [--json]`: the two-factor state of the caller's
//! account, as twofactord reports it.

use std::io::Write;

use twofactor_proto::AccountStatus;

use super::{describe_all, describe_last, describe_preferred, write_failure};
use crate::cli::StatusArgs;
use crate::client::Account;
use crate::error::{Failure, Reason};
use crate::localtime;
use crate::text::one_line;

/// The line shown for an account without any method.
pub const NO_METHODS: &str = "none: two-factor authentication is off for your account";

pub fn run(
    account: &dyn Account,
    args: &StatusArgs,
    out: &mut dyn Write,
    now: i64,
) -> Result<(), Failure> {
    let status = account.status()?;
    let text = if args.json {
        let mut json = serde_json::to_string(&status).map_err(|e| {
            Failure::new(
                Reason::Unexpected,
                format!("could not encode the status: {e}"),
            )
        })?;
        json.push('\n');
        json
    } else {
        human(&status, now)
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// The status as aligned `Label: value` lines.
pub fn human(s: &AccountStatus, now: i64) -> String {
    let methods = if s.methods.is_empty() {
        NO_METHODS.to_owned()
    } else {
        describe_all(&s.methods)
    };
    let last_login = if s.last_login <= 0 {
        "never".to_owned()
    } else {
        localtime::format(s.last_login)
    };
    let locked = if s.locked_until > now {
        let wait = u64::try_from(s.locked_until.saturating_sub(now)).unwrap_or(0);
        format!(
            "yes, until {} (another {})",
            localtime::format(s.locked_until),
            localtime::duration(wait)
        )
    } else {
        "no".to_owned()
    };
    let pending = if s.enrolment_pending {
        "yes: a setup was started but not confirmed with a code"
    } else {
        "no"
    };
    let trusted = if s.trusted_devices == 0 {
        "0".to_owned()
    } else {
        format!("{} (`twofactorctl devices` lists them)", s.trusted_devices)
    };
    let rows = [
        ("User", one_line(&s.user)),
        ("Methods", methods),
        ("Backup codes left", s.backup_codes_left.to_string()),
        ("Preferred method", describe_preferred(&s.preferred)),
        ("Last method used", describe_last(&s.last_method)),
        ("Last 2FA login", last_login),
        ("Failed attempts", s.failures.to_string()),
        ("Locked", locked),
        ("Pending enrolment", pending.to_owned()),
        ("Trusted devices", trusted),
    ];
    let mut text = String::new();
    for (label, value) in rows {
        text.push_str(&format!("{:<19}{value}\n", format!("{label}:")));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::FakeAccount;
    use crate::commands::NO_PREFERRED;

    fn alice() -> AccountStatus {
        AccountStatus {
            user: "alice".into(),
            methods: vec!["app".into()],
            preferred: "app".into(),
            last_method: "app".into(),
            last_login: 1_700_000_000,
            failures: 2,
            locked_until: 0,
            enrolment_pending: false,
            backup_codes_left: 7,
            trusted_devices: 0,
        }
    }

    fn run_to_string(status: AccountStatus, json: bool, now: i64) -> String {
        let fake = FakeAccount::with_status(status);
        let mut out = Vec::new();
        run(&fake, &StatusArgs { json }, &mut out, now).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn human_output_shows_every_field() {
        let text = run_to_string(alice(), false, 1_700_000_100);
        assert!(text.contains("User:              alice\n"), "{text}");
        assert!(
            text.contains("Methods:           authenticator app\n"),
            "{text}"
        );
        assert!(text.contains("Preferred method:  authenticator app\n"));
        assert!(text.contains("Last method used:  authenticator app\n"));
        assert!(text.contains("Last 2FA login:    2023-11-1"), "{text}");
        assert!(text.contains("Failed attempts:   2\n"));
        assert!(text.contains("Locked:            no\n"));
        assert!(text.contains("Pending enrolment: no\n"));
        assert!(text.contains("Backup codes left: 7\n"), "{text}");
        assert!(text.contains("Trusted devices:   0\n"), "{text}");
        assert_eq!(text.lines().count(), 10);
    }

    #[test]
    fn no_methods_says_2fa_is_off() {
        let status = AccountStatus {
            user: "bob".into(),
            ..AccountStatus::default()
        };
        let text = run_to_string(status, false, 1_700_000_000);
        assert!(
            text.contains(&format!("Methods:           {NO_METHODS}\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("Preferred method:  {NO_PREFERRED}\n")),
            "{text}"
        );
        assert!(text.contains("Last method used:  none yet\n"));
        assert!(text.contains("Last 2FA login:    never\n"));
        assert!(text.contains("Backup codes left: 0\n"));
    }

    #[test]
    fn email_and_the_preference_are_named_for_people() {
        let status = AccountStatus {
            methods: vec!["app".into(), "email".into()],
            preferred: "email".into(),
            last_method: "backup-code".into(),
            ..alice()
        };
        let text = run_to_string(status, false, 1_700_000_100);
        for line in [
            "Methods:           authenticator app, codes by email\n",
            "Preferred method:  codes by email\n",
            "Last method used:  backup code\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        assert_eq!(text.lines().count(), 10);
    }

    #[test]
    fn json_keeps_the_wire_names() {
        let status = AccountStatus {
            methods: vec!["app".into(), "email".into()],
            preferred: String::new(),
            last_method: "email".into(),
            ..alice()
        };
        let text = run_to_string(status, true, 0);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["methods"], serde_json::json!(["app", "email"]));
        assert_eq!(v["preferred"], "");
        assert_eq!(v["last_method"], "email");
        assert_eq!(v.as_object().unwrap().len(), 10);
    }

    #[test]
    fn lock_and_pending_enrolment() {
        let status = AccountStatus {
            locked_until: 1_700_000_090,
            enrolment_pending: true,
            ..alice()
        };
        let text = run_to_string(status.clone(), false, 1_700_000_000);
        assert!(text.contains("Locked:            yes, until "), "{text}");
        assert!(text.contains("(another 1 min 30 s)"), "{text}");
        assert!(text.contains("Pending enrolment: yes"));
        // A lock that has run out is no lock.
        let text = run_to_string(status, false, 1_700_000_090);
        assert!(text.contains("Locked:            no\n"), "{text}");
    }

    #[test]
    fn json_has_the_status_field_names() {
        let text = run_to_string(alice(), true, 0);
        assert!(text.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["user"], "alice");
        assert_eq!(v["methods"], serde_json::json!(["app"]));
        assert_eq!(v["preferred"], "app");
        assert_eq!(v["last_method"], "app");
        assert_eq!(v["last_login"], 1_700_000_000);
        assert_eq!(v["failures"], 2);
        assert_eq!(v["locked_until"], 0);
        assert_eq!(v["enrolment_pending"], false);
        assert_eq!(v["backup_codes_left"], 7);
        assert_eq!(v["trusted_devices"], 0);
        assert_eq!(v.as_object().unwrap().len(), 10);
    }

    #[test]
    fn trusted_devices_point_to_the_list() {
        let status = AccountStatus {
            trusted_devices: 2,
            ..alice()
        };
        let text = run_to_string(status.clone(), false, 0);
        assert!(
            text.ends_with("Trusted devices:   2 (`twofactorctl devices` lists them)\n"),
            "{text}"
        );
        let text = run_to_string(status, true, 0);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["trusted_devices"], 2);
    }

    #[test]
    fn daemon_text_cannot_break_lines() {
        let status = AccountStatus {
            user: "eve\nMethods: fake\x1b[2J".into(),
            ..AccountStatus::default()
        };
        let text = run_to_string(status, false, 0);
        assert_eq!(text.lines().count(), 10);
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn daemon_failure_is_passed_on() {
        let fake = FakeAccount::default();
        fake.statuses
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::Unreachable, "gone")));
        let mut out = Vec::new();
        let f = run(&fake, &StatusArgs { json: false }, &mut out, 0).unwrap_err();
        assert_eq!(f.exit_code(), 3);
        assert!(out.is_empty());
    }
}

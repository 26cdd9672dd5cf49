//! `twofactorctl admin policy [--json]` and `admin policy mandatory on|off
//! [--groups G1,G2] [--from YYYY-MM-DD]`: the mandatory-2FA policy.
//!
//! Setting it: the options are checked here first (exit status 2, so that a
//! typo in a group name never silently leaves people out), then GetPolicy
//! (an administrator check that needs no password), then the password
//! (not for root), SetPolicy, and what is now in force, read back.

use std::io::Write;

use twofactor_proto::group::{self, MAX_NAME_BYTES, MAX_POLICY_GROUPS};
use twofactor_proto::types::Policy;

use super::{json_line, label_lines, Me};
use crate::cli::{MandatoryArgs, OnOff};
use crate::client::Admin;
use crate::commands::write_failure;
use crate::error::Failure;
use crate::input::Input;
use crate::localtime;
use crate::text::one_line;

/// The first line after a change.
pub const SAVED: &str = "Policy saved. Now in force:";

pub fn show(admin: &dyn Admin, json: bool, out: &mut dyn Write, now: i64) -> Result<(), Failure> {
    let policy = admin.get_policy()?;
    let text = if json {
        json_line(serde_json::to_string(&policy), "the policy")?
    } else {
        human(&policy, now)
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

pub fn set(
    admin: &dyn Admin,
    input: &mut Input,
    out: &mut dyn Write,
    args: &MandatoryArgs,
    me: &Me,
    group_exists: &dyn Fn(&str) -> Result<bool, String>,
    now: i64,
) -> Result<(), Failure> {
    let groups = match &args.groups {
        Some(text) => parse_groups(text, group_exists)?,
        None => Vec::new(),
    };
    let from = match &args.from {
        Some(text) => parse_date(text)?,
        None => String::new(),
    };
    let mandatory = args.state == OnOff::On;
    admin.get_policy()?;
    {
        let password = me.password(input)?;
        admin.set_policy(mandatory, &groups, &from, &password)?;
    }
    // The change is made; if it cannot be read back, show what was sent.
    let now_in_force = admin.get_policy().unwrap_or_else(|_| Policy {
        mandatory,
        groups,
        from,
        updated_by: me.name.clone(),
        updated_at: now,
    });
    let text = format!("{SAVED}\n{}", human(&now_in_force, now));
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// The policy as aligned `Label: value` lines: Mandatory, Applies to, From,
/// Set by.
pub fn human(p: &Policy, now: i64) -> String {
    let mandatory = if p.mandatory {
        "on".to_owned()
    } else {
        "off (nobody must use two-factor authentication; users who have a method are \
         still asked for a code)"
            .to_owned()
    };
    let applies_to = if p.groups.is_empty() {
        "everyone".to_owned()
    } else {
        format!("members of {}", one_line(&p.groups.join(", ")))
    };
    let from = if p.from.is_empty() {
        "now".to_owned()
    } else {
        let day = one_line(&p.from);
        let today = localtime::date(now).unwrap_or_default();
        match (p.mandatory, today.as_str() < day.as_str()) {
            (true, true) => format!(
                "{day} (announced: until then, users without two-factor authentication \
                 get a reminder at login and are let in)"
            ),
            (true, false) => format!("{day} (in force since then)"),
            (false, _) => day,
        }
    };
    let set_by = if p.updated_by == "config" && p.updated_at == 0 {
        "the configuration file (its initial value; the first `admin policy mandatory` \
         replaces it)"
            .to_owned()
    } else if p.updated_at > 0 {
        format!(
            "{}, {}",
            one_line(&p.updated_by),
            localtime::format(p.updated_at)
        )
    } else {
        one_line(&p.updated_by)
    };
    label_lines(&[
        ("Mandatory", mandatory),
        ("Applies to", applies_to),
        ("From", from),
        ("Set by", set_by),
    ])
}

/// `--groups`: comma-separated names, spaces around them ignored,
/// duplicates dropped. Each must be a valid group name that exists on this
/// system (`exists`; `Err` = the lookup itself failed).
pub fn parse_groups(
    text: &str,
    exists: &dyn Fn(&str) -> Result<bool, String>,
) -> Result<Vec<String>, Failure> {
    let mut groups: Vec<String> = Vec::new();
    for name in text.split(',').map(str::trim) {
        if name.is_empty() {
            return Err(Failure::usage(
                "--groups: an empty group name; write the names separated by commas \
                 (e.g. --groups staff,ops), or leave --groups out for everyone",
            ));
        }
        if !group::is_valid_name(name) {
            return Err(Failure::usage(format!(
                "--groups: {:?} is not a valid group name (letters, digits, '.', '_', \
                 '-', and '$' only at the end; not starting with '-'; not all digits; \
                 at most {MAX_NAME_BYTES} bytes)",
                name.chars().take(MAX_NAME_BYTES).collect::<String>()
            )));
        }
        match exists(name) {
            Ok(true) => {}
            Ok(false) => {
                return Err(Failure::usage(format!(
                    "--groups: there is no group {name:?} on this system"
                )))
            }
            Err(e) => {
                return Err(Failure::usage(format!(
                    "--groups: could not look up group {name:?}: {e}"
                )))
            }
        }
        if !groups.iter().any(|g| g == name) {
            groups.push(name.to_owned());
        }
    }
    if groups.len() > MAX_POLICY_GROUPS {
        return Err(Failure::usage(format!(
            "--groups: at most {MAX_POLICY_GROUPS} groups"
        )));
    }
    Ok(groups)
}

/// `--from`: a real calendar day written `YYYY-MM-DD` (years 1970 to 9999).
pub fn parse_date(text: &str) -> Result<String, Failure> {
    let bad = || {
        Failure::usage(format!(
            "--from: {:?} is not a date; write YYYY-MM-DD, e.g. 2026-12-01",
            text.chars().take(32).collect::<String>()
        ))
    };
    if !twofactor_proto::date::is_calendar_date(text) {
        return Err(bad());
    }
    Ok(text.to_owned())
}

/// Whether the system (NSS) knows a group of this name.
pub fn system_group_exists(name: &str) -> Result<bool, String> {
    nix::unistd::Group::from_name(name)
        .map(|g| g.is_some())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::admin::fake::{carol, denied, root, FakeAdmin};
    use crate::error::Reason;

    /// 2023-11-14 22:13:20 UTC.
    const NOW: i64 = 1_700_000_000;

    fn known(name: &str) -> Result<bool, String> {
        Ok(matches!(name, "staff" | "ops" | "sudo"))
    }

    fn policy(mandatory: bool, groups: &[&str], from: &str) -> Policy {
        Policy {
            mandatory,
            groups: groups.iter().map(|g| g.to_string()).collect(),
            from: from.into(),
            updated_by: "carol".into(),
            updated_at: NOW - 60,
        }
    }

    fn args(state: OnOff, groups: Option<&str>, from: Option<&str>) -> MandatoryArgs {
        MandatoryArgs {
            state,
            groups: groups.map(str::to_owned),
            from: from.map(str::to_owned),
        }
    }

    /// Runs `policy mandatory ...`: result, stdout, stderr.
    fn set_with(
        fake: &FakeAdmin,
        me: &Me,
        stdin: &[u8],
        a: &MandatoryArgs,
    ) -> (Result<(), Failure>, String, String) {
        let (mut input, seen) = Input::scripted_seen(stdin, false);
        let mut out = Vec::new();
        let r = set(fake, &mut input, &mut out, a, me, &known, NOW);
        (r, String::from_utf8(out).unwrap(), seen.text())
    }

    fn shown(p: Policy, json: bool) -> String {
        let fake = FakeAdmin::default();
        fake.policies.borrow_mut().push_back(Ok(p));
        let mut out = Vec::new();
        show(&fake, json, &mut out, NOW).unwrap();
        assert_eq!(fake.calls(), ["GetPolicy"]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn shows_the_four_lines() {
        let text = shown(policy(true, &[], ""), false);
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(text.contains("Mandatory:  on\n"), "{text}");
        assert!(text.contains("Applies to: everyone\n"));
        assert!(text.contains("From:       now\n"));
        assert!(text.contains(&format!(
            "Set by:     carol, {}\n",
            localtime::format(NOW - 60)
        )));
    }

    #[test]
    fn shows_groups_and_dates() {
        let text = shown(policy(true, &["staff", "ops"], "2099-01-01"), false);
        assert!(
            text.contains("Applies to: members of staff, ops\n"),
            "{text}"
        );
        assert!(text.contains("From:       2099-01-01 (announced: until then"));
        let text = shown(policy(true, &[], "2020-01-01"), false);
        assert!(text.contains("From:       2020-01-01 (in force since then)\n"));
        let text = shown(policy(false, &[], "2099-01-01"), false);
        assert!(text.contains("Mandatory:  off (nobody must"), "{text}");
        assert!(text.contains("From:       2099-01-01\n"));
    }

    #[test]
    fn the_config_files_value_is_named() {
        let p = Policy {
            updated_by: "config".into(),
            updated_at: 0,
            ..policy(false, &[], "")
        };
        let text = shown(p, false);
        assert!(
            text.contains("Set by:     the configuration file (its initial value;"),
            "{text}"
        );
    }

    #[test]
    fn json_has_the_policy_fields() {
        let text = shown(policy(true, &["staff"], "2026-12-01"), true);
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["mandatory"], true);
        assert_eq!(v["groups"], serde_json::json!(["staff"]));
        assert_eq!(v["from"], "2026-12-01");
        assert_eq!(v["updated_by"], "carol");
        assert_eq!(v["updated_at"], NOW - 60);
        assert_eq!(v.as_object().unwrap().len(), 5);
    }

    #[test]
    fn root_sets_without_a_password_and_sees_the_result() {
        let fake = FakeAdmin::default();
        fake.policies
            .borrow_mut()
            .push_back(Ok(policy(false, &[], "")));
        fake.set_policies.borrow_mut().push_back(Ok(()));
        fake.policies
            .borrow_mut()
            .push_back(Ok(policy(true, &["staff", "ops"], "2099-01-01")));
        let a = args(OnOff::On, Some("staff, ops,staff"), Some("2099-01-01"));
        let (r, out, said) = set_with(&fake, &root(), b"", &a);
        r.unwrap();
        assert_eq!(
            fake.calls(),
            [
                "GetPolicy",
                "SetPolicy(true,[staff,ops],2099-01-01,)",
                "GetPolicy"
            ]
        );
        assert!(!said.contains("Password"), "{said}");
        let mut lines = out.lines();
        assert_eq!(lines.next(), Some(SAVED));
        assert_eq!(lines.next(), Some("Mandatory:  on"));
        assert_eq!(lines.next(), Some("Applies to: members of staff, ops"));
    }

    #[test]
    fn an_admin_gives_their_password() {
        let fake = FakeAdmin::default();
        fake.policies
            .borrow_mut()
            .push_back(Ok(policy(true, &[], "")));
        fake.set_policies.borrow_mut().push_back(Ok(()));
        fake.policies
            .borrow_mut()
            .push_back(Ok(policy(false, &[], "")));
        let (r, out, said) = set_with(
            &fake,
            &carol(),
            b"carol pw\n",
            &args(OnOff::Off, None, None),
        );
        r.unwrap();
        assert_eq!(fake.calls()[1], "SetPolicy(false,[],,carol pw)");
        assert!(said.contains("Password for carol: "));
        assert!(out.contains("Mandatory:  off"));
    }

    #[test]
    fn off_keeps_the_groups_and_date_given() {
        let fake = FakeAdmin::default();
        fake.policies
            .borrow_mut()
            .push_back(Ok(policy(true, &[], "")));
        fake.set_policies.borrow_mut().push_back(Ok(()));
        let a = args(OnOff::Off, Some("sudo"), Some("2027-02-28"));
        let (r, out, _) = set_with(&fake, &root(), b"", &a);
        r.unwrap();
        assert_eq!(fake.calls()[1], "SetPolicy(false,[sudo],2027-02-28,)");
        // Read-back failed (unscripted): what was sent is shown.
        assert!(out.contains("Applies to: members of sudo\n"), "{out}");
        assert!(out.contains("Set by:     root, "));
    }

    #[test]
    fn bad_options_are_refused_before_anything() {
        for a in [
            args(OnOff::On, Some("stafff"), None),
            args(OnOff::On, Some("staff,"), None),
            args(OnOff::On, Some(""), None),
            args(OnOff::On, Some("a b"), None),
            args(OnOff::On, Some("-x"), None),
            args(OnOff::On, Some("1000"), None),
            args(OnOff::On, Some("st$ff"), None),
            args(OnOff::On, Some(".."), None),
            args(OnOff::On, None, Some("2026-02-29")),
            args(OnOff::On, None, Some("2026-13-01")),
            args(OnOff::On, None, Some("2026-1-01")),
            args(OnOff::Off, None, Some("tomorrow")),
            args(OnOff::On, None, Some("1969-12-31")),
        ] {
            let fake = FakeAdmin::default();
            let (r, out, said) = set_with(&fake, &carol(), b"pw\n", &a);
            let f = r.unwrap_err();
            assert_eq!(f.exit_code(), 2, "{a:?}");
            assert!(
                f.message().starts_with("--groups: ") || f.message().starts_with("--from: "),
                "{}",
                f.message()
            );
            assert!(fake.calls().is_empty(), "{a:?}");
            assert!(out.is_empty() && said.is_empty());
        }
        let f = parse_groups("stafff", &known).unwrap_err();
        assert_eq!(
            f.message(),
            "--groups: there is no group \"stafff\" on this system"
        );
        let f = parse_groups("staff", &|_| Err("NSS down".into())).unwrap_err();
        assert!(f.message().contains("NSS down"));
    }

    #[test]
    fn group_names_follow_the_contracts_rule() {
        let any = |_: &str| Ok(true);
        for name in ["1000", "st$ff", "..", "-x", "a b"] {
            let f = parse_groups(name, &any).unwrap_err();
            assert!(
                f.message().contains("is not a valid group name"),
                "{name}: {}",
                f.message()
            );
            assert!(!group::is_valid_name(name), "{name}");
        }
        assert_eq!(
            parse_groups("wheel$, ops ,ops", &any).unwrap(),
            ["wheel$", "ops"]
        );
    }

    #[test]
    fn at_most_the_contracts_number_of_groups() {
        let any = |_: &str| Ok(true);
        let names = |n: usize| {
            (0..n)
                .map(|i| format!("g{i}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            parse_groups(&names(MAX_POLICY_GROUPS), &any).unwrap().len(),
            MAX_POLICY_GROUPS
        );
        let f = parse_groups(&names(MAX_POLICY_GROUPS + 1), &any).unwrap_err();
        assert_eq!(f.exit_code(), 2);
        assert_eq!(f.message(), "--groups: at most 256 groups");
    }

    #[test]
    fn good_dates() {
        for d in [
            "2028-02-29",
            "2000-02-29",
            "1970-01-01",
            "9999-12-31",
            "2026-04-30",
        ] {
            assert_eq!(parse_date(d).unwrap(), d);
        }
        for d in [
            "1900-02-29",
            "2026-02-31",
            "2027-02-29",
            "2100-02-29",
            "2026-04-31",
            "2026-11-31",
            "2026-00-10",
            "2026-01-00",
            "２０２６-01-01",
        ] {
            assert!(parse_date(d).is_err(), "{d}");
        }
    }

    #[test]
    fn a_non_admin_is_refused_before_the_password() {
        let fake = FakeAdmin::default();
        fake.policies.borrow_mut().push_back(Err(denied()));
        let (r, out, said) = set_with(&fake, &carol(), b"pw\n", &args(OnOff::On, None, None));
        let f = r.unwrap_err();
        assert_eq!((f.reason, f.exit_code()), (Reason::PermissionDenied, 1));
        assert!(f.message().contains("administrators only"));
        assert_eq!(fake.calls(), ["GetPolicy"]);
        assert!(out.is_empty());
        assert!(!said.contains("Password"));
    }

    #[test]
    fn a_wrong_password_changes_nothing_shown() {
        let fake = FakeAdmin::default();
        fake.policies
            .borrow_mut()
            .push_back(Ok(policy(false, &[], "")));
        fake.set_policies
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::BadPassword, "wrong password")));
        let (r, out, _) = set_with(&fake, &carol(), b"bad\n", &args(OnOff::On, None, None));
        assert_eq!(r.unwrap_err().reason, Reason::BadPassword);
        assert!(out.is_empty());
        assert_eq!(fake.calls().len(), 2);
    }
}

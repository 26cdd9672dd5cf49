//! `twofactorctl admin users [--json]` and `admin user NAME [--json]`: the
//! two-factor state of the system's users, as twofactord reports it (for
//! one user, with their trusted devices). Reading needs no password.

use std::io::Write;

use twofactor_proto::types::{Device, SshKey, UserReport};

use super::{json_line, label_lines};
use crate::client::Admin;
use crate::commands::devices::blocks;
use crate::commands::{describe_all, describe_last, describe_preferred, write_failure};
use crate::error::Failure;
use crate::localtime;
use crate::text::one_line;

/// The column headers of `admin users`.
pub const HEADERS: [&str; 10] = [
    "USER",
    "UID",
    "2FA",
    "BACKUP",
    "PREFERRED",
    "POLICY",
    "LAST 2FA LOGIN",
    "HOST",
    "LOCKED",
    "RECOVERY",
];

/// Appended to the name of a user the system no longer knows.
pub const UNKNOWN_MARK: &str = "*";
/// The footnote under the table when a user is marked.
pub const UNKNOWN_NOTE: &str =
    "* not a user of this system (any more); twofactord still holds data about them";

pub fn list(admin: &dyn Admin, json: bool, out: &mut dyn Write, now: i64) -> Result<(), Failure> {
    let reports = admin.list_users()?;
    let text = if json {
        json_line(serde_json::to_string(&reports), "the users")?
    } else {
        table(&reports, now)
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

pub fn show(
    admin: &dyn Admin,
    name: &str,
    json: bool,
    out: &mut dyn Write,
    now: i64,
) -> Result<(), Failure> {
    let report = admin.get_user(name)?;
    let devices = admin.list_devices(name)?;
    let keys = admin.list_keys(name)?;
    let text = if json {
        json_line(
            with_devices(&report, &devices, &keys).and_then(|v| serde_json::to_string(&v)),
            "the user",
        )?
    } else {
        let mut text = details(&report, &devices, now);
        text.push_str(&key_lines(&keys));
        text
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// The users as a table with a header line, columns separated by at least
/// two spaces; a footnote when a user is not known to the system.
pub fn table(reports: &[UserReport], now: i64) -> String {
    let mut rows: Vec<Vec<String>> = vec![HEADERS.iter().map(|h| h.to_string()).collect()];
    for r in reports {
        let mut user = one_line(&r.user);
        if !r.known_to_system {
            user.push_str(UNKNOWN_MARK);
        }
        rows.push(vec![
            user,
            if r.known_to_system {
                r.uid.to_string()
            } else {
                "-".to_owned()
            },
            if r.methods.is_empty() {
                "-".to_owned()
            } else {
                one_line(&r.methods.join(","))
            },
            r.backup_codes_left.to_string(),
            if r.preferred.is_empty() {
                "-".to_owned()
            } else {
                one_line(&r.preferred)
            },
            yes_no(r.policy_applies).to_owned(),
            last_login(r.last_login),
            if r.last_host.is_empty() {
                "-".to_owned()
            } else {
                one_line(&r.last_host)
            },
            if r.locked_until > now {
                format!("until {}", localtime::format(r.locked_until))
            } else {
                "no".to_owned()
            },
            if r.recovery_pending { "pending" } else { "no" }.to_owned(),
        ]);
    }
    let mut widths = [0usize; HEADERS.len()];
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    for row in &rows {
        let mut line = String::new();
        for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', w - cell.chars().count()));
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    if reports.iter().any(|r| !r.known_to_system) {
        text.push_str(UNKNOWN_NOTE);
        text.push('\n');
    }
    text
}

/// The JSON of `admin user`: the report's fields, `devices`, and `keys`
/// (each with its `method`: `key` or `ssh-key`).
fn with_devices(
    report: &UserReport,
    devices: &[Device],
    keys: &[(String, SshKey)],
) -> Result<serde_json::Value, serde_json::Error> {
    let mut value = serde_json::to_value(report)?;
    if let serde_json::Value::Object(fields) = &mut value {
        fields.insert("devices".to_owned(), serde_json::to_value(devices)?);
        let keys = keys
            .iter()
            .map(|(method, k)| {
                let mut v = serde_json::to_value(k)?;
                if let serde_json::Value::Object(f) = &mut v {
                    f.insert("method".to_owned(), method.clone().into());
                }
                Ok(v)
            })
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        fields.insert("keys".to_owned(), serde_json::Value::Array(keys));
    }
    Ok(value)
}

/// A user's security keys after their details: one line each, what kind,
/// id, name, when added and last used. Nothing when they have none.
pub fn key_lines(keys: &[(String, SshKey)]) -> String {
    if keys.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nSecurity keys:\n");
    for (method, k) in keys {
        let kind = if method == twofactor_proto::types::method::SSH_KEY {
            "over SSH"
        } else {
            "at local logins"
        };
        let used = if k.last_used > 0 {
            localtime::format(k.last_used)
        } else {
            "never".to_owned()
        };
        text.push_str(&format!(
            "  {}  {}  ({kind}; added {}, last used {used})\n",
            one_line(&k.id),
            one_line(&k.label),
            localtime::format(k.added),
        ));
    }
    text
}

/// One user as aligned `Label: value` lines, then their trusted devices
/// (after an empty line).
pub fn details(r: &UserReport, devices: &[Device], now: i64) -> String {
    let uid = if r.known_to_system {
        r.uid.to_string()
    } else {
        "- (not a user of this system; twofactord still holds data about them)".to_owned()
    };
    let methods = if r.methods.is_empty() {
        "none: two-factor authentication is off for this user".to_owned()
    } else {
        describe_all(&r.methods)
    };
    let locked = if r.locked_until > now {
        let wait = u64::try_from(r.locked_until.saturating_sub(now)).unwrap_or(0);
        format!(
            "yes, until {} (another {}); `twofactorctl admin unlock` clears it",
            localtime::format(r.locked_until),
            localtime::duration(wait)
        )
    } else {
        "no".to_owned()
    };
    let recovery = if r.recovery_pending {
        "pending: a reset's recovery code has not been used yet"
    } else {
        "none"
    };
    let trusted = if devices.is_empty() {
        "none".to_owned()
    } else {
        devices.len().to_string()
    };
    let mut text = label_lines(&[
        ("User", one_line(&r.user)),
        ("UID", uid),
        ("Methods", methods),
        ("Backup codes left", r.backup_codes_left.to_string()),
        ("Preferred method", describe_preferred(&r.preferred)),
        ("Last method used", describe_last(&r.last_method)),
        ("Last 2FA login", last_login(r.last_login)),
        (
            "On host",
            if r.last_host.is_empty() {
                "-".to_owned()
            } else {
                one_line(&r.last_host)
            },
        ),
        ("Failed attempts", r.failures.to_string()),
        ("Locked", locked),
        ("Policy applies", yes_no(r.policy_applies).to_owned()),
        ("Recovery code", recovery.to_owned()),
        ("Trusted devices", trusted),
    ]);
    if !devices.is_empty() {
        text.push('\n');
        text.push_str(&blocks(devices));
    }
    text
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn last_login(ts: i64) -> String {
    if ts <= 0 {
        "never".to_owned()
    } else {
        localtime::format(ts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::admin::fake::{denied, report, FakeAdmin};
    use crate::commands::devices::tests::{laptop, office};
    use crate::error::Reason;

    const NOW: i64 = 1_700_000_000;

    fn alice() -> UserReport {
        UserReport {
            methods: vec!["app".into()],
            backup_codes_left: 7,
            preferred: "app".into(),
            last_method: "app".into(),
            last_login: NOW - 3600,
            last_host: "web1".into(),
            failures: 3,
            locked_until: NOW + 90,
            policy_applies: true,
            ..report("alice", 1000)
        }
    }

    fn gone() -> UserReport {
        UserReport {
            user: "olduser".into(),
            methods: vec!["app".into()],
            last_login: NOW - 86_400,
            recovery_pending: true,
            ..UserReport::default()
        }
    }

    #[test]
    fn a_users_keys_are_shown_with_their_kind_and_in_the_json() {
        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Ok(alice()));
        fake.device_lists.borrow_mut().push_back(Ok(vec![]));
        let key = |id: &str, label: &str| SshKey {
            id: id.into(),
            label: label.into(),
            added: NOW - 60,
            last_used: 0,
        };
        fake.key_lists.borrow_mut().push_back(Ok(vec![
            ("key".into(), key("k1", "blue key")),
            (
                "ssh-key".into(),
                key("s1", "sk-ssh-ed25519@openssh.com SHA256:x"),
            ),
        ]));
        let mut out = Vec::new();
        show(&fake, "alice", false, &mut out, NOW).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("Security keys:"), "{text}");
        assert!(text.contains("k1  blue key  (at local logins;"), "{text}");
        assert!(
            text.contains("s1  sk-ssh-ed25519@openssh.com SHA256:x  (over SSH;"),
            "{text}"
        );
        assert!(text.contains("last used never"), "{text}");

        fake.users.borrow_mut().push_back(Ok(alice()));
        fake.device_lists.borrow_mut().push_back(Ok(vec![]));
        fake.key_lists
            .borrow_mut()
            .push_back(Ok(vec![("key".into(), key("k1", "blue key"))]));
        let mut out = Vec::new();
        show(&fake, "alice", true, &mut out, NOW).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["keys"][0]["method"], "key");
        assert_eq!(v["keys"][0]["label"], "blue key");
        // Without keys: no section at all.
        assert!(key_lines(&[]).is_empty());
    }

    fn listed(reports: Vec<UserReport>, json: bool) -> String {
        let fake = FakeAdmin::default();
        fake.user_lists.borrow_mut().push_back(Ok(reports));
        let mut out = Vec::new();
        list(&fake, json, &mut out, NOW).unwrap();
        assert_eq!(fake.calls(), ["ListUsers"]);
        String::from_utf8(out).unwrap()
    }

    /// The cells of a table line (columns are separated by 2+ spaces; no
    /// cell of these tests contains two spaces in a row).
    fn cells(line: &str) -> Vec<String> {
        line.split("  ")
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn table_has_a_header_and_a_line_per_user() {
        let text = listed(vec![alice(), report("bob", 1001), gone()], false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(cells(lines[0]), HEADERS, "{text}");
        let a = cells(lines[1]);
        assert_eq!(
            a[..6],
            ["alice", "1000", "app", "7", "app", "yes"],
            "{text}"
        );
        assert_eq!(a[6], localtime::format(NOW - 3600));
        assert_eq!(a[7], "web1");
        assert_eq!(a[8], format!("until {}", localtime::format(NOW + 90)));
        assert_eq!(a[9], "no");
        let b = cells(lines[2]);
        assert_eq!(
            b,
            ["bob", "1001", "-", "0", "-", "no", "never", "-", "no", "no"],
            "{text}"
        );
        let o = cells(lines[3]);
        assert_eq!(o[..2], ["olduser*", "-"], "{text}");
        assert_eq!(o[9], "pending");
        assert_eq!(lines[4], UNKNOWN_NOTE);
        assert_eq!(lines.len(), 5);
        // Columns line up: each header starts where its cells start.
        let col = lines[0].find("LAST 2FA LOGIN").unwrap();
        assert_eq!(
            &lines[1][col..col + 10],
            &localtime::format(NOW - 3600)[..10]
        );
        assert_eq!(&lines[2][col..col + 5], "never");
    }

    #[test]
    fn no_footnote_when_everyone_is_known() {
        let text = listed(vec![report("bob", 1001)], false);
        assert!(!text.contains(UNKNOWN_NOTE));
        assert_eq!(text.lines().count(), 2);
        assert!(!text.lines().any(|l| l.ends_with(' ')));
    }

    #[test]
    fn a_lock_that_ran_out_is_no_lock() {
        let r = UserReport {
            locked_until: NOW,
            ..alice()
        };
        let text = listed(vec![r], false);
        assert_eq!(cells(text.lines().nth(1).unwrap())[8], "no");
    }

    #[test]
    fn json_is_one_array_with_every_field() {
        let text = listed(vec![alice(), gone()], true);
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let a = &v[0];
        assert_eq!(a["user"], "alice");
        assert_eq!(a["uid"], 1000);
        assert_eq!(a["methods"], serde_json::json!(["app"]));
        assert_eq!(a["backup_codes_left"], 7);
        assert_eq!(a["preferred"], "app");
        assert_eq!(a["last_method"], "app");
        assert_eq!(a["last_login"], NOW - 3600);
        assert_eq!(a["locked_until"], NOW + 90);
        assert_eq!(a["failures"], 3);
        assert_eq!(a["policy_applies"], true);
        assert_eq!(a["recovery_pending"], false);
        assert_eq!(a["known_to_system"], true);
        assert_eq!(a["last_host"], "web1");
        assert_eq!(a.as_object().unwrap().len(), 13);
        assert_eq!(v[1]["known_to_system"], false);
        assert_eq!(v[1]["recovery_pending"], true);
    }

    #[test]
    fn names_cannot_break_the_table() {
        let text = listed(vec![report("eve\nalice  1000\x1b[2J", 1002)], false);
        assert_eq!(text.lines().count(), 2);
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn one_user_in_label_lines() {
        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Ok(alice()));
        fake.device_lists.borrow_mut().push_back(Ok(vec![]));
        let mut out = Vec::new();
        show(&fake, "alice", false, &mut out, NOW).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(fake.calls(), ["GetUser(alice)", "ListDevices(alice)"]);
        let labels: Vec<&str> = text.lines().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            labels,
            [
                "User",
                "UID",
                "Methods",
                "Backup codes left",
                "Preferred method",
                "Last method used",
                "Last 2FA login",
                "On host",
                "Failed attempts",
                "Locked",
                "Policy applies",
                "Recovery code",
                "Trusted devices"
            ]
        );
        assert!(text.contains("User:              alice\n"), "{text}");
        assert!(text.contains("UID:               1000\n"));
        assert!(text.contains("Methods:           authenticator app\n"));
        assert!(text.contains("Backup codes left: 7\n"));
        assert!(text.contains("Failed attempts:   3\n"));
        assert!(text.contains("On host:           web1\n"), "{text}");
        assert!(text.contains("Locked:            yes, until "), "{text}");
        assert!(text.contains("(another 1 min 30 s)"));
        assert!(text.contains("Policy applies:    yes\n"));
        assert!(text.contains("Recovery code:     none\n"));
        assert!(text.ends_with("Trusted devices:   none\n"), "{text}");
    }

    #[test]
    fn one_user_with_their_devices() {
        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Ok(alice()));
        fake.device_lists
            .borrow_mut()
            .push_back(Ok(vec![laptop(), office()]));
        let mut out = Vec::new();
        show(&fake, "alice", false, &mut out, NOW).unwrap();
        let text = String::from_utf8(out).unwrap();
        let (user, devices) = text.split_once("\n\n").unwrap();
        assert!(user.ends_with("Trusted devices:   2"), "{text}");
        assert_eq!(devices, blocks(&[laptop(), office()]));
    }

    #[test]
    fn one_user_as_json_lists_the_devices() {
        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Ok(alice()));
        fake.device_lists.borrow_mut().push_back(Ok(vec![office()]));
        let mut out = Vec::new();
        show(&fake, "alice", true, &mut out, NOW).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        // The fields of before are all still there.
        assert_eq!(v["user"], "alice");
        assert_eq!(v["backup_codes_left"], 7);
        // The report's fields, devices and keys.
        assert_eq!(v.as_object().unwrap().len(), 15);
        let devices = v["devices"].as_array().unwrap();
        assert_eq!(devices.len(), 1);
        assert_eq!(devices[0]["id"], "99ff0011");
        assert_eq!(devices[0]["label"], office().label);
        assert_eq!(devices[0]["address"], "192.0.2.7");
        assert_eq!(devices[0]["expires"], office().expires);
    }

    #[test]
    fn email_is_shown_by_its_name() {
        let both = UserReport {
            methods: vec!["app".into(), "email".into()],
            preferred: "email".into(),
            last_method: String::new(),
            ..alice()
        };
        let text = listed(vec![both.clone()], false);
        let a = cells(text.lines().nth(1).unwrap());
        assert_eq!(a[2..5], ["app,email", "7", "email"], "{text}");

        let text = details(&both, &[], NOW);
        for line in [
            "Methods:           authenticator app, codes by email\n",
            "Preferred method:  codes by email\n",
            "Last method used:  none yet\n",
        ] {
            assert!(text.contains(line), "{line}: {text}");
        }
        let none = details(
            &UserReport {
                preferred: String::new(),
                ..both
            },
            &[],
            NOW,
        );
        assert!(none.contains("Preferred method:  none: the one used last\n"));
    }

    #[test]
    fn one_unknown_user_says_so() {
        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Ok(gone()));
        fake.device_lists.borrow_mut().push_back(Ok(vec![]));
        let mut out = Vec::new();
        show(&fake, "olduser", false, &mut out, NOW).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("UID:               - (not a user of this system"));
        assert!(text.contains("Recovery code:     pending"));
        assert!(text.contains("Last 2FA login:    "));
        assert!(text.contains("Locked:            no\n"));
    }

    #[test]
    fn one_user_as_json() {
        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Ok(alice()));
        fake.device_lists.borrow_mut().push_back(Ok(vec![]));
        let mut out = Vec::new();
        show(&fake, "alice", true, &mut out, NOW).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["user"], "alice");
        assert_eq!(v["policy_applies"], true);
        assert_eq!(v["devices"], serde_json::json!([]));
        assert_eq!(v["keys"], serde_json::json!([]));
        assert_eq!(v.as_object().unwrap().len(), 15);
    }

    #[test]
    fn refusals_are_passed_on() {
        let fake = FakeAdmin::default();
        fake.user_lists.borrow_mut().push_back(Err(denied()));
        let mut out = Vec::new();
        let f = list(&fake, false, &mut out, NOW).unwrap_err();
        assert_eq!((f.reason, f.exit_code()), (Reason::PermissionDenied, 1));
        assert!(f.message().contains("administrators only"));
        assert!(out.is_empty());

        let fake = FakeAdmin::default();
        fake.users.borrow_mut().push_back(Err(Failure::new(
            Reason::NotFound,
            "no user \"nobody\" on this system",
        )));
        let f = show(&fake, "nobody", true, &mut out, NOW).unwrap_err();
        assert_eq!((f.reason, f.exit_code()), (Reason::NotFound, 1));
        assert!(out.is_empty());
    }
}

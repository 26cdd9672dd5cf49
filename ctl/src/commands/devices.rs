//! `twofactorctl devices [--json]` and `devices remove ID|--all`: the
//! caller's trusted devices (logins from them are not asked for a code
//! until the trust expires), and removing them after the account password.
//!
//! The showing of devices and the line after a removal are shared with
//! `admin devices` and `admin user`.

use std::io::Write;

use twofactor_proto::types::Device;

use super::output::{count, json_line, label_lines};
use super::write_failure;
use crate::cli::WhichDevices;
use crate::client::Account;
use crate::error::Failure;
use crate::input::Input;
use crate::localtime;
use crate::text::one_line;

/// The line when there is no trusted device.
pub const NO_DEVICES: &str = "No trusted devices.";
/// The line after `remove --all` when there was none.
pub const NONE_TO_REMOVE: &str = "No trusted devices to remove.";

/// Lists the caller's trusted devices.
pub fn list(account: &dyn Account, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let devices = account.list_devices()?;
    write_list(&devices, json, NO_DEVICES, out)
}

/// Writes `devices` as one JSON array line (`json`), or as their blocks,
/// or as the line `none` when there is none.
pub fn write_list(
    devices: &[Device],
    json: bool,
    none: &str,
    out: &mut dyn Write,
) -> Result<(), Failure> {
    let text = if json {
        json_line(serde_json::to_string(devices), "the devices")?
    } else if devices.is_empty() {
        format!("{none}\n")
    } else {
        blocks(devices)
    };
    out.write_all(text.as_bytes()).map_err(write_failure)
}

/// Removes one trusted device or all of them, after the account password.
pub fn remove(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    which: &WhichDevices,
) -> Result<(), Failure> {
    let id = checked_id(which)?;
    let status = account.status()?;
    let removed = {
        let proven = super::proof::ask(account, input, &status)?;
        account.remove_devices(id, proven.proof())?
    };
    writeln!(out, "{}", removed_line(removed, which.all, None)).map_err(write_failure)
}

/// The id to send: `all` only for --all (an ID spelt `all` is refused, so
/// that every device is removed only when asked for by name).
pub fn checked_id(which: &WhichDevices) -> Result<&str, Failure> {
    if !which.all && which.wire_id().eq_ignore_ascii_case("all") {
        return Err(Failure::usage(
            "\"all\" is not a device ID: give --all to remove every trusted device \
             (nothing was removed)",
        ));
    }
    Ok(which.wire_id())
}

/// The line after a removal: `Removed 1 trusted device.`, or with `of`
/// (an administrator's removal) `Removed 1 trusted device of NAME.`
pub fn removed_line(removed: u32, all: bool, of: Option<&str>) -> String {
    match (removed, of) {
        (0, None) if all => NONE_TO_REMOVE.to_owned(),
        (0, Some(user)) if all => format!("{user} has no trusted devices to remove."),
        (0, _) => "No trusted device was removed.".to_owned(),
        (n, None) => format!("Removed {}.", count(n, "trusted device", "trusted devices")),
        (n, Some(user)) => format!(
            "Removed {} of {user}.",
            count(n, "trusted device", "trusted devices")
        ),
    }
}

/// The devices as blocks of `Label: value` lines, separated by an empty
/// line.
pub fn blocks(devices: &[Device]) -> String {
    devices.iter().map(block).collect::<Vec<_>>().join("\n")
}

/// One device as `Label: value` lines; `Address` only when the trust is
/// bound to one.
fn block(d: &Device) -> String {
    let mut rows = vec![
        ("ID", one_line(&d.id)),
        ("Identified by", one_line(&d.label)),
    ];
    if !d.address.is_empty() {
        rows.push(("Address", one_line(&d.address)));
    }
    rows.push(("Added", localtime::format(d.added)));
    rows.push((
        "Last used",
        if d.last_used <= 0 {
            "never".to_owned()
        } else {
            localtime::format(d.last_used)
        },
    ));
    rows.push(("Expires", localtime::format(d.expires)));
    label_lines(&rows)
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use crate::commands::fake::{scripted, FakeAccount};
    use crate::error::Reason;
    use twofactor_proto::AccountStatus;

    const ADDED: i64 = 1_700_000_000;

    pub fn laptop() -> Device {
        Device {
            id: "1a2b3c4d".into(),
            label: "ssh-ed25519 SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcde".into(),
            address: String::new(),
            added: ADDED,
            last_used: 0,
            expires: ADDED + 30 * 86_400,
        }
    }

    pub fn office() -> Device {
        Device {
            id: "99ff0011".into(),
            label: "ssh-rsa SHA256:ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210-_zyxwv".into(),
            address: "192.0.2.7".into(),
            added: ADDED + 100,
            last_used: ADDED + 3600,
            expires: ADDED + 100 + 7 * 86_400,
        }
    }

    fn listed(devices: Vec<Device>, json: bool) -> String {
        let f = FakeAccount::default();
        f.device_lists.borrow_mut().push_back(Ok(devices));
        let mut out = Vec::new();
        list(&f, json, &mut out).unwrap();
        assert_eq!(f.calls(), ["ListDevices"]);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn no_devices_is_one_line() {
        assert_eq!(listed(vec![], false), "No trusted devices.\n");
    }

    #[test]
    fn each_device_is_a_block() {
        let text = listed(vec![laptop(), office()], false);
        let want = format!(
            "ID:            1a2b3c4d\n\
             Identified by: ssh-ed25519 SHA256:AbCdEfGhIjKlMnOpQrStUvWxYz0123456789+/abcde\n\
             Added:         {}\n\
             Last used:     never\n\
             Expires:       {}\n\
             \n\
             ID:            99ff0011\n\
             Identified by: ssh-rsa SHA256:ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210-_zyxwv\n\
             Address:       192.0.2.7\n\
             Added:         {}\n\
             Last used:     {}\n\
             Expires:       {}\n",
            localtime::format(ADDED),
            localtime::format(ADDED + 30 * 86_400),
            localtime::format(ADDED + 100),
            localtime::format(ADDED + 3600),
            localtime::format(ADDED + 100 + 7 * 86_400),
        );
        assert_eq!(text, want);
    }

    #[test]
    fn daemon_text_cannot_break_the_lines() {
        let evil = Device {
            label: "ssh-ed25519 x\nID: fake\x1b[2J".into(),
            address: "192.0.2.7\r\nExpires: never".into(),
            ..laptop()
        };
        let text = listed(vec![evil], false);
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(!text.contains('\x1b'));
    }

    #[test]
    fn json_is_an_array_of_devices() {
        let text = listed(vec![laptop(), office()], true);
        assert!(text.ends_with('\n'));
        assert_eq!(text.lines().count(), 1);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        let d = &v[1];
        assert_eq!(d["id"], "99ff0011");
        assert_eq!(
            d["label"],
            "ssh-rsa SHA256:ZyXwVuTsRqPoNmLkJiHgFeDcBa9876543210-_zyxwv"
        );
        assert_eq!(d["address"], "192.0.2.7");
        assert_eq!(d["added"], ADDED + 100);
        assert_eq!(d["last_used"], ADDED + 3600);
        assert_eq!(d["expires"], ADDED + 100 + 7 * 86_400);
        assert_eq!(d.as_object().unwrap().len(), 6);
        assert_eq!(v[0]["last_used"], 0);
        assert_eq!(v[0]["address"], "");
        assert_eq!(listed(vec![], true), "[]\n");
    }

    #[test]
    fn list_failure_is_passed_on() {
        let f = FakeAccount::default();
        f.device_lists
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::Unreachable, "gone")));
        let mut out = Vec::new();
        assert_eq!(list(&f, false, &mut out).unwrap_err().exit_code(), 3);
        assert!(out.is_empty());
    }

    /// `remove ID`.
    pub fn one(id: &str) -> WhichDevices {
        WhichDevices {
            id: Some(id.into()),
            all: false,
        }
    }

    /// `remove --all`.
    pub fn every() -> WhichDevices {
        WhichDevices {
            id: None,
            all: true,
        }
    }

    /// `remove` with `removed` as the daemon's answer and `stdin` as a
    /// script's input: result, stdout, stderr, calls.
    fn removing(
        which: &WhichDevices,
        removed: Result<u32, Failure>,
        stdin: &[u8],
        interactive: bool,
    ) -> (Result<(), Failure>, String, String, Vec<String>) {
        let f = FakeAccount::with_status(AccountStatus {
            user: "alice".into(),
            ..AccountStatus::default()
        });
        f.device_removals.borrow_mut().push_back(removed);
        let (r, out, said) = scripted(stdin, interactive, |input, out| {
            remove(&f, input, out, which)
        });
        (r, out, said, f.calls())
    }

    #[test]
    fn remove_one_asks_the_password() {
        let (r, out, said, calls) = removing(&one("1a2b3c4d"), Ok(1), b"alice pw\n", false);
        r.unwrap();
        assert_eq!(out, "Removed 1 trusted device.\n");
        assert_eq!(said, "Password for alice: ");
        assert_eq!(calls, ["Status", "RemoveDevices(1a2b3c4d,alice pw)"]);
    }

    #[test]
    fn remove_all_sends_all() {
        let (r, out, _, calls) = removing(&every(), Ok(3), b"pw\n", false);
        r.unwrap();
        assert_eq!(out, "Removed 3 trusted devices.\n");
        assert_eq!(calls[1], "RemoveDevices(all,pw)");
    }

    #[test]
    fn remove_all_with_none_says_so() {
        let (r, out, _, _) = removing(&every(), Ok(0), b"pw\n", false);
        r.unwrap();
        assert_eq!(out, format!("{NONE_TO_REMOVE}\n"));
    }

    #[test]
    fn script_reads_only_line_1() {
        let (r, _, _, calls) = removing(&one("1a2b3c4d"), Ok(1), b"pw\r\nnext line\n", false);
        r.unwrap();
        assert_eq!(calls[1], "RemoveDevices(1a2b3c4d,pw)");
        // No password line: usage, nothing removed.
        let (r, out, _, calls) = removing(&one("1a2b3c4d"), Ok(1), b"", false);
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert!(out.is_empty());
        assert_eq!(calls, ["Status"]);
    }

    #[test]
    fn unknown_id_and_bad_password_are_refusals() {
        for (failure, reason) in [
            (
                Failure::new(Reason::NotFound, "no trusted device with id \"0bad\""),
                Reason::NotFound,
            ),
            (
                Failure::new(Reason::BadPassword, "wrong password"),
                Reason::BadPassword,
            ),
            (
                Failure::new(Reason::InvalidInput, "a device id is the hex id"),
                Reason::InvalidInput,
            ),
            (
                Failure::new(Reason::RateLimited, "too many failed attempts"),
                Reason::RateLimited,
            ),
        ] {
            let text = failure.message().to_owned();
            let (r, out, _, calls) = removing(&one("0bad"), Err(failure), b"pw\n", false);
            let e = r.unwrap_err();
            assert_eq!((e.reason, e.exit_code()), (reason, 1));
            assert_eq!(e.message(), text);
            assert!(out.is_empty(), "{out}");
            assert_eq!(calls, ["Status", "RemoveDevices(0bad,pw)"]);
        }
    }

    #[test]
    fn an_id_spelt_all_is_not_all() {
        for id in ["all", "ALL"] {
            let (r, _, said, calls) = removing(&one(id), Ok(3), b"pw\n", false);
            let e = r.unwrap_err();
            assert_eq!(e.exit_code(), 2);
            assert!(e.message().contains("--all"), "{}", e.message());
            assert!(calls.is_empty() && said.is_empty());
        }
    }

    #[test]
    fn removed_lines() {
        assert_eq!(removed_line(1, false, None), "Removed 1 trusted device.");
        assert_eq!(removed_line(2, true, None), "Removed 2 trusted devices.");
        assert_eq!(removed_line(0, true, None), NONE_TO_REMOVE);
        assert_eq!(
            removed_line(1, false, Some("bob")),
            "Removed 1 trusted device of bob."
        );
        assert_eq!(
            removed_line(0, true, Some("bob")),
            "bob has no trusted devices to remove."
        );
    }
}

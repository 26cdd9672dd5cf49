//! `twofactorctl admin devices NAME [--json]` and `admin devices remove NAME
//! ID|--all`: a user's trusted devices, and removing them.
//!
//! Flow of the list: GetUser (an unknown name is refused rather than shown
//! as having no device) → ListDevices. Flow of a removal: GetUser (an
//! administrator check that needs no password; also: does the user exist)
//! → the password (not for root) → RemoveDevices → one line.

use std::io::Write;

use super::Me;
use crate::cli::WhichDevices;
use crate::client::Admin;
use crate::commands::devices::{checked_id, removed_line, write_list};
use crate::commands::write_failure;
use crate::error::Failure;
use crate::input::Input;
use crate::text::one_line;

pub fn list(admin: &dyn Admin, name: &str, json: bool, out: &mut dyn Write) -> Result<(), Failure> {
    let report = admin.get_user(name)?;
    let devices = admin.list_devices(name)?;
    let none = format!("{} has no trusted devices.", one_line(&report.user));
    write_list(&devices, json, &none, out)
}

pub fn remove(
    admin: &dyn Admin,
    input: &mut Input,
    out: &mut dyn Write,
    name: &str,
    which: &WhichDevices,
    me: &Me,
) -> Result<(), Failure> {
    let id = checked_id(which)?;
    let report = admin.get_user(name)?;
    let removed = {
        let password = me.password(input)?;
        admin.remove_devices(name, id, &password)?
    };
    let user = one_line(&report.user);
    writeln!(out, "{}", removed_line(removed, which.all, Some(&user))).map_err(write_failure)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::admin::fake::{carol, denied, report, root, FakeAdmin};
    use crate::commands::devices::blocks;
    use crate::commands::devices::tests::{every, laptop, office, one};
    use crate::error::Reason;

    fn listed(f: &FakeAdmin, json: bool) -> (Result<(), Failure>, String) {
        let mut out = Vec::new();
        let r = list(f, "alice", json, &mut out);
        (r, String::from_utf8(out).unwrap())
    }

    #[test]
    fn lists_a_users_devices() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.device_lists
            .borrow_mut()
            .push_back(Ok(vec![laptop(), office()]));
        let (r, out) = listed(&f, false);
        r.unwrap();
        assert_eq!(f.calls(), ["GetUser(alice)", "ListDevices(alice)"]);
        assert_eq!(out, blocks(&[laptop(), office()]));
        assert!(out.contains("ID:            99ff0011\n"), "{out}");
    }

    #[test]
    fn no_devices_names_the_user() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.device_lists.borrow_mut().push_back(Ok(vec![]));
        let (r, out) = listed(&f, false);
        r.unwrap();
        assert_eq!(out, "alice has no trusted devices.\n");
    }

    #[test]
    fn json_is_the_array() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.device_lists.borrow_mut().push_back(Ok(vec![office()]));
        let (r, out) = listed(&f, true);
        r.unwrap();
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v.as_array().unwrap().len(), 1);
        assert_eq!(v[0]["id"], "99ff0011");
        assert_eq!(v[0]["address"], "192.0.2.7");
        assert_eq!(v[0].as_object().unwrap().len(), 6);
    }

    #[test]
    fn list_refusals_are_passed_on() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Err(denied()));
        let (r, out) = listed(&f, false);
        assert_eq!(r.unwrap_err().reason, Reason::PermissionDenied);
        assert!(out.is_empty());
        assert_eq!(f.calls(), ["GetUser(alice)"]);

        let f = FakeAdmin::default();
        f.users
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::NotFound, "no user \"alice\"")));
        let (r, _) = listed(&f, true);
        assert_eq!(r.unwrap_err().exit_code(), 1);
        assert_eq!(f.calls(), ["GetUser(alice)"], "unknown: no list asked");
    }

    fn removing(
        f: &FakeAdmin,
        which: WhichDevices,
        me: &Me,
        stdin: &[u8],
    ) -> (Result<(), Failure>, String, String) {
        let (mut input, seen) = Input::scripted_seen(stdin, false);
        let mut out = Vec::new();
        let r = remove(f, &mut input, &mut out, "alice", &which, me);
        (r, String::from_utf8(out).unwrap(), seen.text())
    }

    #[test]
    fn an_admin_gives_their_password() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.device_removals.borrow_mut().push_back(Ok(1));
        let (r, out, said) = removing(&f, one("1a2b3c4d"), &carol(), b"carol pw\n");
        r.unwrap();
        assert_eq!(
            f.calls(),
            ["GetUser(alice)", "RemoveDevices(alice,1a2b3c4d,carol pw)"]
        );
        assert_eq!(said, "Password for carol: ");
        assert_eq!(out, "Removed 1 trusted device of alice.\n");
    }

    #[test]
    fn root_is_not_asked_and_all_is_sent() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.device_removals.borrow_mut().push_back(Ok(4));
        let (r, out, said) = removing(&f, every(), &root(), b"");
        r.unwrap();
        assert_eq!(f.calls(), ["GetUser(alice)", "RemoveDevices(alice,all,)"]);
        assert_eq!(said, "");
        assert_eq!(out, "Removed 4 trusted devices of alice.\n");

        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.device_removals.borrow_mut().push_back(Ok(0));
        let (r, out, _) = removing(&f, every(), &root(), b"");
        r.unwrap();
        assert_eq!(out, "alice has no trusted devices to remove.\n");
    }

    #[test]
    fn refusals_before_and_after_the_password() {
        // Not an administrator: refused before the password.
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Err(denied()));
        let (r, out, said) = removing(&f, one("1a2b3c4d"), &carol(), b"pw\n");
        assert_eq!(r.unwrap_err().exit_code(), 1);
        assert!(out.is_empty() && said.is_empty());
        assert_eq!(f.calls(), ["GetUser(alice)"]);

        for failure in [
            Failure::new(Reason::BadPassword, "wrong password"),
            Failure::new(Reason::NotFound, "no trusted device with id \"0bad\""),
        ] {
            let reason = failure.reason;
            let f = FakeAdmin::default();
            f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
            f.device_removals.borrow_mut().push_back(Err(failure));
            let (r, out, _) = removing(&f, one("0bad"), &carol(), b"pw\n");
            let e = r.unwrap_err();
            assert_eq!((e.reason, e.exit_code()), (reason, 1));
            assert!(out.is_empty());
        }

        // No password line: usage, nothing removed.
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        let (r, _, _) = removing(&f, every(), &carol(), b"");
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert_eq!(f.calls(), ["GetUser(alice)"]);

        // An ID spelt "all": usage, before any call.
        let f = FakeAdmin::default();
        let (r, _, _) = removing(&f, one("all"), &root(), b"");
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert!(f.calls().is_empty());
    }
}

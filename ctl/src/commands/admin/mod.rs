//! `twofactorctl admin ...`: the mandatory policy, who has two-factor
//! authentication, resets with a recovery code, unlocking, trusted devices,
//! and importing google-authenticator files, through `org.twofactor.Admin1`.
//!
//! twofactord decides who is an administrator (uid 0, or a member of its
//! `admin_group`) and checks a non-root administrator's password for every
//! change. The CLI only decides whether to ask for that password: root is
//! never asked (an empty password is sent, which the daemon ignores for
//! root). Before a change, every command makes a read call (which needs no
//! password), so that a caller who is not an administrator, or a name that
//! does not exist, is refused before a password is typed.

pub mod devices;
pub mod import;
pub mod policy;
pub mod reset;
pub mod unlock;
pub mod users;

#[cfg(test)]
pub mod fake;

pub use super::output::{count, json_line, label_lines};
use std::io::Write;

use twofactor_proto::names::MAX_PASSWORD_BYTES;
use zeroize::Zeroizing;

use crate::cli::{AdminCommand, AdminDevicesChange, ImportSource};
use crate::client::Admin;
use crate::error::Failure;
use crate::input::{Input, Password};
use crate::text::one_line;

/// Who runs the command, as far as the CLI needs to know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Me {
    /// The effective uid is 0: no password is asked.
    pub root: bool,
    /// The login name, for the password prompt.
    pub name: String,
}

impl Me {
    /// The process's effective user (the uid the bus reports to the daemon).
    pub fn this_process() -> Me {
        let uid = nix::unistd::geteuid();
        let name = nix::unistd::User::from_uid(uid)
            .ok()
            .flatten()
            .map(|u| one_line(&u.name))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| format!("uid {uid}"));
        Me {
            root: uid.is_root(),
            name,
        }
    }

    /// The password that confirms a change: for root nothing is asked or
    /// read and an empty password is sent; anyone else is asked for their
    /// own account password (echo off at a terminal, else the next line of
    /// stdin).
    pub fn password(&self, input: &mut Input) -> Result<Password, Failure> {
        if self.root {
            return Ok(Zeroizing::new(Vec::new()));
        }
        input.password(&format!("Password for {}: ", self.name), MAX_PASSWORD_BYTES)
    }
}

/// Runs one `admin` subcommand. Questions (only for changes) are read from
/// stdin.
pub fn run(
    admin: &dyn Admin,
    command: AdminCommand,
    out: &mut dyn Write,
    me: &Me,
    now: i64,
) -> Result<(), Failure> {
    match command {
        AdminCommand::Policy(args) => match args.change {
            None => policy::show(admin, args.json, out, now),
            Some(crate::cli::PolicyChange::Mandatory(change)) => {
                let mut input = Input::from_stdin()?;
                policy::set(
                    admin,
                    &mut input,
                    out,
                    &change,
                    me,
                    &policy::system_group_exists,
                    now,
                )
            }
        },
        AdminCommand::Users(args) => users::list(admin, args.json, out, now),
        AdminCommand::User(args) => users::show(admin, &args.name, args.json, out, now),
        AdminCommand::Reset(args) => {
            let mut input = Input::from_stdin()?;
            reset::run(admin, &mut input, out, &args, me, now)
        }
        AdminCommand::Unlock(args) => {
            let mut input = Input::from_stdin()?;
            unlock::run(admin, &mut input, out, &args.name, me, now)
        }
        AdminCommand::Devices(args) => match (args.change, args.name) {
            (Some(AdminDevicesChange::Remove(remove)), _) => {
                let mut input = Input::from_stdin()?;
                devices::remove(admin, &mut input, out, &remove.name, &remove.which, me)
            }
            (None, Some(name)) => devices::list(admin, &name, args.json, out),
            (None, None) => Err(Failure::usage("admin devices: give the user's NAME")),
        },
        AdminCommand::Import(args) => match args.source {
            ImportSource::GoogleAuthenticator(args) => {
                let mut input = Input::from_stdin()?;
                import::google_authenticator(admin, &mut input, out, &args, me)
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_never_asked() {
        let me = Me {
            root: true,
            name: "root".into(),
        };
        let (mut input, seen) = Input::scripted_seen(b"should stay unread\n", false);
        assert!(me.password(&mut input).unwrap().is_empty());
        assert_eq!(seen.text(), "");
        // The line is still there for whoever reads next.
        assert_eq!(
            input.answer("", "x", 64).unwrap().as_str(),
            "should stay unread"
        );
    }

    #[test]
    fn others_give_their_own_password() {
        let me = Me {
            root: false,
            name: "carol".into(),
        };
        let (mut input, seen) = Input::scripted_seen(b"carol's pw\n", false);
        assert_eq!(&me.password(&mut input).unwrap()[..], b"carol's pw");
        assert_eq!(seen.text(), "Password for carol: ");
        let mut input = Input::scripted(b"", false);
        assert_eq!(me.password(&mut input).unwrap_err().exit_code(), 2);
    }

    #[test]
    fn labels_are_aligned() {
        let text = label_lines(&[("User", "alice".into()), ("Backup codes", "3".into())]);
        assert_eq!(text, "User:         alice\nBackup codes: 3\n");
    }

    #[test]
    fn counts() {
        assert_eq!(count(1, "code", "codes"), "1 code");
        assert_eq!(count(0, "code", "codes"), "0 codes");
        assert_eq!(count(5, "code", "codes"), "5 codes");
    }
}

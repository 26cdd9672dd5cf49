//! `twofactorctl admin import google-authenticator NAME [FILE]` and
//! `... --all`: import google-authenticator-libpam files.
//!
//! twofactord reads the files itself (as root, never through a link); the
//! CLI only names them. A relative FILE is made absolute here, since the
//! daemon's working directory is not the caller's.
//!
//! Flow: GetUser(NAME) (or GetPolicy for --all): an administrator check that
//! needs no password, and for one user a check that the user exists → the
//! password (not for root) → the import → a block per user, a summary, and
//! after an import the hint to switch the PAM line. Exit status 1 when a
//! user asked for was not imported.

use std::io::Write;
use std::path::Path;

use twofactor_proto::types::ImportReport;

use super::{count, label_lines, Me};
use crate::cli::GoogleAuthenticatorArgs;
use crate::client::Admin;
use crate::commands::write_failure;
use crate::error::{Failure, Reason};
use crate::input::Input;
use crate::text::one_line;

/// Start of the summary line.
pub const SUMMARY_PREFIX: &str = "Summary: ";

/// How to switch the PAM line, shown after an import.
pub const PAM_HINT: &str = "\
Next, switch the PAM line: in each file of /etc/pam.d that has
  auth required pam_google_authenticator.so ...
replace that line with
  auth required pam_twofactor.so
(same place: after the password step, which must end the stack at a wrong
password: @include common-auth on Debian, or auth requisite pam_unix.so).
Imported users keep their app; the
~/.google_authenticator files are no longer read and can be removed once
logins work. Users without a method pass without a code prompt (as with
pam_google_authenticator's nullok) unless the mandatory policy applies to
them: `twofactorctl admin policy mandatory on` makes it required.";

pub fn google_authenticator(
    admin: &dyn Admin,
    input: &mut Input,
    out: &mut dyn Write,
    args: &GoogleAuthenticatorArgs,
    me: &Me,
) -> Result<(), Failure> {
    let reports = match (&args.name, args.all) {
        (Some(name), false) => {
            let path = match &args.file {
                Some(file) => daemon_path(file)?,
                None => String::new(),
            };
            admin.get_user(name)?;
            let password = me.password(input)?;
            vec![admin.import_google_authenticator(name, &path, &password)?]
        }
        (None, true) => {
            admin.get_policy()?;
            let password = me.password(input)?;
            admin.import_google_authenticator_all(&password)?
        }
        _ => {
            return Err(Failure::usage(
                "name one user (NAME [FILE]) or give --all, not both",
            ))
        }
    };
    let text = report_text(&reports);
    out.write_all(text.as_bytes()).map_err(write_failure)?;
    let refused: Vec<String> = reports
        .iter()
        .filter(|r| !r.imported)
        .map(|r| one_line(&r.user))
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    let why = if refused.len() == 1 {
        "the reason is in its Message line above"
    } else {
        "the reasons are in their Message lines above"
    };
    Err(Failure::new(
        Reason::PartlyDone,
        format!("not imported: {} ({why})", refused.join(", ")),
    ))
}

/// FILE as the daemon should open it: absolute (from the current
/// directory), not resolved (the daemon refuses links itself), UTF-8.
fn daemon_path(file: &Path) -> Result<String, Failure> {
    let full = std::path::absolute(file)
        .map_err(|e| Failure::usage(format!("FILE {}: {e}", file.display())))?;
    full.to_str().map(str::to_owned).ok_or_else(|| {
        Failure::usage(format!(
            "FILE {}: the name is not valid UTF-8, which twofactord cannot be sent",
            full.display()
        ))
    })
}

/// A block of `Label: value` lines per report, separated by empty lines,
/// then the summary and, when something was imported, [`PAM_HINT`].
pub fn report_text(reports: &[ImportReport]) -> String {
    let mut text = String::new();
    for r in reports {
        let scratch = if r.imported {
            format!("{} (now backup codes)", r.scratch_codes)
        } else {
            r.scratch_codes.to_string()
        };
        text.push_str(&label_lines(&[
            ("User", one_line(&r.user)),
            ("Imported", if r.imported { "yes" } else { "no" }.to_owned()),
            ("Scratch codes", scratch),
            ("Message", one_line(&r.message)),
        ]));
        text.push('\n');
    }
    let imported = reports.iter().filter(|r| r.imported).count();
    let refused: Vec<String> = reports
        .iter()
        .filter(|r| !r.imported)
        .map(|r| one_line(&r.user))
        .collect();
    let total = u32::try_from(reports.len()).unwrap_or(u32::MAX);
    let summary = if reports.is_empty() {
        "no user has a ~/.google_authenticator file; nothing was imported.".to_owned()
    } else if refused.is_empty() {
        format!(
            "imported {} of {}.",
            imported,
            count(total, "user", "users")
        )
    } else {
        format!(
            "imported {} of {}; not imported: {}.",
            imported,
            count(total, "user", "users"),
            refused.join(", ")
        )
    };
    text.push_str(SUMMARY_PREFIX);
    text.push_str(&summary);
    text.push('\n');
    if imported > 0 {
        text.push('\n');
        text.push_str(PAM_HINT);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::admin::fake::{carol, denied, report, root, FakeAdmin};
    use twofactor_proto::types::Policy;

    fn ok(user: &str, scratch: u32) -> ImportReport {
        ImportReport {
            user: user.into(),
            imported: true,
            scratch_codes: scratch,
            message: format!(
                "imported the TOTP secret and {scratch} scratch code(s) as backup codes"
            ),
        }
    }

    fn refused(user: &str) -> ImportReport {
        ImportReport {
            user: user.into(),
            imported: false,
            scratch_codes: 0,
            message: format!(
                "/home/{user}/.google_authenticator is an HOTP (counter-based) file; only TOTP \
                 (time-based) secrets can be imported"
            ),
        }
    }

    fn one(name: &str, file: Option<&str>) -> GoogleAuthenticatorArgs {
        GoogleAuthenticatorArgs {
            name: Some(name.into()),
            file: file.map(Into::into),
            all: false,
        }
    }

    fn all() -> GoogleAuthenticatorArgs {
        GoogleAuthenticatorArgs {
            name: None,
            file: None,
            all: true,
        }
    }

    fn run_with(
        f: &FakeAdmin,
        me: &Me,
        stdin: &[u8],
        args: &GoogleAuthenticatorArgs,
    ) -> (Result<(), Failure>, String, String) {
        let (mut input, seen) = Input::scripted_seen(stdin, false);
        let mut out = Vec::new();
        let r = google_authenticator(f, &mut input, &mut out, args, me);
        (r, String::from_utf8(out).unwrap(), seen.text())
    }

    #[test]
    fn one_user_from_the_default_file() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.imports.borrow_mut().push_back(Ok(ok("alice", 5)));
        let (r, out, said) = run_with(&f, &carol(), b"carol pw\n", &one("alice", None));
        r.unwrap();
        assert_eq!(
            f.calls(),
            [
                "GetUser(alice)",
                "ImportGoogleAuthenticator(alice,,carol pw)"
            ]
        );
        assert_eq!(said, "Password for carol: ");
        let expected = "User:          alice\n\
                        Imported:      yes\n\
                        Scratch codes: 5 (now backup codes)\n\
                        Message:       imported the TOTP secret and 5 scratch code(s) as backup codes\n\
                        \n\
                        Summary: imported 1 of 1 user.\n\n";
        assert!(out.starts_with(expected), "{out}");
        assert!(out.ends_with(&format!("{PAM_HINT}\n")));
        assert!(PAM_HINT.contains("pam_google_authenticator.so"));
        assert!(PAM_HINT.contains("auth required pam_twofactor.so"));
    }

    #[test]
    fn a_file_is_sent_as_an_absolute_path_and_root_gives_no_password() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.imports.borrow_mut().push_back(Ok(ok("alice", 0)));
        let (r, _, said) = run_with(&f, &root(), b"", &one("alice", Some("ga-file")));
        r.unwrap();
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(
            f.calls()[1],
            format!(
                "ImportGoogleAuthenticator(alice,{},)",
                cwd.join("ga-file").display()
            )
        );
        assert_eq!(said, "");

        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("alice", 1000)));
        f.imports.borrow_mut().push_back(Ok(ok("alice", 0)));
        let (r, _, _) = run_with(&f, &root(), b"", &one("alice", Some("/var/tmp/x")));
        r.unwrap();
        assert_eq!(f.calls()[1], "ImportGoogleAuthenticator(alice,/var/tmp/x,)");
    }

    #[test]
    fn a_refused_file_is_exit_1_without_the_pam_hint() {
        let f = FakeAdmin::default();
        f.users.borrow_mut().push_back(Ok(report("bob", 1001)));
        f.imports.borrow_mut().push_back(Ok(refused("bob")));
        let (r, out, _) = run_with(&f, &root(), b"", &one("bob", None));
        let e = r.unwrap_err();
        assert_eq!((e.reason, e.exit_code()), (Reason::PartlyDone, 1));
        assert_eq!(
            e.message(),
            "not imported: bob (the reason is in its Message line above)"
        );
        assert!(out.contains("Imported:      no\n"), "{out}");
        assert!(out.contains("Scratch codes: 0\n"));
        assert!(out.contains("Message:       /home/bob/.google_authenticator is an HOTP"));
        assert!(out.contains("Summary: imported 0 of 1 user; not imported: bob.\n"));
        assert!(!out.contains("pam_twofactor.so"));
    }

    #[test]
    fn all_reports_every_user_and_names_the_refused() {
        let f = FakeAdmin::default();
        f.policies.borrow_mut().push_back(Ok(Policy::default()));
        f.import_alls.borrow_mut().push_back(Ok(vec![
            ok("alice", 5),
            refused("bob"),
            ok("dave", 3),
        ]));
        let (r, out, said) = run_with(&f, &carol(), b"carol pw\n", &all());
        let e = r.unwrap_err();
        assert_eq!(e.exit_code(), 1);
        assert!(
            e.message().starts_with("not imported: bob "),
            "{}",
            e.message()
        );
        assert_eq!(
            f.calls(),
            ["GetPolicy", "ImportGoogleAuthenticatorAll(carol pw)"]
        );
        assert_eq!(said, "Password for carol: ");
        assert_eq!(out.matches("User:          ").count(), 3);
        assert!(out.contains("Summary: imported 2 of 3 users; not imported: bob.\n"));
        // Something was imported: the hint is shown all the same.
        assert!(out.contains(PAM_HINT));
    }

    #[test]
    fn several_refused_are_all_named() {
        let f = FakeAdmin::default();
        f.policies.borrow_mut().push_back(Ok(Policy::default()));
        f.import_alls
            .borrow_mut()
            .push_back(Ok(vec![refused("bob"), refused("eve")]));
        let (r, out, _) = run_with(&f, &root(), b"", &all());
        assert_eq!(
            r.unwrap_err().message(),
            "not imported: bob, eve (the reasons are in their Message lines above)"
        );
        assert!(out.contains("Summary: imported 0 of 2 users; not imported: bob, eve.\n"));
        assert!(!out.contains("pam_twofactor.so"));
    }

    #[test]
    fn all_imported_is_exit_0() {
        let f = FakeAdmin::default();
        f.policies.borrow_mut().push_back(Ok(Policy::default()));
        f.import_alls
            .borrow_mut()
            .push_back(Ok(vec![ok("alice", 5), ok("dave", 3)]));
        let (r, out, _) = run_with(&f, &root(), b"", &all());
        r.unwrap();
        assert!(out.contains("Summary: imported 2 of 2 users.\n"), "{out}");
    }

    #[test]
    fn nobody_with_a_file_is_exit_0() {
        let f = FakeAdmin::default();
        f.policies.borrow_mut().push_back(Ok(Policy::default()));
        f.import_alls.borrow_mut().push_back(Ok(vec![]));
        let (r, out, _) = run_with(&f, &root(), b"", &all());
        r.unwrap();
        assert_eq!(
            out,
            "Summary: no user has a ~/.google_authenticator file; nothing was imported.\n"
        );
    }

    #[test]
    fn non_admins_and_unknown_users_are_refused_before_the_password() {
        let f = FakeAdmin::default();
        f.policies.borrow_mut().push_back(Err(denied()));
        let (r, out, said) = run_with(&f, &carol(), b"pw\n", &all());
        let e = r.unwrap_err();
        assert_eq!((e.reason, e.exit_code()), (Reason::PermissionDenied, 1));
        assert!(out.is_empty() && said.is_empty());

        let f = FakeAdmin::default();
        f.users
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::NotFound, "no user \"zed\"")));
        let (r, _, said) = run_with(&f, &carol(), b"pw\n", &one("zed", None));
        assert_eq!(r.unwrap_err().reason, Reason::NotFound);
        assert!(said.is_empty());
        assert_eq!(f.calls(), ["GetUser(zed)"]);
    }

    #[test]
    fn daemon_text_cannot_break_the_report() {
        let r = ImportReport {
            user: "eve\nUser: x".into(),
            message: "a\n\x1b[2Jb".into(),
            ..ImportReport::default()
        };
        let text = report_text(&[r]);
        assert_eq!(text.lines().count(), 6, "{text}");
        assert!(!text.contains('\x1b'));
    }
}

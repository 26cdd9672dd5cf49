//! Backup codes: `twofactorctl backup-codes`, and showing and saving a set
//! (also used by `enable app` and `enable email`, which make the first set).
//!
//! Flow of `backup-codes`: Status (is a method active? how many unused
//! codes are there?) → the `--save` FILE is looked at → the user is told
//! that the new set voids the N unused codes → password (the confirmation)
//! → NewBackupCodes → the codes on stdout (flushed) → saved to FILE, or, at
//! a terminal without `--save`, an offer to save them.
//!
//! Everything that can refuse does so before the password is asked, so a
//! refusal changes nothing. Once the daemon made a set, the codes are
//! printed before they are saved: if saving fails, the user still has them.
//! Codes go to stdout and the file only, never to stderr.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::write_failure;
use crate::cli::{BackupCodesArgs, SaveArgs};
use crate::client::Account;
use crate::error::{Failure, Reason};
use crate::input::Input;
use crate::localtime;
use crate::private_file;
use crate::text::one_line;

/// The line before the codes.
pub const CODES_HEADER: &str =
    "Backup codes (each works once; keep them somewhere safe, away from the phone):";
/// The question at a terminal when no `--save` was given.
pub const SAVE_PROMPT: &str = "Save them to a file? Path (empty: no): ";
/// Start of the line on stdout after saving.
pub const SAVED_PREFIX: &str = "Saved to ";
/// Longest file name typed at [`SAVE_PROMPT`] (PATH_MAX).
pub const MAX_PATH_BYTES: usize = 4096;
/// The refusal of `backup-codes` when no method is active.
pub const NO_METHOD: &str = "backup codes need an active method: set one up first \
                             (`twofactorctl enable app`, or `twofactorctl enable email \
                             ADDRESS`); nothing was changed";
/// Said (stderr) before every failure to save a set that was made.
pub const NOT_SAVED: &str = "the backup codes above were not saved: ";

/// Where and when the command runs, for the header of a saved file.
pub struct Here {
    /// This machine's host name.
    pub host: String,
    /// The clock (Unix seconds), read when a set arrives.
    pub now: fn() -> i64,
}

impl Here {
    pub fn this_machine() -> Here {
        let host = nix::unistd::gethostname()
            .ok()
            .map(|h| one_line(&h.to_string_lossy()))
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "(unknown host)".to_owned());
        Here {
            host,
            now: super::now,
        }
    }

    /// A set made now for `user`, here.
    pub fn origin<'a>(&'a self, user: &'a str) -> Origin<'a> {
        Origin {
            user,
            host: &self.host,
            made: (self.now)(),
        }
    }
}

/// For whom, where and when a set was made.
pub struct Origin<'a> {
    pub user: &'a str,
    pub host: &'a str,
    /// Unix seconds.
    pub made: i64,
}

pub fn run(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    args: &BackupCodesArgs,
    here: &Here,
) -> Result<(), Failure> {
    let status = account.status()?;
    if status.methods.is_empty() {
        return Err(Failure::new(Reason::NotEnrolled, NO_METHOD));
    }
    check_save(&args.save)?;
    let user = one_line(&status.user);
    input.tell(&replacement_notice(status.backup_codes_left))?;
    if let Some(devices) = trust_notice(status.trusted_devices) {
        input.tell(&devices)?;
    }
    if input.is_interactive() {
        input.tell("Type your password to confirm (Ctrl-C cancels).")?;
    }
    let codes = {
        let proven = super::proof::ask(account, input, &status)?;
        Zeroizing::new(account.new_backup_codes(proven.proof())?)
    };
    let origin = here.origin(&user);
    if codes.is_empty() {
        return Err(Failure::new(
            Reason::Unexpected,
            "twofactord answered with an empty set of backup codes; \
             run `twofactorctl backup-codes` again",
        ));
    }
    show_codes(out, &codes)?;
    out.flush().map_err(write_failure)?;
    save(input, out, &args.save, &codes, &origin)
}

/// What the user is told before confirming: the unused codes of now stop
/// working.
pub fn replacement_notice(left: u32) -> String {
    let now = match left {
        0 => "(you have no unused backup codes now).".to_owned(),
        1 => "the 1 unused code you have now stops working at once.".to_owned(),
        n => format!("the {n} unused codes you have now stop working at once."),
    };
    format!("A new set of backup codes replaces your current set: {now}")
}

/// What a new set does to trusted devices (it ends their trust), when
/// there are any.
pub fn trust_notice(devices: u32) -> Option<String> {
    match devices {
        0 => None,
        1 => Some("Your trusted device will ask for a code again.".into()),
        n => Some(format!(
            "Your {n} trusted devices will ask for a code again."
        )),
    }
}

/// Prints a set of backup codes: [`CODES_HEADER`], then the codes one per
/// line, as the daemon made them.
pub fn show_codes(out: &mut dyn Write, codes: &[String]) -> Result<(), Failure> {
    writeln!(out, "{CODES_HEADER}").map_err(write_failure)?;
    for code in codes {
        let code = Zeroizing::new(one_line(code));
        writeln!(out, "{}", code.as_str()).map_err(write_failure)?;
    }
    Ok(())
}

/// Before anything changes: the file of `--save` must be one that may be
/// written (exit status 2 if not).
pub fn check_save(args: &SaveArgs) -> Result<(), Failure> {
    match &args.save {
        Some(path) => {
            private_file::check(path, args.force).map_err(|e| e.failure("--save: ", path, true))
        }
        None => Ok(()),
    }
}

/// After a set was shown: writes it to the `--save` FILE, or, when a person
/// is at the terminal and no `--save` was given, offers to. A script
/// without `--save` is not asked anything. Every failure says that the
/// codes were not saved.
pub fn save(
    input: &mut Input,
    out: &mut dyn Write,
    args: &SaveArgs,
    codes: &[String],
    origin: &Origin,
) -> Result<(), Failure> {
    save_or_offer(input, out, args, codes, origin)
        .map_err(|f| Failure::new(f.reason, format!("{NOT_SAVED}{}", f.message())))
}

fn save_or_offer(
    input: &mut Input,
    out: &mut dyn Write,
    args: &SaveArgs,
    codes: &[String],
    origin: &Origin,
) -> Result<(), Failure> {
    let text = file_text(codes, origin);
    if let Some(path) = &args.save {
        private_file::write(path, text.as_bytes(), args.force)
            .map_err(|e| e.failure("", path, true))?;
        return saved(out, path);
    }
    if !input.is_interactive() {
        return Ok(());
    }
    loop {
        let Some(answer) = input.optional_answer(SAVE_PROMPT, "the file name", MAX_PATH_BYTES)?
        else {
            return Ok(());
        };
        if answer.is_empty() {
            return Ok(());
        }
        let path = expand_home(&answer, std::env::var_os("HOME"));
        match private_file::write(&path, text.as_bytes(), false) {
            Ok(()) => return saved(out, &path),
            Err(e) => input.tell(&format!(
                "Not saved: {}. Type another path, or nothing to skip.",
                e.describe(&path, false)
            ))?,
        }
    }
}

fn saved(out: &mut dyn Write, path: &Path) -> Result<(), Failure> {
    let full = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    writeln!(
        out,
        "{SAVED_PREFIX}{} (readable only by you).",
        private_file::shown(&full)
    )
    .and_then(|()| out.flush())
    .map_err(write_failure)
}

/// A typed path: `~` and `~/…` mean the home directory (`home`, from
/// `$HOME`), as in a shell; anything else is taken as it is.
pub fn expand_home(typed: &str, home: Option<OsString>) -> PathBuf {
    let home = home.filter(|h| !h.is_empty());
    match (typed, home) {
        ("~", Some(home)) => PathBuf::from(home),
        (t, Some(home)) if t.starts_with("~/") => PathBuf::from(home).join(&t[2..]),
        (t, _) => PathBuf::from(t),
    }
}

/// The saved file: comment lines (`#`) saying for which account and host
/// and when (local time) the set was made and how the codes are used, an
/// empty line, then the codes, one per line.
pub fn file_text(codes: &[String], origin: &Origin) -> Zeroizing<String> {
    let mut text = Zeroizing::new(String::with_capacity(512 + codes.len() * 16));
    text.push_str(&format!(
        "# twofactor backup codes\n\
         # Account: {}\n\
         # Host:    {}\n\
         # Made:    {}\n\
         # Each code works once: type it at the login's code prompt instead of a\n\
         # code from the app or the email (with or without the \"-\", in any case).\n\
         # A new set (twofactorctl backup-codes) voids all of these codes.\n\n",
        origin.user,
        origin.host,
        localtime::format(origin.made)
    ));
    for code in codes {
        let code = Zeroizing::new(one_line(code));
        text.push_str(&code);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::fake::{here, scripted, ten_codes, FakeAccount, MADE};
    use std::os::unix::fs::PermissionsExt;
    use twofactor_proto::AccountStatus;

    fn fake(methods: &[&str], left: u32) -> FakeAccount {
        FakeAccount::with_status(AccountStatus {
            user: "alice".into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            backup_codes_left: left,
            ..AccountStatus::default()
        })
    }

    fn args(save: Option<&Path>, force: bool) -> BackupCodesArgs {
        BackupCodesArgs {
            save: SaveArgs {
                save: save.map(Path::to_path_buf),
                force,
            },
        }
    }

    /// Runs `backup-codes`: result, stdout, what was said on stderr.
    fn run_with(
        fake: &FakeAccount,
        stdin: &[u8],
        interactive: bool,
        args: &BackupCodesArgs,
    ) -> (Result<(), Failure>, String, String) {
        scripted(stdin, interactive, |input, out| {
            run(fake, input, out, args, &here())
        })
    }

    fn expected_stdout(codes: &[String]) -> String {
        let mut s = format!("{CODES_HEADER}\n");
        for c in codes {
            s.push_str(c);
            s.push('\n');
        }
        s
    }

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o7777
    }

    #[test]
    fn tells_about_the_old_set_then_asks_the_password() {
        let f = fake(&["app"], 7);
        f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out, said) = run_with(&f, b"my pw\n654321\n", false, &args(None, false));
        r.unwrap();
        let notice = said
            .find("the 7 unused codes you have now stop working at once")
            .unwrap_or_else(|| panic!("{said}"));
        let prompt = said.find("Password for alice: ").expect("password asked");
        assert!(notice < prompt, "told before the password: {said}");
        assert!(said.contains("replaces your current set"));
        assert_eq!(f.calls(), ["Status", "NewBackupCodes(my pw+654321)"]);
        assert_eq!(out, expected_stdout(&ten_codes()));
        // The codes never go to stderr.
        for code in ten_codes() {
            assert!(!said.contains(&code));
        }
    }

    #[test]
    fn notice_counts_the_codes_of_now() {
        assert!(replacement_notice(1).contains("the 1 unused code you have now stops working"));
        assert!(replacement_notice(2).contains("the 2 unused codes you have now stop working"));
        assert!(replacement_notice(0).contains("no unused backup codes"));
    }

    /// A new set ends every trusted device's trust: said before the
    /// password when there are any, not when there are none.
    #[test]
    fn trusted_devices_are_told_they_end() {
        assert_eq!(trust_notice(0), None);
        let f = FakeAccount::with_status(AccountStatus {
            user: "alice".into(),
            methods: vec!["app".into()],
            trusted_devices: 2,
            ..AccountStatus::default()
        });
        f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
        let (r, _, said) = run_with(&f, b"pw\n654321\n", false, &args(None, false));
        r.unwrap();
        let told = said
            .find("Your 2 trusted devices will ask for a code again.")
            .unwrap_or_else(|| panic!("{said}"));
        assert!(told < said.find("Password for alice").unwrap(), "{said}");
        let (_, _, said) = run_with(
            &fake(&["app"], 3),
            b"pw\n654321\n",
            false,
            &args(None, false),
        );
        assert!(!said.contains("trusted device"), "{said}");
    }

    #[test]
    fn refused_without_a_method_before_the_password() {
        let f = fake(&[], 0);
        let (r, out, said) = run_with(&f, b"pw\n654321\n", false, &args(None, false));
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::NotEnrolled, 1));
        assert!(err.message().contains("twofactorctl enable app"));
        assert_eq!(f.calls(), ["Status"]);
        assert!(out.is_empty());
        assert!(!said.contains("Password"), "{said}");
    }

    #[test]
    fn wrong_password_shows_nothing() {
        let f = fake(&["app"], 10);
        f.new_codes
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::BadPassword, "wrong password")));
        let (r, out, _) = run_with(&f, b"bad\n654321\n", false, &args(None, false));
        assert_eq!(r.unwrap_err().exit_code(), 1);
        assert!(out.is_empty());
    }

    #[test]
    fn missing_password_is_usage_and_changes_nothing() {
        let f = fake(&["app"], 10);
        let (r, _, _) = run_with(&f, b"", false, &args(None, false));
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert_eq!(f.calls(), ["Status"]);
    }

    #[test]
    fn empty_set_is_unexpected() {
        let f = fake(&["app"], 10);
        f.new_codes.borrow_mut().push_back(Ok(vec![]));
        let (r, out, _) = run_with(&f, b"pw\n654321\n", false, &args(None, false));
        assert_eq!(r.unwrap_err().exit_code(), 4);
        assert!(out.is_empty());
    }

    #[test]
    fn save_writes_a_0600_file_with_header_and_codes() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(&["app"], 3);
        f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out, said) = run_with(&f, b"pw\n654321\n", false, &args(Some(&path), false));
        r.unwrap();
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            file_text(
                &ten_codes(),
                &Origin {
                    user: "alice",
                    host: "testhost",
                    made: MADE
                }
            )
            .as_str()
        );
        let codes: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert_eq!(codes, ten_codes());
        assert!(text.contains("# Account: alice\n"));
        assert!(text.contains("# Host:    testhost\n"));
        assert!(text.contains(&format!("# Made:    {}\n", localtime::format(MADE))));
        assert!(text.contains("works once"));
        assert!(text.contains("voids"));
        assert!(out.starts_with(&expected_stdout(&ten_codes())));
        assert_eq!(
            out.lines().last().unwrap(),
            format!("{SAVED_PREFIX}{} (readable only by you).", path.display())
        );
        assert!(!said.contains("abc"), "no code on stderr: {said}");
    }

    #[test]
    fn existing_file_is_refused_before_the_password() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"old").unwrap();
        let f = fake(&["app"], 10);
        let (r, out, said) = run_with(&f, b"pw\n654321\n", false, &args(Some(&path), false));
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains(&path.display().to_string()));
        assert!(err.message().contains("--force"), "{}", err.message());
        assert_eq!(f.calls(), ["Status"], "no new set made");
        assert!(out.is_empty());
        assert!(!said.contains("Password"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn symlink_is_refused_even_with_force() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, b"precious").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let f = fake(&["app"], 10);
        let (r, _, _) = run_with(&f, b"pw\n654321\n", false, &args(Some(&link), true));
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("symbolic link"), "{}", err.message());
        assert_eq!(f.calls(), ["Status"]);
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
    }

    #[test]
    fn force_replaces_a_regular_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, "an older, longer set of codes\n".repeat(20)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let f = fake(&["app"], 10);
        f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
        let (r, _, _) = run_with(&f, b"pw\n654321\n", false, &args(Some(&path), true));
        r.unwrap();
        assert_eq!(mode(&path), 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("older"));
        assert!(text.ends_with(&format!("{}\n", ten_codes()[9])));
    }

    #[test]
    fn failing_save_after_the_set_was_made_says_so() {
        // The file appears between the check and the save.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"old").unwrap();
        let mut input = Input::scripted(b"", false);
        let mut out = Vec::new();
        let origin = Origin {
            user: "alice",
            host: "h",
            made: MADE,
        };
        let save_args = SaveArgs {
            save: Some(path.clone()),
            force: false,
        };
        let err = save(&mut input, &mut out, &save_args, &ten_codes(), &origin).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().starts_with(NOT_SAVED), "{}", err.message());
        assert!(err.message().contains(&path.display().to_string()));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn a_person_is_offered_to_save() {
        let d = tempfile::tempdir().unwrap();
        let taken = d.path().join("taken.txt");
        std::fs::write(&taken, b"old").unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(&["app"], 10);
        f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
        let stdin = format!("pw\n654321\n{}\n{}\n", taken.display(), path.display());
        let (r, out, said) = run_with(&f, stdin.as_bytes(), true, &args(None, false));
        r.unwrap();
        assert!(said.contains("Ctrl-C"));
        assert_eq!(said.matches(SAVE_PROMPT).count(), 2, "{said}");
        assert!(said.contains("taken.txt already exists"), "{said}");
        assert_eq!(std::fs::read(&taken).unwrap(), b"old");
        assert_eq!(mode(&path), 0o600);
        assert!(std::fs::read_to_string(&path)
            .unwrap()
            .contains(&ten_codes()[0]));
        assert!(out.contains(SAVED_PREFIX));
    }

    #[test]
    fn a_person_may_decline() {
        for stdin in [&b"pw\n654321\n\n"[..], b"pw\n654321\n"] {
            let f = fake(&["app"], 10);
            f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
            let (r, out, said) = run_with(&f, stdin, true, &args(None, false));
            r.unwrap();
            assert!(said.contains(SAVE_PROMPT));
            assert_eq!(out, expected_stdout(&ten_codes()));
        }
    }

    #[test]
    fn a_script_is_not_asked() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(&["app"], 10);
        f.new_codes.borrow_mut().push_back(Ok(ten_codes()));
        let stdin = format!("pw\n654321\n{}\n", path.display());
        let (r, out, said) = run_with(&f, stdin.as_bytes(), false, &args(None, false));
        r.unwrap();
        assert!(!said.contains(SAVE_PROMPT));
        assert!(!path.exists());
        assert_eq!(out, expected_stdout(&ten_codes()));
    }

    #[test]
    fn home_is_expanded_only_at_the_start() {
        let home = Some(OsString::from("/home/alice"));
        assert_eq!(
            expand_home("~/codes.txt", home.clone()),
            PathBuf::from("/home/alice/codes.txt")
        );
        assert_eq!(expand_home("~", home.clone()), PathBuf::from("/home/alice"));
        assert_eq!(expand_home("a/~/b", home.clone()), PathBuf::from("a/~/b"));
        assert_eq!(expand_home("~bob/x", home), PathBuf::from("~bob/x"));
        assert_eq!(expand_home("~/x", None), PathBuf::from("~/x"));
    }

    #[test]
    fn file_text_lists_the_codes_after_the_header() {
        let text = file_text(
            &["abcd-efgh-jkmn".into(), "pqrs\n-tuvw-xyz2".into()],
            &Origin {
                user: "alice",
                host: "box",
                made: MADE,
            },
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "# twofactor backup codes");
        let blank = lines.iter().position(|l| l.is_empty()).unwrap();
        assert!(lines[..blank].iter().all(|l| l.starts_with("# ")));
        assert_eq!(lines[blank + 1..], ["abcd-efgh-jkmn", "pqrs -tuvw-xyz2"]);
    }
}

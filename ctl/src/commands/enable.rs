//! `twofactorctl enable app`: set up an authenticator app; and what every
//! `enable` shares (the start, the code question, the first set of backup
//! codes). `enable email`: [`email`]; `enable ssh-key`: [`ssh_key`];
//! `enable key`: [`key`].
//!
//! Flow: Status (is the daemon there, who am I, is an app enabled already:
//! then the user is told that the new app replaces it only once confirmed)
//! → password → EnrollApp →
//! show QR code, `Secret:` and `URI:` lines (stdout, flushed) → read a code
//! → ConfirmApp (3 tries at a terminal, 1 for a script) →
//! "Authenticator app enabled." → the first set of backup codes (made by
//! the daemon with the confirmation) → saved to the `--save` FILE, or
//! offered to be saved at a terminal (see [`super::backup`]). The `--save`
//! FILE is looked at before the password, so a refusal changes nothing.

pub mod email;
pub mod key;
pub mod ssh_key;

use std::io::Write;

use twofactor_proto::types::{method, AppEnrolment};
use twofactor_proto::AccountStatus;
use zeroize::{Zeroize, Zeroizing};

use super::backup::{self, Here, Origin};
use super::write_failure;
use crate::cli::{EnableAppArgs, SaveArgs};
use crate::client::Account;
use crate::error::{Failure, Reason};
use crate::input::Input;
use crate::qr;
use crate::text::{one_line, token};

pub use super::proof::MAX_CODE_BYTES;
/// Tries for the confirmation code when a person is typing.
pub const INTERACTIVE_TRIES: u32 = 3;

/// The prompt for the confirmation code.
pub const CODE_PROMPT: &str = "Code from the app: ";
/// Start of the line with the secret (base32 in groups of 4).
pub const SECRET_PREFIX: &str = "Secret: ";
/// Start of the line with the otpauth URI.
pub const URI_PREFIX: &str = "URI: ";
/// The last line on success.
pub const ENABLED: &str = "Authenticator app enabled.";
/// Said (stderr) before the password when an app is already enabled.
pub const REPLACING: [&str; 4] = [
    "The authenticator app is already enabled for your account.",
    "A new app (a new phone) replaces the current one once you confirm a code from",
    "the new one; until then the current app keeps working. The confirmation also",
    "makes a new set of backup codes, which voids your current set.",
];
/// How a failure to save the first set starts: the app is on all the same.
const APP_ON: &str = "the authenticator app is enabled";
/// Said (stderr) after a replacement was confirmed.
pub const REPLACED: &str =
    "The previous app no longer works: only the new app's codes are accepted now.";

/// The enrolment as returned by the daemon, wiped when dropped.
struct Shown(AppEnrolment);

impl Drop for Shown {
    fn drop(&mut self) {
        self.0.secret_base32.zeroize();
        self.0.uri.zeroize();
    }
}

pub fn app(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    args: &EnableAppArgs,
    style: qr::Style,
    here: &Here,
) -> Result<(), Failure> {
    let status = account.status()?;
    let replacing = prepare(input, &status, &args.save, method::APP, &REPLACING)?;
    let user = one_line(&status.user);
    let enrolment = {
        let proven = super::proof::ask(account, input, &status)?;
        Shown(account.enroll_app(proven.proof())?)
    };
    show(out, &enrolment.0, style)?;
    let codes = Zeroizing::new(ask_code(
        input,
        &QUESTION,
        replacing,
        type_the_code,
        |code| account.confirm_app(&enrolment.0.enrolment, code),
    )?);
    let origin = here.origin(&user);
    say_enabled(input, out, ENABLED, replacing.then_some(REPLACED))?;
    if codes.is_empty() {
        out.flush().map_err(write_failure)?;
        // The daemon always makes a set; an older one might not.
        return match args.save.save {
            Some(_) => Err(Failure::new(
                Reason::Unexpected,
                "the authenticator app is enabled, but twofactord sent no backup codes; \
                 nothing was saved",
            )),
            None => Ok(()),
        };
    }
    first_set(input, out, &args.save, &codes, &origin, APP_ON)
}

/// The refusal of `--save` when backup codes will not be made.
pub const NO_SET_TO_SAVE: &str = "--save: no backup codes are made when you already have a \
                                  method (your current backup codes stay as they are; \
                                  `twofactorctl backup-codes --save FILE` makes a new set); \
                                  nothing was changed";

/// `--save` is for the first set of backup codes, which only a first
/// method brings (email, a security key; `enable app` always makes one):
/// refused, before anything is asked, when the account has a method.
fn no_save_without_a_first_set(status: &AccountStatus, save: &SaveArgs) -> Result<(), Failure> {
    if save.save.is_some() && !status.methods.is_empty() {
        return Err(Failure::usage(NO_SET_TO_SAVE));
    }
    Ok(())
}

/// The start of every `enable`, once the daemon answered `Status`: the
/// `--save` FILE is checked, and when `method` is enabled already the
/// person is told (stderr) what replacing it means. Returns whether it is
/// a replacement.
fn prepare(
    input: &mut Input,
    status: &AccountStatus,
    save: &SaveArgs,
    method: &str,
    replacing_notice: &[&str],
) -> Result<bool, Failure> {
    let replacing = status.methods.iter().any(|m| m == method);
    backup::check_save(save)?;
    if replacing {
        for line in replacing_notice {
            input.tell(line)?;
        }
    }
    Ok(replacing)
}

/// The "… enabled." line (stdout) and, after a replacement, what the
/// replaced one no longer does (stderr).
fn say_enabled(
    input: &mut Input,
    out: &mut dyn Write,
    enabled: &str,
    replaced: Option<&str>,
) -> Result<(), Failure> {
    writeln!(out, "{enabled}").map_err(write_failure)?;
    match replaced {
        Some(line) => input.tell(line),
        None => Ok(()),
    }
}

/// After the "… enabled." line: an empty line and the set of backup codes
/// that came with the method (stdout, flushed), then saved to the `--save`
/// FILE or offered to be saved (see [`backup::save`]). A failure to save
/// starts with `enabled` (what is on all the same), "but".
fn first_set(
    input: &mut Input,
    out: &mut dyn Write,
    save: &SaveArgs,
    codes: &[String],
    origin: &Origin,
    enabled: &str,
) -> Result<(), Failure> {
    writeln!(out).map_err(write_failure)?;
    backup::show_codes(out, codes)?;
    out.flush().map_err(write_failure)?;
    backup::save(input, out, save, codes, origin)
        .map_err(|f| Failure::new(f.reason, format!("{enabled}, but {}", f.message())))
}

/// Prints the QR code, the secret and the URI, then flushes stdout so that
/// a script can read them before it answers the code question.
fn show(out: &mut dyn Write, e: &AppEnrolment, style: qr::Style) -> Result<(), Failure> {
    let uri = Zeroizing::new(token(&e.uri));
    let secret = group4(&e.secret_base32);
    let mut text = Zeroizing::new(String::new());
    match qr::render(&uri, style) {
        Some(image) => {
            text.push_str("Scan this QR code with your authenticator app:\n\n");
            text.push_str(&image);
            text.push('\n');
        }
        None => text.push_str("(The URI is too long for a QR code; add the account by hand.)\n"),
    }
    text.push_str(&format!("Or add it by hand ({}):\n", totp_hint(&uri)));
    text.push_str(&format!("{SECRET_PREFIX}{}\n", secret.as_str()));
    text.push_str(&format!("{URI_PREFIX}{}\n\n", uri.as_str()));
    out.write_all(text.as_bytes()).map_err(write_failure)?;
    out.flush().map_err(write_failure)
}

/// The question for the code from the app.
const QUESTION: CodeQuestion = CodeQuestion {
    prompt: CODE_PROMPT,
    what: "the code from the app",
    not_done: [
        "The authenticator app was not enabled.",
        "The new app was not enabled; the current one keeps working.",
    ],
};

/// At a terminal, an empty answer is no code: it is asked again.
fn type_the_code(input: &mut Input, code: &str) -> Result<bool, Failure> {
    if code.is_empty() {
        input.tell("Type the 6-digit code your app shows for this account.")?;
    }
    Ok(code.is_empty())
}

/// A question for the code that confirms a new method.
struct CodeQuestion {
    /// The prompt, e.g. [`CODE_PROMPT`].
    prompt: &'static str,
    /// What the answer is, for the error when stdin ends.
    what: &'static str,
    /// The sentence after the daemon's refusal once the tries ran out: for
    /// a first method, and for a replacement.
    not_done: [&'static str; 2],
}

/// Asks for the code until `check` (the daemon) accepts one, which gives
/// the backup codes that came with it, or the tries run out:
/// [`INTERACTIVE_TRIES`] at a terminal, one for a script. Only a wrong
/// code (`BadCode`, `InvalidInput`) uses a try; any other refusal ends at
/// once. At a terminal each answer first goes to `not_a_code`, which may
/// deal with it (an empty line) and return true: it is then asked again
/// without using a try. `replacing`: the method is enabled already.
fn ask_code(
    input: &mut Input,
    question: &CodeQuestion,
    replacing: bool,
    mut not_a_code: impl FnMut(&mut Input, &str) -> Result<bool, Failure>,
    mut check: impl FnMut(&str) -> Result<Vec<String>, Failure>,
) -> Result<Vec<String>, Failure> {
    let tries = if input.is_interactive() {
        INTERACTIVE_TRIES
    } else {
        1
    };
    let mut attempt = 1;
    loop {
        let code = input.answer(question.prompt, question.what, MAX_CODE_BYTES)?;
        if input.is_interactive() && not_a_code(input, &code)? {
            continue;
        }
        match check(&code) {
            Ok(codes) => return Ok(codes),
            Err(f) if matches!(f.reason, Reason::BadCode | Reason::InvalidInput) => {
                if attempt >= tries {
                    return Err(Failure::new(
                        f.reason,
                        format!(
                            "{} {}",
                            sentence(f.message()),
                            question.not_done[usize::from(replacing)]
                        ),
                    ));
                }
                let left = tries - attempt;
                input.tell(&format!(
                    "{} Try again ({left} {} left).",
                    sentence(f.message()),
                    if left == 1 { "try" } else { "tries" }
                ))?;
                attempt += 1;
            }
            Err(f) => return Err(f),
        }
    }
}

/// `text` with a capital first letter and a final full stop.
fn sentence(text: &str) -> String {
    let mut chars = text.chars();
    let mut s: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    };
    if !s.ends_with(['.', '!', '?']) {
        s.push('.');
    }
    s
}

/// The base32 secret in groups of 4 characters separated by one space, for
/// typing by hand. Only spaces are added: removing them gives the secret
/// back.
pub fn group4(secret: &str) -> Zeroizing<String> {
    let clean = Zeroizing::new(token(secret));
    let mut out = Zeroizing::new(String::with_capacity(clean.len() + clean.len() / 4));
    for (i, c) in clean.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// What to choose in an app when typing the secret by hand, read from the
/// URI's parameters (RFC 6238 defaults when absent): e.g.
/// `"Time based", SHA1, 6 digits, every 30 seconds`.
pub fn totp_hint(uri: &str) -> String {
    let (mut algorithm, mut digits, mut period) = ("SHA1", "6", "30");
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        let plain = !value.is_empty()
            && value.len() <= 10
            && value.bytes().all(|b| b.is_ascii_alphanumeric());
        if !plain {
            continue;
        }
        match key {
            "algorithm" => algorithm = value,
            "digits" if value.bytes().all(|b| b.is_ascii_digit()) => digits = value,
            "period" if value.bytes().all(|b| b.is_ascii_digit()) => period = value,
            _ => {}
        }
    }
    format!("\"Time based\", {algorithm}, {digits} digits, every {period} seconds")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SaveArgs;
    use crate::commands::backup::{CODES_HEADER, SAVED_PREFIX, SAVE_PROMPT};
    use crate::commands::fake::{here, scripted, ten_codes, FakeAccount, MADE};
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;
    use twofactor_proto::AccountStatus;

    const SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    const URI: &str = "otpauth://totp/host:alice%40host?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=host&algorithm=SHA1&digits=6&period=30";

    fn fake(enrolled: bool) -> FakeAccount {
        let fake = FakeAccount::with_status(AccountStatus {
            user: "alice".into(),
            methods: if enrolled { vec!["app".into()] } else { vec![] },
            ..AccountStatus::default()
        });
        *fake.enrolment.borrow_mut() = Some(Ok(AppEnrolment {
            enrolment: "e1".into(),
            secret_base32: SECRET.into(),
            uri: URI.into(),
        }));
        fake
    }

    fn bad_code() -> Failure {
        Failure::new(Reason::BadCode, "wrong code")
    }

    fn run(fake: &FakeAccount, stdin: &[u8], interactive: bool) -> (Result<(), Failure>, String) {
        let (r, out, _) = run_saving(fake, stdin, interactive, SaveArgs::default());
        (r, out)
    }

    /// Result, stdout and what was said on stderr.
    fn run_saving(
        fake: &FakeAccount,
        stdin: &[u8],
        interactive: bool,
        save: SaveArgs,
    ) -> (Result<(), Failure>, String, String) {
        let args = EnableAppArgs { save };
        scripted(stdin, interactive, |input, out| {
            app(fake, input, out, &args, qr::Style::DarkBackground, &here())
        })
    }

    fn save_to(path: &Path, force: bool) -> SaveArgs {
        SaveArgs {
            save: Some(path.to_path_buf()),
            force,
        }
    }

    /// The lines after "Authenticator app enabled.".
    fn after_enabled(out: &str) -> Vec<&str> {
        let lines: Vec<&str> = out.lines().collect();
        let i = lines
            .iter()
            .position(|l| *l == ENABLED)
            .unwrap_or_else(|| panic!("no {ENABLED:?} in {out}"));
        lines[i + 1..].to_vec()
    }

    fn expected_codes_block() -> Vec<String> {
        let mut v = vec![String::new(), CODES_HEADER.to_owned()];
        v.extend(ten_codes());
        v
    }

    #[test]
    fn happy_path_prints_stable_lines() {
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out) = run(&f, b"pw 1\n123456\n", false);
        r.unwrap();
        let secret_line = out.lines().find(|l| l.starts_with(SECRET_PREFIX)).unwrap();
        assert_eq!(
            secret_line,
            "Secret: JBSW Y3DP EHPK 3PXP JBSW Y3DP EHPK 3PXP"
        );
        assert_eq!(secret_line[SECRET_PREFIX.len()..].replace(' ', ""), SECRET);
        let uri_line = out.lines().find(|l| l.starts_with(URI_PREFIX)).unwrap();
        assert_eq!(&uri_line[URI_PREFIX.len()..], URI);
        assert!(out.contains("\"Time based\""));
        assert!(out.contains('\u{2588}'), "QR code drawn");
        // After the confirmation: an empty line, the header, the ten codes
        // one per line, and nothing more.
        assert_eq!(after_enabled(&out), expected_codes_block());
        assert_eq!(
            f.calls(),
            ["Status", "EnrollApp(pw 1)", "ConfirmApp(e1,123456)"]
        );
    }

    #[test]
    fn a_script_is_not_asked_to_save() {
        // The stdin protocol stays two lines: a third line is not read as a
        // file name.
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let stdin = format!("pw\n123456\n{}\n", path.display());
        let (r, out, said) = run_saving(&f, stdin.as_bytes(), false, SaveArgs::default());
        r.unwrap();
        assert!(!path.exists());
        assert!(!said.contains(SAVE_PROMPT));
        assert_eq!(after_enabled(&out), expected_codes_block());
    }

    #[test]
    fn save_writes_the_codes_to_a_0600_file() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out, said) = run_saving(&f, b"pw\n123456\n", false, save_to(&path, false));
        r.unwrap();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# twofactor backup codes\n# Account: alice\n# Host:    testhost\n")
        );
        assert!(text.contains(&crate::localtime::format(MADE)));
        let codes: Vec<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect();
        assert_eq!(codes, ten_codes());
        let mut block = expected_codes_block();
        block.push(format!(
            "{SAVED_PREFIX}{} (readable only by you).",
            path.display()
        ));
        assert_eq!(after_enabled(&out), block);
        assert!(!said.contains(&ten_codes()[0]));
    }

    #[test]
    fn existing_save_file_is_refused_before_the_password() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"old").unwrap();
        let f = fake(false);
        let (r, out, _) = run_saving(&f, b"pw\n123456\n", false, save_to(&path, false));
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("--force"), "{}", err.message());
        assert!(err.message().contains(&path.display().to_string()));
        assert_eq!(f.calls(), ["Status"]);
        assert!(out.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn force_replaces_and_symlink_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"old codes, a longer text than the header?").unwrap();
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, _, _) = run_saving(&f, b"pw\n123456\n", false, save_to(&path, true));
        r.unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# twofactor backup codes\n"));
        assert!(!text.contains("old codes"));

        let link = d.path().join("link");
        std::os::unix::fs::symlink(&path, &link).unwrap();
        let f = fake(false);
        let (r, _, _) = run_saving(&f, b"pw\n123456\n", false, save_to(&link, true));
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("symbolic link"));
        assert_eq!(f.calls(), ["Status"]);
    }

    #[test]
    fn a_person_is_offered_to_save() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let stdin = format!("pw\n123456\n{}\n", path.display());
        let (r, out, said) = run_saving(&f, stdin.as_bytes(), true, SaveArgs::default());
        r.unwrap();
        assert!(said.contains(SAVE_PROMPT));
        let meta = std::fs::symlink_metadata(&path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        assert!(out.lines().last().unwrap().starts_with(SAVED_PREFIX));
    }

    #[test]
    fn empty_set_with_save_says_the_app_is_enabled() {
        // An (older) daemon that sends no codes: nothing to save, and the
        // user is told that the app is on all the same.
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(vec![]));
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let (r, out, _) = run_saving(&f, b"pw\n123456\n", false, save_to(&path, false));
        let err = r.unwrap_err();
        assert!(err
            .message()
            .starts_with("the authenticator app is enabled, but"));
        assert_eq!(out.lines().last(), Some(ENABLED));
        assert!(!path.exists());
    }

    #[test]
    fn script_gets_one_try() {
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Err(bad_code()));
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out) = run(&f, b"pw\n000000\n123456\n", false);
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            err.message(),
            "Wrong code. The authenticator app was not enabled."
        );
        assert!(!out.contains(ENABLED));
        assert_eq!(f.calls().len(), 3);
    }

    #[test]
    fn person_gets_three_tries() {
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Err(bad_code()));
        f.confirms.borrow_mut().push_back(Err(bad_code()));
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out) = run(&f, b"pw\n1\n2\n3\n", true);
        r.unwrap();
        assert_eq!(after_enabled(&out), expected_codes_block());
        assert_eq!(
            f.calls()[2..],
            ["ConfirmApp(e1,1)", "ConfirmApp(e1,2)", "ConfirmApp(e1,3)"]
        );

        let f = fake(false);
        for _ in 0..3 {
            f.confirms.borrow_mut().push_back(Err(bad_code()));
        }
        let (r, _) = run(&f, b"pw\n1\n2\n3\n4\n", true);
        assert_eq!(r.unwrap_err().reason, Reason::BadCode);
        assert_eq!(f.calls().len(), 5, "no fourth try");
    }

    #[test]
    fn empty_answer_at_a_terminal_is_asked_again_without_a_try() {
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, _) = run(&f, b"pw\n\n  \n123456\n", true);
        r.unwrap();
        assert_eq!(f.calls()[2..], ["ConfirmApp(e1,123456)"]);
    }

    #[test]
    fn other_errors_end_at_once() {
        let f = fake(false);
        f.confirms
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::RateLimited, "wait 60 seconds")));
        let (r, _) = run(&f, b"pw\n1\n2\n", true);
        assert_eq!(r.unwrap_err().reason, Reason::RateLimited);
        assert_eq!(f.calls().len(), 3);
    }

    #[test]
    fn wrong_password_shows_nothing_secret() {
        let f = fake(false);
        *f.enrolment.borrow_mut() = Some(Err(Failure::new(Reason::BadPassword, "wrong password")));
        let (r, out) = run(&f, b"nope\n", false);
        assert_eq!(r.unwrap_err().exit_code(), 1);
        assert!(out.is_empty());
    }

    #[test]
    fn an_enabled_app_is_replaced_after_a_notice() {
        let f = fake(true);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, out, said) = run_saving(&f, b"pw\n654321\n123456\n", false, SaveArgs::default());
        r.unwrap();
        // The current app's code confirms the change, with the password.
        assert_eq!(
            f.calls(),
            ["Status", "EnrollApp(pw+654321)", "ConfirmApp(e1,123456)"]
        );
        // Told before the password: what replaces what, and when.
        let notice = said
            .find("already enabled for your account")
            .unwrap_or_else(|| panic!("{said}"));
        let prompt = said.find("Password for alice: ").expect("password asked");
        assert!(notice < prompt, "{said}");
        assert!(said.contains("once you confirm a code"));
        assert!(said.contains("until then the current app keeps working"));
        assert!(said.contains("voids your current set"));
        assert!(said.contains(REPLACED));
        // The usual output: the secret, then the new codes.
        assert!(out.contains(SECRET_PREFIX));
        assert_eq!(after_enabled(&out), expected_codes_block());
    }

    #[test]
    fn a_failed_replacement_says_nothing_was_replaced() {
        let f = fake(true);
        f.confirms.borrow_mut().push_back(Err(bad_code()));
        let (r, out, said) = run_saving(&f, b"pw\n654321\n000000\n", false, SaveArgs::default());
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert!(
            err.message()
                .ends_with("The new app was not enabled; the current one keeps working."),
            "{}",
            err.message()
        );
        assert!(!out.contains(ENABLED));
        assert!(!said.contains(REPLACED));
    }

    #[test]
    fn a_first_app_gets_no_notice() {
        let f = fake(false);
        f.confirms.borrow_mut().push_back(Ok(ten_codes()));
        let (r, _, said) = run_saving(&f, b"pw\n123456\n", false, SaveArgs::default());
        r.unwrap();
        assert!(!said.contains("already enabled"), "{said}");
        assert!(!said.contains(REPLACED));
    }

    #[test]
    fn missing_code_is_usage() {
        let f = fake(false);
        let (r, out) = run(&f, b"pw\n", false);
        assert_eq!(r.unwrap_err().exit_code(), 2);
        // The secret was still shown before the code was asked.
        assert!(out.contains(SECRET_PREFIX));
    }

    #[test]
    fn grouping() {
        assert_eq!(group4("").as_str(), "");
        assert_eq!(group4("ABC").as_str(), "ABC");
        assert_eq!(group4("ABCD").as_str(), "ABCD");
        assert_eq!(group4("ABCDE").as_str(), "ABCD E");
        assert_eq!(group4("ABCDEFGH").as_str(), "ABCD EFGH");
        assert_eq!(group4(SECRET).replace(' ', ""), SECRET);
        assert_eq!(group4("AB\nCD\x1bEF").as_str(), "ABCD EF");
    }

    #[test]
    fn hint_reads_the_uri() {
        assert_eq!(
            totp_hint(URI),
            "\"Time based\", SHA1, 6 digits, every 30 seconds"
        );
        assert_eq!(
            totp_hint("otpauth://totp/x?secret=A&digits=8&period=60&algorithm=SHA256"),
            "\"Time based\", SHA256, 8 digits, every 60 seconds"
        );
        assert_eq!(
            totp_hint("otpauth://totp/x?digits=%1b&period=x"),
            "\"Time based\", SHA1, 6 digits, every 30 seconds"
        );
    }

    #[test]
    fn sentences() {
        assert_eq!(sentence("wrong code"), "Wrong code.");
        assert_eq!(
            sentence("Invalid verification code."),
            "Invalid verification code."
        );
        assert_eq!(sentence(""), ".");
    }
}

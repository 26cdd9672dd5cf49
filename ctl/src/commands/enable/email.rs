//! `twofactorctl enable email ADDRESS`: get login codes by email.
//!
//! Flow: Status (is the daemon there, who am I, are email codes enabled
//! already: then the user is told that the new address replaces the
//! current one only once confirmed) → the `--save` FILE is checked (and
//! refused when the user has a method already: no backup codes come then)
//! → password → EnrollEmail (twofactord sends a code) → "A code was sent
//! to a***@example.com; …" (stderr) → read the code → ConfirmEmail (3 tries
//! at a terminal, 1 for a script; at a terminal an empty answer or
//! `resend` asks ResendEmail for a new code instead) → "Email codes
//! enabled." → when email is the first method, the first set of backup
//! codes, shown and saved as after `enable app`.
//!
//! Everything that can refuse locally does so before the password is
//! asked, so a refusal changes nothing.

use std::io::Write;

use twofactor_proto::types::method;
use zeroize::Zeroizing;

use super::{
    ask_code, first_set, no_save_without_a_first_set, prepare, say_enabled, sentence, CodeQuestion,
};
use crate::cli::EnableEmailArgs;
use crate::client::Account;
use crate::commands::backup::Here;
use crate::commands::write_failure;
use crate::error::{Failure, Reason};
use crate::input::Input;
use crate::text::one_line;

/// The prompt for the code sent by email.
pub const CODE_PROMPT: &str = "Code from the email: ";
/// The answer that asks for a new code at a terminal (as does an empty one).
pub const RESEND: &str = "resend";
/// Said (stderr) at a terminal before the code is asked.
pub const RESEND_HINT: &str =
    "Type the 6-digit code from the email; press Enter without a code (or type resend) \
     to get a new one.";
/// The line on stdout on success.
pub const ENABLED: &str = "Email codes enabled.";
/// Said (stderr) before the password when email codes are enabled already.
pub const REPLACING: [&str; 3] = [
    "Email codes are already enabled for your account.",
    "The new address replaces the current one once you confirm the code sent to it;",
    "until then codes keep going to the current address, which keeps working.",
];
/// Said (stderr) after a new address was confirmed.
pub const REPLACED: &str =
    "Codes now go to the new address; the previous address gets no more codes.";
/// How a failure to save the first set starts: email codes are on all the
/// same.
const EMAIL_ON: &str = "email codes are enabled";

/// "A code was sent to ADDRESS; …", the line after a code was sent.
pub fn sent(masked: &str) -> String {
    format!(
        "A code was sent to {}; it is valid for a few minutes (the email says how long).",
        one_line(masked)
    )
}

pub fn run(
    account: &dyn Account,
    input: &mut Input,
    out: &mut dyn Write,
    args: &EnableEmailArgs,
    here: &Here,
) -> Result<(), Failure> {
    let status = account.status()?;
    no_save_without_a_first_set(&status, &args.save)?;
    let replacing = prepare(input, &status, &args.save, method::EMAIL, &REPLACING)?;
    let user = one_line(&status.user);
    let masked = {
        let proven = super::super::proof::ask(account, input, &status)?;
        account.enroll_email(&args.address, proven.proof())?
    };
    input.tell(&sent(&masked))?;
    if input.is_interactive() {
        input.tell(RESEND_HINT)?;
    }
    let codes = Zeroizing::new(ask_code(
        input,
        &QUESTION,
        replacing,
        |input, answer| resend_if_asked(account, input, answer),
        |code| account.confirm_email(code),
    )?);
    let origin = here.origin(&user);
    say_enabled(input, out, ENABLED, replacing.then_some(REPLACED))?;
    if codes.is_empty() {
        // Email is not the first method: the backup codes stay as they are.
        return out.flush().map_err(write_failure);
    }
    first_set(input, out, &args.save, &codes, &origin, EMAIL_ON)
}

/// The question for the code from the email.
const QUESTION: CodeQuestion = CodeQuestion {
    prompt: CODE_PROMPT,
    what: "the code from the email",
    not_done: [
        "Email codes were not enabled.",
        "The new address was not confirmed; codes keep going to the current one.",
    ],
};

/// At a terminal, an empty answer or [`RESEND`] is no code: it asks for a
/// new one (see [`resend`]), and the code is asked again.
fn resend_if_asked(
    account: &dyn Account,
    input: &mut Input,
    answer: &str,
) -> Result<bool, Failure> {
    let wants_new = answer.is_empty() || answer.eq_ignore_ascii_case(RESEND);
    if wants_new {
        resend(account, input)?;
    }
    Ok(wants_new)
}

/// Asks twofactord for a new code and says where it went. When none could
/// be sent now (the hourly limit, a failed delivery), the person is told
/// why and may type the code they have or ask again; other refusals end
/// the command.
fn resend(account: &dyn Account, input: &mut Input) -> Result<(), Failure> {
    match account.resend_email() {
        Ok(masked) => input.tell(&format!(
            "A new code was sent to {}; the previous code no longer works.",
            one_line(&masked)
        )),
        // The limit is checked before a code is made: the last one stands.
        Err(f) if f.reason == Reason::RateLimited => input.tell(&format!(
            "{} The code sent before still works.",
            sentence(f.message())
        )),
        Err(f) if f.reason == Reason::Internal => input.tell(&format!(
            "{} Type the code from the latest email, or press Enter to ask again.",
            sentence(f.message())
        )),
        Err(f) => Err(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::SaveArgs;
    use crate::commands::backup::{CODES_HEADER, SAVED_PREFIX, SAVE_PROMPT};
    use crate::commands::fake::{
        assert_in_order, here, saved_codes, scripted, ten_codes, FakeAccount,
    };
    use std::path::Path;
    use twofactor_proto::AccountStatus;

    const ADDRESS: &str = "alice@example.com";
    const MASKED: &str = "a***@example.com";

    /// A daemon for alice with `methods`, which sends the first code.
    fn fake(methods: &[&str]) -> FakeAccount {
        let fake = FakeAccount::with_status(AccountStatus {
            user: "alice".into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            ..AccountStatus::default()
        });
        fake.email_sends.borrow_mut().push_back(Ok(MASKED.into()));
        fake
    }

    /// Like [`fake`], and ConfirmEmail answers with `answers`, in order.
    fn confirming(methods: &[&str], answers: Vec<Result<Vec<String>, Failure>>) -> FakeAccount {
        let fake = fake(methods);
        fake.email_confirms.borrow_mut().extend(answers);
        fake
    }

    /// Like [`fake`], and the first code is accepted, giving `codes`.
    fn accepting(methods: &[&str], codes: Vec<String>) -> FakeAccount {
        confirming(methods, vec![Ok(codes)])
    }

    fn bad_code() -> Failure {
        Failure::new(
            Reason::BadCode,
            "wrong code; check the latest email, or ask for a new code",
        )
    }

    /// `enable email ADDRESS` answered with `stdin`, with `--save` when
    /// given: the result, stdout, and what was said on stderr.
    fn enable(
        fake: &FakeAccount,
        stdin: &[u8],
        interactive: bool,
        save: Option<&Path>,
    ) -> (Result<(), Failure>, String, String) {
        let save = SaveArgs {
            save: save.map(Path::to_path_buf),
            force: false,
        };
        let args = EnableEmailArgs {
            address: ADDRESS.into(),
            save,
        };
        scripted(stdin, interactive, |input, out| {
            run(fake, input, out, &args, &here())
        })
    }

    fn enabled_then_codes() -> String {
        let mut s = format!("{ENABLED}\n\n{CODES_HEADER}\n");
        for c in ten_codes() {
            s.push_str(&c);
            s.push('\n');
        }
        s
    }

    /// The ConfirmEmail and ResendEmail calls, in order.
    fn code_calls(f: &FakeAccount) -> Vec<String> {
        f.calls()
            .into_iter()
            .filter(|c| c.starts_with("ConfirmEmail") || c == "ResendEmail")
            .collect()
    }

    #[test]
    fn first_method_prints_enabled_and_the_backup_codes() {
        let f = accepting(&[], ten_codes());
        let (r, out, said) = enable(&f, b"pw 1\n123456\n", false, None);
        r.unwrap();
        assert_eq!(
            f.calls(),
            [
                "Status",
                "EnrollEmail(alice@example.com,pw 1)",
                "ConfirmEmail(123456)"
            ]
        );
        assert_eq!(out, enabled_then_codes());
        // Told where the code went, after the password and before the code
        // is asked; the codes never go to stderr.
        assert_in_order(&said, &["Password for alice: ", &sent(MASKED), CODE_PROMPT]);
        assert!(said.contains("A code was sent to a***@example.com; it is valid for"));
        assert!(!said.contains(&ten_codes()[0]));
        // A script is not told about resending: it cannot.
        assert!(!said.contains(RESEND_HINT));
    }

    #[test]
    fn not_the_first_method_makes_no_codes() {
        for interactive in [false, true] {
            let f = accepting(&["app"], vec![]);
            let (r, out, said) = enable(&f, b"pw\n123456\n/tmp/x\n", interactive, None);
            r.unwrap();
            assert_eq!(out, format!("{ENABLED}\n"));
            assert!(!said.contains(SAVE_PROMPT), "{said}");
            assert!(!said.contains("already enabled"), "{said}");
        }
    }

    #[test]
    fn first_method_codes_are_saved_with_save() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = accepting(&[], ten_codes());
        let (r, out, _) = enable(&f, b"pw\n123456\n", false, Some(&path));
        r.unwrap();
        assert_eq!(saved_codes(&path), ten_codes());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# twofactor backup codes\n# Account: alice\n"));
        assert_eq!(
            out,
            format!(
                "{}{SAVED_PREFIX}{} (readable only by you).\n",
                enabled_then_codes(),
                path.display()
            )
        );
    }

    #[test]
    fn first_method_codes_are_offered_to_a_person() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("typed.txt");
        let stdin = format!("pw\n123456\n{}\n", path.display());
        let (r, out, said) = enable(&accepting(&[], ten_codes()), stdin.as_bytes(), true, None);
        r.unwrap();
        assert!(said.contains(SAVE_PROMPT));
        assert_eq!(saved_codes(&path), ten_codes());
        assert!(out.lines().last().unwrap().starts_with(SAVED_PREFIX));
    }

    #[test]
    fn save_is_refused_before_the_password_when_no_codes_will_come() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        let f = fake(&["app"]);
        let (r, out, said) = enable(&f, b"pw\n123456\n", false, Some(&path));
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::Usage, 2));
        assert_eq!(err.message(), super::super::NO_SET_TO_SAVE);
        assert_eq!(f.calls(), ["Status"]);
        assert!(out.is_empty());
        assert!(!said.contains("Password"), "{said}");
        assert!(!path.exists());
    }

    #[test]
    fn an_unusable_save_file_is_refused_before_the_password() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("codes.txt");
        std::fs::write(&path, b"old").unwrap();
        let f = fake(&[]);
        let (r, _, said) = enable(&f, b"pw\n123456\n", false, Some(&path));
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.message().contains("--force"), "{}", err.message());
        assert_eq!(f.calls(), ["Status"]);
        assert!(!said.contains("Password"));
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
    }

    #[test]
    fn a_person_gets_three_tries() {
        let f = confirming(&[], vec![Err(bad_code()), Ok(ten_codes())]);
        let (r, out, said) = enable(&f, b"pw\n111111\n222222\n", true, None);
        r.unwrap();
        assert_eq!(
            code_calls(&f),
            ["ConfirmEmail(111111)", "ConfirmEmail(222222)"]
        );
        assert!(
            said.contains(
                "Wrong code; check the latest email, or ask for a new code. \
                 Try again (2 tries left)."
            ),
            "{said}"
        );
        assert_eq!(out, enabled_then_codes());

        let f = confirming(&[], vec![Err(bad_code()), Err(bad_code()), Err(bad_code())]);
        let (r, out, _) = enable(&f, b"pw\n1\n2\n3\n4\n", true, None);
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::BadCode, 1));
        assert!(err.message().ends_with("Email codes were not enabled."));
        assert_eq!(code_calls(&f).len(), 3, "no fourth try");
        assert!(out.is_empty());
    }

    #[test]
    fn a_script_gets_one_try() {
        let f = confirming(&[], vec![Err(bad_code()), Ok(ten_codes())]);
        let (r, out, _) = enable(&f, b"pw\n000000\n123456\n", false, None);
        let err = r.unwrap_err();
        assert_eq!(err.exit_code(), 1);
        assert_eq!(
            err.message(),
            "Wrong code; check the latest email, or ask for a new code. \
             Email codes were not enabled."
        );
        assert_eq!(code_calls(&f), ["ConfirmEmail(000000)"]);
        assert!(out.is_empty());
    }

    #[test]
    fn a_script_s_empty_line_is_a_code_not_a_resend() {
        let not_six = Failure::new(Reason::InvalidInput, "not 6 digits");
        let f = confirming(&[], vec![Err(not_six)]);
        let (r, _, _) = enable(&f, b"pw\n\n", false, None);
        assert_eq!(r.unwrap_err().reason, Reason::InvalidInput);
        assert_eq!(code_calls(&f), ["ConfirmEmail()"]);
    }

    #[test]
    fn a_person_asks_for_a_new_code_without_using_a_try() {
        let f = confirming(&[], vec![Err(bad_code()), Err(bad_code()), Ok(ten_codes())]);
        f.email_sends
            .borrow_mut()
            .extend([Ok("b***@example.com".into()), Ok("c***@example.com".into())]);
        // Three wrong-or-right codes around an empty answer and `Resend`.
        let (r, out, said) = enable(&f, b"pw\n111111\n\n222222\n Resend \n333333\n", true, None);
        r.unwrap();
        assert_eq!(
            code_calls(&f),
            [
                "ConfirmEmail(111111)",
                "ResendEmail",
                "ConfirmEmail(222222)",
                "ResendEmail",
                "ConfirmEmail(333333)"
            ]
        );
        assert!(said.contains(RESEND_HINT), "{said}");
        assert!(
            said.contains(
                "A new code was sent to b***@example.com; the previous code no longer works."
            ),
            "{said}"
        );
        assert!(said.contains("c***@example.com"));
        assert_eq!(out, enabled_then_codes());
    }

    #[test]
    fn a_refused_resend_keeps_the_question_open() {
        for (reason, told) in [
            (Reason::RateLimited, "The code sent before still works."),
            (
                Reason::Internal,
                "Type the code from the latest email, or press Enter to ask again.",
            ),
        ] {
            let f = accepting(&[], ten_codes());
            f.email_sends
                .borrow_mut()
                .push_back(Err(Failure::new(reason, "not now")));
            let (r, _, said) = enable(&f, b"pw\n\n123456\n", true, None);
            r.unwrap();
            assert!(said.contains(&format!("Not now. {told}")), "{said}");
            assert_eq!(code_calls(&f), ["ResendEmail", "ConfirmEmail(123456)"]);
        }
    }

    #[test]
    fn an_expired_code_ends_at_once() {
        const WHY: &str = "that code has expired";
        let f = confirming(&[], vec![Err(Failure::new(Reason::NotFound, WHY))]);
        let (r, out, _) = enable(&f, b"pw\n123456\n654321\n", true, None);
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.message()), (Reason::NotFound, WHY));
        assert_eq!(code_calls(&f), ["ConfirmEmail(123456)"]);
        assert!(out.is_empty());

        let f = fake(&[]);
        f.email_sends
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::NotFound, "nothing pending")));
        let (r, _, _) = enable(&f, b"pw\n\n123456\n", true, None);
        assert_eq!(r.unwrap_err().message(), "nothing pending");
        assert_eq!(code_calls(&f), ["ResendEmail"]);
    }

    #[test]
    fn email_off_on_this_machine_is_the_daemon_s_refusal() {
        const OFF: &str = "email codes are not offered on this machine (an administrator \
                           turns them on in twofactord.toml, [email] codes = true)";
        let f = FakeAccount::with_status(AccountStatus {
            user: "alice".into(),
            ..AccountStatus::default()
        });
        f.email_sends
            .borrow_mut()
            .push_back(Err(Failure::new(Reason::InvalidInput, OFF)));
        let (r, out, said) = enable(&f, b"pw\n123456\n", false, None);
        let err = r.unwrap_err();
        assert_eq!((err.reason, err.exit_code()), (Reason::InvalidInput, 1));
        assert_eq!(err.message(), OFF);
        assert_eq!(f.calls(), ["Status", "EnrollEmail(alice@example.com,pw)"]);
        assert!(out.is_empty());
        assert!(!said.contains(CODE_PROMPT), "{said}");
    }

    #[test]
    fn wrong_password_or_a_busy_mailer_asks_no_code() {
        for (reason, code) in [(Reason::BadPassword, 1), (Reason::RateLimited, 1)] {
            let f = FakeAccount::with_status(AccountStatus::default());
            f.email_sends
                .borrow_mut()
                .push_back(Err(Failure::new(reason, "no")));
            let (r, out, said) = enable(&f, b"pw\n123456\n", true, None);
            assert_eq!(r.unwrap_err().exit_code(), code);
            assert!(out.is_empty());
            assert!(!said.contains(CODE_PROMPT));
        }
    }

    #[test]
    fn a_new_address_replaces_the_current_one_after_a_notice() {
        let f = accepting(&["app", "email"], vec![]);
        let (r, out, said) = enable(&f, b"pw\n654321\n123456\n", false, None);
        r.unwrap();
        // Told before the password: what replaces what, and when.
        assert_in_order(
            &said,
            &[
                "Email codes are already enabled for your account.",
                "replaces the current one once you confirm",
                "until then codes keep going to the current address",
                "Password for alice: ",
                CODE_PROMPT,
                REPLACED,
            ],
        );
        assert_eq!(out, format!("{ENABLED}\n"));
    }

    #[test]
    fn a_failed_new_address_says_the_current_one_stays() {
        let f = confirming(&["app", "email"], vec![Err(bad_code())]);
        let (r, out, said) = enable(&f, b"pw\n654321\n000000\n", false, None);
        let err = r.unwrap_err();
        assert!(
            err.message().ends_with(
                "The new address was not confirmed; codes keep going to the current one."
            ),
            "{}",
            err.message()
        );
        assert!(out.is_empty());
        assert!(!said.contains(REPLACED));
    }

    #[test]
    fn the_daemon_s_masked_address_stays_one_line() {
        assert_eq!(
            sent("a***@example.com\n\x1b[2J"),
            "A code was sent to a***@example.com [2J; it is valid for a few minutes \
             (the email says how long)."
        );
    }

    #[test]
    fn missing_code_is_usage() {
        let f = fake(&[]);
        let (r, out, _) = enable(&f, b"pw\n", false, None);
        assert_eq!(r.unwrap_err().exit_code(), 2);
        assert!(out.is_empty());
    }
}

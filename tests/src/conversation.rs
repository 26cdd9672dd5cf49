//! A PAM conversation through `pam-harness`, driven question by question,
//! keeping every event in order (what was shown before which prompt); and
//! the enrolment inside a login (mandatory policy, or after a recovery
//! code) driven to its end with a code computed by oathtool.

use std::time::Duration;

use crate::pam::{LiveLogin, Login, PamRun, Prompt};
use crate::proc::Interactive;
use crate::{qr, totp};

/// The prompt of the enrolment at login for the app's code (echo on).
pub const ENROL_CODE_PROMPT: &str = "Code from the app: ";
/// The prompt asking to confirm that the backup codes were saved.
pub const ENROL_CONFIRM_PROMPT: &str = "Type yes once you have saved them: ";

pub const TIMEOUT: Duration = Duration::from_secs(60);

/// One event the harness reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Info(String),
    Error(String),
    Prompt(Prompt),
    Result(String),
}

/// What was shown up to and including one prompt (or the result).
#[derive(Debug, Clone, Default)]
pub struct Turn {
    pub infos: Vec<String>,
    pub errors: Vec<String>,
    /// The prompt that ends the turn (None: the login ended).
    pub prompt: Option<Prompt>,
    /// The PAM result, if the login ended.
    pub result: Option<String>,
}

impl Turn {
    /// All info texts, one string.
    pub fn info_text(&self) -> String {
        self.infos.join("\n")
    }
    pub fn prompt_text(&self) -> &str {
        self.prompt.as_ref().map_or("", |p| p.text.as_str())
    }
    /// Asserts that the turn ends with exactly this prompt.
    pub fn assert_prompt(&self, text: &str, echo: bool) -> &Self {
        assert_eq!(
            self.prompt,
            Some(Prompt {
                echo,
                text: text.into()
            }),
            "expected the prompt {text:?} (echo {echo}): {self:?}"
        );
        self
    }
}

pub struct Conversation {
    p: Interactive,
    pub turns: Vec<Turn>,
}

impl Conversation {
    pub fn start(login: &Login) -> Conversation {
        Conversation {
            p: login.spawn().p,
            turns: Vec::new(),
        }
    }

    /// Reads events until the next prompt or the end of the login.
    pub fn next_turn(&mut self) -> Turn {
        let mut turn = Turn::default();
        loop {
            let line = self.p.expect_line(TIMEOUT, |_| true);
            let Ok(v) = serde_json::from_str::<serde_json::Value>(line.trim()) else {
                continue;
            };
            let text = v["text"].as_str().unwrap_or_default().to_string();
            match v["event"].as_str().unwrap_or_default() {
                "info" => turn.infos.push(text),
                "error" => turn.errors.push(text),
                "prompt" => {
                    turn.prompt = Some(Prompt {
                        echo: v["echo"].as_bool().unwrap_or(false),
                        text,
                    });
                    break;
                }
                "result" => {
                    turn.result = Some(v["name"].as_str().unwrap_or_default().to_string());
                    break;
                }
                _ => {}
            }
        }
        self.turns.push(turn.clone());
        turn
    }

    pub fn answer(&mut self, a: impl AsRef<[u8]>) {
        let mut bytes = a.as_ref().to_vec();
        bytes.push(b'\n');
        self.p.write(&bytes);
    }

    /// Ends the conversation (no more answers) and returns the whole run.
    pub fn finish(mut self) -> PamRun {
        PamRun::parse(self.p.finish(TIMEOUT))
    }
}

/// What the enrolment step of a login showed.
#[derive(Debug, Clone)]
pub struct Shown {
    /// The `Secret:` value without spaces.
    pub secret: String,
    /// The `Secret:` value as shown (grouped).
    pub grouped_secret: String,
    /// The `URI:` value.
    pub uri: String,
    /// The QR code, as drawn (lines of half blocks).
    pub qr_lines: Vec<String>,
    pub text: String,
}

/// Reads the secret, the URI and the QR code from the text shown with the
/// enrolment prompt.
pub fn read_shown(text: &str) -> Shown {
    let mut grouped = None;
    let mut uri = None;
    for line in text.lines() {
        if let Some(s) = line.trim().strip_prefix("Secret:") {
            grouped = Some(s.trim().to_string());
        }
        if let Some(s) = line.trim().strip_prefix("URI:") {
            uri = Some(s.trim().to_string());
        }
    }
    let grouped = grouped.unwrap_or_else(|| panic!("no `Secret:` line in what was shown:\n{text}"));
    Shown {
        secret: grouped.chars().filter(|c| !c.is_whitespace()).collect(),
        grouped_secret: grouped,
        uri: uri.unwrap_or_else(|| panic!("no `URI:` line in what was shown:\n{text}")),
        qr_lines: qr::block_lines(text),
        text: text.to_string(),
    }
}

/// Backup codes (`xxxx-xxxx-xxxx`, lowercase letters and digits of the
/// code alphabet) found on their own lines of `text`, in order.
pub fn backup_codes_in(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| is_backup_code(l))
        .map(str::to_string)
        .collect()
}

/// The code alphabet: no 0/o, 1/l/i.
pub const CODE_ALPHABET: &str = "23456789abcdefghjkmnpqrstuvwxyz";

pub fn is_backup_code(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 3
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.chars().all(|c| CODE_ALPHABET.contains(c)))
}

/// A whole enrolment at login, ended.
#[derive(Debug)]
pub struct AtLogin {
    /// The turns answered by `before`.
    pub before_turns: Vec<Turn>,
    /// The turn that asked for the code from the app.
    pub code_turn: Turn,
    pub shown: Shown,
    /// The code typed (from oathtool).
    pub code: String,
    /// The turn that showed the backup codes and asked for "yes".
    pub confirm_turn: Turn,
    pub backup_codes: Vec<String>,
    /// The last turn (the result, and what was shown with it).
    pub end_turn: Turn,
    pub run: PamRun,
}

/// Drives `login` through the enrolment: `before` answers the prompts that
/// come first (e.g. a recovery code at `Verification code: `), then the
/// code of the previous 30-second step (accepted within the ±1 window, so
/// the current step is still unused for the next login) and "yes". Asserts
/// each prompt and PAM_SUCCESS.
pub fn enrol_at_login(login: &Login, before: &[&str]) -> AtLogin {
    enrol_at_login_with(login, before, |secret| {
        totp::ensure_step_margin(4);
        totp::code_at_step_offset(secret, -1)
    })
}

/// Like [`enrol_at_login`], typing `code_for(secret)` for the app's code.
pub fn enrol_at_login_with(
    login: &Login,
    before: &[&str],
    code_for: impl FnOnce(&str) -> String,
) -> AtLogin {
    enrol_at_login_ending(login, before, code_for, "PAM_SUCCESS")
}

/// Like [`enrol_at_login_with`], asserting that the login ends in `result`
/// (e.g. `PAM_AUTH_ERR` when a module before this one failed).
pub fn enrol_at_login_ending(
    login: &Login,
    before: &[&str],
    code_for: impl FnOnce(&str) -> String,
    result: &str,
) -> AtLogin {
    let mut c = Conversation::start(login);
    let mut before_turns = Vec::new();
    for a in before {
        let t = c.next_turn();
        assert!(t.prompt.is_some(), "expected a prompt before {a:?}: {t:?}");
        before_turns.push(t);
        c.answer(a);
    }
    let code_turn = c.next_turn();
    code_turn.assert_prompt(ENROL_CODE_PROMPT, true);
    let shown = read_shown(&code_turn.info_text());
    let code = code_for(&shown.secret);
    c.answer(&code);
    let confirm_turn = c.next_turn();
    confirm_turn.assert_prompt(ENROL_CONFIRM_PROMPT, true);
    let backup_codes = backup_codes_in(&confirm_turn.info_text());
    c.answer("yes");
    let end_turn = c.next_turn();
    let run = c.finish();
    assert_eq!(
        end_turn.result.as_deref(),
        Some(result),
        "enrolment at login did not end in {result}: {}",
        run.describe()
    );
    AtLogin {
        before_turns,
        code_turn,
        shown,
        code,
        confirm_turn,
        backup_codes,
        end_turn,
        run,
    }
}

/// The wait in the module's lockout message: parses "Too many failed attempts; try again in N seconds." -> N.
pub fn lock_wait(errors: &[String]) -> Option<u64> {
    let [e] = errors else { return None };
    e.strip_prefix("Too many failed attempts; try again in ")?
        .strip_suffix(" seconds.")?
        .parse()
        .ok()
}

/// Logins started with [`Login::spawn`] that each wait at their code prompt
/// ([`crate::CODE_PROMPT`]), then all get `answer` at once, so that the
/// daemons check the answers at the same moment. Returns each login's run,
/// in the order given.
pub fn answer_together(mut logins: Vec<LiveLogin>, answer: &str) -> Vec<PamRun> {
    for login in &mut logins {
        assert_eq!(login.expect_prompt(), crate::CODE_PROMPT);
    }
    for login in &mut logins {
        login.answer(answer);
    }
    logins.into_iter().map(LiveLogin::finish).collect()
}

/// Of logins refused after a wrong code: how many got a verdict on it
/// ("Invalid verification code.") and how many were refused as locked
/// ("Too many failed attempts; …") without one. Panics on any other
/// outcome, with `context`.
pub fn verdicts_and_locks<'a>(
    runs: impl IntoIterator<Item = &'a PamRun>,
    context: &str,
) -> (usize, usize) {
    let (mut verdicts, mut locks) = (0, 0);
    for run in runs {
        run.assert_result("PAM_AUTH_ERR").assert_asked_code();
        if run.errors == [crate::INVALID_CODE] {
            verdicts += 1;
        } else if lock_wait(&run.errors).is_some() {
            locks += 1;
        } else {
            panic!(
                "neither a verdict on the code nor a lock: {}\n{context}",
                run.describe()
            );
        }
    }
    (verdicts, locks)
}

/// The daemon's audit lines `login-failure user=USER … reason=REASON` in
/// `log`.
pub fn failures_audited(log: &str, user: &str, reason: &str) -> usize {
    let failure = format!("login-failure user={user} ");
    let reason = format!(" reason={reason} ");
    log.lines()
        .filter(|l| l.contains(&failure) && l.contains(&reason))
        .count()
}

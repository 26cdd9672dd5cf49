//! What the daemon asks the PAM module to do next.
//!
//! On the wire a step is the D-Bus struct `(a(us)us)`: messages to show
//! (kind, text), then an action code and, for questions, the prompt.

#[cfg(feature = "zbus")]
use serde::{Deserialize, Serialize};
#[cfg(feature = "zbus")]
use zbus::zvariant::Type;

/// How a message is shown: `PAM_TEXT_INFO` or `PAM_ERROR_MSG`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageKind {
    Info,
    Error,
}

impl MessageKind {
    pub const fn code(self) -> u32 {
        match self {
            MessageKind::Info => 0,
            MessageKind::Error => 1,
        }
    }
    /// Unknown codes are shown as errors: a newer daemon never has a message
    /// swallowed by an older module.
    pub const fn from_code(code: u32) -> Self {
        match code {
            0 => MessageKind::Info,
            _ => MessageKind::Error,
        }
    }
}

/// The next thing the module must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask a question with echo off (`PAM_PROMPT_ECHO_OFF`), send the answer.
    AskHidden(String),
    /// Ask a question with echo on (`PAM_PROMPT_ECHO_ON`), send the answer.
    AskVisible(String),
    /// The login passed this module: `PAM_SUCCESS`.
    Accept,
    /// The login passed this module (`PAM_SUCCESS`), and a change to the
    /// account (a method set up at the prompt, a recovery code used) waits
    /// for the whole PAM stack: the module keeps the session and calls
    /// `Commit` from `pam_sm_acct_mgmt`, which libpam runs only after
    /// `pam_authenticate` succeeded. Without that call nothing is stored.
    AcceptPending,
    /// The login passed this module (`PAM_SUCCESS`) and nothing waits to
    /// be stored: the module keeps the session and, from
    /// `pam_sm_acct_mgmt`, sends `Commit` without waiting for its reply
    /// (on the login socket, with `NO_REPLY_EXPECTED`), so that the
    /// daemon's audit says the whole stack succeeded (`login-success`)
    /// while the login goes on. The code was used up when it was
    /// accepted; the account phase has nothing to decide. The daemon only
    /// sends this to a module that said it can (`commit_report` in
    /// `Begin`); an older module reads it as `Deny`.
    AcceptReport,
    /// The login failed: `PAM_AUTH_ERR`.
    Deny,
    /// Ask a security key to sign the daemon's challenge (an encoded
    /// [`crate::key::AssertionRequest`], carried unread to the key helper)
    /// and send its [`crate::key::KeyAnswer`] back. The daemon only sends
    /// this to a module that said it can (`security_keys` in `Begin`).
    UseKey(Vec<u8>),
}

const ACTION_ASK_HIDDEN: u32 = 0;
const ACTION_ASK_VISIBLE: u32 = 1;
const ACTION_ACCEPT: u32 = 2;
const ACTION_DENY: u32 = 3;
const ACTION_ACCEPT_PENDING: u32 = 4;
const ACTION_USE_KEY: u32 = 5;
const ACTION_ACCEPT_REPORT: u32 = 6;

/// One step of the login conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub messages: Vec<(MessageKind, String)>,
    pub action: Action,
}

/// The wire form of [`Step`], D-Bus signature `(a(us)us)`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "zbus", derive(Serialize, Deserialize, Type))]
pub struct WireStep {
    pub messages: Vec<(u32, String)>,
    pub action: u32,
    pub prompt: String,
}

impl Step {
    pub fn new(action: Action) -> Self {
        Step {
            messages: Vec::new(),
            action,
        }
    }
    pub fn info(mut self, text: impl Into<String>) -> Self {
        self.messages.push((MessageKind::Info, text.into()));
        self
    }
    pub fn error(mut self, text: impl Into<String>) -> Self {
        self.messages.push((MessageKind::Error, text.into()));
        self
    }
    pub fn is_final(&self) -> bool {
        matches!(
            self.action,
            Action::Accept | Action::AcceptPending | Action::AcceptReport | Action::Deny
        )
    }

    pub fn to_wire(&self) -> WireStep {
        let (action, prompt) = match &self.action {
            Action::AskHidden(p) => (ACTION_ASK_HIDDEN, p.clone()),
            Action::AskVisible(p) => (ACTION_ASK_VISIBLE, p.clone()),
            Action::Accept => (ACTION_ACCEPT, String::new()),
            Action::AcceptPending => (ACTION_ACCEPT_PENDING, String::new()),
            Action::AcceptReport => (ACTION_ACCEPT_REPORT, String::new()),
            Action::Deny => (ACTION_DENY, String::new()),
            Action::UseKey(request) => (ACTION_USE_KEY, crate::key::to_hex(request)),
        };
        WireStep {
            messages: self
                .messages
                .iter()
                .map(|(k, t)| (k.code(), t.clone()))
                .collect(),
            action,
            prompt,
        }
    }

    /// Decodes a wire step. An unknown action code becomes [`Action::Deny`]:
    /// a client never turns something it does not understand into a success.
    pub fn from_wire(w: WireStep) -> Self {
        let action = match w.action {
            ACTION_ASK_HIDDEN => Action::AskHidden(w.prompt),
            ACTION_ASK_VISIBLE => Action::AskVisible(w.prompt),
            ACTION_ACCEPT => Action::Accept,
            ACTION_ACCEPT_PENDING => Action::AcceptPending,
            ACTION_ACCEPT_REPORT => Action::AcceptReport,
            ACTION_USE_KEY => match crate::key::from_hex(&w.prompt) {
                Some(request) => Action::UseKey(request),
                None => Action::Deny,
            },
            _ => Action::Deny,
        };
        Step {
            messages: w
                .messages
                .into_iter()
                .map(|(k, t)| (MessageKind::from_code(k), t))
                .collect(),
            action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_round_trip() {
        for action in [
            Action::AskHidden("Verification code: ".into()),
            Action::AskVisible("Saved them? [yes] ".into()),
            Action::Accept,
            Action::AcceptPending,
            Action::AcceptReport,
            Action::Deny,
            Action::UseKey(vec![0x41, 0, 1, 0xff]),
        ] {
            let s = Step::new(action).info("hello").error("bad");
            assert_eq!(Step::from_wire(s.to_wire()), s);
        }
    }

    #[test]
    fn unknown_action_is_deny() {
        let w = WireStep {
            messages: vec![(7, "x".into())],
            action: 99,
            prompt: "p".into(),
        };
        let s = Step::from_wire(w);
        assert_eq!(s.action, Action::Deny);
        assert_eq!(s.messages, vec![(MessageKind::Error, "x".into())]);
    }

    #[test]
    fn a_key_step_whose_request_is_not_hex_is_deny() {
        let w = WireStep {
            messages: vec![],
            action: ACTION_USE_KEY,
            prompt: "not hex".into(),
        };
        assert_eq!(Step::from_wire(w).action, Action::Deny);
    }
}

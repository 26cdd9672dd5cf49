//! The PAM conversation, behind a trait so that the login loop can be tested
//! with a scripted fake. The real one is the application's `pam_conv`.

use std::fmt;

use pam::constants::{
    PamMessageStyle, PAM_ERROR_MSG, PAM_PROMPT_ECHO_OFF, PAM_PROMPT_ECHO_ON, PAM_TEXT_INFO,
};
use pam::conv::Conv;
use pam::module::PamHandle;
use zeroize::Zeroizing;

/// An answer typed by the user: wiped from memory when dropped.
pub type Answer = Zeroizing<Vec<u8>>;

/// The conversation failed (the application returned an error, or has no
/// conversation function). Holds the PAM code the application gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvError(pub i32);

impl fmt::Display for ConvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conversation failed (PAM code {})", self.0)
    }
}

/// What the module needs from the application.
pub trait Conversation {
    /// Shows a line of text (`PAM_TEXT_INFO`).
    fn info(&mut self, text: &str) -> Result<(), ConvError>;
    /// Shows an error line (`PAM_ERROR_MSG`).
    fn error(&mut self, text: &str) -> Result<(), ConvError>;
    /// Asks a question (`PAM_PROMPT_ECHO_ON` / `PAM_PROMPT_ECHO_OFF`) and
    /// returns the raw bytes of the answer; no answer at all is an empty one.
    fn ask(&mut self, prompt: &str, echo: bool) -> Result<Answer, ConvError>;
}

/// The application's conversation function, through pam-bindings.
pub struct PamConversation<'a> {
    conv: Option<Conv<'a>>,
}

impl<'a> PamConversation<'a> {
    /// Looks up `PAM_CONV`. A missing conversation is not an error yet: the
    /// first message then fails with `PAM_CONV_ERR`.
    pub fn new(pamh: &'a PamHandle) -> Self {
        PamConversation {
            conv: pamh.get_item::<Conv>().ok().flatten(),
        }
    }

    fn send(&self, style: PamMessageStyle, text: &str) -> Result<Option<Answer>, ConvError> {
        let conv = self.conv.as_ref().ok_or(ConvError(
            pam::constants::PamResultCode::PAM_CONV_ERR as i32,
        ))?;
        // A message cannot carry NUL through the C interface.
        let text = text.replace('\0', " ");
        let reply = conv
            .send(style, &text)
            .map_err(|code| ConvError(code as i32))?;
        // SecretBytes wipes itself on drop; the copy is wiped by Zeroizing.
        Ok(reply.map(|secret| Zeroizing::new(secret.as_bytes().to_vec())))
    }
}

impl Conversation for PamConversation<'_> {
    fn info(&mut self, text: &str) -> Result<(), ConvError> {
        self.send(PAM_TEXT_INFO, text).map(|_| ())
    }

    fn error(&mut self, text: &str) -> Result<(), ConvError> {
        self.send(PAM_ERROR_MSG, text).map(|_| ())
    }

    fn ask(&mut self, prompt: &str, echo: bool) -> Result<Answer, ConvError> {
        let style = if echo {
            PAM_PROMPT_ECHO_ON
        } else {
            PAM_PROMPT_ECHO_OFF
        };
        Ok(self.send(style, prompt)?.unwrap_or_default())
    }
}

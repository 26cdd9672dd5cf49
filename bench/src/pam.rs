//! One login through libpam (Linux-PAM), with a conversation that answers
//! the first prompt with a code.

use std::ffi::{c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;
use std::time::{Duration, Instant};

use twofactor_pam_client::*;

/// What the conversation answers (`appdata_ptr`).
struct Answers<'a> {
    code: &'a str,
    prompts: u32,
    /// When the first prompt came.
    first_prompt: Option<Instant>,
}

/// When each part of a successful login ended, counted from the start of
/// `pam_start`: where the time goes.
#[derive(Debug, Clone, Copy)]
pub struct Phases {
    pub pam_start: Duration,
    /// The code prompt reached the conversation (for twofactor: the bus
    /// connection and `Begin` are done).
    pub first_prompt: Duration,
    pub pam_authenticate: Duration,
    pub pam_acct_mgmt: Duration,
    /// The whole login.
    pub pam_end: Duration,
}

/// Logs `user` in: when each phase ended, or the failure as
/// `phase:PAM_CODE` (e.g. `auth:PAM_AUTH_ERR`).
pub fn login(
    confdir: &CStr,
    service: &CStr,
    user: &CStr,
    rhost: &CStr,
    code: &str,
) -> Result<Phases, String> {
    let began = Instant::now();
    let mut answers = Answers {
        code,
        prompts: 0,
        first_prompt: None,
    };
    let conv = PamConv {
        conv: Some(conversation),
        appdata_ptr: (&mut answers as *mut Answers).cast(),
    };
    let mut pamh: *mut PamHandle = ptr::null_mut();
    // SAFETY: the strings are NUL-terminated and outlive the handle; `conv`
    // and `answers` live until after pam_end; pamh is a valid out-pointer.
    let rc = unsafe {
        pam_start_confdir(
            service.as_ptr(),
            user.as_ptr(),
            &conv,
            confdir.as_ptr(),
            &mut pamh,
        )
    };
    if rc != PAM_SUCCESS || pamh.is_null() {
        return Err(format!("start:{}", code_name(rc)));
    }
    let pam_start = began.elapsed();
    let (mut authenticated, mut account_checked) = (Duration::ZERO, Duration::ZERO);
    // SAFETY: pamh is a live handle; libpam copies the string.
    let mut rc = unsafe { pam_set_item(pamh, PAM_RHOST, rhost.as_ptr().cast()) };
    let mut phase = "set_item";
    if rc == PAM_SUCCESS {
        phase = "auth";
        // SAFETY: pamh is a live handle.
        rc = unsafe { pam_authenticate(pamh, 0) };
        authenticated = began.elapsed();
    }
    if rc == PAM_SUCCESS {
        phase = "account";
        // SAFETY: pamh is a live handle.
        rc = unsafe { pam_acct_mgmt(pamh, 0) };
        account_checked = began.elapsed();
    }
    // SAFETY: pamh is live and ended once.
    unsafe { pam_end(pamh, rc) };
    let pam_end = began.elapsed();
    if rc == PAM_SUCCESS {
        Ok(Phases {
            pam_start,
            first_prompt: answers
                .first_prompt
                .map_or(Duration::ZERO, |t| t.duration_since(began)),
            pam_authenticate: authenticated,
            pam_acct_mgmt: account_checked,
            pam_end,
        })
    } else {
        Err(format!("{phase}:{}", code_name(rc)))
    }
}

extern "C" fn conversation(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int {
    // A panic must not unwind into libpam.
    catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: libpam passes num_msg message pointers (Linux-PAM layout),
        // a place for the replies, and our appdata (an Answers alive for
        // the whole login).
        unsafe { converse(num_msg, msg, resp, appdata_ptr) }
    }))
    .unwrap_or(PAM_CONV_ERR)
}

/// # Safety
/// As libpam calls a conversation function; `appdata` points at the
/// `Answers` of a live login.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    if appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is the &mut Answers of login(), alive during the call.
    let answers = unsafe { &mut *appdata.cast::<Answers>() };
    let reply = |style: c_int, _text: &CStr| match style {
        PAM_TEXT_INFO | PAM_ERROR_MSG => Reply::Nothing,
        PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
            answers.prompts += 1;
            if answers.prompts == 1 {
                answers.first_prompt = Some(Instant::now());
                Reply::Answer(answers.code.as_bytes().to_vec())
            } else {
                Reply::Answer(Vec::new())
            }
        }
        _ => Reply::Fail(PAM_CONV_ERR),
    };
    // SAFETY: as this function's own contract.
    unsafe { twofactor_pam_client::converse(num_msg, msg, resp, reply) }
}

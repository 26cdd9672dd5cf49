//! One login through libpam (Linux-PAM), with a conversation that answers
//! the first prompt with a code.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr;

const PAM_SUCCESS: c_int = 0;
const PAM_BUF_ERR: c_int = 5;
const PAM_CONV_ERR: c_int = 19;
const PAM_RHOST: c_int = 4;

const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_ERROR_MSG: c_int = 3;
const PAM_TEXT_INFO: c_int = 4;

/// Names of the Linux-PAM return codes, by value (`_pam_types.h`).
const CODE_NAMES: [&str; 32] = [
    "PAM_SUCCESS",
    "PAM_OPEN_ERR",
    "PAM_SYMBOL_ERR",
    "PAM_SERVICE_ERR",
    "PAM_SYSTEM_ERR",
    "PAM_BUF_ERR",
    "PAM_PERM_DENIED",
    "PAM_AUTH_ERR",
    "PAM_CRED_INSUFFICIENT",
    "PAM_AUTHINFO_UNAVAIL",
    "PAM_USER_UNKNOWN",
    "PAM_MAXTRIES",
    "PAM_NEW_AUTHTOK_REQD",
    "PAM_ACCT_EXPIRED",
    "PAM_SESSION_ERR",
    "PAM_CRED_UNAVAIL",
    "PAM_CRED_EXPIRED",
    "PAM_CRED_ERR",
    "PAM_NO_MODULE_DATA",
    "PAM_CONV_ERR",
    "PAM_AUTHTOK_ERR",
    "PAM_AUTHTOK_RECOVERY_ERR",
    "PAM_AUTHTOK_LOCK_BUSY",
    "PAM_AUTHTOK_DISABLE_AGING",
    "PAM_TRY_AGAIN",
    "PAM_IGNORE",
    "PAM_ABORT",
    "PAM_AUTHTOK_EXPIRED",
    "PAM_MODULE_UNKNOWN",
    "PAM_BAD_ITEM",
    "PAM_CONV_AGAIN",
    "PAM_INCOMPLETE",
];

fn code_name(code: c_int) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i).copied())
        .unwrap_or("PAM_UNKNOWN")
}

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

type ConvFn = extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
struct PamConv {
    conv: Option<ConvFn>,
    appdata_ptr: *mut c_void,
}

/// Opaque `pam_handle_t`.
#[repr(C)]
struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
}

/// What the conversation answers (`appdata_ptr`).
struct Answers<'a> {
    code: &'a str,
    prompts: u32,
}

/// Logs `user` in: Ok, or the failure as `phase:PAM_CODE` (e.g.
/// `auth:PAM_AUTH_ERR`).
pub fn login(
    confdir: &CStr,
    service: &CStr,
    user: &CStr,
    rhost: &CStr,
    code: &str,
) -> Result<(), String> {
    let mut answers = Answers { code, prompts: 0 };
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
    // SAFETY: pamh is a live handle; libpam copies the string.
    let mut rc = unsafe { pam_set_item(pamh, PAM_RHOST, rhost.as_ptr().cast()) };
    let mut phase = "set_item";
    if rc == PAM_SUCCESS {
        phase = "auth";
        // SAFETY: pamh is a live handle.
        rc = unsafe { pam_authenticate(pamh, 0) };
    }
    if rc == PAM_SUCCESS {
        phase = "account";
        // SAFETY: pamh is a live handle.
        rc = unsafe { pam_acct_mgmt(pamh, 0) };
    }
    // SAFETY: pamh is live and ended once.
    unsafe { pam_end(pamh, rc) };
    if rc == PAM_SUCCESS {
        Ok(())
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

/// Frees the replies filled in so far.
///
/// # Safety
/// `replies` comes from `calloc(n, ..)`, every non-null `resp` from malloc.
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, inside the array; resp was malloc'ed by us.
        unsafe { libc::free((*replies.add(i)).resp.cast()) };
    }
    // SAFETY: calloc'ed by us, freed once.
    unsafe { libc::free(replies.cast()) };
}

/// # Safety
/// As libpam calls a conversation function.
unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata: *mut c_void,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() || appdata.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: appdata is the &mut Answers of login(), alive during the call.
    let answers = unsafe { &mut *appdata.cast::<Answers>() };
    // SAFETY: a zeroed array of n replies, checked for null.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: i < num_msg; each entry is a valid message pointer.
        let style = unsafe { (**msg.add(i)).msg_style };
        let answer: &[u8] = match style {
            PAM_TEXT_INFO | PAM_ERROR_MSG => continue,
            PAM_PROMPT_ECHO_OFF | PAM_PROMPT_ECHO_ON => {
                answers.prompts += 1;
                if answers.prompts == 1 {
                    answers.code.as_bytes()
                } else {
                    b""
                }
            }
            _ => {
                // SAFETY: as above.
                unsafe { free_replies(replies, n) };
                return PAM_CONV_ERR;
            }
        };
        // SAFETY: room for the answer and its NUL; checked for null.
        let p = unsafe { libc::malloc(answer.len() + 1) }.cast::<u8>();
        if p.is_null() {
            // SAFETY: as above.
            unsafe { free_replies(replies, n) };
            return PAM_BUF_ERR;
        }
        // SAFETY: p has answer.len() + 1 bytes, not overlapping `answer`.
        unsafe {
            ptr::copy_nonoverlapping(answer.as_ptr(), p, answer.len());
            *p.add(answer.len()) = 0;
            (*replies.add(i)).resp = p.cast();
        }
    }
    // SAFETY: resp is writable; libpam takes ownership of the replies.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

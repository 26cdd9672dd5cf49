//! What a PAM *application* (not a module) needs from libpam: the
//! conversation types, the functions of a login (`pam_start_confdir` to
//! `pam_end`), the constants used, and the names of the return codes.
//! Shared by the tests' `pam-harness` and the benchmark's `pam-bench`, the
//! project's two libpam clients. Besides the declarations, one piece of
//! code both need: the body of a conversation function ([`converse`]),
//! which builds the reply array libpam takes over.

use std::ffi::{c_char, c_int, c_void, CStr};
use std::ptr;

pub const PAM_SUCCESS: c_int = 0;
pub const PAM_BUF_ERR: c_int = 5;
pub const PAM_CONV_ERR: c_int = 19;

pub const PAM_SILENT: c_int = 0x8000;

pub const PAM_USER: c_int = 2;
pub const PAM_TTY: c_int = 3;
pub const PAM_RHOST: c_int = 4;
pub const PAM_RUSER: c_int = 8;

pub const PAM_PROMPT_ECHO_OFF: c_int = 1;
pub const PAM_PROMPT_ECHO_ON: c_int = 2;
pub const PAM_ERROR_MSG: c_int = 3;
pub const PAM_TEXT_INFO: c_int = 4;

/// Names of the Linux-PAM return codes, by value (`_pam_types.h`).
pub const CODE_NAMES: [&str; 32] = [
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

#[repr(C)]
pub struct PamMessage {
    pub msg_style: c_int,
    pub msg: *const c_char,
}

#[repr(C)]
pub struct PamResponse {
    pub resp: *mut c_char,
    pub resp_retcode: c_int,
}

pub type ConvFn = extern "C" fn(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    appdata_ptr: *mut c_void,
) -> c_int;

#[repr(C)]
pub struct PamConv {
    pub conv: Option<ConvFn>,
    pub appdata_ptr: *mut c_void,
}

/// Opaque `pam_handle_t`.
#[repr(C)]
pub struct PamHandle {
    _private: [u8; 0],
}

#[link(name = "pam")]
extern "C" {
    pub fn pam_start_confdir(
        service_name: *const c_char,
        user: *const c_char,
        pam_conversation: *const PamConv,
        confdir: *const c_char,
        pamh: *mut *mut PamHandle,
    ) -> c_int;
    pub fn pam_set_item(pamh: *mut PamHandle, item_type: c_int, item: *const c_void) -> c_int;
    pub fn pam_authenticate(pamh: *mut PamHandle, flags: c_int) -> c_int;
    pub fn pam_acct_mgmt(pamh: *mut PamHandle, flags: c_int) -> c_int;
    pub fn pam_end(pamh: *mut PamHandle, pam_status: c_int) -> c_int;
}

/// The name of a Linux-PAM return code (`PAM_UNKNOWN` if out of range).
pub fn code_name(code: c_int) -> &'static str {
    usize::try_from(code)
        .ok()
        .and_then(|i| CODE_NAMES.get(i).copied())
        .unwrap_or("PAM_UNKNOWN")
}

/// What a client says to one message of a conversation.
pub enum Reply {
    /// Answer it (a prompt) with these bytes; they are wiped once copied.
    Answer(Vec<u8>),
    /// Nothing to answer (a text shown).
    Nothing,
    /// Fail the whole conversation with this PAM code.
    Fail(c_int),
}

/// The body of a conversation function: asks `reply` about each of the
/// `num_msg` messages (its style and text) and hands libpam the array of
/// replies, each a malloc'ed NUL-terminated string, as libpam frees them.
/// When a reply is `Fail` (or memory runs out), what was built is wiped,
/// freed, and the code returned.
///
/// # Safety
/// As libpam calls a conversation function: `msg` holds `num_msg` valid
/// message pointers (Linux-PAM layout: an array of pointers) and `resp` is
/// writable.
pub unsafe fn converse(
    num_msg: c_int,
    msg: *mut *const PamMessage,
    resp: *mut *mut PamResponse,
    mut reply: impl FnMut(c_int, &CStr) -> Reply,
) -> c_int {
    let Ok(n) = usize::try_from(num_msg) else {
        return PAM_CONV_ERR;
    };
    if n == 0 || msg.is_null() || resp.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: a zeroed array of n replies, checked for null.
    let replies =
        unsafe { libc::calloc(n, std::mem::size_of::<PamResponse>()) }.cast::<PamResponse>();
    if replies.is_null() {
        return PAM_BUF_ERR;
    }
    for i in 0..n {
        // SAFETY: i < num_msg; each entry is a valid message pointer.
        let m = unsafe { &**msg.add(i) };
        let text = if m.msg.is_null() {
            c""
        } else {
            // SAFETY: libpam's message text is a NUL-terminated string.
            unsafe { CStr::from_ptr(m.msg) }
        };
        let code = match reply(m.msg_style, text) {
            Reply::Nothing => continue,
            Reply::Fail(code) => code,
            Reply::Answer(mut bytes) => {
                let p = malloc_cstring(&bytes);
                bytes.iter_mut().for_each(|b| *b = 0);
                if !p.is_null() {
                    // SAFETY: i < n, inside the calloc'ed array.
                    unsafe { (*replies.add(i)).resp = p };
                    continue;
                }
                PAM_BUF_ERR
            }
        };
        // SAFETY: replies came from calloc above, with malloc'ed answers only.
        unsafe { free_replies(replies, n) };
        return code;
    }
    // SAFETY: resp is writable (checked non-null); libpam takes ownership.
    unsafe { *resp = replies };
    PAM_SUCCESS
}

/// Frees the replies filled in so far, wiping the answers first.
///
/// # Safety
/// `replies` comes from `calloc(n, ..)`, every non-null `resp` from malloc.
unsafe fn free_replies(replies: *mut PamResponse, n: usize) {
    for i in 0..n {
        // SAFETY: i < n, inside the calloc'ed array.
        let r = unsafe { &mut *replies.add(i) };
        if !r.resp.is_null() {
            // SAFETY: resp is a NUL-terminated malloc'ed string we wrote.
            let len = unsafe { libc::strlen(r.resp) };
            // SAFETY: the string owns len bytes before its NUL.
            unsafe { ptr::write_bytes(r.resp, 0, len) };
            // SAFETY: malloc'ed by us, freed once.
            unsafe { libc::free(r.resp.cast()) };
            r.resp = ptr::null_mut();
        }
    }
    // SAFETY: calloc'ed by us, freed once.
    unsafe { libc::free(replies.cast()) };
}

/// Copies `bytes` into a new malloc'ed NUL-terminated string (null when
/// memory runs out).
fn malloc_cstring(bytes: &[u8]) -> *mut c_char {
    // SAFETY: plain allocation of len + 1 bytes; checked for null below.
    let p = unsafe { libc::malloc(bytes.len() + 1) }.cast::<u8>();
    if p.is_null() {
        return ptr::null_mut();
    }
    // SAFETY: p has room for len + 1 bytes and does not overlap `bytes`.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        *p.add(bytes.len()) = 0;
    }
    p.cast()
}

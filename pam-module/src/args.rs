//! The module's arguments on its PAM line, parsed and validated.
//!
//! ```text
//! auth required pam_twofactor.so [socket=PATH|none] [bus=ADDRESS] [failmode=secure|safe] [timeout=SECONDS]
//!                                [key_helper=PATH|none] [key_timeout=SECONDS]
//! ```
//!
//! `key_helper=` is the program that drives a security key
//! (/usr/libexec/twofactor/twofactor-key by default; `none`: security keys
//! are never used by this service), `key_timeout=` how long it waits for a
//! touch (30 s; 5 to 120). A debug build (the tests) also takes
//! `key_device=PATH`, a software key on a Unix socket, handed to a helper
//! built with its test transport; the release module does not know it.
//!
//! The module asks the daemon on its login socket (`socket=`, by default
//! /run/twofactor/login) and, when that socket is missing, on the bus
//! (`bus=`, by default the system bus). With `bus=` and no `socket=`, only
//! that bus is used: a test or demo bus is never bypassed by the host's
//! socket.
//!
//! An unknown, repeated or malformed argument is an error: the hook logs it and
//! refuses the login (`PAM_SERVICE_ERR`). It is never ignored, so a typo such
//! as `failmode=safe ` or `fialmode=safe` cannot silently change behaviour.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use twofactor_proto::names::{LOGIN_SOCKET_PATH, SYSTEM_BUS_ADDRESS};

/// Where the key helper is installed.
pub const KEY_HELPER_PATH: &str = "/usr/libexec/twofactor/twofactor-key";
/// Default and bounds of `key_timeout=`, in seconds.
pub const DEFAULT_KEY_TIMEOUT_SECONDS: u64 = 30;
const KEY_TIMEOUT_SECONDS: std::ops::RangeInclusive<u64> = 5..=120;

/// Default D-Bus call timeout in seconds.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 15;
/// Largest accepted `timeout=` value in seconds.
pub const MAX_TIMEOUT_SECONDS: u64 = 300;
/// Longest accepted `bus=` address, a sanity bound.
const MAX_BUS_ADDRESS_BYTES: usize = 1024;
/// Longest `socket=` path: what fits a Unix socket address (`sun_path`,
/// with its NUL).
const MAX_SOCKET_PATH_BYTES: usize = 107;

/// What to do when the daemon cannot be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailMode {
    /// Refuse the login (`PAM_AUTHINFO_UNAVAIL`). The default.
    Secure,
    /// Let the login pass this module (`PAM_SUCCESS`).
    Safe,
}

impl FailMode {
    pub fn name(self) -> &'static str {
        match self {
            FailMode::Secure => "secure",
            FailMode::Safe => "safe",
        }
    }
}

/// The validated arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Args {
    /// The daemon's login socket, tried first; None: the bus only.
    pub socket: Option<PathBuf>,
    /// D-Bus address to connect to when the login socket is missing; the
    /// system bus socket unless `bus=` is given.
    pub bus: String,
    pub failmode: FailMode,
    /// Timeout of each D-Bus call.
    pub timeout: Duration,
    /// The security-key helper; None: keys are not used.
    pub key_helper: Option<PathBuf>,
    /// How long the helper waits for a touch.
    pub key_timeout: Duration,
    /// A software key for the tests (debug builds only).
    pub key_device: Option<PathBuf>,
}

impl Default for Args {
    fn default() -> Self {
        Args {
            socket: Some(PathBuf::from(LOGIN_SOCKET_PATH)),
            bus: SYSTEM_BUS_ADDRESS.to_string(),
            failmode: FailMode::Secure,
            timeout: Duration::from_secs(DEFAULT_TIMEOUT_SECONDS),
            key_helper: Some(PathBuf::from(KEY_HELPER_PATH)),
            key_timeout: Duration::from_secs(DEFAULT_KEY_TIMEOUT_SECONDS),
            key_device: None,
        }
    }
}

/// Why the arguments were refused. The text names the argument so an
/// administrator can fix the PAM line; arguments never carry secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArgsError {
    /// The argument is not valid UTF-8.
    NotUtf8,
    /// An argument this module does not know.
    Unknown(String),
    /// The same key given twice.
    Repeated(&'static str),
    /// A known key with a value that is not allowed.
    BadValue { key: &'static str, value: String },
}

impl fmt::Display for ArgsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ArgsError::NotUtf8 => write!(f, "module argument is not valid UTF-8"),
            ArgsError::Unknown(a) => write!(f, "unknown module argument {a:?}"),
            ArgsError::Repeated(k) => write!(f, "module argument {k}= given more than once"),
            ArgsError::BadValue { key, value } => {
                let expected = match *key {
                    "failmode" => "secure or safe",
                    "timeout" => "whole seconds from 1 to 300",
                    "socket" => "an absolute path of at most 107 bytes, or none",
                    "key_helper" => "an absolute path, or none",
                    "key_timeout" => "whole seconds from 5 to 120",
                    "key_device" => "an absolute path",
                    _ => "a non-empty D-Bus address",
                };
                write!(f, "bad value {value:?} for {key}= (expected {expected})")
            }
        }
    }
}

impl std::error::Error for ArgsError {}

/// Parses the arguments as libpam hands them over.
pub fn parse<'a, I>(raw: I) -> Result<Args, ArgsError>
where
    I: IntoIterator<Item = &'a [u8]>,
{
    let mut args = Args::default();
    let mut seen_bus = false;
    let mut seen_socket = false;
    let mut seen_failmode = false;
    let mut seen_timeout = false;
    let mut seen_key_helper = false;
    let mut seen_key_timeout = false;
    #[cfg(debug_assertions)]
    let mut seen_key_device = false;

    for bytes in raw {
        let arg = std::str::from_utf8(bytes).map_err(|_| ArgsError::NotUtf8)?;
        let Some((key, value)) = arg.split_once('=') else {
            return Err(ArgsError::Unknown(arg.to_string()));
        };
        match key {
            "bus" => {
                mark(&mut seen_bus, "bus")?;
                args.bus = parse_bus(value)?;
            }
            "socket" => {
                mark(&mut seen_socket, "socket")?;
                args.socket = parse_socket(value)?;
            }
            "failmode" => {
                mark(&mut seen_failmode, "failmode")?;
                args.failmode = parse_failmode(value)?;
            }
            "timeout" => {
                mark(&mut seen_timeout, "timeout")?;
                args.timeout = parse_timeout(value)?;
            }
            "key_helper" => {
                mark(&mut seen_key_helper, "key_helper")?;
                args.key_helper = match value {
                    "none" => None,
                    path => Some(parse_path("key_helper", path)?),
                };
            }
            "key_timeout" => {
                mark(&mut seen_key_timeout, "key_timeout")?;
                args.key_timeout = parse_key_timeout(value)?;
            }
            // The software key of the tests: never in a release build.
            #[cfg(debug_assertions)]
            "key_device" => {
                mark(&mut seen_key_device, "key_device")?;
                args.key_device = Some(parse_path("key_device", value)?);
            }
            _ => return Err(ArgsError::Unknown(arg.to_string())),
        }
    }
    if seen_bus && !seen_socket {
        // A bus of its own (tests, the demo): not the host's socket.
        args.socket = None;
    }
    Ok(args)
}

fn mark(seen: &mut bool, key: &'static str) -> Result<(), ArgsError> {
    if *seen {
        return Err(ArgsError::Repeated(key));
    }
    *seen = true;
    Ok(())
}

fn bad(key: &'static str, value: &str) -> ArgsError {
    ArgsError::BadValue {
        key,
        value: value.to_string(),
    }
}

fn parse_bus(value: &str) -> Result<String, ArgsError> {
    let ok = !value.is_empty()
        && value.len() <= MAX_BUS_ADDRESS_BYTES
        && value.contains(':')
        && value.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(value.to_string())
    } else {
        Err(bad("bus", value))
    }
}

fn parse_socket(value: &str) -> Result<Option<PathBuf>, ArgsError> {
    if value == "none" {
        return Ok(None);
    }
    let ok = value.starts_with('/')
        && value.len() <= MAX_SOCKET_PATH_BYTES
        && value.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(Some(PathBuf::from(value)))
    } else {
        Err(bad("socket", value))
    }
}

fn parse_path(key: &'static str, value: &str) -> Result<PathBuf, ArgsError> {
    let ok = value.starts_with('/')
        && value.len() <= 4096
        && value.chars().all(|c| c.is_ascii_graphic());
    if ok {
        Ok(PathBuf::from(value))
    } else {
        Err(bad(key, value))
    }
}

fn parse_key_timeout(value: &str) -> Result<Duration, ArgsError> {
    if value.is_empty() || value.len() > 3 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("key_timeout", value));
    }
    match value.parse::<u64>() {
        Ok(secs) if KEY_TIMEOUT_SECONDS.contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(bad("key_timeout", value)),
    }
}

fn parse_failmode(value: &str) -> Result<FailMode, ArgsError> {
    match value {
        "secure" => Ok(FailMode::Secure),
        "safe" => Ok(FailMode::Safe),
        _ => Err(bad("failmode", value)),
    }
}

fn parse_timeout(value: &str) -> Result<Duration, ArgsError> {
    // Plain decimal digits only: no sign, no spaces, no unit.
    if value.is_empty() || value.len() > 3 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("timeout", value));
    }
    match value.parse::<u64>() {
        Ok(secs) if (1..=MAX_TIMEOUT_SECONDS).contains(&secs) => Ok(Duration::from_secs(secs)),
        _ => Err(bad("timeout", value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Args, ArgsError> {
        parse(args.iter().map(|a| a.as_bytes()))
    }

    #[test]
    fn no_arguments_give_the_secure_defaults() {
        let a = p(&[]);
        assert_eq!(
            a,
            Ok(Args {
                socket: Some(PathBuf::from("/run/twofactor/login")),
                bus: "unix:path=/run/dbus/system_bus_socket".into(),
                failmode: FailMode::Secure,
                timeout: Duration::from_secs(15),
                key_helper: Some(PathBuf::from("/usr/libexec/twofactor/twofactor-key")),
                key_timeout: Duration::from_secs(30),
                key_device: None,
            })
        );
    }

    #[test]
    fn key_arguments_are_read_and_checked() {
        let a = p(&["key_helper=/opt/k", "key_timeout=5"]);
        assert_eq!(
            a.map(|a| (a.key_helper, a.key_timeout)),
            Ok((Some(PathBuf::from("/opt/k")), Duration::from_secs(5)))
        );
        assert_eq!(p(&["key_helper=none"]).map(|a| a.key_helper), Ok(None));
        for bad in [
            "key_helper=rel",
            "key_helper=",
            "key_timeout=4",
            "key_timeout=121",
        ] {
            assert!(
                matches!(p(&[bad]), Err(ArgsError::BadValue { .. })),
                "{bad}"
            );
        }
        assert_eq!(
            p(&["key_timeout=9", "key_timeout=9"]),
            Err(ArgsError::Repeated("key_timeout"))
        );
        // The tests' software key, in this (debug) build only.
        assert_eq!(
            p(&["key_device=/tmp/k.sock"]).map(|a| a.key_device),
            Ok(Some(PathBuf::from("/tmp/k.sock")))
        );
    }

    #[test]
    fn all_arguments_are_read() {
        let a = p(&["bus=unix:path=/tmp/x", "failmode=safe", "timeout=300"]);
        assert_eq!(
            a,
            Ok(Args {
                socket: None,
                bus: "unix:path=/tmp/x".into(),
                failmode: FailMode::Safe,
                timeout: Duration::from_secs(300),
                ..Args::default()
            })
        );
        let a = p(&["socket=/tmp/t/login", "bus=unix:path=/tmp/x"]);
        assert_eq!(
            a.map(|a| (a.socket, a.bus)),
            Ok((
                Some(PathBuf::from("/tmp/t/login")),
                "unix:path=/tmp/x".to_string()
            ))
        );
        let a = p(&["failmode=secure", "timeout=1"]);
        assert_eq!(a.as_ref().map(|a| a.failmode), Ok(FailMode::Secure));
        assert_eq!(a.map(|a| a.timeout), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn the_socket_is_a_path_or_none() {
        assert_eq!(p(&["socket=none"]).map(|a| a.socket), Ok(None));
        assert_eq!(
            p(&["socket=/run/x"]).map(|a| (a.socket, a.bus)),
            Ok((
                Some(PathBuf::from("/run/x")),
                "unix:path=/run/dbus/system_bus_socket".to_string()
            ))
        );
        let long = format!("socket=/{}", "x".repeat(107));
        for bad in [
            "socket=",
            "socket=run/x",
            "socket=/a b",
            "socket=None",
            &long,
        ] {
            assert!(
                matches!(p(&[bad]), Err(ArgsError::BadValue { key: "socket", .. })),
                "{bad}"
            );
        }
        assert_eq!(
            p(&["socket=none", "socket=/x"]),
            Err(ArgsError::Repeated("socket"))
        );
    }

    #[test]
    fn unknown_arguments_are_refused() {
        for bad in [
            "debug",
            "fialmode=safe",
            "use_first_pass",
            "",
            "=",
            "BUS=unix:path=/x",
        ] {
            assert!(
                matches!(p(&[bad]), Err(ArgsError::Unknown(_))),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn bad_failmode_is_refused() {
        for bad in [
            "failmode=",
            "failmode=open",
            "failmode=SAFE",
            "failmode=safe ",
            "failmode= safe",
        ] {
            assert!(
                matches!(
                    p(&[bad]),
                    Err(ArgsError::BadValue {
                        key: "failmode",
                        ..
                    })
                ),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn bad_timeout_is_refused() {
        for bad in [
            "timeout=0",
            "timeout=abc",
            "timeout=",
            "timeout=301",
            "timeout=-1",
            "timeout=+5",
            "timeout=1.5",
            "timeout=15s",
            "timeout= 15",
            "timeout=99999999999999999999999",
        ] {
            assert!(
                matches!(p(&[bad]), Err(ArgsError::BadValue { key: "timeout", .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn bad_bus_is_refused() {
        for bad in ["bus=", "bus=nocolon", "bus=unix:path=/a b"] {
            assert!(
                matches!(p(&[bad]), Err(ArgsError::BadValue { key: "bus", .. })),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn repeated_arguments_are_refused() {
        assert_eq!(
            p(&["failmode=secure", "failmode=safe"]),
            Err(ArgsError::Repeated("failmode"))
        );
        assert_eq!(
            p(&["timeout=5", "timeout=5"]),
            Err(ArgsError::Repeated("timeout"))
        );
        assert_eq!(
            p(&["bus=unix:path=/a", "bus=unix:path=/b"]),
            Err(ArgsError::Repeated("bus"))
        );
    }

    #[test]
    fn non_utf8_is_refused() {
        let raw: [&[u8]; 1] = [b"failmode=\xffsafe"];
        assert_eq!(parse(raw), Err(ArgsError::NotUtf8));
    }

    #[test]
    fn errors_name_the_argument() {
        let e = p(&["timeout=abc"]).err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("bad value \"abc\" for timeout= (expected whole seconds from 1 to 300)")
        );
        let e = p(&["frobnicate"]).err().map(|e| e.to_string());
        assert_eq!(e.as_deref(), Some("unknown module argument \"frobnicate\""));
    }
}

#[cfg(test)]
mod proptests {
    use super::*;
    use proptest::prelude::*;

    fn arg() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40),
            "(bus|failmode|timeout|socket|Bus|x)=\\PC{0,20}".prop_map(String::into_bytes),
            "socket=(none|/[a-z/]{0,10})".prop_map(String::into_bytes),
            "timeout=[0-9+ -]{0,5}".prop_map(String::into_bytes),
            "failmode=(secure|safe|SAFE|)".prop_map(String::into_bytes),
            "bus=unix:path=/[a-z/]{0,10}".prop_map(String::into_bytes),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Any arguments: no panic, and an accepted set names each known
        /// key at most once with a value the rules allow.
        #[test]
        fn any_arguments(raw in proptest::collection::vec(arg(), 0..5)) {
            let result = parse(raw.iter().map(Vec::as_slice));
            if let Ok(args) = result {
                let mut keys = Vec::new();
                for a in &raw {
                    let text = std::str::from_utf8(a);
                    prop_assert!(text.is_ok());
                    let (key, value) = text.unwrap_or_default().split_once('=').unwrap_or_default();
                    prop_assert!(["bus", "failmode", "timeout", "socket"].contains(&key), "{key}");
                    prop_assert!(!keys.contains(&key));
                    keys.push(key);
                    match key {
                        "bus" => prop_assert!(value == args.bus && value.contains(':')
                            && value.chars().all(|c| c.is_ascii_graphic())),
                        "failmode" => prop_assert!(value == "secure" || value == "safe"),
                        "socket" => {
                            let read = match &args.socket {
                                None => value == "none",
                                Some(path) => path.as_os_str() == value && value.starts_with('/'),
                            };
                            prop_assert!(read, "socket={value}");
                        }
                        _ => prop_assert!(value.bytes().all(|b| b.is_ascii_digit())
                            && (1..=MAX_TIMEOUT_SECONDS).contains(&args.timeout.as_secs())
                            && value.parse::<u64>().ok() == Some(args.timeout.as_secs())),
                    }
                }
            }
        }
    }
}

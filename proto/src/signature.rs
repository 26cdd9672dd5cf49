//! D-Bus type signatures of `org.twofactor.Login1`, for the clients that
//! marshal the messages themselves (the PAM module, which links no zbus).
//! Available without the `zbus` feature.
//!
//! The same signatures are spelt by the contract's XML
//! (`proto/interfaces/org.twofactor.Login1.xml`) and, implicitly, by the
//! Rust types of the zbus proxy and of the daemon's interface; the tests
//! below tie every constant to both, so none can drift on its own.
//!
//! A body signature is the concatenation of the method's argument types,
//! without surrounding parentheses (`s(a(us)us)` is a string then a step,
//! not one struct); "" is an empty body.

/// A step: the struct `(a(us)us)` of [`crate::WireStep`]: messages (kind,
/// text), the action code, the prompt.
pub const STEP: &str = "(a(us)us)";

/// The type inside every value of `Begin`'s details: a string.
pub const DETAIL_VALUE: &str = "s";

/// The body of each `org.twofactor.Login1` call and of its reply.
pub mod login {
    /// `Begin(details a{sv})`.
    pub const BEGIN_IN: &str = "a{sv}";
    /// `Begin -> (session s, step (a(us)us))`.
    pub const BEGIN_OUT: &str = "s(a(us)us)";
    /// `Answer(session s, answer ay)`.
    pub const ANSWER_IN: &str = "say";
    /// `Answer -> step`.
    pub const ANSWER_OUT: &str = super::STEP;
    /// `Cancel(session s)`.
    pub const CANCEL_IN: &str = "s";
    /// `Cancel -> ()`: an empty reply.
    pub const CANCEL_OUT: &str = "";
    /// `Commit(session s)`.
    pub const COMMIT_IN: &str = "s";
    /// `Commit -> step`.
    pub const COMMIT_OUT: &str = super::STEP;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::names;

    /// The method's argument types in `direction` ("in" or "out"),
    /// concatenated, as the interface XML writes them.
    fn xml_signature(xml: &str, method: &str, direction: &str) -> String {
        let start = xml
            .find(&format!("<method name=\"{method}\">"))
            .unwrap_or_else(|| panic!("no method {method} in the XML"));
        let rest = &xml[start..];
        let end = rest.find("</method>").expect("method not closed");
        let mut out = String::new();
        for arg in rest[..end].split("<arg ").skip(1) {
            let attr = |name: &str| {
                let key = format!("{name}=\"");
                arg.find(&key).map(|i| {
                    let v = &arg[i + key.len()..];
                    v[..v.find('"').expect("attribute not closed")].to_string()
                })
            };
            if attr("direction").as_deref() == Some(direction) {
                out.push_str(&attr("type").expect("arg without type"));
            }
        }
        out
    }

    #[test]
    fn the_constants_are_the_interface_xml() {
        let xml = include_str!("../interfaces/org.twofactor.Login1.xml");
        for (method, input, output) in [
            (names::login::BEGIN, login::BEGIN_IN, login::BEGIN_OUT),
            (names::login::ANSWER, login::ANSWER_IN, login::ANSWER_OUT),
            (names::login::CANCEL, login::CANCEL_IN, login::CANCEL_OUT),
            (names::login::COMMIT, login::COMMIT_IN, login::COMMIT_OUT),
        ] {
            assert_eq!(xml_signature(xml, method, "in"), input, "{method} in");
            assert_eq!(xml_signature(xml, method, "out"), output, "{method} out");
        }
    }

    #[test]
    fn begin_returns_a_session_then_a_step() {
        assert_eq!(login::BEGIN_OUT, format!("s{STEP}"));
    }

    /// The constants against the zvariant signatures of the Rust types
    /// that the zbus proxy (`proxy::Login1`) and the daemon's interface
    /// use for the same arguments.
    #[cfg(feature = "zbus")]
    mod zvariant_types {
        use super::super::*;
        use crate::WireStep;
        use std::collections::HashMap;
        use zbus::zvariant::{OwnedValue, Type, Value};

        /// A method body: the arguments as one tuple, without its parens.
        fn body<T: Type>() -> String {
            T::SIGNATURE.to_string_no_parens()
        }

        #[test]
        fn step_is_wire_step() {
            assert_eq!(WireStep::SIGNATURE.to_string(), STEP);
            assert_eq!(<String as Type>::SIGNATURE.to_string(), DETAIL_VALUE);
        }

        #[test]
        fn login_bodies_are_the_proxy_and_daemon_types() {
            // Proxy: `begin(details: HashMap<&str, Value>)`; daemon:
            // `HashMap<String, OwnedValue>`.
            assert_eq!(body::<(HashMap<&str, Value<'_>>,)>(), login::BEGIN_IN);
            assert_eq!(body::<(HashMap<String, OwnedValue>,)>(), login::BEGIN_IN);
            assert_eq!(body::<(String, WireStep)>(), login::BEGIN_OUT);
            assert_eq!(body::<(&str, &[u8])>(), login::ANSWER_IN);
            assert_eq!(body::<(String, Vec<u8>)>(), login::ANSWER_IN);
            assert_eq!(body::<(WireStep,)>(), login::ANSWER_OUT);
            assert_eq!(body::<(&str,)>(), login::CANCEL_IN);
            assert_eq!(body::<()>(), login::CANCEL_OUT);
            assert_eq!(body::<(&str,)>(), login::COMMIT_IN);
            assert_eq!(body::<(WireStep,)>(), login::COMMIT_OUT);
        }
    }
}

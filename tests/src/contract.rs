//! The reviewed D-Bus contract (proto/interfaces/*.xml), read by tests that
//! compare what the daemon answers on the wire with what it promises.

/// Out-argument signature of `method` in the contract XML of `interface`.
pub fn out_signature(interface: &str, method: &str) -> String {
    let path = crate::repo_root().join(format!("proto/interfaces/{interface}.xml"));
    let xml =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    let start = xml
        .find(&format!("<method name=\"{method}\">"))
        .unwrap_or_else(|| panic!("{method} not in {}", path.display()));
    let body = &xml[start..];
    let body = &body[..body.find("</method>").unwrap_or(body.len())];
    let mut sig = String::new();
    for arg in body.split("<arg ").skip(1) {
        let arg = &arg[..arg.find("/>").unwrap_or(arg.len())];
        if arg.contains("direction=\"out\"") {
            let t = arg
                .split("type=\"")
                .nth(1)
                .and_then(|t| t.split('"').next());
            sig.push_str(t.unwrap_or_default());
        }
    }
    sig
}

/// Asserts that a [`crate::bus::PY_CLIENT`] result is a reply whose body
/// has the contract's out signature.
pub fn assert_reply_matches(r: &serde_json::Value, interface: &str, method: &str) {
    let expected = out_signature(interface, method);
    assert!(r.get("ok").is_some(), "{interface}.{method} failed: {r}");
    assert_eq!(
        r["signature"].as_str().unwrap_or("?"),
        expected,
        "{interface}.{method}: reply body signature differs from the contract \
         (proto/interfaces/{interface}.xml): {r}"
    );
}

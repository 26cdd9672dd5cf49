//! The security-key messages (`twofactor_proto::key`): every decoder reads
//! any bytes without panicking, and what decodes encodes back to the same
//! bytes (one encoding per value: the daemon and the helper never disagree
//! on what a message says). The module's one look at an answer
//! (`asks_for_pin`) agrees with the decoder.

#![no_main]

use libfuzzer_sys::fuzz_target;
use twofactor_proto::key::{
    AssertionRequest, Attestation, CredentialRequest, HelperInput, KeyAnswer,
};
use twofactor_proto::{Step, WireStep};

fuzz_target!(|data: &[u8]| {
    if let Ok(v) = AssertionRequest::decode(data) {
        assert_eq!(v.encode(), data);
    }
    if let Ok(v) = CredentialRequest::decode(data) {
        assert_eq!(v.encode(), data);
    }
    if let Ok(v) = Attestation::decode(data) {
        assert_eq!(v.encode(), data);
    }
    if let Ok(v) = HelperInput::decode(data) {
        assert_eq!(&v.encode()[..], data);
    }
    match KeyAnswer::decode(data) {
        Ok(KeyAnswer::Failed(_)) => {} // lossy on non-UTF-8 text
        Ok(v) => {
            assert_eq!(v.encode(), data);
            assert_eq!(
                KeyAnswer::asks_for_pin(data),
                v == KeyAnswer::PinRequired
            );
        }
        Err(_) => assert!(!KeyAnswer::asks_for_pin(data)),
    }
    // A key step's request in a step's prompt: never a panic.
    if let Ok(prompt) = std::str::from_utf8(data) {
        let _ = Step::from_wire(WireStep {
            messages: Vec::new(),
            action: 5,
            prompt: prompt.to_string(),
        });
    }
});

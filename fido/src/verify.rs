//! The daemon's side: checking what a key made or signed against the
//! request it was made for. No device is involved.

use std::ffi::{c_int, c_void, CString};
use std::ptr::NonNull;

use crate::device::{Assert, Cred};
use crate::error::{check, FidoError};
use crate::{c_string, copy_bytes, ffi, init};
use twofactor_proto::key::{
    Assertion, AssertionRequest, Attestation, CredentialRequest, UserVerification,
};

/// A credential's signature algorithm (stored as its COSE code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Alg {
    /// ECDSA over P-256 with SHA-256 (COSE -7): what enrolment asks for.
    Es256,
    /// Ed25519 (COSE -8).
    EdDsa,
}

impl Alg {
    /// The COSE algorithm identifier.
    pub const fn cose(self) -> i32 {
        match self {
            Alg::Es256 => ffi::COSE_ES256,
            Alg::EdDsa => ffi::COSE_EDDSA,
        }
    }
    /// The algorithm of a COSE identifier; `None` for any other.
    pub const fn from_cose(code: i32) -> Option<Alg> {
        match code {
            ffi::COSE_ES256 => Some(Alg::Es256),
            ffi::COSE_EDDSA => Some(Alg::EdDsa),
            _ => None,
        }
    }
}

/// A new credential, verified: what the daemon stores.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    pub id: Vec<u8>,
    pub alg: Alg,
    /// The public key as libfido2 gives it (`fido_cred_pubkey_ptr`: for
    /// ES256 the 64 bytes x‖y, for EdDSA the 32-byte key), which
    /// [`verify_assertion`] takes back.
    pub public_key: Vec<u8>,
    /// The key model's AAGUID (zeros for U2F keys and keys that hide it).
    pub aaguid: [u8; 16],
    pub sign_count: u32,
    pub user_verified: bool,
}

/// An assertion that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The key's signature counter (0 for keys that keep none): the
    /// caller checks that it went up.
    pub sign_count: u32,
    pub user_verified: bool,
}

/// Checks a new credential against the request it was made for: the
/// relying party id hash, the client data hash (it is part of what the
/// attestation signs), user presence, user verification when
/// `req.user_verification` is [`UserVerification::Required`], and the
/// attestation signature (`fido_cred_verify` with the certificate when
/// there is one, `fido_cred_verify_self` otherwise). Format "none" is
/// refused. Only ES256 credentials are accepted (enrolment asks for
/// nothing else).
///
/// Limits of what the [`Attestation`] carries: the attestation signature
/// is taken as ES256 (libfido2's default when the statement's `alg` is
/// not given; every FIDO key sold today signs its attestation so), and
/// "tpm" statements (which need more than a certificate and a signature)
/// do not verify.
pub fn verify_attestation(
    att: &Attestation,
    req: &CredentialRequest,
) -> Result<Credential, FidoError> {
    init();
    if att.fmt == "none" {
        return Err(FidoError::Verify("the key gave no attestation"));
    }
    let fmt = CString::new(att.fmt.as_str())
        .map_err(|_| FidoError::Verify("unknown attestation format"))?;
    if att.authdata.is_empty() {
        return Err(FidoError::Verify(
            "the credential carries no authenticator data",
        ));
    }
    if att.signature.is_empty() {
        return Err(FidoError::Verify("the attestation carries no signature"));
    }
    let required = req.user_verification == UserVerification::Required;
    let cred = Cred::for_request(req)?;
    let c = cred.ptr();
    // SAFETY: (the setters below) c is a live fido_cred_t; every pointer
    // is valid for its length (or NUL-terminated) during the call, and
    // libfido2 copies what it keeps.
    unsafe {
        if ffi::fido_cred_set_authdata(c, att.authdata.as_ptr(), att.authdata.len()) != ffi::FIDO_OK
        {
            return Err(FidoError::Verify(
                "malformed authenticator data (or not an ES256 credential)",
            ));
        }
        if !att.x5c.is_empty()
            && ffi::fido_cred_set_x509(c, att.x5c.as_ptr(), att.x5c.len()) != ffi::FIDO_OK
        {
            return Err(FidoError::Verify("malformed attestation certificate"));
        }
        check(
            "fido_cred_set_sig",
            ffi::fido_cred_set_sig(c, att.signature.as_ptr(), att.signature.len()),
        )?;
        if ffi::fido_cred_set_fmt(c, fmt.as_ptr()) != ffi::FIDO_OK {
            return Err(FidoError::Verify("unknown attestation format"));
        }
    }
    // SAFETY: c is live; flags were decoded from the authenticator data.
    let flags = unsafe { ffi::fido_cred_flags(c) };
    check_flags(flags, required)?;
    let (call, r) = if att.x5c.is_empty() {
        // SAFETY: c is live and complete (set above).
        ("fido_cred_verify_self", unsafe {
            ffi::fido_cred_verify_self(c)
        })
    } else {
        // SAFETY: as above.
        ("fido_cred_verify", unsafe { ffi::fido_cred_verify(c) })
    };
    verdict(
        call,
        r,
        "the attestation signature does not verify (another challenge, or forged)",
    )?;
    // SAFETY: (the getters below) c is live; each pointer/length pair
    // describes memory owned by c, copied before c is freed.
    let (id, public_key, aaguid_bytes, cose, sign_count) = unsafe {
        (
            copy_bytes(ffi::fido_cred_id_ptr(c), ffi::fido_cred_id_len(c)),
            copy_bytes(ffi::fido_cred_pubkey_ptr(c), ffi::fido_cred_pubkey_len(c)),
            copy_bytes(ffi::fido_cred_aaguid_ptr(c), ffi::fido_cred_aaguid_len(c)),
            ffi::fido_cred_type(c),
            ffi::fido_cred_sigcount(c),
        )
    };
    let alg = Alg::from_cose(cose).ok_or(FidoError::Verify("unsupported credential algorithm"))?;
    let aaguid: [u8; 16] = aaguid_bytes
        .as_slice()
        .try_into()
        .map_err(|_| FidoError::Verify("malformed AAGUID"))?;
    if id.is_empty() || public_key.is_empty() {
        return Err(FidoError::Verify(
            "the credential carries no id or public key",
        ));
    }
    Ok(Credential {
        id,
        alg,
        public_key,
        aaguid,
        sign_count,
        user_verified: flags & ffi::CTAP_AUTHDATA_USER_VERIFIED != 0,
    })
}

/// User presence always; user verification when required.
fn check_flags(flags: u8, uv_required: bool) -> Result<(), FidoError> {
    if flags & ffi::CTAP_AUTHDATA_USER_PRESENT == 0 {
        return Err(FidoError::Verify("the user was not present (no touch)"));
    }
    if uv_required && flags & ffi::CTAP_AUTHDATA_USER_VERIFIED == 0 {
        return Err(FidoError::Verify(
            "the user was not verified (no PIN or fingerprint)",
        ));
    }
    Ok(())
}

/// A libfido2 verifier's answer. Flags were checked before, so
/// FIDO_ERR_INVALID_PARAM is the relying party id hash (or extensions
/// nobody asked for).
fn verdict(call: &'static str, r: c_int, bad_sig: &'static str) -> Result<(), FidoError> {
    match r {
        ffi::FIDO_OK => Ok(()),
        ffi::FIDO_ERR_INVALID_SIG => Err(FidoError::Verify(bad_sig)),
        ffi::FIDO_ERR_INVALID_PARAM => Err(FidoError::Verify(
            "made for another relying party (or with extensions nobody asked for)",
        )),
        ffi::FIDO_ERR_INVALID_ARGUMENT => Err(FidoError::Verify("incomplete or malformed")),
        code => Err(FidoError::Lib { call, code }),
    }
}

/// `es256_pk_new()` / `eddsa_pk_new()`, freed with their `*_free`.
enum PublicKey {
    Es256(NonNull<ffi::es256_pk_t>),
    EdDsa(NonNull<ffi::eddsa_pk_t>),
}

impl PublicKey {
    fn new(alg: Alg, bytes: &[u8]) -> Result<Self, FidoError> {
        let (pk, call, r) = match alg {
            Alg::Es256 => {
                // SAFETY: no arguments; NULL is checked.
                let p = NonNull::new(unsafe { ffi::es256_pk_new() }).ok_or(FidoError::Lib {
                    call: "es256_pk_new",
                    code: ffi::FIDO_ERR_INTERNAL,
                })?;
                let pk = PublicKey::Es256(p);
                // SAFETY: p is a live es256_pk_t; bytes is valid for its
                // length (libfido2 checks the length and the point).
                let r = unsafe {
                    ffi::es256_pk_from_ptr(p.as_ptr(), bytes.as_ptr().cast(), bytes.len())
                };
                (pk, "es256_pk_from_ptr", r)
            }
            Alg::EdDsa => {
                // SAFETY: no arguments; NULL is checked.
                let p = NonNull::new(unsafe { ffi::eddsa_pk_new() }).ok_or(FidoError::Lib {
                    call: "eddsa_pk_new",
                    code: ffi::FIDO_ERR_INTERNAL,
                })?;
                let pk = PublicKey::EdDsa(p);
                // SAFETY: p is a live eddsa_pk_t; bytes is valid for its
                // length (libfido2 checks it).
                let r = unsafe {
                    ffi::eddsa_pk_from_ptr(p.as_ptr(), bytes.as_ptr().cast(), bytes.len())
                };
                (pk, "eddsa_pk_from_ptr", r)
            }
        };
        check(call, r)?;
        Ok(pk)
    }

    fn ptr(&self) -> *const c_void {
        match self {
            PublicKey::Es256(p) => p.as_ptr().cast_const().cast(),
            PublicKey::EdDsa(p) => p.as_ptr().cast_const().cast(),
        }
    }
}

impl Drop for PublicKey {
    fn drop(&mut self) {
        match self {
            PublicKey::Es256(p) => {
                let mut p = p.as_ptr();
                // SAFETY: p came from es256_pk_new and is freed once.
                unsafe { ffi::es256_pk_free(&mut p) }
            }
            PublicKey::EdDsa(p) => {
                let mut p = p.as_ptr();
                // SAFETY: p came from eddsa_pk_new and is freed once.
                unsafe { ffi::eddsa_pk_free(&mut p) }
            }
        }
    }
}

/// Checks an assertion against the request it answers and the stored
/// public key: the relying party id hash, user presence, user
/// verification when `req.user_verification` is
/// [`UserVerification::Required`], and the signature over the
/// authenticator data and the client data hash (so another challenge does
/// not verify). Neither the counter rule (it must go up) nor whether
/// `a.credential_id` is in `req.allow` is checked here: the daemon looks
/// the credential up by that id and applies its own rules.
pub fn verify_assertion(
    a: &Assertion,
    req: &AssertionRequest,
    alg: Alg,
    public_key: &[u8],
) -> Result<Verified, FidoError> {
    init();
    if a.authdata.is_empty() {
        return Err(FidoError::Verify(
            "the assertion carries no authenticator data",
        ));
    }
    if a.signature.is_empty() {
        return Err(FidoError::Verify("the assertion carries no signature"));
    }
    let pk = PublicKey::new(alg, public_key)?;
    let rp = c_string(&req.rp_id, "fido_assert_set_rp")?;
    let required = req.user_verification == UserVerification::Required;
    let assert = Assert::new()?;
    let p = assert.ptr();
    // SAFETY: (the setters below) p is a live fido_assert_t; every
    // pointer is valid for its length (or NUL-terminated) during the call,
    // and libfido2 copies what it keeps. Index 0 exists after
    // fido_assert_set_count(1).
    unsafe {
        check(
            "fido_assert_set_rp",
            ffi::fido_assert_set_rp(p, rp.as_ptr()),
        )?;
        check(
            "fido_assert_set_clientdata_hash",
            ffi::fido_assert_set_clientdata_hash(
                p,
                req.client_data_hash.as_ptr(),
                req.client_data_hash.len(),
            ),
        )?;
        check("fido_assert_set_count", ffi::fido_assert_set_count(p, 1))?;
        check(
            "fido_assert_set_up",
            ffi::fido_assert_set_up(p, ffi::FIDO_OPT_TRUE),
        )?;
        let uv = if required {
            ffi::FIDO_OPT_TRUE
        } else {
            ffi::FIDO_OPT_OMIT
        };
        check("fido_assert_set_uv", ffi::fido_assert_set_uv(p, uv))?;
        if ffi::fido_assert_set_authdata(p, 0, a.authdata.as_ptr(), a.authdata.len())
            != ffi::FIDO_OK
        {
            return Err(FidoError::Verify("malformed authenticator data"));
        }
        check(
            "fido_assert_set_sig",
            ffi::fido_assert_set_sig(p, 0, a.signature.as_ptr(), a.signature.len()),
        )?;
    }
    // SAFETY: p is live and holds statement 0 (above).
    let flags = unsafe { ffi::fido_assert_flags(p, 0) };
    check_flags(flags, required)?;
    // SAFETY: p is live and complete; pk is a live public key of alg.
    let r = unsafe { ffi::fido_assert_verify(p, 0, alg.cose(), pk.ptr()) };
    verdict(
        "fido_assert_verify",
        r,
        "the signature does not verify (another challenge, or another key)",
    )?;
    // SAFETY: p is live and holds statement 0.
    let sign_count = unsafe { ffi::fido_assert_sigcount(p, 0) };
    Ok(Verified {
        sign_count,
        user_verified: flags & ffi::CTAP_AUTHDATA_USER_VERIFIED != 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred_req() -> CredentialRequest {
        CredentialRequest {
            rp_id: "twofactor:host".into(),
            user_id: vec![1; 16],
            user_name: "alice".into(),
            client_data_hash: [2; 32],
            user_verification: UserVerification::Preferred,
            exclude: vec![],
        }
    }

    fn assert_req() -> AssertionRequest {
        AssertionRequest {
            rp_id: "twofactor:host".into(),
            client_data_hash: [3; 32],
            allow: vec![vec![4; 32]],
            user_verification: UserVerification::Preferred,
        }
    }

    /// CBOR byte string header for `n` bytes, then the bytes.
    fn cbor_bytes(b: &[u8]) -> Vec<u8> {
        let mut v = match b.len() {
            n @ 0..=23 => vec![0x40 | n as u8],
            n @ 24..=255 => vec![0x58, n as u8],
            n => vec![0x59, (n >> 8) as u8, n as u8],
        };
        v.extend_from_slice(b);
        v
    }

    #[test]
    fn alg_codes_round_trip() {
        for alg in [Alg::Es256, Alg::EdDsa] {
            assert_eq!(Alg::from_cose(alg.cose()), Some(alg));
        }
        assert_eq!(Alg::Es256.cose(), -7);
        assert_eq!(Alg::EdDsa.cose(), -8);
        assert_eq!(Alg::from_cose(-257), None);
    }

    #[test]
    fn no_attestation_is_refused() {
        let att = Attestation {
            fmt: "none".into(),
            authdata: cbor_bytes(&[0; 37]),
            x5c: vec![],
            signature: vec![],
        };
        assert_eq!(
            verify_attestation(&att, &cred_req()),
            Err(FidoError::Verify("the key gave no attestation"))
        );
    }

    #[test]
    fn garbage_attestations_are_errors_not_panics() {
        let garbage: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff; 300],
            cbor_bytes(&[0; 37]),
            cbor_bytes(&[0x41; 200]),
            vec![0x59, 0xff, 0xff, 1, 2, 3],
            (0..=255).collect(),
        ];
        for fmt in ["packed", "fido-u2f", "tpm", "weird", "pa\0cked", ""] {
            for authdata in &garbage {
                for x5c in [vec![], vec![0x30, 0x82, 1, 0], vec![0xff; 64]] {
                    for signature in [vec![], vec![0x30, 0x44, 0, 0], vec![7; 72]] {
                        let att = Attestation {
                            fmt: fmt.into(),
                            authdata: authdata.clone(),
                            x5c: x5c.clone(),
                            signature,
                        };
                        for uv in [UserVerification::Preferred, UserVerification::Required] {
                            let req = CredentialRequest {
                                user_verification: uv,
                                ..cred_req()
                            };
                            assert!(verify_attestation(&att, &req).is_err(), "{att:?}");
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn garbage_assertions_are_errors_not_panics() {
        // A valid P-256 point (the generator) and a valid Ed25519 key.
        let p256_g: Vec<u8> = [
            "6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296",
            "4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5",
        ]
        .iter()
        .flat_map(|h| twofactor_proto::key::from_hex(h).unwrap())
        .collect();
        let ed = vec![0x3d; 32];
        // Authenticator data with UP set for the right rp id would need
        // SHA-256 here; flags set, rp hash zero is enough to reach the
        // verifier.
        let mut up_ad = vec![0u8; 37];
        up_ad[32] = 0x05;
        let garbage: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![0xff; 300],
            cbor_bytes(&[0; 36]),
            cbor_bytes(&[0; 37]),
            cbor_bytes(&up_ad),
            (0..=255).collect(),
        ];
        for (alg, pk) in [
            (Alg::Es256, p256_g.clone()),
            (Alg::Es256, vec![]),
            (Alg::Es256, vec![1; 64]),
            (Alg::EdDsa, ed.clone()),
            (Alg::EdDsa, vec![1; 3]),
            (Alg::EdDsa, p256_g.clone()),
        ] {
            for authdata in &garbage {
                for signature in [vec![], vec![0x30, 0x44, 0, 0], vec![7; 64], vec![7; 72]] {
                    let a = Assertion {
                        credential_id: vec![4; 32],
                        authdata: authdata.clone(),
                        signature,
                    };
                    for uv in [UserVerification::Discouraged, UserVerification::Required] {
                        let req = AssertionRequest {
                            user_verification: uv,
                            ..assert_req()
                        };
                        assert!(
                            verify_assertion(&a, &req, alg, &pk).is_err(),
                            "{a:?} {alg:?}"
                        );
                    }
                }
            }
        }
    }

    /// A key made by hand: authenticator data and signatures as a CTAP2
    /// authenticator makes them (packed self attestation, ES256).
    struct HandKey {
        sk: p256::ecdsa::SigningKey,
        id: Vec<u8>,
    }

    impl HandKey {
        fn new() -> Self {
            HandKey {
                sk: p256::ecdsa::SigningKey::from_bytes(&[0x42; 32].into()).unwrap(),
                id: vec![0xc1; 48],
            }
        }
        fn xy(&self) -> Vec<u8> {
            let p = self.sk.verifying_key().to_encoded_point(false);
            [p.x().unwrap().as_slice(), p.y().unwrap().as_slice()].concat()
        }
        fn sign(&self, authdata: &[u8], cdh: &[u8; 32]) -> Vec<u8> {
            use p256::ecdsa::signature::Signer;
            let sig: p256::ecdsa::Signature = self.sk.sign(&[authdata, cdh].concat());
            sig.to_der().as_bytes().to_vec()
        }
        fn head(rp_id: &str, flags: u8, count: u32) -> Vec<u8> {
            use sha2::Digest;
            let mut ad = sha2::Sha256::digest(rp_id.as_bytes()).to_vec();
            ad.push(flags);
            ad.extend_from_slice(&count.to_be_bytes());
            ad
        }
        /// (fmt packed, self attestation) for `rp_id`, signed over `cdh`.
        fn attest(&self, rp_id: &str, flags: u8, cdh: &[u8; 32]) -> Attestation {
            let mut ad = Self::head(rp_id, flags | 0x40, 7);
            ad.extend_from_slice(&[0xaa; 16]);
            ad.extend_from_slice(&(self.id.len() as u16).to_be_bytes());
            ad.extend_from_slice(&self.id);
            let xy = self.xy();
            // COSE_Key {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}
            ad.extend_from_slice(&[0xa5, 0x01, 0x02, 0x03, 0x26, 0x20, 0x01, 0x21, 0x58, 0x20]);
            ad.extend_from_slice(&xy[..32]);
            ad.extend_from_slice(&[0x22, 0x58, 0x20]);
            ad.extend_from_slice(&xy[32..]);
            Attestation {
                fmt: "packed".into(),
                signature: self.sign(&ad, cdh),
                authdata: cbor_bytes(&ad),
                x5c: vec![],
            }
        }
        fn assert(&self, rp_id: &str, flags: u8, count: u32, cdh: &[u8; 32]) -> Assertion {
            let ad = Self::head(rp_id, flags, count);
            Assertion {
                credential_id: self.id.clone(),
                signature: self.sign(&ad, cdh),
                authdata: cbor_bytes(&ad),
            }
        }
    }

    #[test]
    fn a_self_attested_credential_verifies_and_its_assertions_too() {
        let key = HandKey::new();
        let req = cred_req();
        let cred =
            verify_attestation(&key.attest(&req.rp_id, 0x01, &req.client_data_hash), &req).unwrap();
        assert_eq!(cred.id, key.id);
        assert_eq!(cred.alg, Alg::Es256);
        assert_eq!(cred.public_key, key.xy());
        assert_eq!(cred.aaguid, [0xaa; 16]);
        assert_eq!(cred.sign_count, 7);
        assert!(!cred.user_verified);

        let areq = assert_req();
        let a = key.assert(&areq.rp_id, 0x01, 8, &areq.client_data_hash);
        let v = verify_assertion(&a, &areq, cred.alg, &cred.public_key).unwrap();
        assert_eq!(
            v,
            Verified {
                sign_count: 8,
                user_verified: false
            }
        );
        // The uncompressed point (0x04 x y) is taken too.
        let sec1 = [&[4u8][..], &cred.public_key].concat();
        assert!(verify_assertion(&a, &areq, Alg::Es256, &sec1).is_ok());
    }

    #[test]
    fn a_credential_for_another_request_does_not_verify() {
        let key = HandKey::new();
        let req = cred_req();
        let good = key.attest(&req.rp_id, 0x01, &req.client_data_hash);
        // Another relying party.
        let other_rp = key.attest("twofactor:other", 0x01, &req.client_data_hash);
        assert!(
            matches!(verify_attestation(&other_rp, &req), Err(FidoError::Verify(w)) if w.contains("relying party"))
        );
        // Another challenge.
        let other_cdh = key.attest(&req.rp_id, 0x01, &[0xee; 32]);
        assert!(
            matches!(verify_attestation(&other_cdh, &req), Err(FidoError::Verify(w)) if w.contains("signature"))
        );
        // A signature from another key.
        let mut forged = good.clone();
        forged.signature = HandKey {
            sk: p256::ecdsa::SigningKey::from_bytes(&[7; 32].into()).unwrap(),
            id: vec![],
        }
        .sign(&[0u8; 3], &req.client_data_hash);
        assert!(matches!(
            verify_attestation(&forged, &req),
            Err(FidoError::Verify(_))
        ));
        // No touch.
        let untouched = key.attest(&req.rp_id, 0x00, &req.client_data_hash);
        assert!(
            matches!(verify_attestation(&untouched, &req), Err(FidoError::Verify(w)) if w.contains("present"))
        );
        // Verification required: refused without the UV flag, taken with it.
        let uv_req = CredentialRequest {
            user_verification: UserVerification::Required,
            ..cred_req()
        };
        assert!(
            matches!(verify_attestation(&good, &uv_req), Err(FidoError::Verify(w)) if w.contains("verified"))
        );
        let verified = key.attest(&req.rp_id, 0x05, &req.client_data_hash);
        assert!(
            verify_attestation(&verified, &uv_req)
                .unwrap()
                .user_verified
        );
        // Format none, even when the rest is right.
        let mut none = good.clone();
        none.fmt = "none".into();
        assert_eq!(
            verify_attestation(&none, &req),
            Err(FidoError::Verify("the key gave no attestation"))
        );
        // A certificate that is no certificate: full attestation fails.
        let mut bad_x5c = good;
        bad_x5c.x5c = vec![0x30, 0x03, 0x02, 0x01, 0x00];
        assert!(verify_attestation(&bad_x5c, &req).is_err());
    }

    #[test]
    fn an_assertion_for_another_request_does_not_verify() {
        let key = HandKey::new();
        let pk = key.xy();
        let req = assert_req();
        let cdh = req.client_data_hash;
        let good = key.assert(&req.rp_id, 0x01, 1, &cdh);
        assert!(verify_assertion(&good, &req, Alg::Es256, &pk).is_ok());
        let verify = |a: &Assertion, r: &AssertionRequest| verify_assertion(a, r, Alg::Es256, &pk);
        let why = |r: Result<Verified, FidoError>| match r {
            Err(FidoError::Verify(w)) => w,
            other => panic!("{other:?}"),
        };
        assert!(
            why(verify(&key.assert("twofactor:other", 0x01, 1, &cdh), &req))
                .contains("relying party")
        );
        assert!(
            why(verify(&key.assert(&req.rp_id, 0x01, 1, &[0; 32]), &req)).contains("signature")
        );
        assert!(why(verify(&key.assert(&req.rp_id, 0x00, 1, &cdh), &req)).contains("present"));
        let uv = AssertionRequest {
            user_verification: UserVerification::Required,
            ..assert_req()
        };
        assert!(why(verify(&good, &uv)).contains("verified"));
        let v = verify(&key.assert(&req.rp_id, 0x05, 2, &cdh), &uv).unwrap();
        assert_eq!(
            v,
            Verified {
                sign_count: 2,
                user_verified: true
            }
        );
        // Another key's public key.
        let other = HandKey {
            sk: p256::ecdsa::SigningKey::from_bytes(&[9; 32].into()).unwrap(),
            id: vec![],
        };
        assert!(why(verify_assertion(&good, &req, Alg::Es256, &other.xy())).contains("signature"));
        // A flipped bit in the signed data.
        let mut flipped = good.clone();
        if let Some(b) = flipped.authdata.last_mut() {
            *b ^= 1;
        }
        assert!(why(verify(&flipped, &req)).contains("signature"));
        // A public key that is no point: the stored key's fault, not the
        // assertion's.
        assert!(matches!(
            verify_assertion(&good, &req, Alg::Es256, &[1; 64]),
            Err(FidoError::Lib {
                call: "es256_pk_from_ptr",
                ..
            })
        ));
    }

    /// Full attestation (a certificate, as keys sold today give): the
    /// certificate and its key made by the openssl command; skipped
    /// without it.
    #[test]
    fn a_credential_with_an_attestation_certificate_verifies() {
        use std::process::Command;
        let dir = std::env::temp_dir().join(format!("tf-fido-x5c-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let made = Command::new("openssl")
            .args([
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
            ])
            .args([
                "-subj",
                "/CN=twofactor test attestation",
                "-days",
                "2",
                "-outform",
                "DER",
            ])
            .arg("-keyout")
            .arg(dir.join("key.pem"))
            .arg("-out")
            .arg(dir.join("cert.der"))
            .output();
        if !made.is_ok_and(|o| o.status.success()) {
            eprintln!("openssl is not here; skipped");
            let _ = std::fs::remove_dir_all(&dir);
            return;
        }
        let key = HandKey::new();
        let req = cred_req();
        let self_attested = key.attest(&req.rp_id, 0x01, &req.client_data_hash);
        // The attestation key signs authenticator data and client data hash.
        let ad = {
            let mut v = self_attested.authdata.clone();
            v.drain(..2); // CBOR header of a byte string of 24..=255 bytes
            v
        };
        std::fs::write(
            dir.join("signed"),
            [ad.as_slice(), &req.client_data_hash].concat(),
        )
        .unwrap();
        let sig = Command::new("openssl")
            .args(["dgst", "-sha256", "-sign"])
            .arg(dir.join("key.pem"))
            .arg(dir.join("signed"))
            .output()
            .unwrap();
        assert!(sig.status.success());
        let att = Attestation {
            x5c: std::fs::read(dir.join("cert.der")).unwrap(),
            signature: sig.stdout,
            ..self_attested.clone()
        };
        let _ = std::fs::remove_dir_all(&dir);
        let cred = verify_attestation(&att, &req).unwrap();
        assert_eq!(cred.public_key, key.xy());
        // The credential key's signature is not the certificate's.
        let wrong = Attestation {
            signature: self_attested.signature,
            ..att.clone()
        };
        assert!(
            matches!(verify_attestation(&wrong, &req), Err(FidoError::Verify(w)) if w.contains("signature"))
        );
        let other = CredentialRequest {
            client_data_hash: [1; 32],
            ..cred_req()
        };
        assert!(matches!(
            verify_attestation(&att, &other),
            Err(FidoError::Verify(_))
        ));
    }

    #[test]
    fn an_eddsa_assertion_verifies() {
        use ed25519_dalek::Signer;
        let sk = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
        let req = assert_req();
        let ad = HandKey::head(&req.rp_id, 0x01, 3);
        let sig = sk.sign(&[ad.as_slice(), &req.client_data_hash].concat());
        let a = Assertion {
            credential_id: vec![4; 32],
            authdata: cbor_bytes(&ad),
            signature: sig.to_bytes().to_vec(),
        };
        let pk = sk.verifying_key().to_bytes();
        assert_eq!(
            verify_assertion(&a, &req, Alg::EdDsa, &pk)
                .unwrap()
                .sign_count,
            3
        );
        let other = AssertionRequest {
            client_data_hash: [0; 32],
            ..assert_req()
        };
        assert!(matches!(
            verify_assertion(&a, &other, Alg::EdDsa, &pk),
            Err(FidoError::Verify(_))
        ));
        // An ES256 key given as EdDSA, and the other way round.
        assert!(verify_assertion(&a, &req, Alg::Es256, &HandKey::new().xy()).is_err());
    }

    #[test]
    fn flags_are_checked_with_their_own_words() {
        assert_eq!(check_flags(0x01, false), Ok(()));
        assert_eq!(check_flags(0x05, true), Ok(()));
        assert!(
            matches!(check_flags(0x00, false), Err(FidoError::Verify(w)) if w.contains("present"))
        );
        assert!(
            matches!(check_flags(0x01, true), Err(FidoError::Verify(w)) if w.contains("verified"))
        );
    }
}

//! TLS between a fleet's hosts and verifiers ([`FleetConfig`]): both ends
//! show a certificate of the fleet's CA (mutual TLS, rustls with ring, as
//! for the database and the mail relay). A verifier knows a host by the
//! SHA-256 of its certificate ([`fingerprint`]); a host knows a verifier by
//! the name in its URL, which the verifier's certificate must be valid for.
//!
//! The files are read once, at start-up and by `twofactord --check-config`
//! through the same functions, so the two never disagree. Errors name the
//! key and the file, never what a key file holds.

use crate::adapters::named_files;
use crate::config::FleetConfig;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;

/// The one protocol spoken: HTTP/2.
const ALPN_H2: &[u8] = b"h2";

/// What is wrong with a `[fleet]` file, the key and the file named.
#[derive(Debug, thiserror::Error)]
#[error("[fleet] {key} {path}: {what}")]
pub struct FileError {
    pub key: &'static str,
    pub path: String,
    pub what: String,
}

fn file_error(key: &'static str, path: &Path, what: impl std::fmt::Display) -> FileError {
    FileError {
        key,
        path: path.display().to_string(),
        what: what.to_string(),
    }
}

/// The fleet's CA, as a root store.
fn roots(config: &FleetConfig) -> Result<Arc<rustls::RootCertStore>, FileError> {
    named_files::roots(&config.ca_file)
        .map(Arc::new)
        .map_err(|e| file_error("ca_file", &config.ca_file, e))
}

/// This machine's certificate chain.
fn chain(config: &FleetConfig) -> Result<Vec<CertificateDer<'static>>, FileError> {
    named_files::certificates(&config.cert_file)
        .map_err(|e| file_error("cert_file", &config.cert_file, e))
}

/// This machine's private key: a regular file of the daemon's user (root)
/// that group and others cannot open (0600 or 0400).
fn private_key(config: &FleetConfig) -> Result<PrivateKeyDer<'static>, FileError> {
    let path = &config.key_file;
    named_files::owner_only(path).map_err(|e| file_error("key_file", path, e))?;
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => file_error(
            "key_file",
            path,
            "no private key in it (PEM, -----BEGIN PRIVATE KEY-----)",
        ),
        e => file_error("key_file", path, named_files::pem_reason(e)),
    })
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A verifier's TLS: its certificate shown, a certificate of the fleet's
/// CA required of every client.
pub fn server(config: &FleetConfig) -> Result<Arc<rustls::ServerConfig>, FileError> {
    let roots = roots(config)?;
    let chain = chain(config)?;
    let key = private_key(config)?;
    let clients = rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider())
        .build()
        .map_err(|e| file_error("ca_file", &config.ca_file, e))?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error("cert_file", &config.cert_file, e))?
        .with_client_cert_verifier(clients)
        .with_single_cert(chain, key)
        .map_err(|e| file_error("key_file", &config.key_file, e))?;
    tls.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(tls))
}

/// A host's TLS: the verifier's certificate checked against the fleet's
/// CA (and its name against the URL's), this host's certificate shown.
pub fn client(config: &FleetConfig) -> Result<Arc<rustls::ClientConfig>, FileError> {
    let roots = roots(config)?;
    let chain = chain(config)?;
    let key = private_key(config)?;
    let mut tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| file_error("cert_file", &config.cert_file, e))?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| file_error("key_file", &config.key_file, e))?;
    tls.alpn_protocols = vec![ALPN_H2.to_vec()];
    Ok(Arc::new(tls))
}

/// How a verifier knows a host: the SHA-256 of its certificate (DER), in
/// lower-case hex, as `openssl x509 -noout -fingerprint -sha256` shows it
/// without the colons.
pub fn fingerprint(cert: &[u8]) -> String {
    hex::encode(Sha256::digest(cert))
}

/// The fingerprint of the first certificate of a PEM file (`twofactord
/// --add-host`).
pub fn fingerprint_of_file(path: &Path) -> Result<String, FileError> {
    let certs = named_files::certificates(path).map_err(|e| file_error("cert_file", path, e))?;
    Ok(fingerprint(certs[0].as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn files_are_named_with_their_key_and_a_key_file_open_to_others_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let config = FleetConfig {
            ca_file: dir.path().join("missing-ca.pem"),
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
            ..FleetConfig::default()
        };
        let e = client(&config).unwrap_err().to_string();
        assert!(
            e.starts_with("[fleet] ca_file ") && e.contains("missing-ca.pem"),
            "{e}"
        );

        std::fs::write(dir.path().join("empty.pem"), "not pem\n").unwrap();
        let config = FleetConfig {
            ca_file: dir.path().join("empty.pem"),
            ..config
        };
        let e = server(&config).unwrap_err().to_string();
        assert!(e.contains("no certificate in it"), "{e}");

        std::fs::write(
            &config.key_file,
            "-----BEGIN PRIVATE KEY-----\nsecretstuff\n",
        )
        .unwrap();
        std::fs::set_permissions(&config.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = private_key(&config).unwrap_err().to_string();
        assert!(e.contains("[fleet] key_file") && e.contains("0644"), "{e}");
        assert!(!e.contains("secretstuff"), "{e}");
        std::fs::set_permissions(&config.key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
        let e = private_key(&config).unwrap_err().to_string();
        assert!(!e.contains("secretstuff"), "{e}");
    }

    #[test]
    fn a_fingerprint_is_the_sha256_of_the_der() {
        assert_eq!(
            fingerprint(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}

//! Files the configuration names beside secrets: a file only the daemon's
//! user may open (a password, a private key), and a PEM file of CA
//! certificates. `[store]` and `[fleet]` read theirs through these, so the
//! checks and their words are the same everywhere; the caller names its
//! key and the file around the reason returned. A reason never carries
//! what a file holds.

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::CertificateDer;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// An I/O error as std words it, without pem's "I/O error: ".
pub fn pem_reason(e: pem::Error) -> String {
    match e {
        pem::Error::Io(e) => e.to_string(),
        e => e.to_string(),
    }
}

/// A regular file, looked at before it is opened: a FIFO or a device is
/// never read.
pub fn regular(path: &Path) -> Result<std::fs::Metadata, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    Ok(meta)
}

/// A regular file of the daemon's user (root) that group and others
/// cannot open (0600 or 0400).
pub fn owner_only(path: &Path) -> Result<(), String> {
    let meta = regular(path)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "mode {mode:04o}, must not be open to group or others (mode 0600 or 0400)"
        ));
    }
    let owner = meta.uid();
    let me = nix::unistd::geteuid().as_raw();
    if owner != me {
        return Err(format!(
            "owned by uid {owner}, must belong to the daemon's user (uid {me})"
        ));
    }
    Ok(())
}

/// The certificates of a PEM file, at least one.
pub fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    regular(path)?;
    let mut out = Vec::new();
    for cert in CertificateDer::pem_file_iter(path).map_err(pem_reason)? {
        out.push(cert.map_err(pem_reason)?);
    }
    if out.is_empty() {
        return Err("no certificate in it (PEM, -----BEGIN CERTIFICATE-----)".into());
    }
    Ok(out)
}

/// The CA certificates of a PEM file, at least one, as a root store.
pub fn roots(path: &Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for (n, cert) in certificates(path)?.into_iter().enumerate() {
        roots
            .add(cert)
            .map_err(|e| format!("certificate {}: {e}", n + 1))?;
    }
    Ok(roots)
}

//! A fleet's CA for tests of the verifier mode, made by `openssl` in a
//! temporary directory: verifier certificates (serverAuth, for the names
//! given) and host certificates (clientAuth), EC P-256, keys 0600.

use crate::proc;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

pub struct FleetCa {
    dir: tempfile::TempDir,
    /// The CA certificate (`[fleet] ca_file`).
    pub ca: PathBuf,
    ca_key: PathBuf,
}

/// A certificate and its key.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

const EC: [&str; 5] = [
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:prime256v1",
    "-nodes",
];

fn openssl(cmd: &mut Command) {
    let out = proc::run(cmd, b"", Duration::from_secs(30));
    assert!(out.success(), "openssl failed: {}", out.describe());
}

impl FleetCa {
    pub fn new() -> FleetCa {
        let dir = crate::var_temp_dir("tft-fleet-ca-");
        let (ca, ca_key) = (dir.path().join("ca.pem"), dir.path().join("ca.key"));
        openssl(
            Command::new("openssl")
                .args(["req", "-x509", "-days", "2"])
                .args(EC)
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&ca)
                .arg("-subj")
                .arg(format!(
                    "/CN=twofactor fleet test CA {}",
                    crate::random_hex(4)
                ))
                .args(["-addext", "basicConstraints=critical,CA:TRUE"])
                .args(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]),
        );
        FleetCa { dir, ca, ca_key }
    }

    /// A verifier's certificate for `localhost` and 127.0.0.1.
    pub fn verifier(&self, name: &str) -> Issued {
        self.issue(
            name,
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A host's certificate (its CN the host's name).
    pub fn host(&self, name: &str) -> Issued {
        self.issue(name, "extendedKeyUsage=clientAuth\n")
    }

    fn issue(&self, name: &str, ext: &str) -> Issued {
        let p = |suffix: &str| self.dir.path().join(format!("{name}.{suffix}"));
        let (cert, key, csr, extfile) = (p("pem"), p("key"), p("csr"), p("ext"));
        crate::write_file(
            &extfile,
            format!(
                "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{ext}"
            ),
            0o644,
        );
        openssl(
            Command::new("openssl")
                .arg("req")
                .args(EC)
                .arg("-keyout")
                .arg(&key)
                .arg("-out")
                .arg(&csr)
                .args(["-subj", &format!("/CN={name}")]),
        );
        crate::set_mode(&key, 0o600);
        openssl(
            Command::new("openssl")
                .args(["x509", "-req", "-days", "2", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&self.ca)
                .arg("-CAkey")
                .arg(&self.ca_key)
                .arg("-set_serial")
                .arg(format!("0x{}", crate::random_hex(8)))
                .arg("-extfile")
                .arg(&extfile)
                .arg("-out")
                .arg(&cert),
        );
        Issued { cert, key }
    }

    /// `[fleet]` for a verifier listening on 127.0.0.1:`port`.
    pub fn verifier_toml(&self, issued: &Issued, port: u16) -> String {
        format!(
            "\n[fleet]\nrole = \"verifier\"\nlisten = \"127.0.0.1:{port}\"\n\
             ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            self.ca.display().to_string(),
            issued.cert.display().to_string(),
            issued.key.display().to_string(),
        )
    }

    /// `[fleet]` for a host asking the verifiers on 127.0.0.1 at `ports`.
    pub fn host_toml(&self, issued: &Issued, ports: &[u16], timeout_seconds: u32) -> String {
        let verifiers: Vec<String> = ports
            .iter()
            .map(|p| format!("\"https://127.0.0.1:{p}\""))
            .collect();
        format!(
            "\n[fleet]\nrole = \"host\"\nverifiers = [{}]\ntimeout_seconds = {timeout_seconds}\n\
             ca_file = {:?}\ncert_file = {:?}\nkey_file = {:?}\n",
            verifiers.join(", "),
            self.ca.display().to_string(),
            issued.cert.display().to_string(),
            issued.key.display().to_string(),
        )
    }
}

impl Default for FleetCa {
    fn default() -> Self {
        FleetCa::new()
    }
}

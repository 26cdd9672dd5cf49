//! OpenSSH's software security key, `regress/misc/sk-dummy/sk-dummy.so`:
//! the middleware OpenSSH's own regression tests use in place of a
//! hardware token (it holds real keys and signs, and says the user touched
//! it unless the key was made with `-O no-touch-required`). Built once
//! from the source of the installed OpenSSH (its `SSH_SK_VERSION_MAJOR`
//! must match the installed `ssh-sk-helper`), then kept under the target
//! directory.
//!
//! The source comes from Debian's package archive (`apt-get source`), read
//! through a private apt configuration (a `deb-src` list of its own and its
//! own package lists): nothing under `/etc/apt` changes. Building needs a C
//! compiler, make and libssl-dev (scripts/deps, `test`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::proc;

/// The archives the source is fetched from, as Debian 12 names them.
const SOURCES: &str = "\
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
";

/// The built middleware, made on first use (a lock file keeps concurrent
/// test processes from building it twice).
pub fn provider() -> PathBuf {
    let dir = crate::target_dir().join("sk-dummy");
    let built = dir.join("sk-dummy.so");
    if built.exists() {
        return built;
    }
    std::fs::create_dir_all(&dir).expect("mkdir target/sk-dummy");
    let lock = std::fs::File::create(dir.join("lock")).expect("sk-dummy lock file");
    // SAFETY: flock on a descriptor this function owns for the whole call.
    let locked = unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) };
    assert_eq!(locked, 0, "flock sk-dummy lock");
    if !built.exists() {
        build(&dir, &built);
    }
    built
}

fn run(what: &str, cmd: &mut Command, timeout: Duration) -> String {
    let out = proc::run(cmd.env("PATH", crate::PATH), b"", timeout);
    assert!(out.success(), "{what}: {}", out.describe());
    out.stdout()
}

fn build(dir: &Path, built: &Path) {
    let work = dir.join(format!("work-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(work.join("lists/partial")).expect("mkdir apt lists");
    std::fs::write(work.join("sources.list"), SOURCES).expect("write sources.list");
    let apt = |args: &[&str]| {
        let mut c = Command::new("apt-get");
        c.current_dir(&work)
            .arg("-q")
            .arg("-o")
            .arg(format!(
                "Dir::Etc::SourceList={}",
                work.join("sources.list").display()
            ))
            .args(["-o", "Dir::Etc::SourceParts=/nonexistent"])
            .arg("-o")
            .arg(format!(
                "Dir::State::Lists={}",
                work.join("lists").display()
            ))
            .args(["-o", "APT::Sandbox::User=root"])
            .args(args);
        c
    };
    let version = run(
        "dpkg-query openssh-client",
        Command::new("dpkg-query").args(["-W", "-f", "${Version}", "openssh-client"]),
        Duration::from_secs(30),
    );
    run(
        "apt-get update (deb-src)",
        &mut apt(&["update"]),
        Duration::from_secs(300),
    );
    run(
        "apt-get source openssh",
        &mut apt(&[
            "source",
            "--download-only",
            &format!("openssh={}", version.trim()),
        ]),
        Duration::from_secs(300),
    );
    // The upstream tarball: Debian's patches touch configure.ac, which
    // would then want autoreconf.
    let tarball = std::fs::read_dir(&work)
        .expect("read work dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.to_string_lossy().ends_with(".orig.tar.gz"))
        .unwrap_or_else(|| panic!("no openssh .orig.tar.gz in {}", work.display()));
    run(
        "tar",
        Command::new("tar")
            .arg("-xzf")
            .arg(&tarball)
            .current_dir(&work),
        Duration::from_secs(120),
    );
    let src = std::fs::read_dir(&work)
        .expect("read work dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.is_dir() && p.to_string_lossy().contains("openssh-"))
        .unwrap_or_else(|| panic!("no openssh source directory in {}", work.display()));
    run(
        "configure",
        Command::new("./configure")
            .arg("--without-zlib")
            .current_dir(&src),
        Duration::from_secs(600),
    );
    // One target at a time: the library first (make -j would race).
    for target in [
        "openbsd-compat/libopenbsd-compat.a",
        "regress/misc/sk-dummy/sk-dummy.so",
    ] {
        run(
            &format!("make {target}"),
            Command::new("make").arg(target).current_dir(&src),
            Duration::from_secs(600),
        );
    }
    // Whole or not at all: another process may look at `built` any time.
    let partial = built.with_extension("partial");
    std::fs::copy(src.join("regress/misc/sk-dummy/sk-dummy.so"), &partial)
        .expect("copy sk-dummy.so");
    crate::set_mode(&partial, 0o755);
    std::fs::rename(&partial, built).expect("rename sk-dummy.so");
    let _ = std::fs::remove_dir_all(&work);
}

//! One list of system packages (issue 22): `scripts/deps` is what the
//! README, `.ci/run`, `make demo`, `make test` and debian/control's
//! Build-Depends name, so none of them can drift from it. Plain file
//! checks; any user.

use std::collections::BTreeSet;

use twofactor_tests::repo_root;

fn read(path: &str) -> String {
    std::fs::read_to_string(repo_root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The sections of scripts/deps: name, packages.
fn sections() -> Vec<(String, BTreeSet<String>)> {
    read("scripts/deps")
        .lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .filter_map(|l| l.split_once(':'))
        .map(|(name, packages)| {
            (
                name.trim().to_string(),
                packages.split_whitespace().map(str::to_string).collect(),
            )
        })
        .collect()
}

fn section(name: &str) -> BTreeSet<String> {
    sections()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p)
        .unwrap_or_else(|| panic!("scripts/deps has no section {name}"))
}

fn all() -> BTreeSet<String> {
    sections().into_iter().flat_map(|(_, p)| p).collect()
}

/// The text of the fenced code blocks of a Markdown page (the commands a
/// reader copies).
fn code_blocks(markdown: &str) -> String {
    let mut inside = false;
    let mut out = String::new();
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            inside = !inside;
        } else if inside {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// The packages after `apt-get install` in `text` (options and line
/// continuations skipped; a local `./file.deb` is not a package name), for
/// every such command.
fn apt_installed(text: &str) -> BTreeSet<String> {
    let joined = text.replace("\\\n", " ");
    let mut named = BTreeSet::new();
    for line in joined.lines() {
        let Some((_, rest)) = line.split_once("apt-get install") else {
            continue;
        };
        for word in rest.split_whitespace() {
            // A comment, or a command substitution: the names come from
            // elsewhere (`$(scripts/need --print …)`), not from this text.
            if word.starts_with('#') || word.starts_with("$(") {
                break;
            }
            let option = word.starts_with('-') || word.starts_with('"') || word.starts_with('$');
            let local = word.starts_with("./") || word.ends_with(".deb");
            if !option && !local {
                named.insert(word.to_string());
            }
        }
    }
    named
}

#[test]
fn the_list_has_its_sections_and_no_package_twice() {
    let mut seen = BTreeSet::new();
    for (name, packages) in sections() {
        assert!(!packages.is_empty(), "section {name} is empty");
        for p in packages {
            assert!(seen.insert(p.clone()), "{p} is listed twice");
        }
    }
    for name in ["bootstrap", "build", "demo", "test", "package"] {
        section(name);
    }
}

/// The README's install step names exactly the bootstrap section, and no
/// other package: the rest is installed by `make demo` / `make test` from
/// the list, which the README links.
#[test]
fn the_readme_names_the_bootstrap_section_and_links_the_list() {
    let readme = read("README.md");
    let named = apt_installed(&code_blocks(&readme));
    assert_eq!(named, section("bootstrap"), "README's apt-get install line");
    assert!(readme.contains("scripts/deps"), "the README links the list");
}

/// `.ci/run` installs from the list (scripts/need) and names no package of
/// its own.
#[test]
fn ci_installs_from_the_list_and_names_no_package_itself() {
    let ci = read(".ci/run");
    assert!(ci.contains("scripts/need"), ".ci/run does not use the list");
    let named = apt_installed(&ci);
    assert!(named.is_empty(), ".ci/run names packages itself: {named:?}");
    assert!(ci.trim_end().ends_with("make test"), "{ci}");
}

/// debian/control's Build-Depends are the build section (build-essential
/// and gcc are implied by Debian policy) plus debhelper's compat level
/// (the package section's debhelper), and the other way round.
#[test]
fn build_depends_agree_with_the_build_section() {
    let control = read("debian/control");
    let start = control
        .find("Build-Depends:")
        .expect("Build-Depends in debian/control");
    let mut field = String::new();
    for (i, line) in control[start..].lines().enumerate() {
        if i > 0 && !line.starts_with(char::is_whitespace) {
            break;
        }
        field.push_str(line.trim_start_matches("Build-Depends:"));
        field.push(' ');
    }
    let declared: BTreeSet<String> = field
        .split(',')
        .map(|d| d.split_whitespace().next().unwrap_or("").to_string())
        .filter(|d| !d.is_empty())
        .map(|d| {
            if d == "debhelper-compat" {
                "debhelper".into()
            } else {
                d
            }
        })
        .collect();
    let mut expected: BTreeSet<String> = section("build")
        .into_iter()
        .filter(|p| p != "build-essential" && p != "gcc")
        .collect();
    expected.insert("debhelper".into());
    assert!(section("package").contains("debhelper"));
    assert_eq!(declared, expected, "Build-Depends vs scripts/deps build");
}

/// Every package the list names is one this machine's apt knows, so a
/// typo fails here rather than on a fresh machine.
#[test]
fn every_listed_package_exists() {
    let known = std::process::Command::new("apt-cache")
        .arg("policy")
        .args(all())
        .output();
    let Ok(out) = known else {
        eprintln!("apt-cache is not here; skipped");
        return;
    };
    let text = String::from_utf8_lossy(&out.stdout);
    for p in all() {
        assert!(
            text.lines().any(|l| l == format!("{p}:")),
            "apt does not know {p}"
        );
    }
}

/// A user without sudo rights (sudo refuses: no terminal, not in sudoers)
/// is told the exact command and stopped, before anything is built, and
/// nothing is installed. Root only (a real user). `sl`: a package in
/// Debian's archive that nothing here needs (the list is a copy with it).
#[test]
fn without_sudo_the_exact_command_is_printed_and_nothing_installed() {
    if !twofactor_tests::need_root!() {
        return;
    }
    let installed = |p: &str| {
        std::process::Command::new("dpkg-query")
            .args(["-W", "-f=${db:Status-Status}", p])
            .output()
            .map(|o| o.stdout == b"installed")
            .unwrap_or(false)
    };
    if installed("sl") {
        eprintln!("sl is installed here; the test needs a package that is not");
        return;
    }
    let user = twofactor_tests::TestUser::new();
    let dir = twofactor_tests::temp_dir("tft-need-");
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::copy(
        repo_root().join("scripts/need"),
        dir.path().join("scripts/need"),
    )
    .unwrap();
    twofactor_tests::write_file(&dir.path().join("scripts/deps"), "demo: sl\n", 0o644);
    twofactor_tests::set_mode(dir.path(), 0o755);
    twofactor_tests::set_mode(&dir.path().join("scripts"), 0o755);
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new(dir.path().join("scripts/need"));
    cmd.arg("demo")
        .env_clear()
        .env("PATH", twofactor_tests::PATH)
        .env("HOME", user.home())
        .uid(user.uid)
        .gid(user.gid);
    let out = twofactor_tests::proc::run(&mut cmd, b"", std::time::Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(1), "{}", out.describe());
    assert!(
        out.stdout().contains("need: missing sl"),
        "the packages are named first: {}",
        out.describe()
    );
    assert!(
        out.stderr()
            .contains("as root, run: apt-get install -y --no-install-recommends sl"),
        "{}",
        out.describe()
    );
    assert!(!installed("sl"), "nothing was installed");
}

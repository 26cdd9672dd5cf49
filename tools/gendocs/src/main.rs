//! `gendocs DIR`: writes into DIR the man pages generated from the programs'
//! own clap definitions (so `--help` and the man page cannot drift apart)
//! and the shell completions of `twofactorctl`:
//!
//! ```text
//! DIR/twofactorctl.1   DIR/twofactord.8
//! DIR/twofactorctl.bash   DIR/_twofactorctl (zsh)
//! ```
//!
//! The definitions are the programs' own source files, included here.
//! `pam_twofactor(8)` and `twofactord.toml(5)` are written in scdoc
//! (`docs/man/`), not generated.

#[allow(dead_code)]
#[path = "../../../ctl/src/cli.rs"]
mod ctl_cli;

#[allow(dead_code)]
#[path = "../../../daemon/src/args.rs"]
mod daemon_args;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(dir), None) = (args.next(), args.next()) else {
        eprintln!("usage: gendocs DIR");
        return ExitCode::from(2);
    };
    match write_all(Path::new(&dir)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gendocs: {e}");
            ExitCode::from(1)
        }
    }
}

fn write_all(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for (cmd, section, file) in [
        (ctl_cli::Cli::command(), "1", "twofactorctl.1"),
        (daemon_args::Args::command(), "8", "twofactord.8"),
    ] {
        let mut out = Vec::new();
        clap_mangen::Man::new(cmd)
            .section(section)
            .manual("twofactor")
            .render(&mut out)?;
        let path = dir.join(file);
        std::fs::write(&path, out)?;
        written.push(path);
    }
    for (shell, file) in [
        (Shell::Bash, "twofactorctl.bash"),
        (Shell::Zsh, "_twofactorctl"),
    ] {
        let mut out = Vec::new();
        clap_complete::generate(
            shell,
            &mut ctl_cli::Cli::command(),
            "twofactorctl",
            &mut out,
        );
        let path = dir.join(file);
        std::fs::write(&path, out)?;
        written.push(path);
    }
    Ok(written)
}

//! twofactorctl: the command-line client of twofactord. See `--help`.

mod cli;
mod client;
mod commands;
mod error;
mod input;
mod localtime;
mod private_file;
mod qr;
mod security_key;
mod text;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::from(error::EXIT_OK),
        Err(failure) => {
            // Nothing more can be done if stderr is gone; the exit code still tells.
            let _ = writeln!(std::io::stderr(), "twofactorctl: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

//! `twofactor-key`: see the library's documentation. Exit status 0 with
//! one answer on standard output; 2 with a message on standard error for
//! a usage error only.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use twofactor_fido::KeyAnswer;
use twofactor_key::{read_input, run_as, Args, Source};

fn main() -> ExitCode {
    // clap: a usage error exits 2 with its message.
    let args = Args::parse();
    let source = match &args.test_device {
        None => Source::Plugged,
        #[cfg(feature = "test-transport")]
        Some(path) => Source::Test(path.clone()),
        #[cfg(not(feature = "test-transport"))]
        Some(_) => {
            eprintln!("twofactor-key: {}", twofactor_key::NO_TEST_TRANSPORT);
            return ExitCode::from(2);
        }
    };
    let answer = match read_input(std::io::stdin().lock()) {
        Ok(Some(input)) => run_as(&source, args.timeout_ms, &input, args.probe),
        Ok(None) => KeyAnswer::Failed(format!(
            "helper input longer than {} bytes",
            twofactor_key::MAX_INPUT
        )),
        Err(e) => KeyAnswer::Failed(format!("reading the helper input: {e}")),
    };
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(&answer.encode()).and_then(|()| out.flush()) {
        eprintln!("twofactor-key: writing the answer: {e}");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

//! One module per subcommand. Each takes the daemon as an [`Account`] (the
//! `admin` commands: an [`Admin`]), its questions from an [`Input`] and
//! writes its output to a `Write`, so that the flow can be tested without a
//! bus.
//!
//! [`Account`]: crate::client::Account
//! [`Admin`]: crate::client::Admin

pub mod admin;
pub mod backup;
pub mod devices;
pub mod disable;
pub mod enable;
pub mod keys;
pub mod output;
pub mod prefer;
pub mod proof;
pub mod ssh_keys;
pub mod status;

use std::io::{self, Write};

use twofactor_proto::types::method;

use crate::cli::{Cli, Command, DevicesChange, EnableMethod};
use crate::client::Client;
use crate::error::Failure;
use crate::input::Input;
use crate::qr;
use crate::security_key::Fido;
use backup::Here;

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Failure> {
    let client = Client::connect(cli.bus.as_deref())?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    let result = match cli.command {
        Command::Status(args) => status::run(&client, &args, &mut out, now()),
        Command::Enable(args) => match args.method {
            EnableMethod::App(args) => {
                let mut input = Input::from_stdin()?;
                enable::app(
                    &client,
                    &mut input,
                    &mut out,
                    &args,
                    qr::Style::for_stdout(),
                    &Here::this_machine(),
                )
            }
            EnableMethod::Email(args) => {
                let mut input = Input::from_stdin()?;
                enable::email::run(&client, &mut input, &mut out, &args, &Here::this_machine())
            }
            EnableMethod::SshKey(args) => {
                let mut input = Input::from_stdin()?;
                enable::ssh_key::run(&client, &mut input, &mut out, &args, &Here::this_machine())
            }
            EnableMethod::Key(args) => {
                let mut input = Input::from_stdin()?;
                enable::key::run(
                    &client,
                    &Fido::this_machine(),
                    &mut input,
                    &mut out,
                    &args,
                    &Here::this_machine(),
                )
            }
        },
        Command::SshKeys(args) => ssh_keys::list(&client, args.json, &mut out),
        Command::Keys(args) => keys::list(&client, args.json, &mut out),
        Command::Prefer(args) => prefer::run(&client, &mut out, &args),
        Command::Disable(args) => {
            let mut input = Input::from_stdin()?;
            disable::run(&client, &mut input, &mut out, &args)
        }
        Command::BackupCodes(args) => {
            let mut input = Input::from_stdin()?;
            backup::run(&client, &mut input, &mut out, &args, &Here::this_machine())
        }
        Command::Devices(args) => match args.change {
            None => devices::list(&client, args.json, &mut out),
            Some(DevicesChange::Remove(remove)) => {
                let mut input = Input::from_stdin()?;
                devices::remove(&client, &mut input, &mut out, &remove.which)
            }
        },
        Command::Admin(args) => admin::run(
            &client,
            args.command,
            &mut out,
            &admin::Me::this_process(),
            now(),
        ),
    };
    out.flush().map_err(write_failure)?;
    result
}

/// Seconds since the Unix epoch (0 if the clock is before it).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A method name as people read it.
pub fn describe(name: &str) -> String {
    match name {
        method::APP => "authenticator app".to_owned(),
        method::EMAIL => "codes by email".to_owned(),
        method::BACKUP_CODE => "backup code".to_owned(),
        method::SSH_KEY => "security keys for SSH".to_owned(),
        method::KEY => "security keys".to_owned(),
        other => crate::text::one_line(other),
    }
}

/// The preferred method when none is set: logins ask first for the method
/// used last.
pub const NO_PREFERRED: &str = "none: the one used last";

/// The preferred method as people read it ("" = [`NO_PREFERRED`]).
pub fn describe_preferred(name: &str) -> String {
    if name.is_empty() {
        NO_PREFERRED.to_owned()
    } else {
        describe(name)
    }
}

/// The method of the last two-factor login as people read it.
pub fn describe_last(name: &str) -> String {
    if name.is_empty() {
        "none yet".to_owned()
    } else {
        describe(name)
    }
}

/// Methods as people read them, comma separated.
pub fn describe_all(names: &[String]) -> String {
    names
        .iter()
        .map(|m| describe(m))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writing to stdout failed (closed pipe, full disk).
pub fn write_failure(err: io::Error) -> Failure {
    Failure::io("writing the output", &err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_named_for_people() {
        for (got, want) in [
            (describe("app"), "authenticator app"),
            (describe("email"), "codes by email"),
            (describe("backup-code"), "backup code"),
            (describe("ssh-key"), "security keys for SSH"),
            (describe("key"), "security keys"),
            (describe("sms\n\x1b[2J"), "sms [2J"),
            (
                describe_all(&["app".into(), "email".into()]),
                "authenticator app, codes by email",
            ),
            (describe_preferred(""), NO_PREFERRED),
            (describe_preferred("email"), "codes by email"),
            (describe_last(""), "none yet"),
            (describe_last("app"), "authenticator app"),
        ] {
            assert_eq!(got, want);
        }
    }
}

/// A scripted daemon for unit tests of the commands: canned answers and a
/// record of the calls.
#[cfg(test)]
pub mod fake {
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use twofactor_proto::types::{AppEnrolment, Device, SecurityKey, SshKey};
    use twofactor_proto::AccountStatus;

    use super::backup::Here;
    use crate::client::{Account, Proof};
    use crate::error::Failure;
    use crate::input::Input;

    /// What `EnrollSshKey` and `ConfirmKey` answer: the key's id and the
    /// backup codes.
    pub type KeyEnrolment = (String, Vec<String>);
    /// What `EnrollKey` answers: the enrolment and the encoded request.
    pub type KeyRequest = (String, Vec<u8>);

    #[derive(Default)]
    pub struct FakeAccount {
        pub statuses: RefCell<VecDeque<Result<AccountStatus, Failure>>>,
        pub enrolment: RefCell<Option<Result<AppEnrolment, Failure>>>,
        pub confirms: RefCell<VecDeque<Result<Vec<String>, Failure>>>,
        pub new_codes: RefCell<VecDeque<Result<Vec<String>, Failure>>>,
        pub disables: RefCell<VecDeque<Result<(), Failure>>>,
        /// Answers of EnrollEmail and ResendEmail (the masked address), in
        /// the order of the calls.
        pub email_sends: RefCell<VecDeque<Result<String, Failure>>>,
        pub email_confirms: RefCell<VecDeque<Result<Vec<String>, Failure>>>,
        pub prefers: RefCell<VecDeque<Result<(), Failure>>>,
        pub device_lists: RefCell<VecDeque<Result<Vec<Device>, Failure>>>,
        pub device_removals: RefCell<VecDeque<Result<u32, Failure>>>,
        pub ssh_key_enrolments: RefCell<VecDeque<Result<KeyEnrolment, Failure>>>,
        pub ssh_key_lists: RefCell<VecDeque<Result<Vec<SshKey>, Failure>>>,
        /// Answers of EnrollKey: the enrolment and the encoded request.
        pub key_enrolments: RefCell<VecDeque<Result<KeyRequest, Failure>>>,
        /// Answers of ConfirmKey: the key's id and the backup codes.
        pub key_confirms: RefCell<VecDeque<Result<KeyEnrolment, Failure>>>,
        pub key_lists: RefCell<VecDeque<Result<Vec<SecurityKey>, Failure>>>,
        pub key_removals: RefCell<VecDeque<Result<(), Failure>>>,
        /// The attestations ConfirmKey was given, in order.
        pub key_attestations: RefCell<Vec<Vec<u8>>>,
        /// Every call, with its arguments (passwords included, to check them).
        pub calls: RefCell<Vec<String>>,
    }

    impl FakeAccount {
        pub fn with_status(status: AccountStatus) -> Self {
            let fake = FakeAccount::default();
            fake.statuses.borrow_mut().push_back(Ok(status));
            fake
        }
        pub fn calls(&self) -> Vec<String> {
            self.calls.borrow().clone()
        }
        /// Records `call` and gives the next scripted answer of `answers`.
        fn answer<T>(
            &self,
            call: String,
            answers: &RefCell<VecDeque<Result<T, Failure>>>,
        ) -> Result<T, Failure> {
            self.calls.borrow_mut().push(call);
            answers
                .borrow_mut()
                .pop_front()
                .unwrap_or_else(|| Err(unscripted()))
        }
    }

    /// The clock of [`here`].
    pub const MADE: i64 = 1_700_000_000;

    /// The machine of the tests: host `testhost`, time [`MADE`].
    pub fn here() -> Here {
        Here {
            host: "testhost".into(),
            now: || MADE,
        }
    }

    /// Runs `command` with `stdin` as the answers (`interactive`: as if a
    /// person typed them): its result, stdout, and what was said on stderr.
    pub fn scripted(
        stdin: &[u8],
        interactive: bool,
        command: impl FnOnce(&mut Input, &mut dyn Write) -> Result<(), Failure>,
    ) -> (Result<(), Failure>, String, String) {
        let (mut input, seen) = Input::scripted_seen(stdin, interactive);
        let mut out = Vec::new();
        let r = command(&mut input, &mut out);
        (r, String::from_utf8(out).unwrap(), seen.text())
    }

    /// The codes of a saved file, which must be a regular 0600 file.
    pub fn saved_codes(path: &Path) -> Vec<String> {
        let meta = std::fs::symlink_metadata(path).unwrap();
        assert!(meta.file_type().is_file());
        assert_eq!(meta.permissions().mode() & 0o7777, 0o600);
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// `text` holds `parts`, in this order.
    pub fn assert_in_order(text: &str, parts: &[&str]) {
        let mut from = 0;
        for part in parts {
            match text[from..].find(part) {
                Some(at) => from += at + part.len(),
                None => panic!("{part:?} not found (in order) in {text}"),
            }
        }
    }

    /// alice's status with `methods`.
    pub fn status(methods: &[&str]) -> AccountStatus {
        AccountStatus {
            user: "alice".into(),
            methods: methods.iter().map(|m| m.to_string()).collect(),
            ..AccountStatus::default()
        }
    }

    /// A set of ten distinct codes in the daemon's display form.
    pub fn ten_codes() -> Vec<String> {
        (0..10)
            .map(|i| format!("abc{}-efgh-jkm{}", (b'a' + i) as char, (b'p' + i) as char))
            .collect()
    }

    fn unscripted() -> Failure {
        Failure::new(crate::error::Reason::Unexpected, "unscripted call")
    }

    /// The password as the fake records it, and the code after a `+`
    /// when one was given.
    fn text(proof: Proof) -> String {
        let password = String::from_utf8_lossy(proof.password);
        if proof.code.is_empty() {
            password.into_owned()
        } else {
            format!("{password}+{}", String::from_utf8_lossy(proof.code))
        }
    }

    impl Account for FakeAccount {
        fn status(&self) -> Result<AccountStatus, Failure> {
            self.answer("Status".into(), &self.statuses)
        }
        fn enroll_app(&self, proof: Proof) -> Result<AppEnrolment, Failure> {
            self.calls
                .borrow_mut()
                .push(format!("EnrollApp({})", text(proof)));
            self.enrolment
                .borrow_mut()
                .take()
                .unwrap_or_else(|| Err(unscripted()))
        }
        fn confirm_app(&self, enrolment: &str, code: &str) -> Result<Vec<String>, Failure> {
            self.answer(format!("ConfirmApp({enrolment},{code})"), &self.confirms)
        }
        fn new_backup_codes(&self, proof: Proof) -> Result<Vec<String>, Failure> {
            self.answer(format!("NewBackupCodes({})", text(proof)), &self.new_codes)
        }
        fn enroll_email(&self, address: &str, proof: Proof) -> Result<String, Failure> {
            self.answer(
                format!("EnrollEmail({address},{})", text(proof)),
                &self.email_sends,
            )
        }
        fn send_code(&self) -> Result<String, Failure> {
            self.answer("SendCode".into(), &self.email_sends)
        }
        fn resend_email(&self) -> Result<String, Failure> {
            self.answer("ResendEmail".into(), &self.email_sends)
        }
        fn confirm_email(&self, code: &str) -> Result<Vec<String>, Failure> {
            self.answer(format!("ConfirmEmail({code})"), &self.email_confirms)
        }
        fn set_preferred(&self, method: &str) -> Result<(), Failure> {
            self.answer(format!("SetPreferred({method})"), &self.prefers)
        }
        fn disable(&self, method: &str, proof: Proof) -> Result<(), Failure> {
            self.answer(format!("Disable({method},{})", text(proof)), &self.disables)
        }
        fn list_devices(&self) -> Result<Vec<Device>, Failure> {
            self.answer("ListDevices".into(), &self.device_lists)
        }
        fn remove_devices(&self, id: &str, proof: Proof) -> Result<u32, Failure> {
            self.answer(
                format!("RemoveDevices({id},{})", text(proof)),
                &self.device_removals,
            )
        }
        fn enroll_ssh_key(
            &self,
            public_key: &str,
            key_handle: &[u8],
            proof: Proof,
        ) -> Result<(String, Vec<String>), Failure> {
            let handle = if key_handle.is_empty() {
                String::new()
            } else {
                format!("handle {} bytes,", key_handle.len())
            };
            self.answer(
                format!("EnrollSshKey({public_key},{handle}{})", text(proof)),
                &self.ssh_key_enrolments,
            )
        }
        fn list_ssh_keys(&self) -> Result<Vec<SshKey>, Failure> {
            self.answer("ListSshKeys".into(), &self.ssh_key_lists)
        }
        fn enroll_key(&self, proof: Proof) -> Result<(String, Vec<u8>), Failure> {
            self.answer(format!("EnrollKey({})", text(proof)), &self.key_enrolments)
        }
        /// Recorded with the attestation's length; its bytes are kept in
        /// `key_attestations`.
        fn confirm_key(
            &self,
            enrolment: &str,
            label: &str,
            attestation: &[u8],
        ) -> Result<(String, Vec<String>), Failure> {
            self.key_attestations
                .borrow_mut()
                .push(attestation.to_vec());
            self.answer(
                format!(
                    "ConfirmKey({enrolment},{label},{} bytes)",
                    attestation.len()
                ),
                &self.key_confirms,
            )
        }
        fn list_keys(&self) -> Result<Vec<SecurityKey>, Failure> {
            self.answer("ListKeys".into(), &self.key_lists)
        }
        fn remove_key(&self, id: &str, proof: Proof) -> Result<(), Failure> {
            self.answer(
                format!("RemoveKey({id},{})", text(proof)),
                &self.key_removals,
            )
        }
    }
}

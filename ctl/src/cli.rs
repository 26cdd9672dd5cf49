//! The command line: clap definitions and the help texts, which are the
//! reference documentation of `twofactorctl`.
//!
//! Each subcommand has its own `*Args` struct and a module in
//! [`crate::commands`]. Commands planned in DESIGN.md (`prefer`, `devices`,
//! `enable email`, `admin ...`) are added as new variants here and new
//! modules there.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit status table, shared by every help page (a macro so it can be
/// `concat!`-ed into the help literals).
macro_rules! exit_status_help {
    () => {
        "Exit status:
  0  success
  1  refused by twofactord: wrong password or code, permission denied,
     already or not enabled, too many attempts, invalid input
  2  usage error: bad arguments, or missing or over-long input on stdin
  3  twofactord is not running, the system bus is unavailable,
     or the daemon did not answer in time
  4  any other error (internal error in the daemon, I/O error)"
    };
}

/// How a set of backup codes is shown and saved, shared by `enable app` and
/// `backup-codes` (a macro so it can be `concat!`-ed into the help literals).
macro_rules! backup_codes_help {
    () => {
        "Backup codes: each of the ten codes lets you in once, typed at the login's
code prompt instead of the app's code (with or without the \"-\", in any
case). They are printed to stdout after the line
  Backup codes (each works once; keep them somewhere safe, away from the phone):
one per line, like abcd-efgh-jkmn, and are not shown again.

Saving them: with --save FILE they are written to FILE, created by you with
mode 0600 (readable only by you). An existing FILE is never replaced unless
--force is given, and then only if it is a regular file of yours with no
other hard link; a symbolic link is never followed, not even with --force.
Without --save, a person at a terminal is asked
  Save them to a file? Path (empty: no):
(a leading ~/ means your home directory); a script is not asked. After
saving, stdout gets the line \"Saved to /absolute/path (readable only by you).\"
The file starts with comment lines (#) naming the account, the host and the
local time the codes were made, then lists the codes one per line.

A FILE that cannot be used (it exists without --force, is a link, a
directory, someone else's file, or its directory does not exist or is not
writable for you) is refused with exit status 2 before the password is asked. If saving fails after the
codes were made, they are still printed and the exit status is 2 (refused
file) or 4 (I/O error)."
    };
}

const LONG_ABOUT: &str = "\
Manage two-factor authentication (2FA) for your own login.

twofactorctl is a client of twofactord, the daemon that keeps all two-factor
state and makes every decision; it never reads the database or the
configuration itself. Changes that weaken security (turning a method off,
a new secret, a new set of backup codes) need your account password again,
which twofactord checks.

Questions are read from the terminal when stdin is one (the password with
echo off). Otherwise each question takes the next line of stdin, so that
scripts can answer them. Prompts and messages go to stderr (or the
terminal), so stdout carries only the output. A password is never taken
from the command line or the environment.";

#[derive(Debug, Parser)]
#[command(
    name = "twofactorctl",
    version,
    about = "Manage two-factor authentication for your login (a client of twofactord)",
    long_about = LONG_ABOUT,
    after_help = exit_status_help!(),
)]
pub struct Cli {
    /// Talk to twofactord on this D-Bus address instead of the system bus
    ///
    /// For tests and demos, e.g. `--bus unix:path=/tmp/bus`. Without it
    /// the system bus is used: $DBUS_SYSTEM_BUS_ADDRESS if set, else the
    /// standard socket.
    #[arg(long, global = true, value_name = "ADDRESS")]
    pub bus: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the two-factor state of your account
    #[command(
        long_about = "Show the two-factor state of your account: active methods, how many\n\
                      backup codes are left (never the codes), preferred and last used\n\
                      method, the last two-factor login (local time), failed attempts and\n\
                      lockout, and whether an enrolment is pending.",
        after_help = concat!(
            "With --json, prints one JSON object with the fields user, methods, preferred,\n",
            "last_method, last_login (Unix time, 0 = never), failures, locked_until (Unix\n",
            "time, 0 = not locked), enrolment_pending and backup_codes_left.\n\n",
            exit_status_help!()
        )
    )]
    Status(StatusArgs),

    /// Turn on a second factor for your account
    Enable(EnableArgs),

    /// Turn off a second factor (asks for your password)
    #[command(
        long_about = "Turn off a second factor of your account. Asks for your account\n\
                      password again (checked by twofactord). `app` removes the\n\
                      authenticator app; `all` removes every method, which turns\n\
                      two-factor authentication off for your account.",
        after_help = concat!(
            "Input when stdin is not a terminal: line 1 = the account password.\n",
            "Output: what was removed, e.g. \"Removed: authenticator app.\"\n\n",
            exit_status_help!()
        )
    )]
    Disable(DisableArgs),

    /// Make a new set of backup codes; the old set stops working (asks for your password)
    #[command(
        name = "backup-codes",
        long_about = "Make a new set of ten backup codes. The new set replaces the old one:\n\
                      the unused codes you have now stop working at once. You are told how\n\
                      many that are, then asked for your account password (checked by\n\
                      twofactord), which confirms the change. Needs an active method\n\
                      (`twofactorctl enable app`); without one it is refused (exit status\n\
                      1) before the password is asked.",
        after_help = concat!(
            backup_codes_help!(),
            "\n\n",
            "Input when stdin is not a terminal: line 1 = the account password.\n\n",
            exit_status_help!()
        )
    )]
    BackupCodes(BackupCodesArgs),
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as one JSON object (for scripts)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    #[command(subcommand)]
    pub method: EnableMethod,
}

#[derive(Debug, Subcommand)]
pub enum EnableMethod {
    /// Set up an authenticator app (TOTP): password, QR code, confirm a code
    #[command(
        long_about = "Set up an authenticator app (TOTP, as in RFC 6238). Asks for your\n\
                      account password, then shows a QR code to scan, the secret for manual\n\
                      entry and the otpauth:// URI, then asks for a code from the app. The\n\
                      app becomes active only when that code is right. A person at a\n\
                      terminal gets 3 tries; a script gets one. Then ten backup codes are\n\
                      shown, for logins without the phone, and can be saved to a file.\n\n\
                      On a terminal the QR code is drawn black on white; otherwise (or with\n\
                      NO_COLOR set) it is drawn for a dark background, or for a light one\n\
                      when COLORFGBG says so.",
        after_help = concat!(
            "Output (stdout), in order: the QR code, then the lines\n",
            "  Secret: XXXX XXXX XXXX ...      (base32, groups of 4; remove the spaces)\n",
            "  URI: otpauth://totp/...\n",
            "then, after the code was accepted:\n",
            "  Authenticator app enabled.\n",
            "followed by an empty line and the first set of backup codes.\n\n",
            backup_codes_help!(),
            "\n\n",
            "Input when stdin is not a terminal: line 1 = the account password,\n",
            "line 2 = the code (nothing more is read). The secret is printed (and\n",
            "stdout flushed) before the code is read, so a script can compute the\n",
            "code from the Secret: line. The secret, URI and backup codes are printed\n",
            "only to stdout (and the file of --save), never logged.\n\n",
            exit_status_help!()
        )
    )]
    App(EnableAppArgs),
}

#[derive(Debug, Args)]
pub struct EnableAppArgs {
    #[command(flatten)]
    pub save: SaveArgs,
}

#[derive(Debug, Args)]
pub struct BackupCodesArgs {
    #[command(flatten)]
    pub save: SaveArgs,
}

/// Where to save a set of backup codes.
#[derive(Debug, Clone, Default, Args)]
pub struct SaveArgs {
    /// Also write the backup codes to FILE (mode 0600, never through a link)
    ///
    /// FILE is created by you, readable only by you. It must not exist
    /// unless --force is given.
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,

    /// Replace FILE of --save if it exists (only a regular file of yours)
    #[arg(long, requires = "save")]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// What to turn off
    #[arg(value_enum, value_name = "METHOD")]
    pub method: DisableMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DisableMethod {
    /// The authenticator app
    App,
    /// Every method: two-factor authentication is then off for you
    All,
}

impl DisableMethod {
    /// The name `Account1.Disable` expects.
    pub fn wire_name(self) -> &'static str {
        match self {
            DisableMethod::App => twofactor_proto::types::method::APP,
            DisableMethod::All => "all",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_the_commands() {
        let cli = Cli::try_parse_from(["twofactorctl", "status", "--json"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Status(StatusArgs { json: true })
        ));
        assert!(cli.bus.is_none());

        let cli = Cli::try_parse_from(["twofactorctl", "enable", "app", "--bus", "unix:path=/x"])
            .unwrap();
        assert!(matches!(
            cli.command,
            Command::Enable(EnableArgs {
                method: EnableMethod::App(_)
            })
        ));
        assert_eq!(cli.bus.as_deref(), Some("unix:path=/x"));

        let cli = Cli::try_parse_from(["twofactorctl", "--bus", "unix:path=/y", "disable", "all"])
            .unwrap();
        match cli.command {
            Command::Disable(d) => assert_eq!(d.method.wire_name(), "all"),
            other => panic!("{other:?}"),
        }

        let cli = Cli::try_parse_from(["twofactorctl", "backup-codes"]).unwrap();
        match cli.command {
            Command::BackupCodes(b) => {
                assert!(b.save.save.is_none());
                assert!(!b.save.force);
            }
            other => panic!("{other:?}"),
        }
        let cli = Cli::try_parse_from([
            "twofactorctl",
            "backup-codes",
            "--save",
            "/tmp/codes",
            "--force",
        ])
        .unwrap();
        match cli.command {
            Command::BackupCodes(b) => {
                assert_eq!(
                    b.save.save.as_deref(),
                    Some(std::path::Path::new("/tmp/codes"))
                );
                assert!(b.save.force);
            }
            other => panic!("{other:?}"),
        }
        let cli =
            Cli::try_parse_from(["twofactorctl", "enable", "app", "--save", "c.txt"]).unwrap();
        match cli.command {
            Command::Enable(EnableArgs {
                method: EnableMethod::App(a),
            }) => assert_eq!(a.save.save.as_deref(), Some(std::path::Path::new("c.txt"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn usage_errors_exit_2() {
        for args in [
            &["twofactorctl"][..],
            &["twofactorctl", "disable"],
            &["twofactorctl", "disable", "sms"],
            &["twofactorctl", "enable"],
            &["twofactorctl", "status", "--password", "x"],
            // --force only goes with --save.
            &["twofactorctl", "backup-codes", "--force"],
            &["twofactorctl", "enable", "app", "--force"],
            &["twofactorctl", "backup-codes", "--save"],
            &["twofactorctl", "backup-codes", "extra"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn help_documents_exit_codes() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("Exit status:"));
        assert!(help.contains("3  twofactord is not running"));
        assert!(help.contains("backup-codes"));
    }

    #[test]
    fn help_documents_backup_codes() {
        let mut cmd = Cli::command();
        let status = cmd
            .find_subcommand_mut("status")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(status.contains("backup_codes_left"), "{status}");
        let backup = cmd
            .find_subcommand_mut("backup-codes")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in ["--save", "--force", "0600", "symbolic link", "Exit status:"] {
            assert!(backup.contains(needle), "{needle}: {backup}");
        }
        let enable = cmd
            .find_subcommand_mut("enable")
            .unwrap()
            .find_subcommand_mut("app")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(enable.contains("Save them to a file?"), "{enable}");
        assert!(enable.contains("--save"));
    }
}

//! The command line: clap definitions and the help texts, which are the
//! reference documentation of `twofactorctl`.
//!
//! Each subcommand has its own `*Args` struct and a module in
//! [`crate::commands`] (`admin ...`: [`crate::commands::admin`]; `enable
//! email`: [`crate::commands::enable::email`]; `devices`:
//! [`crate::commands::devices`]). A new command is a new variant here and a
//! new module there.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// The exit status table, shared by every help page (a macro so it can be
/// `concat!`-ed into the help literals).
macro_rules! exit_status_help {
    () => {
        "Exit status:
  0  success
  1  refused by twofactord: wrong password or code, permission denied,
     already or not enabled, too many attempts, invalid input, no such
     user; or not done: a confirmation answered no, a user not imported,
     no security key found, the key not touched in time or refusing
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
code prompt instead of a code from the app or the email (with or without
the \"-\", in any case). They are printed to stdout after the line
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

/// The exit status table of the `admin` commands.
macro_rules! admin_exit_status_help {
    () => {
        "Exit status:
  0  success
  1  refused by twofactord: not an administrator, wrong password, no such
     user, invalid input, too many attempts; or not done: the reset
     question answered no, a user not imported
  2  usage error: bad arguments (also --groups/--from, reset without --yes
     when stdin is not a terminal), or missing or over-long input on stdin
  3  twofactord is not running, the system bus is unavailable,
     or the daemon did not answer in time
  4  any other error (internal error in the daemon, I/O error)"
    };
}

/// Who may use `admin` and how the password is asked, shared by the admin
/// help pages.
macro_rules! admin_input_help {
    () => {
        "Administrators are root and the members of twofactord's admin_group;
twofactord decides, from the uid the bus reports. Reading needs no
password. Every change needs your own account password again (checked by
twofactord), except for root, who is not asked. Input: at a terminal the
password is read with echo off; when stdin is not a terminal, line 1 of
stdin is the password (nothing is read for root)."
    };
}

/// What a trusted device is, shared by `devices` and `admin devices`.
macro_rules! devices_help {
    () => {
        "A trusted device is an SSH key that a login proved (sshd with
AuthenticationMethods publickey,keyboard-interactive), on which its user,
after a right code, chose not to be asked again: later logins proving the
same key (and coming from the same address, when the trust is bound to
it) are not asked for a code. The trust lasts at most 30 days from when
it was given and is never extended by use. It ends earlier when it is
removed (`devices remove`), when the account's methods change, when a new
set of backup codes is made, when the account password changes (the next
login from the device asks for a code), and on an administrator's reset."
    };
}

/// What `devices` and `admin devices` print.
macro_rules! devices_output_help {
    () => {
        "Output: for each device a block of `Label: value` lines, the blocks
separated by an empty line: ID (for `remove`), Identified by (the SSH key's
type and SHA-256 fingerprint, or `address ...` for a bare address),
Address (only when the trust is bound to the client address), Added, Last
used (or never), Expires (local times).
With --json: one JSON array with an object per device, the fields id,
label, address (\"\" = not bound), added, last_used (0 = never), expires
(Unix times in seconds)."
    };
}

/// What the lines of `admin user` and `admin users` mean.
macro_rules! user_report_help {
    () => {
        "JSON fields (Unix times in seconds, 0 = never / not locked): user, uid
(0 when unknown), methods, backup_codes_left, preferred, last_method,
last_login, locked_until, failures, policy_applies (the mandatory policy
applies now), recovery_pending (a reset's recovery code waits to be used),
known_to_system (the system's user database has the user)."
    };
}

const LONG_ABOUT: &str = "\
Manage two-factor authentication (2FA) for your own login, and, for
administrators (`twofactorctl admin`), for the users of this machine.

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
    about = "Manage two-factor authentication for your login, or as an administrator (a client of twofactord)",
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
                      lockout, whether an enrolment is pending, and how many devices are\n\
                      trusted (not asked for a code again).",
        after_help = concat!(
            "Output: `Label: value` lines: User, Methods (authenticator app, codes by\n",
            "email), Backup codes left, Preferred method (asked first at login; \"none:\n",
            "the one used last\" when not set), Last method used, Last 2FA login,\n",
            "Failed attempts, Locked, Pending enrolment, Trusted devices (how many;\n",
            "when there are some, `twofactorctl devices` lists them).\n",
            "With --json, prints one JSON object with the fields user, methods (active\n",
            "methods: \"app\", \"email\"), preferred (\"app\", \"email\", or \"\" = the one\n",
            "used last), last_method (\"app\", \"email\", \"backup-code\", or \"\" = none\n",
            "yet), last_login (Unix time, 0 = never), failures, locked_until (Unix\n",
            "time, 0 = not locked), enrolment_pending (an app or an address waits for\n",
            "its code), backup_codes_left and trusted_devices (how many devices are\n",
            "trusted now; `twofactorctl devices` lists them).\n\n",
            exit_status_help!()
        )
    )]
    Status(StatusArgs),

    /// Turn on a second factor for your account
    Enable(EnableArgs),

    /// Turn off a second factor (asks for your password)
    #[command(
        subcommand_value_name = "METHOD",
        subcommand_help_heading = "Methods",
        disable_help_subcommand = true,
        long_about = "Turn off a second factor of your account. Asks for your account\n\
                      password again (checked by twofactord). `app` removes the\n\
                      authenticator app, `email` the codes by email; with both, either\n\
                      can be removed and the other stays. `ssh-key` removes every\n\
                      security key registered for SSH. `key ID` removes one security\n\
                      key (`twofactorctl keys` lists them), `key --all` every one. `all`\n\
                      removes every method, which turns two-factor authentication off\n\
                      for your account (and voids the backup codes).\n\n\
                      While an administrator's policy makes two-factor authentication\n\
                      mandatory for you, the last method cannot be removed: twofactord\n\
                      refuses (exit status 1) and says what to do instead (a new phone:\n\
                      `twofactorctl enable app` again replaces the app; a new address:\n\
                      `twofactorctl enable email ADDRESS` replaces the address).",
        after_help = concat!(
            "Input when stdin is not a terminal: line 1 = the account password,\n",
            "line 2 = a current code or a backup code (when you have a method).\n",
            "Output: what was removed, e.g. \"Removed: authenticator app.\" (`key ID`:\n",
            "\"Removed the security key ID.\"), then \"Still active: ...\" or that\n",
            "two-factor authentication is now off.\n\n",
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
                      twofactord), which confirms the change. Every trusted device\n\
                      (`twofactorctl devices`) stops being trusted too: its next login\n\
                      asks for a code. Needs an active method\n\
                      (`twofactorctl enable app` or `enable email`); without one it is\n\
                      refused (exit status 1) before the password is asked.",
        after_help = concat!(
            backup_codes_help!(),
            "\n\n",
            "Input when stdin is not a terminal: line 1 = the account password.\n\n",
            exit_status_help!()
        )
    )]
    BackupCodes(BackupCodesArgs),

    /// Choose the method a login asks first: app, email, or none (the one used last)
    #[command(
        long_about = "Choose which of your methods a login asks for first. `app`: a code\n\
                      from the authenticator app; `email`: a code sent by email (sent when\n\
                      the login asks for it); `none`: the method you used last is asked\n\
                      first (the default). At the login prompt, an empty answer lists the\n\
                      other methods, so the preferred one is only where a login starts.\n\
                      You must have the method: choosing one you have not set up is\n\
                      refused (exit status 1). Needs no password.",
        after_help = concat!(
            "Output (stdout): one line, e.g.\n",
            "  Logins now ask for codes by email first.\n",
            "  Logins now ask first for the method you used last.\n",
            "`twofactorctl status` shows it as \"Preferred method\".\n\n",
            exit_status_help!()
        )
    )]
    Prefer(PreferArgs),

    /// List your trusted devices (not asked for a code again), or remove them
    #[command(
        args_conflicts_with_subcommands = true,
        long_about = concat!(
            "Without a subcommand, list the trusted devices of your account: logins\n",
            "from them are not asked for a code until the trust expires. Needs no\n",
            "password. `devices remove ID` (or `--all`) removes them.\n\n",
            devices_help!()
        ),
        after_help = concat!(
            devices_output_help!(),
            "\nNo device: the one line \"No trusted devices.\" (exit status 0).\n\n",
            exit_status_help!()
        )
    )]
    Devices(DevicesArgs),

    /// List your security keys registered for SSH (enable ssh-key adds one)
    #[command(
        long_about = "List the security-key SSH keys of your account (`twofactorctl enable\n\
                      ssh-key FILE` adds one, `twofactorctl disable ssh-key` removes them\n\
                      all). Needs no password.",
        after_help = concat!(
            "Output (stdout): one block per key (ID, Key: its type and SHA-256\n",
            "fingerprint, Added, Last used), or with --json one JSON array of\n",
            "{\"id\", \"label\", \"added\", \"last_used\"} (Unix times, 0: never).\n",
            "No key: the one line \"No security keys for SSH.\" (exit status 0).\n\n",
            exit_status_help!()
        )
    )]
    SshKeys(SshKeysArgs),

    /// List your security keys (enable key adds one)
    #[command(
        long_about = "List the FIDO2 security keys of your account, which a local login\n\
                      (console, su, sudo, a screen locker) takes instead of a code\n\
                      (`twofactorctl enable key` adds one, `twofactorctl disable key ID`\n\
                      removes one, `disable key --all` every one). Needs no password.",
        after_help = concat!(
            "Output (stdout): one block per key (ID, Name, Added, Last used: local\n",
            "times), or with --json one JSON array of {\"id\", \"label\", \"added\",\n",
            "\"last_used\"} (label: the name; Unix times, 0: never).\n",
            "No key: the one line \"No security keys.\" (exit status 0).\n\n",
            exit_status_help!()
        )
    )]
    Keys(KeysArgs),

    /// Administration: mandatory policy, users, reset, unlock, import (root or admin_group)
    #[command(
        subcommand_required = true,
        long_about = concat!(
            "Administer two-factor authentication for the users of this machine:\n",
            "the mandatory policy, who has two-factor authentication, resets with a\n",
            "one-time recovery code, lockouts, trusted devices, and importing\n",
            "google-authenticator files. Every change is recorded by twofactord's audit log (who, what,\n",
            "for whom).\n\n",
            admin_input_help!()
        ),
        after_help = admin_exit_status_help!()
    )]
    Admin(AdminArgs),
}

#[derive(Debug, Args)]
pub struct AdminArgs {
    #[command(subcommand)]
    pub command: AdminCommand,
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Show the mandatory policy, or set it with `mandatory on|off`
    #[command(
        args_conflicts_with_subcommands = true,
        long_about = "Without a subcommand, show the mandatory policy: whether two-factor\n\
                      authentication is mandatory, for whom (everyone, or the members of\n\
                      some groups), from which date, and who set it when. \"the\n\
                      configuration file\" means the initial value from twofactord.toml's\n\
                      [policy] section is in force; the first `admin policy mandatory`\n\
                      replaces it for good (the file's keys are then ignored).\n\n\
                      While the policy applies to a user who has no method, their next\n\
                      login enrols them at the prompt (QR code, code, backup codes) before\n\
                      it completes; before the --from date they get a reminder and are\n\
                      let in. A user it applies to cannot remove their last method.\n\
                      Turning it off removes nobody's method: users who have one are\n\
                      still asked for a code.",
        after_help = concat!(
            "Output: `Label: value` lines: Mandatory (on/off), Applies to (everyone,\n",
            "or the groups), From (now, or the date), Set by (who and when, or the\n",
            "configuration file).\n",
            "With --json: one JSON object with the fields mandatory, groups (empty =\n",
            "everyone), from (YYYY-MM-DD, empty = now), updated_by (\"config\" = the\n",
            "configuration file), updated_at (Unix time, 0 = never).\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Policy(PolicyArgs),

    /// List the users and their two-factor state
    #[command(
        long_about = "List the system's human users (uids in UID_MIN..UID_MAX of\n\
                      /etc/login.defs) and every other user twofactord holds data for,\n\
                      with their two-factor state. Needs no password.",
        after_help = concat!(
            "Columns: USER (marked * when the system no longer knows the user), UID,\n",
            "2FA (methods, or -), BACKUP (backup codes left), PREFERRED, POLICY (the\n",
            "mandatory policy applies now: yes/no), LAST 2FA LOGIN (local time, or\n",
            "never), LOCKED (until when, or no), RECOVERY (a reset's recovery code\n",
            "waits to be used: pending, or no).\n",
            "With --json: one JSON array with an object per user.\n",
            user_report_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Users(UsersArgs),

    /// Show one user's two-factor state
    #[command(
        long_about = "Show the two-factor state of user NAME, as twofactord sees it.\n\
                      Needs no password. A name neither the system nor twofactord knows\n\
                      is refused (exit status 1).",
        after_help = concat!(
            "Output: `Label: value` lines: User, UID, Methods, Backup codes left,\n",
            "Preferred method, Last method used, Last 2FA login, Failed attempts,\n",
            "Locked, Policy applies, Recovery code, Trusted devices (how many); then,\n",
            "after an empty line, a block per trusted device as in `admin devices`.\n",
            "With --json: one JSON object, with the fields below and devices (an array\n",
            "of the trusted devices, with the fields of `admin devices --json`).\n",
            user_report_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    User(UserArgs),

    /// Remove a user's two-factor methods and make a one-time recovery code
    #[command(
        long_about = "Reset the two-factor authentication of user NAME, who lost their\n\
                      phone or their backup codes: removes their authenticator app, their\n\
                      backup codes, their lockout and failed attempts, and voids an\n\
                      earlier unused recovery code. Then prints a new recovery code that\n\
                      works once, for 24 hours.\n\n\
                      Give the code to NAME over a secure channel: in person, by phone\n\
                      (once you recognise them), or by signed and encrypted mail. At\n\
                      their next login they type it at the verification prompt; it lets\n\
                      them in once, and they must then set up a new authenticator app\n\
                      before that login completes. The code is shown only this once and\n\
                      twofactord keeps only a hash of it.",
        after_help = concat!(
            "First, what will be removed is shown (stderr). At a terminal you are\n",
            "then asked\n",
            "  Reset two-factor authentication of NAME? [y/N]\n",
            "(only y or yes goes on; anything else changes nothing, exit status 1).\n",
            "--yes skips the question. When stdin is not a terminal, --yes is\n",
            "required (exit status 2 without it, before anything is asked). Then\n",
            "your password is asked, unless you are root.\n\n",
            "Output (stdout):\n",
            "  Two-factor authentication of NAME was reset.\n",
            "  Recovery code: xxxx-xxxx-xxxx-xxxx\n",
            "  Valid until:   YYYY-MM-DD HH:MM:SS ZONE (once)\n",
            "then how to give it to NAME and what happens at their login.\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Reset(ResetArgs),

    /// Clear a user's lockout after failed attempts
    #[command(
        long_about = "Clear the lockout of user NAME: their failed attempts are forgotten\n\
                      and their next login is not delayed.",
        after_help = concat!(
            "Output (stdout): one line, \"Unlocked NAME: ...\".\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Unlock(UnlockArgs),

    /// List a user's trusted devices, or remove them
    #[command(
        args_conflicts_with_subcommands = true,
        subcommand_negates_reqs = true,
        long_about = concat!(
            "Without a subcommand, list the trusted devices of user NAME: their logins\n",
            "from them are not asked for a code until the trust expires. Needs no\n",
            "password. `admin devices remove NAME ID` (or `--all`) removes them.\n\n",
            devices_help!()
        ),
        after_help = concat!(
            devices_output_help!(),
            "\nNo device: the one line \"NAME has no trusted devices.\" (exit status 0;\n",
            "a user twofactord does not know: exit status 1).\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Devices(AdminDevicesArgs),

    /// Import users' two-factor secrets from another tool
    Import(ImportArgs),
}

#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// Print the policy as one JSON object (for scripts)
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub change: Option<PolicyChange>,
}

#[derive(Debug, Subcommand)]
pub enum PolicyChange {
    /// Make two-factor authentication mandatory (on) or not (off)
    #[command(
        long_about = "Set the mandatory policy, then print what is now in force. Asks for\n\
                      your password unless you are root. `on` without options: every user\n\
                      must have two-factor authentication, from now on. `off`: nobody must\n\
                      (the --groups and --from given are kept for a later `on`; without\n\
                      them, none are kept).",
        after_help = concat!(
            "Checked before anything is asked (exit status 2): each name of --groups\n",
            "must be a group of this system (letters, digits, . _ -, and $ only at\n",
            "the end; not starting with -; not all digits), --from must be a real date\n",
            "written YYYY-MM-DD.\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Mandatory(MandatoryArgs),
}

#[derive(Debug, Args)]
pub struct MandatoryArgs {
    /// on: two-factor authentication is mandatory; off: it is not
    #[arg(value_enum, value_name = "on|off")]
    pub state: OnOff,

    /// Only for the members of these groups (comma separated; default: everyone)
    #[arg(long, value_name = "G1,G2")]
    pub groups: Option<String>,

    /// Enforce from this day (local time; default: now)
    ///
    /// Until then, users without two-factor authentication get a reminder
    /// at login and are let in.
    #[arg(long, value_name = "YYYY-MM-DD")]
    pub from: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OnOff {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct UsersArgs {
    /// Print the users as one JSON array (for scripts)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    /// The user's login name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Print the user as one JSON object (for scripts)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ResetArgs {
    /// The user's login name
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Do not ask for confirmation (required when stdin is not a terminal)
    #[arg(long, short = 'y')]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UnlockArgs {
    /// The user's login name
    #[arg(value_name = "NAME")]
    pub name: String,
}

#[derive(Debug, Args)]
pub struct AdminDevicesArgs {
    /// The user's login name
    #[arg(value_name = "NAME", required = true)]
    pub name: Option<String>,

    /// Print the devices as one JSON array (for scripts)
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub change: Option<AdminDevicesChange>,
}

#[derive(Debug, Subcommand)]
pub enum AdminDevicesChange {
    /// Remove one of a user's trusted devices, or all of them
    #[command(
        long_about = "Remove the trusted device ID of user NAME (the ID `admin devices NAME`\n\
                      lists), or with --all every trusted device of NAME: their next login\n\
                      from it is asked for a code again. Asks for your password unless you\n\
                      are root. The user's methods and backup codes stay as they are.",
        override_usage = "twofactorctl admin devices remove NAME <ID|--all>",
        after_help = concat!(
            "Output (stdout): one line, e.g. \"Removed 1 trusted device of NAME.\" or\n",
            "\"Removed 3 trusted devices of NAME.\"; with --all and none there: \"NAME has\n",
            "no trusted devices to remove.\" An ID that is not listed is refused (exit\n",
            "status 1), as is a user twofactord does not know.\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    Remove(AdminDevicesRemoveArgs),
}

#[derive(Debug, Args)]
pub struct AdminDevicesRemoveArgs {
    /// The user's login name
    #[arg(value_name = "NAME")]
    pub name: String,

    #[command(flatten)]
    pub which: WhichDevices,
}

#[derive(Debug, Args)]
pub struct KeysArgs {
    /// Print the keys as one JSON array (for scripts)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SshKeysArgs {
    /// Print the keys as one JSON array (for scripts)
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print the devices as one JSON array (for scripts)
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub change: Option<DevicesChange>,
}

#[derive(Debug, Subcommand)]
pub enum DevicesChange {
    /// Remove one trusted device, or all of them (asks for your password)
    #[command(
        long_about = "Remove the trusted device ID (the ID `twofactorctl devices` lists), or\n\
                      with --all every trusted device of your account: the next login from\n\
                      it is asked for a code again. Asks for your account password again\n\
                      (checked by twofactord). Your methods and backup codes stay as they\n\
                      are.",
        after_help = concat!(
            "Output (stdout): one line, e.g. \"Removed 1 trusted device.\" or\n",
            "\"Removed 3 trusted devices.\"; with --all and none there:\n",
            "\"No trusted devices to remove.\" An ID that is not listed is refused\n",
            "(exit status 1).\n",
            "The ID \"all\" is refused (exit status 2): --all removes every device.\n\n",
            "Input when stdin is not a terminal: line 1 = the account password.\n\n",
            exit_status_help!()
        )
    )]
    Remove(DevicesRemoveArgs),
}

#[derive(Debug, Args)]
pub struct DevicesRemoveArgs {
    #[command(flatten)]
    pub which: WhichDevices,
}

/// Which trusted devices `remove` removes: exactly one of ID and --all.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct WhichDevices {
    /// The device's ID, as listed
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Every trusted device
    #[arg(long)]
    pub all: bool,
}

impl WhichDevices {
    /// The id `RemoveDevices` expects (`all` for --all).
    pub fn wire_id(&self) -> &str {
        if self.all {
            "all"
        } else {
            self.id.as_deref().unwrap_or("")
        }
    }
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub source: ImportSource,
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Import google-authenticator files (pam_google_authenticator.so)
    #[command(
        name = "google-authenticator",
        long_about = "Import the TOTP secret and the scratch codes of google-authenticator\n\
                      files (made by the `google-authenticator` tool for\n\
                      pam_google_authenticator.so), so that users keep their app: the\n\
                      secret becomes their authenticator app in twofactor and the 8-digit\n\
                      scratch codes become backup codes. Codes of the current 30-second\n\
                      step and before are not accepted afterwards (they may have been used\n\
                      already).\n\n\
                      twofactord reads the file itself, as root: it must be inside the\n\
                      user's home directory, reached without any symbolic link, and be a\n\
                      regular file owned by the user with a single hard link. HOTP\n\
                      (counter-based) files are refused; a user who already has an\n\
                      authenticator app in twofactor is left as they are. The file is\n\
                      neither changed nor removed.\n\n\
                      NAME [FILE]: one user; FILE defaults to ~NAME/.google_authenticator\n\
                      (a relative FILE is taken from the current directory). --all: every\n\
                      human user of the system who has a ~/.google_authenticator file.",
        after_help = concat!(
            "Output (stdout): for each user a block of `Label: value` lines: User,\n",
            "Imported (yes/no), Scratch codes (how many became backup codes), Message\n",
            "(what was done, or why not); then a \"Summary:\" line; after a successful\n",
            "import, how to switch the PAM line from pam_google_authenticator.so to\n",
            "pam_twofactor.so. Exit status 0 when every user asked for was imported\n",
            "(with --all, also when nobody has a file), 1 when one was not (the\n",
            "Summary line and the error message name them).\n\n",
            admin_input_help!(),
            "\n\n",
            admin_exit_status_help!()
        )
    )]
    GoogleAuthenticator(GoogleAuthenticatorArgs),
}

#[derive(Debug, Args)]
pub struct GoogleAuthenticatorArgs {
    /// The user whose file is imported
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub name: Option<String>,

    /// The file to import (default: ~NAME/.google_authenticator)
    #[arg(value_name = "FILE")]
    pub file: Option<PathBuf>,

    /// Import every human user who has a ~/.google_authenticator file
    #[arg(long, conflicts_with_all = ["name", "file"])]
    pub all: bool,
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
                      When an app is already enabled (a new phone), the new app replaces\n\
                      it only once its code is confirmed; until then the current app\n\
                      keeps working. The confirmation also makes a new set of backup\n\
                      codes, which voids the current set.\n\n\
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

    /// Get codes by email: password, a code sent to ADDRESS, confirm it
    #[command(
        long_about = "Get login codes by email. Asks for your account password, then\n\
                      twofactord sends a 6-digit code to ADDRESS and the address is shown\n\
                      masked (a***@example.com). Email codes become active only when that\n\
                      code is typed back. A person at a terminal gets 3 tries, and an\n\
                      empty answer (or `resend`) sends a new code, after which the\n\
                      previous one no longer works; a script gets one try. The code is\n\
                      valid for a few minutes (the email says how long); twofactord\n\
                      limits how many codes are sent per hour.\n\n\
                      When email is your first method, ten backup codes are shown after\n\
                      the confirmation, as after `enable app`, and can be saved to a file.\n\
                      When you already have a method, your backup codes stay as they are\n\
                      and none are made (--save is then refused before the password).\n\n\
                      When email codes are already enabled (a new address), the new\n\
                      address replaces the current one only once its code is confirmed;\n\
                      until then codes keep going to the current address.\n\n\
                      Email codes must be offered on this machine (twofactord.toml,\n\
                      [email] codes = true); otherwise twofactord refuses (exit status 1).",
        after_help = concat!(
            "Output: on stderr \"A code was sent to a***@example.com; ...\", then, after\n",
            "the code was accepted, on stdout:\n",
            "  Email codes enabled.\n",
            "and, when email is your first method, an empty line and the first set of\n",
            "backup codes.\n\n",
            backup_codes_help!(),
            "\n\n",
            "Input when stdin is not a terminal: line 1 = the account password,\n",
            "line 2 = the code from the email (nothing more is read; an empty line\n",
            "is a wrong code, not a request for a new one). The code is read only\n",
            "after twofactord sent it, so a script can fetch the email first.\n\n",
            exit_status_help!()
        )
    )]
    Email(EnableEmailArgs),
    /// Register a security key's SSH key (ssh-keygen -t ed25519-sk): no code over SSH with it
    #[command(
        long_about = "Register an OpenSSH security-key public key (made with `ssh-keygen -t\n\
                      ed25519-sk` or `-t ecdsa-sk`: YubiKey, SoloKey, Nitrokey) as a\n\
                      second-factor method. Give its .pub file; a private key is refused\n\
                      and never sent. Asks for your account password (and, when you have\n\
                      a method already, a current code or a backup code).\n\n\
                      An SSH login that proves this key first (sshd's AuthenticationMethods\n\
                      publickey,keyboard-interactive) then asks no code: sshd checked the\n\
                      signature and your touch. It counts only while sshd requires a touch\n\
                      for every key (PubkeyAuthOptions touch-required); twofactord checks\n\
                      that at each such login and logs why when not. Everywhere else (the\n\
                      console, su, sudo, SSH without the key) use another method or a backup\n\
                      code. Register a spare key too; `twofactorctl ssh-keys` lists them and\n\
                      `twofactorctl disable ssh-key` removes them all.",
        after_help = concat!(
            "Output (stdout):\n",
            "  Security key registered for SSH logins (ID 0a1b2c3d).\n",
            "and, when it is your first method, an empty line and the first set of\n",
            "backup codes.\n\n",
            backup_codes_help!(),
            "\n\n",
            "Input when stdin is not a terminal: line 1 = the account password, line 2\n",
            "= a current code or a backup code (only when you have a method already).\n\n",
            exit_status_help!()
        )
    )]
    SshKey(EnableSshKeyArgs),

    /// Register a FIDO2 security key: touch it at local logins instead of typing a code
    #[command(
        long_about = "Register a FIDO2 security key (YubiKey, SoloKey, Nitrokey, ...) plugged\n\
                      into this machine as a second-factor method: a local login (console,\n\
                      su, sudo, a screen locker) then asks you to touch it instead of typing\n\
                      a code. Asks for your account password (and, when you have a method\n\
                      already, a current code or a backup code), then \"Touch your security\n\
                      key.\": the key makes a new credential (it waits 30 seconds for the\n\
                      touch). With several keys plugged in, the first one found is used\n\
                      (its device is named); unplug the others to choose. No key plugged in\n\
                      is refused before the password is asked.\n\n\
                      A PIN or fingerprint on the key: when twofactord requires one\n\
                      (twofactord.toml, [keys] user_verification = \"required\"), the key's PIN\n\
                      is asked (echo off) unless the key reads fingerprints, and a key with\n\
                      neither is refused: set a PIN on it first (`fido2-token -S DEVICE`).\n\
                      Otherwise the PIN is asked only when the key wants it. A key registered\n\
                      for your account already is refused. Register a spare key too;\n\
                      `twofactorctl keys` lists them.\n\n\
                      Security keys must be offered on this machine (twofactord.toml, [keys]\n\
                      local = true); otherwise twofactord refuses (exit status 1).",
        after_help = concat!(
            "Output: on stderr \"Touch your security key.\", then on stdout\n",
            "  Security key registered as 0a1b2c3d (NAME).\n",
            "and, when it is your first method, an empty line and the first set of\n",
            "backup codes.\n\n",
            backup_codes_help!(),
            "\n\n",
            "Input when stdin is not a terminal: line 1 = the account password, line 2\n",
            "= a current code or a backup code (only when you have a method already),\n",
            "then the key's PIN (only when it is asked).\n\n",
            exit_status_help!()
        )
    )]
    Key(EnableKeyArgs),
}

#[derive(Debug, Args)]
pub struct EnableKeyArgs {
    /// A name for the key, e.g. "blue key" (default: "security key")
    ///
    /// At most 64 characters, no control characters; `twofactorctl keys`
    /// shows it.
    #[arg(long, value_name = "LABEL")]
    pub name: Option<String>,

    #[command(flatten)]
    pub save: SaveArgs,
}

#[derive(Debug, Args)]
pub struct EnableEmailArgs {
    /// The address the codes go to (name@domain)
    #[arg(value_name = "ADDRESS")]
    pub address: String,

    #[command(flatten)]
    pub save: SaveArgs,
}

#[derive(Debug, Args)]
pub struct EnableSshKeyArgs {
    /// The key's public key file (e.g. ~/.ssh/id_ed25519_sk.pub)
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    #[command(flatten)]
    pub save: SaveArgs,
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
    #[command(subcommand)]
    pub method: DisableMethod,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum DisableMethod {
    /// The authenticator app
    App,
    /// Codes by email
    Email,
    /// Every security key registered for SSH
    SshKey,
    /// One security key (ID, as `twofactorctl keys` lists it), or every one (--all)
    #[command(
        override_usage = "twofactorctl disable key <ID|--all>",
        long_about = "Remove the security key ID (the ID `twofactorctl keys` lists), or with\n\
                      --all every security key of your account. Asks for your account\n\
                      password again and, when you have a method, a current code or a\n\
                      backup code. Removing your last key removes the method (refused\n\
                      while an administrator's policy makes two-factor authentication\n\
                      mandatory for you and it is your last method).",
        after_help = concat!(
            "Output (stdout): \"Removed the security key ID.\" (--all: \"Removed:\n",
            "security keys.\"), then \"Still active: ...\" or that two-factor\n",
            "authentication is now off. An ID that is not listed is refused (exit\n",
            "status 1); the ID \"all\" is refused (exit status 2): --all removes every key.\n\n",
            "Input when stdin is not a terminal: line 1 = the account password,\n",
            "line 2 = a current code or a backup code.\n\n",
            exit_status_help!()
        )
    )]
    Key(WhichKeys),
    /// Every method: two-factor authentication is then off for you
    All,
}

impl DisableMethod {
    /// The name `Account1.Disable` expects (`key`: every security key).
    pub fn wire_name(&self) -> &'static str {
        match self {
            DisableMethod::App => twofactor_proto::types::method::APP,
            DisableMethod::Email => twofactor_proto::types::method::EMAIL,
            DisableMethod::SshKey => twofactor_proto::types::method::SSH_KEY,
            DisableMethod::Key(_) => twofactor_proto::types::method::KEY,
            DisableMethod::All => "all",
        }
    }
}

/// Which security keys `disable key` removes: exactly one of ID and --all.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
#[group(required = true, multiple = false)]
pub struct WhichKeys {
    /// The key's ID, as `twofactorctl keys` lists it
    #[arg(value_name = "ID")]
    pub id: Option<String>,

    /// Every security key
    #[arg(long)]
    pub all: bool,
}

#[derive(Debug, Args)]
pub struct PreferArgs {
    /// The method asked first
    #[arg(value_enum, value_name = "METHOD")]
    pub method: PreferMethod,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PreferMethod {
    /// A code from the authenticator app
    App,
    /// A code sent by email
    Email,
    /// No preference: the method used last is asked first
    None,
}

impl PreferMethod {
    /// The name `Account1.SetPreferred` expects ("" = none).
    pub fn wire_name(self) -> &'static str {
        match self {
            PreferMethod::App => twofactor_proto::types::method::APP,
            PreferMethod::Email => twofactor_proto::types::method::EMAIL,
            PreferMethod::None => "",
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

    fn command(args: &[&str]) -> Command {
        let mut all = vec!["twofactorctl"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap().command
    }

    #[test]
    fn parses_the_email_commands() {
        let Command::Enable(EnableArgs {
            method: EnableMethod::Email(e),
        }) = command(&["enable", "email", "a@example.com"])
        else {
            panic!("not enable email");
        };
        assert_eq!(e.address, "a@example.com");
        assert!(e.save.save.is_none() && !e.save.force);
        let Command::Enable(EnableArgs {
            method: EnableMethod::Email(e),
        }) = command(&["enable", "email", "b@example.com", "--save", "c", "--force"])
        else {
            panic!("not enable email");
        };
        assert_eq!(e.address, "b@example.com");
        assert_eq!(e.save.save.as_deref(), Some(std::path::Path::new("c")));
        assert!(e.save.force);
        let Command::Disable(d) = command(&["disable", "email"]) else {
            panic!("not disable");
        };
        assert_eq!(d.method.wire_name(), "email");
        for (word, wire) in [("app", "app"), ("email", "email"), ("none", "")] {
            let Command::Prefer(p) = command(&["prefer", word]) else {
                panic!("not prefer {word}");
            };
            assert_eq!(p.method.wire_name(), wire, "{word}");
        }
    }

    /// The long help of a subcommand, e.g. `["enable", "email"]`.
    fn long_help_of(path: &[&str]) -> String {
        let mut cmd = Cli::command();
        let mut sub = &mut cmd;
        for name in path {
            sub = sub.find_subcommand_mut(name).unwrap();
        }
        sub.render_long_help().to_string()
    }

    #[test]
    fn email_help_documents_input_and_codes() {
        let pages: [(&[&str], &[&str]); 3] = [
            (
                &["enable", "email"],
                &[
                    "line 2 = the code from the email",
                    "resend",
                    "3 tries",
                    "Email codes enabled.",
                    "first method",
                    "Save them to a file?",
                    "codes = true",
                    "Exit status:",
                ],
            ),
            (
                &["prefer"],
                &["none", "used last", "Logins now ask", "Exit status:"],
            ),
            (
                &["disable"],
                &["`email`", "either", "last method cannot be removed"],
            ),
        ];
        for (path, needles) in pages {
            let help = long_help_of(path);
            for needle in needles {
                assert!(help.contains(needle), "{path:?} {needle}: {help}");
            }
        }
    }

    fn admin(args: &[&str]) -> AdminCommand {
        let mut all = vec!["twofactorctl", "admin"];
        all.extend_from_slice(args);
        match Cli::try_parse_from(all).unwrap().command {
            Command::Admin(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_admin_commands() {
        match admin(&["policy"]) {
            AdminCommand::Policy(p) => assert!(!p.json && p.change.is_none()),
            other => panic!("{other:?}"),
        }
        match admin(&["policy", "--json"]) {
            AdminCommand::Policy(p) => assert!(p.json),
            other => panic!("{other:?}"),
        }
        match admin(&[
            "policy",
            "mandatory",
            "on",
            "--groups",
            "staff,ops",
            "--from",
            "2026-12-01",
        ]) {
            AdminCommand::Policy(PolicyArgs {
                change: Some(PolicyChange::Mandatory(m)),
                ..
            }) => {
                assert_eq!(m.state, OnOff::On);
                assert_eq!(m.groups.as_deref(), Some("staff,ops"));
                assert_eq!(m.from.as_deref(), Some("2026-12-01"));
            }
            other => panic!("{other:?}"),
        }
        match admin(&["policy", "mandatory", "off"]) {
            AdminCommand::Policy(PolicyArgs {
                change: Some(PolicyChange::Mandatory(m)),
                ..
            }) => assert_eq!((m.state, m.groups, m.from), (OnOff::Off, None, None)),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            admin(&["users", "--json"]),
            AdminCommand::Users(UsersArgs { json: true })
        ));
        match admin(&["user", "alice", "--json"]) {
            AdminCommand::User(u) => assert_eq!((u.name.as_str(), u.json), ("alice", true)),
            other => panic!("{other:?}"),
        }
        match admin(&["reset", "alice"]) {
            AdminCommand::Reset(r) => assert_eq!((r.name.as_str(), r.yes), ("alice", false)),
            other => panic!("{other:?}"),
        }
        match admin(&["reset", "--yes", "alice"]) {
            AdminCommand::Reset(r) => assert!(r.yes),
            other => panic!("{other:?}"),
        }
        match admin(&["unlock", "alice"]) {
            AdminCommand::Unlock(u) => assert_eq!(u.name, "alice"),
            other => panic!("{other:?}"),
        }
        match admin(&["import", "google-authenticator", "alice", "/var/tmp/ga"]) {
            AdminCommand::Import(ImportArgs {
                source: ImportSource::GoogleAuthenticator(g),
            }) => {
                assert_eq!(g.name.as_deref(), Some("alice"));
                assert_eq!(g.file.as_deref(), Some(std::path::Path::new("/var/tmp/ga")));
                assert!(!g.all);
            }
            other => panic!("{other:?}"),
        }
        match admin(&["import", "google-authenticator", "--all"]) {
            AdminCommand::Import(ImportArgs {
                source: ImportSource::GoogleAuthenticator(g),
            }) => assert!(g.all && g.name.is_none() && g.file.is_none()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn parses_the_devices_commands() {
        let Command::Devices(d) = command(&["devices"]) else {
            panic!("not devices");
        };
        assert!(!d.json && d.change.is_none());
        let Command::Devices(d) = command(&["devices", "--json"]) else {
            panic!("not devices --json");
        };
        assert!(d.json && d.change.is_none());
        for (args, wire, all) in [
            (&["devices", "remove", "1a2b3c4d"][..], "1a2b3c4d", false),
            (&["devices", "remove", "--all"], "all", true),
        ] {
            let Command::Devices(DevicesArgs {
                change: Some(DevicesChange::Remove(r)),
                json: false,
            }) = command(args)
            else {
                panic!("not devices remove: {args:?}");
            };
            assert_eq!((r.which.wire_id(), r.which.all), (wire, all), "{args:?}");
        }

        match admin(&["devices", "alice"]) {
            AdminCommand::Devices(d) => {
                assert_eq!(d.name.as_deref(), Some("alice"));
                assert!(!d.json && d.change.is_none());
            }
            other => panic!("{other:?}"),
        }
        match admin(&["devices", "alice", "--json"]) {
            AdminCommand::Devices(d) => assert!(d.json && d.name.is_some()),
            other => panic!("{other:?}"),
        }
        for (args, wire) in [
            (&["devices", "remove", "alice", "99ff0011"][..], "99ff0011"),
            (&["devices", "remove", "alice", "--all"], "all"),
            (&["devices", "remove", "--all", "alice"], "all"),
        ] {
            match admin(args) {
                AdminCommand::Devices(AdminDevicesArgs {
                    change: Some(AdminDevicesChange::Remove(r)),
                    ..
                }) => assert_eq!((r.name.as_str(), r.which.wire_id()), ("alice", wire)),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn parses_the_key_commands() {
        let Command::Enable(EnableArgs {
            method: EnableMethod::Key(k),
        }) = command(&["enable", "key"])
        else {
            panic!("not enable key");
        };
        assert!(k.name.is_none() && k.save.save.is_none());
        let Command::Enable(EnableArgs {
            method: EnableMethod::Key(k),
        }) = command(&["enable", "key", "--name", "blue key", "--save", "c"])
        else {
            panic!("not enable key --name");
        };
        assert_eq!(k.name.as_deref(), Some("blue key"));
        assert_eq!(k.save.save.as_deref(), Some(std::path::Path::new("c")));
        for (args, json) in [(&["keys"][..], false), (&["keys", "--json"], true)] {
            let Command::Keys(k) = command(args) else {
                panic!("not keys: {args:?}");
            };
            assert_eq!(k.json, json);
        }
        for (args, id, all) in [
            (&["disable", "key", "0a1b2c3d"][..], Some("0a1b2c3d"), false),
            (&["disable", "key", "--all"], None, true),
        ] {
            let Command::Disable(d) = command(args) else {
                panic!("not disable: {args:?}");
            };
            assert_eq!(
                d.method,
                DisableMethod::Key(WhichKeys {
                    id: id.map(str::to_owned),
                    all
                }),
                "{args:?}"
            );
            assert_eq!(d.method.wire_name(), "key");
        }
        for (word, wire) in [
            ("app", "app"),
            ("email", "email"),
            ("ssh-key", "ssh-key"),
            ("all", "all"),
        ] {
            let Command::Disable(d) = command(&["disable", word]) else {
                panic!("not disable {word}");
            };
            assert_eq!(d.method.wire_name(), wire);
        }
    }

    #[test]
    fn key_usage_errors_exit_2() {
        for args in [
            &["twofactorctl", "disable", "key"][..],
            &["twofactorctl", "disable", "key", "0a1b", "--all"],
            &["twofactorctl", "disable", "key", "0a1b", "4e5f"],
            &["twofactorctl", "disable", "app", "0a1b"],
            &["twofactorctl", "disable", "app", "--all"],
            &["twofactorctl", "disable", "--all"],
            &["twofactorctl", "enable", "key", "--name"],
            &["twofactorctl", "enable", "key", "extra"],
            &["twofactorctl", "enable", "key", "--force"],
            &["twofactorctl", "keys", "0a1b"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
        // `disable key` alone says what to give.
        let err = Cli::try_parse_from(["twofactorctl", "disable", "key"]).unwrap_err();
        let text = err.render().to_string();
        assert!(text.contains("<ID|--all>"), "{text}");
    }

    #[test]
    fn key_help_documents_input_and_output() {
        let pages: [(&[&str], &[&str]); 4] = [
            (
                &["enable", "key"],
                &[
                    "Touch your security key.",
                    "Security key registered as",
                    "then the key's PIN",
                    "user_verification",
                    "fido2-token -S",
                    "Save them to a file?",
                    "Exit status:",
                ],
            ),
            (&["keys"], &["--json", "No security keys.", "last_used"]),
            (
                &["disable", "key"],
                &["--all", "twofactorctl keys", "Removed the security key ID."],
            ),
            (&["disable"], &["`key ID`", "`key --all`"]),
        ];
        for (path, needles) in pages {
            let help = long_help_of(path);
            for needle in needles {
                assert!(help.contains(needle), "{path:?} {needle}: {help}");
            }
        }
    }

    #[test]
    fn devices_usage_errors_exit_2() {
        for args in [
            &["twofactorctl", "devices", "remove"][..],
            &["twofactorctl", "devices", "remove", "1a2b", "--all"],
            &["twofactorctl", "devices", "remove", "1a2b", "99ff"],
            &["twofactorctl", "devices", "--json", "remove", "1a2b"],
            &[
                "twofactorctl",
                "devices",
                "remove",
                "1a2b",
                "--password",
                "x",
            ],
            &["twofactorctl", "devices", "1a2b"],
            &["twofactorctl", "admin", "devices"],
            &["twofactorctl", "admin", "devices", "remove", "alice"],
            &[
                "twofactorctl",
                "admin",
                "devices",
                "remove",
                "alice",
                "x",
                "--all",
            ],
            &["twofactorctl", "admin", "devices", "alice", "bob"],
            &["twofactorctl", "admin", "devices", "alice", "remove", "x"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn devices_help_explains_trust() {
        for path in [&["devices"][..], &["admin", "devices"]] {
            let help = long_help_of(path);
            for needle in [
                "publickey,keyboard-interactive",
                "30 days",
                "never extended by use",
                "methods change",
                "backup codes",
                "password changes",
                "reset",
                "last_used",
                "Exit status:",
            ] {
                assert!(help.contains(needle), "{path:?} {needle}: {help}");
            }
        }
        let remove = long_help_of(&["devices", "remove"]);
        for needle in [
            "line 1 = the account password",
            "Removed 1 trusted device.",
            "No trusted devices to remove.",
            "--all",
        ] {
            assert!(remove.contains(needle), "{needle}: {remove}");
        }
        let remove = long_help_of(&["admin", "devices", "remove"]);
        for needle in ["root, who is not asked", "of NAME", "NAME <ID|--all>"] {
            assert!(remove.contains(needle), "{needle}: {remove}");
        }
        let status = long_help_of(&["status"]);
        for needle in ["trusted_devices", "Trusted devices", "twofactorctl devices"] {
            assert!(status.contains(needle), "{needle}: {status}");
        }
        let user = long_help_of(&["admin", "user"]);
        assert!(user.contains("devices (an array"), "{user}");
    }

    #[test]
    fn admin_usage_errors_exit_2() {
        for args in [
            &["twofactorctl", "admin"][..],
            &["twofactorctl", "admin", "policy", "mandatory"],
            &["twofactorctl", "admin", "policy", "mandatory", "maybe"],
            // --json is for showing the policy only.
            &[
                "twofactorctl",
                "admin",
                "policy",
                "--json",
                "mandatory",
                "on",
            ],
            &[
                "twofactorctl",
                "admin",
                "policy",
                "mandatory",
                "on",
                "--json",
            ],
            &[
                "twofactorctl",
                "admin",
                "policy",
                "mandatory",
                "on",
                "--from",
            ],
            &["twofactorctl", "admin", "user"],
            &["twofactorctl", "admin", "reset"],
            &["twofactorctl", "admin", "reset", "alice", "--password", "x"],
            &["twofactorctl", "admin", "unlock"],
            &["twofactorctl", "admin", "import"],
            &["twofactorctl", "admin", "import", "google-authenticator"],
            &[
                "twofactorctl",
                "admin",
                "import",
                "google-authenticator",
                "alice",
                "--all",
            ],
            &[
                "twofactorctl",
                "admin",
                "import",
                "google-authenticator",
                "--all",
                "f",
            ],
            &[
                "twofactorctl",
                "admin",
                "import",
                "google-authenticator",
                "a",
                "f",
                "x",
            ],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn admin_help_documents_the_input_rules() {
        let mut cmd = Cli::command();
        let admin = cmd.find_subcommand_mut("admin").unwrap();
        let top = admin.render_long_help().to_string();
        for needle in [
            "admin_group",
            "line 1 of",
            "root, who is not asked",
            "Exit status:",
        ] {
            assert!(top.contains(needle), "{needle}: {top}");
        }
        let reset = admin
            .find_subcommand_mut("reset")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in [
            "--yes",
            "[y/N]",
            "24 hours",
            "secure channel",
            "not a terminal",
            "Recovery code:",
        ] {
            assert!(reset.contains(needle), "{needle}: {reset}");
        }
        let import = admin
            .find_subcommand_mut("import")
            .unwrap()
            .find_subcommand_mut("google-authenticator")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in [
            "--all",
            "HOTP",
            "pam_twofactor.so",
            "Summary:",
            "Exit status",
        ] {
            assert!(import.contains(needle), "{needle}: {import}");
        }
        let policy = admin
            .find_subcommand_mut("policy")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in ["configuration file", "--json", "updated_by"] {
            assert!(policy.contains(needle), "{needle}: {policy}");
        }
        let users = admin
            .find_subcommand_mut("users")
            .unwrap()
            .render_long_help()
            .to_string();
        for needle in ["known_to_system", "RECOVERY", "marked *"] {
            assert!(users.contains(needle), "{needle}: {users}");
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
            &["twofactorctl", "enable", "email"],
            &[
                "twofactorctl",
                "enable",
                "email",
                "a@example.com",
                "--force",
            ],
            &[
                "twofactorctl",
                "enable",
                "email",
                "a@example.com",
                "b@example.com",
            ],
            &["twofactorctl", "prefer"],
            &["twofactorctl", "prefer", "sms"],
            &["twofactorctl", "prefer", "all"],
            &["twofactorctl", "prefer", "app", "--password", "x"],
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
        for needle in [
            "--save",
            "--force",
            "0600",
            "symbolic link",
            "trusted device",
            "Exit status:",
        ] {
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

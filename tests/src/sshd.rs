//! A real OpenSSH server on a loopback port with its own PAM service, driven
//! by the real OpenSSH client; and a sudo set-up with its own PAM service.
//!
//! OpenSSH names its PAM service after its program name, so a copy of
//! /usr/sbin/sshd called `sshd-twofactor-test-<pid>-<n>` uses
//! `/etc/pam.d/sshd-twofactor-test-<pid>-<n>`; the machine's own sshd PAM
//! stack is never touched. Everything put into /etc is removed on Drop.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::etc::EtcFile;
use crate::proc::{self, Finished};
use crate::sshkeys::{self, KeyKind, KeyPair};
use crate::users::TestUser;

pub const SSH_TIMEOUT: Duration = Duration::from_secs(90);

/// The password step of the README's recipe: `@include common-auth` as
/// Debian writes it (pam-auth-update): a wrong password ends the stack at
/// `pam_deny.so` before the module.
pub const DEBIAN_COMMON_AUTH: &str = "auth [success=1 default=ignore] pam_unix.so nullok\n\
     auth requisite pam_deny.so\n\
     auth required pam_permit.so\n";

/// The other recipe: the password step alone, `requisite`.
pub const REQUISITE_PASSWORD: &str = "auth requisite pam_unix.so\n";

/// A badly written stack: the password step `required`, so the module runs
/// after a wrong password too. The recipes never do this; tests use it to
/// show that the module stays safe anyway.
pub const PASSWORD_THEN_MODULE_ANYWAY: &str = "auth required pam_unix.so\n";

/// PAM service text: `password` (one of the constants above), then the
/// module with `module_args`; the module in the account phase too, as the
/// README says.
pub fn pam_stack(password: &str, module_args: &str) -> String {
    pam_stack_with(password, module_args, "")
}

/// [`pam_stack`] with `extra_auth` (whole lines) between the password step
/// and the module in the auth phase.
pub fn pam_stack_with(password: &str, module_args: &str, extra_auth: &str) -> String {
    format!(
        "{password}\
         {extra_auth}\
         auth required {so} {module_args}\n\
         account required pam_unix.so\n\
         account required {so}\n\
         session required pam_permit.so\n\
         password required pam_deny.so\n",
        so = crate::pam_module_so().display()
    )
}

/// How a test [`Sshd`] differs from the default (keyboard-interactive
/// only, the PAM stack of [`pam_stack`]).
#[derive(Clone, Debug, Default)]
pub struct SshdOptions {
    /// `AuthenticationMethods publickey,keyboard-interactive`: the client
    /// proves a key listed in the user's ~/.ssh/authorized_keys (checked with
    /// `StrictModes yes`), then the PAM stack runs in keyboard-interactive
    /// with `SSH_AUTH_INFO_0` (`publickey TYPE BASE64`) in its environment.
    pub publickey_first: bool,
    /// PAM lines put before the module's auth line (see [`pam_stack_with`]).
    pub extra_pam_auth: String,
    /// The module runs after a wrong password too
    /// ([`PASSWORD_THEN_MODULE_ANYWAY`]); by default the stack is the
    /// README's recipe ([`DEBIAN_COMMON_AUTH`]).
    pub module_after_a_wrong_password: bool,
    /// More sshd_config lines (e.g. `PubkeyAuthOptions touch-required`).
    pub extra_config: String,
    /// Where sshd_config is written (a test that tells twofactord where
    /// it is); None: in sshd's own temporary directory.
    pub config_path: Option<PathBuf>,
}

impl SshdOptions {
    /// The publickey-first set-up, with no extra PAM lines.
    pub fn publickey_first() -> SshdOptions {
        SshdOptions {
            publickey_first: true,
            ..SshdOptions::default()
        }
    }

    /// The README's recipe with the password step `required`: the module
    /// is reached after a wrong password.
    pub fn module_after_a_wrong_password() -> SshdOptions {
        SshdOptions {
            module_after_a_wrong_password: true,
            ..SshdOptions::default()
        }
    }

    fn password_step(&self) -> &'static str {
        if self.module_after_a_wrong_password {
            PASSWORD_THEN_MODULE_ANYWAY
        } else {
            DEBIAN_COMMON_AUTH
        }
    }

    /// The lines of sshd_config that choose the authentication methods.
    fn auth_config(&self) -> &'static str {
        if self.publickey_first {
            "PubkeyAuthentication yes\n\
             AuthorizedKeysFile .ssh/authorized_keys\n\
             AuthenticationMethods publickey,keyboard-interactive\n\
             StrictModes yes\n"
        } else {
            "PubkeyAuthentication no\n\
             AuthenticationMethods keyboard-interactive\n\
             StrictModes no\n"
        }
    }
}

pub struct Sshd {
    // Field order: sshd is killed before the PAM file is removed.
    child: Option<Child>,
    pub port: u16,
    pub service: String,
    _pam: EtcFile,
    dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

impl Sshd {
    /// Starts sshd with the module's `module_args` (e.g. `bus=ADDR`).
    pub fn start(module_args: &str) -> Sshd {
        Sshd::start_with(module_args, &SshdOptions::default())
    }

    /// [`Sshd::start`] set up as `options` say.
    pub fn start_with(module_args: &str, options: &SshdOptions) -> Sshd {
        let service = format!(
            "sshd-twofactor-test-{}-{}",
            std::process::id(),
            crate::unique()
        );
        // Under /var/tmp when twofactord reads this sshd's configuration
        // (`sshd -T` loads the host key; the daemon's /tmp is its own).
        let dir = if options.config_path.is_some() {
            crate::var_temp_dir("tft-sshd-")
        } else {
            crate::temp_dir("tft-sshd-")
        };
        let pam = EtcFile::create(
            format!("/etc/pam.d/{service}"),
            &pam_stack_with(
                options.password_step(),
                module_args,
                &options.extra_pam_auth,
            ),
            0o644,
        );
        let program = dir.path().join(&service);
        std::fs::copy("/usr/sbin/sshd", &program).expect("copy /usr/sbin/sshd");
        crate::set_mode(&program, 0o755);
        std::fs::create_dir_all("/run/sshd").expect("mkdir /run/sshd (privilege separation)");
        let key = dir.path().join("hostkey");
        sshkeys::keygen(KeyKind::Ed25519, &key, "tft-host");
        let conf = options
            .config_path
            .clone()
            .unwrap_or_else(|| dir.path().join("sshd_config"));
        crate::write_file(
            &conf,
            format!(
                "ListenAddress 127.0.0.1\n\
                 HostKey {key}\n\
                 PidFile {pid}\n\
                 UsePAM yes\n\
                 KbdInteractiveAuthentication yes\n\
                 PasswordAuthentication no\n\
                 {auth}\
                 PermitRootLogin no\n\
                 UseDNS no\n\
                 LoginGraceTime 60\n\
                 MaxAuthTries 3\n\
                 LogLevel VERBOSE\n\
                 {extra}",
                key = key.display(),
                auth = options.auth_config(),
                extra = options.extra_config,
                pid = dir.path().join("sshd.pid").display()
            ),
            0o644,
        );
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("sshd log");
        let mut last_err = String::new();
        // A port found free can be taken by someone else before sshd binds it:
        // try a few.
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&program)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&conf)
                .arg("-p")
                .arg(port.to_string())
                .env_clear()
                .env("PATH", crate::PATH)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup"))
                .stderr(log.try_clone().expect("dup"))
                .spawn()
                .expect("start sshd copy");
            let deadline = Instant::now() + Duration::from_secs(20);
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    last_err = format!(
                        "sshd exited ({status}): {}",
                        std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    return Sshd {
                        child: Some(child),
                        port,
                        service,
                        _pam: pam,
                        dir,
                    };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = "sshd did not listen within 20 s".into();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("could not start sshd: {last_err}");
    }

    /// What sshd logged (stderr, -e).
    pub fn log(&self) -> String {
        std::fs::read(self.dir.path().join("sshd.log"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// Logs in as `user` with the real ssh client, keyboard-interactive,
    /// answering "Password" prompts with `password` and "Verification code"
    /// prompts with `code` (both handed over in files, never argv), and runs
    /// `echo LOGGED-IN`.
    pub fn ssh(&self, user: &TestUser, password: &str, code: &str) -> Finished {
        self.ssh_with_key(user, None, password, code)
    }

    /// [`Sshd::ssh`], the client offering `key` (and only it) by publickey
    /// first if given (for an sshd started with
    /// [`SshdOptions::publickey_first`]).
    pub fn ssh_with_key(
        &self,
        user: &TestUser,
        key: Option<&KeyPair>,
        password: &str,
        code: &str,
    ) -> Finished {
        let client = self.client_dir();
        let pw = client.join("password");
        let cf = client.join("code");
        crate::write_file(&pw, format!("{password}\n"), 0o600);
        crate::write_file(&cf, format!("{code}\n"), 0o600);
        crate::write_file(
            &client.join("askpass"),
            format!(
                "#!/bin/sh\n\
                 echo \"$1\" >> '{log}'\n\
                 case \"$1\" in\n\
                 *[Vv]erification*) exec cat '{code}' ;;\n\
                 *[Pp]assword*) exec cat '{pw}' ;;\n\
                 *) exit 1 ;;\n\
                 esac\n",
                log = client.join("prompts").display(),
                code = cf.display(),
                pw = pw.display()
            ),
            0o700,
        );
        proc::run(
            &mut self.client_command(&client, user, key),
            b"",
            SSH_TIMEOUT,
        )
    }

    /// Starts an ssh login as `user` whose answers the test gives as the
    /// login goes on: the askpass program answers the N-th prompt with the
    /// file `answer.N` of the client's directory, waiting (up to the ssh
    /// timeout) for the test to write it ([`Scripted::answer`]). For flows
    /// whose later answers are known only later (a code sent by email).
    pub fn ssh_scripted(&self, user: &TestUser) -> Scripted {
        self.ssh_scripted_with_key(user, None)
    }

    /// [`Sshd::ssh_scripted`], the client offering `key` (and only it) by
    /// publickey first if given (see [`Sshd::ssh_with_key`]).
    pub fn ssh_scripted_with_key(&self, user: &TestUser, key: Option<&KeyPair>) -> Scripted {
        let client = self.client_dir();
        // The count of prompts is kept in a file; each call takes the next.
        crate::write_file(
            &client.join("askpass"),
            format!(
                "#!/bin/sh
                 d='{dir}'
                 n=$(( $(cat \"$d/count\" 2>/dev/null || echo 0) + 1 ))
                 echo $n > \"$d/count\"
                 printf '%s\\n----\\n' \"$1\" >> \"$d/prompts\"
                 i=0
                 while [ ! -e \"$d/answer.$n\" ] && [ $i -lt {tenths} ]; do sleep 0.1; i=$((i+1)); done
                 exec cat \"$d/answer.$n\"
",
                dir = client.display(),
                tenths = SSH_TIMEOUT.as_millis() / 100,
            ),
            0o700,
        );
        let mut cmd = self.client_command(&client, user, key);
        let run = std::thread::spawn(move || proc::run(&mut cmd, b"", SSH_TIMEOUT));
        Scripted {
            dir: client,
            run: Some(run),
        }
    }

    /// A new directory (0700) for one client run: its askpass program
    /// (`askpass`, written by the caller), answers, prompts and HOME.
    fn client_dir(&self) -> PathBuf {
        let client = self.dir.path().join(format!("client-{}", crate::unique()));
        std::fs::create_dir(&client).expect("client dir");
        crate::set_mode(&client, 0o700);
        client
    }

    /// `setsid -w ssh ...` logging in as `user` (by `key` first if given),
    /// with `client`'s askpass program and an empty HOME in `client`.
    fn client_command(&self, client: &Path, user: &TestUser, key: Option<&KeyPair>) -> Command {
        let home = client.join("home");
        std::fs::create_dir(&home).expect("client home");
        let mut args =
            ssh_client_args_with_key(self.port, &user.name, key.map(|k| k.private.as_path()));
        if key.is_some_and(|k| k.kind.is_security_key()) {
            // OpenSSH's software security key holds the key (ssh-sk-helper
            // loads it).
            args.insert(1, "-o".into());
            args.insert(
                2,
                format!(
                    "SecurityKeyProvider={}",
                    crate::sk_dummy::provider().display()
                ),
            );
        }
        let mut cmd = Command::new("setsid");
        cmd.arg("-w")
            .args(args)
            .env_clear()
            .env("PATH", crate::PATH)
            .env("HOME", &home)
            .env("SSH_ASKPASS", client.join("askpass"))
            .env("SSH_ASKPASS_REQUIRE", "force")
            .env("DISPLAY", ":0");
        cmd
    }

    /// The prompts the askpass program was asked, all clients so far.
    pub fn asked_prompts(&self) -> String {
        let mut all = String::new();
        if let Ok(rd) = std::fs::read_dir(self.dir.path()) {
            let mut dirs: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
            dirs.sort();
            for d in dirs {
                if let Ok(t) = std::fs::read_to_string(d.join("prompts")) {
                    all.push_str(&t);
                }
            }
        }
        all
    }
}

/// An ssh login in progress, answered step by step (see
/// [`Sshd::ssh_scripted`]).
pub struct Scripted {
    dir: PathBuf,
    run: Option<std::thread::JoinHandle<Finished>>,
}

impl Scripted {
    /// Gives the answer to prompt number `n` (1-based).
    pub fn answer(&self, n: usize, text: &str) {
        let tmp = self.dir.join(format!("answer.{n}.tmp"));
        crate::write_file(&tmp, format!("{text}\n"), 0o600);
        std::fs::rename(&tmp, self.dir.join(format!("answer.{n}"))).expect("an answer file");
    }

    /// The prompts asked so far, each followed by a line `----`.
    pub fn prompts(&self) -> String {
        std::fs::read_to_string(self.dir.join("prompts")).unwrap_or_default()
    }

    /// Waits until prompt number `n` was asked; returns its text.
    pub fn wait_prompt(&self, n: usize) -> String {
        let mut text = None;
        crate::wait_until(SSH_TIMEOUT, || {
            text = self
                .prompts()
                .split_terminator("----\n")
                .nth(n - 1)
                .map(str::to_string);
            text.is_some()
        });
        text.unwrap_or_else(|| panic!("prompt {n} never came; prompts:\n{}", self.prompts()))
    }

    /// Waits for ssh to end.
    pub fn finish(mut self) -> Finished {
        self.run
            .take()
            .map(|h| h.join().expect("the ssh thread"))
            .expect("finished once")
    }

    /// Waits for ssh to end; its end and every prompt asked.
    pub fn finish_with_prompts(self) -> (Finished, Vec<String>) {
        let dir = self.dir.clone();
        let out = self.finish();
        let prompts = std::fs::read_to_string(dir.join("prompts"))
            .unwrap_or_default()
            .split_terminator("----\n")
            .map(str::to_string)
            .collect();
        (out, prompts)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `sudo` for one user with its own PAM service:
/// /etc/sudoers.d/tft-test-<pid>-<n> and /etc/pam.d/sudo-twofactor-test-<pid>-<n>.
pub struct SudoSetup {
    // Field order: sudoers (which names the service) goes first.
    _sudoers: EtcFile,
    _pam: EtcFile,
    pub service: String,
    user: String,
}

impl SudoSetup {
    pub fn new(user: &TestUser, module_args: &str) -> SudoSetup {
        let n = format!("{}-{}", std::process::id(), crate::unique());
        let service = format!("sudo-twofactor-test-{n}");
        let pam = EtcFile::create(
            format!("/etc/pam.d/{service}"),
            &pam_stack(DEBIAN_COMMON_AUTH, module_args),
            0o644,
        );
        let text = format!(
            "Defaults:{u} pam_service={service}\n\
             Defaults:{u} lecture=never\n\
             Defaults:{u} timestamp_timeout=0\n\
             Defaults:{u} !mail_badpass\n\
             Defaults:{u} passwd_tries=1\n\
             {u} ALL=(ALL) ALL\n",
            u = user.name
        );
        // A broken file in sudoers.d breaks sudo for everybody: check first.
        let scratch = crate::temp_dir("tft-sudoers-");
        let check = scratch.path().join("sudoers");
        crate::write_file(&check, &text, 0o440);
        let out = proc::run(
            Command::new("visudo").arg("-cf").arg(&check),
            b"",
            Duration::from_secs(20),
        );
        assert!(
            out.success(),
            "visudo rejects the test sudoers: {}",
            out.describe()
        );
        // No dot in the name: sudo ignores files in sudoers.d with a dot.
        let sudoers = EtcFile::create(format!("/etc/sudoers.d/tft-test-{n}"), &text, 0o440);
        SudoSetup {
            _sudoers: sudoers,
            _pam: pam,
            service,
            user: user.name.clone(),
        }
    }

    /// `sudo -S -k true` as `user` with `env`, typing `password` then `code`,
    /// with the fixed system bus socket leading to `system_bus` (or to
    /// nothing) in a private mount namespace.
    pub fn run(
        &self,
        user: &TestUser,
        system_bus: Option<&std::path::Path>,
        env: &[(&str, &str)],
        password: &str,
        code: &str,
    ) -> Finished {
        let mut cmd = crate::with_fixed_system_bus(
            std::path::Path::new("setsid"),
            system_bus,
            Some(user.ids()),
        );
        cmd.args(["-w", "sudo", "-S", "-k", "true"])
            .env_clear()
            .env(
                "TFT_SYSTEM_BUS",
                system_bus
                    .map(|p| p.as_os_str().to_owned())
                    .unwrap_or_default(),
            )
            .env("PATH", crate::PATH)
            .env("HOME", user.home())
            .env("USER", &user.name)
            .env("LOGNAME", &user.name);
        for (k, v) in env {
            cmd.env(k, v);
        }
        proc::run(
            &mut cmd,
            format!("{password}\n{code}\n").as_bytes(),
            Duration::from_secs(60),
        )
    }
}

impl Drop for SudoSetup {
    fn drop(&mut self) {
        // sudo's time stamp of the user, if any was made.
        let _ = std::fs::remove_file(format!("/run/sudo/ts/{}", self.user));
    }
}

/// `su USER -c 'echo SU-OK'` run by `user` (to their own account, so only
/// their password is needed) with the PAM stack pam_unix + the module with
/// `module_args`. su's PAM service name is fixed ("su"), so the test's
/// stack is bind-mounted over /etc/pam.d/su inside a private mount namespace
/// (`unshare -m`): the machine's own file is never changed and no other
/// process sees the test's one. Unlike sudo, su runs PAM with the caller's
/// environment as it is, which is what makes it the real test of a module
/// that must ignore DBUS_SYSTEM_BUS_ADDRESS.
///
/// The fixed system bus socket (/run/dbus/system_bus_socket) leads to
/// `system_bus`, or to nothing, inside the namespace (see
/// [`crate::FIXED_SYSTEM_BUS_SETUP`]).
pub fn su_as_user(
    user: &TestUser,
    module_args: &str,
    system_bus: Option<&std::path::Path>,
    env: &[(&str, &str)],
    password: &str,
    code: &str,
) -> Finished {
    let (mut cmd, _dir) = su_command(user, module_args, system_bus, env);
    proc::run(
        &mut cmd,
        format!("{password}\n{code}\n").as_bytes(),
        Duration::from_secs(60),
    )
}

/// The command [`su_as_user`] runs (`user` runs `su` to themselves with
/// the module on the stack), and the directory of its PAM file, which must
/// outlive it. Root only.
pub fn su_command(
    user: &TestUser,
    module_args: &str,
    system_bus: Option<&std::path::Path>,
    env: &[(&str, &str)],
) -> (Command, tempfile::TempDir) {
    let dir = crate::temp_dir("tft-su-");
    let pam = dir.path().join("su");
    crate::write_file(&pam, pam_stack(DEBIAN_COMMON_AUTH, module_args), 0o644);
    let mut inner = format!(
        "exec setpriv --reuid={} --regid={} --clear-groups env -i PATH={} HOME={} USER={u} LOGNAME={u}",
        user.uid,
        user.gid,
        crate::PATH,
        user.home().display(),
        u = user.name
    );
    for (k, v) in env {
        assert!(
            !k.contains(['\'', ' ']) && !v.contains('\''),
            "no quotes in test environment values, no spaces in names"
        );
        inner.push_str(&format!(" '{k}={v}'"));
    }
    inner.push_str(&format!(" su {} -c 'echo SU-OK'", user.name));
    let script = format!(
        "{}mount --bind \"$TFT_PAM\" /etc/pam.d/su\n{inner}\n",
        crate::FIXED_SYSTEM_BUS_SETUP
    );
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_clear()
        .env("PATH", crate::PATH)
        .env("TFT_PAM", &pam)
        .env(
            "TFT_SYSTEM_BUS",
            system_bus
                .map(|p| p.as_os_str().to_owned())
                .unwrap_or_default(),
        );
    (cmd, dir)
}

/// Whether an `ssh` run of [`ssh_client_args`] logged in: it succeeded and
/// its remote command printed `LOGGED-IN`.
pub fn logged_in(out: &Finished) -> bool {
    out.success() && out.stdout().lines().any(|l| l == "LOGGED-IN")
}

/// `ssh` and its arguments for a non-interactive keyboard-interactive login
/// of `user` to the test sshd on `port`, running `echo LOGGED-IN`.
pub fn ssh_client_args(port: u16, user: &str) -> Vec<String> {
    ssh_client_args_with_key(port, user, None)
}

/// [`ssh_client_args`]; with `key` (a private key file), publickey with that
/// key alone comes before keyboard-interactive.
pub fn ssh_client_args_with_key(port: u16, user: &str, key: Option<&Path>) -> Vec<String> {
    let mut args: Vec<String> = ["ssh", "-F", "/dev/null", "-n", "-T", "-p"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.push(port.to_string());
    let methods: &[&str] = match key {
        Some(key) => {
            args.push("-i".into());
            args.push(key.display().to_string());
            &[
                "PreferredAuthentications=publickey,keyboard-interactive",
                "PubkeyAuthentication=yes",
                "IdentitiesOnly=yes",
            ]
        }
        None => &["PreferredAuthentications=keyboard-interactive"],
    };
    for option in methods.iter().copied().chain([
        "StrictHostKeyChecking=no",
        "UserKnownHostsFile=/dev/null",
        "GlobalKnownHostsFile=/dev/null",
        "NumberOfPasswordPrompts=1",
        "BatchMode=no",
        "ConnectTimeout=20",
    ]) {
        args.push("-o".into());
        args.push(option.into());
    }
    args.extend([
        "-l".into(),
        user.into(),
        "127.0.0.1".into(),
        "echo LOGGED-IN".into(),
    ]);
    args
}

//! A private `dbus-daemon` configured like Debian's system bus (default deny
//! for method calls, EXTERNAL auth only) that includes the repository's real
//! policy file `config/dbus/org.twofactor.Daemon1.conf`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::proc::{self, Finished};

pub struct PrivateBus {
    dir: tempfile::TempDir,
    address: String,
    child: Child,
}

/// The shipped policy of the daemon's bus name.
pub fn shipped_policy() -> PathBuf {
    let p = crate::repo_root().join("config/dbus/org.twofactor.Daemon1.conf");
    assert!(p.exists(), "missing shipped D-Bus policy {}", p.display());
    p
}

fn bus_config(socket: &Path, policy: &Path) -> String {
    format!(
        r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={socket}</listen>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus" />
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Properties"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus"
          send_interface="org.freedesktop.DBus.Debug.Stats"/>
  </policy>
  <policy user="root">
    <allow send_destination="org.freedesktop.DBus"
           send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <include>{policy}</include>
</busconfig>
"#,
        socket = socket.display(),
        policy = policy.display()
    )
}

impl PrivateBus {
    pub fn start() -> PrivateBus {
        let dir = crate::var_temp_dir("tft-bus-");
        let socket = dir.path().join("bus");
        let conf = dir.path().join("bus.conf");
        crate::write_file(&conf, bus_config(&socket, &shipped_policy()), 0o644);
        let log = std::fs::File::create(dir.path().join("bus.log")).expect("bus log");
        let mut child = Command::new("dbus-daemon")
            .arg(format!("--config-file={}", conf.display()))
            .arg("--nofork")
            .arg("--nopidfile")
            .arg("--print-address=1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("start dbus-daemon (is the dbus package installed?)");
        let stdout = child.stdout.take().expect("piped stdout");
        // The first line is the address; reading it means the bus listens.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let address = match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) if !line.trim().is_empty() => line.trim().to_string(),
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("dbus-daemon printed no address ({other:?})");
            }
        };
        PrivateBus {
            dir,
            address,
            child,
        }
    }

    /// The bus address as dbus-daemon printed it (`unix:path=...,guid=...`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// The address without the guid, as an admin would write it.
    pub fn plain_address(&self) -> String {
        format!("unix:path={}", self.socket().display())
    }

    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("bus")
    }

    /// Where the daemon on this bus serves its login socket (its
    /// `/run/twofactor/login`): a directory the daemon makes, beside the
    /// bus socket.
    pub fn login_socket(&self) -> PathBuf {
        self.dir.path().join("twofactor").join("login")
    }

    /// Runs `dbus-send --print-reply` on this bus as root.
    pub fn send(&self, dest: &str, path: &str, method: &str, args: &[&str]) -> Finished {
        self.send_as(None, dest, path, method, args)
    }

    /// Runs `dbus-send --print-reply` on this bus, as `uid:gid` if given.
    pub fn send_as(
        &self,
        as_user: Option<(u32, u32)>,
        dest: &str,
        path: &str,
        method: &str,
        args: &[&str],
    ) -> Finished {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("dbus-send");
        cmd.env_clear()
            .env("PATH", crate::PATH)
            .arg(format!("--bus={}", self.address))
            .arg("--print-reply")
            .arg("--reply-timeout=20000")
            .arg(format!("--dest={dest}"))
            .arg(path)
            .arg(method)
            .args(args);
        if let Some((uid, gid)) = as_user {
            // std drops supplementary groups when root sets a uid.
            cmd.uid(uid).gid(gid);
        }
        proc::run(&mut cmd, b"", Duration::from_secs(30))
    }

    /// Whether a bus name has an owner right now.
    pub fn has_owner(&self, name: &str) -> bool {
        let out = self.send(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            &[&format!("string:{name}")],
        );
        assert!(out.success(), "NameHasOwner failed: {}", out.describe());
        out.stdout().contains("boolean true")
    }

    /// Waits until `name` has an owner (`true`) or none (`false`).
    pub fn wait_owner(&self, name: &str, owned: bool, timeout: Duration) -> bool {
        crate::wait_until(timeout, || self.has_owner(name) == owned)
    }
}

impl Drop for PrivateBus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A sequence of D-Bus method calls made by a python3-dbus client (run as
/// `as_user` if given), for tests that need more than dbus-send can do:
/// several connections in one process, byte-array arguments that must not
/// appear on a command line, results fed into later calls.
///
/// Each call is a JSON object `{"conn": N, "interface": I, "method": M,
/// "signature": S, "args": [...]}`; an argument `{"bytes": "text"}` is sent
/// as `ay` (UTF-8 of the text; `{"hex": "ff00"}` for raw bytes), and the
/// string `"$0"` (`"$1"`, ...) is replaced by the first value returned by
/// that earlier call. Returns one JSON value per call: `{"ok": [values],
/// "signature": SIG}` (the reply's body signature) or `{"error": NAME,
/// "message": TEXT}`.
pub const PY_CLIENT: &str = r#"
import sys, json, dbus, dbus.lowlevel
req = json.load(sys.stdin)
conns = {}
results = []
firsts = []
def plain(v):
    if isinstance(v, (dbus.Struct, dbus.Array, list, tuple)):
        return [plain(x) for x in v]
    if isinstance(v, dbus.Dictionary):
        return {str(k): plain(x) for k, x in v.items()}
    if isinstance(v, dbus.Boolean):
        return bool(v)
    if isinstance(v, (dbus.Byte, dbus.Int16, dbus.Int32, dbus.Int64, dbus.UInt16, dbus.UInt32, dbus.UInt64)):
        return int(v)
    if isinstance(v, (dbus.String, dbus.ObjectPath, dbus.Signature)):
        return str(v)
    return v
for call in req["calls"]:
    n = call.get("conn", 0)
    if n not in conns:
        conns[n] = dbus.bus.BusConnection(req["address"])
    args = []
    for a in call["args"]:
        if isinstance(a, dict) and "bytes" in a:
            args.append(dbus.ByteArray(a["bytes"].encode("utf-8")))
        elif isinstance(a, dict) and "hex" in a:
            args.append(dbus.ByteArray(bytes.fromhex(a["hex"])))
        elif isinstance(a, str) and a.startswith("$") and a[1:].isdigit():
            args.append(firsts[int(a[1:])])
        else:
            args.append(a)
    try:
        msg = dbus.lowlevel.MethodCallMessage("org.twofactor.Daemon1", "/org/twofactor/Daemon1",
                                              call["interface"], call["method"])
        if args:
            msg.append(signature=call.get("signature", ""), *args)
        reply = conns[n].send_message_with_reply_and_block(msg, 30)
        vals = [plain(x) for x in reply.get_args_list()]
        results.append({"ok": vals, "signature": reply.get_signature() or ""})
        firsts.append(vals[0] if vals else None)
    except dbus.exceptions.DBusException as e:
        results.append({"error": e.get_dbus_name(), "message": e.get_dbus_message()})
        firsts.append(None)
print(json.dumps(results))
"#;

impl PrivateBus {
    /// Runs the calls of [`PY_CLIENT`] on this bus; see there.
    pub fn py_calls(
        &self,
        as_user: Option<(u32, u32)>,
        calls: serde_json::Value,
    ) -> Vec<serde_json::Value> {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new("python3");
        cmd.arg("-c")
            .arg(PY_CLIENT)
            .env_clear()
            .env("PATH", crate::PATH);
        if let Some((uid, gid)) = as_user {
            cmd.uid(uid).gid(gid);
        }
        let input = serde_json::json!({"address": self.address, "calls": calls}).to_string();
        let out = proc::run(&mut cmd, input.as_bytes(), Duration::from_secs(60));
        assert!(
            out.success(),
            "python3-dbus client failed: {}",
            out.describe()
        );
        serde_json::from_slice::<Vec<serde_json::Value>>(&out.stdout)
            .unwrap_or_else(|e| panic!("python3-dbus client output ({e}): {}", out.describe()))
    }
}

/// `dbus-monitor` on a private bus (as root, through the Monitoring
/// interface, as on Debian's system bus): everything sent on the bus, in
/// dbus-monitor's text form.
pub struct BusMonitor {
    child: Child,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl BusMonitor {
    pub fn start(bus: &PrivateBus) -> BusMonitor {
        let dir = crate::temp_dir("tft-monitor-");
        let out = dir.path().join("monitor.txt");
        let file = std::fs::File::create(&out).expect("monitor output");
        let child = Command::new("dbus-monitor")
            .arg("--address")
            .arg(bus.address())
            .arg("--monitor")
            .env_clear()
            .env("PATH", crate::PATH)
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(Stdio::null())
            .spawn()
            .expect("start dbus-monitor");
        let m = BusMonitor {
            child,
            out,
            _dir: dir,
        };
        // It is listening once it has printed its own NameAcquired/monitor
        // notice.
        let deadline = Instant::now() + Duration::from_secs(10);
        while m.text().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        m
    }

    pub fn text(&self) -> String {
        std::fs::read(&self.out)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The messages seen, each as its header line plus its argument lines.
    pub fn messages(&self) -> Vec<String> {
        let mut msgs: Vec<String> = Vec::new();
        for line in self.text().lines() {
            let starts = ["signal ", "method call ", "method return ", "error "]
                .iter()
                .any(|p| line.starts_with(p));
            if starts || msgs.is_empty() {
                msgs.push(line.to_string());
            } else if let Some(last) = msgs.last_mut() {
                last.push('\n');
                last.push_str(line);
            }
        }
        msgs
    }
}

impl Drop for BusMonitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! `bus-floor`: what any login through the system bus, or through the
//! daemon's login socket, costs before the daemon does anything, and what a durable write costs on this disk: the
//! floor under a twofactor login in docs/performance.md, measured by
//! `bench/run` beside the runs.
//!
//! ```text
//! bus-floor --bus ADDRESS [--socket PATH] --dir DIR [--count N]
//! ```
//!
//! - **first call**: a new connection to the bus at ADDRESS (or, with
//!   `--socket`, to the login socket at PATH, peer to peer), the
//!   authentication, on the bus `Hello`, and one
//!   `org.freedesktop.DBus.Peer.Ping` to twofactord (answered by its D-Bus
//!   library, no login rule), through the module's own code: what a
//!   login's `Begin` costs at least.
//! - **later call**: a second `Ping` on that connection: what `Answer`
//!   costs at least, before the daemon's commit.
//! - **fdatasync**: a 4 KiB write into a file in DIR, then `fdatasync`:
//!   what the durable commit of an accepted code costs at least. As in
//!   SQLite's write-ahead log once it has reached its size, the file is
//!   written first (4 MiB) and each write goes after the last, over what
//!   is there: no write changes the file's size.
//!
//! Output: one JSON line on stdout with the p50 and p99 of each, in ms,
//! and one line for people on stderr. Exit status 0, 1 when a
//! measurement failed, 2 for a usage error.

use clap::Parser;
use pam_twofactor::dbus::bus::ping_twice;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(
    name = "bus-floor",
    about = "What the bus and a durable write cost a login"
)]
struct Options {
    /// The bus twofactord is on (unix:path=…).
    #[arg(long)]
    bus: String,
    /// twofactord's login socket: measured instead of the bus (the bus is
    /// used only if nothing is there, as by the module).
    #[arg(long)]
    socket: Option<std::path::PathBuf>,
    /// A directory on the disk the store is on, for the fdatasync file.
    #[arg(long)]
    dir: std::path::PathBuf,
    /// Measurements of each kind.
    #[arg(long, default_value_t = 300, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    count: u32,
}

/// p50 and p99 in ms.
fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1;
        ms.get(i).copied().unwrap_or(f64::NAN)
    };
    (at(0.50), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn measure(o: &Options) -> Result<[(f64, f64); 3], String> {
    let (mut first, mut later) = (Vec::new(), Vec::new());
    for _ in 0..o.count {
        let (f, l) = ping_twice(o.socket.as_deref(), &o.bus, Duration::from_secs(5))
            .map_err(|e| format!("a ping through {} failed: {e:?}", o.bus))?;
        first.push(ms(f));
        later.push(ms(l));
    }
    let path = o.dir.join("bus-floor.fdatasync");
    let file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    const BLOCK: u64 = 4096;
    const SIZE: u64 = 4 << 20;
    let block = [0x5a_u8; BLOCK as usize];
    let mut sync = Vec::new();
    let synced = (|| -> std::io::Result<()> {
        for offset in (0..SIZE).step_by(BLOCK as usize) {
            file.write_all_at(&block, offset)?;
        }
        file.sync_all()?;
        for i in 0..u64::from(o.count) {
            let start = Instant::now();
            file.write_all_at(&block, (i * BLOCK) % SIZE)?;
            file.sync_data()?;
            sync.push(ms(start.elapsed()));
        }
        Ok(())
    })();
    let _ = std::fs::remove_file(&path);
    synced.map_err(|e| format!("cannot write and sync {}: {e}", path.display()))?;
    Ok([percentiles(first), percentiles(later), percentiles(sync)])
}

fn main() -> ExitCode {
    let options = Options::parse();
    match measure(&options) {
        Ok([first, later, sync]) => {
            println!(
                "{{\"count\":{},\"first_call_p50_ms\":{:.3},\"first_call_p99_ms\":{:.3},\
                 \"later_call_p50_ms\":{:.3},\"later_call_p99_ms\":{:.3},\
                 \"fdatasync_p50_ms\":{:.3},\"fdatasync_p99_ms\":{:.3}}}",
                options.count, first.0, first.1, later.0, later.1, sync.0, sync.1
            );
            eprintln!(
                "bus-floor: first call (connect, Hello, Ping) p50 {:.3} ms; later call p50 {:.3} ms; \
                 4 KiB write + fdatasync p50 {:.3} ms ({} of each)",
                first.0, later.0, sync.0, options.count
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bus-floor: {e}");
            ExitCode::FAILURE
        }
    }
}

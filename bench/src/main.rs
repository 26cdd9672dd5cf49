//! `pam-bench`: logs users in through real libpam, many at once, and reports
//! how fast. It is the driver of `bench/run`, which compares `pam_twofactor.so`
//! with google-authenticator-libpam on the same users and secrets.
//!
//! ```text
//! pam-bench --confdir DIR --service NAME --users-file FILE
//!           [--threads N] [--seconds S | --count N] [--state FILE]
//!           [--rhost HOST]
//! ```
//!
//! Each of the N worker threads loops: `pam_start_confdir` (the service from
//! the private directory DIR, never /etc/pam.d) → `pam_set_item(PAM_RHOST)`
//! → `pam_authenticate` → `pam_acct_mgmt` (only after a successful
//! authentication, as login programs do) → `pam_end`. The first prompt of a
//! login is answered with the user's current TOTP code, computed here from
//! the secret (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits); any further
//! prompt gets an empty answer. A login counts as successful when both calls
//! return `PAM_SUCCESS`; every other outcome is a failure, counted by code.
//!
//! Users file: one user per line, `NAME BASE32SECRET`.
//!
//! One code per user and step: both systems accept a user's code for a
//! 30-second step once (google-authenticator-libpam's `DISALLOW_REUSE`,
//! twofactord's last-used step). So each login first claims a (user, step)
//! pair that no earlier login used: users are tried round-robin, a user
//! already used in the current step (or being logged in by another thread)
//! is passed over. When every user has been used in the current step the
//! run ends (`"stopped_by":"users"`), it never reuses a code. With
//! `--state FILE` the pairs used are kept between runs (read at the start,
//! written at the end), so consecutive runs against the same service never
//! reuse one either; and a run that starts with fewer than half of the
//! users (or than `--count`, if fewer) unused in the current step first
//! waits for the next step (not measured).
//!
//! The run ends after `--seconds S` (default 10) of wall time, after
//! `--count N` logins, or when the users are used up, whichever comes first.
//! Output: one JSON line on stdout,
//!
//! ```text
//! {"service":..,"threads":..,"users":..,"logins":..,"ok":..,"failures":..,
//!  "failure_codes":{"PAM_AUTH_ERR":..},"seconds":..,"logins_per_s":..,
//!  "p50_ms":..,"p99_ms":..,"max_ms":..,"stopped_by":"time"|"count"|"users",
//!  "phases_p50_ms":{"pam_start":..,"first_prompt":..,"pam_authenticate":..,
//!                   "pam_acct_mgmt":..,"pam_end":..}}
//! ```
//!
//! and one line for people on stderr. `logins_per_s` is successful logins
//! divided by the wall time from the first `pam_start` to the end of the
//! last login; the latencies (`pam_start` to `pam_end` included) are those
//! of the successful logins. `phases_p50_ms`: the median time from the
//! start of `pam_start` to the end of each phase (`first_prompt`: the code
//! prompt reached the conversation), where the time of a login goes. Exit
//! status: 0 when the run completed (whatever
//! the failures), 1 when it could not run, 2 for a usage error.

mod pam;
mod totp;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const USAGE: &str = "usage: pam-bench --confdir DIR --service NAME --users-file FILE \
[--threads N] [--seconds S | --count N] [--state FILE] [--rhost HOST]";

/// Most threads accepted.
const MAX_THREADS: usize = 1024;

struct Options {
    confdir: CString,
    service: CString,
    service_name: String,
    users_file: String,
    threads: usize,
    seconds: f64,
    count: Option<u64>,
    state: Option<String>,
    rhost: CString,
}

fn parse_options(mut args: impl Iterator<Item = String>) -> Result<Options, String> {
    let mut confdir = None;
    let mut service = None;
    let mut users_file = None;
    let mut threads = None;
    let mut seconds = None;
    let mut count = None;
    let mut state = None;
    let mut rhost = None;
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let slot = match flag.as_str() {
            "--confdir" => &mut confdir,
            "--service" => &mut service,
            "--users-file" => &mut users_file,
            "--threads" => &mut threads,
            "--seconds" => &mut seconds,
            "--count" => &mut count,
            "--state" => &mut state,
            "--rhost" => &mut rhost,
            _ => return Err(format!("unknown option {flag}")),
        };
        if slot.is_some() {
            return Err(format!("{flag} given twice"));
        }
        *slot = Some(value);
    }
    let c = |name: &str, v: String| CString::new(v).map_err(|_| format!("{name} contains NUL"));
    let confdir = c("--confdir", confdir.ok_or("--confdir is required")?)?;
    let service_name = service.ok_or("--service is required")?;
    let threads = match threads {
        None => 1,
        Some(t) => match t.parse::<usize>() {
            Ok(n) if (1..=MAX_THREADS).contains(&n) => n,
            _ => return Err(format!("--threads must be 1 to {MAX_THREADS}, not {t:?}")),
        },
    };
    if seconds.is_some() && count.is_some() {
        return Err("give --seconds or --count, not both".into());
    }
    let seconds = match seconds {
        None => 10.0,
        Some(s) => match s.parse::<f64>() {
            Ok(v) if v > 0.0 && v <= 86_400.0 => v,
            _ => return Err(format!("--seconds must be a number above 0, not {s:?}")),
        },
    };
    let count = match count {
        None => None,
        Some(s) => match s.parse::<u64>() {
            Ok(v) if v > 0 => Some(v),
            _ => return Err(format!("--count must be a whole number above 0, not {s:?}")),
        },
    };
    Ok(Options {
        confdir,
        service: c("--service", service_name.clone())?,
        service_name,
        users_file: users_file.ok_or("--users-file is required")?,
        threads,
        seconds: if count.is_some() { 86_400.0 } else { seconds },
        count,
        state,
        rhost: c("--rhost", rhost.unwrap_or_else(|| "192.0.2.1".into()))?,
    })
}

/// One user of the run.
struct User {
    name: String,
    c_name: CString,
    secret: Vec<u8>,
    /// The last step whose code this user has used (0: none known).
    last_step: AtomicU64,
    /// A thread is logging this user in.
    busy: AtomicBool,
}

fn read_users(path: &str) -> Result<Vec<User>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    let mut users = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(name), Some(secret), None) = (fields.next(), fields.next(), fields.next()) else {
            return Err(format!("{path}:{}: expected `NAME BASE32SECRET`", i + 1));
        };
        let secret = totp::base32_decode(secret)
            .ok_or_else(|| format!("{path}:{}: the secret is not base32", i + 1))?;
        let c_name =
            CString::new(name).map_err(|_| format!("{path}:{}: NUL in the name", i + 1))?;
        users.push(User {
            name: name.to_owned(),
            c_name,
            secret,
            last_step: AtomicU64::new(0),
            busy: AtomicBool::new(false),
        });
    }
    if users.is_empty() {
        return Err(format!("{path} lists no user"));
    }
    Ok(users)
}

/// Reads the steps used by earlier runs (`NAME STEP` lines); a missing file
/// is a first run.
fn read_state(path: &str, users: &[User]) -> Result<(), String> {
    let text = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot read {path}: {e}")),
    };
    let index: BTreeMap<&str, &User> = users.iter().map(|u| (u.name.as_str(), u)).collect();
    for (i, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(name), Some(step)) = (fields.next(), fields.next()) else {
            continue;
        };
        let step: u64 = step
            .parse()
            .map_err(|_| format!("{path}:{}: bad step {step:?}", i + 1))?;
        if let Some(u) = index.get(name) {
            u.last_step.store(step, Ordering::Relaxed);
        }
    }
    Ok(())
}

fn write_state(path: &str, users: &[User]) -> Result<(), String> {
    let mut text = String::new();
    for u in users {
        let step = u.last_step.load(Ordering::Relaxed);
        if step != 0 {
            text.push_str(&format!("{} {step}\n", u.name));
        }
    }
    let tmp = format!("{path}.tmp");
    fs::write(&tmp, text).map_err(|e| format!("cannot write {tmp}: {e}"))?;
    fs::rename(&tmp, path).map_err(|e| format!("cannot rename {tmp} to {path}: {e}"))
}

fn unix_now() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
}

fn current_step() -> u64 {
    unix_now().as_secs() / totp::STEP_SECONDS
}

/// What the threads share.
struct Shared<'a> {
    opts: &'a Options,
    users: &'a [User],
    next: AtomicUsize,
    started: AtomicU64,
    deadline: Instant,
    out_of_users: AtomicBool,
}

impl Shared<'_> {
    /// A (user, step) pair no login has used, marked busy; None when every
    /// user has used the current step's code.
    fn claim(&self) -> Option<(&User, u64)> {
        let n = self.users.len();
        let step = current_step();
        for _ in 0..n {
            let i = self.next.fetch_add(1, Ordering::Relaxed) % n;
            let u = &self.users[i];
            if u.busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue;
            }
            if u.last_step.load(Ordering::Relaxed) < step {
                u.last_step.store(step, Ordering::Relaxed);
                return Some((u, step));
            }
            u.busy.store(false, Ordering::Release);
        }
        None
    }

    /// Whether another login may start (counts it when it may).
    fn may_start(&self) -> bool {
        if Instant::now() >= self.deadline || self.out_of_users.load(Ordering::Relaxed) {
            return false;
        }
        match self.opts.count {
            None => true,
            Some(max) => self.started.fetch_add(1, Ordering::Relaxed) < max,
        }
    }
}

#[derive(Default)]
struct Tally {
    latencies_us: Vec<u64>,
    phases: Vec<pam::Phases>,
    failures: BTreeMap<String, u64>,
}

fn worker(shared: &Shared) -> Tally {
    let mut tally = Tally::default();
    while shared.may_start() {
        let Some((user, step)) = shared.claim() else {
            shared.out_of_users.store(true, Ordering::Relaxed);
            break;
        };
        let code = totp::code(&user.secret, step);
        let started = Instant::now();
        let result = pam::login(
            &shared.opts.confdir,
            &shared.opts.service,
            &user.c_name,
            &shared.opts.rhost,
            &code,
        );
        let elapsed = started.elapsed();
        user.busy.store(false, Ordering::Release);
        match result {
            Ok(phases) => {
                tally
                    .latencies_us
                    .push(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
                tally.phases.push(phases);
            }
            Err(failure) => *tally.failures.entry(failure).or_insert(0) += 1,
        }
    }
    tally
}

/// The median of when each phase ended (ms from `pam_start`), over the
/// successful logins.
fn phase_medians(phases: &[pam::Phases]) -> serde_json::Value {
    let median = |of: fn(&pam::Phases) -> Duration| {
        let mut us: Vec<u64> = phases
            .iter()
            .map(|p| u64::try_from(of(p).as_micros()).unwrap_or(u64::MAX))
            .collect();
        us.sort_unstable();
        round3(percentile_ms(&us, 50.0))
    };
    serde_json::json!({
        "pam_start": median(|p| p.pam_start),
        "first_prompt": median(|p| p.first_prompt),
        "pam_authenticate": median(|p| p.pam_authenticate),
        "pam_acct_mgmt": median(|p| p.pam_acct_mgmt),
        "pam_end": median(|p| p.pam_end),
    })
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    if sorted_us.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted_us.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted_us.len()) - 1;
    sorted_us[i] as f64 / 1000.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

fn run(opts: &Options) -> Result<(), String> {
    let users = read_users(&opts.users_file)?;
    if let Some(state) = &opts.state {
        read_state(state, &users)?;
    }
    // Start on a step where enough users are unused: half of them, or the
    // --count if that is fewer (the state may mark steps ahead as used).
    let half = users.len().div_ceil(2);
    let needed = opts
        .count
        .map_or(half, |c| usize::try_from(c).unwrap_or(usize::MAX).min(half));
    loop {
        let step = current_step();
        let unused = users
            .iter()
            .filter(|u| u.last_step.load(Ordering::Relaxed) < step)
            .count();
        if unused >= needed {
            break;
        }
        let next = Duration::from_secs((step + 1) * totp::STEP_SECONDS);
        let wait = next.saturating_sub(unix_now()) + Duration::from_millis(50);
        eprintln!(
            "pam-bench: {unused} of {} users unused in this 30-s step; waiting {:.1} s for the next",
            users.len(),
            wait.as_secs_f64()
        );
        std::thread::sleep(wait);
    }

    let start = Instant::now();
    let shared = Shared {
        opts,
        users: &users,
        next: AtomicUsize::new(0),
        started: AtomicU64::new(0),
        deadline: start + Duration::from_secs_f64(opts.seconds),
        out_of_users: AtomicBool::new(false),
    };
    let tallies: Mutex<Vec<Tally>> = Mutex::new(Vec::new());
    let spawned = std::thread::scope(|scope| {
        for i in 0..opts.threads {
            let (shared, tallies) = (&shared, &tallies);
            let spawned = std::thread::Builder::new()
                .name(format!("login-{i}"))
                .spawn_scoped(scope, move || {
                    let t = worker(shared);
                    if let Ok(mut all) = tallies.lock() {
                        all.push(t);
                    }
                });
            if let Err(e) = spawned {
                // Stop the threads already running, then report.
                shared.out_of_users.store(true, Ordering::Relaxed);
                return Err(format!("cannot start thread {i}: {e}"));
            }
        }
        Ok(())
    });
    let elapsed = start.elapsed().as_secs_f64();
    spawned?;
    if let Some(state) = &opts.state {
        write_state(state, &users)?;
    }

    let tallies = tallies
        .into_inner()
        .map_err(|_| "a worker thread panicked".to_string())?;
    if tallies.len() != opts.threads {
        return Err("a worker thread panicked".into());
    }
    let mut latencies: Vec<u64> = Vec::new();
    let mut phases: Vec<pam::Phases> = Vec::new();
    let mut failure_codes: BTreeMap<String, u64> = BTreeMap::new();
    for t in tallies {
        latencies.extend(t.latencies_us);
        phases.extend(t.phases);
        for (k, v) in t.failures {
            *failure_codes.entry(k).or_insert(0) += v;
        }
    }
    latencies.sort_unstable();
    let ok = latencies.len() as u64;
    let failures: u64 = failure_codes.values().sum();
    let stopped_by = if shared.out_of_users.load(Ordering::Relaxed) {
        "users"
    } else if opts.count.is_some() {
        "count"
    } else {
        "time"
    };
    let rate = if elapsed > 0.0 {
        ok as f64 / elapsed
    } else {
        0.0
    };
    let (p50, p99) = (
        percentile_ms(&latencies, 50.0),
        percentile_ms(&latencies, 99.0),
    );
    let max = latencies.last().map_or(0.0, |&us| us as f64 / 1000.0);
    let json = serde_json::json!({
        "service": opts.service_name,
        "threads": opts.threads,
        "users": users.len(),
        "logins": ok + failures,
        "ok": ok,
        "failures": failures,
        "failure_codes": failure_codes,
        "seconds": round3(elapsed),
        "logins_per_s": (rate * 10.0).round() / 10.0,
        "p50_ms": round3(p50),
        "p99_ms": round3(p99),
        "max_ms": round3(max),
        "stopped_by": stopped_by,
        "phases_p50_ms": phase_medians(&phases),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{json}")
        .and_then(|()| out.flush())
        .map_err(|e| format!("cannot write the result: {e}"))?;
    eprintln!(
        "{}: {} threads, {ok} logins in {elapsed:.2} s = {rate:.1} logins/s, p50 {p50:.2} ms, \
         p99 {p99:.2} ms, {failures} failures{}",
        opts.service_name,
        opts.threads,
        if stopped_by == "users" {
            " (stopped: every user used this step's code)"
        } else {
            ""
        }
    );
    Ok(())
}

fn main() -> ExitCode {
    let opts = match parse_options(std::env::args().skip(1)) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("pam-bench: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pam-bench: {e}");
            ExitCode::from(1)
        }
    }
}

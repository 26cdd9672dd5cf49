//! The daemon's share of a login, from 100 to 100 000 enrolled users.
//!
//! `cargo bench -p twofactord --bench login_path` opens a database in a
//! temporary directory under the target directory (`synchronous=FULL`:
//! every accepted code is an fsync, as in the daemon), enrols users with an
//! app secret in steps (100, 1 000, 10 000, 100 000; `LOGIN_PATH_MAX_USERS`
//! lowers the top), and after each step runs logins through the daemon's
//! own login rules (`Logins::begin`, then `Logins::answer` with the right
//! code): 100 users spread over the table, one login at a time, then the
//! same number 16 at a time. It prints the medians of `begin` (what the
//! login is about to ask: one read) and `answer` (the code checked and used
//! up: one durable write), and logins/s at 16.
//!
//! What it leaves out on purpose: the name service (a table in memory
//! stands in for getpwnam/getpwuid: a directory's cost is its own) and
//! the bus (bench/run measures the whole login). A fresh 30-second step
//! per round comes from a clock the benchmark moves, so no run waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use twofactor_proto::Action;
use twofactord::adapters::nss::{LookupError, Users};
use twofactord::adapters::pam_reauth::{Reauth, ReauthError};
use twofactord::adapters::syslog::Audit;
use twofactord::api::login::Logins;
use twofactord::clock::Clock;
use twofactord::config::Config;
use twofactord::origin::Origin;
use twofactord::random::OsRandom;
use twofactord::rules::bookkeeping;
use twofactord::rules::totp::{self, Secret};
use twofactord::services::{Caller, Handles, Outside};
use twofactord::store::{Mode, Store};

const SIZES: [usize; 4] = [100, 1_000, 10_000, 100_000];
const LOGINS_PER_ROUND: usize = 100;
const ROUNDS: usize = 3;
const AT_ONCE: usize = 16;

/// The users, in memory: what getpwnam/getpwuid would say.
struct Table {
    uid_by_name: HashMap<String, u32>,
    name_by_uid: HashMap<u32, String>,
}

impl Users for Table {
    fn name_of(&self, uid: u32) -> Option<String> {
        self.name_by_uid.get(&uid).cloned()
    }
    fn uid_of(&self, name: &str) -> Option<u32> {
        self.uid_by_name.get(name).copied()
    }
    fn groups_of(&self, name: &str) -> Result<Vec<String>, LookupError> {
        Ok(vec![name.to_string()])
    }
    fn home_of(&self, _name: &str) -> Option<std::path::PathBuf> {
        None
    }
    fn human_users(&self) -> Vec<(String, u32)> {
        Vec::new()
    }
}

struct NoPasswords;

impl Reauth for NoPasswords {
    fn check(&self, _user: &str, _password: &[u8]) -> Result<bool, ReauthError> {
        Ok(false)
    }
}

/// A clock the benchmark moves by whole steps.
struct StepClock(AtomicI64);

impl Clock for StepClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

fn name(i: usize) -> String {
    format!("user{i:06}")
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort_unstable();
    v.get(v.len() / 2)
        .map_or(0.0, |d| d.as_secs_f64() * 1_000_000.0)
}

/// One login: begin, then the right code. Panics if it is not accepted
/// (a benchmark of refusals would measure nothing useful).
async fn login(
    logins: &Logins,
    clock: &StepClock,
    user: &str,
    secret: &Secret,
) -> (Duration, Duration) {
    let caller = Caller {
        uid: 0,
        connection: ":1.0".into(),
        invoker: None,
        on_host: None,
    };
    let origin = Origin {
        user: user.to_string(),
        service: "bench".into(),
        rhost: String::new(),
        tty: String::new(),
        ssh_auth_info: String::new(),
        security_keys: false,
        commit_report: false,
        forwarded: None,
    };
    let t0 = Instant::now();
    let (id, _) = logins.begin(&caller, origin).await.expect("begin");
    let t1 = Instant::now();
    let code = secret.code_at(clock.now(), totp::DIGITS);
    let step = logins
        .answer(&caller, &id, code.into_bytes())
        .await
        .expect("answer");
    let t2 = Instant::now();
    assert_eq!(step.action, Action::Accept, "the right code was refused");
    (t1 - t0, t2 - t1)
}

fn main() {
    let max: usize = std::env::var("LOGIN_PATH_MAX_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
        });
    let dir = base.join(format!("bench-login-path-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys = Arc::new(twofactord::adapters::sealing::Keys::generate().expect("key"));
    let store = Store::open(&dir, keys, Mode::Create).expect("open store");
    let sizes: Vec<usize> = SIZES.iter().copied().filter(|&n| n <= max).collect();
    let top = sizes.last().copied().unwrap_or(0);
    let table = Table {
        uid_by_name: (0..top).map(|i| (name(i), 10_000 + i as u32)).collect(),
        name_by_uid: (0..top).map(|i| (10_000 + i as u32, name(i))).collect(),
    };
    let clock = Arc::new(StepClock(AtomicI64::new(1_800_000_000)));
    let handles = Handles::new(
        Config::default(),
        store.clone(),
        Outside {
            clock: clock.clone(),
            rng: Arc::new(OsRandom),
            users: Arc::new(table),
            reauth: Arc::new(NoPasswords),
            mailer: Arc::new(twofactord::adapters::smtp::Disabled),
            audit: Arc::new(Audit::new(false, false)),
        },
    );
    let logins = Arc::new(Logins::new(&handles));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let mut secrets: Vec<Arc<Secret>> = Vec::new();
    println!(
        "{:>8} {:>16} {:>17} {:>16} {:>18}",
        "users", "begin p50 (µs)", "answer p50 (µs)", "login p50 (µs)", "logins/s at 16"
    );
    for size in sizes {
        // Enrol users up to `size`, 5 000 per transaction.
        while secrets.len() < size {
            let from = secrets.len();
            let to = size.min(from + 5_000);
            let batch: Vec<(String, Vec<u8>)> = (from..to)
                .map(|i| {
                    let s = Secret::generate(&OsRandom).expect("secret");
                    (name(i), s.bytes().to_vec())
                })
                .collect();
            secrets.extend(
                batch
                    .iter()
                    .map(|(_, b)| Arc::new(Secret::from_bytes(b.clone()))),
            );
            let now = clock.now();
            rt.block_on(store.run(move |c| {
                for (user, bytes) in &batch {
                    bookkeeping::ensure(c, user, now)?;
                    totp::activate(c, user, &Secret::from_bytes(bytes.clone()), 0, now)?;
                }
                Ok(())
            }))
            .expect("enrol");
        }
        let picked: Vec<usize> = (0..LOGINS_PER_ROUND.min(size))
            .map(|k| k * size / LOGINS_PER_ROUND.min(size))
            .collect();
        let (mut begins, mut answers, mut whole, mut rates) = (vec![], vec![], vec![], vec![]);
        for _ in 0..ROUNDS {
            // One at a time, on a fresh step.
            clock.0.fetch_add(totp::STEP_SECONDS, Ordering::SeqCst);
            for &i in &picked {
                let (b, a) = rt.block_on(login(&logins, &clock, &name(i), &secrets[i]));
                begins.push(b);
                answers.push(a);
                whole.push(b + a);
            }
            // 16 at a time, on the next step.
            clock.0.fetch_add(totp::STEP_SECONDS, Ordering::SeqCst);
            let started = Instant::now();
            rt.block_on(async {
                let sem = Arc::new(tokio::sync::Semaphore::new(AT_ONCE));
                let mut handles = Vec::new();
                for &i in &picked {
                    let permit = sem.clone().acquire_owned().await.expect("semaphore");
                    let (logins, clock, secret) =
                        (logins.clone(), clock.clone(), secrets[i].clone());
                    handles.push(tokio::spawn(async move {
                        login(&logins, &clock, &name(i), &secret).await;
                        drop(permit);
                    }));
                }
                for h in handles {
                    h.await.expect("login task");
                }
            });
            rates.push(picked.len() as f64 / started.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "{:>8} {:>16.0} {:>17.0} {:>16.0} {:>18.0}",
            size,
            median(begins),
            median(answers),
            median(whole),
            rates[rates.len() / 2]
        );
    }
    drop(logins);
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Durable writes with and without sharing commits.
//!
//! `cargo bench -p twofactord --bench group_commit` writes to a database in
//! a temporary directory on the same file system as the target directory
//! (synchronous=FULL: every commit is an fsync), and prints, for each
//! concurrency level, jobs per second and jobs per commit. Each job is what
//! a failed login writes: the attempt counted (`ratelimit::attempt`, with
//! a check that finds nothing).

use std::sync::Arc;
use std::time::Instant;
use twofactord::config::LimitsConfig;
use twofactord::rules::{bookkeeping, ratelimit};
use twofactord::store::Store;

fn main() {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target"))
        });
    let dir = base.join(format!("bench-group-commit-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let keys = std::sync::Arc::new(twofactord::adapters::sealing::Keys::generate().expect("key"));
    let store = Store::open(&dir, keys, twofactord::store::Mode::Create).expect("open store");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let limits = LimitsConfig {
        max_failures: 100,
        lockout_seconds: 1,
        max_lockout_seconds: 1,
        account_max_failures: 100,
    };
    rt.block_on(async {
        store
            .run(|c| {
                for i in 0..1000 {
                    bookkeeping::ensure(c, &format!("user{i}"), 0)?;
                }
                Ok(())
            })
            .await
            .expect("seed");
    });
    println!(
        "{:>12} {:>8} {:>10} {:>12} {:>12}",
        "in flight", "jobs", "seconds", "jobs/s", "jobs/commit"
    );
    for in_flight in [1usize, 8, 64, 256] {
        let jobs = if in_flight == 1 { 300 } else { 3000 };
        let store = Arc::new(store.clone());
        let commits_before = store.commits();
        let start = Instant::now();
        rt.block_on(async {
            let sem = Arc::new(tokio::sync::Semaphore::new(in_flight));
            let mut handles = Vec::with_capacity(jobs);
            for i in 0..jobs {
                let permit = sem.clone().acquire_owned().await.expect("semaphore");
                let store = store.clone();
                let limits = limits.clone();
                handles.push(tokio::spawn(async move {
                    let user = format!("user{}", i % 1000);
                    let r = store
                        .run(move |c| {
                            let origin = (user.as_str(), "bench");
                            ratelimit::attempt(c, origin, 0, &limits, |_| Ok(()), |_| false)
                                .map(|_| ())
                        })
                        .await;
                    drop(permit);
                    r
                }));
            }
            for h in handles {
                h.await.expect("join").expect("job");
            }
        });
        let secs = start.elapsed().as_secs_f64();
        let commits = store.commits() - commits_before;
        println!(
            "{:>12} {:>8} {:>10.3} {:>12.0} {:>12.1}",
            in_flight,
            jobs,
            secs,
            jobs as f64 / secs,
            jobs as f64 / commits.max(1) as f64
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

//! Work that may block (a name-service look-up, a read of the store, a
//! commit's fsync), run from an async task without stalling the runtime's
//! other tasks.
//!
//! On the daemon's multi-thread runtime the work runs on the task's own
//! thread (`tokio::task::block_in_place`): the worker hands its other tasks
//! to another thread first, and the task goes on when the work ends, with
//! no hand-off to a blocking thread and back, which costs a login two
//! wake-ups of a sleeping thread (about 50 µs on a 2-CPU machine,
//! docs/performance.md). On a current-thread runtime (unit tests, the
//! one-shot commands), where a task may not block, the work goes to the
//! blocking pool as `spawn_blocking` sends it.

use tokio::runtime::{Handle, RuntimeFlavor};

/// `f`'s result, or the panic that ended it (as `spawn_blocking` gives).
pub async fn run<T, F>(f: F) -> Result<T, Unfinished>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let on_workers = Handle::try_current()
        .is_ok_and(|handle| handle.runtime_flavor() == RuntimeFlavor::MultiThread);
    if on_workers {
        return std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            tokio::task::block_in_place(f)
        }))
        .map_err(|_| Unfinished("the work panicked".into()));
    }
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Unfinished(e.to_string()))
}

/// Blocking work that did not finish (it panicked, or its runtime shut
/// down).
#[derive(Debug)]
pub struct Unfinished(String);

impl std::fmt::Display for Unfinished {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "blocking work did not finish: {}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_on_either_runtime_and_reports_a_panic() {
        for multi in [false, true] {
            let rt = if multi {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread().build()
            }
            .unwrap();
            let (value, panicked) = rt.block_on(async {
                tokio::spawn(async {
                    let value = run(|| 7).await.unwrap();
                    let panicked = run(|| -> u8 { panic!("no") }).await;
                    (value, panicked.is_err())
                })
                .await
                .unwrap()
            });
            assert_eq!((value, panicked), (7, true), "multi-thread: {multi}");
        }
    }
}

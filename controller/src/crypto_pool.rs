//! Where CPU-heavy request and reconcile work runs: decrypting, re-wrapping
//! and parsing large bodies. Off the async workers (on tokio's blocking
//! threads), at most a few at once, so the workers that answer `/healthz`
//! and `/readyz` and drive the watches are never busy with crypto, and a
//! flood of expensive requests queues instead of taking every core.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Why work handed to the pool did not finish.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PoolError {
    /// The work panicked (a bug); the panic was logged by tokio.
    #[error("the work panicked")]
    Panicked,
    /// The pool was closed (never, in practice).
    #[error("the crypto pool is closed")]
    Closed,
}

/// Runs closures on blocking threads, at most `concurrency` at once.
#[derive(Clone, Debug)]
pub(crate) struct CryptoPool {
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl CryptoPool {
    /// A pool running at most `concurrency` (at least 1) closures at once.
    pub(crate) fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// One closure at a time per CPU this process may use (cgroup quota
    /// included, see [`std::thread::available_parallelism`]).
    pub(crate) fn per_cpu() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// How many closures run at most at once.
    pub(crate) fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Runs `work` on a blocking thread once a slot is free (waiting for
    /// one, in arrival order) and returns its result.
    pub(crate) async fn run<F, R>(&self, work: F) -> Result<R, PoolError>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| PoolError::Closed)?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|_| PoolError::Panicked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Condvar, Mutex};
    use std::time::{Duration, Instant};

    /// Generous bound on every wait here: only a broken pool reaches it.
    const LIMIT: Duration = Duration::from_secs(30);

    /// Holds work until the test opens it, or until `LIMIT` after it was
    /// made.
    struct Gate {
        open: Mutex<bool>,
        opened: Condvar,
        deadline: Instant,
    }

    impl Gate {
        fn new() -> Self {
            Self {
                open: Mutex::new(false),
                opened: Condvar::new(),
                deadline: Instant::now() + LIMIT,
            }
        }

        /// Whether the gate was opened (false: the deadline passed first).
        fn wait(&self) -> bool {
            let open = self.open.lock().unwrap();
            let left = self.deadline.saturating_duration_since(Instant::now());
            let (open, _) = self
                .opened
                .wait_timeout_while(open, left, |open| !*open)
                .unwrap();
            *open
        }

        fn open(&self) {
            *self.open.lock().unwrap() = true;
            self.opened.notify_all();
        }
    }

    /// Work in the pool never runs more than `concurrency` at once, and the
    /// async worker stays free meanwhile: on a single-threaded runtime,
    /// this test sees two closures blocked at once and then releases them
    /// (work run inline would block its only thread until the gate timed
    /// out).
    #[tokio::test(flavor = "current_thread")]
    async fn bounds_concurrency_and_keeps_the_runtime_free() {
        let pool = CryptoPool::new(2);
        let gate = Arc::new(Gate::new());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                let gate = gate.clone();
                let running = running.clone();
                let most = most.clone();
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        let released = gate.wait();
                        running.fetch_sub(1, Ordering::SeqCst);
                        released
                    })
                    .await
                })
            })
            .collect();
        while running.load(Ordering::SeqCst) < 2 {
            assert!(
                Instant::now() < gate.deadline,
                "two closures never ran at once"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Gives a pool without a bound time to start a third; a correct
        // one passes whatever this takes.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(running.load(Ordering::SeqCst), 2);
        gate.open();
        for job in jobs {
            assert!(job.await.unwrap().unwrap(), "the work blocked the runtime");
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(matches!(
            pool.run(|| panic!("boom")).await,
            Err(PoolError::Panicked)
        ));
    }
}

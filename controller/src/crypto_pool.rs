//! Where CPU-heavy request and reconcile work runs: decrypting, re-wrapping
//! and parsing large bodies. Off the async workers (on tokio's blocking
//! threads), at most a few at once, so the workers that answer `/healthz`
//! and `/readyz` and drive the watches are never busy with crypto, and a
//! flood of expensive requests queues instead of taking every core.

use std::sync::Arc;

use tokio::sync::Semaphore;

/// Why work handed to the pool did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    /// The work panicked (a bug); the panic was logged by tokio.
    #[error("the work panicked")]
    Panicked,
    /// The pool was closed (never, in practice).
    #[error("the crypto pool is closed")]
    Closed,
}

/// Runs closures on blocking threads, at most `concurrency` at once.
#[derive(Clone, Debug)]
pub struct CryptoPool {
    permits: Arc<Semaphore>,
    concurrency: usize,
}

impl CryptoPool {
    /// A pool running at most `concurrency` (at least 1) closures at once.
    pub fn new(concurrency: usize) -> Self {
        let concurrency = concurrency.max(1);
        Self {
            permits: Arc::new(Semaphore::new(concurrency)),
            concurrency,
        }
    }

    /// One closure at a time per CPU this process may use (cgroup quota
    /// included, see [`std::thread::available_parallelism`]).
    pub fn per_cpu() -> Self {
        Self::new(std::thread::available_parallelism().map_or(1, usize::from))
    }

    /// How many closures run at most at once.
    pub fn concurrency(&self) -> usize {
        self.concurrency
    }

    /// Runs `work` on a blocking thread once a slot is free (waiting for
    /// one, in arrival order) and returns its result.
    pub async fn run<F, R>(&self, work: F) -> Result<R, PoolError>
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
    use std::time::{Duration, Instant};

    /// CPU-bound work in the pool never runs more than `concurrency` at
    /// once, and the async worker stays free meanwhile (a timer on the same
    /// single-threaded runtime fires on time).
    #[tokio::test(flavor = "current_thread")]
    async fn bounds_concurrency_and_keeps_the_runtime_free() {
        let pool = CryptoPool::new(2);
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let jobs: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                let running = running.clone();
                let most = most.clone();
                tokio::spawn(async move {
                    pool.run(move || {
                        let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        std::thread::sleep(Duration::from_millis(50));
                        running.fetch_sub(1, Ordering::SeqCst);
                    })
                    .await
                })
            })
            .collect();
        // Inline, these 8 × 50 ms sleeps would block this only thread.
        let started = Instant::now();
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert!(started.elapsed() < Duration::from_millis(45));
        for job in jobs {
            job.await.unwrap().unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 2);
        assert!(matches!(
            pool.run(|| panic!("boom")).await,
            Err(PoolError::Panicked)
        ));
    }
}

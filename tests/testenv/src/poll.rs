//! Polling until something holds: the one wait loop of the tests, the
//! demo and the benchmarks.
//!
//! ```no_run
//! # async fn demo(client: &kube::Client) -> Result<(), kseal_testenv::poll::TimedOut> {
//! use std::time::Duration;
//! use kseal_testenv::poll;
//! poll::wait_for("the CRD to be established", Duration::from_secs(60), || {
//!     kseal_testenv::crd_established(client, "sealedsecrets.kseal.dev")
//! })
//! .await?;
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::{Duration, Instant};

/// How often [`wait_for`] checks.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(50);

/// What was awaited, and for how long, when it did not happen in time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimedOut {
    /// What the caller was waiting for ("controller /readyz").
    pub what: String,
    /// The time allowed.
    pub timeout: Duration,
}

impl std::fmt::Display for TimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "timed out waiting for {} (after {:.1}s)",
            self.what,
            self.timeout.as_secs_f64()
        )
    }
}

impl std::error::Error for TimedOut {}

/// How long to wait and how often to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// Give up after this long.
    pub timeout: Duration,
    /// Pause between checks.
    pub interval: Duration,
}

impl Poll {
    /// Waits up to `timeout`, checking every [`DEFAULT_INTERVAL`].
    pub const fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            interval: DEFAULT_INTERVAL,
        }
    }

    /// The same, checking every `interval`.
    pub const fn every(self, interval: Duration) -> Self {
        Self { interval, ..self }
    }

    /// Runs `check` until it returns true; the time that took. Checks once
    /// more after the deadline before giving up, so a slow check never
    /// loses to the clock.
    ///
    /// Errors with [`TimedOut`] naming `what` when `check` never held.
    pub async fn until<F, Fut>(self, what: &str, mut check: F) -> Result<Duration, TimedOut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        let started = Instant::now();
        while !check().await {
            if started.elapsed() > self.timeout {
                return Err(TimedOut {
                    what: what.to_owned(),
                    timeout: self.timeout,
                });
            }
            tokio::time::sleep(self.interval).await;
        }
        Ok(started.elapsed())
    }
}

/// [`Poll::until`] with [`DEFAULT_INTERVAL`]: waits up to `timeout` for
/// `check` to hold; the time that took, or [`TimedOut`] naming `what`.
pub async fn wait_for<F, Fut>(what: &str, timeout: Duration, check: F) -> Result<Duration, TimedOut>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    Poll::new(timeout).until(what, check).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_once_the_check_holds() {
        let mut calls = 0;
        let waited = Poll::new(Duration::from_secs(10))
            .every(Duration::from_millis(1))
            .until("the third call", || {
                calls += 1;
                let done = calls == 3;
                async move { done }
            })
            .await
            .unwrap();
        assert_eq!(calls, 3);
        assert!(waited < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn the_timeout_names_what_was_awaited() {
        let err = wait_for("nothing", Duration::from_millis(30), || async { false })
            .await
            .unwrap_err();
        assert_eq!(err.what, "nothing");
        assert_eq!(
            err.to_string(),
            "timed out waiting for nothing (after 0.0s)"
        );
        // Usable with anyhow's `?`.
        let err: anyhow::Error = err.into();
        assert!(err.to_string().contains("nothing"));
    }
}

//! The Kubernetes client, with a client-side request rate limit (QPS and
//! burst, as client-go has), so thousands of reconciles do not flood the API
//! server.

use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use kube::client::ClientBuilder;
use kube::{Client, Config};
use tower::{Layer, Service};

/// A token bucket: `qps` tokens per second, at most `burst` saved up.
/// Waiters reserve tokens in arrival order by driving the count negative.
pub(crate) struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub(crate) fn new(qps: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        Self {
            qps,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    /// How long the caller must wait for its token (the token is taken).
    fn reserve(&self) -> Duration {
        self.reserve_at(Instant::now())
    }

    /// [`Self::reserve`] at `now` (tests pass the time in).
    fn reserve_at(&self, now: Instant) -> Duration {
        let Ok(mut state) = self.state.lock() else {
            return Duration::ZERO;
        };
        let (tokens, last) = &mut *state;
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.qps).min(self.burst);
        *last = now;
        *tokens -= 1.0;
        if *tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-*tokens / self.qps)
        }
    }
}

#[derive(Clone)]
pub(crate) struct RateLimitLayer(Option<Arc<TokenBucket>>);

impl RateLimitLayer {
    /// `qps <= 0` disables the limit.
    pub(crate) fn new(qps: f64, burst: u32) -> Self {
        Self((qps > 0.0).then(|| Arc::new(TokenBucket::new(qps, burst))))
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub(crate) struct RateLimited<S> {
    inner: S,
    bucket: Option<Arc<TokenBucket>>,
}

impl<S, R> Service<R> for RateLimited<S>
where
    S: Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        let wait = self
            .bucket
            .as_ref()
            .map(|b| b.reserve())
            .unwrap_or_default();
        // The inner future is lazy: the request is sent when it is polled,
        // after the wait.
        let response = self.inner.call(request);
        Box::pin(async move {
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
            response.await
        })
    }
}

/// A client for `config` limited to `qps` requests per second.
pub fn build(config: Config, qps: f64, burst: u32) -> Result<Client, kube::Error> {
    let builder = ClientBuilder::try_from(config)?;
    Ok(builder.with_layer(&RateLimitLayer::new(qps, burst)).build())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every call at one instant (taken after the bucket is made, which
    /// leaves it full): no refill between calls, however slow the machine.
    #[test]
    fn bucket_allows_burst_then_paces() {
        let bucket = TokenBucket::new(10.0, 3);
        let now = Instant::now();
        for _ in 0..3 {
            assert_eq!(bucket.reserve_at(now), Duration::ZERO);
        }
        let wait = bucket.reserve_at(now);
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(100),
            "{wait:?}"
        );
        let next = bucket.reserve_at(now);
        assert!(
            next > wait,
            "later callers wait longer: {next:?} vs {wait:?}"
        );
    }
}

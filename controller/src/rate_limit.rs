//! Token buckets for the decrypting endpoints: one counts requests, one
//! counts work (X25519 operations), so a request with many values costs
//! what it makes the controller do.

use std::sync::Mutex;
use std::time::Instant;

/// A token bucket shared by all clients. Refills at `rate` tokens a second
/// up to `burst`.
pub(crate) struct RateLimiter {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// `per_second` tokens a second (at least 1), with a burst of as many.
    pub(crate) fn new(per_second: u32) -> Self {
        let rate = f64::from(per_second.max(1));
        Self {
            rate,
            burst: rate,
            state: Mutex::new((rate, Instant::now())),
        }
    }

    /// Takes one token.
    pub(crate) fn try_acquire(&self) -> bool {
        self.try_charge(1)
    }

    /// Takes `cost` tokens if there are that many. A cost above the burst
    /// is let through with a full bucket, which it leaves in debt: the
    /// bucket then refills for `cost / rate` seconds before anything else
    /// passes, so over any period at most `rate × seconds + burst + one
    /// request` tokens are spent, whatever the mix of requests.
    pub(crate) fn try_charge(&self, cost: u64) -> bool {
        self.try_charge_at(cost, Instant::now())
    }

    /// [`Self::try_charge`] at `now` (tests pass the time in).
    fn try_charge_at(&self, cost: u64, now: Instant) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        let (tokens, last) = &mut *state;
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        let cost = cost as f64;
        if *tokens >= cost.min(self.burst) {
            *tokens -= cost;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Every call at one instant (taken after the bucket is made, which
    /// leaves it full): no refill between calls, however slow the machine.
    #[test]
    fn charges_work_and_carries_debt() {
        let bucket = RateLimiter::new(100);
        let now = Instant::now();
        // 100 one-token requests pass, the 101st does not.
        assert!((0..100).all(|_| bucket.try_charge_at(1, now)));
        assert!(!bucket.try_charge_at(1, now));

        let bucket = RateLimiter::new(100);
        let now = Instant::now();
        assert!(bucket.try_charge_at(60, now));
        assert!(!bucket.try_charge_at(60, now), "only 40 left");
        assert!(bucket.try_charge_at(40, now));

        // A request above the burst passes only with a full bucket and
        // leaves it in debt: nothing passes until it is paid off (150
        // tokens at 100 a second).
        let bucket = RateLimiter::new(100);
        let now = Instant::now();
        assert!(bucket.try_charge_at(250, now));
        assert!(!bucket.try_charge_at(1, now));
        assert!(!bucket.try_charge_at(250, now));
        assert!(!bucket.try_charge_at(1, now + Duration::from_millis(1400)));
        assert!(bucket.try_charge_at(1, now + Duration::from_millis(1600)));
    }

    #[test]
    fn try_acquire_passes_with_a_full_bucket() {
        assert!(RateLimiter::new(1).try_acquire());
    }
}

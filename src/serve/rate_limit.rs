//! exporter-toolkit's `rate_limit`: a token bucket over all requests.

use std::sync::Mutex;
use std::time::Instant;

use crate::config::RateLimit;

/// A token bucket holding at most `burst` tokens, refilled by one every `interval`.
#[derive(Debug)]
pub struct RateLimiter {
    limit: RateLimit,
    /// Tokens left and when they were counted.
    bucket: Mutex<(f64, Instant)>,
}

impl RateLimiter {
    /// A full bucket.
    pub fn new(limit: RateLimit) -> Self {
        RateLimiter {
            limit,
            bucket: Mutex::new((f64::from(limit.burst), Instant::now())),
        }
    }

    /// Takes a token if one is left.
    pub fn try_acquire(&self) -> bool {
        self.try_acquire_at(Instant::now())
    }

    fn try_acquire_at(&self, now: Instant) -> bool {
        let mut bucket = self
            .bucket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let (tokens, counted) = *bucket;
        let refill = now.saturating_duration_since(counted).as_secs_f64()
            / self.limit.interval.as_secs_f64();
        let tokens = (tokens + refill).min(f64::from(self.limit.burst));
        if tokens >= 1.0 {
            *bucket = (tokens - 1.0, now);
            true
        } else {
            *bucket = (tokens, now);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn allows_a_burst_then_one_per_interval() {
        let limiter = RateLimiter::new(RateLimit {
            interval: Duration::from_secs(1),
            burst: 2,
        });
        let start = Instant::now();
        assert!(limiter.try_acquire_at(start));
        assert!(limiter.try_acquire_at(start));
        assert!(!limiter.try_acquire_at(start));
        assert!(!limiter.try_acquire_at(start + Duration::from_millis(500)));
        assert!(limiter.try_acquire_at(start + Duration::from_millis(1000)));
        assert!(!limiter.try_acquire_at(start + Duration::from_millis(1100)));
        // A long pause refills up to the burst, no more.
        let later = start + Duration::from_secs(60);
        assert!(limiter.try_acquire_at(later));
        assert!(limiter.try_acquire_at(later));
        assert!(!limiter.try_acquire_at(later));
    }
}

//! Token buckets for `rate_limit`: each holds up to `burst` requests and refills at
//! `requests_per_second`. Pure: time is passed in.

use std::time::{Duration, Instant};

/// The config's `rate_limit`: how many requests a client may send per second, and how
/// many at once after a pause.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimit {
    /// Requests per second, sustained; greater than 0.
    pub per_second: f64,
    /// Requests allowed in a burst; at least 1.
    pub burst: u32,
}

/// One client's bucket.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    limit: RateLimit,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket for `limit` at `now`.
    pub fn new(limit: RateLimit, now: Instant) -> TokenBucket {
        TokenBucket {
            limit,
            tokens: f64::from(limit.burst),
            last: now,
        }
    }

    /// Takes one request's token at `now`; `Err` gives how long until one is there.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now.max(self.last);
        let burst = f64::from(self.limit.burst);
        self.tokens = (self.tokens + elapsed * self.limit.per_second).min(burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / self.limit.per_second;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::from_secs(3600)))
    }

    /// The limit this bucket enforces.
    pub fn limit(&self) -> RateLimit {
        self.limit
    }
}

impl RateLimit {
    /// The sentence a refused request gets, with the wait.
    pub fn refusal(&self, wait: Duration) -> String {
        format!(
            "rate limit exceeded: at most {} requests per second (bursts of {}); retry in {} ms",
            self.per_second,
            self.burst,
            wait.as_millis().max(1)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_requests_wait_for_the_refill() {
        let t0 = Instant::now();
        let limit = RateLimit {
            per_second: 2.0,
            burst: 3,
        };
        let mut b = TokenBucket::new(limit, t0);
        for _ in 0..3 {
            assert_eq!(b.take(t0), Ok(()));
        }
        let wait = b.take(t0).expect_err("the burst is spent");
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(t0 + Duration::from_millis(499)).is_err());
        assert_eq!(b.take(t0 + Duration::from_millis(500)), Ok(()));
        // A long pause refills to the burst, not beyond.
        let later = t0 + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(b.take(later), Ok(()));
        }
        assert!(b.take(later).is_err());
        assert!(limit.refusal(wait).contains("retry in 500 ms"));
    }
}

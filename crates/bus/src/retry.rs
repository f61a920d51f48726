//! How long to wait before the next attempt of a failed message.

use std::time::Duration;

/// Exponential backoff with jitter, bounded by a number of attempts.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in total, the first included; after the last failure the message is
    /// dead-lettered.
    pub max_attempts: u32,
    /// Delay after the first failure.
    pub initial_delay: Duration,
    /// Upper bound on any delay.
    pub max_delay: Duration,
    /// Fraction (0..=1) of each delay that is randomised, so that messages failing together
    /// (a database restart) do not come back together.
    pub jitter: f64,
}

impl Default for RetryPolicy {
    /// Five attempts, 100 ms doubling up to 30 s, 20 % jitter.
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(30),
            jitter: 0.2,
        }
    }
}

impl RetryPolicy {
    /// True if a message that has now failed `attempts` times gets another try.
    pub fn allows_another(&self, attempts: u32) -> bool {
        attempts < self.max_attempts
    }

    /// The wait before attempt `attempts + 1`, after `attempts` failures (≥ 1).
    pub fn delay_after(&self, attempts: u32) -> Duration {
        let exponent = attempts.saturating_sub(1).min(30);
        let base = self
            .initial_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let jitter = self.jitter.clamp(0.0, 1.0);
        let factor = 1.0 - jitter + 2.0 * jitter * fastrand::f64();
        base.mul_f64(factor).min(self.max_delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_until_the_cap() {
        let policy = RetryPolicy {
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.delay_after(1), Duration::from_millis(100));
        assert_eq!(policy.delay_after(2), Duration::from_millis(200));
        assert_eq!(policy.delay_after(4), Duration::from_millis(800));
        assert_eq!(policy.delay_after(40), Duration::from_secs(30));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let policy = RetryPolicy::default();
        for _ in 0..1000 {
            let delay = policy.delay_after(3);
            assert!(delay >= Duration::from_millis(320) && delay <= Duration::from_millis(480));
        }
    }

    #[test]
    fn the_last_attempt_allows_no_other() {
        let policy = RetryPolicy::default();
        assert!(policy.allows_another(4));
        assert!(!policy.allows_another(5));
    }
}

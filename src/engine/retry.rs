//! Retry policy: whether another attempt follows and how long to wait for it.

use std::time::Duration;

use crate::model::AttemptOutcome;
use crate::spec::{Backoff, RetryPolicy};

/// Whether a task that just ended with `outcome`, having used `attempts_used` attempts (this one
/// included), gets another. Cancellation is the operator's word and is never retried.
pub fn should_retry(policy: &RetryPolicy, outcome: AttemptOutcome, attempts_used: u32) -> bool {
    !matches!(
        outcome,
        AttemptOutcome::Cancelled | AttemptOutcome::Succeeded
    ) && attempts_used < policy.attempts
}

/// Delay before attempt `failed + 1`, after `failed` failures (>= 1). `rand01` in [0, 1) makes
/// jitter testable; with jitter the delay is drawn from [d/2, d) ("equal jitter"), so retries of
/// many tasks spread out but never come sooner than half the nominal delay.
pub fn backoff_delay(policy: &RetryPolicy, failed: u32, rand01: f64) -> Duration {
    let base = match policy.backoff {
        Backoff::Fixed => policy.delay,
        Backoff::Exponential => {
            let factor = 2u32.saturating_pow(failed.saturating_sub(1).min(30));
            policy.delay.saturating_mul(factor)
        }
    };
    let capped = base.min(policy.max_delay.max(policy.delay));
    if policy.jitter {
        let half = capped / 2;
        half + half.mul_f64(rand01.clamp(0.0, 1.0))
    } else {
        capped
    }
}

/// The wait before a retry when the failed attempt was told when to come back (HTTP
/// `Retry-After`): never sooner than asked, but never past the policy's `max_delay`.
pub fn honour_retry_after(
    policy: &RetryPolicy,
    backoff: Duration,
    asked: Option<Duration>,
) -> Duration {
    match asked {
        Some(a) => backoff.max(a.min(policy.max_delay.max(policy.delay))),
        None => backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, jitter: bool) -> RetryPolicy {
        RetryPolicy {
            attempts: 4,
            backoff,
            delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(10),
            jitter,
        }
    }

    #[test]
    fn fixed_backoff_is_constant() {
        let p = policy(Backoff::Fixed, false);
        for n in 1..5 {
            assert_eq!(backoff_delay(&p, n, 0.7), Duration::from_secs(2));
        }
    }

    #[test]
    fn exponential_backoff_doubles_up_to_the_cap() {
        let p = policy(Backoff::Exponential, false);
        let got: Vec<u64> = (1..6)
            .map(|n| backoff_delay(&p, n, 0.0).as_secs())
            .collect();
        assert_eq!(got, vec![2, 4, 8, 10, 10]);
        // Huge attempt counts do not overflow.
        assert_eq!(backoff_delay(&p, 1000, 0.0), Duration::from_secs(10));
    }

    #[test]
    fn jitter_stays_within_half_to_full() {
        let p = policy(Backoff::Exponential, true);
        assert_eq!(backoff_delay(&p, 3, 0.0), Duration::from_secs(4));
        assert!(backoff_delay(&p, 3, 0.999) < Duration::from_secs(8));
        assert!(backoff_delay(&p, 3, 0.999) > Duration::from_millis(7900));
    }

    #[test]
    fn retries_until_the_budget_is_spent_but_never_after_cancel() {
        let p = policy(Backoff::Fixed, false);
        assert!(should_retry(&p, AttemptOutcome::Failed, 1));
        assert!(should_retry(&p, AttemptOutcome::TimedOut, 3));
        assert!(!should_retry(&p, AttemptOutcome::Failed, 4));
        assert!(!should_retry(&p, AttemptOutcome::Cancelled, 1));
    }

    #[test]
    fn retry_after_lengthens_the_wait_up_to_the_cap() {
        let p = policy(Backoff::Fixed, false);
        let two = Duration::from_secs(2);
        assert_eq!(honour_retry_after(&p, two, None), two);
        assert_eq!(
            honour_retry_after(&p, two, Some(Duration::from_secs(1))),
            two
        );
        assert_eq!(
            honour_retry_after(&p, two, Some(Duration::from_secs(5))),
            Duration::from_secs(5)
        );
        assert_eq!(
            honour_retry_after(&p, two, Some(Duration::from_secs(600))),
            Duration::from_secs(10)
        );
    }
}

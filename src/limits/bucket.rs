//! The in-process counters: token buckets refilled continuously (`limit` per minute, burst
//! `limit`), checked and drawn from all together or not at all, and budget ledgers per period.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Denied, Draw};

#[derive(Debug)]
struct Bucket {
    level: f64,
    limit: f64,
    updated: Instant,
}

impl Bucket {
    fn refill(&mut self, limit: f64, now: Instant) {
        if limit != self.limit {
            self.level = self.level.min(limit);
            self.limit = limit;
        }
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.level = (self.level + elapsed * limit / 60.0).min(limit);
        self.updated = now;
    }
}

pub struct Buckets {
    // A full bucket and a missing one are the same: idle buckets are dropped after two minutes.
    buckets: moka::sync::Cache<String, Arc<Mutex<Bucket>>>,
}

impl Buckets {
    pub fn new() -> Self {
        Self { buckets: moka::sync::Cache::builder().time_to_idle(Duration::from_secs(120)).build() }
    }

    fn bucket(&self, draw: &Draw) -> Arc<Mutex<Bucket>> {
        self.buckets.get_with_by_ref(&draw.bucket, || {
            Arc::new(Mutex::new(Bucket { level: draw.limit as f64, limit: draw.limit as f64, updated: Instant::now() }))
        })
    }

    /// Takes every draw, or none: the levels left after it, or which draw failed and when it would
    /// pass. Buckets are locked in name order, so concurrent calls cannot deadlock.
    pub fn take(&self, draws: &[Draw]) -> Result<Vec<i64>, Denied> {
        let mut order: Vec<usize> = (0..draws.len()).collect();
        order.sort_by(|&a, &b| draws[a].bucket.cmp(&draws[b].bucket));
        let buckets: Vec<_> = order.iter().map(|&i| self.bucket(&draws[i])).collect();
        let mut guards: Vec<_> = buckets.iter().map(|b| b.lock().unwrap_or_else(|e| e.into_inner())).collect();
        let now = Instant::now();
        for (guard, &i) in guards.iter_mut().zip(&order) {
            let draw = &draws[i];
            guard.refill(draw.limit as f64, now);
            if draw.amount as f64 > guard.level {
                return Err(Denied::new(i, draw, guard.level));
            }
        }
        let mut left = vec![0; draws.len()];
        for (guard, &i) in guards.iter_mut().zip(&order) {
            guard.level -= draws[i].amount as f64;
            left[i] = guard.level.floor() as i64;
        }
        Ok(left)
    }

    /// Puts `refund` back into each bucket (negative: takes more, which may leave it in debt).
    pub fn give_back(&self, refunds: &[(Draw, i64)]) {
        let now = Instant::now();
        for (draw, refund) in refunds {
            let bucket = self.bucket(draw);
            let mut bucket = bucket.lock().unwrap_or_else(|e| e.into_inner());
            bucket.refill(draw.limit as f64, now);
            bucket.level = (bucket.level + *refund as f64).min(bucket.limit);
        }
    }
}

/// Spend per budget and period, in nano-USD, reservations included.
pub struct Ledgers {
    ledgers: moka::future::Cache<String, Arc<Mutex<i64>>>,
}

impl Ledgers {
    pub fn new() -> Self {
        // A period's ledger is read again from SQL after a day idle: by then the log holds all of it.
        Self { ledgers: moka::future::Cache::builder().time_to_idle(Duration::from_secs(86_400)).build() }
    }

    /// The ledger of `name`, started from `spent` (what the request log says) when new.
    pub async fn ledger<F, E>(&self, name: &str, spent: F) -> Result<Arc<Mutex<i64>>, Arc<E>>
    where
        F: std::future::Future<Output = Result<i64, E>>,
        E: Send + Sync + 'static,
    {
        self.ledgers.try_get_with_by_ref(name, async { spent.await.map(|s| Arc::new(Mutex::new(s))) }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{Kind, Scope};

    fn draw(bucket: &str, limit: i64, amount: i64) -> Draw {
        Draw { scope: Scope::Key, kind: Kind::Requests, bucket: bucket.into(), limit, amount }
    }

    #[test]
    fn all_or_nothing() {
        let buckets = Buckets::new();
        assert_eq!(buckets.take(&[draw("a", 10, 4), draw("b", 5, 5)]).unwrap(), [6, 0]);
        let denied = buckets.take(&[draw("a", 10, 1), draw("b", 5, 1)]).unwrap_err();
        assert_eq!(denied.index, 1);
        assert!(denied.retry_after > Duration::ZERO && denied.retry_after <= Duration::from_secs(12));
        // `a` was not drawn from by the failed call.
        assert_eq!(buckets.take(&[draw("a", 10, 6)]).unwrap(), [0]);
    }

    #[test]
    fn give_back_refunds_and_charges() {
        let buckets = Buckets::new();
        buckets.take(&[draw("t", 100, 80)]).unwrap();
        buckets.give_back(&[(draw("t", 100, 80), 50)]);
        assert_eq!(buckets.take(&[draw("t", 100, 70)]).unwrap(), [0]);
        buckets.give_back(&[(draw("t", 100, 0), -30)]);
        assert!(buckets.take(&[draw("t", 100, 1)]).is_err());
    }

    #[test]
    fn a_draw_above_the_limit_never_passes() {
        let denied = Buckets::new().take(&[draw("x", 10, 11)]).unwrap_err();
        assert!(denied.never);
    }
}

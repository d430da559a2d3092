//! How much each identity may publish: token buckets of messages and of bytes, shared by all
//! the identity's connections and kept across reconnections, so that connecting again does
//! not buy a fresh burst.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::time::Instant;

use crate::config::BrokerConfig;
use crate::policy::Identity;

/// Which budget a publish would overdraw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OverLimit {
    /// `max_publish_rate` and `max_publish_burst`.
    Messages,
    /// `max_publish_bytes_per_s` and `max_publish_bytes_burst`.
    Bytes,
}

/// A token bucket: fills at `rate` per second up to `capacity`.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    level: f64,
    rate: f64,
    capacity: f64,
}

impl Bucket {
    fn full(rate: u32, capacity: u32) -> Self {
        Bucket {
            level: capacity.into(),
            rate: rate.into(),
            capacity: capacity.into(),
        }
    }

    fn refill(&mut self, seconds: f64) {
        self.level = (self.level + self.rate * seconds).min(self.capacity);
    }
}

/// One identity's publishing budget.
#[derive(Debug)]
pub(crate) struct Budget {
    messages: Bucket,
    bytes: Bucket,
    updated: Instant,
}

impl Budget {
    fn new(config: &BrokerConfig, now: Instant) -> Self {
        Budget {
            messages: Bucket::full(config.max_publish_rate, config.max_publish_burst),
            bytes: Bucket::full(
                config.max_publish_bytes_per_s,
                config.max_publish_bytes_burst,
            ),
            updated: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let seconds = now.duration_since(self.updated).as_secs_f64();
        self.messages.refill(seconds);
        self.bytes.refill(seconds);
        self.updated = now;
    }

    /// Takes one message of `bytes` from the budget, or takes nothing and says which part
    /// is short.
    pub fn spend(&mut self, bytes: usize, now: Instant) -> Result<(), OverLimit> {
        self.refill(now);
        let bytes = bytes as f64;
        if self.messages.level < 1.0 {
            return Err(OverLimit::Messages);
        }
        if self.bytes.level < bytes {
            return Err(OverLimit::Bytes);
        }
        self.messages.level -= 1.0;
        self.bytes.level -= bytes;
        Ok(())
    }

    fn is_full(&self) -> bool {
        self.messages.level >= self.messages.capacity && self.bytes.level >= self.bytes.capacity
    }
}

/// A budget shared by the connections of one identity.
pub(crate) type SharedBudget = Arc<Mutex<Budget>>;

/// Locks a budget; a panic elsewhere leaves it usable.
pub(crate) fn lock(budget: &SharedBudget) -> MutexGuard<'_, Budget> {
    budget.lock().unwrap_or_else(|e| e.into_inner())
}

/// The budgets of the identities that published lately. Only authenticated identities have
/// one, so the map is no larger than the set of valid logins.
#[derive(Debug)]
pub(crate) struct PublishLimits {
    config: BrokerConfig,
    budgets: Mutex<HashMap<Identity, SharedBudget>>,
}

impl PublishLimits {
    pub fn new(config: &BrokerConfig) -> Self {
        PublishLimits {
            config: config.clone(),
            budgets: Mutex::default(),
        }
    }

    fn budgets(&self) -> MutexGuard<'_, HashMap<Identity, SharedBudget>> {
        self.budgets.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The budget a connection of `identity` publishes from; `None` for the service, which
    /// is the gateway itself and is not limited.
    pub fn budget(&self, identity: &Identity) -> Option<SharedBudget> {
        if matches!(identity, Identity::Service { .. }) {
            return None;
        }
        let now = Instant::now();
        let budget = self
            .budgets()
            .entry(identity.clone())
            .or_insert_with(|| Arc::new(Mutex::new(Budget::new(&self.config, now))))
            .clone();
        Some(budget)
    }

    /// Forgets the budgets that no connection uses and that have filled up again: a new one
    /// would be the same.
    pub fn prune(&self, now: Instant) {
        self.budgets().retain(|_, budget| {
            if Arc::strong_count(budget) > 1 {
                return true;
            }
            let mut b = lock(budget);
            b.refill(now);
            !b.is_full()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use weir_contract::TerminalId;

    fn limits() -> PublishLimits {
        PublishLimits::new(&BrokerConfig {
            max_publish_rate: 2,
            max_publish_burst: 3,
            max_publish_bytes_per_s: 100,
            max_publish_bytes_burst: 65536,
            ..BrokerConfig::default()
        })
    }

    fn node() -> Identity {
        Identity::Terminal(TerminalId::new("HY-001").unwrap())
    }

    #[test]
    fn a_burst_then_the_rate_and_a_refused_publish_takes_nothing() {
        let l = limits();
        let budget = l.budget(&node()).unwrap();
        let t0 = Instant::now();
        let mut b = lock(&budget);
        for _ in 0..3 {
            b.spend(10, t0).unwrap();
        }
        assert_eq!(b.spend(10, t0), Err(OverLimit::Messages));
        // Half a second at 2 a second: one more.
        let t1 = t0 + Duration::from_millis(500);
        b.spend(10, t1).unwrap();
        assert_eq!(b.spend(10, t1), Err(OverLimit::Messages));
        // A second later two messages are due, but 70000 bytes are more than are left.
        let t2 = t1 + Duration::from_secs(1);
        assert_eq!(b.spend(70_000, t2), Err(OverLimit::Bytes));
        b.spend(10, t2).unwrap();
        b.spend(10, t2).unwrap();
    }

    #[test]
    fn connections_of_one_identity_share_a_budget_and_the_service_has_none() {
        let l = limits();
        let a = l.budget(&node()).unwrap();
        let b = l.budget(&node()).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let service = Identity::Service {
            username: "svc".into(),
        };
        assert!(l.budget(&service).is_none());
    }

    #[test]
    fn an_unused_budget_is_forgotten_once_full_again() {
        let l = limits();
        let t0 = Instant::now();
        let budget = l.budget(&node()).unwrap();
        lock(&budget).spend(10, t0).unwrap();
        l.prune(t0);
        assert_eq!(l.budgets().len(), 1, "still held by a connection");
        drop(budget);
        l.prune(t0);
        assert_eq!(l.budgets().len(), 1, "not full yet");
        l.prune(t0 + Duration::from_secs(1));
        assert!(l.budgets().is_empty());
    }
}

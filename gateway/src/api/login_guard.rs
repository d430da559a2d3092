//! Password checks on the dashboard login, bounded: a few at once (each argon2 check takes
//! tens of megabytes and milliseconds of a core), failures throttled per user name and per
//! address, and as much work for a name that does not exist as for one that does (the store's
//! `auth::login`), so a wrong guess tells nothing and a storm of them cannot exhaust the box.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use crate::metrics::Metrics;

/// The limits, from `[http]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LoginLimits {
    /// Password checks running at once; a login that waits longer than `queue_wait` for one
    /// is refused as busy.
    pub max_concurrent: usize,
    /// How long a login may wait for a password check.
    pub queue_wait: Duration,
    /// Failed logins of one user name, or from one address, before further attempts are
    /// refused without a check until the window has passed since the first failure.
    pub max_failures: u32,
    /// The window.
    pub window: Duration,
    /// User names and addresses tracked at once; past it, the oldest expired entries go and
    /// new ones are not tracked (the concurrency bound still holds).
    pub max_tracked: usize,
}

/// Why a login was not checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Too many failures for this user name or address; try again after this long.
    Throttled(Duration),
    /// Every password check is in use.
    Busy,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Addr(IpAddr),
}

#[derive(Clone, Copy, Debug)]
struct Failures {
    count: u32,
    since: Instant,
}

/// The guard: one per gateway.
#[derive(Debug)]
pub struct LoginGuard {
    limits: LoginLimits,
    permits: Semaphore,
    failures: Mutex<HashMap<Key, Failures>>,
    metrics: Arc<Metrics>,
}

impl LoginGuard {
    /// A guard with `limits`.
    pub fn new(limits: LoginLimits, metrics: Arc<Metrics>) -> LoginGuard {
        LoginGuard {
            limits,
            permits: Semaphore::new(limits.max_concurrent.max(1)),
            failures: Mutex::new(HashMap::new()),
            metrics,
        }
    }

    /// Admits a login of `user` from `addr` to a password check, or says why not. Hold the
    /// permit for the length of the check.
    pub async fn admit(&self, user: &str, addr: IpAddr) -> Result<SemaphorePermit<'_>, Refusal> {
        if let Some(wait) = self.throttled(user, addr) {
            self.metrics.logins_throttled.fetch_add(1, Relaxed);
            return Err(Refusal::Throttled(wait));
        }
        match tokio::time::timeout(self.limits.queue_wait, self.permits.acquire()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => {
                self.metrics.logins_busy.fetch_add(1, Relaxed);
                Err(Refusal::Busy)
            }
        }
    }

    /// Records a failed login of `user` from `addr`.
    pub fn failed(&self, user: &str, addr: IpAddr) {
        self.metrics.logins_failed.fetch_add(1, Relaxed);
        let now = Instant::now();
        let Ok(mut map) = self.failures.lock() else {
            return;
        };
        for key in [Key::User(user.to_owned()), Key::Addr(addr)] {
            if !map.contains_key(&key) && map.len() >= self.limits.max_tracked {
                let window = self.limits.window;
                map.retain(|_, f| now.duration_since(f.since) < window);
                if map.len() >= self.limits.max_tracked {
                    continue;
                }
            }
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                since: now,
            });
            if now.duration_since(f.since) >= self.limits.window {
                *f = Failures {
                    count: 0,
                    since: now,
                };
            }
            f.count += 1;
        }
    }

    /// Records a successful login: the user name's failures are forgiven (the address's are
    /// not, so one good account cannot clear the way for guessing others).
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut map) = self.failures.lock() {
            map.remove(&Key::User(user.to_owned()));
        }
    }

    /// How long `user` or `addr` is still refused, if it is.
    fn throttled(&self, user: &str, addr: IpAddr) -> Option<Duration> {
        let now = Instant::now();
        let map = self.failures.lock().ok()?;
        [Key::User(user.to_owned()), Key::Addr(addr)]
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|f| f.count >= self.limits.max_failures)
            .filter_map(|f| (f.since + self.limits.window).checked_duration_since(now))
            .filter(|left| !left.is_zero())
            .max()
    }

    /// User names and addresses tracked now.
    pub fn tracked(&self) -> usize {
        self.failures.lock().map(|m| m.len()).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard() -> LoginGuard {
        LoginGuard::new(
            LoginLimits {
                max_concurrent: 1,
                queue_wait: Duration::from_millis(100),
                max_failures: 3,
                window: Duration::from_secs(600),
                max_tracked: 4,
            },
            Arc::new(Metrics::new()),
        )
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 2));

    #[tokio::test(start_paused = true)]
    async fn a_user_is_refused_unchecked_after_too_many_failures_until_the_window_passes() {
        let g = guard();
        for _ in 0..3 {
            drop(g.admit("admin", A).await.unwrap());
            g.failed("admin", A);
        }
        // From another address too: the name is throttled.
        assert!(matches!(
            g.admit("admin", B).await,
            Err(Refusal::Throttled(d)) if d <= Duration::from_secs(600)
        ));
        // Another name from the first address: the address is throttled.
        assert!(matches!(
            g.admit("ops", A).await,
            Err(Refusal::Throttled(_))
        ));
        // Another name from another address is checked.
        assert!(g.admit("ops", B).await.is_ok());
        tokio::time::advance(Duration::from_secs(601)).await;
        assert!(g.admit("admin", B).await.is_ok());
        assert_eq!(g.metrics.logins_throttled.load(Relaxed), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_success_forgives_the_name_but_not_the_address() {
        let g = guard();
        for _ in 0..3 {
            g.failed("admin", A);
        }
        g.succeeded("admin");
        assert!(g.admit("admin", B).await.is_ok());
        assert!(g.admit("admin", A).await.is_err());
    }

    #[tokio::test(start_paused = true)]
    async fn checks_beyond_the_bound_wait_briefly_then_are_refused_as_busy() {
        let g = guard();
        let held = g.admit("a", A).await.unwrap();
        assert_eq!(g.admit("b", B).await.unwrap_err(), Refusal::Busy);
        drop(held);
        assert!(g.admit("b", B).await.is_ok());
        assert_eq!(g.metrics.logins_busy.load(Relaxed), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn the_failure_table_stays_within_its_bound() {
        let g = guard();
        for i in 0..100u8 {
            g.failed(&format!("user{i}"), IpAddr::from([10, 0, 1, i]));
        }
        assert!(g.tracked() <= 4, "{}", g.tracked());
        // Once the window has passed, old entries make room again.
        tokio::time::advance(Duration::from_secs(601)).await;
        g.failed("late", A);
        assert!(g.admit("late", B).await.is_ok());
        assert!(g.tracked() <= 4);
    }
}

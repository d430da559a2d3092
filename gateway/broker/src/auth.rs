//! The gate in front of password checks: a bounded number at once, a bounded wait for one,
//! and no check at all for an address or a user name that failed too often lately.
//!
//! A check may be slow and large by design (argon2), and anyone who can reach the port can ask
//! for one, so the checks are what a login storm would exhaust. Failures are counted in
//! windows that start at their first failure and last `auth_failure_window_s`:
//!
//! * per source address (an IPv6 address counts as its /64): a successful login does not
//!   reset it, so knowing one valid login does not buy more guesses;
//! * per user name from one source address: a success resets it. Not per user name alone: a
//!   terminal id is printed on its cabinet's label, and a lock on the name alone would let
//!   anyone keep that terminal's node out. Node passwords are generated secrets, so guessing
//!   from many addresses gains nothing; keeping nodes connected is what matters here.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::BrokerConfig;

/// Most addresses, and most (user name, address) pairs, whose failures are remembered. Entries
/// are made only by checks that ran, which `max_concurrent_auth` bounds, and expire with their
/// window; this caps the tables (a few MiB) even if checks fail fast.
const MAX_TRACKED: usize = 65_536;

/// Failures of one key within one window.
#[derive(Clone, Copy, Debug)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Remembered failures. A user name is kept as a keyed hash: a client chooses it, and it may
/// be 64 KiB long.
#[derive(Debug, Default)]
struct Failures {
    by_address: HashMap<IpAddr, Window>,
    by_user: HashMap<(IpAddr, u64), Window>,
    hasher: RandomState,
}

/// What a failure made the gate refuse until its window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Throttled {
    /// Every CONNECT from the address.
    Address,
    /// CONNECTs with the user name from the address.
    UserName,
}

/// Bounds and throttles the broker's password checks.
#[derive(Debug)]
pub(crate) struct AuthGate {
    permits: Arc<Semaphore>,
    wait: Duration,
    window: Duration,
    per_address: u32,
    per_user: u32,
    failures: Mutex<Failures>,
}

impl AuthGate {
    pub fn new(config: &BrokerConfig) -> Self {
        AuthGate {
            permits: Arc::new(Semaphore::new(config.max_concurrent_auth)),
            wait: config.auth_wait(),
            window: config.auth_failure_window(),
            per_address: config.auth_failures_per_address,
            per_user: config.auth_failures_per_user,
            failures: Mutex::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Failures of `w` that still count at `now`.
    fn current(&self, w: Option<&Window>, now: Instant) -> u32 {
        match w {
            Some(w) if now.duration_since(w.started) < self.window => w.failures,
            _ => 0,
        }
    }

    /// Whether a CONNECT for `user` from `address` is to be refused without a check.
    pub fn throttled(&self, address: IpAddr, user: &str, now: Instant) -> bool {
        let f = self.lock();
        let user_key = (address, f.hasher.hash_one(user));
        self.current(f.by_address.get(&address), now) >= self.per_address
            || self.current(f.by_user.get(&user_key), now) >= self.per_user
    }

    /// A permit to run one check, or `None` if none came free within `auth_wait_ms`. The
    /// permit must be held until the check returns (move it into the blocking task).
    pub async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        tokio::time::timeout(self.wait, self.permits.clone().acquire_owned())
            .await
            .ok()?
            .ok()
    }

    /// Records a failed check of `user` from `address`. Returns what this failure throttled
    /// (so that it is logged once, not at every refusal that follows).
    pub fn failed(&self, address: IpAddr, user: &str, now: Instant) -> Option<Throttled> {
        let mut guard = self.lock();
        let f = &mut *guard;
        let user_key = (address, f.hasher.hash_one(user));
        let by_address = count(&mut f.by_address, address, now, self.window);
        let by_user = count(&mut f.by_user, user_key, now, self.window);
        if by_address == self.per_address {
            Some(Throttled::Address)
        } else if by_user == self.per_user {
            Some(Throttled::UserName)
        } else {
            None
        }
    }

    /// Records a successful check: the user name's failures from `address` are forgotten.
    pub fn succeeded(&self, address: IpAddr, user: &str) {
        let mut f = self.lock();
        let user_key = (address, f.hasher.hash_one(user));
        f.by_user.remove(&user_key);
    }

    /// Forgets windows that ended.
    pub fn prune(&self, now: Instant) {
        let window = self.window;
        let mut f = self.lock();
        f.by_address
            .retain(|_, w| now.duration_since(w.started) < window);
        f.by_user
            .retain(|_, w| now.duration_since(w.started) < window);
    }
}

/// Adds a failure to `key`'s window, starting a new window if the last one ended; returns
/// the window's failures (0 if the table is full).
fn count<K: std::hash::Hash + Eq>(
    map: &mut HashMap<K, Window>,
    key: K,
    now: Instant,
    window: Duration,
) -> u32 {
    if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
        map.retain(|_, w| now.duration_since(w.started) < window);
        if map.len() >= MAX_TRACKED {
            tracing::warn!(
                tracked = map.len(),
                "too many addresses failing logins to remember another"
            );
            return 0;
        }
    }
    let w = map.entry(key).or_insert(Window {
        started: now,
        failures: 0,
    });
    if now.duration_since(w.started) >= window {
        *w = Window {
            started: now,
            failures: 0,
        };
    }
    w.failures = w.failures.saturating_add(1);
    w.failures
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn gate() -> AuthGate {
        AuthGate::new(&BrokerConfig {
            auth_failures_per_address: 3,
            auth_failures_per_user: 2,
            auth_failure_window_s: 60,
            ..BrokerConfig::default()
        })
    }

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    #[test]
    fn a_window_counts_from_its_first_failure_and_ends_after_its_length() {
        let g = gate();
        let t0 = Instant::now();
        assert_eq!(g.failed(A, "HY-001", t0), None);
        assert_eq!(
            g.failed(A, "HY-001", t0 + Duration::from_secs(59)),
            Some(Throttled::UserName),
            "said once, when it happens"
        );
        assert!(g.throttled(A, "HY-001", t0 + Duration::from_secs(59)));
        assert!(!g.throttled(A, "HY-001", t0 + Duration::from_secs(60)));
        // A failure after the window starts a new one.
        g.failed(A, "HY-001", t0 + Duration::from_secs(61));
        assert!(!g.throttled(A, "HY-001", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn failures_of_several_user_names_add_up_to_the_address_limit() {
        let g = gate();
        let t0 = Instant::now();
        g.failed(A, "a", t0);
        g.failed(A, "b", t0);
        assert!(!g.throttled(A, "c", t0));
        assert_eq!(g.failed(A, "c", t0), Some(Throttled::Address));
        assert!(g.throttled(A, "d", t0));
        g.succeeded(A, "d");
        assert!(
            g.throttled(A, "d", t0),
            "a success does not reset the address"
        );
    }

    #[test]
    fn pruning_forgets_only_windows_that_ended() {
        let g = gate();
        let t0 = Instant::now();
        g.failed(A, "old", t0);
        g.failed(A, "new", t0 + Duration::from_secs(30));
        g.prune(t0 + Duration::from_secs(60));
        let f = g.lock();
        assert_eq!(f.by_user.len(), 1);
        assert_eq!(f.by_address.len(), 0, "the address window started at t0");
    }
}

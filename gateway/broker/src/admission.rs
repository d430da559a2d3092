//! Who gets a socket: connections not yet past CONNACK are capped, and so are the
//! connections of one source address, before a byte is read.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::config::BrokerConfig;
use crate::stats::Stats;

/// Why a socket was closed at accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// `max_pending_connections` were pending.
    Pending,
    /// Its address had `max_connections_per_address`.
    Address,
}

/// The listener's counts of pending connections and of connections per address.
#[derive(Debug)]
pub(crate) struct Admission {
    max_pending: usize,
    max_per_address: usize,
    pending: AtomicUsize,
    per_address: Mutex<HashMap<IpAddr, usize>>,
    stats: Arc<Stats>,
}

/// What an accepted connection holds. The address's slot is declared first so that it is
/// released first: once no connection is pending, every closed socket's slots are free.
#[derive(Debug)]
pub(crate) struct Slots {
    /// Held for its `Drop`.
    _address: AddressSlot,
    /// Released at CONNACK (see [`Slots::logged_in`]), or when the connection ends before.
    pending: Option<PendingSlot>,
}

impl Slots {
    /// The connection completed CONNECT/CONNACK: it is no longer pending.
    pub fn logged_in(&mut self) {
        self.pending = None;
    }
}

#[derive(Debug)]
struct PendingSlot(Arc<Admission>);

impl Drop for PendingSlot {
    fn drop(&mut self) {
        self.0.pending.fetch_sub(1, Ordering::Relaxed);
        self.0.stats.pending_closed();
    }
}

#[derive(Debug)]
struct AddressSlot(Arc<Admission>, IpAddr);

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.0.per_address();
        if let Some(n) = map.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.1);
            }
        }
    }
}

impl Admission {
    pub fn new(config: &BrokerConfig, stats: Arc<Stats>) -> Self {
        Admission {
            max_pending: config.max_pending_connections,
            max_per_address: config.max_connections_per_address,
            pending: AtomicUsize::new(0),
            per_address: Mutex::default(),
            stats,
        }
    }

    fn per_address(&self) -> MutexGuard<'_, HashMap<IpAddr, usize>> {
        self.per_address.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes a pending slot and a slot of `peer`'s address, or says why not; the refusal is
    /// counted.
    pub fn admit(self: &Arc<Self>, peer: IpAddr) -> Result<Slots, Refused> {
        let key = address_key(Some(peer));
        // Several listeners (plain and TLS) may accept at once.
        let took = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_pending).then_some(n + 1)
            });
        if took.is_err() {
            self.stats.pending_limit();
            return Err(Refused::Pending);
        }
        self.stats.pending_opened();
        let pending = PendingSlot(self.clone());
        {
            let mut map = self.per_address();
            let n = map.entry(key).or_insert(0);
            if *n >= self.max_per_address {
                drop(map);
                drop(pending);
                self.stats.address_limit();
                return Err(Refused::Address);
            }
            *n += 1;
        }
        Ok(Slots {
            _address: AddressSlot(self.clone(), key),
            pending: Some(pending),
        })
    }
}

/// The address a connection counts against for per-address limits: an IPv4 address (also
/// when written as IPv4-mapped IPv6), or the /64 of an IPv6 address, since one host or one
/// subscriber line typically holds a whole /64 and could otherwise pick a new address for
/// every connection. A connection of unknown origin (served by
/// [`Broker::serve_connection`](crate::Broker::serve_connection)) counts as the unspecified
/// address.
pub(crate) fn address_key(peer: Option<IpAddr>) -> IpAddr {
    match peer {
        None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        Some(IpAddr::V4(v4)) => IpAddr::V4(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(max_pending: usize, max_per_address: usize) -> Arc<Admission> {
        let config = BrokerConfig {
            max_pending_connections: max_pending,
            max_connections_per_address: max_per_address,
            ..BrokerConfig::default()
        };
        Arc::new(Admission::new(&config, Arc::default()))
    }

    #[test]
    fn a_slot_is_given_back_when_dropped_and_a_login_frees_only_the_pending_one() {
        let a = admission(1, 2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let mut first = a.admit(ip).unwrap();
        assert_eq!(a.admit(ip).unwrap_err(), Refused::Pending);
        first.logged_in();
        let second = a.admit(ip).unwrap();
        assert_eq!(a.stats.snapshot().connections_pending, 1);
        drop(second);
        let mut third = a.admit(ip).unwrap();
        third.logged_in();
        assert_eq!(a.admit(ip).unwrap_err(), Refused::Address);
        assert_eq!(a.stats.snapshot().connections_pending, 0);
        drop((first, third));
        assert!(a.per_address().is_empty());
        let s = a.stats.snapshot();
        assert_eq!((s.refused_pending_limit, s.refused_address_limit), (1, 1));
    }

    fn key(s: &str) -> String {
        address_key(Some(s.parse().unwrap())).to_string()
    }

    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(key("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(key("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), "2001:db8:1:2::");
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}

//! Which address a connection counts against.

use std::net::{IpAddr, Ipv6Addr};

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

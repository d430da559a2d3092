//! The node's network: Ethernet link, its address (DHCP or static), DNS, and UTC from SNTP.
//!
//! One task ([`run`]) keeps the address and the time; the MQTT uplink uses the same chip
//! for its TCP socket. What they know is in [`Net`], which the LED also reads. The messages
//! themselves are written and read by `weir_netproto`; here are the sockets, the timeouts and
//! what to do with the answers.

use core::cell::{Cell, RefCell, RefMut};

use embassy_time::{Instant, Timer};
use weir_netproto::dhcp::{self, MessageType};
use weir_netproto::{dns, sntp};
use weir_node::provision::{parse_ipv4, Network, Provision};

use crate::w5500::{socket, W5500};

/// How the broker connection stands, as the uplink last saw it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Broker {
    /// Not tried yet, or trying.
    Connecting,
    /// No answer, connection refused or dropped, or its name does not resolve.
    Unreachable,
    /// The broker refused the login (wrong terminal id or password, or not authorised).
    Refused,
    /// Connected and subscribed.
    Up,
}

/// What the network task and the uplink know, shared on core 0.
pub struct Net {
    chip: RefCell<W5500>,
    /// Ethernet link up.
    pub link: Cell<bool>,
    /// The node's address, once configured.
    pub ip: Cell<Option<[u8; 4]>>,
    /// Changes whenever the address is configured or lost: the uplink reconnects.
    pub generation: Cell<u32>,
    dns: Cell<[u8; 4]>,
    /// The broker's address, once resolved; the uplink clears it after failures so the
    /// name is resolved again.
    pub broker: Cell<Option<[u8; 4]>>,
    /// How the broker connection stands.
    pub broker_state: Cell<Broker>,
    /// UTC minus the monotonic clock, ms, once SNTP answered.
    pub utc_offset_ms: Cell<Option<i64>>,
    rng: Cell<u32>,
}

impl core::fmt::Debug for Net {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Net")
            .field("link", &self.link.get())
            .field("ip", &self.ip.get())
            .field("broker_state", &self.broker_state.get())
            .finish_non_exhaustive()
    }
}

/// Monotonic milliseconds since boot.
pub fn now_ms() -> u64 {
    Instant::now().as_millis()
}

impl Net {
    /// The network around an initialised chip; `seed` varies ports and transaction ids.
    pub fn new(chip: W5500, seed: u32) -> Self {
        Net {
            chip: RefCell::new(chip),
            link: Cell::new(false),
            ip: Cell::new(None),
            generation: Cell::new(0),
            dns: Cell::new([0; 4]),
            broker: Cell::new(None),
            broker_state: Cell::new(Broker::Connecting),
            utc_offset_ms: Cell::new(None),
            rng: Cell::new(seed | 1),
        }
    }

    /// The chip, for synchronous use only (never held across an `await`).
    pub fn chip(&self) -> RefMut<'_, W5500> {
        self.chip.borrow_mut()
    }

    /// A pseudo-random number (xorshift32), for ports and transaction ids.
    pub fn random(&self) -> u32 {
        let mut x = self.rng.get();
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.rng.set(x);
        x
    }

    /// A local port in the dynamic range.
    pub fn ephemeral_port(&self) -> u16 {
        49152 + (self.random() % 16000) as u16
    }

    fn lose_address(&self) {
        if self.ip.get().is_some() {
            self.ip.set(None);
            self.generation.set(self.generation.get().wrapping_add(1));
        }
        self.chip().set_ip([0; 4], [0; 4], [0; 4]);
    }

    /// Waits until a datagram arrives on socket `n` for which `accept` returns a value, or
    /// `timeout_ms` passes.
    async fn receive<T>(
        &self,
        n: u8,
        buf: &mut [u8],
        timeout_ms: u64,
        mut accept: impl FnMut(&[u8], [u8; 4]) -> Option<T>,
    ) -> Option<T> {
        let deadline = now_ms() + timeout_ms;
        while now_ms() < deadline {
            let got = self.chip().recv_from(n, buf);
            match got {
                Some((from, _, len)) => {
                    if let Some(v) = accept(&buf[..len], from) {
                        return Some(v);
                    }
                }
                None => Timer::after_millis(20).await,
            }
        }
        None
    }

    /// The IPv4 address of `host` (a dotted address, or a name asked of the DNS server).
    pub async fn resolve(&self, host: &str) -> Option<[u8; 4]> {
        if let Some(ip) = parse_ipv4(host) {
            return Some(ip);
        }
        let server = self.dns.get();
        if server == [0; 4] || host.len() > 253 {
            return None;
        }
        let mut buf = [0u8; 512];
        for _ in 0..3 {
            let id = self.random() as u16;
            let len = dns::Query { id, name: host }.encode(&mut buf).ok()?;
            {
                let mut chip = self.chip();
                let port = self.ephemeral_port();
                if !chip.open(socket::DNS, crate::w5500::mode::UDP, port) {
                    return None;
                }
                chip.send_to(socket::DNS, server, dns::SERVER_PORT, &[&buf[..len]]);
            }
            let ip = self
                .receive(socket::DNS, &mut buf, 3000, |reply, _| {
                    let answer = dns::Answer::parse(reply).ok()?;
                    (answer.id == id).then_some(answer.address)
                })
                .await;
            if ip.is_some() {
                self.chip().close(socket::DNS);
                return ip;
            }
        }
        self.chip().close(socket::DNS);
        None
    }

    /// Asks `server` for the time; returns UTC minus the monotonic clock, ms.
    async fn sntp(&self, server: [u8; 4]) -> Option<i64> {
        let sent = {
            let mut chip = self.chip();
            let port = self.ephemeral_port();
            if !chip.open(socket::SNTP, crate::w5500::mode::UDP, port) {
                return None;
            }
            chip.send_to(socket::SNTP, server, sntp::SERVER_PORT, &[&sntp::REQUEST]);
            now_ms()
        };
        let mut buf = [0u8; 64];
        let offset = self
            .receive(socket::SNTP, &mut buf, 3000, |reply, from| {
                let unix_ms = sntp::transmit_time_unix_ms(reply).ok()?;
                if from != server {
                    return None;
                }
                // The server's time is taken as that of halfway through the exchange.
                let midpoint = (sent + now_ms()) / 2;
                Some(unix_ms - midpoint as i64)
            })
            .await;
        self.chip().close(socket::SNTP);
        offset
    }

    /// DISCOVER, OFFER, REQUEST, ACK.
    async fn dhcp_bind(&self, p: &Provision, mac: [u8; 6]) -> Option<Lease> {
        let mut buf = [0u8; 576];
        if !self
            .chip()
            .open(socket::DHCP, crate::w5500::mode::UDP, dhcp::CLIENT_PORT)
        {
            return None;
        }
        let xid = self.random();
        let discover = dhcp::ClientMessage {
            message_type: MessageType::Discover,
            xid,
            mac,
            client_ip: None,
            requested_ip: None,
            server_id: None,
            hostname: &p.terminal,
        };
        if !self.dhcp_send(&mut buf, discover) {
            return None;
        }
        let offer = self
            .receive(socket::DHCP, &mut buf, 4000, |m, _| {
                dhcp_reply(m, xid, mac).filter(|(t, _)| *t == MessageType::Offer)
            })
            .await?
            .1;
        let request = dhcp::ClientMessage {
            message_type: MessageType::Request,
            xid,
            mac,
            client_ip: None,
            requested_ip: Some(offer.ip),
            server_id: Some(offer.server),
            hostname: &p.terminal,
        };
        if !self.dhcp_send(&mut buf, request) {
            return None;
        }
        let lease = self.dhcp_ack(&mut buf, xid, mac).await;
        self.chip().close(socket::DHCP);
        lease
    }

    /// Renews `lease` (a broadcast REQUEST with our address, which any server answers).
    async fn dhcp_renew(&self, p: &Provision, mac: [u8; 6], lease: &Lease) -> Option<Lease> {
        let mut buf = [0u8; 576];
        if !self
            .chip()
            .open(socket::DHCP, crate::w5500::mode::UDP, dhcp::CLIENT_PORT)
        {
            return None;
        }
        let xid = self.random();
        let request = dhcp::ClientMessage {
            message_type: MessageType::Request,
            xid,
            mac,
            client_ip: Some(lease.ip),
            requested_ip: None,
            server_id: None,
            hostname: &p.terminal,
        };
        if !self.dhcp_send(&mut buf, request) {
            return None;
        }
        let renewed = self.dhcp_ack(&mut buf, xid, mac).await;
        self.chip().close(socket::DHCP);
        renewed
    }

    /// Broadcasts `message` from the open DHCP socket; closes the socket if it cannot be
    /// written (a host name over 255 bytes; terminal ids are far shorter).
    fn dhcp_send(&self, buf: &mut [u8], message: dhcp::ClientMessage<'_>) -> bool {
        let mut chip = self.chip();
        match message.encode(buf) {
            Ok(len) => {
                chip.send_to(socket::DHCP, [255; 4], dhcp::SERVER_PORT, &[&buf[..len]]);
                true
            }
            Err(_) => {
                chip.close(socket::DHCP);
                false
            }
        }
    }

    async fn dhcp_ack(&self, buf: &mut [u8], xid: u32, mac: [u8; 6]) -> Option<Lease> {
        self.receive(socket::DHCP, buf, 4000, |m, _| {
            dhcp_reply(m, xid, mac)
                .filter(|(t, _)| *t == MessageType::Ack || *t == MessageType::Nak)
        })
        .await
        .filter(|(t, _)| *t == MessageType::Ack)
        .map(|(_, lease)| lease)
    }
}

/// Keeps the node's address and time: waits for the Ethernet link, configures the address
/// (DHCP or static, from the configuration image), renews the lease, resolves the broker's
/// name when the uplink needs it, and sets UTC from SNTP every hour.
#[embassy_executor::task]
pub async fn run(net: &'static Net, p: &'static Provision, mac: [u8; 6]) {
    loop {
        let link = net.chip().link_up();
        net.link.set(link);
        if !link {
            net.lose_address();
            Timer::after_millis(500).await;
            continue;
        }
        let mut lease = match p.network {
            Network::Static {
                address,
                prefix_len,
                gateway,
                dns,
            } => Lease {
                ip: address,
                mask: mask(prefix_len),
                router: gateway,
                dns,
                server: [0; 4],
                lease_s: u32::MAX,
            },
            Network::Dhcp => match net.dhcp_bind(p, mac).await {
                Some(lease) => lease,
                None => {
                    Timer::after_secs(2).await;
                    continue;
                }
            },
        };
        net.chip().set_ip(lease.ip, lease.mask, lease.router);
        net.dns.set(lease.dns);
        net.ip.set(Some(lease.ip));
        net.generation.set(net.generation.get().wrapping_add(1));
        bound(net, p, mac, &mut lease).await;
        net.lose_address();
    }
}

/// While the address holds: renewal, broker name, time. Returns when the link or the lease
/// is lost.
async fn bound(net: &Net, p: &Provision, mac: [u8; 6], lease: &mut Lease) {
    let start = now_ms();
    let lease_ms = |l: &Lease| u64::from(l.lease_s) * 1000;
    let mut expires = start.saturating_add(lease_ms(lease));
    let mut renew_at = start.saturating_add(lease_ms(lease) / 2);
    let mut next_sntp = start;
    let mut sntp_retry_s = 15;
    let mut next_resolve = start;
    loop {
        if !net.chip().link_up() {
            net.link.set(false);
            return;
        }
        let now = now_ms();
        if now >= renew_at {
            match net.dhcp_renew(p, mac, lease).await {
                Some(renewed) if renewed.ip == lease.ip => {
                    *lease = renewed;
                    let now = now_ms();
                    expires = now.saturating_add(lease_ms(lease));
                    renew_at = now.saturating_add(lease_ms(lease) / 2);
                }
                // A different address, or none: start again from scratch.
                Some(_) => return,
                None if now_ms() >= expires => return,
                None => renew_at = now_ms() + 60_000,
            }
        }
        if net.broker.get().is_none() && now >= next_resolve {
            match net.resolve(&p.broker.host).await {
                Some(ip) => net.broker.set(Some(ip)),
                None => net.broker_state.set(Broker::Unreachable),
            }
            next_resolve = now_ms() + 10_000;
        }
        if now >= next_sntp {
            let offset = match net.resolve(&p.time_server).await {
                Some(server) => net.sntp(server).await,
                None => None,
            };
            match offset {
                Some(offset) => {
                    net.utc_offset_ms.set(Some(offset));
                    next_sntp = now_ms() + 3_600_000;
                    sntp_retry_s = 15;
                }
                None => {
                    // Keep the last time known; try again sooner, backing off to 10 min.
                    next_sntp = now_ms() + sntp_retry_s * 1000;
                    sntp_retry_s = (sntp_retry_s * 2).min(600);
                }
            }
        }
        Timer::after_millis(500).await;
    }
}

fn mask(prefix_len: u8) -> [u8; 4] {
    let bits = u32::MAX
        .checked_shl(32 - u32::from(prefix_len.min(32)))
        .unwrap_or(0);
    bits.to_be_bytes()
}

/// An address from DHCP (or the static configuration).
#[derive(Clone, Copy, Debug)]
struct Lease {
    ip: [u8; 4],
    mask: [u8; 4],
    router: [u8; 4],
    dns: [u8; 4],
    server: [u8; 4],
    lease_s: u32,
}

/// A DHCP reply to our `xid` and `mac`: its type and the lease it describes, with what the
/// server left out filled in (a /24, a one-hour lease, at least a minute).
fn dhcp_reply(m: &[u8], xid: u32, mac: [u8; 6]) -> Option<(MessageType, Lease)> {
    let reply = dhcp::Reply::parse(m).ok()?;
    if reply.xid != xid || reply.client_mac != mac {
        return None;
    }
    let lease = Lease {
        ip: reply.your_ip,
        mask: reply.subnet_mask.unwrap_or([255, 255, 255, 0]),
        router: reply.router.unwrap_or([0; 4]),
        dns: reply.dns_server.unwrap_or([0; 4]),
        server: reply.server_id.unwrap_or([0; 4]),
        // At least a minute, so a zero lease does not spin.
        lease_s: reply.lease_time_s.unwrap_or(3600).max(60),
    };
    Some((reply.message_type, lease))
}

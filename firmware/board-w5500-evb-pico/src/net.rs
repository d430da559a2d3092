//! The node's network: Ethernet link, its address (DHCP or static), DNS, and UTC from SNTP.
//!
//! One task ([`run`]) keeps the address and the time; the MQTT uplink uses the same chip
//! for its TCP socket. What they know is in [`Net`], which the LED also reads.

use core::cell::{Cell, RefCell, RefMut};

use embassy_time::{Instant, Timer};
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
            let len = dns_query(&mut buf, id, host)?;
            {
                let mut chip = self.chip();
                let port = self.ephemeral_port();
                if !chip.open(socket::DNS, crate::w5500::mode::UDP, port) {
                    return None;
                }
                chip.send_to(socket::DNS, server, 53, &[&buf[..len]]);
            }
            let ip = self
                .receive(socket::DNS, &mut buf, 3000, |reply, _| {
                    dns_answer(reply, id)
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
        let mut request = [0u8; 48];
        // LI 0, version 4, mode 3 (client).
        request[0] = 0x23;
        let sent = {
            let mut chip = self.chip();
            let port = self.ephemeral_port();
            if !chip.open(socket::SNTP, crate::w5500::mode::UDP, port) {
                return None;
            }
            chip.send_to(socket::SNTP, server, 123, &[&request]);
            now_ms()
        };
        let mut buf = [0u8; 64];
        let offset = self
            .receive(socket::SNTP, &mut buf, 3000, |reply, from| {
                let unix_ms = sntp_unix_ms(reply)?;
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
        if !self.chip().open(socket::DHCP, crate::w5500::mode::UDP, 68) {
            return None;
        }
        let xid = self.random();
        let len = dhcp_message(&mut buf, DISCOVER, xid, mac, None, None, &p.terminal);
        self.chip()
            .send_to(socket::DHCP, [255; 4], 67, &[&buf[..len]]);
        let offer = self
            .receive(socket::DHCP, &mut buf, 4000, |m, _| {
                dhcp_reply(m, xid, mac).filter(|(t, _)| *t == OFFER)
            })
            .await?
            .1;
        let len = dhcp_message(
            &mut buf,
            REQUEST,
            xid,
            mac,
            None,
            Some((offer.ip, offer.server)),
            &p.terminal,
        );
        self.chip()
            .send_to(socket::DHCP, [255; 4], 67, &[&buf[..len]]);
        let lease = self.dhcp_ack(&mut buf, xid, mac).await;
        self.chip().close(socket::DHCP);
        lease
    }

    /// Renews `lease` (a broadcast REQUEST with our address, which any server answers).
    async fn dhcp_renew(&self, p: &Provision, mac: [u8; 6], lease: &Lease) -> Option<Lease> {
        let mut buf = [0u8; 576];
        if !self.chip().open(socket::DHCP, crate::w5500::mode::UDP, 68) {
            return None;
        }
        let xid = self.random();
        let len = dhcp_message(
            &mut buf,
            REQUEST,
            xid,
            mac,
            Some(lease.ip),
            None,
            &p.terminal,
        );
        self.chip()
            .send_to(socket::DHCP, [255; 4], 67, &[&buf[..len]]);
        let renewed = self.dhcp_ack(&mut buf, xid, mac).await;
        self.chip().close(socket::DHCP);
        renewed
    }

    async fn dhcp_ack(&self, buf: &mut [u8], xid: u32, mac: [u8; 6]) -> Option<Lease> {
        self.receive(socket::DHCP, buf, 4000, |m, _| {
            dhcp_reply(m, xid, mac).filter(|(t, _)| *t == ACK || *t == NAK)
        })
        .await
        .filter(|(t, _)| *t == ACK)
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

const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;
const COOKIE: [u8; 4] = [99, 130, 83, 99];

/// Builds a DHCP message; `ciaddr` when renewing, `requested` (address, server) when
/// answering an offer.
fn dhcp_message(
    buf: &mut [u8],
    kind: u8,
    xid: u32,
    mac: [u8; 6],
    ciaddr: Option<[u8; 4]>,
    requested: Option<([u8; 4], [u8; 4])>,
    hostname: &str,
) -> usize {
    buf[..240].fill(0);
    buf[0] = 1; // BOOTREQUEST
    buf[1] = 1; // Ethernet
    buf[2] = 6;
    buf[4..8].copy_from_slice(&xid.to_be_bytes());
    // Ask for broadcast answers: the chip takes no unicast before it has an address.
    buf[10] = 0x80;
    if let Some(ip) = ciaddr {
        buf[12..16].copy_from_slice(&ip);
    }
    buf[28..34].copy_from_slice(&mac);
    buf[236..240].copy_from_slice(&COOKIE);
    let mut i = 240;
    let mut option = |buf: &mut [u8], code: u8, data: &[u8]| {
        buf[i] = code;
        buf[i + 1] = data.len() as u8;
        buf[i + 2..i + 2 + data.len()].copy_from_slice(data);
        i += 2 + data.len();
    };
    option(buf, 53, &[kind]);
    if let Some((ip, server)) = requested {
        option(buf, 50, &ip);
        option(buf, 54, &server);
    }
    // The terminal id as host name, so the router's lease table shows which node it is.
    option(buf, 12, hostname.as_bytes());
    // Subnet mask, router, DNS server, lease time.
    option(buf, 55, &[1, 3, 6, 51]);
    buf[i] = 255;
    // Padded to the minimum BOOTP size some servers insist on.
    let end = (i + 1).max(300);
    buf[i + 1..end].fill(0);
    end
}

/// A DHCP answer to our `xid`: its message type and the lease it offers.
fn dhcp_reply(m: &[u8], xid: u32, mac: [u8; 6]) -> Option<(u8, Lease)> {
    if m.len() < 240 || m[0] != 2 || m[4..8] != xid.to_be_bytes() || m[28..34] != mac {
        return None;
    }
    if m[236..240] != COOKIE {
        return None;
    }
    let mut lease = Lease {
        ip: m[16..20].try_into().ok()?,
        mask: [255, 255, 255, 0],
        router: [0; 4],
        dns: [0; 4],
        server: [0; 4],
        lease_s: 3600,
    };
    let mut kind = 0;
    let mut i = 240;
    while i < m.len() {
        let code = m[i];
        if code == 0 {
            i += 1;
            continue;
        }
        if code == 255 || i + 1 >= m.len() {
            break;
        }
        let len = usize::from(m[i + 1]);
        let data = m.get(i + 2..i + 2 + len)?;
        let ip = || -> Option<[u8; 4]> { data.get(..4)?.try_into().ok() };
        match code {
            53 => kind = *data.first()?,
            1 => lease.mask = ip()?,
            3 => lease.router = ip()?,
            6 => lease.dns = ip()?,
            51 => lease.lease_s = u32::from_be_bytes(ip()?),
            54 => lease.server = ip()?,
            _ => {}
        }
        i += 2 + len;
    }
    // At least a minute, so a zero lease does not spin.
    lease.lease_s = lease.lease_s.max(60);
    Some((kind, lease))
}

/// A recursive query for `host`'s A record.
fn dns_query(buf: &mut [u8], id: u16, host: &str) -> Option<usize> {
    buf[..12].fill(0);
    buf[0..2].copy_from_slice(&id.to_be_bytes());
    buf[2] = 0x01; // recursion desired
    buf[5] = 1; // one question
    let mut i = 12;
    for label in host.trim_end_matches('.').split('.') {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        buf[i] = label.len() as u8;
        buf[i + 1..i + 1 + label.len()].copy_from_slice(label.as_bytes());
        i += 1 + label.len();
    }
    buf[i] = 0;
    // Type A, class IN.
    buf[i + 1..i + 5].copy_from_slice(&[0, 1, 0, 1]);
    Some(i + 5)
}

/// Skips a (possibly compressed) name at `i`; the index after it.
fn skip_name(m: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *m.get(i)?;
        if len & 0xC0 == 0xC0 {
            return Some(i + 2);
        }
        if len == 0 {
            return Some(i + 1);
        }
        i += 1 + usize::from(len);
    }
}

/// The first A record of the answer to query `id`.
fn dns_answer(m: &[u8], id: u16) -> Option<[u8; 4]> {
    if m.len() < 12 || m[0..2] != id.to_be_bytes() || m[2] & 0x80 == 0 || m[3] & 0x0F != 0 {
        return None;
    }
    let questions = u16::from_be_bytes([m[4], m[5]]);
    let answers = u16::from_be_bytes([m[6], m[7]]);
    let mut i = 12;
    for _ in 0..questions {
        i = skip_name(m, i)? + 4;
    }
    for _ in 0..answers {
        i = skip_name(m, i)?;
        let head = m.get(i..i + 10)?;
        let kind = u16::from_be_bytes([head[0], head[1]]);
        let len = usize::from(u16::from_be_bytes([head[8], head[9]]));
        let data = m.get(i + 10..i + 10 + len)?;
        if kind == 1 && len == 4 {
            return data.try_into().ok();
        }
        i += 10 + len;
    }
    None
}

/// Seconds from 1900 (NTP) to 1970 (Unix).
const NTP_TO_UNIX_S: i64 = 2_208_988_800;

/// The transmit time of an SNTP server answer, Unix ms.
fn sntp_unix_ms(m: &[u8]) -> Option<i64> {
    // Mode 4 (server), a stratum, and a transmit time.
    if m.len() < 48 || m[0] & 0x07 != 4 || m[1] == 0 || m[1] > 15 {
        return None;
    }
    let secs = i64::from(u32::from_be_bytes([m[40], m[41], m[42], m[43]]));
    let frac = u64::from(u32::from_be_bytes([m[44], m[45], m[46], m[47]]));
    if secs == 0 {
        return None;
    }
    // Era 1 starts in February 2036: seconds that small belong to it.
    let secs = if secs < NTP_TO_UNIX_S {
        secs + (1 << 32)
    } else {
        secs
    };
    Some((secs - NTP_TO_UNIX_S) * 1000 + ((frac * 1000) >> 32) as i64)
}

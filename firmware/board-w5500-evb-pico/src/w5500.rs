//! The W5500 Ethernet controller, used through its own TCP/IP stack ("hardware sockets").
//!
//! The W5500 does TCP (handshake, retransmission, acknowledgements, keep-alive) and UDP
//! itself; the firmware only moves bytes through its socket buffers over SPI. This keeps a
//! software TCP/IP stack out of the 128 KiB the firmware may use, and the TCP connection
//! survives while the processor is busy (a flash erase, a slow sensor).
//!
//! Every call here is synchronous (blocking SPI, a few microseconds), so a caller never holds
//! the chip across an `await`: tasks share it through a `RefCell` without conflicts.

use embassy_rp::gpio::Output;
use embassy_rp::peripherals::SPI0;
use embassy_rp::spi::{Blocking, Spi};

/// The SPI bus the W5500 is on.
pub type Bus = Spi<'static, SPI0, Blocking>;

/// Sockets of this firmware (the W5500 has eight).
pub mod socket {
    /// The MQTT connection (TCP).
    pub const MQTT: u8 = 0;
    /// DHCP (UDP port 68).
    pub const DHCP: u8 = 1;
    /// DNS queries (UDP).
    pub const DNS: u8 = 2;
    /// SNTP (UDP).
    pub const SNTP: u8 = 3;
    /// Sockets in use; the others get no buffer memory.
    pub const COUNT: u8 = 4;
}

/// Common registers.
mod reg {
    pub const MR: u16 = 0x0000;
    pub const GAR: u16 = 0x0001;
    pub const SUBR: u16 = 0x0005;
    pub const SHAR: u16 = 0x0009;
    pub const SIPR: u16 = 0x000F;
    pub const RTR: u16 = 0x0019;
    pub const RCR: u16 = 0x001B;
    pub const PHYCFGR: u16 = 0x002E;
    pub const VERSIONR: u16 = 0x0039;
}

/// Socket registers.
mod sn {
    pub const MR: u16 = 0x00;
    pub const CR: u16 = 0x01;
    pub const IR: u16 = 0x02;
    pub const SR: u16 = 0x03;
    pub const PORT: u16 = 0x04;
    pub const DIPR: u16 = 0x0C;
    pub const DPORT: u16 = 0x10;
    pub const RXBUF_SIZE: u16 = 0x1E;
    pub const TXBUF_SIZE: u16 = 0x1F;
    pub const TX_FSR: u16 = 0x20;
    pub const TX_WR: u16 = 0x24;
    pub const RX_RSR: u16 = 0x26;
    pub const RX_RD: u16 = 0x28;
    pub const KPALVTR: u16 = 0x2F;
}

/// Socket protocols (Sn_MR).
pub mod mode {
    /// TCP.
    pub const TCP: u8 = 0x01;
    /// UDP.
    pub const UDP: u8 = 0x02;
}

/// Socket commands (Sn_CR).
mod cmd {
    pub const OPEN: u8 = 0x01;
    pub const CONNECT: u8 = 0x04;
    pub const CLOSE: u8 = 0x10;
    pub const SEND: u8 = 0x20;
    pub const RECV: u8 = 0x40;
}

/// Socket interrupt flags (Sn_IR).
pub mod irq {
    /// TCP: data was sent.
    pub const SEND_OK: u8 = 0x10;
}

/// Socket states (Sn_SR).
pub mod status {
    /// Closed.
    pub const CLOSED: u8 = 0x00;
    /// TCP connection established.
    pub const ESTABLISHED: u8 = 0x17;
}

/// Socket buffer sizes, KiB (16 KiB each way in all): MQTT gets most, for a few full
/// telemetry messages in flight.
const TX_KIB: [u8; socket::COUNT as usize] = [8, 2, 2, 2];
const RX_KIB: [u8; socket::COUNT as usize] = [4, 2, 2, 2];

/// The W5500 on its SPI bus, with its chip select.
pub struct W5500 {
    spi: Bus,
    cs: Output<'static>,
}

impl core::fmt::Debug for W5500 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("W5500")
    }
}

/// Register block of the common registers, socket `n`'s registers, TX and RX buffers.
const COMMON: u8 = 0;
const fn regs(n: u8) -> u8 {
    n * 4 + 1
}
const fn tx_buf(n: u8) -> u8 {
    n * 4 + 2
}
const fn rx_buf(n: u8) -> u8 {
    n * 4 + 3
}

impl W5500 {
    /// The chip on `spi` (mode 0), selected by `cs` (idle high). Call [`W5500::init`] after
    /// a hardware reset.
    pub fn new(spi: Bus, cs: Output<'static>) -> Self {
        W5500 { spi, cs }
    }

    fn read(&mut self, addr: u16, block: u8, data: &mut [u8]) {
        self.cs.set_low();
        // The RP2040's SPI master has no error conditions: these calls cannot fail.
        let _ = self
            .spi
            .blocking_write(&[(addr >> 8) as u8, addr as u8, block << 3]);
        let _ = self.spi.blocking_read(data);
        self.cs.set_high();
    }

    fn write(&mut self, addr: u16, block: u8, data: &[u8]) {
        self.cs.set_low();
        let control = (block << 3) | 0x04;
        let _ = self
            .spi
            .blocking_write(&[(addr >> 8) as u8, addr as u8, control]);
        let _ = self.spi.blocking_write(data);
        self.cs.set_high();
    }

    fn read_u8(&mut self, addr: u16, block: u8) -> u8 {
        let mut b = [0];
        self.read(addr, block, &mut b);
        b[0]
    }

    /// A 16-bit register the chip may be updating: read until two reads agree.
    fn read_u16(&mut self, addr: u16, block: u8) -> u16 {
        let mut last = None;
        loop {
            let mut b = [0; 2];
            self.read(addr, block, &mut b);
            let v = u16::from_be_bytes(b);
            if last == Some(v) {
                return v;
            }
            last = Some(v);
        }
    }

    /// Soft reset, version check, socket memory, MAC address, retry timing. `false` if no
    /// W5500 answers.
    pub fn init(&mut self, mac: [u8; 6]) -> bool {
        self.write(reg::MR, COMMON, &[0x80]);
        // The reset bit clears itself within a few microseconds.
        for _ in 0..1000 {
            if self.read_u8(reg::MR, COMMON) & 0x80 == 0 {
                break;
            }
        }
        if self.read_u8(reg::VERSIONR, COMMON) != 0x04 {
            return false;
        }
        for n in 0..8u8 {
            let (tx, rx) = match n {
                n if n < socket::COUNT => (TX_KIB[n as usize], RX_KIB[n as usize]),
                _ => (0, 0),
            };
            self.write(sn::TXBUF_SIZE, regs(n), &[tx]);
            self.write(sn::RXBUF_SIZE, regs(n), &[rx]);
        }
        self.write(reg::SHAR, COMMON, &mac);
        // 200 ms first retransmission timeout, 8 retries (the chip's defaults, set anyway).
        self.write(reg::RTR, COMMON, &2000u16.to_be_bytes());
        self.write(reg::RCR, COMMON, &[8]);
        self.set_ip([0; 4], [0; 4], [0; 4]);
        true
    }

    /// Whether the Ethernet PHY has a link.
    pub fn link_up(&mut self) -> bool {
        self.read_u8(reg::PHYCFGR, COMMON) & 0x01 != 0
    }

    /// The node's address, network mask and router.
    pub fn set_ip(&mut self, ip: [u8; 4], mask: [u8; 4], gateway: [u8; 4]) {
        self.write(reg::SIPR, COMMON, &ip);
        self.write(reg::SUBR, COMMON, &mask);
        self.write(reg::GAR, COMMON, &gateway);
    }

    fn command(&mut self, n: u8, c: u8) {
        self.write(sn::CR, regs(n), &[c]);
        // The chip takes the command within a few SPI clocks.
        for _ in 0..1000 {
            if self.read_u8(sn::CR, regs(n)) == 0 {
                break;
            }
        }
    }

    /// Socket `n`'s state (`status::*`).
    pub fn status(&mut self, n: u8) -> u8 {
        self.read_u8(sn::SR, regs(n))
    }

    /// Reads and clears socket `n`'s interrupt flags (`irq::*`).
    pub fn take_irq(&mut self, n: u8, mask: u8) -> u8 {
        let ir = self.read_u8(sn::IR, regs(n)) & mask;
        if ir != 0 {
            self.write(sn::IR, regs(n), &[ir]);
        }
        ir
    }

    /// Closes socket `n` (whatever its state) and opens it in `protocol` on local `port`.
    pub fn open(&mut self, n: u8, protocol: u8, port: u16) -> bool {
        self.close(n);
        self.write(sn::MR, regs(n), &[protocol]);
        self.write(sn::PORT, regs(n), &port.to_be_bytes());
        if protocol == mode::TCP {
            // Keep-alive every 30 s (units of 5 s): a dead peer closes the socket.
            self.write(sn::KPALVTR, regs(n), &[6]);
        }
        self.write(sn::IR, regs(n), &[0xFF]);
        self.command(n, cmd::OPEN);
        self.status(n) != status::CLOSED
    }

    /// Closes socket `n` at once.
    pub fn close(&mut self, n: u8) {
        self.command(n, cmd::CLOSE);
        self.write(sn::IR, regs(n), &[0xFF]);
    }

    /// Starts a TCP connection of socket `n` to `ip:port`; watch [`W5500::status`].
    pub fn connect(&mut self, n: u8, ip: [u8; 4], port: u16) {
        self.set_peer(n, ip, port);
        self.command(n, cmd::CONNECT);
    }

    fn set_peer(&mut self, n: u8, ip: [u8; 4], port: u16) {
        self.write(sn::DIPR, regs(n), &ip);
        self.write(sn::DPORT, regs(n), &port.to_be_bytes());
    }

    /// Free space in socket `n`'s transmit buffer, bytes.
    pub fn tx_free(&mut self, n: u8) -> usize {
        usize::from(self.read_u16(sn::TX_FSR, regs(n)))
    }

    /// Bytes received on socket `n` and not yet consumed.
    pub fn rx_available(&mut self, n: u8) -> usize {
        usize::from(self.read_u16(sn::RX_RSR, regs(n)))
    }

    /// Appends `parts` to socket `n`'s transmit buffer and sends them as one segment or
    /// datagram. The caller checked [`W5500::tx_free`].
    pub fn send(&mut self, n: u8, parts: &[&[u8]]) {
        let mut ptr = self.read_u16(sn::TX_WR, regs(n));
        for part in parts {
            // Buffer addresses wrap inside the socket's buffer by themselves.
            self.write(ptr, tx_buf(n), part);
            ptr = ptr.wrapping_add(part.len() as u16);
        }
        self.write(sn::TX_WR, regs(n), &ptr.to_be_bytes());
        self.command(n, cmd::SEND);
    }

    /// Sends one UDP datagram from socket `n` to `ip:port`.
    pub fn send_to(&mut self, n: u8, ip: [u8; 4], port: u16, parts: &[&[u8]]) {
        self.set_peer(n, ip, port);
        self.send(n, parts);
    }

    /// Copies received bytes of socket `n`, from `offset` past the read pointer, into `out`,
    /// without consuming them.
    pub fn peek(&mut self, n: u8, offset: usize, out: &mut [u8]) {
        let ptr = self
            .read_u16(sn::RX_RD, regs(n))
            .wrapping_add(offset as u16);
        self.read(ptr, rx_buf(n), out);
    }

    /// Consumes `len` received bytes of socket `n`.
    pub fn consume(&mut self, n: u8, len: usize) {
        let ptr = self.read_u16(sn::RX_RD, regs(n)).wrapping_add(len as u16);
        self.write(sn::RX_RD, regs(n), &ptr.to_be_bytes());
        self.command(n, cmd::RECV);
    }

    /// Takes the next UDP datagram of socket `n`: its sender and its length, with up to
    /// `out.len()` bytes of it copied into `out` (the rest is dropped).
    pub fn recv_from(&mut self, n: u8, out: &mut [u8]) -> Option<([u8; 4], u16, usize)> {
        if self.rx_available(n) < 8 {
            return None;
        }
        // Each datagram starts with the sender's address, port and the data length.
        let mut head = [0u8; 8];
        self.peek(n, 0, &mut head);
        let len = usize::from(u16::from_be_bytes([head[6], head[7]]));
        let take = len.min(out.len());
        self.peek(n, 8, &mut out[..take]);
        self.consume(n, 8 + len);
        let ip = [head[0], head[1], head[2], head[3]];
        Some((ip, u16::from_be_bytes([head[4], head[5]]), take))
    }
}

//! The per-node configuration image: what makes one node a given terminal's node.
//!
//! Every node runs the same firmware binary. What differs (the terminal id, where the broker
//! is, the node's MQTT password, how the cabinet's network is set up, which sensors are wired
//! and their calibration) is written by `weir node provision` into one flash sector of its own,
//! the *configuration image*, which the board reads at start.
//!
//! # Layout ([`IMAGE_LEN`] bytes, one 4 KiB flash sector)
//!
//! | bytes | what |
//! |---|---|
//! | 0..8 | magic `WEIRPROV` |
//! | 8..10 | format version, little-endian ([`FORMAT`]) |
//! | 10..12 | length `n` of the body, little-endian |
//! | 12..12+n | the body: [`Provision`] in postcard |
//! | 12+n..16+n | CRC-32 (ISO-HDLC, as zlib's) of bytes 0..12+n, little-endian |
//! | the rest | `0xFF`, as erased flash |
//!
//! A sector that was never written reads as all `0xFF`: [`parse`] says so
//! ([`ProvisionError::Blank`]) so the board can show "not provisioned" rather than "corrupt".

use heapless::String;
use serde::{Deserialize, Serialize};
use weir_contract::{NodeConfig, TerminalId};

/// Size of the image: one erase sector of common NOR flash.
pub const IMAGE_LEN: usize = 4096;
/// First bytes of every image.
pub const MAGIC: [u8; 8] = *b"WEIRPROV";
/// The format this crate writes and reads.
pub const FORMAT: u16 = 1;
const HEADER_LEN: usize = 12;
const CRC_LEN: usize = 4;
const CRC: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Everything a node needs to know that the firmware binary does not.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Provision {
    /// The terminal this node measures; also its MQTT user name.
    pub terminal: String<32>,
    /// The node's MQTT password (the gateway keeps only its hash).
    pub password: String<64>,
    /// The broker nodes connect to.
    pub broker: Broker,
    /// Topic prefix (`weir` unless the site changed it).
    pub topic_prefix: String<32>,
    /// The SNTP server the node takes UTC from (host name or IPv4 address): a node samples
    /// only once it knows the time.
    pub time_server: String<64>,
    /// How the node gets its address on the cabinet's network.
    pub network: Network,
    /// Which sensors are wired, and how.
    pub sensors: SensorSet,
    /// Sampling, publishing, calibration and tank geometry until the gateway sends a
    /// configuration of its own.
    pub config: NodeConfig,
}

/// Where the MQTT broker is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Broker {
    /// Host name or IPv4 address as text, at most 64 characters.
    pub host: String<64>,
    /// TCP port (1883 unless the site changed it).
    pub port: u16,
}

impl Broker {
    /// The broker's IPv4 address when `host` is one (`"10.0.0.5"`), else `None` (a name the
    /// board must resolve with DNS).
    pub fn ipv4(&self) -> Option<[u8; 4]> {
        parse_ipv4(&self.host)
    }
}

/// The node's own address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Network {
    /// From the cabinet router's DHCP server (the usual 4G router does this).
    Dhcp,
    /// Fixed.
    Static {
        /// The node's address.
        address: [u8; 4],
        /// Network prefix length (24 for 255.255.255.0).
        prefix_len: u8,
        /// The router.
        gateway: [u8; 4],
        /// A DNS server (used only when the broker is given by name).
        dns: [u8; 4],
    },
}

/// The sensors of one terminal and how each is connected.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct SensorSet {
    /// Baud rate of the RS-485 Modbus bus (8N1), for the sensors on it.
    pub modbus_baud: u32,
    /// The effluent turbidity sensor.
    pub turbidity: Option<TurbiditySensor>,
    /// The outlet flow meter.
    pub flow: Option<FlowSensor>,
    /// The ultrasonic sensor above the sludge tank (UART, distance frames).
    pub sludge: Option<Ultrasonic>,
}

impl Default for SensorSet {
    fn default() -> Self {
        SensorSet {
            modbus_baud: 9600,
            turbidity: None,
            flow: None,
            sludge: None,
        }
    }
}

/// How the turbidity sensor is connected.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum TurbiditySensor {
    /// A Modbus RTU probe at this slave address (float32 in NTU, holding registers 0-1).
    Modbus {
        /// 1 to 247.
        slave: u8,
    },
    /// A 4-20 mA transmitter through the node's ADC.
    Loop {
        /// NTU at 4 mA.
        at_4ma: f32,
        /// NTU at 20 mA.
        at_20ma: f32,
    },
}

/// How the flow meter is connected.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum FlowSensor {
    /// An electromagnetic meter on the Modbus bus at this slave address.
    Modbus {
        /// 1 to 247.
        slave: u8,
    },
    /// A pulse output counted by the node.
    Pulse {
        /// Pulses per m3 (100 for one pulse per 10 L).
        pulses_per_m3: f64,
    },
}

/// The ultrasonic distance sensor's range, from its datasheet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ultrasonic {
    /// Blind zone, mm.
    pub min_mm: u16,
    /// Longest distance, mm.
    pub max_mm: u16,
}

impl Default for Ultrasonic {
    /// The DYP-A02: 30 to 4500 mm.
    fn default() -> Self {
        Ultrasonic {
            min_mm: 30,
            max_mm: 4500,
        }
    }
}

/// Why an image cannot be written or read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProvisionError {
    /// The sector is erased: the node was never provisioned.
    Blank,
    /// The first bytes are not [`MAGIC`]: not a configuration image.
    NotAnImage,
    /// Written in a format this firmware does not read.
    Format(u16),
    /// The body's length runs past the sector.
    Length(u16),
    /// The CRC does not match: the sector is damaged or half-written.
    Crc,
    /// The body does not decode.
    Body,
    /// The body decodes, but a field is wrong; the name says which, the text why.
    Invalid(&'static str, &'static str),
}

impl core::fmt::Display for ProvisionError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ProvisionError::Blank => f.write_str("no configuration image (the sector is erased)"),
            ProvisionError::NotAnImage => f.write_str("not a Weir configuration image"),
            ProvisionError::Format(v) => {
                write!(
                    f,
                    "configuration image format {v}; this firmware reads {FORMAT}"
                )
            }
            ProvisionError::Length(n) => {
                write!(f, "configuration body of {n} bytes overruns the sector")
            }
            ProvisionError::Crc => f.write_str("configuration image damaged (CRC mismatch)"),
            ProvisionError::Body => f.write_str("configuration image body does not decode"),
            ProvisionError::Invalid(field, why) => write!(f, "{field}: {why}"),
        }
    }
}

impl Provision {
    /// Checks every field a node relies on.
    pub fn validate(&self) -> Result<(), ProvisionError> {
        let bad = |field, why| Err(ProvisionError::Invalid(field, why));
        if TerminalId::new(&self.terminal).is_err() {
            return bad("terminal", "1-32 of A-Z a-z 0-9 _ -");
        }
        if self.password.is_empty() {
            return bad("password", "empty");
        }
        if !is_host(&self.broker.host) {
            return bad("broker.host", "a host name or IPv4 address");
        }
        if !is_host(&self.time_server) {
            return bad("time_server", "a host name or IPv4 address");
        }
        if self.broker.port == 0 {
            return bad("broker.port", "1 to 65535");
        }
        if self.topic_prefix.is_empty()
            || self
                .topic_prefix
                .bytes()
                .any(|c| matches!(c, b'/' | b'+' | b'#') || c.is_ascii_whitespace())
        {
            return bad("topic_prefix", "non-empty, without / + # or spaces");
        }
        if let Network::Static { prefix_len, .. } = self.network {
            if !(1..=32).contains(&prefix_len) {
                return bad("network.prefix_len", "1 to 32");
            }
        }
        let s = &self.sensors;
        if !matches!(s.modbus_baud, 1200..=115_200) {
            return bad("sensors.modbus_baud", "1200 to 115200");
        }
        let slave_ok = |slave: u8| (1..=247).contains(&slave);
        match s.turbidity {
            Some(TurbiditySensor::Modbus { slave }) if !slave_ok(slave) => {
                return bad("sensors.turbidity.slave", "1 to 247")
            }
            Some(TurbiditySensor::Loop { at_4ma, at_20ma })
                if !(at_4ma.is_finite() && at_20ma.is_finite() && at_4ma != at_20ma) =>
            {
                return bad("sensors.turbidity", "a finite, non-empty 4-20 mA span")
            }
            _ => {}
        }
        match s.flow {
            Some(FlowSensor::Modbus { slave }) if !slave_ok(slave) => {
                return bad("sensors.flow.slave", "1 to 247")
            }
            Some(FlowSensor::Pulse { pulses_per_m3 })
                if !(pulses_per_m3.is_finite() && pulses_per_m3 > 0.0) =>
            {
                return bad("sensors.flow.pulses_per_m3", "a positive number")
            }
            _ => {}
        }
        if let (Some(FlowSensor::Modbus { slave: a }), Some(TurbiditySensor::Modbus { slave: b })) =
            (s.flow, s.turbidity)
        {
            if a == b {
                return bad(
                    "sensors",
                    "flow meter and turbidity probe share a Modbus address",
                );
            }
        }
        if let Some(u) = s.sludge {
            if u.min_mm >= u.max_mm {
                return bad("sensors.sludge", "min_mm below max_mm");
            }
            if self.config.tank_depth_m.is_none() || self.config.sensor_height_m.is_none() {
                return bad(
                    "config",
                    "a sludge sensor needs tank_depth_m and sensor_height_m",
                );
            }
        }
        if self.config.validate().is_err() {
            return bad("config", "out of range (see NodeConfig::validate)");
        }
        Ok(())
    }

    /// Writes the image into `out`: header, body, CRC, and `0xFF` to the end.
    pub fn write(&self, out: &mut [u8; IMAGE_LEN]) -> Result<(), ProvisionError> {
        self.validate()?;
        out.fill(0xFF);
        let body_space = &mut out[HEADER_LEN..IMAGE_LEN - CRC_LEN];
        let n = postcard::to_slice(self, body_space)
            .map_err(|_| ProvisionError::Body)?
            .len();
        out[..8].copy_from_slice(&MAGIC);
        out[8..10].copy_from_slice(&FORMAT.to_le_bytes());
        out[10..12].copy_from_slice(&(n as u16).to_le_bytes());
        let crc = CRC.checksum(&out[..HEADER_LEN + n]);
        out[HEADER_LEN + n..HEADER_LEN + n + CRC_LEN].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }
}

/// Reads and checks an image, as the board does at start.
pub fn parse(image: &[u8]) -> Result<Provision, ProvisionError> {
    if image.len() >= HEADER_LEN && image[..HEADER_LEN].iter().all(|&b| b == 0xFF) {
        return Err(ProvisionError::Blank);
    }
    if image.len() < HEADER_LEN || image[..8] != MAGIC {
        return Err(ProvisionError::NotAnImage);
    }
    let format = u16::from_le_bytes([image[8], image[9]]);
    if format != FORMAT {
        return Err(ProvisionError::Format(format));
    }
    let n = u16::from_le_bytes([image[10], image[11]]);
    let end = HEADER_LEN + n as usize;
    if end + CRC_LEN > image.len().min(IMAGE_LEN) {
        return Err(ProvisionError::Length(n));
    }
    let stored = u32::from_le_bytes([image[end], image[end + 1], image[end + 2], image[end + 3]]);
    if CRC.checksum(&image[..end]) != stored {
        return Err(ProvisionError::Crc);
    }
    let (p, rest): (Provision, _) =
        postcard::take_from_bytes(&image[HEADER_LEN..end]).map_err(|_| ProvisionError::Body)?;
    if !rest.is_empty() {
        return Err(ProvisionError::Body);
    }
    p.validate()?;
    Ok(p)
}

/// A host name or a dotted IPv4 address: letters, digits, dots and hyphens.
fn is_host(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'.' || c == b'-')
}

/// `"10.0.0.5"` as bytes; `None` for anything else.
pub fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut parts = s.split('.');
    for b in &mut out {
        let p = parts.next()?;
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *b = p.parse().ok()?;
    }
    parts.next().is_none().then_some(out)
}

/// Where boards keep their flash areas, so the provisioning command and the board firmware
/// agree on one address.
pub mod layout {
    /// A board's flash map, as absolute addresses in its memory map.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub struct FlashLayout {
        /// Board name as the provisioning command takes it.
        pub board: &'static str,
        /// UF2 family id of the chip (for drag-and-drop flashing).
        pub uf2_family: u32,
        /// Where flash starts in the memory map.
        pub flash_base: u32,
        /// Flash size, bytes.
        pub flash_len: u32,
        /// The boot loader's space (with the chip's second-stage bootloader, if any, first):
        /// start and end.
        pub boot_loader: (u32, u32),
        /// The boot loader's STATE partition (embassy-boot: swap and confirmation marks).
        pub boot_state: (u32, u32),
        /// Start of the firmware's space: the ACTIVE slot the boot loader starts.
        pub firmware: u32,
        /// End of the ACTIVE slot.
        pub firmware_end: u32,
        /// The DFU slot, where an update is downloaded: one page larger than ACTIVE.
        pub dfu: (u32, u32),
        /// Settings partition (boot counter, gateway configuration).
        pub settings: (u32, u32),
        /// Readings not yet batched.
        pub readings: (u32, u32),
        /// The message queue.
        pub queue: (u32, u32),
        /// The configuration image: one sector.
        pub provision: u32,
    }

    /// WIZnet W5500-EVB-Pico: RP2040, 2 MiB QSPI flash at 0x1000_0000.
    ///
    /// 0x1000_0000 boot2 (256 B) and the boot loader (embassy-boot-rp) to 24 KiB; its
    /// STATE 4 KiB; the firmware's ACTIVE slot 256 KiB; the DFU slot 260 KiB; settings
    /// 8 KiB, readings 64 KiB, queue 1428 KiB; the configuration image in the last 4 KiB
    /// sector.
    pub const W5500_EVB_PICO: FlashLayout = FlashLayout {
        board: "w5500-evb-pico",
        uf2_family: 0xE48B_FF56,
        flash_base: 0x1000_0000,
        flash_len: 2 * 1024 * 1024,
        boot_loader: (0x1000_0000, 0x1000_6000),
        boot_state: (0x1000_6000, 0x1000_7000),
        firmware: 0x1000_7000,
        firmware_end: 0x1004_7000,
        dfu: (0x1004_7000, 0x1008_8000),
        settings: (0x1008_8000, 0x1008_A000),
        readings: (0x1008_A000, 0x1009_A000),
        queue: (0x1009_A000, 0x101F_F000),
        provision: 0x101F_F000,
    };

    /// Every board the provisioning command knows.
    pub const BOARDS: &[FlashLayout] = &[W5500_EVB_PICO];
}

#[cfg(test)]
mod tests {
    use super::layout::BOARDS;

    #[test]
    fn every_board_layout_tiles_its_flash_and_has_a_dfu_slot_one_page_larger() {
        for l in BOARDS {
            let parts = [
                l.boot_loader,
                l.boot_state,
                (l.firmware, l.firmware_end),
                l.dfu,
                l.settings,
                l.readings,
                l.queue,
                (l.provision, l.provision + 4096),
            ];
            assert_eq!(parts[0].0, l.flash_base, "{}", l.board);
            for w in parts.windows(2) {
                assert_eq!(w[0].1, w[1].0, "{}: {w:x?} leave a gap or overlap", l.board);
            }
            assert_eq!(parts[7].1, l.flash_base + l.flash_len, "{}", l.board);
            for (start, end) in parts {
                assert!(
                    start % 4096 == 0 && end % 4096 == 0 && start < end,
                    "{}",
                    l.board
                );
            }
            // embassy-boot's swap needs one spare page in DFU.
            assert_eq!(
                l.dfu.1 - l.dfu.0,
                l.firmware_end - l.firmware + 4096,
                "{}",
                l.board
            );
        }
    }
}

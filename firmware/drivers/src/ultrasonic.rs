//! An ultrasonic distance sensor on a UART, above the sludge tank.
//!
//! Sensors of the DYP-A02 family (and look-alikes such as the ME007YS) in UART automatic
//! output mode send, every 100-300 ms, 9600 baud 8N1, a 4-byte frame:
//!
//! | byte | content |
//! |---|---|
//! | 0 | header, 0xFF |
//! | 1 | distance, high byte, mm |
//! | 2 | distance, low byte, mm |
//! | 3 | SUM: low byte of the sum of bytes 0 to 2 |
//!
//! for example `FF 07 A1 A7` is 1953 mm. The sensor only talks (its RX floats or is tied high,
//! the "processed value" mode), so the node's TX is not used. Nothing marks a frame's end and
//! the distance bytes may themselves be 0xFF, so the driver resynchronises: it slides over the
//! byte stream until four bytes start with 0xFF and carry a matching SUM.

use embedded_hal::delay::DelayNs;
use embedded_io::{Read, ReadReady};
use weir_contract::Fault;

use crate::FaultCode;

const HEADER: u8 = 0xFF;
const FRAME_LEN: usize = 4;

/// How many bytes a read examines before giving up on finding a valid frame: 16 frames.
pub const MAX_SCAN_BYTES: usize = 16 * FRAME_LEN;

/// What buffered input a read discards first, at most, so that it reports a fresh distance.
const MAX_STALE_BYTES: usize = 512;

/// Timing and range of the sensor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Shortest distance the sensor measures (its blind zone), mm; below it, out of range.
    pub min_mm: u16,
    /// Longest distance the sensor measures, mm; above it, out of range.
    pub max_mm: u16,
    /// How long to wait for a valid frame, µs.
    pub timeout_us: u32,
    /// Pause between two polls of `ReadReady` while nothing has arrived, µs.
    pub poll_interval_us: u32,
}

impl Config {
    /// The DYP-A02's 30-4500 mm, a 1 s timeout (three times its slowest output period), 1 ms
    /// polls. Set the range from the datasheet of the sensor fitted.
    pub const fn new() -> Self {
        Config {
            min_mm: 30,
            max_mm: 4_500,
            timeout_us: 1_000_000,
            poll_interval_us: 1_000,
        }
    }

    /// Polls without a byte before a read gives up.
    pub const fn timeout_polls(&self) -> u32 {
        let poll = if self.poll_interval_us == 0 {
            1
        } else {
            self.poll_interval_us
        };
        self.timeout_us.div_ceil(poll)
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}

/// Why an ultrasonic reading failed. `E` is the UART's error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error<E> {
    /// The UART reported an error.
    Bus(E),
    /// Not a byte within the timeout.
    Timeout,
    /// Bytes arrived but no frame with a matching SUM among them.
    Checksum,
    /// The distance is outside the sensor's range.
    OutOfRange,
}

impl<E> FaultCode for Error<E> {
    fn fault(&self) -> Fault {
        match self {
            Error::Bus(_) | Error::Checksum => Fault::Checksum,
            Error::Timeout => Fault::NoResponse,
            Error::OutOfRange => Fault::OutOfRange,
        }
    }
}

impl<E> From<Error<E>> for Fault {
    fn from(e: Error<E>) -> Fault {
        e.fault()
    }
}

/// An ultrasonic distance sensor on `uart`, polled with `delay`.
#[derive(Debug)]
pub struct UltrasonicSensor<U, D> {
    uart: U,
    delay: D,
    config: Config,
}

impl<U, D> UltrasonicSensor<U, D>
where
    U: Read + ReadReady,
    D: DelayNs,
{
    /// A sensor whose TX is wired to `uart`'s RX.
    pub fn new(uart: U, delay: D, config: Config) -> Self {
        UltrasonicSensor {
            uart,
            delay,
            config,
        }
    }

    /// Gives back the UART and the delay.
    pub fn destroy(self) -> (U, D) {
        (self.uart, self.delay)
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads a fresh distance, mm: input buffered before the call is discarded, then the
    /// first valid frame is taken.
    pub fn read_distance_mm(&mut self) -> Result<u16, Error<U::Error>> {
        self.discard_stale()?;
        let mm = self.next_frame()?;
        if (self.config.min_mm..=self.config.max_mm).contains(&mm) {
            Ok(mm)
        } else {
            Err(Error::OutOfRange)
        }
    }

    fn discard_stale(&mut self) -> Result<(), Error<U::Error>> {
        let mut scratch = [0u8; 16];
        let mut dropped = 0;
        while dropped < MAX_STALE_BYTES && self.uart.read_ready().map_err(Error::Bus)? {
            match self.uart.read(&mut scratch).map_err(Error::Bus)? {
                0 => break,
                n => dropped += n,
            }
        }
        Ok(())
    }

    /// The distance in the first valid frame, within the timeout and [`MAX_SCAN_BYTES`].
    fn next_frame(&mut self) -> Result<u16, Error<U::Error>> {
        let mut window = [0u8; FRAME_LEN];
        let mut len = 0;
        let mut scanned = 0;
        let mut polls = 0;
        let timeout_polls = self.config.timeout_polls();
        while scanned < MAX_SCAN_BYTES {
            let mut byte = [0u8];
            // One byte at a time: the frames are 4 bytes at 9600 baud, and a byte never read
            // is left for the next call.
            if !self.uart.read_ready().map_err(Error::Bus)?
                || self.uart.read(&mut byte).map_err(Error::Bus)? == 0
            {
                if polls >= timeout_polls {
                    break;
                }
                self.delay.delay_us(self.config.poll_interval_us);
                polls += 1;
                continue;
            }
            scanned += 1;
            if len == 0 && byte[0] != HEADER {
                continue;
            }
            window[len] = byte[0];
            len += 1;
            if len < FRAME_LEN {
                continue;
            }
            let [h, hi, lo, sum] = window;
            if h.wrapping_add(hi).wrapping_add(lo) == sum {
                return Ok(u16::from_be_bytes([hi, lo]));
            }
            // Not a frame: the next one may start at a 0xFF inside it.
            len = match window[1..].iter().position(|&b| b == HEADER) {
                Some(i) => {
                    window.copy_within(1 + i.., 0);
                    FRAME_LEN - 1 - i
                }
                None => 0,
            };
        }
        Err(if scanned == 0 {
            Error::Timeout
        } else {
            Error::Checksum
        })
    }
}

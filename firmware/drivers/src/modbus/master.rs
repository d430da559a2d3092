//! The bus master: silence, send, receive, check, retry.

use core::convert::Infallible;

use embedded_hal::delay::DelayNs;
use embedded_hal::digital::{Error as _, ErrorType, OutputPin};
use embedded_io::{Read, ReadReady, Write};

use super::frame::{self, Refusal};
use super::{Error, RegisterKind, Registers, MAX_FRAME};

/// Timing and retry settings of a [`Master`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// The line's baud rate; it sets the inter-frame silence.
    pub baud_rate: u32,
    /// How long to wait for the first byte of an answer, µs.
    pub response_timeout_us: u32,
    /// Pause between two polls of `ReadReady` while nothing has arrived, µs.
    pub poll_interval_us: u32,
    /// How many times a failed exchange is sent again (0: one attempt only).
    pub retries: u8,
}

impl Config {
    /// Settings for `baud_rate`: a 500 ms response timeout, 1 ms polls and 2 retries.
    pub const fn new(baud_rate: u32) -> Self {
        Config {
            baud_rate,
            response_timeout_us: 500_000,
            poll_interval_us: 1_000,
            retries: 2,
        }
    }

    /// The inter-frame silence, 3.5 character times, µs (rounded up).
    ///
    /// A character is 11 bits on an RTU line (start, 8 data, parity or a second stop bit,
    /// stop); counting 11 also for 8N1 lines only makes the pause longer. Above 19200 baud the
    /// specification fixes the silence at 1750 µs.
    pub const fn silence_us(&self) -> u32 {
        if self.baud_rate > 19_200 {
            1_750
        } else {
            // 3.5 characters x 11 bits x 1e6 µs/s
            38_500_000u32.div_ceil(at_least_one(self.baud_rate))
        }
    }

    /// Polls without a byte before an answer counts as missing.
    pub const fn response_polls(&self) -> u32 {
        at_least_one(self.response_timeout_us.div_ceil(self.poll_interval()))
    }

    /// Polls without a byte, once an answer has started, that end it (the inter-frame
    /// silence, at least one poll).
    pub const fn gap_polls(&self) -> u32 {
        at_least_one(self.silence_us().div_ceil(self.poll_interval()))
    }

    const fn poll_interval(&self) -> u32 {
        at_least_one(self.poll_interval_us)
    }
}

const fn at_least_one(n: u32) -> u32 {
    if n == 0 {
        1
    } else {
        n
    }
}

impl Default for Config {
    /// 9600 baud, the most common factory setting of Modbus sensors.
    fn default() -> Self {
        Config::new(9_600)
    }
}

/// A direction "pin" for transceivers that switch by themselves (auto-direction RS-485
/// modules) or UARTs that drive DE in hardware.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AutoDirection;

impl ErrorType for AutoDirection {
    type Error = Infallible;
}

impl OutputPin for AutoDirection {
    fn set_low(&mut self) -> Result<(), Infallible> {
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// How many times the master waits for the line to fall silent before sending anyway. A line
/// that never goes quiet then corrupts the answer, which the CRC check reports.
const SILENCE_ROUNDS: u32 = 4;

/// A Modbus RTU master on a half-duplex RS-485 line.
///
/// Wiring: the UART's TX and RX go to the transceiver's DI and RO; `direction` drives DE and
/// /RE tied together (high transmits, low receives), so the node does not hear its own
/// request. The UART's `flush` must return only once the last stop bit has left the shift
/// register, or the direction pin drops too early and cuts the request's CRC.
#[derive(Debug)]
pub struct Master<U, P, D> {
    uart: U,
    direction: P,
    delay: D,
    config: Config,
}

impl<U, P, D> Master<U, P, D>
where
    U: Read + Write + ReadReady,
    P: OutputPin,
    D: DelayNs,
{
    /// A master on `uart`, switching the transceiver with `direction`. The pin is not touched
    /// until the first request; it should already be low (receiving).
    pub fn new(uart: U, direction: P, delay: D, config: Config) -> Self {
        Master {
            uart,
            direction,
            delay,
            config,
        }
    }

    /// Gives back the UART, the direction pin and the delay.
    pub fn destroy(self) -> (U, P, D) {
        (self.uart, self.direction, self.delay)
    }

    /// The settings in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Reads `out.len()` holding registers (function 0x03) of `slave` from `address`.
    pub fn read_holding_registers(
        &mut self,
        slave: u8,
        address: u16,
        out: &mut [u16],
    ) -> Result<(), Error<U::Error>> {
        self.read(slave, RegisterKind::Holding, address, out)
    }

    /// Reads `out.len()` input registers (function 0x04) of `slave` from `address`.
    pub fn read_input_registers(
        &mut self,
        slave: u8,
        address: u16,
        out: &mut [u16],
    ) -> Result<(), Error<U::Error>> {
        self.read(slave, RegisterKind::Input, address, out)
    }

    fn read(
        &mut self,
        slave: u8,
        kind: RegisterKind,
        address: u16,
        out: &mut [u16],
    ) -> Result<(), Error<U::Error>> {
        if !frame::is_valid_read(slave, out.len()) {
            return Err(Error::InvalidRequest);
        }
        // At most 125 registers, checked above.
        let request = frame::read_request(slave, kind, address, out.len() as u16);
        let function = kind.function();
        let mut answer = [0u8; MAX_FRAME];
        let mut last = Error::Timeout;
        for _ in 0..=self.config.retries {
            let result = self
                .exchange(&request, function, &mut answer)
                .and_then(|len| {
                    frame::parse_read_response(&answer[..len], slave, function, out).map_err(
                        |refusal| match refusal {
                            Refusal::Checksum => Error::Checksum,
                            Refusal::Exception(code) => Error::Exception(code),
                            Refusal::Malformed => Error::Malformed,
                        },
                    )
                });
            match result {
                Ok(()) => return Ok(()),
                Err(e) if e.is_transient() => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    /// One attempt: wait for silence, send `request`, receive the answer into `answer`;
    /// returns the answer's length.
    fn exchange(
        &mut self,
        request: &[u8],
        function: u8,
        answer: &mut [u8; MAX_FRAME],
    ) -> Result<usize, Error<U::Error>> {
        self.wait_for_silence()?;
        self.send(request)?;
        self.receive(function, answer)
    }

    /// Waits until the line has been quiet for the inter-frame silence, discarding whatever
    /// arrives meanwhile (a late answer to an earlier, timed-out request).
    fn wait_for_silence(&mut self) -> Result<(), Error<U::Error>> {
        for _ in 0..SILENCE_ROUNDS {
            self.delay.delay_us(self.config.silence_us());
            if !self.discard_input()? {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Reads and drops what the UART holds, at most one frame's worth; whether it held any.
    fn discard_input(&mut self) -> Result<bool, Error<U::Error>> {
        let mut scratch = [0u8; 32];
        let mut dropped = 0;
        while dropped < MAX_FRAME && self.uart.read_ready().map_err(Error::Bus)? {
            match self.uart.read(&mut scratch).map_err(Error::Bus)? {
                0 => break,
                n => dropped += n,
            }
        }
        Ok(dropped > 0)
    }

    fn send(&mut self, request: &[u8]) -> Result<(), Error<U::Error>> {
        self.direction
            .set_high()
            .map_err(|e| Error::Pin(e.kind()))?;
        let sent = self.write_all(request).and_then(|()| self.uart.flush());
        // Release the line even when the UART failed, or the node would jam the bus.
        self.direction.set_low().map_err(|e| Error::Pin(e.kind()))?;
        sent.map_err(Error::Bus)
    }

    fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), U::Error> {
        while !bytes.is_empty() {
            match self.uart.write(bytes)? {
                // A UART that accepts nothing would loop forever (and `write_all` panics); the
                // cut request then goes unanswered and times out.
                0 => break,
                n => bytes = &bytes[n..],
            }
        }
        Ok(())
    }

    /// Receives one answer: up to its length (known from its third byte), until the line
    /// falls silent, or until the buffer is full; returns the number of bytes.
    fn receive(
        &mut self,
        function: u8,
        answer: &mut [u8; MAX_FRAME],
    ) -> Result<usize, Error<U::Error>> {
        let mut len = 0;
        let mut idle = 0;
        loop {
            let want = match frame::expected_len(function, &answer[..len]) {
                Some(n) => n.min(MAX_FRAME),
                None if len < 3 => 3,
                None => MAX_FRAME,
            };
            if len >= want {
                return Ok(len);
            }
            if self.uart.read_ready().map_err(Error::Bus)? {
                // Never more than the frame: what follows stays for `discard_input`.
                let n = self.uart.read(&mut answer[len..want]).map_err(Error::Bus)?;
                if n > 0 {
                    len += n;
                    idle = 0;
                    continue;
                }
            }
            let limit = if len == 0 {
                self.config.response_polls()
            } else {
                self.config.gap_polls()
            };
            if idle >= limit {
                return if len == 0 {
                    Err(Error::Timeout)
                } else {
                    Ok(len)
                };
            }
            self.delay.delay_us(self.config.poll_interval_us);
            idle += 1;
        }
    }
}

impl<U, P, D> Registers for Master<U, P, D>
where
    U: Read + Write + ReadReady,
    P: OutputPin,
    D: DelayNs,
{
    type Error = Error<U::Error>;

    fn read_registers(
        &mut self,
        slave: u8,
        kind: RegisterKind,
        address: u16,
        out: &mut [u16],
    ) -> Result<(), Self::Error> {
        self.read(slave, kind, address, out)
    }
}

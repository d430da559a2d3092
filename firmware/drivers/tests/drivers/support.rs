//! Scripted fakes for what `embedded-hal-mock` does not cover: an `embedded-io` UART, an ADC
//! channel and a pulse counter; and a script of a whole Modbus exchange.

use std::collections::VecDeque;

use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as DelayTx};
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};
use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
use weir_drivers::current_loop::AdcChannel;
use weir_drivers::modbus::{self, crc16, Master};
use weir_drivers::pulse::PulseCounter;

/// One thing the UART's peer does or expects, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// The driver must write exactly these bytes (in one or more `write` calls).
    Write(Vec<u8>),
    /// The driver must flush.
    Flush,
    /// `read_ready` answers `false` this many times before the script moves on.
    Idle(usize),
    /// These bytes become readable.
    Reply(Vec<u8>),
    /// The next `read_ready` fails with this error.
    Fail(ErrorKind),
}

/// A UART that plays a script: it checks every byte written against it, serves scripted bytes
/// to reads, and at [`done`](ScriptedUart::done) asserts that the whole script was played.
///
/// `read_ready` answers `false` whenever the next step is not a reply: the line is quiet.
#[derive(Debug)]
pub struct ScriptedUart {
    script: VecDeque<Step>,
    written: Vec<u8>,
}

impl ScriptedUart {
    pub fn new(script: impl IntoIterator<Item = Step>) -> Self {
        ScriptedUart {
            script: script.into_iter().collect(),
            written: Vec::new(),
        }
    }

    /// Asserts that every scripted byte was written and every scripted reply read.
    pub fn done(&self) {
        assert!(
            self.script.is_empty(),
            "the driver stopped before the end of the script; left: {:02X?}",
            self.script
        );
    }
}

impl ErrorType for ScriptedUart {
    type Error = ErrorKind;
}

impl ReadReady for ScriptedUart {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        loop {
            match self.script.front_mut() {
                Some(Step::Idle(0)) => {
                    self.script.pop_front();
                }
                Some(Step::Idle(n)) => {
                    *n -= 1;
                    return Ok(false);
                }
                Some(Step::Reply(bytes)) => return Ok(!bytes.is_empty()),
                Some(Step::Fail(kind)) => {
                    let kind = *kind;
                    self.script.pop_front();
                    return Err(kind);
                }
                Some(Step::Write(_) | Step::Flush) | None => return Ok(false),
            }
        }
    }
}

impl Read for ScriptedUart {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        let Some(Step::Reply(bytes)) = self.script.front_mut() else {
            panic!(
                "read with nothing to read (a real UART would block); next step: {:02X?}",
                self.script.front()
            );
        };
        let n = buf.len().min(bytes.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        bytes.drain(..n);
        if bytes.is_empty() {
            self.script.pop_front();
        }
        Ok(n)
    }
}

impl Write for ScriptedUart {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let Some(Step::Write(expected)) = self.script.front_mut() else {
            panic!(
                "unexpected write of {buf:02X?} after {:02X?}; next step: {:02X?}",
                self.written,
                self.script.front()
            );
        };
        let n = buf.len().min(expected.len());
        assert_eq!(
            buf[..n],
            expected[..n],
            "wrong bytes written after {:02X?}",
            self.written
        );
        expected.drain(..n);
        if expected.is_empty() {
            self.script.pop_front();
        }
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        match self.script.pop_front() {
            Some(Step::Flush) => Ok(()),
            other => panic!("unexpected flush; next step: {other:02X?}"),
        }
    }
}

/// `bytes` followed by their CRC-16/MODBUS, low byte first.
pub fn with_crc(bytes: &[u8]) -> Vec<u8> {
    let mut frame = bytes.to_vec();
    frame.extend_from_slice(&crc16(bytes).to_le_bytes());
    frame
}

/// The Modbus settings of the tests: 9600 baud (4011 µs of silence), 1 ms polls, a 5 ms
/// response timeout (5 polls), 2 retries.
pub fn modbus_config() -> modbus::Config {
    modbus::Config {
        baud_rate: 9_600,
        response_timeout_us: 5_000,
        poll_interval_us: 1_000,
        retries: 2,
    }
}

/// 3.5 characters of 11 bits at 9600 baud, rounded up to the µs.
pub const SILENCE_US: u32 = 4_011;
/// Polls before an answer counts as missing with [`modbus_config`].
pub const RESPONSE_POLLS: usize = 5;
/// Polls that end a started answer with [`modbus_config`].
pub const GAP_POLLS: usize = 5;
const POLL_US: u32 = 1_000;

/// A Modbus master under test.
pub type TestMaster = Master<ScriptedUart, PinMock, CheckedDelay>;

/// Everything a Modbus master should do, attempt by attempt: UART steps, direction pin
/// changes, delays.
#[derive(Default)]
pub struct ModbusScript {
    uart: Vec<Step>,
    pin: Vec<PinTx>,
    delay: Vec<DelayTx>,
}

impl ModbusScript {
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes already waiting in the UART before the master starts: it must wait for the
    /// silence, drop them, and wait for the silence again.
    pub fn stale(mut self, bytes: &[u8]) -> Self {
        self.uart.push(Step::Reply(bytes.to_vec()));
        self.delay.push(DelayTx::delay_us(SILENCE_US));
        self
    }

    /// The master waits for the silence, drives the transceiver, sends `request`, flushes,
    /// releases the transceiver.
    pub fn request(mut self, request: &[u8]) -> Self {
        self.delay.push(DelayTx::delay_us(SILENCE_US));
        self.pin.push(PinTx::set(State::High));
        self.uart.push(Step::Write(request.to_vec()));
        self.uart.push(Step::Flush);
        self.pin.push(PinTx::set(State::Low));
        self
    }

    /// After `polls` empty polls, `reply` arrives (and is read whole).
    pub fn reply_after(mut self, polls: usize, reply: &[u8]) -> Self {
        self.idle(polls);
        self.uart.push(Step::Reply(reply.to_vec()));
        self
    }

    /// Nothing arrives for `polls` polls.
    pub fn quiet(mut self, polls: usize) -> Self {
        self.idle(polls);
        self
    }

    /// The UART fails the next `read_ready`.
    pub fn uart_fails(mut self, kind: ErrorKind) -> Self {
        self.uart.push(Step::Fail(kind));
        self
    }

    fn idle(&mut self, polls: usize) {
        if polls > 0 {
            self.uart.push(Step::Idle(polls));
        }
        self.delay
            .extend(std::iter::repeat_n(DelayTx::delay_us(POLL_US), polls));
    }

    /// A master with [`modbus_config`] (and `retries`) that must do exactly this.
    pub fn master(self, retries: u8) -> TestMaster {
        let config = modbus::Config {
            retries,
            ..modbus_config()
        };
        Master::new(
            ScriptedUart::new(self.uart),
            PinMock::new(&self.pin),
            CheckedDelay::new(&self.delay),
            config,
        )
    }
}

/// Takes the master apart and checks that it did everything it was scripted to, nothing more.
pub fn finish(master: TestMaster) {
    let (uart, mut pin, mut delay) = master.destroy();
    uart.done();
    pin.done();
    delay.done();
}

/// An ADC channel that returns scripted conversions, in order.
#[derive(Debug)]
pub struct ScriptedAdc {
    conversions: VecDeque<Result<u32, &'static str>>,
}

impl ScriptedAdc {
    pub fn new(conversions: impl IntoIterator<Item = Result<u32, &'static str>>) -> Self {
        ScriptedAdc {
            conversions: conversions.into_iter().collect(),
        }
    }

    pub fn done(&self) {
        assert!(
            self.conversions.is_empty(),
            "conversions left unread: {:?}",
            self.conversions
        );
    }
}

impl AdcChannel for ScriptedAdc {
    type Error = &'static str;

    fn read_millivolts(&mut self) -> Result<u32, Self::Error> {
        self.conversions
            .pop_front()
            .expect("the driver read the ADC more often than scripted")
    }
}

/// A pulse counter that returns scripted counts, in order.
#[derive(Debug)]
pub struct ScriptedCounter {
    counts: VecDeque<Result<u32, &'static str>>,
}

impl ScriptedCounter {
    pub fn new(counts: impl IntoIterator<Item = Result<u32, &'static str>>) -> Self {
        ScriptedCounter {
            counts: counts.into_iter().collect(),
        }
    }

    pub fn done(&self) {
        assert!(
            self.counts.is_empty(),
            "counts left unread: {:?}",
            self.counts
        );
    }
}

impl PulseCounter for ScriptedCounter {
    type Error = &'static str;

    fn count(&mut self) -> Result<u32, Self::Error> {
        self.counts
            .pop_front()
            .expect("the driver read the counter more often than scripted")
    }
}

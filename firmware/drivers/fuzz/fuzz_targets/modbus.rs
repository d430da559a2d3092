//! Any bytes as what a Modbus RTU line carries while the master reads: garbage before the
//! request, answers cut, split, late or wrong. No panic, no endless loop, the request on the
//! wire is always the same well-formed one, and a read that succeeds took its registers from a
//! well-formed answer of the addressed slave that really was on the line.
//!
//! Input: `[slave, what, retries, chunk]` and then the line, as events: a byte `c < 0x80` is
//! followed by `c + 1` bytes that arrive together; `c >= 0x80` is `c - 0x7F` polls of silence.
//! `what` picks the read (low 2 bits: registers, a turbidity probe, flow, totaliser; bit 2:
//! holding or input registers) and, for plain registers, how many (bits 3-7, 1 to 32).
//! `chunk` caps the bytes one UART read returns (1 to 16). What arrives before the first
//! silence is what the master drops before it sends (a late answer to an earlier request).
#![no_main]

use std::collections::VecDeque;

use embedded_hal::delay::DelayNs;
use embedded_io::{ErrorKind, ErrorType, Read, ReadReady, Write};
use libfuzzer_sys::fuzz_target;
use weir_drivers::flow_meter::{self, FlowMeter};
use weir_drivers::modbus::{crc16, AutoDirection, Config, Master, RegisterKind};
use weir_drivers::turbidity::{self, TurbidityProbe};

enum Event {
    Bytes(VecDeque<u8>),
    Silence(u32),
}

/// The line as the UART sees it. Time passes only when the master polls `read_ready`.
struct Line {
    events: VecDeque<Event>,
    chunk: usize,
    /// Every byte the master read, in order.
    heard: Vec<u8>,
    written: Vec<u8>,
}

impl ErrorType for Line {
    type Error = ErrorKind;
}

impl ReadReady for Line {
    fn read_ready(&mut self) -> Result<bool, ErrorKind> {
        loop {
            match self.events.front_mut() {
                None => return Ok(false),
                Some(Event::Bytes(b)) if b.is_empty() => {
                    self.events.pop_front();
                }
                Some(Event::Bytes(_)) => return Ok(true),
                Some(Event::Silence(0)) => {
                    self.events.pop_front();
                }
                Some(Event::Silence(n)) => {
                    *n -= 1;
                    return Ok(false);
                }
            }
        }
    }
}

impl Read for Line {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, ErrorKind> {
        // A UART read blocks until a byte comes; the master only reads after read_ready.
        let Some(Event::Bytes(bytes)) = self.events.front_mut() else {
            panic!("read without read_ready");
        };
        let n = buf.len().min(bytes.len()).min(self.chunk);
        for slot in &mut buf[..n] {
            *slot = bytes.pop_front().expect("counted");
        }
        self.heard.extend_from_slice(&buf[..n]);
        Ok(n)
    }
}

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> Result<usize, ErrorKind> {
        let n = buf.len().min(self.chunk);
        self.written.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), ErrorKind> {
        Ok(())
    }
}

struct NoDelay;

impl DelayNs for NoDelay {
    fn delay_ns(&mut self, _ns: u32) {}
}

fn line(events: &[u8], chunk: usize) -> Line {
    let mut out = VecDeque::new();
    let mut rest = events;
    while let Some((&c, tail)) = rest.split_first() {
        if c < 0x80 {
            let n = (usize::from(c) + 1).min(tail.len());
            out.push_back(Event::Bytes(tail[..n].iter().copied().collect()));
            rest = &tail[n..];
        } else {
            out.push_back(Event::Silence(u32::from(c - 0x7F)));
            rest = tail;
        }
    }
    Line {
        events: out,
        chunk,
        heard: Vec::new(),
        written: Vec::new(),
    }
}

/// Asserts that `registers` came from a well-formed answer of `slave` on the line.
fn answered(heard: &[u8], slave: u8, kind: RegisterKind, registers: &[u16]) {
    let mut frame = vec![slave, kind.function(), (2 * registers.len()) as u8];
    frame.extend(registers.iter().flat_map(|r| r.to_be_bytes()));
    frame.extend(crc16(&frame).to_le_bytes());
    assert!(
        heard.windows(frame.len()).any(|w| w == frame),
        "registers {registers:04X?} accepted, but {frame:02X?} was never on the line {heard:02X?}"
    );
}

/// Asserts that the master wrote whole copies of the one request, one per attempt.
fn requests(
    written: &[u8],
    slave: u8,
    kind: RegisterKind,
    address: u16,
    count: usize,
    retries: u8,
) {
    let mut request = vec![slave, kind.function()];
    request.extend(address.to_be_bytes());
    request.extend((count as u16).to_be_bytes());
    request.extend(crc16(&request).to_le_bytes());
    assert!(
        !written.is_empty() && written.len().is_multiple_of(request.len()),
        "{written:02X?}"
    );
    assert!(written.len() / request.len() <= usize::from(retries) + 1);
    for r in written.chunks(request.len()) {
        assert_eq!(r, request, "request on the wire");
    }
}

fuzz_target!(|data: &[u8]| {
    let [slave, what, retries, chunk, events @ ..] = data else {
        return;
    };
    let (slave, retries) = (*slave, retries % 3);
    let chunk = usize::from(chunk % 16) + 1;
    let kind = if what & 4 == 0 {
        RegisterKind::Holding
    } else {
        RegisterKind::Input
    };
    let config = Config {
        baud_rate: 9_600,
        // Few polls: silence is spelled out in the input.
        response_timeout_us: 8_000,
        poll_interval_us: 1_000,
        retries,
    };
    let master: Master<Line, AutoDirection, NoDelay> =
        Master::new(line(events, chunk), AutoDirection, NoDelay, config);
    match what & 3 {
        0 => {
            let count = usize::from(what >> 3) + 1;
            let mut master = master;
            let mut registers = vec![0u16; count];
            let result = match kind {
                RegisterKind::Holding => {
                    master.read_holding_registers(slave, 0x0010, &mut registers)
                }
                RegisterKind::Input => master.read_input_registers(slave, 0x0010, &mut registers),
            };
            let (line, _, _) = master.destroy();
            if (1..=247).contains(&slave) {
                requests(&line.written, slave, kind, 0x0010, count, retries);
            } else {
                assert!(result.is_err() && line.written.is_empty());
            }
            if result.is_ok() {
                answered(&line.heard, slave, kind, &registers);
            }
        }
        1 => {
            let mut c = turbidity::Config::new(slave);
            c.registers = kind;
            let mut probe = TurbidityProbe::new(master, c);
            if let Ok(ntu) = probe.read() {
                assert!((0.0..=c.max_ntu).contains(&ntu));
            }
        }
        2 => {
            let mut c = flow_meter::Config::new(slave);
            c.registers = kind;
            let mut meter = FlowMeter::new(master, c);
            if let Ok(flow) = meter.read_flow() {
                assert!((0.0..=c.max_flow_m3h).contains(&flow));
            }
        }
        _ => {
            let mut c = flow_meter::Config::new(slave);
            c.registers = kind;
            let mut meter = FlowMeter::new(master, c);
            if let Ok(total) = meter.read_total() {
                assert!(total.is_finite() && total >= 0.0);
            }
        }
    }
});

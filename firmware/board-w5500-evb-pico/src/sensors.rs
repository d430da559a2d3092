//! The sensors, read on the RP2040's second core.
//!
//! The drivers of `weir-drivers` are blocking: they poll the UART and wait with a busy
//! delay, and a dead sensor costs up to its timeouts (about 1.5 s per Modbus read, 1 s for the
//! ultrasonic sensor). Core 1 does nothing else, so those waits never hold up the network,
//! the LED or the watchdog on core 0. The node asks for a sample with [`CoreSensors`]; core 1
//! answers with a [`RawReading`].

use core::cell::RefCell;
use core::convert::Infallible;

use embassy_futures::select::{select, Either};
use embassy_rp::adc::{self, Adc};
use embassy_rp::gpio::Output;
use embassy_rp::pwm::Pwm;
use embassy_rp::uart::{Blocking, UartRx, UartTx};
use embassy_sync::blocking_mutex::raw::CriticalSectionRawMutex;
use embassy_sync::blocking_mutex::Mutex;
use embassy_sync::signal::Signal;
use embassy_time::{Delay, Instant, Timer};
use weir_contract::{widen, Fault, Quantity};
use weir_drivers::current_loop::{self, AdcChannel, CurrentLoop};
use weir_drivers::flow_meter::{self, FlowMeter};
use weir_drivers::modbus::{self, Master};
use weir_drivers::pulse::{self, PulseCounter, PulseFlowMeter};
use weir_drivers::turbidity::{self, TurbidityProbe};
use weir_drivers::ultrasonic::{self, UltrasonicSensor};
use weir_node::provision::{FlowSensor, SensorSet, TurbiditySensor};
use weir_node::{RawReading, Sensors};

/// Core 0 asks for a sample.
static REQUEST: Signal<CriticalSectionRawMutex, ()> = Signal::new();
/// Core 1 answers.
static REPLY: Signal<CriticalSectionRawMutex, RawReading> = Signal::new();

/// The node's side: each sample is read on core 1.
#[derive(Debug)]
pub struct CoreSensors;

impl Sensors for CoreSensors {
    async fn sample(&mut self) -> RawReading {
        REPLY.reset();
        REQUEST.signal(());
        REPLY.wait().await
    }
}

/// A blocking RP2040 UART as the drivers want it (`embedded-io` 0.6 `Read`, `Write`,
/// `ReadReady`). Receive-only when `tx` is `None`.
pub struct Serial {
    tx: Option<UartTx<'static, Blocking>>,
    rx: UartRx<'static, Blocking>,
    /// A byte taken from the FIFO by `read_ready`.
    peeked: Option<u8>,
}

impl core::fmt::Debug for Serial {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Serial")
    }
}

impl Serial {
    /// The UART halves; `tx` is `None` for a sensor the node only listens to.
    pub fn new(tx: Option<UartTx<'static, Blocking>>, rx: UartRx<'static, Blocking>) -> Self {
        Serial {
            tx,
            rx,
            peeked: None,
        }
    }

    /// One byte from the receive FIFO, if there is one.
    fn try_byte(&mut self) -> Result<Option<u8>, SerialError> {
        match embedded_hal_nb::serial::Read::read(&mut self.rx) {
            Ok(b) => Ok(Some(b)),
            Err(embedded_hal_nb::nb::Error::WouldBlock) => Ok(None),
            Err(embedded_hal_nb::nb::Error::Other(_)) => Err(SerialError),
        }
    }
}

/// A framing, parity, break or overrun error on the line (the drivers report it as a
/// corrupt answer), or a write on a receive-only UART.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SerialError;

impl embedded_io::Error for SerialError {
    fn kind(&self) -> embedded_io::ErrorKind {
        embedded_io::ErrorKind::Other
    }
}

impl embedded_io::ErrorType for Serial {
    type Error = SerialError;
}

impl embedded_io::ReadReady for Serial {
    fn read_ready(&mut self) -> Result<bool, SerialError> {
        if self.peeked.is_none() {
            self.peeked = self.try_byte()?;
        }
        Ok(self.peeked.is_some())
    }
}

impl embedded_io::Read for Serial {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, SerialError> {
        if buf.is_empty() {
            return Ok(0);
        }
        // Blocks for the first byte (the drivers ask only after `read_ready`), then takes
        // what the FIFO holds.
        let first = loop {
            if let Some(b) = self.peeked.take() {
                break b;
            }
            self.peeked = self.try_byte()?;
        };
        buf[0] = first;
        let mut n = 1;
        while n < buf.len() {
            match self.try_byte()? {
                Some(b) => {
                    buf[n] = b;
                    n += 1;
                }
                None => break,
            }
        }
        Ok(n)
    }
}

impl embedded_io::Write for Serial {
    fn write(&mut self, buf: &[u8]) -> Result<usize, SerialError> {
        let tx = self.tx.as_mut().ok_or(SerialError)?;
        tx.blocking_write(buf).map_err(|_| SerialError)?;
        Ok(buf.len())
    }

    /// Returns once the last stop bit has left (the UART is no longer busy), so the
    /// RS-485 direction pin drops only after the whole request.
    fn flush(&mut self) -> Result<(), SerialError> {
        let tx = self.tx.as_mut().ok_or(SerialError)?;
        tx.blocking_flush().map_err(|_| SerialError)
    }
}

/// The RS-485 Modbus bus: UART0 and the transceiver's DE and /RE pin.
pub type Bus = Master<Serial, Output<'static>, Delay>;

/// Shunt resistor of the 4-20 mA input, ohms: 21 mA give 3.15 V, inside the ADC's 3.3 V.
pub const SHUNT_OHMS: f32 = 150.0;

/// The 4-20 mA input: the RP2040's ADC across the shunt (12 bits, 3.3 V reference).
pub struct LoopInput {
    adc: Adc<'static, adc::Blocking>,
    channel: adc::Channel<'static>,
}

impl core::fmt::Debug for LoopInput {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("LoopInput")
    }
}

impl LoopInput {
    /// The ADC and the channel of the shunt's pin.
    pub fn new(adc: Adc<'static, adc::Blocking>, channel: adc::Channel<'static>) -> Self {
        LoopInput { adc, channel }
    }
}

impl AdcChannel for LoopInput {
    type Error = adc::Error;

    fn read_millivolts(&mut self) -> Result<u32, adc::Error> {
        let raw = self.adc.blocking_read(&mut self.channel)?;
        Ok(u32::from(raw) * 3300 / 4096)
    }
}

/// The pulse input's hardware counter (a PWM slice counting rising edges, 16 bits) and its
/// extension to 32 bits. Core 1 looks at it every second, so the 16-bit counter cannot wrap
/// unseen below 65,535 pulses a second.
struct PulseState {
    pwm: Pwm<'static>,
    last: u16,
    total: u32,
}

impl PulseState {
    fn update(&mut self) -> u32 {
        let now = self.pwm.counter();
        self.total = self
            .total
            .wrapping_add(u32::from(now.wrapping_sub(self.last)));
        self.last = now;
        self.total
    }
}

static PULSES: Mutex<CriticalSectionRawMutex, RefCell<Option<PulseState>>> =
    Mutex::new(RefCell::new(None));

/// The pulse counter as the driver sees it: a free-running 32-bit count.
#[derive(Debug)]
pub struct PulseInput;

impl PulseInput {
    /// Starts counting on `pwm` (configured for rising edges on its B pin).
    pub fn new(pwm: Pwm<'static>) -> Self {
        let last = pwm.counter();
        PULSES.lock(|p| {
            p.replace(Some(PulseState {
                pwm,
                last,
                total: 0,
            }))
        });
        PulseInput
    }

    fn update() -> u32 {
        PULSES.lock(|p| p.borrow_mut().as_mut().map_or(0, PulseState::update))
    }
}

impl PulseCounter for PulseInput {
    type Error = Infallible;

    fn count(&mut self) -> Result<u32, Infallible> {
        Ok(PulseInput::update())
    }
}

/// What is wired to this node, per the configuration image.
pub struct Wiring {
    modbus: Bus,
    ultrasonic: Option<UltrasonicSensor<Serial, Delay>>,
    current_loop: Option<CurrentLoop<LoopInput>>,
    pulse: Option<PulseFlowMeter<PulseInput>>,
    set: SensorSet,
}

impl core::fmt::Debug for Wiring {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Wiring").field("set", &self.set).finish()
    }
}

impl Wiring {
    /// The drivers for the sensors `set` names, on the board's inputs.
    pub fn new(
        rs485: Serial,
        direction: Output<'static>,
        sludge: Serial,
        current: LoopInput,
        pulses: Pwm<'static>,
        set: SensorSet,
    ) -> Self {
        let modbus = Master::new(
            rs485,
            direction,
            Delay,
            modbus::Config::new(set.modbus_baud),
        );
        let ultrasonic = set.sludge.map(|u| {
            let mut config = ultrasonic::Config::new();
            config.min_mm = u.min_mm;
            config.max_mm = u.max_mm;
            UltrasonicSensor::new(sludge, Delay, config)
        });
        let current_loop = match set.turbidity {
            Some(TurbiditySensor::Loop { at_4ma, at_20ma }) => Some(CurrentLoop::new(
                current,
                current_loop::Config::new(SHUNT_OHMS, at_4ma, at_20ma),
            )),
            _ => None,
        };
        let pulse = match set.flow {
            Some(FlowSensor::Pulse { pulses_per_m3 }) => {
                let mut meter = PulseFlowMeter::new(
                    PulseInput::new(pulses),
                    pulse::Config::new(pulses_per_m3),
                    0.0,
                );
                // The first read only sets the baseline of the flow.
                let _ = meter.read(Instant::now().as_millis());
                Some(meter)
            }
            _ => None,
        };
        Wiring {
            modbus,
            ultrasonic,
            current_loop,
            pulse,
            set,
        }
    }

    /// Reads every configured sensor once.
    fn read(&mut self) -> RawReading {
        let mut r = RawReading::new();
        match self.set.turbidity {
            Some(TurbiditySensor::Modbus { slave }) => {
                let mut probe =
                    TurbidityProbe::new(&mut self.modbus, turbidity::Config::new(slave));
                r.set(
                    Quantity::Turbidity,
                    probe.read().map(widen).map_err(Fault::from),
                );
            }
            Some(TurbiditySensor::Loop { .. }) => {
                if let Some(input) = &mut self.current_loop {
                    r.set(
                        Quantity::Turbidity,
                        input.read().map(widen).map_err(Fault::from),
                    );
                }
            }
            None => {}
        }
        match self.set.flow {
            Some(FlowSensor::Modbus { slave }) => {
                let mut meter = FlowMeter::new(&mut self.modbus, flow_meter::Config::new(slave));
                r.set(
                    Quantity::Flow,
                    meter.read_flow().map(widen).map_err(Fault::from),
                );
                r.set(Quantity::Volume, meter.read_total().map_err(Fault::from));
            }
            Some(FlowSensor::Pulse { .. }) => {
                // Flow only: the pulse totaliser starts from zero at each boot, so it is not
                // reported as the meter's volume (see README).
                if let Some(meter) = &mut self.pulse {
                    match meter.read(Instant::now().as_millis()) {
                        Ok(reading) => {
                            if let Some(flow) = reading.flow_m3h {
                                r.set(Quantity::Flow, flow.map(widen));
                            }
                        }
                        Err(e) => r.set(Quantity::Flow, Err(Fault::from(e))),
                    }
                }
            }
            None => {}
        }
        if let Some(sensor) = &mut self.ultrasonic {
            // The node wants the raw distance in metres; it applies the tank geometry.
            let distance = sensor
                .read_distance_mm()
                .map(|mm| f64::from(mm) / 1000.0)
                .map_err(Fault::from);
            r.set(Quantity::Sludge, distance);
        }
        r
    }
}

/// Core 1's only task: a sample for each request, and the pulse counter looked at every
/// second.
#[embassy_executor::task]
pub async fn serve(mut wiring: Wiring) {
    loop {
        match select(REQUEST.wait(), Timer::after_secs(1)).await {
            Either::First(()) => {
                let reading = wiring.read();
                REPLY.signal(reading);
            }
            Either::Second(()) => {
                PulseInput::update();
            }
        }
    }
}

//! Weir node firmware for the WIZnet W5500-EVB-Pico: the `weir-node` core with the board's
//! sensors, flash, Ethernet uplink, clock, watchdog and status LED.
//!
//! At start the firmware reads the configuration image that `weir node provision` wrote into
//! the last flash sector (terminal id, MQTT password, broker, time server, network, sensors,
//! factory configuration). Without a valid image it only blinks the LED. With one:
//!
//! * core 0 runs the node (`node`), the network (`net::run`: link, DHCP, DNS, SNTP), the LED
//!   (`led::show`) and the watchdog (`watchdog`);
//! * core 1 reads the sensors when the node asks (`sensors::serve`).
//!
//! Pin map and flash map: README.md.
#![no_std]
#![no_main]

mod led;
mod mqtt;
mod net;
mod sensors;
mod w5500;

use core::cell::Cell;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_embedded_hal::flash::partition::Partition;
use embassy_executor::{Executor, Spawner};
use embassy_rp::adc::{self, Adc};
use embassy_rp::flash::{Blocking, Flash};
use embassy_rp::gpio::{Level, Output, Pull};
use embassy_rp::multicore::{spawn_core1, Stack};
use embassy_rp::peripherals::FLASH;
use embassy_rp::pwm::{self, InputMode, Pwm};
use embassy_rp::spi;
use embassy_rp::uart::{self, Uart, UartRx};
use embassy_rp::watchdog::Watchdog;
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::mutex::Mutex;
use embassy_time::{Duration, Instant, Timer};
use panic_reset as _;
use static_cell::{ConstStaticCell, StaticCell};
use weir_contract::Timestamp;
use weir_node::provision::layout::{FlashLayout, W5500_EVB_PICO};
use weir_node::provision::{self, Provision, IMAGE_LEN};
use weir_node::update::Updater;
use weir_node::{Clock, Node, Partitions, Settings};

use crate::led::Pattern;
use crate::mqtt::Mqtt;
use crate::net::{now_ms, Net};
use crate::sensors::{CoreSensors, LoopInput, Serial, Wiring};
use crate::w5500::W5500;

/// Firmware version, reported in the node's status.
const FIRMWARE: &str = concat!("weir-node-pico ", env!("CARGO_PKG_VERSION"));

const LAYOUT: FlashLayout = W5500_EVB_PICO;
const FLASH_SIZE: usize = 2 * 1024 * 1024;

// memory.x's FLASH is the ACTIVE slot, 0x1000_7000 to 0x1004_7000, and the boot loader's
// memory.x has the same STATE, ACTIVE and DFU: they must be the layout's, or an update could
// overwrite the node's partitions.
const _: () = assert!(
    LAYOUT.flash_base == 0x1000_0000
        && LAYOUT.boot_state.0 == 0x1000_6000
        && LAYOUT.firmware == 0x1000_7000
        && LAYOUT.firmware_end == 0x1004_7000
        && LAYOUT.dfu.1 == 0x1008_8000
        && LAYOUT.flash_len as usize == FLASH_SIZE
);

/// What the image says its version is (`weir firmware add` reads it): the tag, the version
/// this firmware reports in its status, NUL.
#[used]
static VERSION_TAG: &str = concat!(
    "weir-firmware-version=weir-node-pico ",
    env!("CARGO_PKG_VERSION"),
    "\0"
);

mod key {
    include!(concat!(env!("OUT_DIR"), "/firmware_key.rs"));
}

type RawFlash = BlockingAsync<Flash<'static, FLASH, Blocking, FLASH_SIZE>>;
type Part = Partition<'static, NoopRawMutex, RawFlash>;
type BoardNode = Node<CoreSensors, BoardClock, Mqtt, Part, Updater<'static, Part, Part>>;

/// embassy-boot's buffer for a word of the STATE partition.
const STATE_WORD: usize = {
    use embedded_storage_async::nor_flash::{NorFlash, ReadNorFlash};
    let (w, r) = (
        <Part as NorFlash>::WRITE_SIZE,
        <Part as ReadNorFlash>::READ_SIZE,
    );
    if w > r {
        w
    } else {
        r
    }
};
static STATE_BUF: ConstStaticCell<[u8; STATE_WORD]> = ConstStaticCell::new([0; STATE_WORD]);

static FLASH_BUS: StaticCell<Mutex<NoopRawMutex, RawFlash>> = StaticCell::new();
static PROVISION: StaticCell<Provision> = StaticCell::new();
static NET: StaticCell<Net> = StaticCell::new();
static NODE: StaticCell<BoardNode> = StaticCell::new();
static ALIVE_UNTIL: StaticCell<Cell<u64>> = StaticCell::new();
/// Core 1 runs the blocking sensor drivers (Modbus frames, float parsing in the contract):
/// a few KiB at most.
static CORE1_STACK: ConstStaticCell<Stack<8192>> = ConstStaticCell::new(Stack::new());
static CORE1_EXECUTOR: StaticCell<Executor> = StaticCell::new();

/// UTC from SNTP (kept by the network task), monotonic time from embassy-time.
#[derive(Debug)]
pub struct BoardClock {
    net: &'static Net,
}

impl Clock for BoardClock {
    fn utc(&mut self) -> Option<Timestamp> {
        let offset = self.net.utc_offset_ms.get()?;
        Some(Timestamp::from_unix(
            (now_ms() as i64 + offset).div_euclid(1000),
        ))
    }

    fn now_ms(&mut self) -> u64 {
        now_ms()
    }

    async fn sleep_until(&mut self, at_ms: u64) {
        // Far beyond any deadline the node sets, and safe from overflow in ticks.
        Timer::at(Instant::from_millis(at_ms.min(1 << 40))).await;
    }
}

/// Reads the configuration image from its sector.
#[inline(never)]
fn read_provision(
    flash: &mut Flash<'static, FLASH, Blocking, FLASH_SIZE>,
) -> Result<Provision, provision::ProvisionError> {
    let mut image = [0u8; IMAGE_LEN];
    flash
        .blocking_read(LAYOUT.provision - LAYOUT.flash_base, &mut image)
        .map_err(|_| provision::ProvisionError::NotAnImage)?;
    provision::parse(&image)
}

/// A locally administered MAC address from the flash chip's unique id (the board has no
/// MAC of its own).
fn mac_address(uid: [u8; 8]) -> [u8; 6] {
    let mut mac = [0x02, 0x57, 0, 0, 0, 0];
    for (i, b) in uid.iter().enumerate() {
        mac[2 + i % 4] ^= *b;
    }
    mac
}

#[embassy_executor::main]
async fn main(spawner: Spawner) {
    let p = embassy_rp::init(Default::default());
    // The version tag stays in the image (the linker would drop an unused static).
    core::hint::black_box(VERSION_TAG);
    // The boot loader leaves the watchdog running (8 s), so that a firmware that hangs while
    // starting is reset, and rolled back if it is a new one: fed here, then by its task.
    let mut dog = Watchdog::new(p.WATCHDOG);
    dog.feed(Duration::from_secs(8));
    let mut led = Output::new(p.PIN_25, Level::Low);

    let mut flash = Flash::<_, Blocking, FLASH_SIZE>::new_blocking(p.FLASH);
    let mut uid = [0u8; 8];
    let _ = flash.blocking_unique_id(&mut uid);
    let Ok(provision) = read_provision(&mut flash) else {
        // Blank or invalid: the node does not run. No watchdog: nothing to supervise.
        dog.stop();
        loop {
            led::play(&mut led, Pattern::NotProvisioned).await;
        }
    };
    let provision: &'static Provision = PROVISION.init(provision);

    // W5500: hardware reset, then SPI mode 0.
    let mut reset = Output::new(p.PIN_20, Level::Low);
    Timer::after_millis(1).await;
    reset.set_high();
    Timer::after_millis(50).await;
    let mut spi_config = spi::Config::default();
    spi_config.frequency = 25_000_000;
    let bus = spi::Spi::new_blocking(p.SPI0, p.PIN_18, p.PIN_19, p.PIN_16, spi_config);
    let mut chip = W5500::new(bus, Output::new(p.PIN_17, Level::High));
    let mac = mac_address(uid);
    while !chip.init(mac) {
        // No answer from the Ethernet chip: shown as no network.
        led::play(&mut led, Pattern::NoNetwork).await;
    }
    let seed = uid.iter().fold(Instant::now().as_ticks() as u32, |a, b| {
        a.rotate_left(5) ^ u32::from(*b)
    });
    let net: &'static Net = NET.init(Net::new(chip, seed));

    // Sensors on core 1: RS-485 Modbus on UART0 (TX GPIO0, RX GPIO1, DE and /RE GPIO2),
    // the ultrasonic sensor's TX on UART1 RX (GPIO5).
    let set = provision.sensors;
    let mut rs485_config = uart::Config::default();
    rs485_config.baudrate = set.modbus_baud;
    let (tx, rx) = Uart::new_blocking(p.UART0, p.PIN_0, p.PIN_1, rs485_config).split();
    let direction = Output::new(p.PIN_2, Level::Low);
    let mut sludge_config = uart::Config::default();
    sludge_config.baudrate = 9600;
    let sludge = UartRx::new_blocking(p.UART1, p.PIN_5, sludge_config);
    // 4-20 mA across the shunt on GPIO26 (ADC0); pulses on GPIO15 (PWM slice 7, input B).
    let adc = Adc::new_blocking(p.ADC, adc::Config::default());
    let current = LoopInput::new(adc, adc::Channel::new_pin(p.PIN_26, Pull::None));
    let pulses = Pwm::new_input(
        p.PWM_SLICE7,
        p.PIN_15,
        Pull::Up,
        InputMode::RisingEdge,
        pwm::Config::default(),
    );
    let wiring = Wiring::new(
        Serial::new(Some(tx), rx),
        direction,
        Serial::new(None, sludge),
        current,
        pulses,
        set,
    );
    spawn_core1(p.CORE1, CORE1_STACK.take(), move || {
        let executor = CORE1_EXECUTOR.init(Executor::new());
        executor.run(|spawner| {
            if let Ok(task) = sensors::serve(wiring) {
                spawner.spawn(task);
            }
        })
    });

    let alive = ALIVE_UNTIL.init(Cell::new(now_ms() + 120_000));
    let node = build_node(flash, provision, net);
    if let Ok(t) = net::run(net, provision, mac) {
        spawner.spawn(t);
    }
    if let Ok(t) = led::show(led, net) {
        spawner.spawn(t);
    }
    if let Ok(t) = watchdog(dog, alive) {
        spawner.spawn(t);
    }
    if let Ok(t) = run_node(node, alive) {
        spawner.spawn(t);
    }
}

/// The node on its three partitions; resets the board if they are unusable (a firmware bug).
fn build_node(
    flash: Flash<'static, FLASH, Blocking, FLASH_SIZE>,
    provision: &'static Provision,
    net: &'static Net,
) -> &'static mut BoardNode {
    let flash = FLASH_BUS.init(Mutex::new(BlockingAsync::new(flash)));
    let part =
        |(start, end): (u32, u32)| Partition::new(flash, start - LAYOUT.flash_base, end - start);
    let partitions = Partitions {
        settings: part(LAYOUT.settings),
        pending: part(LAYOUT.readings),
        queue: part(LAYOUT.queue),
    };
    let settings = Settings {
        firmware: FIRMWARE,
        factory_config: provision.config,
        ..Settings::default()
    };
    let Some(uplink) = Mqtt::new(net, provision) else {
        reset()
    };
    let updater = Updater::new(
        part(LAYOUT.dfu),
        part(LAYOUT.boot_state),
        STATE_BUF.take(),
        key::FIRMWARE_KEY,
        FIRMWARE,
        LAYOUT.firmware_end - LAYOUT.firmware,
    );
    NODE.init_with(|| {
        match Node::with_updates(
            CoreSensors,
            BoardClock { net },
            uplink,
            partitions,
            settings,
            updater,
        ) {
            Ok(node) => node,
            Err(_) => reset(),
        }
    })
}

fn reset() -> ! {
    cortex_m::peripheral::SCB::sys_reset()
}

/// Runs the node; each turn of its loop proves progress to the watchdog. A turn ends at
/// least at every sample, so the node is stuck if none ends within a sample interval and two
/// minutes. The node returns only on a flash failure: then the board restarts.
#[embassy_executor::task]
async fn run_node(node: &'static mut BoardNode, alive: &'static Cell<u64>) {
    loop {
        let limit = u64::from(node.config().sample_interval_s) * 1000 + 120_000;
        alive.set(now_ms() + limit);
        if node.step().await.is_err() {
            reset();
        }
        // A firmware update is marked (the boot loader installs it), or a new one on trial
        // never confirmed itself (the boot loader goes back to the previous one).
        if node.reboot_due() {
            reset();
        }
    }
}

/// Feeds the hardware watchdog (8 s) while the node makes progress; if it stops, or core 0
/// hangs, the board restarts.
#[embassy_executor::task]
async fn watchdog(mut dog: Watchdog, alive: &'static Cell<u64>) {
    const PERIOD: Duration = Duration::from_secs(8);
    dog.pause_on_debug(true);
    dog.start(PERIOD);
    loop {
        if now_ms() < alive.get() {
            dog.feed(PERIOD);
        }
        Timer::after_secs(1).await;
    }
}

//! The boot loader of the W5500-EVB-Pico node firmware (embassy-boot-rp).
//!
//! At each start: if the firmware marked an update, swap the DFU slot into ACTIVE page by
//! page (resuming after a power cut); if the firmware started after a swap never confirmed
//! itself, swap back (a rollback); then start the firmware in ACTIVE. The watchdog runs
//! through the swap (8 s, fed at every flash operation) and on into the firmware, which
//! feeds it while it makes progress.
#![no_std]
#![no_main]

use core::cell::RefCell;

use cortex_m_rt::{entry, exception};
use embassy_boot_rp::{BootLoader, BootLoaderConfig, WatchdogFlash};
use embassy_sync::blocking_mutex::Mutex;
use embassy_time::Duration;

const FLASH_SIZE: usize = 2 * 1024 * 1024;

#[entry]
fn main() -> ! {
    let p = embassy_rp::init(Default::default());
    let flash = WatchdogFlash::<FLASH_SIZE>::start(p.FLASH, p.WATCHDOG, Duration::from_secs(8));
    let flash = Mutex::new(RefCell::new(flash));
    let config = BootLoaderConfig::from_linkerfile_blocking(&flash, &flash, &flash);
    let active = config.active.offset();
    let loader: BootLoader = BootLoader::prepare(config);
    // SAFETY: ACTIVE holds a firmware linked at its address (its memory.x), vector table
    // first; the boot loader never returns.
    unsafe { loader.load(embassy_rp::flash::FLASH_BASE as u32 + active) }
}

/// A fault in the boot loader: restart (the swap resumes where it stopped).
#[unsafe(no_mangle)]
#[cfg_attr(target_os = "none", unsafe(link_section = ".HardFault.user"))]
unsafe extern "C" fn HardFault() {
    cortex_m::peripheral::SCB::sys_reset();
}

#[exception]
unsafe fn DefaultHandler(_: i16) -> ! {
    cortex_m::peripheral::SCB::sys_reset();
}

#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    cortex_m::peripheral::SCB::sys_reset();
}

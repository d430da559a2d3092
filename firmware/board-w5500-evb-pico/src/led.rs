//! The on-board LED (GPIO25): what the node is waiting for, by blink pattern.
//!
//! This file is the only place the patterns are defined; the table in README.md lists the
//! same. When several problems hold, the LED shows the first in [`Pattern`]'s order.

use embassy_rp::gpio::Output;
use embassy_time::Timer;

use crate::net::{Broker, Net};

/// What the LED shows, most fundamental problem first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pattern {
    /// No valid configuration image: the node does not run. Write one with
    /// `weir node provision`.
    NotProvisioned,
    /// No Ethernet link, or no address yet (DHCP).
    NoNetwork,
    /// No UTC yet: SNTP has not answered. The node does not sample without the time.
    NoTime,
    /// The broker cannot be reached (no answer, connection refused or dropped, name not
    /// resolved), or the first connection is under way.
    BrokerUnreachable,
    /// The broker refused the login: wrong terminal id or password in the configuration
    /// image, or the terminal is not registered.
    BrokerRefused,
    /// Connected, subscribed, time known: running normally.
    Running,
}

impl Pattern {
    /// The pattern for the network's state.
    pub fn of(net: &Net) -> Pattern {
        if !net.link.get() || net.ip.get().is_none() {
            Pattern::NoNetwork
        } else if net.utc_offset_ms.get().is_none() {
            Pattern::NoTime
        } else {
            match net.broker_state.get() {
                Broker::Up => Pattern::Running,
                Broker::Refused => Pattern::BrokerRefused,
                Broker::Connecting | Broker::Unreachable => Pattern::BrokerUnreachable,
            }
        }
    }

    /// One cycle of the pattern: durations in ms, alternately on and off, starting on.
    pub const fn steps(self) -> &'static [u64] {
        match self {
            // Fast, even flicker, five times a second.
            Pattern::NotProvisioned => &[100, 100],
            // Counted flashes (200 ms on, 300 ms off), then 1.5 s dark.
            Pattern::NoNetwork => &[200, 1500],
            Pattern::NoTime => &[200, 300, 200, 1500],
            Pattern::BrokerUnreachable => &[200, 300, 200, 300, 200, 1500],
            Pattern::BrokerRefused => &[200, 300, 200, 300, 200, 300, 200, 1500],
            // Mostly on, with a short dark blink every two seconds.
            Pattern::Running => &[1900, 100],
        }
    }
}

/// Plays `pattern` once.
pub async fn play(led: &mut Output<'static>, pattern: Pattern) {
    for (i, ms) in pattern.steps().iter().enumerate() {
        if i % 2 == 0 {
            led.set_high();
        } else {
            led.set_low();
        }
        Timer::after_millis(*ms).await;
    }
    led.set_low();
}

/// Shows the network's state for ever.
#[embassy_executor::task]
pub async fn show(mut led: Output<'static>, net: &'static Net) {
    loop {
        play(&mut led, Pattern::of(net)).await;
    }
}

//! Time for the node: UTC for timestamps, a monotonic clock for the schedule.

use weir_contract::Timestamp;

/// The node's clocks.
///
/// UTC comes from wherever the board gets it (the modem's network time, NTP, a GPS); it may
/// jump when corrected. The monotonic time never goes back and drives the schedule.
// The node runs on one executor (embassy, or a tokio task); no `Send` bound is needed.
#[allow(async_fn_in_trait)]
pub trait Clock {
    /// The current UTC time, or `None` while it is not known (the node then does not sample:
    /// a reading without a true time would be refused).
    fn utc(&mut self) -> Option<Timestamp>;

    /// Milliseconds on a monotonic clock with an arbitrary origin.
    fn now_ms(&mut self) -> u64;

    /// Waits until [`now_ms`](Clock::now_ms) reaches `at_ms` (returns at once if it has).
    ///
    /// Must be cancel-safe: the node drops this future when an uplink event comes first.
    async fn sleep_until(&mut self, at_ms: u64);
}

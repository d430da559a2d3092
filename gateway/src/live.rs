//! Events for everything downstream of the store that follows committed data live
//! (the dashboard's SSE feed, the alert engine).

use std::sync::Arc;

use weir_contract::{Status, TerminalId};

use weir_store::writer::StoredReading;

/// Something was committed.
#[derive(Clone, Debug)]
pub enum LiveEvent {
    /// One transaction: new readings in commit order, and node statuses.
    Committed {
        /// Telemetry messages newly stored: (terminal, boot, seq), in commit order.
        messages: Arc<Vec<(TerminalId, u32, u32)>>,
        /// New readings.
        readings: Arc<Vec<StoredReading>>,
        /// Statuses saved.
        statuses: Arc<Vec<(TerminalId, Status)>>,
    },
}

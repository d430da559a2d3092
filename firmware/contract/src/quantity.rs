//! What a reading measures: one table of names, units and valid ranges.

use serde::{Deserialize, Serialize};

use crate::error::Reason;

/// A measured quantity. Its [`field`](Quantity::field) is the JSON field name and the column
/// name everywhere else (database, CSV export, InfluxDB field).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Quantity {
    /// Instantaneous effluent flow, m3/h.
    Flow,
    /// Flow meter totaliser, m3.
    Volume,
    /// Effluent turbidity, NTU.
    Turbidity,
    /// Sludge level as a share of the tank's working depth, %.
    Sludge,
    /// Node supply voltage, V.
    Supply,
    /// Received signal strength of the node's uplink, dBm.
    Rssi,
}

impl Quantity {
    /// Every quantity, in wire order.
    pub const ALL: [Quantity; 6] = [
        Quantity::Flow,
        Quantity::Volume,
        Quantity::Turbidity,
        Quantity::Sludge,
        Quantity::Supply,
        Quantity::Rssi,
    ];

    /// Number of quantities.
    pub const COUNT: usize = Self::ALL.len();

    /// Position in [`Quantity::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// JSON field name, also used as the column name downstream.
    pub const fn field(self) -> &'static str {
        match self {
            Quantity::Flow => "flow_m3h",
            Quantity::Volume => "volume_m3",
            Quantity::Turbidity => "turbidity_ntu",
            Quantity::Sludge => "sludge_pct",
            Quantity::Supply => "supply_v",
            Quantity::Rssi => "rssi_dbm",
        }
    }

    /// Unit symbol.
    pub const fn unit(self) -> &'static str {
        match self {
            Quantity::Flow => "m3/h",
            Quantity::Volume => "m3",
            Quantity::Turbidity => "NTU",
            Quantity::Sludge => "%",
            Quantity::Supply => "V",
            Quantity::Rssi => "dBm",
        }
    }

    /// A short English description.
    pub const fn description(self) -> &'static str {
        match self {
            Quantity::Flow => "instantaneous flow",
            Quantity::Volume => "flow totaliser",
            Quantity::Turbidity => "effluent turbidity",
            Quantity::Sludge => "sludge level (share of working depth)",
            Quantity::Supply => "supply voltage",
            Quantity::Rssi => "uplink signal strength",
        }
    }

    /// Inclusive range of physically possible values. A value outside it is rejected.
    ///
    /// Flow: a village terminal treats tens of m3/day; 1000 m3/h is far above any meter fitted
    /// to one. Turbidity: 4000 NTU is the top of the ISO 7027 range of common probes.
    /// Sludge: a share of depth. Supply: 0-60 V covers 12/24/48 V cabinet supplies.
    /// RSSI: -150 to 0 dBm, some room below the -140 dBm floor of what 4G modems report.
    pub const fn range(self) -> (f64, f64) {
        match self {
            Quantity::Flow => (0.0, 1000.0),
            Quantity::Volume => (0.0, 1.0e9),
            Quantity::Turbidity => (0.0, 4000.0),
            Quantity::Sludge => (0.0, 100.0),
            Quantity::Supply => (0.0, 60.0),
            Quantity::Rssi => (-150.0, 0.0),
        }
    }

    /// The quantity whose JSON field name is `name`.
    pub fn from_field(name: &str) -> Option<Quantity> {
        Self::ALL.into_iter().find(|q| q.field() == name)
    }

    /// Checks that `value` is finite and inside [`range`](Quantity::range).
    pub fn check(self, value: f64) -> Result<(), Reason> {
        let (min, max) = self.range();
        if !value.is_finite() {
            Err(Reason::NotFinite)
        } else if value < min {
            Err(Reason::BelowMin {
                value,
                min,
                unit: self.unit(),
            })
        } else if value > max {
            Err(Reason::AboveMax {
                value,
                max,
                unit: self.unit(),
            })
        } else {
            Ok(())
        }
    }
}

impl core::fmt::Display for Quantity {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.field())
    }
}

//! Minute (CN 2051), hourly (CN 2061) and daily (CN 2031) data: per factor the period's
//! minimum, average and maximum, and for flow the volume discharged (`-Cou`). Hours and days
//! come from the store's hourly rollups, minute periods from the raw readings.
//!
//! A period is sent once it has been over for `hj212.statistics_delay_min`, so that readings a
//! node held back over a short outage are in it. Each (kind, terminal) keeps the start of the
//! last period the platform confirmed in `consumer_cursors` (`hj212_hour:HY-001`); a terminal
//! seen for the first time starts with the last closed period, not with its whole history.

use weir_contract::Quantity;
use weir_hj212::{codes, CommandCode, CpBuilder, DataFlag, Decimal, Field, Item, Value};
use weir_store::rollups::StepRow;

use super::config::FactorCodes;
use super::upload;

/// Litres per second in one cubic metre per hour.
const LPS_PER_M3H: f64 = 1.0 / 3.6;

/// A kind of statistics upload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// Minute data, CN 2051, over this many minutes (a divisor of 60).
    Minutes(u32),
    /// Hourly data, CN 2061.
    Hour,
    /// Daily data (local calendar day), CN 2031.
    Day,
}

impl Period {
    /// Its command code.
    pub fn cn(self) -> CommandCode {
        match self {
            Period::Minutes(_) => CommandCode::MINUTE_DATA,
            Period::Hour => CommandCode::HOUR_DATA,
            Period::Day => CommandCode::DAY_DATA,
        }
    }

    /// Its length in seconds, as `weir_store::rollups` takes steps.
    pub fn step(self) -> i64 {
        match self {
            Period::Minutes(n) => i64::from(n) * 60,
            Period::Hour => 3600,
            Period::Day => 86_400,
        }
    }

    /// The cursor's name for `terminal`.
    pub fn consumer(self, terminal: &str) -> String {
        match self {
            Period::Minutes(_) => format!("hj212_minute:{terminal}"),
            Period::Hour => format!("hj212_hour:{terminal}"),
            Period::Day => format!("hj212_day:{terminal}"),
        }
    }
}

fn number(v: f64, decimals: u8) -> Option<Value<'static>> {
    Decimal::from_f64(v, decimals).map(Value::Number)
}

/// The CP of one period's statistics: `DataTime` (the period's start, local time), then flow
/// (`-Cou` m³, `-Min`/`-Avg`/`-Max` L/s), turbidity (NTU) and sludge level (m, with the tank's
/// depth), each with `-Flag=N`, for the factors the period has values of. `None` when it has
/// none.
///
/// Flow's `-Cou` is the totaliser's rise within the period where the meter has one, else the
/// period's mean flow times its length.
pub fn period_cp(
    row: &StepRow,
    period: Period,
    codes: &FactorCodes,
    tank_depth_m: Option<f64>,
    tz: &jiff::tz::TimeZone,
) -> Option<CpBuilder> {
    let stat = |q: Quantity| {
        let s = row.stats[q.index()];
        (s.n > 0).then_some(s)
    };
    let mut items: Vec<Item<'_>> = Vec::new();
    let mut push = |code, field, value: Option<Value<'static>>| {
        if let Some(value) = value {
            items.push(Item {
                code,
                field,
                value,
                flag: Some(DataFlag::Normal),
            });
        }
    };
    if let Some(flow) = stat(Quantity::Flow) {
        let d = codes::FLOW.decimals;
        let cou = match stat(Quantity::Volume) {
            Some(v) if v.max > v.min => v.max - v.min,
            _ => flow.mean().unwrap_or(0.0) * period.step() as f64 / 3600.0,
        };
        let code = codes.flow.as_str();
        push(code, Field::Cou, number(cou, d));
        push(code, Field::Min, number(flow.min * LPS_PER_M3H, d));
        push(
            code,
            Field::Avg,
            flow.mean().and_then(|m| number(m * LPS_PER_M3H, d)),
        );
        push(code, Field::Max, number(flow.max * LPS_PER_M3H, d));
    }
    if let Some(t) = stat(Quantity::Turbidity) {
        let d = codes::TURBIDITY.decimals;
        let code = codes.turbidity.as_str();
        push(code, Field::Min, number(t.min, d));
        push(code, Field::Avg, t.mean().and_then(|m| number(m, d)));
        push(code, Field::Max, number(t.max, d));
    }
    if let (Some(s), Some(depth)) = (stat(Quantity::Sludge), tank_depth_m) {
        let d = codes::SLUDGE_LEVEL.decimals;
        let m = |pct: f64| pct / 100.0 * depth;
        let code = codes.sludge.as_str();
        push(code, Field::Min, number(m(s.min), d));
        push(code, Field::Avg, s.mean().and_then(|x| number(m(x), d)));
        push(code, Field::Max, number(m(s.max), d));
    }
    if items.is_empty() {
        return None;
    }
    let mut cp = CpBuilder::new();
    cp.data_time(upload::data_time(row.ts, tz)?).ok()?;
    cp.items(&items).ok()?;
    Some(cp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_store::rollups::Stat;

    #[test]
    fn an_hour_carries_the_volume_and_flow_in_litres_per_second() {
        let mut stats = [Stat::default(); Quantity::COUNT];
        stats[Quantity::Flow.index()] = Stat {
            n: 2,
            min: 3.6,
            max: 7.2,
            sum: 10.8,
        };
        stats[Quantity::Volume.index()] = Stat {
            n: 2,
            min: 100.0,
            max: 105.5,
            sum: 205.5,
        };
        stats[Quantity::Turbidity.index()] = Stat {
            n: 2,
            min: 3.0,
            max: 4.0,
            sum: 7.0,
        };
        // 2026-03-01 08:00 in Shanghai.
        let row = StepRow {
            ts: 1_772_323_200,
            n: 2,
            stats,
        };
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        let cp = period_cp(&row, Period::Hour, &FactorCodes::default(), None, &tz).unwrap();
        assert_eq!(
            cp.cp().as_str(),
            "DataTime=20260301080000;w00000-Cou=5.50,w00000-Min=1.00,w00000-Avg=1.50,w00000-Max=2.00,w00000-Flag=N;w01003-Min=3.0,w01003-Avg=3.5,w01003-Max=4.0,w01003-Flag=N"
        );
    }
}

//! Hourly rollups (count, min, max and sum of each quantity per terminal and hour, kept when
//! raw readings are deleted) and min/mean/max per step, read from them or from the raw
//! readings for steps shorter than an hour.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};
use weir_contract::Quantity;

/// Min/mean/max of one quantity over a step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Stat {
    /// Readings with a value.
    pub n: i64,
    /// Lowest value.
    pub min: f64,
    /// Highest value.
    pub max: f64,
    /// Sum of values (mean = sum / n).
    pub sum: f64,
}

impl Stat {
    /// The mean, if any value was seen.
    pub fn mean(&self) -> Option<f64> {
        (self.n > 0).then(|| self.sum / self.n as f64)
    }

    fn merge(&mut self, other: &Stat) {
        if other.n == 0 {
            return;
        }
        if self.n == 0 {
            *self = *other;
            return;
        }
        self.n += other.n;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.sum += other.sum;
    }
}

/// One step of an aggregated range.
#[derive(Clone, Debug, PartialEq)]
pub struct StepRow {
    /// Start of the step, Unix seconds.
    pub ts: i64,
    /// Readings in the step.
    pub n: i64,
    /// Per quantity, in `Quantity::ALL` order.
    pub stats: [Stat; Quantity::COUNT],
}

/// Readings of one terminal and hour, folded in memory before one UPSERT per hour.
#[derive(Debug, Default)]
pub(crate) struct HourAgg {
    n: i64,
    stats: [Stat; Quantity::COUNT],
}

impl HourAgg {
    /// Adds one reading's values (in `Quantity::ALL` order).
    pub(crate) fn add(&mut self, values: &[Option<f64>; Quantity::COUNT]) {
        self.n += 1;
        for (s, v) in self.stats.iter_mut().zip(values) {
            if let Some(v) = *v {
                s.merge(&Stat {
                    n: 1,
                    min: v,
                    max: v,
                    sum: v,
                });
            }
        }
    }
}

/// The hour bucket (start, Unix seconds) of a reading at `ts`.
pub(crate) fn hour_of(ts: i64) -> i64 {
    ts.div_euclid(3600) * 3600
}

/// The hourly rollup UPSERT, built once from the quantity table.
fn upsert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let mut cols = String::from("terminal, bucket, n");
        let mut vals = String::from("?1, ?2, ?3");
        let mut sets = String::from("n = n + excluded.n");
        for (i, q) in Quantity::ALL.iter().enumerate() {
            let f = q.field();
            let p = 4 + i * 4;
            cols += &format!(", {f}_n, {f}_min, {f}_max, {f}_sum");
            vals += &format!(", ?{}, ?{}, ?{}, ?{}", p, p + 1, p + 2, p + 3);
            sets += &format!(
                ", {f}_n = {f}_n + excluded.{f}_n,
             {f}_min = min(coalesce({f}_min, excluded.{f}_min), coalesce(excluded.{f}_min, {f}_min)),
             {f}_max = max(coalesce({f}_max, excluded.{f}_max), coalesce(excluded.{f}_max, {f}_max)),
             {f}_sum = CASE WHEN excluded.{f}_sum IS NULL THEN {f}_sum
                            ELSE coalesce({f}_sum, 0) + excluded.{f}_sum END"
            );
        }
        format!(
            "INSERT INTO rollup_hour ({cols}) VALUES ({vals})
         ON CONFLICT (terminal, bucket) DO UPDATE SET {sets}"
        )
    })
}

/// Adds `hours` ((terminal key, hour) -> folded readings) to the stored rollups.
pub(crate) fn add(
    tx: &Transaction<'_>,
    hours: &HashMap<(i64, i64), HourAgg>,
) -> rusqlite::Result<()> {
    if hours.is_empty() {
        return Ok(());
    }
    let mut upsert = tx.prepare_cached(upsert_sql())?;
    for ((terminal, bucket), agg) in hours {
        let mut args: Vec<Box<dyn rusqlite::ToSql>> =
            vec![Box::new(*terminal), Box::new(*bucket), Box::new(agg.n)];
        for s in &agg.stats {
            let some = s.n > 0;
            args.push(Box::new(s.n));
            args.push(Box::new(some.then_some(s.min)));
            args.push(Box::new(some.then_some(s.max)));
            args.push(Box::new(some.then_some(s.sum)));
        }
        upsert.execute(rusqlite::params_from_iter(args.iter().map(|b| b.as_ref())))?;
    }
    Ok(())
}

/// Where a step starts, for a reading or rollup bucket at `ts`: steps of whole hours are
/// aligned to local time in `tz` (a day step is a local calendar day), shorter steps to UTC.
pub fn step_start(ts: i64, step: i64, tz: &jiff::tz::TimeZone) -> i64 {
    if step % 3600 != 0 {
        return ts.div_euclid(step) * step;
    }
    let Ok(t) = jiff::Timestamp::from_second(ts) else {
        return ts.div_euclid(step) * step;
    };
    if step % 86_400 == 0 {
        // Whole days start at local midnight, whose UTC offset may differ from `ts`'s on the
        // day a clock changes: go by the local calendar date.
        let days = tz
            .to_datetime(t)
            .date()
            .since(jiff::civil::date(1970, 1, 1));
        if let Ok(days) = days {
            let n = i64::from(days.get_days());
            let first = n.div_euclid(step / 86_400) * (step / 86_400);
            let midnight = jiff::civil::date(1970, 1, 1)
                .checked_add(jiff::Span::new().days(first))
                .ok()
                .and_then(|d| {
                    tz.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                        .ok()
                });
            if let Some(m) = midnight {
                return m.as_second();
            }
        }
    }
    let offset = i64::from(tz.to_offset(t).seconds());
    (ts + offset).div_euclid(step) * step - offset
}

/// `from..to` widened to whole steps: from the start of the step holding `from` to the end of
/// the step holding `to - 1`, so that every row of a stepped answer sums up its whole step
/// (and a range starting mid-hour still gets that hour). Day steps follow the local calendar,
/// 23- and 25-hour days included.
pub fn step_range(from: i64, to: i64, step: i64, tz: &jiff::tz::TimeZone) -> (i64, i64) {
    let lo = step_start(from, step, tz);
    let last = step_start(to - 1, step, tz);
    let mut hi = last + step;
    while step_start(hi, step, tz) == last {
        hi += 3600;
    }
    (lo, step_start(hi, step, tz))
}

/// Calls `each` for every step of `step` seconds with readings of `terminal` in
/// `from <= ts < to` (widen the range with [`step_range`] first), oldest first. Whole-hour steps are read from the hourly rollups (so a
/// year costs 8760 rows per terminal); shorter steps from the raw readings.
/// Returns false if the terminal is unknown.
pub fn scan_steps(
    conn: &Connection,
    terminal: &str,
    from: i64,
    to: i64,
    step: i64,
    tz: &jiff::tz::TimeZone,
    mut each: impl FnMut(StepRow) -> bool,
) -> rusqlite::Result<bool> {
    let Some(key) = crate::terminals::key_of(conn, terminal)? else {
        return Ok(false);
    };
    let mut current: Option<StepRow> = None;
    let mut emit = |bucket: i64, n: i64, stats: [Stat; Quantity::COUNT]| -> bool {
        let start = step_start(bucket, step, tz);
        match &mut current {
            Some(c) if c.ts == start => {
                c.n += n;
                for (a, b) in c.stats.iter_mut().zip(&stats) {
                    a.merge(b);
                }
                true
            }
            _ => {
                let done = current.replace(StepRow {
                    ts: start,
                    n,
                    stats,
                });
                done.is_none_or(&mut each)
            }
        }
    };
    let stat_cols: String = Quantity::ALL
        .iter()
        .map(|q| {
            let f = q.field();
            format!(", {f}_n, {f}_min, {f}_max, {f}_sum")
        })
        .collect();
    let (sql, lo, hi) = if step % 3600 == 0 {
        // Hour buckets inside the range; [`step_range`] has made it whole steps.
        (
            format!(
                "SELECT bucket, n{stat_cols} FROM rollup_hour
                 WHERE terminal = ?1 AND bucket >= ?2 AND bucket < ?3 ORDER BY bucket"
            ),
            from,
            to,
        )
    } else {
        let agg: String = Quantity::ALL
            .iter()
            .map(|q| {
                let f = q.field();
                format!(", count({f}), min({f}), max({f}), sum({f})")
            })
            .collect();
        (
            format!(
                "SELECT (ts / {step}) * {step} AS b, count(*){agg} FROM readings
                 WHERE terminal = ?1 AND ts >= ?2 AND ts < ?3 GROUP BY b ORDER BY b"
            ),
            from,
            to,
        )
    };
    let mut stmt = conn.prepare_cached(&sql)?;
    let mut rows = stmt.query(params![key, lo, hi])?;
    let mut going = true;
    while let Some(r) = rows.next()? {
        let mut stats = [Stat::default(); Quantity::COUNT];
        for (i, s) in stats.iter_mut().enumerate() {
            let c = 2 + i * 4;
            let n: i64 = r.get(c)?;
            if n > 0 {
                *s = Stat {
                    n,
                    min: r.get(c + 1)?,
                    max: r.get(c + 2)?,
                    sum: r.get(c + 3)?,
                };
            }
        }
        if !emit(r.get(0)?, r.get(1)?, stats) {
            going = false;
            break;
        }
    }
    if going {
        if let Some(last) = current {
            each(last);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::step_range;
    use weir_contract::Timestamp;

    fn t(s: &str) -> i64 {
        Timestamp::parse_rfc3339(s).unwrap().unix()
    }

    #[test]
    fn a_stepped_range_widens_to_whole_steps() {
        let shanghai = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // Hours: 10:30 to 12:30 UTC covers the hours of 10, 11 and 12.
        assert_eq!(
            step_range(
                t("2026-11-20T10:30:00Z"),
                t("2026-11-20T12:30:00Z"),
                3600,
                &shanghai
            ),
            (t("2026-11-20T10:00:00Z"), t("2026-11-20T13:00:00Z"))
        );
        // An end on a step boundary adds no step.
        assert_eq!(
            step_range(
                t("2026-11-20T10:00:00Z"),
                t("2026-11-20T12:00:00Z"),
                3600,
                &shanghai
            ),
            (t("2026-11-20T10:00:00Z"), t("2026-11-20T12:00:00Z"))
        );
        // Five minutes, aligned to UTC.
        assert_eq!(
            step_range(
                t("2026-11-20T10:02:00Z"),
                t("2026-11-20T10:13:00Z"),
                300,
                &shanghai
            ),
            (t("2026-11-20T10:00:00Z"), t("2026-11-20T10:15:00Z"))
        );
        // A day is Shanghai's calendar day: it starts at 16:00 UTC.
        assert_eq!(
            step_range(
                t("2026-11-20T02:00:00Z"),
                t("2026-11-20T03:00:00Z"),
                86_400,
                &shanghai
            ),
            (t("2026-11-19T16:00:00Z"), t("2026-11-20T16:00:00Z"))
        );
    }

    #[test]
    fn a_day_step_keeps_the_25_hour_day_whole() {
        // Central Europe leaves summer time on 2026-10-25: that day lasts 25 hours.
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(
            step_range(
                t("2026-10-25T06:00:00Z"),
                t("2026-10-25T07:00:00Z"),
                86_400,
                &berlin
            ),
            (t("2026-10-24T22:00:00Z"), t("2026-10-25T23:00:00Z"))
        );
        // And the spring day, 2026-03-29, 23 hours.
        assert_eq!(
            step_range(
                t("2026-03-29T06:00:00Z"),
                t("2026-03-29T07:00:00Z"),
                86_400,
                &berlin
            ),
            (t("2026-03-28T23:00:00Z"), t("2026-03-29T22:00:00Z"))
        );
    }
}

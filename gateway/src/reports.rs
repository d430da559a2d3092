//! Reports for inspectors: per terminal and for the county over a period, the effluent
//! compliance rate, data completeness with every gap, node uptime, hours in alarm, alerts and
//! how fast they were handled, and the daily flow volume. Computed from the stored readings
//! and alerts as they are, so a report says what the operators saw.

use std::collections::BTreeMap;

use rusqlite::Connection;
use serde::{Deserialize, Serialize};
use weir_contract::Quantity;
use weir_store::alerts::{self, AlertRow, Filter, Rule, Severity};

use crate::alerts::config::AlertsConfig;
use crate::alerts::service::{self, StepTimes};

/// How the compliance rate is counted.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Basis {
    /// The share of measured time within the limit: each turbidity reading stands for the
    /// time until the next (at most `gap_factor` sample intervals).
    Time,
    /// The share of turbidity samples within the limit.
    Samples,
}

/// `[reports]`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// The effluent compliance rate is the share of measured "time" (each turbidity reading
    /// stands for the time until the next) or of "samples" within the limit; every report
    /// states which.
    pub basis: Basis,
    /// Effluent turbidity limit for compliance, NTU; 0 takes each terminal's alarm limit
    /// (`alerts.rules.turbidity_alarm_ntu`, or its terminal override).
    pub turbidity_limit_ntu: f64,
    /// Silence longer than this many sample intervals is listed as a gap in the data.
    pub gap_factor: f64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            basis: Basis::Time,
            turbidity_limit_ntu: 0.0,
            gap_factor: 2.0,
        }
    }
}

impl ReportsConfig {
    /// Checks what types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.turbidity_limit_ntu >= 0.0,
            "reports.turbidity_limit_ntu must be 0 (each terminal's alarm limit) or more"
        );
        anyhow::ensure!(
            self.gap_factor >= 1.0,
            "reports.gap_factor must be at least 1 (sample intervals)"
        );
        Ok(())
    }
}

/// The effluent compliance of one terminal, or pooled over the county.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Compliance {
    /// How it was counted.
    pub basis: Basis,
    /// The limit, NTU (None for the county, whose terminals may differ).
    pub limit_ntu: Option<f64>,
    /// Within the limit, 0 to 1; None without a single turbidity reading.
    pub rate: Option<f64>,
    /// Turbidity samples.
    pub samples: u64,
    /// Of which within the limit.
    pub samples_within: u64,
    /// Hours covered by turbidity readings.
    pub hours_measured: f64,
    /// Of which within the limit.
    pub hours_within: f64,
}

/// A stretch without readings.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Gap {
    /// The last reading before it (or the period's start), RFC 3339.
    pub start: String,
    /// The first reading after it (or the period's end), RFC 3339.
    pub end: String,
    /// Its length, minutes.
    pub minutes: f64,
}

/// Readings received against readings expected.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Completeness {
    /// The node's sample interval, s.
    pub interval_s: u32,
    /// Readings expected in the period at that interval.
    pub expected: u64,
    /// Readings stored with a time in the period.
    pub received: u64,
    /// `received / expected`, at most 1.
    pub rate: Option<f64>,
    /// Readings with at least one sensor fault (kept, marked, never hidden).
    pub with_faults: u64,
    /// Every stretch longer than `gap_factor` intervals without a reading, oldest first.
    pub gaps: Vec<Gap>,
}

/// How fast alerts were handled.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Response {
    /// Until acknowledged (no target).
    pub acknowledge: StepTimes,
    /// Until a crew was dispatched, against the crew's target.
    pub dispatch: StepTimes,
    /// Until the crew arrived.
    pub arrive: StepTimes,
    /// Until resolved (work orders only).
    pub resolve: StepTimes,
}

/// One local day's flow.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DailyFlow {
    /// The local date, `YYYY-MM-DD`.
    pub day: String,
    /// m³.
    pub volume_m3: f64,
    /// `totaliser` (the meter's own count, last minus first) or `integrated` (flow readings
    /// over time, where no totaliser reads or it went backwards).
    pub source: &'static str,
}

/// The report of one terminal.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TerminalReport {
    /// Terminal id.
    pub terminal: String,
    /// Its name.
    pub name: String,
    /// Effluent compliance.
    pub compliance: Compliance,
    /// Data completeness.
    pub completeness: Completeness,
    /// Share of the period the node was not offline (offline alerts), 0 to 1.
    pub uptime: f64,
    /// Hours with an alarm-severity alert active.
    pub hours_in_alarm: f64,
    /// Alerts opened in the period.
    pub alerts_raised: usize,
    /// Of which by rule.
    pub alerts_by_rule: BTreeMap<String, usize>,
    /// How fast the alerts opened in the period were handled.
    pub response: Response,
    /// Flow per local day.
    pub daily_flow: Vec<DailyFlow>,
}

/// The period and terms of a report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Period {
    /// RFC 3339.
    pub from: String,
    /// RFC 3339 (exclusive).
    pub to: String,
    /// The IANA time zone of its days.
    pub timezone: String,
}

/// The county's report.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct CountyReport {
    /// The period.
    pub period: Period,
    /// Compliance over every terminal's readings together.
    pub compliance: Compliance,
    /// Completeness over every terminal together (gaps are per terminal).
    pub completeness_rate: Option<f64>,
    /// Mean of the terminals' uptimes.
    pub uptime: Option<f64>,
    /// Hours in alarm, summed over terminals.
    pub hours_in_alarm: f64,
    /// Alerts opened in the period.
    pub alerts_raised: usize,
    /// Terminal ids from the lowest compliance rate up: those that drag the county down first
    /// (terminals without turbidity readings last).
    pub ranking: Vec<String>,
    /// Each terminal's report.
    pub terminals: Vec<TerminalReport>,
}

/// What a report reads of one stored reading.
#[derive(Clone, Copy, Debug)]
struct Sample {
    ts: i64,
    turbidity: Option<f64>,
    flow: Option<f64>,
    volume: Option<f64>,
    faulty: bool,
}

/// What a terminal's report is computed from: its readings in the period, its alerts that
/// overlap it, and its settings.
struct Inputs {
    readings: Vec<Sample>,
    alerts: Vec<AlertRow>,
    interval_s: u32,
    limit_ntu: f64,
    name: String,
}

fn load(
    conn: &Connection,
    terminal: &str,
    (from, to): (i64, i64),
    reports: &ReportsConfig,
    alerts_cfg: &AlertsConfig,
) -> anyhow::Result<Option<Inputs>> {
    let Some((node, _)) = crate::nodes::config::get(conn, terminal)? else {
        return Ok(None);
    };
    let name = weir_store::terminals::get(conn, terminal)?
        .map(|t| t.name)
        .unwrap_or_default();
    let (t, f, v) = (
        Quantity::Turbidity.index(),
        Quantity::Flow.index(),
        Quantity::Volume.index(),
    );
    let mut readings = Vec::new();
    weir_store::readings::scan(conn, terminal, from, to, |r| {
        readings.push(Sample {
            ts: r.ts,
            turbidity: r.values[t],
            flow: r.values[f],
            volume: r.values[v],
            faulty: r.faults.is_some(),
        });
        true
    })?;
    let alerts = alerts::list(
        conn,
        &Filter {
            terminal: Some(terminal.to_owned()),
            to: Some(to),
            limit: u32::MAX,
            ..Filter::default()
        },
    )?
    .into_iter()
    .filter(|a| a.resolved_at.is_none_or(|r| r > from))
    .collect();
    let limit_ntu = if reports.turbidity_limit_ntu > 0.0 {
        reports.turbidity_limit_ntu
    } else {
        alerts_cfg.params_for(terminal).turbidity_alarm_ntu
    };
    Ok(Some(Inputs {
        readings,
        alerts,
        interval_s: node.sample_interval_s,
        limit_ntu,
        name,
    }))
}

/// Finds the gaps in a run of reading times: every stretch longer than `limit` seconds without a
/// reading, from the last reading before it (or the period's start) to the first after it (or
/// the period's end). Fed one time at a time, oldest first, so an export can find them as it
/// streams.
#[derive(Clone, Debug)]
pub struct GapFinder {
    prev: i64,
    limit: i64,
    /// The gaps found so far: (start, end), Unix seconds.
    pub gaps: Vec<(i64, i64)>,
}

impl GapFinder {
    /// For a period starting at `from`.
    pub fn new(from: i64, limit: i64) -> GapFinder {
        GapFinder {
            prev: from,
            limit,
            gaps: Vec::new(),
        }
    }

    /// A reading at `ts`.
    pub fn see(&mut self, ts: i64) {
        if ts - self.prev > self.limit {
            self.gaps.push((self.prev, ts));
        }
        self.prev = ts;
    }

    /// The period ends at `to`: the gaps, the last one included.
    pub fn finish(mut self, to: i64) -> Vec<(i64, i64)> {
        self.see(to);
        self.gaps
    }
}

fn rfc3339(t: i64) -> String {
    weir_contract::Timestamp::from_unix(t).to_string()
}

/// Seconds of `[from, to)` covered by the union of `intervals`.
fn covered(mut intervals: Vec<(i64, i64)>, from: i64, to: i64) -> i64 {
    intervals.retain(|(a, b)| b > a);
    intervals.sort_unstable();
    let mut total = 0;
    let mut reach = from;
    for (a, b) in intervals {
        let (a, b) = (a.max(reach), b.min(to));
        if b > a {
            total += b - a;
            reach = b;
        }
    }
    total
}

fn compute(
    terminal: &str,
    i: &Inputs,
    (from, to): (i64, i64),
    cfg: &ReportsConfig,
    alerts_cfg: &AlertsConfig,
    tz: &jiff::tz::TimeZone,
    now: i64,
) -> TerminalReport {
    let interval = i64::from(i.interval_s.max(1));
    let gap_limit = (cfg.gap_factor * interval as f64).round() as i64;

    // Compliance: over the turbidity readings.
    let turbid: Vec<(i64, f64)> = i
        .readings
        .iter()
        .filter_map(|r| r.turbidity.map(|v| (r.ts, v)))
        .collect();
    let (mut secs, mut secs_within, mut within) = (0i64, 0i64, 0u64);
    for (k, (ts, v)) in turbid.iter().enumerate() {
        let next = turbid.get(k + 1).map_or(to, |n| n.0);
        let dur = (next - ts).clamp(0, gap_limit);
        secs += dur;
        if *v <= i.limit_ntu {
            within += 1;
            secs_within += dur;
        }
    }
    let samples = turbid.len() as u64;
    let rate = match cfg.basis {
        Basis::Samples => (samples > 0).then(|| within as f64 / samples as f64),
        Basis::Time => (secs > 0).then(|| secs_within as f64 / secs as f64),
    };
    let compliance = Compliance {
        basis: cfg.basis,
        limit_ntu: Some(i.limit_ntu),
        rate,
        samples,
        samples_within: within,
        hours_measured: secs as f64 / 3600.0,
        hours_within: secs_within as f64 / 3600.0,
    };

    // Completeness and gaps.
    let expected = ((to - from) / interval).max(0) as u64;
    let received = i.readings.len() as u64;
    let mut finder = GapFinder::new(from, gap_limit);
    for r in &i.readings {
        finder.see(r.ts);
    }
    let gaps = finder
        .finish(to)
        .into_iter()
        .map(|(a, b)| Gap {
            start: rfc3339(a),
            end: rfc3339(b),
            minutes: (b - a) as f64 / 60.0,
        })
        .collect();
    let completeness = Completeness {
        interval_s: i.interval_s,
        expected,
        received,
        rate: (expected > 0).then(|| (received as f64 / expected as f64).min(1.0)),
        with_faults: i.readings.iter().filter(|r| r.faulty).count() as u64,
        gaps,
    };

    // Alerts: time offline and in alarm, counts and response times.
    let span = |a: &AlertRow| (a.opened_at, a.resolved_at.unwrap_or(now.min(to)));
    let offline = covered(
        i.alerts
            .iter()
            .filter(|a| a.rule == Rule::Offline)
            .map(span)
            .collect(),
        from,
        to,
    );
    let alarm = covered(
        i.alerts
            .iter()
            .filter(|a| a.severity == Severity::Alarm)
            .map(span)
            .collect(),
        from,
        to,
    );
    let raised: Vec<&AlertRow> = i
        .alerts
        .iter()
        .filter(|a| (from..to).contains(&a.opened_at))
        .collect();
    let mut by_rule = BTreeMap::new();
    for a in &raised {
        *by_rule.entry(a.rule.id().to_owned()).or_default() += 1;
    }
    let targets = |a: &AlertRow| alerts_cfg.targets_of(a.crew.as_deref());
    let response = Response {
        acknowledge: service::times(&raised, |a| a.acknowledged_at, |_| None, now),
        dispatch: service::times(
            &raised,
            |a| a.dispatched_at,
            |a| Some(targets(a).dispatch_min),
            now,
        ),
        arrive: service::times(
            &raised,
            |a| a.arrived_at,
            |a| Some(targets(a).arrive_min),
            now,
        ),
        resolve: service::times(
            &raised,
            |a| a.resolved_at.filter(|_| a.dispatched_at.is_some()),
            |a| Some(targets(a).resolve_min),
            now,
        ),
    };

    TerminalReport {
        terminal: terminal.to_owned(),
        name: i.name.clone(),
        compliance,
        completeness,
        uptime: if to > from {
            1.0 - offline as f64 / (to - from) as f64
        } else {
            1.0
        },
        hours_in_alarm: alarm as f64 / 3600.0,
        alerts_raised: raised.len(),
        alerts_by_rule: by_rule,
        response,
        daily_flow: daily_flow(&i.readings, gap_limit, to, tz),
    }
}

/// Flow per local day: the totaliser's rise where it reads and only rises, else the flow
/// readings integrated over time (each standing for the time until the next, at most
/// `gap_limit`).
fn daily_flow(
    readings: &[Sample],
    gap_limit: i64,
    to: i64,
    tz: &jiff::tz::TimeZone,
) -> Vec<DailyFlow> {
    #[derive(Default)]
    struct Day {
        first: Option<f64>,
        last: Option<f64>,
        backwards: bool,
        integrated: f64,
        flow_seen: bool,
    }
    let mut days: BTreeMap<i64, Day> = BTreeMap::new();
    let day_of = |ts: i64| weir_store::rollups::step_start(ts, 86_400, tz);
    for r in readings {
        if let Some(v) = r.volume {
            let d = days.entry(day_of(r.ts)).or_default();
            if d.last.is_some_and(|l| v < l) {
                d.backwards = true;
            }
            d.first.get_or_insert(v);
            d.last = Some(v);
        }
    }
    let flows: Vec<(i64, f64)> = readings
        .iter()
        .filter_map(|r| r.flow.map(|f| (r.ts, f)))
        .collect();
    for (k, (ts, f)) in flows.iter().enumerate() {
        let next = flows.get(k + 1).map_or(to, |n| n.0);
        let d = days.entry(day_of(*ts)).or_default();
        d.integrated += f * (next - ts).clamp(0, gap_limit) as f64 / 3600.0;
        d.flow_seen = true;
    }
    // A day's totaliser volume runs from the previous day's last count (so nothing is lost at
    // midnight), or from the day's own first where the day before has none.
    let mut previous_last: Option<f64> = None;
    let mut out = Vec::new();
    for (start, d) in days {
        let Ok(t) = jiff::Timestamp::from_second(start) else {
            continue;
        };
        let day = t.to_zoned(tz.clone()).date().to_string();
        let base = previous_last.or(d.first);
        let backwards =
            d.backwards || matches!((previous_last, d.first), (Some(p), Some(f)) if f < p);
        if d.last.is_some() {
            previous_last = d.last;
        }
        match (base, d.last) {
            (Some(a), Some(b)) if !backwards => out.push(DailyFlow {
                day,
                volume_m3: b - a,
                source: "totaliser",
            }),
            _ if d.flow_seen => out.push(DailyFlow {
                day,
                volume_m3: d.integrated,
                source: "integrated",
            }),
            _ => {}
        }
    }
    out
}

/// The report of `terminal` over `from..to`; None if it is not registered. Blocking: call
/// on a blocking thread.
#[allow(clippy::too_many_arguments)]
pub fn terminal(
    conn: &Connection,
    terminal: &str,
    period: (i64, i64),
    cfg: &ReportsConfig,
    alerts_cfg: &AlertsConfig,
    tz: &jiff::tz::TimeZone,
    now: i64,
) -> anyhow::Result<Option<TerminalReport>> {
    Ok(load(conn, terminal, period, cfg, alerts_cfg)?
        .map(|i| compute(terminal, &i, period, cfg, alerts_cfg, tz, now)))
}

/// The county's report over `from..to`: every registered terminal's, pooled and ranked.
pub fn county(
    conn: &Connection,
    period: (i64, i64),
    cfg: &ReportsConfig,
    alerts_cfg: &AlertsConfig,
    tz: &jiff::tz::TimeZone,
    now: i64,
) -> anyhow::Result<CountyReport> {
    let mut terminals = Vec::new();
    for t in weir_store::terminals::list(conn)? {
        if let Some(r) = terminal(conn, &t.id, period, cfg, alerts_cfg, tz, now)? {
            terminals.push(r);
        }
    }
    let sum = |f: &dyn Fn(&TerminalReport) -> f64| terminals.iter().map(f).sum::<f64>();
    let samples: u64 = terminals.iter().map(|r| r.compliance.samples).sum();
    let within: u64 = terminals.iter().map(|r| r.compliance.samples_within).sum();
    let (hours, hours_within) = (
        sum(&|r| r.compliance.hours_measured),
        sum(&|r| r.compliance.hours_within),
    );
    let expected: u64 = terminals.iter().map(|r| r.completeness.expected).sum();
    let received: u64 = terminals
        .iter()
        .map(|r| r.completeness.received.min(r.completeness.expected))
        .sum();
    let mut ranking: Vec<&TerminalReport> = terminals.iter().collect();
    ranking.sort_by(|a, b| match (a.compliance.rate, b.compliance.rate) {
        (Some(x), Some(y)) => x.total_cmp(&y).then_with(|| a.terminal.cmp(&b.terminal)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.terminal.cmp(&b.terminal),
    });
    Ok(CountyReport {
        period: Period {
            from: rfc3339(period.0),
            to: rfc3339(period.1),
            timezone: tz.iana_name().unwrap_or("UTC").to_owned(),
        },
        compliance: Compliance {
            basis: cfg.basis,
            limit_ntu: None,
            rate: match cfg.basis {
                Basis::Samples => (samples > 0).then(|| within as f64 / samples as f64),
                Basis::Time => (hours > 0.0).then(|| hours_within / hours),
            },
            samples,
            samples_within: within,
            hours_measured: hours,
            hours_within,
        },
        completeness_rate: (expected > 0).then(|| received as f64 / expected as f64),
        uptime: (!terminals.is_empty()).then(|| sum(&|r| r.uptime) / terminals.len() as f64),
        hours_in_alarm: sum(&|r| r.hours_in_alarm),
        alerts_raised: terminals.iter().map(|r| r.alerts_raised).sum(),
        ranking: ranking.iter().map(|r| r.terminal.clone()).collect(),
        terminals,
    })
}

/// The period of a report: the given bounds, or by default the last whole calendar month in
/// the site's time zone.
pub fn default_period(now: i64, tz: &jiff::tz::TimeZone) -> (i64, i64) {
    let Ok(now) = jiff::Timestamp::from_second(now) else {
        return (now - 30 * 86_400, now);
    };
    let today = now.to_zoned(tz.clone()).date();
    let this_month = today.first_of_month();
    let last_month = this_month
        .checked_sub(jiff::Span::new().months(1))
        .unwrap_or(this_month);
    let start = |d: jiff::civil::Date| {
        tz.to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map(|t| t.as_second())
            .unwrap_or(0)
    };
    (start(last_month), start(this_month))
}

/// The county report as CSV: one row per terminal, then the county; rates as fractions.
pub fn csv(r: &CountyReport) -> String {
    let basis = match r.compliance.basis {
        Basis::Time => "time",
        Basis::Samples => "samples",
    };
    let mut out = format!(
        "# period {} to {} ({}); compliance basis {basis}; turbidity limit per terminal in limit_ntu\n",
        r.period.from, r.period.to, r.period.timezone
    );
    out.push_str(
        "terminal,name,compliance_rate,limit_ntu,samples,samples_within,hours_measured,\
         completeness_rate,expected,received,gaps,gap_minutes,readings_with_faults,uptime,\
         hours_in_alarm,alerts_raised,dispatch_within_target,volume_m3\n",
    );
    let f = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    for t in &r.terminals {
        let name = t.name.replace('"', "\"\"");
        out.push_str(&format!(
            "{},\"{name}\",{},{},{},{},{:.2},{},{},{},{},{:.1},{},{:.4},{:.2},{},{},{:.2}\n",
            t.terminal,
            f(t.compliance.rate),
            f(t.compliance.limit_ntu),
            t.compliance.samples,
            t.compliance.samples_within,
            t.compliance.hours_measured,
            f(t.completeness.rate),
            t.completeness.expected,
            t.completeness.received,
            t.completeness.gaps.len(),
            t.completeness.gaps.iter().map(|g| g.minutes).sum::<f64>(),
            t.completeness.with_faults,
            t.uptime,
            t.hours_in_alarm,
            t.alerts_raised,
            f(t.response.dispatch.within_target),
            t.daily_flow.iter().map(|d| d.volume_m3).sum::<f64>(),
        ));
    }
    out.push_str(&format!(
        "county,,{},,{},{},{:.2},{},,,,,,{},{:.2},{},,\n",
        f(r.compliance.rate),
        r.compliance.samples,
        r.compliance.samples_within,
        r.compliance.hours_measured,
        f(r.completeness_rate),
        f(r.uptime),
        r.hours_in_alarm,
        r.alerts_raised,
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_intervals_count_once_and_only_inside_the_period() {
        assert_eq!(covered(vec![(0, 10), (5, 20), (30, 40)], 0, 100), 30);
        assert_eq!(covered(vec![(-50, 10), (90, 200)], 0, 100), 20);
        assert_eq!(covered(vec![(10, 5)], 0, 100), 0);
    }

    #[test]
    fn the_default_period_is_last_month_in_local_time() {
        let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
        // 2026-12-03 08:00 in Shanghai.
        let now = weir_contract::Timestamp::parse_rfc3339("2026-12-03T00:00:00Z")
            .unwrap()
            .unix();
        let (from, to) = default_period(now, &tz);
        assert_eq!(rfc3339(from), "2026-10-31T16:00:00Z");
        assert_eq!(rfc3339(to), "2026-11-30T16:00:00Z");
    }
}

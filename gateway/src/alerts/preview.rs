//! Rule preview: runs one rule, with changed thresholds if wanted, over stored readings and
//! reports how many alerts it would have raised and how often it would have flapped, so a
//! threshold is tuned on the county's own history before it wakes anyone up.

use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::config::{AlertsConfig, RuleOverrides};
use super::model::{rfc3339, Rule, Severity};
use super::rules::{Change, ReadingRules};
use super::text::Text;

/// An alert that reopens within this many seconds of the previous one clearing is a flap.
pub const FLAP_WINDOW_S: i64 = 3600;
/// Longest period previewed.
pub const MAX_RANGE_S: i64 = 366 * 86_400;
/// Episodes listed per terminal.
const EPISODES_SHOWN: usize = 50;

/// `POST /api/v1/rules/preview`.
#[derive(Clone, Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// Rule id.
    pub rule: Rule,
    /// One terminal; all when absent.
    pub terminal: Option<String>,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
    /// Keys of `[alerts.rules]` to change (the terminals' own overrides still apply).
    #[serde(default)]
    pub params: RuleOverrides,
}

/// One would-be alert.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Episode {
    /// When it would have opened (reading time), RFC 3339.
    pub opened: String,
    /// When it would have cleared; null if still raised at the end.
    pub cleared: Option<String>,
    /// Highest severity reached.
    pub severity: Severity,
}

/// One terminal's result.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TerminalPreview {
    /// Terminal id.
    pub terminal: String,
    /// Readings evaluated.
    pub readings: u64,
    /// Alerts it would have raised.
    pub alerts: usize,
    /// Of which reopened within an hour of the previous clearing.
    pub flaps: usize,
    /// Minutes spent raised.
    pub raised_min: i64,
    /// The first episodes.
    pub episodes: Vec<Episode>,
}

/// The whole result.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Preview {
    /// Rule.
    pub rule: Rule,
    /// RFC 3339.
    pub from: String,
    /// RFC 3339.
    pub to: String,
    /// Alerts over all terminals.
    pub alerts: usize,
    /// Flaps over all terminals.
    pub flaps: usize,
    /// Per terminal, those with readings in the period.
    pub terminals: Vec<TerminalPreview>,
}

/// Why a preview cannot run.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The request is wrong.
    #[error("{0}")]
    Invalid(String),
    /// No such terminal.
    #[error("no terminal {0}")]
    NoTerminal(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

struct Tally {
    out: TerminalPreview,
    open: Option<(i64, Severity)>,
    last_clear: Option<i64>,
}

impl Tally {
    fn new(terminal: &str) -> Tally {
        Tally {
            out: TerminalPreview {
                terminal: terminal.into(),
                readings: 0,
                alerts: 0,
                flaps: 0,
                raised_min: 0,
                episodes: Vec::new(),
            },
            open: None,
            last_clear: None,
        }
    }

    fn raise(&mut self, ts: i64, severity: Severity) {
        match &mut self.open {
            Some((_, s)) => *s = (*s).max(severity),
            None => {
                self.out.alerts += 1;
                if self.last_clear.is_some_and(|c| ts - c <= FLAP_WINDOW_S) {
                    self.out.flaps += 1;
                }
                self.open = Some((ts, severity));
            }
        }
    }

    fn clear(&mut self, ts: i64) {
        if let Some((opened, severity)) = self.open.take() {
            self.out.raised_min += (ts - opened) / 60;
            self.last_clear = Some(ts);
            if self.out.episodes.len() < EPISODES_SHOWN {
                self.out.episodes.push(Episode {
                    opened: rfc3339(opened),
                    cleared: Some(rfc3339(ts)),
                    severity,
                });
            }
        }
    }

    fn finish(mut self, to: i64) -> TerminalPreview {
        if let Some((opened, severity)) = self.open.take() {
            self.out.raised_min += (to - opened) / 60;
            if self.out.episodes.len() < EPISODES_SHOWN {
                self.out.episodes.push(Episode {
                    opened: rfc3339(opened),
                    cleared: None,
                    severity,
                });
            }
        }
        self.out
    }
}

fn parse_time(what: &str, s: &str) -> Result<i64, PreviewError> {
    weir_contract::Timestamp::parse_rfc3339(s)
        .map(|t| t.unix())
        .map_err(|e| {
            PreviewError::Invalid(format!("{what}: {e} (RFC 3339, like 2026-11-22T07:40:00Z)"))
        })
}

/// Runs the preview on `conn`.
pub fn run(
    conn: &Connection,
    cfg: &AlertsConfig,
    req: &PreviewRequest,
) -> Result<Preview, PreviewError> {
    if req.rule == Rule::DataGap {
        return Err(PreviewError::Invalid(
            "data_gap depends on message arrival, not readings, and cannot be previewed".into(),
        ));
    }
    let from = parse_time("from", &req.from)?;
    let to = parse_time("to", &req.to)?;
    if to <= from || to - from > MAX_RANGE_S {
        return Err(PreviewError::Invalid(
            "to must be after from, and at most 366 days later".into(),
        ));
    }
    let mut terminals = weir_store::terminals::list(conn)?;
    if let Some(t) = &req.terminal {
        terminals.retain(|x| &x.id == t);
        if terminals.is_empty() {
            return Err(PreviewError::NoTerminal(t.clone()));
        }
    }
    let text = Text(cfg.language);
    let mut result = Preview {
        rule: req.rule,
        from: rfc3339(from),
        to: rfc3339(to),
        alerts: 0,
        flaps: 0,
        terminals: Vec::new(),
    };
    for t in terminals {
        let mut params = cfg.params_for(&t.id).with(&req.params);
        params
            .validate(&format!("params for {}", t.id))
            .map_err(|e| PreviewError::Invalid(e.to_string()))?;
        params.disabled = Rule::ALL.into_iter().filter(|r| *r != req.rule).collect();
        let mut tally = Tally::new(&t.id);
        let mut rules = ReadingRules::default();
        let mut last_ts: Option<i64> = None;
        let limit = params.offline_after_s();
        weir_store::readings::scan(conn, &t.id, from, to, |row| {
            tally.out.readings += 1;
            if req.rule == Rule::Offline {
                // Silence between two readings longer than the limit.
                if let Some(prev) = last_ts {
                    if row.ts - prev >= limit {
                        tally.raise(prev + limit, Severity::Warning);
                        tally.clear(row.ts);
                    }
                }
                last_ts = Some(row.ts);
                return true;
            }
            let reading = row.to_reading();
            for x in rules.on_reading(&params, t.design_flow_m3d, &reading, text) {
                match x.change {
                    Change::Raise => tally.raise(row.ts, x.severity),
                    Change::Clear => tally.clear(row.ts),
                }
            }
            true
        })?;
        if req.rule == Rule::Offline {
            if let Some(prev) = last_ts.filter(|p| to - p >= limit) {
                tally.raise(prev + limit, Severity::Warning);
            }
        }
        if tally.out.readings == 0 {
            continue;
        }
        let out = tally.finish(to);
        result.alerts += out.alerts;
        result.flaps += out.flaps;
        result.terminals.push(out);
    }
    Ok(result)
}

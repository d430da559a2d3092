//! A terminal's history rendered as rows: CSV, one JSON document, or JSON lines; raw
//! readings or min/mean/max per step. One renderer for the API's readings route and
//! `weir export`, so an export holds the same rows as the API.

use std::fmt::Write as _;

use weir_contract::{Quantity, Timestamp};
use weir_store::readings;
use weir_store::rollups::StepRow;

/// How rows are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// One JSON document with a `readings` array (the API's default).
    Json,
    /// CSV with a header row.
    Csv,
    /// One JSON object per line, each with its `terminal` (`weir export --format jsonl`).
    JsonLines,
}

impl Format {
    /// The HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/x-ndjson",
        }
    }
}

/// Renders rows into a buffer the caller drains as it goes ([`Rows::take`]).
#[derive(Debug)]
pub struct Rows {
    format: Format,
    buf: String,
    first: bool,
}

impl Rows {
    /// An empty buffer for `format`.
    pub fn new(format: Format) -> Rows {
        Rows {
            format,
            buf: String::new(),
            first: true,
        }
    }

    /// Bytes rendered and not yet taken.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// What was rendered since the last call.
    pub fn take(&mut self) -> String {
        std::mem::take(&mut self.buf)
    }

    /// The header: CSV column names, the JSON document's opening, nothing for JSON lines.
    pub fn start(&mut self, id: &str, from: i64, to: i64, step: Option<i64>) {
        let columns: Vec<String> = match step {
            None => Quantity::ALL.iter().map(|q| q.field().to_owned()).collect(),
            Some(_) => Quantity::ALL
                .iter()
                .flat_map(|q| {
                    let f = q.field();
                    [format!("{f}_min"), format!("{f}_mean"), format!("{f}_max")]
                })
                .collect(),
        };
        match self.format {
            Format::JsonLines => {}
            Format::Csv => {
                let extra = if step.is_some() { "n," } else { "" };
                let tail = if step.is_some() { "" } else { ",faults" };
                let _ = writeln!(
                    self.buf,
                    "terminal,ts_utc,{extra}{}{tail}",
                    columns.join(",")
                );
            }
            Format::Json => {
                let _ = write!(
                    self.buf,
                    "{{\"terminal\":{},\"from\":\"{}\",\"to\":\"{}\",\"step_s\":{},\"units\":{{{}}},\"readings\":[",
                    serde_json::json!(id),
                    Timestamp::from_unix(from),
                    Timestamp::from_unix(to),
                    step.map_or("null".into(), |s| s.to_string()),
                    Quantity::ALL
                        .iter()
                        .map(|q| format!("\"{}\":\"{}\"", q.field(), q.unit()))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
    }

    fn sep(&mut self) {
        if !self.first {
            self.buf.push(',');
        }
        self.first = false;
    }

    /// A raw reading.
    pub fn raw(&mut self, id: &str, row: &readings::Row) {
        match self.format {
            Format::JsonLines => {
                let mut v = row.to_json();
                v["terminal"] = id.into();
                let _ = writeln!(self.buf, "{v}");
            }
            Format::Json => {
                self.sep();
                let _ = write!(self.buf, "{}", row.to_json());
            }
            Format::Csv => {
                let _ = write!(self.buf, "{id},{}", Timestamp::from_unix(row.ts));
                for v in row.values {
                    self.buf.push(',');
                    if let Some(v) = v {
                        let _ = write!(self.buf, "{v}");
                    }
                }
                self.buf.push(',');
                if let Some(f) = &row.faults {
                    // JSON in a CSV field: quote it, doubling inner quotes.
                    let _ = write!(self.buf, "\"{}\"", f.replace('"', "\"\""));
                }
                self.buf.push('\n');
            }
        }
    }

    /// A step's min/mean/max.
    pub fn step(&mut self, id: &str, row: &StepRow) {
        match self.format {
            Format::Json | Format::JsonLines => {
                if self.format == Format::Json {
                    self.sep();
                }
                let mut m = serde_json::Map::new();
                m.insert("ts".into(), Timestamp::from_unix(row.ts).to_string().into());
                m.insert("n".into(), row.n.into());
                for (q, s) in Quantity::ALL.iter().zip(&row.stats) {
                    if let Some(mean) = s.mean() {
                        m.insert(
                            q.field().into(),
                            serde_json::json!({ "min": s.min, "mean": mean, "max": s.max }),
                        );
                    }
                }
                if self.format == Format::JsonLines {
                    m.insert("terminal".into(), id.into());
                    let _ = writeln!(self.buf, "{}", serde_json::Value::Object(m));
                } else {
                    let _ = write!(self.buf, "{}", serde_json::Value::Object(m));
                }
            }
            Format::Csv => {
                let _ = write!(self.buf, "{id},{},{}", Timestamp::from_unix(row.ts), row.n);
                for s in &row.stats {
                    match s.mean() {
                        Some(mean) => {
                            let _ = write!(self.buf, ",{},{mean},{}", s.min, s.max);
                        }
                        None => self.buf.push_str(",,,"),
                    }
                }
                self.buf.push('\n');
            }
        }
    }

    /// The end: the JSON document's closing, nothing otherwise.
    pub fn end(&mut self) {
        if self.format == Format::Json {
            self.buf.push_str("]}");
        }
    }
}

/// What `weir export` writes.
#[derive(Clone, Debug)]
pub struct Request {
    /// Terminal ids, in the order written.
    pub terminals: Vec<String>,
    /// Unix seconds.
    pub from: i64,
    /// Unix seconds, exclusive.
    pub to: i64,
    /// Seconds per step; None for raw readings.
    pub step: Option<i64>,
    /// `Csv` or `JsonLines`.
    pub format: Format,
}

/// What an export wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    /// Rows (readings or steps).
    pub rows: u64,
    /// Gaps listed.
    pub gaps: u64,
}

/// Writes `req` to `out` as it scans, holding one chunk at a time. Every export states its
/// period, time zone, units and the calibration in force, and lists the gaps (raw exports;
/// silence longer than `gap_factor` sample intervals) and marks sensor faults (the `faults`
/// column or field) rather than hiding them. `progress` is told of every row.
pub fn write(
    conn: &rusqlite::Connection,
    req: &Request,
    tz: &jiff::tz::TimeZone,
    gap_factor: f64,
    out: &mut impl std::io::Write,
    progress: &dyn Fn(u64),
) -> anyhow::Result<Written> {
    use anyhow::Context as _;
    anyhow::ensure!(
        req.format != Format::Json,
        "an export is csv or jsonl (one JSON object per line)"
    );
    let mut about = Vec::new();
    let mut intervals = Vec::new();
    for id in &req.terminals {
        let (node, _) = crate::nodes::config::get(conn, id)?
            .with_context(|| format!("no terminal {id} (weir terminal list shows them)"))?;
        intervals.push(i64::from(node.sample_interval_s.max(1)));
        let calibration: Vec<String> = Quantity::ALL
            .iter()
            .filter_map(|q| {
                let c = node.calibration.get(*q);
                (c != weir_contract::Calibration::IDENTITY)
                    .then(|| format!("{} x{} {:+}", q.field(), c.scale, c.offset))
            })
            .collect();
        about.push((id.clone(), calibration));
    }
    let units: Vec<String> = Quantity::ALL
        .iter()
        .map(|q| format!("{} {}", q.field(), q.unit()))
        .collect();
    let zone = tz.iana_name().unwrap_or("UTC");
    let (from, to) = (Timestamp::from_unix(req.from), Timestamp::from_unix(req.to));
    match req.format {
        Format::Csv => {
            writeln!(
                out,
                "# Weir export, {from} to {to}; ts_utc is UTC (the site's time zone is {zone}); {}",
                match req.step {
                    Some(s) => format!("min/mean/max per {s} s step, n readings in it"),
                    None => "raw readings".into(),
                }
            )?;
            writeln!(out, "# units: {}", units.join(", "))?;
            for (id, c) in &about {
                let c = if c.is_empty() {
                    "none".into()
                } else {
                    c.join(", ")
                };
                writeln!(
                    out,
                    "# calibration in force for {id} (applied on the node): {c}"
                )?;
            }
            writeln!(
                out,
                "# faults: a failed sensor's value is empty and the faults column names its fault code"
            )?;
        }
        _ => {
            let about: serde_json::Map<String, serde_json::Value> = about
                .iter()
                .map(|(id, c)| (id.clone(), serde_json::json!(c)))
                .collect();
            writeln!(
                out,
                "{}",
                serde_json::json!({ "export": {
                    "from": from.to_string(), "to": to.to_string(), "timezone": zone,
                    "step_s": req.step,
                    "units": Quantity::ALL.iter().map(|q| (q.field(), q.unit())).collect::<std::collections::BTreeMap<_, _>>(),
                    "calibration": about,
                }})
            )?;
        }
    }
    let mut rows = Rows::new(req.format);
    let mut written = Written::default();
    let mut all_gaps = Vec::new();
    for (k, id) in req.terminals.iter().enumerate() {
        if k == 0 {
            rows.start(id, req.from, req.to, req.step);
        }
        let mut failed: Option<std::io::Error> = None;
        let mut finder =
            crate::reports::GapFinder::new(req.from, (gap_factor * intervals[k] as f64) as i64);
        let mut each = |rows: &mut Rows, n: &mut u64| {
            *n += 1;
            progress(1);
            if rows.len() >= 64 * 1024 {
                if let Err(e) = out.write_all(rows.take().as_bytes()) {
                    failed = Some(e);
                    return false;
                }
            }
            true
        };
        match req.step {
            None => {
                weir_store::readings::scan(conn, id, req.from, req.to, |row| {
                    finder.see(row.ts);
                    rows.raw(id, &row);
                    each(&mut rows, &mut written.rows)
                })?;
                all_gaps.extend(finder.finish(req.to).into_iter().map(|g| (id.clone(), g)));
            }
            Some(step) => {
                weir_store::rollups::scan_steps(conn, id, req.from, req.to, step, tz, |row| {
                    rows.step(id, &row);
                    each(&mut rows, &mut written.rows)
                })?;
            }
        }
        if let Some(e) = failed {
            return Err(e).context("writing the export");
        }
    }
    rows.end();
    out.write_all(rows.take().as_bytes())?;
    written.gaps = all_gaps.len() as u64;
    for (id, (a, b)) in &all_gaps {
        let (a, b, min) = (
            Timestamp::from_unix(*a),
            Timestamp::from_unix(*b),
            (b - a) / 60,
        );
        match req.format {
            Format::Csv => writeln!(out, "# gap: {id} no reading from {a} to {b} ({min} min)")?,
            _ => writeln!(
                out,
                "{}",
                serde_json::json!({ "gap": { "terminal": id, "from": a.to_string(), "to": b.to_string(), "minutes": min } })
            )?,
        }
    }
    if req.format == Format::Csv {
        writeln!(out, "# rows: {}", written.rows)?;
    }
    out.flush()?;
    Ok(written)
}

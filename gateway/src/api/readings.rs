//! `GET /api/v1/terminals/{id}/readings?from=&to=&step=&format=`: a terminal's history as
//! JSON or CSV, raw or as min/mean/max per step, streamed so that a year of minute data never
//! sits in memory.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;
use weir_contract::Timestamp;

use super::{ApiError, AppState, Caller, ErrorBody};
use weir_store::auth::Role;
use weir_store::readings;
use weir_store::rollups;

use crate::export::{Format, Rows};

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Params {
    /// Start, RFC 3339 (default: a day before `to`).
    from: Option<String>,
    /// End, RFC 3339, exclusive (default: now).
    to: Option<String>,
    /// Min/mean/max per step, such as `5m`, `1h` or `1d` (default: raw readings).
    step: Option<String>,
    /// `json` or `csv` (default: JSON, or CSV when `Accept` asks for text/csv).
    format: Option<String>,
}

// The JSON form of the answer, described for the OpenAPI document: `export::Rows` writes it
// row by row as the scan goes, and gateway/tests/openapi.rs checks what it writes against
// these types.

/// A terminal's readings as JSON; rows are raw readings, or steps when `step` was given.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct Readings {
    /// Terminal id.
    terminal: String,
    /// Start of the range, RFC 3339.
    from: String,
    /// End of the range, RFC 3339.
    to: String,
    /// Seconds per step; null for raw readings.
    step_s: Option<i64>,
    /// The unit of each quantity, by field name.
    units: std::collections::BTreeMap<String, String>,
    /// The rows, oldest first.
    readings: Vec<ReadingRow>,
}

/// One row of [`Readings`].
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub enum ReadingRow {
    /// A reading as the node sent it.
    Raw(RawReading),
    /// A step's min, mean and max.
    Step(StepReading),
}

/// A reading as stored: each quantity the node measured (a quantity it did not is absent).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct RawReading {
    /// When it was taken, RFC 3339.
    ts: String,
    /// Flow, m3/h.
    flow_m3h: Option<f64>,
    /// Volume, the totaliser's count, m3.
    volume_m3: Option<f64>,
    /// Effluent turbidity, NTU.
    turbidity_ntu: Option<f64>,
    /// Sludge level, % of the working depth.
    sludge_pct: Option<f64>,
    /// Supply voltage, V.
    supply_v: Option<f64>,
    /// Signal strength, dBm.
    rssi_dbm: Option<f64>,
    /// Sensor fault codes by quantity, such as `{"turbidity_ntu": "no_response"}`.
    faults: Option<std::collections::BTreeMap<String, String>>,
}

/// One step of stepped readings: each quantity's statistics (absent: none in the step).
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct StepReading {
    /// Start of the step, RFC 3339.
    ts: String,
    /// Readings in the step.
    n: u64,
    flow_m3h: Option<StepStats>,
    volume_m3: Option<StepStats>,
    turbidity_ntu: Option<StepStats>,
    sludge_pct: Option<StepStats>,
    supply_v: Option<StepStats>,
    rssi_dbm: Option<StepStats>,
}

/// A quantity's statistics over a step.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
#[serde(deny_unknown_fields)]
pub struct StepStats {
    min: f64,
    mean: f64,
    max: f64,
}

/// Parses `5m`, `1h`, `1d`, `90s` into seconds; at least one minute.
pub fn parse_step(s: &str) -> Result<i64, String> {
    let bad =
        || format!("step {s:?} must be a number and a unit (s, m, h, d), such as 5m, 1h or 1d");
    // The unit is the last character, whatever its width in bytes.
    let Some((at, unit)) = s.char_indices().last() else {
        return Err(bad());
    };
    let n: i64 = s[..at].parse().map_err(|_| bad())?;
    let unit_s = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => return Err(bad()),
    };
    let range = || format!("step {s:?} must be between 1 minute and 366 days");
    let secs = n.checked_mul(unit_s).ok_or_else(range)?;
    if !(60..=366 * 86_400).contains(&secs) {
        return Err(range());
    }
    Ok(secs)
}

pub(super) fn parse_time(name: &str, s: &str) -> Result<i64, ApiError> {
    Timestamp::parse_rfc3339(s)
        .map(Timestamp::unix)
        .map_err(|why| {
            ApiError::bad_request(format!(
                "{name}={s:?} is not an RFC 3339 time like 2026-11-22T07:40:00Z ({why})"
            ))
        })
}

/// Chunks of about this size are sent as the scan goes.
const CHUNK: usize = 64 * 1024;

/// `GET /api/v1/terminals/{id}/readings`.
#[utoipa::path(get, path = "/terminals/{id}/readings", tag = "terminals",
    params(("id" = String, Path, description = "Terminal id"), Params),
    responses(
        (status = 200, description = "The readings, streamed", content(
            (Readings = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A bad query: the message names the parameter", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not read this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
pub async fn readings(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    query: Result<Query<Params>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(&[Role::Operator, Role::Field, Role::Inspector])?;
    let Query(p) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let now = weir_store::now();
    let to =
        p.to.as_deref()
            .map(|s| parse_time("to", s))
            .transpose()?
            .unwrap_or(now + 1);
    let from = p
        .from
        .as_deref()
        .map(|s| parse_time("from", s))
        .transpose()?
        .unwrap_or(to - 86_400);
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    let step = p
        .step
        .as_deref()
        .map(parse_step)
        .transpose()
        .map_err(ApiError::bad_request)?;
    // A stepped answer covers whole steps.
    let (from, to) = match step {
        Some(step) => rollups::step_range(from, to, step, &state.tz),
        None => (from, to),
    };
    let accept_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    let format = match p.format.as_deref() {
        None if accept_csv => Format::Csv,
        None | Some("json") => Format::Json,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format={other:?}: use json or csv"
            )))
        }
    };
    let wanted = id.clone();
    let known = state
        .store
        .run(move |c| weir_store::terminals::key_of(c, &wanted))
        .await?;
    if known.is_none() {
        return Err(ApiError::not_found(format!("no terminal {id}")));
    }

    let disposition = format!("attachment; filename=\"{}.csv\"", sanitize(&id));
    let (tx, rx) = mpsc::channel::<Bytes>(4);
    let store = state.store.clone();
    let tz = state.tz.clone();
    tokio::task::spawn_blocking(move || {
        let mut out = Output {
            rows: Rows::new(format),
            tx,
        };
        out.rows.start(&id, from, to, step);
        let result = store.with(|c| match step {
            None => readings::scan(c, &id, from, to, |row| {
                out.rows.raw(&id, &row);
                out.flush(false)
            }),
            Some(step) => rollups::scan_steps(c, &id, from, to, step, &tz, |row| {
                out.rows.step(&id, &row);
                out.flush(false)
            }),
        });
        if let Err(e) = result {
            // The status line is gone already; a cut-short body is what the client sees.
            tracing::error!(error = %e, "reading scan failed mid-stream");
            return;
        }
        out.rows.end();
        out.flush(true);
    });
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, std::convert::Infallible>(b), rx))
    });
    let content_type = format.content_type();
    let mut response = (
        StatusCode::OK,
        [(header::CONTENT_TYPE, content_type)],
        Body::from_stream(stream),
    )
        .into_response();
    if format == Format::Csv {
        if let Ok(v) = header::HeaderValue::from_str(&disposition) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
    }
    Ok(response)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

/// Writes the body in chunks to the response stream.
struct Output {
    rows: Rows,
    tx: mpsc::Sender<Bytes>,
}

impl Output {
    /// Sends a full chunk; false when the client went away (stops the scan).
    fn flush(&mut self, force: bool) -> bool {
        if self.rows.len() < CHUNK && !force {
            return true;
        }
        self.tx.blocking_send(Bytes::from(self.rows.take())).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::parse_step;

    #[test]
    fn steps_are_parsed_with_units_and_bounds() {
        assert_eq!(parse_step("5m"), Ok(300));
        assert_eq!(parse_step("1h"), Ok(3600));
        assert_eq!(parse_step("1d"), Ok(86_400));
        assert_eq!(parse_step("90s"), Ok(90));
        assert!(parse_step("30s").unwrap_err().contains("between 1 minute"));
        assert!(parse_step("5x").unwrap_err().contains("such as 5m"));
        assert!(parse_step("").is_err());
        // A multi-byte last character, and a number that overflows in seconds, are refusals,
        // not panics.
        assert!(parse_step("5é").unwrap_err().contains("such as 5m"));
        assert!(parse_step("é").is_err());
        assert!(parse_step("9223372036854775807d")
            .unwrap_err()
            .contains("between 1 minute"));
    }
}

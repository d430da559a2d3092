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

use super::{ApiError, AppState, Caller};
use weir_store::auth::Role;
use weir_store::readings;
use weir_store::rollups;

use crate::export::{Format, Rows};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    from: Option<String>,
    to: Option<String>,
    step: Option<String>,
    format: Option<String>,
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

//! `GET /api/v1/reports/...`: inspectors' reports (docs/api.md, "Reports"), as JSON or CSV.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use weir_store::auth::Role;

use super::readings::parse_time;
use super::{ApiError, AppState, Caller};
use crate::reports;

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];

/// The routes, under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/reports/county", get(county))
        .route("/reports/terminals/{id}", get(terminal))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportQuery {
    from: Option<String>,
    to: Option<String>,
    format: Option<String>,
}

/// The period asked for (by default last month, in the site's time zone) and whether CSV is.
fn terms(
    state: &AppState,
    headers: &HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<((i64, i64), bool), ApiError> {
    let Query(q) = q.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let (default_from, default_to) = reports::default_period(weir_store::now(), &state.tz);
    let from = q
        .from
        .as_deref()
        .map_or(Ok(default_from), |s| parse_time("from", s))?;
    let to =
        q.to.as_deref()
            .map_or(Ok(default_to), |s| parse_time("to", s))?;
    if from >= to {
        return Err(ApiError::bad_request("from must be before to"));
    }
    if to - from > 366 * 86_400 {
        return Err(ApiError::bad_request(
            "a report covers at most 366 days: ask for one year at a time",
        ));
    }
    let accept_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/csv"));
    let csv = match q.format.as_deref() {
        None => accept_csv,
        Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "format={other:?}: use json or csv"
            )))
        }
    };
    Ok(((from, to), csv))
}

async fn county(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(EVERYONE)?;
    let (period, csv) = terms(&state, &headers, q)?;
    let (cfg, alerts, tz) = (
        state.config.reports.clone(),
        state.alerts.config().clone(),
        state.tz.clone(),
    );
    let now = state.alerts.now();
    let report = state
        .store
        .run(move |c| Ok(reports::county(c, period, &cfg, &alerts, &tz, now)))
        .await??;
    Ok(if csv {
        (
            [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
            reports::csv(&report),
        )
            .into_response()
    } else {
        Json(report).into_response()
    })
}

async fn terminal(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    q: Result<Query<ReportQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    caller.require(EVERYONE)?;
    let (period, csv) = terms(&state, &headers, q)?;
    if csv {
        return Err(ApiError::bad_request(
            "a terminal's report is JSON; the county report (/reports/county) has a CSV form",
        ));
    }
    let (cfg, alerts, tz) = (
        state.config.reports.clone(),
        state.alerts.config().clone(),
        state.tz.clone(),
    );
    let now = state.alerts.now();
    let wanted = id.clone();
    let report = state
        .store
        .run(move |c| {
            Ok(reports::terminal(
                c, &wanted, period, &cfg, &alerts, &tz, now,
            ))
        })
        .await??;
    let report = report.ok_or_else(|| ApiError::not_found(format!("no terminal {id}")))?;
    Ok(Json(serde_json::json!({
        "period": reports::Period {
            from: weir_contract::Timestamp::from_unix(period.0).to_string(),
            to: weir_contract::Timestamp::from_unix(period.1).to_string(),
            timezone: state.tz.iana_name().unwrap_or("UTC").to_owned(),
        },
        "report": report,
    }))
    .into_response())
}

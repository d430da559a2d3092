//! `GET /api/v1/reports/...`: inspectors' reports (docs/api.md, "Reports"), as JSON or CSV.

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weir_store::auth::Role;

use super::readings::parse_time;
use super::{ApiError, AppState, Caller, ErrorBody};
use crate::reports;

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];

/// The routes, under `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(county))
        .routes(routes!(terminal))
}

/// A terminal's report with the period it covers.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct TerminalReportView {
    period: reports::Period,
    report: reports::TerminalReport,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ReportQuery {
    /// Start, RFC 3339 (default: the start of last month in the site's time zone).
    from: Option<String>,
    /// End, RFC 3339 (default: the end of last month); at most 366 days after `from`.
    to: Option<String>,
    /// `json` or `csv` (default: JSON, or CSV when `Accept` asks for text/csv).
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

/// `GET /api/v1/reports/county`: the county's report over the period.
#[utoipa::path(get, path = "/reports/county", tag = "reports",
    params(ReportQuery),
    responses(
        (status = 200, description = "The county report", content(
            (reports::CountyReport = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "A bad query: the message names the parameter", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
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

/// `GET /api/v1/reports/terminals/{id}`: one terminal's report over the period (JSON only).
#[utoipa::path(get, path = "/reports/terminals/{id}", tag = "reports",
    params(("id" = String, Path, description = "Terminal id"), ReportQuery),
    responses(
        (status = 200, description = "The terminal's report", body = TerminalReportView),
        (status = 400, description = "A bad query, or CSV asked for", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
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
    Ok(Json(TerminalReportView {
        period: reports::Period {
            from: weir_contract::Timestamp::from_unix(period.0).to_string(),
            to: weir_contract::Timestamp::from_unix(period.1).to_string(),
            timezone: state.tz.iana_name().unwrap_or("UTC").to_owned(),
        },
        report,
    })
    .into_response())
}

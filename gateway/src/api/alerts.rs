//! The alert routes (docs/api.md, "Alerts"): lists read the store; actions go through the
//! engine, which owns alert state.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller};
use crate::alerts::config::ServiceTargets;
use crate::alerts::engine::Action;
use crate::alerts::model::{self, Alert, AlertState, HistoryEntry, Incident, Rule, Severity};
use crate::alerts::preview::{self, Preview, PreviewRequest};
use crate::alerts::service::{self, CrewTimes};
use weir_store::alerts::{self as store, Filter};
use weir_store::auth::Role;
use weir_store::incidents;

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];
const OPERATORS: &[Role] = &[Role::Operator];
const CREWS: &[Role] = &[Role::Operator, Role::Field];

/// The routes, under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/alerts", get(list))
        .route("/alerts/{id}", get(one))
        .route("/alerts/{id}/acknowledge", post(acknowledge))
        .route("/alerts/{id}/assign", post(assign))
        .route("/alerts/{id}/dispatch", post(dispatch))
        .route("/alerts/{id}/arrive", post(arrive))
        .route("/alerts/{id}/resolve", post(resolve))
        .route("/alerts/{id}/notes", post(note))
        .route("/incidents", get(incidents))
        .route("/crews", get(crews))
        .route("/service-times", get(service_times))
        .route("/rules/preview", post(rule_preview))
        .route("/events", get(super::events::events))
}

fn time(what: &str, s: &str) -> Result<i64, ApiError> {
    weir_contract::Timestamp::parse_rfc3339(s)
        .map(|t| t.unix())
        .map_err(|e| {
            ApiError::bad_request(format!("{what}: {e} (RFC 3339, like 2026-11-22T07:40:00Z)"))
        })
}

fn path_id(p: Result<Path<i64>, PathRejection>) -> Result<i64, ApiError> {
    p.map(|Path(id)| id)
        .map_err(|_| ApiError::bad_request("the alert id must be a number"))
}

fn body<T>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    state: Option<String>,
    terminal: Option<String>,
    rule: Option<String>,
    severity: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/alerts`.
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Result<Json<Vec<Alert>>, ApiError> {
    caller.require(EVERYONE)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let states = match q.state.as_deref().unwrap_or("active") {
        "active" => vec![AlertState::Open, AlertState::Acknowledged],
        "all" => Vec::new(),
        s => vec![AlertState::parse(s).ok_or_else(|| {
            ApiError::bad_request(format!(
                "state: {s:?} is not one of active, open, acknowledged, resolved, all"
            ))
        })?],
    };
    let rule = q
        .rule
        .as_deref()
        .map(|r| {
            Rule::parse(r).ok_or_else(|| ApiError::bad_request(format!("rule: no rule {r:?}")))
        })
        .transpose()?;
    let severity = q
        .severity
        .as_deref()
        .map(|s| {
            Severity::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!(
                    "severity: {s:?} is not alarm, warning or maintenance"
                ))
            })
        })
        .transpose()?;
    let filter = Filter {
        states,
        terminal: q.terminal,
        rule,
        severity,
        from: q.from.as_deref().map(|s| time("from", s)).transpose()?,
        to: q.to.as_deref().map(|s| time("to", s)).transpose()?,
        limit: q.limit.unwrap_or(100).min(1000),
    };
    let rows = state.store.run(move |c| store::list(c, &filter)).await?;
    let cfg = state.alerts.config();
    let now = state.alerts.now();
    Ok(Json(
        rows.iter()
            .map(|r| model::view(r, cfg.targets_of(r.crew.as_deref()), now))
            .collect(),
    ))
}

/// An alert with its history.
#[derive(Serialize)]
struct AlertWithHistory {
    #[serde(flatten)]
    alert: Alert,
    history: Vec<HistoryEntry>,
    /// The terminal's newest picture taken before the alert opened, and its first after.
    pictures: super::pictures::AroundView,
}

/// `GET /api/v1/alerts/{id}`.
async fn one(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Json<AlertWithHistory>, ApiError> {
    caller.require(EVERYONE)?;
    let id = path_id(id)?;
    let found = state
        .store
        .run(move |c| match store::get(c, id)? {
            Some(row) => Ok(Some((row, store::history(c, id)?))),
            None => Ok(None),
        })
        .await?;
    let (row, history) = found.ok_or_else(|| ApiError::not_found(format!("no alert {id}")))?;
    let pictures = super::pictures::around(&state, &row.terminal, row.opened_at).await?;
    let cfg = state.alerts.config();
    Ok(Json(AlertWithHistory {
        alert: model::view(
            &row,
            cfg.targets_of(row.crew.as_deref()),
            state.alerts.now(),
        ),
        history,
        pictures,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    note: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    assignee: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DispatchBody {
    crew: Option<String>,
}

/// Every alert action: the caller's role first (no rights is 403 whatever the request), then
/// the id, then the body, then the engine.
async fn act(
    state: &AppState,
    caller: &Caller,
    roles: &[Role],
    id: Result<Path<i64>, PathRejection>,
    action: Result<Action, ApiError>,
) -> Result<Json<Alert>, ApiError> {
    caller.require(roles)?;
    let id = path_id(id)?;
    Ok(Json(state.alerts.act(id, action?, &caller.0.name).await?))
}

/// An optional JSON body: none at all is an empty object.
fn optional<T: Default>(b: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    match b {
        Ok(Json(v)) => Ok(v),
        Err(JsonRejection::MissingJsonContentType(_)) => Ok(T::default()),
        Err(e) => Err(ApiError::bad_request(e.body_text())),
    }
}

/// `POST /api/v1/alerts/{id}/acknowledge` `{"note"?}`.
async fn acknowledge(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let action = optional(b).map(|b| Action::Acknowledge { note: b.note });
    act(&state, &caller, OPERATORS, id, action).await
}

/// `POST /api/v1/alerts/{id}/assign` `{"assignee"}`.
async fn assign(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<AssignBody>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let action = body(b).map(|b| Action::Assign {
        assignee: b.assignee,
    });
    act(&state, &caller, OPERATORS, id, action).await
}

/// `POST /api/v1/alerts/{id}/dispatch` `{"crew"?}` (the zone crew if absent).
async fn dispatch(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<DispatchBody>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let action = optional(b).map(|b| Action::Dispatch { crew: b.crew });
    act(&state, &caller, OPERATORS, id, action).await
}

/// `POST /api/v1/alerts/{id}/arrive` `{"note"?}`.
async fn arrive(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let action = optional(b).map(|b| Action::Arrive { note: b.note });
    act(&state, &caller, CREWS, id, action).await
}

/// `POST /api/v1/alerts/{id}/resolve` `{"note"}`.
async fn resolve(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let action = optional(b).map(|b| Action::Resolve {
        note: b.note.unwrap_or_default(),
    });
    act(&state, &caller, CREWS, id, action).await
}

/// `POST /api/v1/alerts/{id}/notes` `{"note"}`.
async fn note(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
    b: Result<Json<NoteBody>, JsonRejection>,
) -> Result<Json<Alert>, ApiError> {
    let action = optional(b).map(|b| Action::Note {
        note: b.note.unwrap_or_default(),
    });
    act(&state, &caller, CREWS, id, action).await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IncidentQuery {
    state: Option<String>,
    limit: Option<u32>,
}

/// `GET /api/v1/incidents?state=active|all`.
async fn incidents(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<IncidentQuery>, QueryRejection>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    caller.require(EVERYONE)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let active = match q.state.as_deref().unwrap_or("active") {
        "active" => true,
        "all" => false,
        s => {
            return Err(ApiError::bad_request(format!(
                "state: {s:?} is not active or all"
            )))
        }
    };
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(
        state
            .store
            .run(move |c| incidents::list(c, active, limit))
            .await?,
    ))
}

/// A crew as the API shows it.
#[derive(Serialize)]
struct CrewView {
    name: String,
    /// Registered terminals it covers.
    terminals: Vec<String>,
    targets: ServiceTargets,
}

/// `GET /api/v1/crews`.
async fn crews(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<CrewView>>, ApiError> {
    caller.require(EVERYONE)?;
    let ids: Vec<String> = state
        .store
        .run(|c| {
            Ok(weir_store::terminals::list(c)?
                .into_iter()
                .map(|t| t.id)
                .collect())
        })
        .await?;
    let cfg = state.alerts.config();
    Ok(Json(
        cfg.crews
            .iter()
            .map(|(name, crew)| CrewView {
                name: name.clone(),
                terminals: ids.iter().filter(|t| crew.covers(t)).cloned().collect(),
                targets: cfg.targets_of(Some(name)),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeQuery {
    from: Option<String>,
    to: Option<String>,
}

/// `GET /api/v1/service-times?from=&to=` (default the last 30 days): work orders of alerts
/// opened in the range.
async fn service_times(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<RangeQuery>, QueryRejection>,
) -> Result<Json<Vec<CrewTimes>>, ApiError> {
    caller.require(EVERYONE)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let now = state.alerts.now();
    let to =
        q.to.as_deref()
            .map(|s| time("to", s))
            .transpose()?
            .unwrap_or(now + 1);
    let from = q
        .from
        .as_deref()
        .map(|s| time("from", s))
        .transpose()?
        .unwrap_or(to - 30 * 86_400);
    let filter = Filter {
        from: Some(from),
        to: Some(to),
        limit: u32::MAX,
        ..Filter::default()
    };
    let rows = state.store.run(move |c| store::list(c, &filter)).await?;
    Ok(Json(service::per_crew(&rows, state.alerts.config(), now)))
}

/// `POST /api/v1/rules/preview`.
async fn rule_preview(
    State(state): State<AppState>,
    caller: Caller,
    b: Result<Json<PreviewRequest>, JsonRejection>,
) -> Result<Json<Preview>, ApiError> {
    caller.require(&[Role::Operator, Role::Inspector])?;
    let req = body(b)?;
    let cfg = state.alerts.config().clone();
    let result = state
        .store
        .run(move |c| Ok(preview::run(c, &cfg, &req)))
        .await?;
    match result {
        Ok(p) => Ok(Json(p)),
        Err(e) => Err(e.into()),
    }
}

//! The alert routes (docs/api.md, "Alerts"): lists read the store; actions go through the
//! engine, which owns alert state.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::{ApiError, AppState, Caller, ErrorBody};
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
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(acknowledge))
        .routes(routes!(assign))
        .routes(routes!(dispatch))
        .routes(routes!(arrive))
        .routes(routes!(resolve))
        .routes(routes!(note))
        .routes(routes!(incidents))
        .routes(routes!(crews))
        .routes(routes!(service_times))
        .routes(routes!(rule_preview))
        .routes(routes!(super::events::events))
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// `active` (open or acknowledged, the default), `open`, `acknowledged`, `resolved` or
    /// `all`.
    state: Option<String>,
    /// Only this terminal's.
    terminal: Option<String>,
    /// Only this rule's.
    rule: Option<String>,
    /// `alarm`, `warning` or `maintenance`.
    severity: Option<String>,
    /// Opened at or after, RFC 3339.
    from: Option<String>,
    /// Opened before, RFC 3339.
    to: Option<String>,
    /// How many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// `GET /api/v1/alerts`.
#[utoipa::path(get, path = "/alerts", tag = "alerts",
    params(ListQuery),
    responses(
        (status = 200, description = "Alerts, newest first", body = Vec<Alert>),
        (status = 400, description = "A bad query: the message names the parameter", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
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
#[derive(Serialize, utoipa::ToSchema)]
struct AlertWithHistory {
    #[serde(flatten)]
    alert: Alert,
    history: Vec<HistoryEntry>,
    /// The terminal's newest picture taken before the alert opened, and its first after.
    pictures: super::pictures::AroundView,
}

/// `GET /api/v1/alerts/{id}`.
#[utoipa::path(get, path = "/alerts/{id}", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    responses(
        (status = 200, description = "The alert, its history and pictures around it", body = AlertWithHistory),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
    ))]
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

/// A note with an action (optional: the body may be left out).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct NoteBody {
    note: Option<String>,
}

/// Whom an alert is assigned to.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    assignee: String,
}

/// The crew dispatched (optional: the zone's crew when left out).
#[derive(Deserialize, Default, utoipa::ToSchema)]
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
#[utoipa::path(post, path = "/alerts/{id}/acknowledge", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body(content = NoteBody, description = "An optional note"),
    responses(
        (status = 200, description = "Acknowledged", body = Alert),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not possible in the alert's state", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/alerts/{id}/assign", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body(content = AssignBody, description = "The assignee"),
    responses(
        (status = 200, description = "Assigned", body = Alert),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not possible in the alert's state", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/alerts/{id}/dispatch", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body(content = DispatchBody, description = "The crew (optional)"),
    responses(
        (status = 200, description = "A crew is dispatched", body = Alert),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not possible in the alert's state", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/alerts/{id}/arrive", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body(content = NoteBody, description = "An optional note"),
    responses(
        (status = 200, description = "The crew is on site", body = Alert),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not possible in the alert's state", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/alerts/{id}/resolve", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body(content = NoteBody, description = "What was done"),
    responses(
        (status = 200, description = "Resolved", body = Alert),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not possible in the alert's state", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/alerts/{id}/notes", tag = "alerts",
    params(("id" = i64, Path, description = "Alert id")),
    request_body(content = NoteBody, description = "The note"),
    responses(
        (status = 200, description = "The note is added", body = Alert),
        (status = 400, description = "A bad id or body", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such alert", body = ErrorBody),
        (status = 409, description = "Not possible in the alert's state", body = ErrorBody),
    ))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct IncidentQuery {
    /// `active` (the default) or `all`.
    state: Option<String>,
    /// How many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// `GET /api/v1/incidents?state=active|all`.
#[utoipa::path(get, path = "/incidents", tag = "alerts",
    params(IncidentQuery),
    responses(
        (status = 200, description = "Incidents, newest first", body = Vec<Incident>),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
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
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct CrewView {
    name: String,
    /// Registered terminals it covers.
    terminals: Vec<String>,
    targets: ServiceTargets,
}

/// `GET /api/v1/crews`.
#[utoipa::path(get, path = "/crews", tag = "alerts",
    responses(
        (status = 200, description = "The configured crews", body = Vec<CrewView>),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
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

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct RangeQuery {
    /// Start, RFC 3339 (default: 30 days before `to`).
    from: Option<String>,
    /// End, RFC 3339 (default: now).
    to: Option<String>,
}

/// `GET /api/v1/service-times?from=&to=` (default the last 30 days): work orders of alerts
/// opened in the range.
#[utoipa::path(get, path = "/service-times", tag = "alerts",
    params(RangeQuery),
    responses(
        (status = 200, description = "Service times per crew", body = Vec<CrewTimes>),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
    ))]
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
#[utoipa::path(post, path = "/rules/preview", tag = "alerts",
    request_body = PreviewRequest,
    responses(
        (status = 200, description = "What the rule would have raised over the range", body = Preview),
        (status = 400, description = "A bad request", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
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

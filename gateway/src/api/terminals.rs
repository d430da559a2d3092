//! The terminal registry with each terminal's latest reading and state; dead letters.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, AppState, Caller};
use crate::store::auth::Role;
use crate::store::dead_letters::{self, DeadLetter};
use crate::store::readings;
use crate::store::status::{self, NodeStatus};
use crate::store::terminals::{self, Terminal};

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];

/// A terminal as the API shows it.
#[derive(Serialize)]
pub struct TerminalView {
    #[serde(flatten)]
    terminal: Terminal,
    /// The newest reading.
    latest: Option<Value>,
    /// The node's last status.
    status: Option<NodeStatus>,
    /// Whether the node is connected and reporting: its status says online and a message
    /// arrived within three publish intervals (15 min at the default schedule).
    online: bool,
}

/// Seconds without a message after which a terminal counts as offline in the registry view.
const STALE_AFTER_S: i64 = 3 * 300;

fn view(c: &rusqlite::Connection, t: Terminal, now: i64) -> rusqlite::Result<TerminalView> {
    let latest = readings::latest(c, &t.id)?.map(|r| r.to_json());
    let status = status::get(c, &t.id)?;
    let fresh = t.last_seen.is_some_and(|s| now - s <= STALE_AFTER_S);
    let online = fresh && status.as_ref().is_none_or(|s| s.online);
    Ok(TerminalView {
        terminal: t,
        latest,
        status,
        online,
    })
}

/// `GET /api/v1/terminals`.
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TerminalView>>, ApiError> {
    caller.require(EVERYONE)?;
    let views = state
        .store
        .run(|c| {
            let now = crate::store::now();
            terminals::list(c)?
                .into_iter()
                .map(|t| view(c, t, now))
                .collect()
        })
        .await?;
    Ok(Json(views))
}

/// `GET /api/v1/terminals/{id}`.
pub async fn one(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TerminalView>, ApiError> {
    caller.require(EVERYONE)?;
    let wanted = id.clone();
    let found = state
        .store
        .run(move |c| match terminals::get(c, &wanted)? {
            Some(t) => view(c, t, crate::store::now()).map(Some),
            None => Ok(None),
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no terminal {id}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    limit: Option<u32>,
}

/// `GET /api/v1/dead-letters?limit=100`: the newest refused messages.
pub async fn dead_letters(
    State(state): State<AppState>,
    caller: Caller,
    query: Result<Query<Limit>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<DeadLetter>>, ApiError> {
    caller.require(&[Role::Operator, Role::Field])?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = q.limit.unwrap_or(100).min(1000);
    Ok(Json(
        state
            .store
            .run(move |c| dead_letters::latest(c, limit))
            .await?,
    ))
}

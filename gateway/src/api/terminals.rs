//! The terminal registry with each terminal's latest reading and state; dead letters.

use axum::extract::{Path, Query, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApiError, AppState, Caller, ErrorBody};
use weir_store::auth::Role;
use weir_store::dead_letters::{self, DeadLetter};
use weir_store::readings;
use weir_store::status::{self, NodeStatus};
use weir_store::terminals::{self, Terminal};

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];

/// A terminal as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct TerminalView {
    #[serde(flatten)]
    terminal: Terminal,
    /// The newest reading.
    #[schema(value_type = Option<super::readings::RawReading>)]
    latest: Option<Value>,
    /// The node's last status.
    status: Option<NodeStatus>,
    /// The sensors of the node and how they are connected, as provisioned (none: never
    /// provisioned); the shape of `weir node provision`'s sensor set (docs/field-guide.md).
    #[schema(value_type = Option<Object>)]
    sensors: Option<weir_node::provision::SensorSet>,
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
    let sensors = match weir_store::terminals::setup(c, &t.id) {
        Ok(setup) => setup.map(|s| s.sensors),
        Err(e) => {
            tracing::warn!(terminal = %t.id, error = %format!("{e:#}"), "unreadable node setup");
            None
        }
    };
    Ok(TerminalView {
        terminal: t,
        latest,
        status,
        sensors,
        online,
    })
}

/// `GET /api/v1/terminals`.
#[utoipa::path(get, path = "/terminals", tag = "terminals",
    responses(
        (status = 200, description = "Every registered terminal", body = Vec<TerminalView>),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not read this", body = ErrorBody),
    ))]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Vec<TerminalView>>, ApiError> {
    caller.require(EVERYONE)?;
    let views = state
        .store
        .run(|c| {
            let now = weir_store::now();
            terminals::list(c)?
                .into_iter()
                .map(|t| view(c, t, now))
                .collect()
        })
        .await?;
    Ok(Json(views))
}

/// `GET /api/v1/terminals/{id}`.
#[utoipa::path(get, path = "/terminals/{id}", tag = "terminals",
    params(("id" = String, Path, description = "Terminal id, such as HY-001")),
    responses(
        (status = 200, description = "The terminal", body = TerminalView),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not read this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
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
            Some(t) => view(c, t, weir_store::now()).map(Some),
            None => Ok(None),
        })
        .await?;
    found
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no terminal {id}")))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct Limit {
    /// How many, newest first (default 100, at most 1000).
    limit: Option<u32>,
}

/// `GET /api/v1/dead-letters?limit=100`: the newest refused messages.
#[utoipa::path(get, path = "/dead-letters", tag = "terminals",
    params(Limit),
    responses(
        (status = 200, description = "Refused messages, newest first", body = Vec<DeadLetter>),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not read this", body = ErrorBody),
    ))]
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

/// A node config as JSON, in the wire contract's own shape (docs/protocol.md, Config).
fn config_json(config: &weir_contract::NodeConfig) -> Result<Value, ApiError> {
    use weir_contract::Message as _;
    let mut buf = [0u8; 1024];
    let n = config
        .encode(weir_contract::Encoding::Json, &mut buf)
        .map_err(|e| anyhow::anyhow!("encoding a node config: {e}"))?;
    Ok(serde_json::from_slice(&buf[..n]).map_err(anyhow::Error::from)?)
}

/// A node's config as the gateway publishes it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeConfigView {
    /// Terminal id.
    terminal: String,
    /// The config in the wire contract's JSON (docs/protocol.md, Config); null when the
    /// terminal has no node setup.
    #[schema(value_type = Option<Object>)]
    config: Option<Value>,
}

/// `GET /api/v1/terminals/{id}/config`: the config the gateway publishes to the node
/// (`{"config": null}` when the terminal has no node setup).
#[utoipa::path(get, path = "/terminals/{id}/config", tag = "terminals",
    params(("id" = String, Path, description = "Terminal id")),
    responses(
        (status = 200, description = "The node's config", body = NodeConfigView),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not read this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
pub async fn node_config(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<NodeConfigView>, ApiError> {
    caller.require(EVERYONE)?;
    let wanted = id.clone();
    let found = state
        .store
        .run(move |c| Ok(crate::nodes::config::get(c, &wanted)))
        .await??;
    match found {
        None => Err(ApiError::not_found(format!("no terminal {id}"))),
        Some((_, false)) => Ok(Json(NodeConfigView {
            terminal: id,
            config: None,
        })),
        Some((config, true)) => Ok(Json(NodeConfigView {
            terminal: id,
            config: Some(config_json(&config)?),
        })),
    }
}

/// `PUT /api/v1/terminals/{id}/config` (admin, field): changes to the node's config, as the
/// wire contract's JSON. Fields left out keep their current values (a calibration is changed
/// per quantity); `null` clears `tank_depth_m` or `sensor_height_m`. The result is checked by
/// the contract's rules, kept in the registry and published to the node, retained.
#[utoipa::path(put, path = "/terminals/{id}/config", tag = "terminals",
    params(("id" = String, Path, description = "Terminal id")),
    request_body(content = Object, description = "Changed keys of the node's config, in the wire contract's JSON"),
    responses(
        (status = 200, description = "The node's new config, published to it", body = NodeConfigView),
        (status = 400, description = "Not a JSON object, or a config the contract refuses", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not change it", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
pub async fn set_node_config(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<NodeConfigView>, ApiError> {
    use weir_contract::Message as _;
    caller.require(&[Role::Field])?;
    let changes: serde_json::Map<String, Value> = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "send the config as a JSON object, such as {{\"sample_interval_s\":60}} ({e})"
        ))
    })?;
    let wanted = id.clone();
    let current = state
        .store
        .run(move |c| Ok(crate::nodes::config::get(c, &wanted)))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("no terminal {id}")))?
        .0;
    let mut merged = match config_json(&current)? {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    };
    for (key, value) in changes {
        match (merged.get_mut(&key), value) {
            (Some(Value::Object(now)), Value::Object(new)) if key == "calibration" => {
                now.extend(new);
            }
            (_, value) => {
                merged.insert(key, value);
            }
        }
    }
    let merged = serde_json::to_vec(&Value::Object(merged)).map_err(anyhow::Error::from)?;
    let config = weir_contract::NodeConfig::decode(&merged)
        .map_err(|e| ApiError::bad_request(format!("the config is refused: {e}")))?;
    let wanted = id.clone();
    state
        .store
        .run(move |c| Ok(crate::nodes::config::set(c, &wanted, &config)))
        .await??;
    tracing::info!(terminal = %id, by = %caller.0.name, "node config changed");
    state.node_configs.notify();
    Ok(Json(NodeConfigView {
        terminal: id,
        config: Some(config_json(&config)?),
    }))
}

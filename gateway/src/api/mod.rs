//! The HTTP API (`/api/v1/...`), health and metrics, and the dashboard beside it: the only
//! module that knows HTTP. Each domain's routes have a file here (`alerts`, `events`,
//! `readings`, `terminals`, `session`); `error` maps every domain error to a status.
//!
//! Every `/api/v1` route but login and logout needs a principal: a dashboard session cookie
//! or an `Authorization: Bearer` token; each handler states the roles it allows. Errors are
//! `{"error": ..., "detail": ...}` with a fitting status code.
//!
//! Each route is registered together with its handler's `#[utoipa::path]` (utoipa-axum's
//! `routes!`), so the OpenAPI description served at `/api/openapi.json` is built from the
//! same list as the router, and a handler's annotation names the types it answers with.

mod alerts;
mod error;
mod events;
mod firmware;
pub mod login_guard;
pub mod openapi;
mod pictures;
mod readings;
pub use readings::parse_step;
mod reports;
pub mod server;
mod session;
mod terminals;
mod web;

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::header;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::broadcast;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ErrorBody};

use crate::config::Config;
use crate::live::LiveEvent;
use crate::metrics::Metrics;
use weir_store::auth::{Principal, Role};
use weir_store::Store;

/// Name of the dashboard's session cookie.
pub const SESSION_COOKIE: &str = "weir_session";

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The database.
    pub store: Arc<Store>,
    /// The configuration.
    pub config: Arc<Config>,
    /// Counters.
    pub metrics: Arc<Metrics>,
    /// Committed data, live.
    pub live: broadcast::Sender<LiveEvent>,
    /// `WEIR_BOOTSTRAP_TOKEN`, accepted as an admin token.
    pub bootstrap_token: Option<String>,
    /// The site's time zone, for day steps.
    pub tz: jiff::tz::TimeZone,
    /// The alert engine.
    pub alerts: crate::alerts::Alerts,
    /// Tells the node config publisher that a config changed.
    pub node_configs: crate::nodes::publisher::Changed,
    /// Bounds and throttles password checks on login.
    pub logins: Arc<login_guard::LoginGuard>,
    /// Told whenever a login may have ended (logout, password reset, token revoked), so open
    /// event streams check theirs again.
    pub logins_changed: broadcast::Sender<()>,
    /// Takes pictures in (uploads) and finds their files.
    pub pictures: Arc<crate::pictures::Pictures>,
}

/// The caller, authenticated. Extracting it fails with 401 when there is none.
#[derive(Clone, Debug)]
pub struct Caller(pub Principal);

impl Caller {
    /// Fails with 403 unless the caller has one of `roles` (admins may do everything).
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if self.0.role == Role::Admin || roles.contains(&self.0.role) {
            Ok(())
        } else {
            Err(ApiError::forbidden(self.0.role, roles))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        principal(state, &parts.headers)
            .await?
            .map(Caller)
            .ok_or_else(ApiError::unauthorized)
    }
}

/// Who the request's credentials name, if anyone: a bearer token (an API token, or the
/// bootstrap token) or else the session cookie. Taken exactly as sent: no trimming.
pub(crate) async fn principal(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Principal>, ApiError> {
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    if let Some(token) = bearer {
        if state
            .bootstrap_token
            .as_deref()
            .is_some_and(|b| !b.is_empty() && same_secret(b, &token))
        {
            return Ok(Some(Principal {
                name: "bootstrap".into(),
                role: Role::Admin,
            }));
        }
        return Ok(state
            .store
            .run(move |c| weir_store::auth::token(c, &token))
            .await?);
    }
    let Some(session) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    Ok(state
        .store
        .run(move |c| weir_store::auth::session(c, &session))
        .await?)
}

/// Compares two secrets in time that does not depend on where they differ: their SHA-256
/// digests, byte by byte, all the way.
fn same_secret(a: &str, b: &str) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Serves the API and the dashboard on `listener` until `cancel`, finishing the requests
/// under way; TLS and the connection limits come from `[http]`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    tls: Option<tokio_rustls::TlsAcceptor>,
    cancel: tokio_util::sync::CancellationToken,
) -> std::io::Result<()> {
    let http = &state.config.http;
    let limits = server::ConnLimits {
        max_connections: http.max_connections,
        max_per_address: http.max_connections_per_address,
        header_timeout: std::time::Duration::from_secs(http.header_timeout_s.into()),
    };
    let metrics = state.metrics.clone();
    server::run(listener, router(state), limits, tls, metrics, cancel).await
}

/// The value of cookie `name`.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The `/api/v1` routes, each with its OpenAPI description (paths relative to `/api/v1`).
/// Only `routes!` of annotated handlers belong here: `openapi::tests` fails on a plain
/// `.route(` anywhere in this module.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(session::login))
        .routes(routes!(session::logout))
        .routes(routes!(session::me))
        .routes(routes!(site))
        .routes(routes!(terminals::list))
        .routes(routes!(terminals::one))
        .routes(routes!(readings::readings))
        .routes(routes!(terminals::node_config, terminals::set_node_config))
        .routes(routes!(terminals::dead_letters))
        .merge(pictures::routes())
        .merge(alerts::routes())
        .merge(reports::routes())
        .merge(firmware::routes())
}

/// The API's routes and their OpenAPI description, with full paths (`/api/v1/...`).
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, doc) = api_routes().split_for_parts();
    let routes = routes
        .fallback(|| async { ApiError::not_found("no such API route") })
        .method_not_allowed_fallback(|method: axum::http::Method| async move {
            ApiError::method_not_allowed(&method)
        });
    (routes, openapi::document(doc))
}

/// The whole HTTP application.
pub fn router(state: AppState) -> Router {
    let (api, doc) = api();
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(json!({ "status": "ok" })) }),
        )
        .route("/metrics", get(metrics))
        .route(openapi::PATH, get(openapi::openapi_json))
        .nest("/api/v1", api)
        .fallback(web::serve)
        .layer(axum::Extension(openapi::Served::new(&doc)))
        .layer(axum::middleware::from_fn(json_only_with_cookies))
        .layer(axum::middleware::from_fn(security_headers))
        .with_state(state)
}

/// A state-changing request that rides on the session cookie must say it is JSON. A page on
/// another site can make a browser send a form (or text) with the cookie, never
/// `application/json` without the server's consent (CORS), so this closes cross-site request
/// forgery whatever the cookie's SameSite. Requests with a bearer token carry no ambient
/// credentials and are left to their handlers.
async fn json_only_with_cookies(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let changes = !matches!(
        *req.method(),
        axum::http::Method::GET | axum::http::Method::HEAD | axum::http::Method::OPTIONS
    );
    let headers = req.headers();
    let cookie = cookie(headers, SESSION_COOKIE).is_some();
    let bearer = headers.contains_key(header::AUTHORIZATION);
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    let json = media.is_some_and(|m| m.eq_ignore_ascii_case("application/json"));
    // A picture upload's body is the picture: image/jpeg and image/png are no more a form's
    // than JSON is (a cross-site page cannot send them without the server's consent).
    let picture =
        media.is_some_and(|m| crate::pictures::examine::Kind::from_content_type(m).is_some());
    if changes && cookie && !bearer && !json && !picture {
        return ApiError::unsupported_media_type(
            "send this request as JSON (Content-Type: application/json), with {} if it has no body; a picture as image/jpeg or image/png",
        )
        .into_response();
    }
    next.run(req).await
}

/// Headers that keep the dashboard out of other sites' frames, stop content sniffing and
/// allow scripts, styles and connections from the gateway itself only.
async fn security_headers(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data: blob:; connect-src 'self'; object-src 'none'; \
             base-uri 'none'; frame-ancestors 'none'; form-action 'self'",
        ),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
    ] {
        h.insert(name, axum::http::HeaderValue::from_static(value));
    }
    res
}

/// What the dashboard shows about the site.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// The site's name (`site.name`).
    name: String,
    /// Its IANA time zone (`site.timezone`).
    timezone: String,
    /// The MQTT topic prefix (`mqtt.topic_prefix`).
    topic_prefix: String,
    /// The dashboard as field staff reach it (empty: not configured); labels' QR codes use it.
    dashboard_url: String,
    /// The largest picture an upload may be (`pictures.max_picture_bytes`).
    max_picture_bytes: u64,
}

/// `GET /api/v1/site`: what the dashboard shows about the site (any caller).
#[utoipa::path(get, path = "/site", tag = "session",
    responses(
        (status = 200, description = "The site", body = Site),
        (status = 401, description = "No login or token", body = ErrorBody),
    ))]
async fn site(State(state): State<AppState>, _caller: Caller) -> Json<Site> {
    let s = &state.config.site;
    Json(Site {
        name: s.name.clone(),
        timezone: s.timezone.clone(),
        topic_prefix: state.config.mqtt.topic_prefix.clone(),
        dashboard_url: state.config.nodes.dashboard_url.clone(),
        max_picture_bytes: state.config.pictures.max_picture_bytes,
    })
}

async fn metrics(State(state): State<AppState>) -> Result<Response, ApiError> {
    let path = state.store.path().to_owned();
    let size = ["", "-wal"]
        .iter()
        .filter_map(|suffix| {
            let mut p = path.clone().into_os_string();
            p.push(suffix);
            std::fs::metadata(p).ok()
        })
        .map(|m| m.len())
        .sum::<u64>();
    let (pictures, picture_bytes) = state.store.run(weir_store::pictures::usage).await?;
    let body = state.metrics.render(&[
        (
            "weir_store_size_bytes",
            "Size of the SQLite database and its write-ahead log.",
            size as f64,
        ),
        ("weir_pictures_stored", "Pictures stored.", pictures as f64),
        (
            "weir_pictures_bytes",
            "Bytes the stored pictures and their thumbnails take on disk.",
            picture_bytes as f64,
        ),
        (
            "weir_pictures_max_bytes",
            "The bound on that (pictures.max_total_bytes).",
            state.config.pictures.max_total_bytes as f64,
        ),
    ]);
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response())
}

//! Dashboard login and logout.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use super::login_guard::Refusal;
use super::{ApiError, AppState, Caller, SESSION_COOKIE};
use weir_store::auth;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// `POST /api/v1/login` `{"username","password"}`: sets the session cookie. Password checks
/// are bounded and failures throttled (see `login_guard`).
pub async fn login(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<Login>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(body) = body.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let hours = state.config.http.session_hours;
    let user = body.username.clone();
    let permit = state
        .logins
        .admit(&user, peer.ip())
        .await
        .map_err(|r| match r {
            Refusal::Throttled(wait) => ApiError::throttled(wait),
            Refusal::Busy => ApiError::busy(),
        })?;
    let found = state
        .store
        .run(move |c| {
            let Some((user_id, who)) = auth::login(c, &body.username, &body.password)? else {
                return Ok(None);
            };
            Ok(Some((auth::open_session(c, user_id, hours)?, who)))
        })
        .await?;
    drop(permit);
    let Some((session, who)) = found else {
        state.logins.failed(&user, peer.ip());
        tracing::info!(user = %user, %peer, "failed dashboard login");
        return Err(ApiError::wrong_login());
    };
    state.logins.succeeded(&user);
    let secure = if state.config.http.secure_cookies || state.config.http.tls() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        u64::from(hours) * 3600
    );
    Ok((
        [(header::SET_COOKIE, cookie)],
        Json(json!({ "name": who.name, "role": who.role })),
    )
        .into_response())
}

/// `POST /api/v1/logout`.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(session) = super::cookie(&headers, SESSION_COOKIE) {
        state
            .store
            .run(move |c| auth::close_session(c, &session))
            .await?;
        let _ = state.logins_changed.send(());
    }
    let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    Ok(([(header::SET_COOKIE, cookie)], Json(json!({ "ok": true }))).into_response())
}

/// `GET /api/v1/me`: who the caller is.
pub async fn me(caller: Caller) -> Json<serde_json::Value> {
    Json(json!({ "name": caller.0.name, "role": caller.0.role }))
}

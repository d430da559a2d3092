//! Dashboard login and logout.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};

use super::login_guard::Refusal;
use super::{ApiError, AppState, Caller, ErrorBody, SESSION_COOKIE};
use weir_store::auth::{self, Role};

/// A dashboard login.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// Who the caller is.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Me {
    /// User or token name.
    name: String,
    /// What it may do (docs/security.md).
    role: Role,
}

/// An action that has nothing else to say.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Done {
    /// Always true.
    ok: bool,
}

/// `POST /api/v1/login` `{"username","password"}`: sets the session cookie. Password checks
/// are bounded and failures throttled (see `login_guard`).
#[utoipa::path(post, path = "/login", tag = "session", security(()),
    request_body = Login,
    responses(
        (status = 200, description = "Logged in; the session cookie is set", body = Me,
            headers(("set-cookie" = String, description = "weir_session=...; HttpOnly; SameSite=Strict"))),
        (status = 400, description = "The body is not a login", body = ErrorBody),
        (status = 401, description = "Wrong user name or password", body = ErrorBody),
        (status = 429, description = "Too many failed logins; see Retry-After", body = ErrorBody),
        (status = 503, description = "Too many password checks at once", body = ErrorBody),
    ))]
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
        Json(Me {
            name: who.name,
            role: who.role,
        }),
    )
        .into_response())
}

/// `POST /api/v1/logout`.
#[utoipa::path(post, path = "/logout", tag = "session", security(()),
    responses((status = 200, description = "The session (if any) is closed and its cookie cleared", body = Done)))]
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
    Ok(([(header::SET_COOKIE, cookie)], Json(Done { ok: true })).into_response())
}

/// `GET /api/v1/me`: who the caller is.
#[utoipa::path(get, path = "/me", tag = "session",
    responses(
        (status = 200, description = "The caller", body = Me),
        (status = 401, description = "No login or token", body = ErrorBody),
    ))]
pub async fn me(caller: Caller) -> Json<Me> {
    Json(Me {
        name: caller.0.name,
        role: caller.0.role,
    })
}

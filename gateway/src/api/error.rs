//! Errors as the API answers them: `{"error": ..., "detail": ...}` with a fitting status.
//! Every domain error becomes one here, so a domain module never names a status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use weir_store::auth::Role;

use crate::alerts::engine::ActionError;
use crate::alerts::preview::PreviewError;

/// An API error: status, a stable code and a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
}

impl ApiError {
    /// 400: the request is wrong; `detail` says what to change.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            detail: detail.into(),
        }
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            detail: detail.into(),
        }
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            error: "conflict",
            detail: detail.into(),
        }
    }

    /// 405: the route exists, the method does not.
    pub(super) fn method_not_allowed(method: &axum::http::Method) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: "method_not_allowed",
            detail: format!("this route does not take {method}; see docs/api.md"),
        }
    }

    /// 401 for a login with a wrong user name or password.
    pub(super) fn wrong_login() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "wrong user name or password".into(),
        }
    }

    pub(super) fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "log in, or send Authorization: Bearer <token>".into(),
        }
    }

    pub(super) fn forbidden(role: Role, allowed: &[Role]) -> Self {
        let allowed: Vec<&str> = allowed.iter().map(|r| r.name()).collect();
        ApiError {
            status: StatusCode::FORBIDDEN,
            error: "forbidden",
            detail: format!(
                "the {role} role may not do this; it needs one of: {}",
                allowed.join(", ")
            ),
        }
    }

    fn internal(e: &anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal",
            detail: "the gateway could not complete the request; see its log".into(),
        }
    }
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::internal(&e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(json!({ "error": self.error, "detail": self.detail })),
        )
            .into_response()
    }
}

impl From<ActionError> for ApiError {
    fn from(e: ActionError) -> Self {
        match e {
            ActionError::NotFound(_) => ApiError::not_found(e.to_string()),
            ActionError::Conflict(s) => ApiError::conflict(s),
            ActionError::Invalid(s) => ApiError::bad_request(s),
            ActionError::Internal(e) => ApiError::from(e),
        }
    }
}

impl From<PreviewError> for ApiError {
    fn from(e: PreviewError) -> Self {
        match e {
            PreviewError::Invalid(s) => ApiError::bad_request(s),
            e @ PreviewError::NoTerminal(_) => ApiError::not_found(e.to_string()),
            PreviewError::Db(e) => ApiError::from(anyhow::Error::from(e)),
        }
    }
}

//! Errors as the API answers them: `{"error": ..., "detail": ...}` with a fitting status.
//! Every domain error becomes one here, so a domain module never names a status code.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use weir_store::auth::Role;

use crate::alerts::engine::ActionError;
use crate::alerts::preview::PreviewError;
use crate::pictures::PictureError;

/// The body of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `method_not_allowed`, `payload_too_large`, `unsupported_media_type`, `unprocessable`,
    /// `too_many_attempts`, `timeout`, `busy` or `internal`.
    pub error: String,
    /// What went wrong, for people: names the field or value and what to change.
    pub detail: String,
}

/// An API error: status, a stable code and a sentence for people.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    error: &'static str,
    detail: String,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u64>,
}

impl ApiError {
    /// 400: the request is wrong; `detail` says what to change.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error: "bad_request",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::NOT_FOUND,
            error: "not_found",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::CONFLICT,
            error: "conflict",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 415: the body is not in a form this route takes.
    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            error: "unsupported_media_type",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 413: the body is larger than the route takes.
    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            error: "payload_too_large",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 422: the body is of the right type but not what it claims (a picture that is not one).
    pub fn unprocessable(detail: impl Into<String>) -> Self {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            error: "unprocessable",
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 429: too many failed logins; `wait` until the next may be checked.
    pub fn throttled(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs().max(1);
        ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            error: "too_many_attempts",
            detail: format!(
                "too many failed logins for this user name or from this address: try again in {secs} s"
            ),
            retry_after: Some(secs),
        }
    }

    /// 503: every password check is busy.
    pub fn busy() -> Self {
        ApiError {
            status: StatusCode::SERVICE_UNAVAILABLE,
            error: "busy",
            detail: "the gateway is checking too many passwords at once: try again shortly".into(),
            retry_after: Some(2),
        }
    }

    /// 405: the route exists, the method does not.
    pub(super) fn method_not_allowed(method: &axum::http::Method) -> Self {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            error: "method_not_allowed",
            detail: format!("this route does not take {method}; see docs/api.md"),
            retry_after: None,
        }
    }

    /// 401 for a login with a wrong user name or password.
    pub(super) fn wrong_login() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "wrong user name or password".into(),
            retry_after: None,
        }
    }

    pub(super) fn unauthorized() -> Self {
        ApiError {
            status: StatusCode::UNAUTHORIZED,
            error: "unauthorized",
            detail: "log in, or send Authorization: Bearer <token>".into(),
            retry_after: None,
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
            retry_after: None,
        }
    }

    fn internal(e: &anyhow::Error) -> Self {
        tracing::error!(error = %format!("{e:#}"), "request failed");
        ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            error: "internal",
            detail: "the gateway could not complete the request; see its log".into(),
            retry_after: None,
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
        let mut res = (
            self.status,
            Json(ErrorBody {
                error: self.error.to_owned(),
                detail: self.detail,
            }),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            res.headers_mut()
                .insert(axum::http::header::RETRY_AFTER, secs.into());
        }
        res
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

impl From<PictureError> for ApiError {
    fn from(e: PictureError) -> Self {
        match e {
            PictureError::WrongType(_) | PictureError::Mismatch { .. } => {
                ApiError::unsupported_media_type(e.to_string())
            }
            PictureError::NotAnImage(_) | PictureError::TooManyPixels { .. } => {
                ApiError::unprocessable(e.to_string())
            }
            PictureError::TooLarge { .. } => ApiError::payload_too_large(e.to_string()),
            PictureError::NoTerminal(_) => ApiError::not_found(e.to_string()),
            PictureError::Busy => ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                error: "busy",
                detail: e.to_string(),
                retry_after: Some(5),
            },
            PictureError::Timeout(_) => ApiError {
                status: StatusCode::REQUEST_TIMEOUT,
                error: "timeout",
                detail: e.to_string(),
                retry_after: None,
            },
            PictureError::Internal(e) => ApiError::from(e),
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

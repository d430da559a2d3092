//! Pictures of a terminal (docs/api.md, "Pictures"): uploads from field staff's phones, the
//! list, the files, and the pictures around an alert.

use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};

use super::{ApiError, AppState, Caller, ErrorBody};
use crate::pictures::examine::Kind;
use crate::pictures::PictureError;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use weir_store::auth::Role;
use weir_store::pictures::{self, Picture, Source};

const EVERYONE: &[Role] = &[Role::Operator, Role::Field, Role::Inspector];
/// Who may add a picture: field staff on site, operators (admins may do everything).
const UPLOADERS: &[Role] = &[Role::Field, Role::Operator];

/// The routes, under `/api/v1`.
pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, upload))
        .routes(routes!(original))
        .routes(routes!(thumbnail))
}

/// A picture as the API shows it.
#[derive(Serialize, utoipa::ToSchema)]
pub struct PictureView {
    #[serde(flatten)]
    picture: Picture,
    /// RFC 3339 (the row's Unix seconds are `taken_at_s`).
    taken_at: String,
    /// The original.
    url: String,
    /// The JPEG thumbnail.
    thumbnail_url: String,
}

fn view(p: Picture) -> PictureView {
    PictureView {
        taken_at: weir_contract::Timestamp::from_unix(p.taken_at).to_string(),
        url: format!("/api/v1/pictures/{}", p.id),
        thumbnail_url: format!("/api/v1/pictures/{}/thumbnail", p.id),
        picture: p,
    }
}

/// The pictures around an alert: the newest taken before it opened and the first after.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AroundView {
    before: Option<PictureView>,
    after: Option<PictureView>,
}

/// The pictures of `terminal` around `at` (Unix seconds).
pub(super) async fn around(
    state: &AppState,
    terminal: &str,
    at: i64,
) -> Result<AroundView, ApiError> {
    let terminal = terminal.to_owned();
    let (before, after) = state
        .store
        .run(move |c| pictures::around(c, &terminal, at))
        .await?;
    Ok(AroundView {
        before: before.map(view),
        after: after.map(view),
    })
}

async fn terminal_exists(state: &AppState, id: &str) -> Result<(), ApiError> {
    let wanted = id.to_owned();
    match state
        .store
        .run(move |c| weir_store::terminals::key_of(c, &wanted))
        .await?
    {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!("no terminal {id}"))),
    }
}

#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many, newest first (default 20, 1 to 500).
    limit: Option<u32>,
}

/// `GET /api/v1/terminals/{id}/pictures?limit=20`: the newest pictures, newest first.
#[utoipa::path(get, path = "/terminals/{id}/pictures", tag = "pictures",
    params(("id" = String, Path, description = "Terminal id"), ListQuery),
    responses(
        (status = 200, description = "The newest pictures, newest first", body = Vec<PictureView>),
        (status = 400, description = "A bad query", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
    ))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<PictureView>>, ApiError> {
    caller.require(EVERYONE)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    terminal_exists(&state, &id).await?;
    let limit = q.limit.unwrap_or(20).clamp(1, 500);
    let found = state
        .store
        .run(move |c| pictures::list(c, &id, limit))
        .await?;
    Ok(Json(found.into_iter().map(view).collect()))
}

/// `POST /api/v1/terminals/{id}/pictures` (field, operator): the body is the picture itself,
/// `Content-Type: image/jpeg` or `image/png`, at most `pictures.max_picture_bytes`. 201 with
/// the stored picture; 415 for another type, 413 when too large, 422 when the body is not a
/// picture or declares too many pixels. Nothing is stored unless everything passes.
#[utoipa::path(post, path = "/terminals/{id}/pictures", tag = "pictures",
    params(("id" = String, Path, description = "Terminal id")),
    request_body(description = "The picture itself", content(("image/jpeg"), ("image/png"))),
    responses(
        (status = 201, description = "The stored picture", body = PictureView),
        (status = 400, description = "The body could not be read", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such terminal", body = ErrorBody),
        (status = 408, description = "The body took longer than pictures.upload_timeout_s", body = ErrorBody),
        (status = 413, description = "Larger than pictures.max_picture_bytes", body = ErrorBody),
        (status = 415, description = "Not image/jpeg or image/png, or not what it claims", body = ErrorBody),
        (status = 422, description = "Not a picture, or too many pixels", body = ErrorBody),
        (status = 503, description = "Too many pictures in flight; see Retry-After", body = ErrorBody),
    ))]
async fn upload(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<PictureView>), ApiError> {
    caller.require(UPLOADERS)?;
    terminal_exists(&state, &id).await?;
    let p = &state.pictures;
    let media = headers
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let kind =
        Kind::from_content_type(&media).ok_or_else(|| p.refused(PictureError::WrongType(media)))?;
    let max = p.config().max_picture_bytes;
    let too_large = || p.refused(PictureError::TooLarge { max });
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max) {
        return Err(too_large().into());
    }
    let turn = p.turn().await?;
    let timeout_s = p.config().upload_timeout_s;
    let read = async {
        let mut stream = body.into_data_stream();
        let mut buf = Vec::with_capacity(declared.unwrap_or(0) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                ApiError::bad_request(format!("the picture's body could not be read: {e}"))
            })?;
            if (buf.len() + chunk.len()) as u64 > max {
                return Err(ApiError::from(too_large()));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(buf)
    };
    let bytes =
        match tokio::time::timeout(std::time::Duration::from_secs(timeout_s.into()), read).await {
            Ok(r) => r?,
            Err(_) => return Err(p.refused(PictureError::Timeout(timeout_s)).into()),
        };
    let picture = p
        .take(
            &turn,
            &id,
            Source::Upload,
            Some(caller.0.name.clone()),
            bytes.into(),
            Some(kind),
        )
        .await?;
    tracing::info!(terminal = %id, picture = picture.id, by = %caller.0.name, bytes = picture.bytes, "picture uploaded");
    Ok((StatusCode::CREATED, Json(view(picture))))
}

async fn file(
    state: &AppState,
    caller: &Caller,
    id: Result<Path<i64>, PathRejection>,
    thumbnail: bool,
) -> Result<Response, ApiError> {
    caller.require(EVERYONE)?;
    let id = id
        .map(|Path(id)| id)
        .map_err(|_| ApiError::bad_request("the picture id must be a number"))?;
    let picture = state
        .store
        .run(move |c| pictures::get(c, id))
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no picture {id}")))?;
    let path = state.pictures.file(&picture, thumbnail);
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        ApiError::from(anyhow::anyhow!(
            "reading picture file {}: {e}",
            path.display()
        ))
    })?;
    let content_type = if thumbnail {
        "image/jpeg".to_owned()
    } else {
        picture.content_type
    };
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            // A picture's id is never reused, so its file never changes.
            (
                header::CACHE_CONTROL,
                "private, max-age=86400, immutable".to_owned(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/v1/pictures/{id}`: the original, as received.
#[utoipa::path(get, path = "/pictures/{id}", tag = "pictures",
    params(("id" = i64, Path, description = "Picture id")),
    responses(
        (status = 200, description = "The original, as received", content(("image/jpeg"), ("image/png"))),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such picture", body = ErrorBody),
    ))]
async fn original(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    file(&state, &caller, id, false).await
}

/// `GET /api/v1/pictures/{id}/thumbnail`: the JPEG thumbnail.
#[utoipa::path(get, path = "/pictures/{id}/thumbnail", tag = "pictures",
    params(("id" = i64, Path, description = "Picture id")),
    responses(
        (status = 200, description = "The JPEG thumbnail", content_type = "image/jpeg"),
        (status = 400, description = "The id is not a number", body = ErrorBody),
        (status = 401, description = "No login or token", body = ErrorBody),
        (status = 403, description = "The caller's role may not do this", body = ErrorBody),
        (status = 404, description = "No such picture", body = ErrorBody),
    ))]
async fn thumbnail(
    State(state): State<AppState>,
    caller: Caller,
    id: Result<Path<i64>, PathRejection>,
) -> Result<Response, ApiError> {
    file(&state, &caller, id, true).await
}

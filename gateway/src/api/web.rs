//! The dashboard, embedded at build time (see build.rs) and served at `/`.

use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use include_dir::{include_dir, Dir};

static DASHBOARD: Dir<'static> = include_dir!("$OUT_DIR/dashboard");

/// Serves a dashboard file; any other path that is not a file gets `index.html`, so the
/// dashboard's own routes (`/terminals/HY-001`) work on reload and from a QR code.
pub async fn serve(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if let Some(file) = DASHBOARD.get_file(path).filter(|_| !path.is_empty()) {
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        // Asset names carry a content hash: they never change.
        let cache = if path.starts_with("assets/") {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        };
        return (
            [
                (header::CONTENT_TYPE, mime.as_ref()),
                (header::CACHE_CONTROL, cache),
            ],
            file.contents(),
        )
            .into_response();
    }
    match DASHBOARD.get_file("index.html") {
        Some(index) => (
            [
                (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            index.contents(),
        )
            .into_response(),
        None => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "the dashboard was not built into this binary",
        )
            .into_response(),
    }
}

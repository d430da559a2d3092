//! The API's OpenAPI 3.1 description, served at `GET /api/openapi.json` without a login: it
//! describes routes and types, no data. It is built from the handlers' `#[utoipa::path]`
//! annotations as the router registers them (`api_routes` in this module's parent), so a
//! route cannot be served without being described; `gateway/tests/openapi.rs` checks real
//! answers against it.

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::Extension;
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

/// Where the description is served.
pub const PATH: &str = "/api/openapi.json";

/// The parts of the description that no handler gives: title, auth schemes, tags.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Weir gateway API",
        description = "The HTTP API of a Weir gateway: terminals, readings, alerts, reports, \
                       pictures and firmware rollouts. docs/api.md explains each route; \
                       docs/security.md says who may call what. Every route but login, logout \
                       and this description needs a dashboard session cookie or an API token \
                       (`Authorization: Bearer`); errors are `{\"error\", \"detail\"}`."
    ),
    paths(openapi_json),
    modifiers(&Auth),
    security(("bearer" = []), ("session" = [])),
    tags(
        (name = "session", description = "Logging in and out; who the caller is; the site"),
        (name = "terminals", description = "The terminal registry, readings, node configs, dead letters"),
        (name = "alerts", description = "Alerts, work orders, incidents, crews, rule previews, live events"),
        (name = "reports", description = "Inspectors' compliance, completeness and response-time reports"),
        (name = "pictures", description = "Pictures of the terminals"),
        (name = "firmware", description = "Firmware rollouts"),
        (name = "meta", description = "This description"),
    )
)]
struct Base;

/// Adds the two ways to authenticate: an API token and the dashboard's session cookie.
struct Auth;

impl utoipa::Modify for Auth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API token (`weir token add`)"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                super::SESSION_COOKIE,
                "The dashboard's session cookie, set by POST /api/v1/login",
            ))),
        );
    }
}

/// The whole description: [`Base`] with the `/api/v1` routes' own (`paths` relative to it).
pub fn document(paths: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    Base::openapi().nest("/api/v1", paths)
}

/// The description as served: rendered once.
#[derive(Clone, Debug)]
pub struct Served(Arc<str>);

impl Served {
    /// Renders `doc`.
    pub fn new(doc: &utoipa::openapi::OpenApi) -> Served {
        Served(
            doc.to_pretty_json()
                .expect("an OpenAPI document serialises")
                .into(),
        )
    }
}

/// `GET /api/openapi.json`: this description (no login needed).
#[utoipa::path(get, path = "/api/openapi.json", tag = "meta", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 description of this API",
        content_type = "application/json", body = Object)))]
pub async fn openapi_json(Extension(doc): Extension<Served>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        doc.0.to_string(),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    /// Calls that register a route in axum without a description, and the only places they
    /// may: routes outside the API (`/healthz`, `/metrics`), this description itself (in
    /// [`super::Base`]'s `paths`), and the API's own nesting under `/api/v1`.
    const PLAIN: [(&str, &[&str]); 4] = [
        (
            ".route(",
            &["\"/healthz\"", "\"/metrics\"", "openapi::PATH"],
        ),
        (".nest(", &["\"/api/v1\""]),
        (".route_service(", &[]),
        (".nest_service(", &[]),
    ];

    /// Where `text` (the file `file`) registers a route undescribed: `file:line` each.
    fn plain_routes(file: &str, text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (call, allowed) in PLAIN {
            for (at, _) in text.match_indices(call) {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                if text[line_start..at].trim_start().starts_with("//") {
                    continue;
                }
                let rest = text[at + call.len()..].trim_start();
                if !allowed.iter().any(|a| rest.starts_with(a)) {
                    found.push(format!("{file}:{}", text[..at].lines().count()));
                }
            }
        }
        found
    }

    #[test]
    fn every_api_route_is_registered_with_its_description() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
        let mut plain = Vec::new();
        let mut files = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // This file registers no route; its tests spell the calls out.
            if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("openapi.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let name = path.file_name().unwrap().to_string_lossy().into_owned();
                plain.extend(plain_routes(&name, &text));
                files += 1;
            }
        }
        assert!(files >= 10, "only {files} files read in {dir}");
        assert!(
            plain.is_empty(),
            "routes registered without their OpenAPI description (use utoipa-axum's \
             `.routes(routes!(handler))` with a #[utoipa::path] on the handler): {plain:?}"
        );
    }

    #[test]
    fn an_undescribed_route_is_found() {
        let text = "// .route(\"/in/a/comment\", get(x))\nRouter::new()\n    \
                    .route(\"/healthz\", get(h))\n    .route(\"/alerts/x\", get(x))\n    \
                    .nest(\"/api/v2\", other)";
        assert_eq!(plain_routes("x.rs", text), ["x.rs:4", "x.rs:5"]);
    }

    #[test]
    fn the_description_has_full_paths_and_every_method_of_a_path() {
        let (_, doc) = super::super::api();
        let doc = serde_json::to_value(&doc).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/api/v1/login", &["post"][..]),
            ("/api/v1/terminals/{id}/config", &["get", "put"]),
            ("/api/v1/terminals/{id}/pictures", &["get", "post"]),
            ("/api/v1/events", &["get"]),
            ("/api/openapi.json", &["get"]),
        ] {
            for m in methods {
                assert!(
                    paths.get(path).and_then(|p| p.get(*m)).is_some(),
                    "{m} {path} is not described"
                );
            }
        }
        assert!(paths.keys().all(|p| p.starts_with("/api/")), "{paths:?}");
    }
}

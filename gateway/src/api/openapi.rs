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
    /// The API's source files: every route they register.
    const SOURCES: [(&str, &str); 10] = [
        ("mod.rs", include_str!("mod.rs")),
        ("alerts.rs", include_str!("alerts.rs")),
        ("events.rs", include_str!("events.rs")),
        ("firmware.rs", include_str!("firmware.rs")),
        ("pictures.rs", include_str!("pictures.rs")),
        ("readings.rs", include_str!("readings.rs")),
        ("reports.rs", include_str!("reports.rs")),
        ("session.rs", include_str!("session.rs")),
        ("terminals.rs", include_str!("terminals.rs")),
        ("web.rs", include_str!("web.rs")),
    ];

    /// Routes outside the API (`/healthz`, `/metrics`) and this description itself (in
    /// [`super::Base`]'s `paths`) are the only ones registered with a plain `.route(`.
    const PLAIN_ROUTES: [&str; 3] = ["\"/healthz\"", "\"/metrics\"", "openapi::PATH"];

    #[test]
    fn every_api_route_is_registered_with_its_description() {
        let mut plain = Vec::new();
        for (file, text) in SOURCES {
            for (at, _) in text.match_indices(".route(") {
                let line_start = text[..at].rfind('\n').map_or(0, |i| i + 1);
                if text[line_start..at].trim_start().starts_with("//") {
                    continue;
                }
                let rest = text[at + ".route(".len()..].trim_start();
                if !PLAIN_ROUTES.iter().any(|p| rest.starts_with(p)) {
                    let line = text[..at].lines().count();
                    plain.push(format!("{file}:{line}"));
                }
            }
        }
        assert!(
            plain.is_empty(),
            "routes registered without their OpenAPI description (use utoipa-axum's \
             `.routes(routes!(handler))` with a #[utoipa::path] on the handler): {plain:?}"
        );
    }

    #[test]
    fn the_check_of_plain_routes_sees_one() {
        // The scan above must see a plain route when there is one, or it checks nothing.
        let text = "Router::new()\n    .route(\"/api/v1/x\", get(x))";
        assert_eq!(text.match_indices(".route(").count(), 1);
        let rest = &text[text.find(".route(").unwrap() + 7..];
        assert!(!PLAIN_ROUTES.iter().any(|p| rest.starts_with(p)));
    }

    #[test]
    fn the_description_has_every_route_of_the_router() {
        let (_, doc) = super::super::api();
        let doc = super::document_json(&doc);
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
    }
}

/// The description as JSON, for tests.
#[cfg(test)]
fn document_json(doc: &utoipa::openapi::OpenApi) -> serde_json::Value {
    serde_json::to_value(doc).unwrap()
}

//! The OpenAPI description at /api/openapi.json against the real API: every described route
//! is served, and every answer, success or error, matches the schema the description gives for
//! its path, method and status.

mod support;

use serde_json::{json, Value};
use support::*;
use weir_store::auth::{self, Role};

/// Checks answers against an OpenAPI 3.1 description. Object schemas are made strict first
/// (no properties beyond those described), so that a field added to an answer without its
/// description is caught as well as one missing or of the wrong type.
struct Spec(Value);

impl Spec {
    fn new(mut doc: Value) -> Spec {
        strict(&mut doc);
        Spec(doc)
    }

    /// The schema of the JSON answer to `method` `template` with `status`; panics, naming
    /// them, when the description has no such answer.
    fn schema(&self, method: &str, template: &str, status: u16) -> &Value {
        let op = &self.0["paths"][template][method];
        assert!(op.is_object(), "{method} {template} is not described");
        let response = &op["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{method} {template} answered {status}, which its description does not list"
        );
        let schema = &response["content"]["application/json"]["schema"];
        assert!(
            schema.is_object(),
            "{method} {template} {status} has no JSON schema: {response}"
        );
        schema
    }

    /// Why `body` does not match the schema of that answer (empty: it matches).
    fn mismatches(&self, method: &str, template: &str, status: u16, body: &Value) -> Vec<String> {
        let mut schema = self.schema(method, template, status).clone();
        // `#/components/...` references resolve against the document the schema sits in.
        schema["components"] = self.0["components"].clone();
        let validator = jsonschema::draft202012::new(&schema)
            .unwrap_or_else(|e| panic!("{method} {template} {status}: a bad schema: {e}"));
        validator
            .iter_errors(body)
            .map(|e| format!("{} at {}", e, e.instance_path()))
            .collect()
    }

    fn check(&self, method: &str, template: &str, status: u16, body: &Value) {
        let wrong = self.mismatches(method, template, status, body);
        assert!(
            wrong.is_empty(),
            "{method} {template} {status}: the answer does not match its description:\n{}\n{body:#}",
            wrong.join("\n")
        );
    }
}

/// Forbids undescribed properties: `additionalProperties: false` on each object schema with
/// properties, except those taken into another by `allOf` (a flattened struct), whose
/// enclosing schema gets `unevaluatedProperties: false` instead, seeing the properties of all.
fn strict(doc: &mut Value) {
    let mut in_all_of = Vec::new();
    collect_all_of_refs(doc, &mut in_all_of);
    if let Some(schemas) = doc["components"]["schemas"].as_object_mut() {
        for (name, schema) in schemas.iter_mut() {
            if !in_all_of.contains(name) {
                close(schema);
            }
        }
    }
    if let Some(paths) = doc.get_mut("paths") {
        close(paths);
    }
}

fn collect_all_of_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::Array(parts)) = m.get("allOf") {
                for p in parts {
                    if let Some(r) = p["$ref"].as_str() {
                        out.push(r.trim_start_matches("#/components/schemas/").to_owned());
                    }
                }
            }
            m.values().for_each(|v| collect_all_of_refs(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| collect_all_of_refs(v, out)),
        _ => {}
    }
}

fn close(v: &mut Value) {
    match v {
        Value::Object(m) => {
            if m.contains_key("allOf") {
                m.entry("unevaluatedProperties").or_insert(json!(false));
                // Its parts are open: the enclosing schema judges the properties of all.
                if let Some(Value::Array(parts)) = m.get_mut("allOf") {
                    for p in parts {
                        if let Value::Object(pm) = p {
                            for v in pm.values_mut() {
                                close(v);
                            }
                        }
                    }
                }
                return;
            }
            if m.contains_key("properties") && !m.contains_key("additionalProperties") {
                m.insert("additionalProperties".into(), json!(false));
            }
            m.values_mut().for_each(close);
        }
        Value::Array(a) => a.iter_mut().for_each(close),
        _ => {}
    }
}

/// A request with an optional token and JSON body; the status and the body as JSON.
async fn call(
    method: reqwest::Method,
    url: String,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = reqwest::Client::new().request(method.clone(), &url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    let json = serde_json::from_str(&text)
        .unwrap_or_else(|_| panic!("{method} {url}: status {status}, not JSON: {text:?}"));
    (status, json)
}

#[test]
fn an_answer_that_differs_from_its_description_is_caught() {
    let spec = Spec::new(json!({
        "paths": {"/t": {"get": {"responses": {"200": {"content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/T"}}}}}}}},
        "components": {"schemas": {
            "Base": {"type": "object", "required": ["id"],
                "properties": {"id": {"type": "string"}}},
            "T": {"allOf": [
                {"$ref": "#/components/schemas/Base"},
                {"type": "object", "required": ["n"],
                    "properties": {"n": {"type": "integer", "minimum": 0}}}
            ]}
        }}
    }));
    let good = json!({"id": "HY-001", "n": 3});
    assert!(spec.mismatches("get", "/t", 200, &good).is_empty());
    for bad in [
        json!({"id": "HY-001"}),                     // a field missing
        json!({"id": "HY-001", "n": "3"}),           // of the wrong type
        json!({"id": "HY-001", "n": -1}),            // out of its range
        json!({"id": 1, "n": 3}),                    // in the flattened part
        json!({"id": "HY-001", "n": 3, "extra": 1}), // not described
    ] {
        assert!(
            !spec.mismatches("get", "/t", 200, &bad).is_empty(),
            "{bad} passed"
        );
    }
}

/// A call and what it must answer: method, the path's template in the description, the path,
/// a token, a JSON body, the status expected.
type Case<'a> = (
    reqwest::Method,
    &'a str,
    String,
    Option<&'a str>,
    Option<Value>,
    u16,
);

/// A small JPEG picture.
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([x as u8, y as u8, 128]));
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

/// A path of the description with its parameters filled in.
fn concrete(template: &str) -> String {
    template
        .replace("/alerts/{id}", "/alerts/1")
        .replace("/pictures/{id}", "/pictures/1")
        .replace("{id}", "HY-001")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_described_api_is_the_served_api() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    let password = g.add_terminal("HY-001");
    g.add_terminal("HY-002");
    // Three hours of readings, turbidity rising a unit a minute: an alarm opens.
    let h0 = (weir_store::now() / 3600 - 4) * 3600;
    let lines: Vec<String> = (0..180)
        .map(|i| {
            format!(
                r#"{{"boot":1,"seq":{i},"readings":[{{"ts":"{}","turbidity_ntu":{i},"flow_m3h":1.5}}]}}"#,
                rfc3339(h0 + i * 60)
            )
        })
        .collect();
    mosquitto_pub(
        g.running.mqtt_addr.unwrap().port(),
        Some(("HY-001", &password)),
        "weir/terminals/HY-001/telemetry",
        &lines,
    );
    let alert: i64 = g
        .eventually(30, || async {
            let (_, body) = g.get("/api/v1/alerts?state=all").await;
            let v: Value = serde_json::from_str(&body).ok()?;
            v.as_array()?.first()?["id"].as_i64()
        })
        .await;

    // The description itself, without a login.
    let (status, doc) = call(reqwest::Method::GET, g.url("/api/openapi.json"), None, None).await;
    assert_eq!(status, 200, "{doc}");
    assert_eq!(
        doc["openapi"].as_str().map(|v| &v[..2]),
        Some("3."),
        "{doc}"
    );
    let spec = Spec::new(doc.clone());

    // Every described route and method is served: without a login each answers 401 (or
    // the login's own 400), never the router's "no such API route" or 405.
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.len() >= 25, "only {} paths described", paths.len());
    for (template, ops) in paths {
        for method in ops.as_object().unwrap().keys() {
            let m: reqwest::Method = method.to_uppercase().parse().unwrap();
            let body = (m != reqwest::Method::GET).then(|| json!({}));
            let (status, answer) = call(m, g.url(&concrete(template)), None, body).await;
            assert!(
                ![404, 405].contains(&status),
                "{method} {template} is described but not served: {status} {answer}"
            );
            if template != "/api/openapi.json" {
                spec.check(method, template, status, &answer);
            }
        }
    }

    let token = |role| {
        g.running
            .store
            .with(|c| auth::create_token(c, "test", role))
            .unwrap()
    };
    let admin = g.token.clone();
    let inspector = token(Role::Inspector);
    let operator = token(Role::Operator);
    let from = rfc3339(h0);
    let to = rfc3339(h0 + 3 * 3600);
    let get = reqwest::Method::GET;
    let post = reqwest::Method::POST;

    // A picture from the field, so that the alert's view shows it too; and
    // one that is not what it says.
    let upload = |content_type: &'static str, body: Vec<u8>| {
        reqwest::Client::new()
            .post(g.url("/api/v1/terminals/HY-001/pictures"))
            .bearer_auth(&operator)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let template = "/api/v1/terminals/{id}/pictures";
    let resp = upload("image/jpeg", jpeg(64, 48)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let picture: Value = resp.json().await.unwrap();
    spec.check("post", template, 201, &picture);
    let resp = upload("text/plain", b"not a picture".to_vec())
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 415);
    spec.check("post", template, 415, &resp.json().await.unwrap());
    // Its files come in a described type.
    for (template, path) in [
        ("/api/v1/pictures/{id}", picture["url"].as_str().unwrap()),
        (
            "/api/v1/pictures/{id}/thumbnail",
            picture["thumbnail_url"].as_str().unwrap(),
        ),
    ] {
        let resp = reqwest::Client::new()
            .get(g.url(path))
            .bearer_auth(&admin)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{path}");
        let media = resp.headers()["content-type"].to_str().unwrap().to_owned();
        let described = &doc["paths"][template]["get"]["responses"]["200"]["content"];
        assert!(
            described.get(&media).is_some(),
            "{path} came as {media}, described as {described}"
        );
    }

    let cases: Vec<Case<'_>> = vec![
        (
            get.clone(),
            "/api/v1/me",
            "/api/v1/me".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/site",
            "/api/v1/site".into(),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/terminals",
            "/api/v1/terminals".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}",
            "/api/v1/terminals/HY-001".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}",
            "/api/v1/terminals/HY-404".into(),
            Some(&admin),
            None,
            404,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}/readings",
            format!("/api/v1/terminals/HY-001/readings?from={from}&to={to}"),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}/readings",
            format!("/api/v1/terminals/HY-001/readings?from={from}&to={to}&step=1h"),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}/readings",
            "/api/v1/terminals/HY-001/readings?step=5x".into(),
            Some(&inspector),
            None,
            400,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}/readings",
            "/api/v1/terminals/HY-001/readings".into(),
            None,
            None,
            401,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}/config",
            "/api/v1/terminals/HY-001/config".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/dead-letters",
            "/api/v1/dead-letters".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/dead-letters",
            "/api/v1/dead-letters".into(),
            Some(&inspector),
            None,
            403,
        ),
        (
            get.clone(),
            "/api/v1/alerts",
            "/api/v1/alerts?state=all".into(),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/alerts",
            "/api/v1/alerts?state=sideways".into(),
            Some(&inspector),
            None,
            400,
        ),
        (
            get.clone(),
            "/api/v1/alerts/{id}",
            format!("/api/v1/alerts/{alert}"),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/alerts/{id}",
            "/api/v1/alerts/999999".into(),
            Some(&inspector),
            None,
            404,
        ),
        (
            post.clone(),
            "/api/v1/alerts/{id}/acknowledge",
            format!("/api/v1/alerts/{alert}/acknowledge"),
            Some(&inspector),
            Some(json!({})),
            403,
        ),
        (
            post.clone(),
            "/api/v1/alerts/{id}/acknowledge",
            format!("/api/v1/alerts/{alert}/acknowledge"),
            Some(&operator),
            Some(json!({"note": "seen"})),
            200,
        ),
        (
            post.clone(),
            "/api/v1/alerts/{id}/notes",
            format!("/api/v1/alerts/{alert}/notes"),
            Some(&operator),
            Some(json!({"note": "crew called"})),
            200,
        ),
        (
            get.clone(),
            "/api/v1/incidents",
            "/api/v1/incidents?state=all".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/crews",
            "/api/v1/crews".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/service-times",
            "/api/v1/service-times".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            post.clone(),
            "/api/v1/rules/preview",
            "/api/v1/rules/preview".into(),
            Some(&operator),
            Some(
                json!({"rule": "turbidity", "terminal": "HY-001", "from": from, "to": to,
                        "params": {"turbidity_warning_ntu": 15.0}}),
            ),
            200,
        ),
        (
            get.clone(),
            "/api/v1/reports/county",
            format!("/api/v1/reports/county?from={from}&to={to}"),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/reports/terminals/{id}",
            format!("/api/v1/reports/terminals/HY-001?from={from}&to={to}"),
            Some(&inspector),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/reports/terminals/{id}",
            format!("/api/v1/reports/terminals/HY-404?from={from}&to={to}"),
            Some(&inspector),
            None,
            404,
        ),
        (
            get.clone(),
            "/api/v1/terminals/{id}/pictures",
            "/api/v1/terminals/HY-001/pictures".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            get.clone(),
            "/api/v1/firmware",
            "/api/v1/firmware".into(),
            Some(&admin),
            None,
            200,
        ),
        (
            post.clone(),
            "/api/v1/login",
            "/api/v1/login".into(),
            None,
            Some(json!({"username": "nobody", "password": "wrong"})),
            401,
        ),
    ];
    for (method, template, path, token, body, expected) in cases {
        let (status, answer) = call(method.clone(), g.url(&path), token, body).await;
        assert_eq!(status, expected, "{method} {path}: {answer}");
        spec.check(
            method.as_str().to_lowercase().as_str(),
            template,
            status,
            &answer,
        );
    }

    // The stepped and raw answers both had rows, so both row shapes were checked.
    let (_, raw) = call(
        get.clone(),
        g.url(&format!(
            "/api/v1/terminals/HY-001/readings?from={from}&to={to}"
        )),
        Some(&admin),
        None,
    )
    .await;
    assert_eq!(raw["readings"].as_array().map(Vec::len), Some(180), "{raw}");
    // The alert's view held the picture (before or after it opened: the same second here), so
    // the picture's schema was checked inside it too.
    let (_, one) = call(
        get.clone(),
        g.url(&format!("/api/v1/alerts/{alert}")),
        Some(&admin),
        None,
    )
    .await;
    let around = &one["pictures"];
    assert!(
        around["before"]["id"].is_i64() || around["after"]["id"].is_i64(),
        "{one}"
    );
    g.stop().await;
}

//! The Grafana dashboards in gateway/deploy/grafana/ against what the forwarder really writes.
//!
//! A gateway forwards readings (with a sensor fault among them) through a recording proxy to a
//! real VictoriaMetrics. The recorded line protocol says which measurement, tags and fields
//! exist; every query of the InfluxDB 2 dashboard (Flux) may name only those, and every field
//! written must have a panel. Every query of the VictoriaMetrics dashboard (PromQL) is run
//! against the forwarded data and must return the terminals' series. Both files are checked for
//! what Grafana's dashboard schema requires of a dashboard, its panels, targets and variables.
//! Grafana itself does not run here.

mod support;

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use support::*;

fn dashboard(name: &str) -> Value {
    let path = format!("{}/deploy/grafana/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} is not JSON: {e}"))
}

/// What Grafana's dashboard schema (schemaVersion 39) requires: the dashboard's required keys
/// and their types, panels on the 24-column grid with unique ids, every target with a refId
/// unique in its panel and a data source, every variable of a known type. Returns the panels'
/// targets.
fn check_structure(name: &str, d: &Value) -> Vec<Value> {
    let problem = |what: String| panic!("{name}: {what}");
    for key in ["uid", "title"] {
        if !d[key].is_string() {
            problem(format!("{key} must be a string"));
        }
    }
    if !d["schemaVersion"].is_u64() {
        problem("schemaVersion must be an integer".into());
    }
    if !d["annotations"]["list"].is_array() || !d["templating"]["list"].is_array() {
        problem("annotations.list and templating.list must be arrays".into());
    }
    let types = [
        "query",
        "adhoc",
        "groupby",
        "constant",
        "datasource",
        "interval",
        "textbox",
        "custom",
        "system",
        "snapshot",
    ];
    let mut variables = HashSet::new();
    for v in d["templating"]["list"].as_array().unwrap() {
        let (Some(t), Some(n)) = (v["type"].as_str(), v["name"].as_str()) else {
            problem(format!("a variable without type or name: {v}"));
            unreachable!()
        };
        if !types.contains(&t) {
            problem(format!("variable {n} has unknown type {t}"));
        }
        variables.insert(n.to_owned());
    }
    let panels = d["panels"]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: panels must be an array"));
    assert!(!panels.is_empty(), "{name}: no panels");
    let known_panels = [
        "timeseries",
        "table",
        "stat",
        "gauge",
        "bargauge",
        "text",
        "row",
    ];
    let mut ids = HashSet::new();
    let mut targets = Vec::new();
    for p in panels {
        let title = p["title"].as_str().unwrap_or("?");
        let t = p["type"].as_str().unwrap_or("");
        if !known_panels.contains(&t) {
            problem(format!("panel {title}: type {t:?} is not a built-in panel"));
        }
        if !p["id"].is_u64() || !ids.insert(p["id"].as_u64()) {
            problem(format!("panel {title}: id missing or repeated"));
        }
        let g = &p["gridPos"];
        let [h, w, x, y] = ["h", "w", "x", "y"].map(|k| g[k].as_u64());
        match (h, w, x, y) {
            (Some(h), Some(w), Some(x), Some(_)) if h > 0 && w > 0 && x + w <= 24 => {}
            _ => problem(format!(
                "panel {title}: gridPos {g} is not on the 24-column grid"
            )),
        }
        let ds = &p["datasource"];
        let mut refs = HashSet::new();
        for target in p["targets"].as_array().cloned().unwrap_or_default() {
            let r = target["refId"].as_str().unwrap_or("");
            if r.is_empty() || !refs.insert(r.to_owned()) {
                problem(format!("panel {title}: a target without a unique refId"));
            }
            let tds = if target["datasource"].is_object() {
                &target["datasource"]
            } else {
                ds
            };
            if !tds["type"].is_string() || !tds["uid"].is_string() {
                problem(format!("panel {title}: a target without a data source"));
            }
            // A data source given by a variable names one the dashboard defines.
            let uid = tds["uid"].as_str().unwrap();
            if let Some(var) = uid.strip_prefix("${").and_then(|u| u.strip_suffix('}')) {
                if !variables.contains(var) {
                    problem(format!(
                        "panel {title}: data source variable {var} is not defined"
                    ));
                }
            }
            targets.push(target);
        }
        if t != "text" && t != "row" && refs.is_empty() {
            problem(format!("panel {title}: no query"));
        }
    }
    targets
}

/// Measurement, tag keys and field keys of line protocol.
#[derive(Debug, Default)]
struct Written {
    measurements: BTreeSet<String>,
    tags: BTreeSet<String>,
    fields: BTreeSet<String>,
}

fn parse_line_protocol(body: &str, into: &mut Written) {
    for line in body.lines().filter(|l| !l.trim().is_empty()) {
        // measurement[,tag=v...] field=v[,field=v...] ts; no spaces in Weir's keys and codes.
        let mut parts = line.splitn(3, ' ');
        let (head, fields) = (parts.next().unwrap(), parts.next().unwrap_or(""));
        let mut head = head.split(',');
        into.measurements.insert(head.next().unwrap().to_owned());
        for tag in head {
            into.tags.insert(tag.split('=').next().unwrap().to_owned());
        }
        for f in fields.split(',') {
            into.fields.insert(f.split('=').next().unwrap().to_owned());
        }
    }
}

/// Every `r.NAME == "VALUE"` (or `r.NAME`) in a Flux query: (NAME, VALUE if compared).
fn flux_references(query: &str) -> Vec<(String, Option<String>)> {
    let mut out = Vec::new();
    let mut rest = query;
    while let Some(i) = rest.find("r.") {
        let preceded_by_word = i > 0
            && rest[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_alphanumeric() || c == '_');
        rest = &rest[i + 2..];
        if preceded_by_word {
            continue;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let after = rest[name.len()..].trim_start();
        let value = after.strip_prefix("==").map(|v| {
            let v = v.trim_start().trim_start_matches('"');
            v[..v.find('"').unwrap_or(v.len())].to_owned()
        });
        if !name.is_empty() {
            out.push((name, value));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboards_query_only_what_the_forwarder_writes_and_their_promql_returns_it() {
    let influx = dashboard("weir.json");
    let vm_board = dashboard("weir-victoriametrics.json");
    let flux = check_structure("weir.json", &influx);
    let promql = check_structure("weir-victoriametrics.json", &vm_board);

    // A proxy that records the forwarder's requests and passes them to VictoriaMetrics.
    let vm = victoria_metrics(None);
    let recorded = Arc::new(Mutex::new(String::new()));
    let proxy = {
        let recorded = Arc::clone(&recorded);
        let vm_port = vm.port;
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri, body: bytes::Bytes| {
            let recorded = Arc::clone(&recorded);
            async move {
                recorded
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&body));
                let resp = reqwest::Client::new()
                    .post(format!("http://127.0.0.1:{vm_port}{uri}"))
                    .body(body)
                    .send()
                    .await
                    .expect("VictoriaMetrics answers");
                axum::http::StatusCode::from_u16(resp.status().as_u16()).unwrap()
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        port
    };

    let broker = mosquitto("");
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(dir.path(), Some(broker.port));
    cfg.influx.enabled = true;
    cfg.influx.url = format!("http://127.0.0.1:{proxy}");
    cfg.influx.gzip = false;
    let (bucket, measurement) = (cfg.influx.bucket.clone(), cfg.influx.measurement.clone());
    let g = Gateway::start(cfg).await;
    let terminals = ["HY-001", "HY-002"];
    let start = (weir_store::now() - 7200) / 60 * 60;
    let per_terminal = 30;
    for id in terminals {
        g.add_terminal(id);
        // Readings 7 to 12 each carry one sensor's fault instead of its value.
        let lines: Vec<String> = (0..per_terminal)
            .map(|i| {
                let values = [
                    ("flow_m3h", "1.5".to_owned()),
                    ("volume_m3", (100 + i).to_string()),
                    ("turbidity_ntu", format!("{}", 3.0 + f64::from(i) / 10.0)),
                    ("sludge_pct", "40.0".to_owned()),
                    ("supply_v", "12.1".to_owned()),
                    ("rssi_dbm", "-71".to_owned()),
                ];
                let faulted = (7..13).contains(&i).then(|| values[(i - 7) as usize].0);
                let mut fields: Vec<String> = values
                    .iter()
                    .filter(|(k, _)| Some(*k) != faulted)
                    .map(|(k, v)| format!(r#""{k}":{v}"#))
                    .collect();
                if let Some(k) = faulted {
                    fields.push(format!(r#""faults":{{"{k}":"no_response"}}"#));
                }
                format!(
                    r#"{{"boot":1,"seq":{i},"readings":[{{"ts":"{}",{}}}]}}"#,
                    rfc3339(start + i64::from(i) * 60),
                    fields.join(",")
                )
            })
            .collect();
        mosquitto_pub(
            broker.port,
            None,
            &format!("weir/terminals/{id}/telemetry"),
            &lines,
        );
    }
    let total = (terminals.len() * per_terminal as usize) as f64;
    g.eventually(60, || async {
        let (_, m) = g.get("/metrics").await;
        (metric(&m, "weir_forwarded_readings_total") == Some(total)).then_some(())
    })
    .await;
    g.stop().await;

    let mut written = Written::default();
    parse_line_protocol(&recorded.lock().unwrap(), &mut written);
    assert_eq!(
        written.measurements,
        BTreeSet::from([measurement.clone()]),
        "{written:?}"
    );
    assert!(
        written.fields.contains("turbidity_ntu_fault") && written.fields.contains("rssi_dbm_fault"),
        "the faults were not forwarded: {written:?}"
    );

    // InfluxDB 2: the variables' defaults are the forwarder's defaults, and every query names
    // only the measurement, tags and fields written.
    let var = |name: &str| {
        influx["templating"]["list"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["name"] == name)
            .unwrap_or_else(|| panic!("weir.json has no variable {name}"))
            .clone()
    };
    assert_eq!(var("bucket")["query"], Value::from(bucket.as_str()));
    assert_eq!(
        var("measurement")["query"],
        Value::from(measurement.as_str())
    );
    let mut queried = BTreeSet::new();
    let mut queries: Vec<String> = flux
        .iter()
        .map(|t| {
            t["query"]
                .as_str()
                .expect("a Flux target has a query")
                .to_owned()
        })
        .collect();
    queries.push(var("terminal")["query"].as_str().unwrap().to_owned());
    for q in &queries {
        assert!(
            q.contains("\"${bucket}\""),
            "a query not on the bucket variable: {q}"
        );
        for (name, value) in flux_references(q) {
            match (name.as_str(), value) {
                ("_measurement", Some(v)) => assert_eq!(v, "${measurement}", "{q}"),
                ("_field", Some(f)) => {
                    assert!(
                        written.fields.contains(&f),
                        "{f} is not a field the forwarder writes: {q}"
                    );
                    queried.insert(f);
                }
                ("_field" | "_measurement" | "_value" | "_time", None) => {}
                (tag, _) => assert!(
                    written.tags.contains(tag),
                    "{tag} is not a tag the forwarder writes: {q}"
                ),
            }
        }
        if q.contains("tagValues") {
            assert!(
                q.contains("tag: \"terminal\"") && written.tags.contains("terminal"),
                "{q}"
            );
        }
    }
    let unshown: Vec<_> = written.fields.difference(&queried).collect();
    assert!(
        unshown.is_empty(),
        "fields written but on no panel of weir.json: {unshown:?}"
    );

    // VictoriaMetrics: every PromQL query returns the terminals' series from the forwarded
    // data; a metric is {measurement}_{field} of a numeric field.
    let numeric: BTreeSet<String> = written
        .fields
        .iter()
        .filter(|f| !f.ends_with("_fault"))
        .map(|f| format!("{measurement}_{f}"))
        .collect();
    let mut shown = BTreeSet::new();
    let all = terminals.join("|");
    let (from, to) = (start - 600, start + i64::from(per_terminal) * 60 + 600);
    for t in &promql {
        let expr = t["expr"].as_str().expect("a PromQL target has an expr");
        let metric_name: String = expr
            .split(['(', '{'])
            .find(|s| s.starts_with(&format!("{measurement}_")))
            .unwrap_or_else(|| panic!("no metric in {expr}"))
            .to_owned();
        assert!(
            numeric.contains(&metric_name),
            "{metric_name} is not forwarded: {expr}"
        );
        shown.insert(metric_name);
        let query = expr.replace("$terminal", &all).replace("$__interval", "5m");
        let url = format!("http://127.0.0.1:{}/api/v1/query_range", vm.port);
        let series = eventually(30, || async {
            let resp = reqwest::Client::new()
                .get(&url)
                .query(&[
                    ("query", query.as_str()),
                    ("start", &from.to_string()),
                    ("end", &to.to_string()),
                    ("step", "300"),
                ])
                .send()
                .await
                .ok()?;
            let v: Value = resp.json().await.ok()?;
            assert_eq!(v["status"], "success", "{query}: {v}");
            let got: BTreeSet<String> = v["data"]["result"]
                .as_array()?
                .iter()
                .filter_map(|s| s["metric"]["terminal"].as_str().map(str::to_owned))
                .collect();
            (got.len() == terminals.len()).then_some(got)
        })
        .await;
        assert_eq!(
            series,
            BTreeSet::from(terminals.map(String::from)),
            "{query}"
        );
    }
    assert_eq!(
        shown, numeric,
        "numeric fields without a panel in weir-victoriametrics.json"
    );
    // The terminal variable's query lists both terminals.
    let tv = vm_board["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "terminal")
        .unwrap()["query"]
        .as_str()
        .unwrap()
        .to_owned();
    let m = tv
        .strip_prefix("label_values(")
        .and_then(|r| r.strip_suffix(", terminal)"))
        .unwrap_or_else(|| panic!("unexpected variable query {tv}"));
    assert!(numeric.contains(m), "{tv}");
    let url = format!(
        "http://127.0.0.1:{}/api/v1/label/terminal/values?match[]={m}&start={from}&end={to}",
        vm.port
    );
    let v: Value = reqwest::get(&url).await.unwrap().json().await.unwrap();
    let values: BTreeSet<&str> = v["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(values, BTreeSet::from(terminals), "{v}");
}

/// Polls `f` every 200 ms until it returns Some, for at most `secs` seconds.
async fn eventually<T, F, Fut>(secs: u64, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "VictoriaMetrics did not return the series within {secs} s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[test]
fn a_query_naming_an_unwritten_field_is_caught() {
    // The check above must be able to fail: a misspelt field is found.
    let refs = flux_references(
        r#"from(bucket: "b") |> filter(fn: (r) => r._measurement == "${measurement}" and r._field == "flow_m3")"#,
    );
    assert_eq!(
        refs,
        vec![
            ("_measurement".to_owned(), Some("${measurement}".to_owned())),
            ("_field".to_owned(), Some("flow_m3".to_owned()))
        ]
    );
    let mut w = Written::default();
    parse_line_protocol(
        "weir,terminal=HY-001 flow_m3h=1.5,turbidity_ntu_fault=\"no_response\" 60\n",
        &mut w,
    );
    assert!(!w.fields.contains("flow_m3"));
    assert!(w.fields.contains("flow_m3h") && w.tags.contains("terminal"));
}

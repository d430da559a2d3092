//! The HTTP side of a gateway that no single client can knock over, tried from outside as an
//! attacker on the county network would: a storm of wrong passwords, half-sent requests, too
//! many connections, malformed queries, cross-site forms, a logout that must end the live feed,
//! and HTTPS.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use weir_store::auth::{self, Role};

const ADMIN_PASSWORD: &str = "the-right-password-1";

async fn gateway(
    tune: impl FnOnce(&mut weir_gateway::config::Config),
) -> (Gateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), None);
    tune(&mut c);
    let g = Gateway::start(c).await;
    g.running
        .store
        .with(|c| {
            Ok(auth::put_user(
                c,
                "admin",
                ADMIN_PASSWORD,
                Role::Admin,
                false,
            ))
        })
        .unwrap()
        .unwrap();
    (g, dir)
}

async fn login(
    client: &reqwest::Client,
    g: &Gateway,
    user: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(g.url("/api/v1/login"))
        .json(&serde_json::json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap()
}

/// A browser-like client (it keeps cookies) logged in as the admin.
async fn logged_in(g: &Gateway) -> reqwest::Client {
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let r = login(&client, g, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 200);
    client
}

/// The status of `GET /api/v1/me` for `client`: 200 while its login holds.
async fn me(client: &reqwest::Client, g: &Gateway) -> reqwest::StatusCode {
    client
        .get(g.url("/api/v1/me"))
        .send()
        .await
        .unwrap()
        .status()
}

/// Resident memory of process `pid`, bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// A gateway running as its own process.
struct Served {
    process: Killed,
    /// `http://...`
    http: String,
    /// The embedded broker.
    mqtt: std::net::SocketAddr,
    /// An admin API token.
    token: String,
    /// The password of terminal HY-001's node.
    node_password: String,
}

/// `weir serve` as its own process (so its memory is its own), everything embedded, with
/// `admin` as a user and HY-001 registered.
fn weir_serve(dir: &std::path::Path, env: &[(&str, &str)]) -> Served {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let weir = |args: &[&str]| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_weir"));
        c.env("WEIR_DATA_DIR", dir)
            .env("WEIR_HTTP__LISTEN", "127.0.0.1:0")
            .env("WEIR_MQTT__LISTEN", "127.0.0.1:0")
            .env("WEIR_STORE__SYNCHRONOUS", "normal")
            .env("WEIR_LOG", "warn")
            .args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c
    };
    let out = weir(&[
        "user",
        "add",
        "admin",
        "--role",
        "admin",
        "--password",
        ADMIN_PASSWORD,
    ])
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = weir(&["token", "create", "--role", "admin"])
        .output()
        .unwrap();
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let out = weir(&["terminal", "add", "HY-001", "--name", "outlet 1"])
        .output()
        .unwrap();
    let node_password = printed_password(&String::from_utf8(out.stdout).unwrap());
    let mut child = weir(&["serve"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut http, mut mqtt) = (None, None);
    while http.is_none() || mqtt.is_none() {
        let line = lines
            .next()
            .expect("weir serve printed its addresses")
            .unwrap();
        if let Some(a) = line.strip_prefix("weir: listening on ") {
            http = Some(a.to_owned());
        }
        if let Some(a) = line.strip_prefix("weir: MQTT broker on ") {
            mqtt = Some(a.parse().unwrap());
        }
    }
    std::thread::spawn(move || {
        lines
            .map_while(Result::ok)
            .for_each(|l| eprintln!("GW: {l}"))
    });
    Served {
        process: Killed(child),
        http: http.unwrap(),
        mqtt: mqtt.unwrap(),
        token,
        node_password,
    }
}

/// An MQTT 3.1.1 CONNECT with a user name and password.
fn connect_packet(client_id: &str, user: &str, password: &str) -> Vec<u8> {
    let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0xC2, 0, 60];
    for field in [client_id, user, password] {
        body.extend((field.len() as u16).to_be_bytes());
        body.extend(field.as_bytes());
    }
    let mut packet = vec![0x10, body.len() as u8];
    packet.extend(body);
    packet
}

struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storm_of_wrong_passwords_keeps_memory_bounded_and_the_right_password_and_the_api_still_work(
) {
    // Throttling off for this test (a huge failure limit): what is measured is the bound on
    // password checks alone.
    let dir = tempfile::tempdir().unwrap();
    // Throttling of MQTT logins per address off too, and each attacker on an address of its own
    // (127.0.0.2 and up), so every wrong password costs a real argon2 check.
    let served = weir_serve(
        dir.path(),
        &[
            ("WEIR_HTTP__LOGIN_MAX_FAILURES", "1000000"),
            ("WEIR_MQTT__LIMITS__AUTH_FAILURES_PER_ADDRESS", "1000000"),
            ("WEIR_MQTT__LIMITS__AUTH_FAILURES_PER_USER", "1000000"),
        ],
    );
    let (addr, token) = (served.http.clone(), served.token.clone());
    let pid = served.process.0.id();
    let client = reqwest::Client::new();
    let login_url = format!("{addr}/api/v1/login");
    // Warm: one login of each kind, so idle includes what any login leaves behind.
    for user in ["admin", "nobody"] {
        let r = client
            .post(&login_url)
            .json(&serde_json::json!({ "username": user, "password": "wrong-password" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401);
    }
    let idle = rss(pid);
    let stop = Arc::new(AtomicBool::new(false));
    let attempts = Arc::new(AtomicU64::new(0));
    let mut storm = Vec::new();
    for i in 0..128 {
        let (stop, attempts, url, client) = (
            stop.clone(),
            attempts.clone(),
            login_url.clone(),
            client.clone(),
        );
        storm.push(tokio::spawn(async move {
            // Half guess the admin's password, half guess names that do not exist.
            let user = if i % 2 == 0 {
                "admin".to_owned()
            } else {
                format!("nobody{i}")
            };
            while !stop.load(Relaxed) {
                let r = client
                    .post(&url)
                    .json(&serde_json::json!({ "username": user, "password": "wrong-password" }))
                    .send()
                    .await;
                if let Ok(r) = r {
                    assert!(
                        [401, 503].contains(&r.status().as_u16()),
                        "a wrong password got {}",
                        r.status()
                    );
                }
                attempts.fetch_add(1, Relaxed);
            }
        }));
    }
    // And 128 MQTT clients logging in with wrong passwords, half as the real terminal (its id
    // is printed on the cabinet's label), half as terminals that do not exist.
    let mqtt_attempts = Arc::new(AtomicU64::new(0));
    for i in 0..128u32 {
        let (stop, attempts, broker) = (stop.clone(), mqtt_attempts.clone(), served.mqtt);
        storm.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let from = std::net::SocketAddr::from(([127, 0, 0, 2 + (i % 250) as u8], 0));
            let user = if i % 2 == 0 {
                "HY-001".to_owned()
            } else {
                format!("HY-{:03}", 500 + i)
            };
            let packet = connect_packet(&format!("weir-node-{user}"), &user, "wrong-password");
            while !stop.load(Relaxed) {
                let socket = tokio::net::TcpSocket::new_v4().unwrap();
                socket.bind(from).unwrap();
                let Ok(mut conn) = socket.connect(broker).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                if conn.write_all(&packet).await.is_ok() {
                    let mut connack = [0u8; 4];
                    if conn.read_exact(&mut connack).await.is_ok() {
                        assert_ne!(connack[3], 0, "a wrong password was accepted");
                    }
                }
                attempts.fetch_add(1, Relaxed);
            }
        }));
    }
    let node = served.mqtt.port();
    let node_password = served.node_password.clone();
    let mut node_in = None;
    let started = Instant::now();
    let mut peak = idle;
    let mut admin_in = None;
    let mut api_worst = Duration::ZERO;
    let browser = reqwest::Client::new();
    while started.elapsed() < Duration::from_secs(10) {
        peak = peak.max(rss(pid));
        let t = Instant::now();
        let (status, _) = get(&format!("{addr}/api/v1/terminals"), Some(&token)).await;
        assert_eq!(status, 200);
        api_worst = api_worst.max(t.elapsed());
        if node_in.is_none() {
            // The real node, with the right password, publishes a reading.
            let password = node_password.clone();
            let line = format!(
                r#"{{"boot":1,"seq":1,"readings":[{{"ts":"{}","turbidity_ntu":4.2}}]}}"#,
                rfc3339(weir_store::now() - 60)
            );
            let published = tokio::task::spawn_blocking(move || {
                try_mosquitto_pub(
                    node,
                    Some(("HY-001", &password)),
                    "weir/terminals/HY-001/telemetry",
                    &[line],
                )
            })
            .await
            .unwrap();
            if published {
                node_in = Some(started.elapsed());
            }
        }
        if admin_in.is_none() {
            let r = browser
                .post(&login_url)
                .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }))
                .send()
                .await
                .unwrap();
            match r.status().as_u16() {
                200 => admin_in = Some(started.elapsed()),
                503 => {}
                s => panic!("the right password got {s}"),
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Relaxed);
    for t in storm {
        t.await.unwrap();
    }
    let grew = peak.saturating_sub(idle);
    eprintln!(
        "password storm: {} wrong HTTP logins from 128 clients and {} wrong MQTT logins from 128 \
         more in 10 s; gateway RSS idle {} MB, peak {} MB (+{} MB); the node published after {:?}; \
         the admin logged in after {:?}; slowest API answer {:?}",
        attempts.load(Relaxed),
        mqtt_attempts.load(Relaxed),
        idle >> 20,
        peak >> 20,
        grew >> 20,
        node_in,
        admin_in,
        api_worst
    );
    assert!(
        node_in.is_some(),
        "the node with the right password never got in"
    );
    assert!(grew < 256 << 20, "RSS grew by {} MB", grew >> 20);
    assert!(admin_in.is_some(), "the right password never got through");
    assert!(
        api_worst < Duration::from_secs(2),
        "the API took {api_worst:?}"
    );
    let metrics = get(&format!("{addr}/metrics"), None).await.1;
    assert!(metric(&metrics, "weir_logins_failed_total").unwrap() > 100.0);
    assert!(metric(&metrics, "weir_broker_auth_checks_total").unwrap() > 100.0);
    // The node's reading is stored.
    let (status, body) = get(
        &format!(
            "{addr}/api/v1/terminals/HY-001/readings?from={}&to={}",
            rfc3339(weir_store::now() - 3600),
            rfc3339(weir_store::now() + 60)
        ),
        Some(&token),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains("4.2"), "{body}");
}

#[tokio::test]
async fn failed_logins_are_throttled_per_user_and_per_address_and_unknown_names_look_the_same() {
    let (g, _dir) = gateway(|c| c.http.login_max_failures = 3).await;
    let client = reqwest::Client::new();
    // An unknown name and a known one with a wrong password: the same answer.
    let unknown = login(&client, &g, "nobody", "wrong-password").await;
    let known = login(&client, &g, "admin", "wrong-password").await;
    assert_eq!(unknown.status(), 401);
    assert_eq!(known.status(), 401);
    assert_eq!(unknown.text().await.unwrap(), known.text().await.unwrap());
    // A third failure from this address: from now on it is refused unchecked, even with the
    // right password, and told when to come back.
    assert_eq!(
        login(&client, &g, "someone", "wrong-password")
            .await
            .status(),
        401
    );
    let r = login(&client, &g, "admin", ADMIN_PASSWORD).await;
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=15 * 60).contains(&retry), "{retry}");
    assert!(r.text().await.unwrap().contains("too many failed logins"));
    let metrics = g.get("/metrics").await.1;
    assert_eq!(metric(&metrics, "weir_logins_throttled_total"), Some(1.0));
    assert_eq!(metric(&metrics, "weir_logins_failed_total"), Some(3.0));
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_sent_request_is_closed_within_the_header_timeout() {
    let (g, _dir) = gateway(|c| c.http.header_timeout_s = 2).await;
    let addr = g.http;
    let closed_after = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\nHost: weir\r\nX-Slow: ")
            .unwrap();
        let t = Instant::now();
        let mut buf = [0u8; 512];
        // Closed: EOF, or an error answer and then EOF; never a 30 s read timeout.
        loop {
            match s.read(&mut buf) {
                Ok(0) => return t.elapsed(),
                Ok(_) => {}
                Err(e) => panic!("the connection stayed open: {e}"),
            }
        }
    })
    .await
    .unwrap();
    assert!(
        closed_after < Duration::from_secs(5),
        "closed after {closed_after:?}"
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_per_address_cap_are_closed_at_once_and_counted() {
    let (g, _dir) = gateway(|c| {
        c.http.max_connections_per_address = 4;
        c.http.header_timeout_s = 60;
    })
    .await;
    let addr = g.http;
    let refused = tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..4).map(|_| TcpStream::connect(addr).unwrap()).collect();
        std::thread::sleep(Duration::from_millis(300));
        let mut extra = TcpStream::connect(addr).unwrap();
        extra
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = extra.write_all(b"GET /healthz HTTP/1.1\r\nHost: weir\r\n\r\n");
        let mut buf = [0u8; 64];
        let refused = matches!(extra.read(&mut buf), Ok(0) | Err(_));
        drop(idle);
        refused
    })
    .await
    .unwrap();
    assert!(refused, "a fifth connection from one address was served");
    // Once the idle ones are gone, the address is served again.
    let (status, metrics) = g
        .eventually(5, || async {
            let r = reqwest::Client::new()
                .get(g.url("/metrics"))
                .send()
                .await
                .ok()?;
            Some((r.status().as_u16(), r.text().await.ok()?))
        })
        .await;
    assert_eq!(status, 200);
    assert!(metric(&metrics, "weir_http_connections_refused_total").unwrap() >= 1.0);
    g.stop().await;
}

#[tokio::test]
async fn every_malformed_query_is_a_400_not_a_dropped_connection() {
    let (g, _dir) = gateway(|_| {}).await;
    g.add_terminal("HY-001");
    for query in [
        "step=5%C3%A9",
        "step=%C3%A9",
        "step=9223372036854775807d",
        "from=%FF",
        "from=2026-13-45T00:00:00Z",
        "limit=-1",
    ] {
        let (status, body) = g
            .get(&format!("/api/v1/terminals/HY-001/readings?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
    }
    g.stop().await;
}

#[tokio::test]
async fn a_state_changing_request_with_the_session_cookie_must_be_json() {
    let (g, _dir) = gateway(|_| {}).await;
    let client = logged_in(&g).await;
    let url = g.url("/api/v1/alerts/1/acknowledge");
    // What a page on another site can make a browser send: a form, or text.
    for (ctype, body) in [
        ("application/x-www-form-urlencoded", "note=x"),
        ("text/plain", "{}"),
        ("multipart/form-data; boundary=x", "--x--"),
    ] {
        let r = client
            .post(&url)
            .header("content-type", ctype)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 415, "{ctype}");
    }
    let r = client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 415, "no content type");
    // JSON passes to the handler, which has no alert 1.
    let r = client
        .post(&url)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    // A script's bearer token carries no ambient credentials: its requests are not refused
    // for their content type here.
    let r = reqwest::Client::new()
        .post(&url)
        .bearer_auth(&g.token)
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    g.stop().await;
}

#[tokio::test]
async fn every_answer_carries_the_security_headers() {
    let (g, _dir) = gateway(|_| {}).await;
    for path in ["/", "/api/v1/site", "/healthz", "/api/v1/no-such-route"] {
        let r = reqwest::get(g.url(path)).await.unwrap();
        let h = r.headers();
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("frame-ancestors 'none'"), "{path}: {csp}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp}");
        assert_eq!(h["x-frame-options"], "DENY", "{path}");
        assert_eq!(h["x-content-type-options"], "nosniff", "{path}");
    }
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_ends_the_open_event_stream() {
    let (g, _dir) = gateway(|_| {}).await;
    let client = logged_in(&g).await;
    let mut events = client.get(g.url("/api/v1/events")).send().await.unwrap();
    assert_eq!(events.status(), 200);
    // The stream is open: its first comment arrives.
    let first = tokio::time::timeout(Duration::from_secs(5), events.chunk())
        .await
        .unwrap()
        .unwrap();
    assert!(first.is_some());
    let r = client
        .post(g.url("/api/v1/logout"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // Now it ends (within a second, not at the next periodic check).
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(_chunk) = events.chunk().await.unwrap() {}
    })
    .await;
    assert!(ended.is_ok(), "the event stream went on after logout");
    let metrics = g.get("/metrics").await.1;
    assert_eq!(
        metric(&metrics, "weir_event_streams_revoked_total"),
        Some(1.0)
    );
    g.stop().await;
}

#[tokio::test]
async fn a_password_reset_ends_the_users_sessions() {
    let (g, _dir) = gateway(|_| {}).await;
    let client = logged_in(&g).await;
    assert_eq!(me(&client, &g).await, 200);
    g.running
        .store
        .with(|c| {
            Ok(auth::put_user(
                c,
                "admin",
                "a-new-password-2",
                Role::Admin,
                true,
            ))
        })
        .unwrap()
        .unwrap();
    assert_eq!(me(&client, &g).await, 401);
    g.stop().await;
}

#[tokio::test]
async fn a_revoked_token_and_a_deleted_user_lose_access() {
    let (g, _dir) = gateway(|_| {}).await;
    let token = g
        .running
        .store
        .with(|c| auth::create_token(c, "script", Role::Inspector))
        .unwrap();
    assert_eq!(get(&g.url("/api/v1/terminals"), Some(&token)).await.0, 200);
    let listed = g.running.store.with(auth::tokens).unwrap();
    let id = listed
        .iter()
        .find(|t| t.name == "script")
        .unwrap()
        .id
        .clone();
    assert!(
        !listed.iter().any(|t| token.contains(&t.id)),
        "a listed id shows the token"
    );
    g.running
        .store
        .with(|c| Ok(auth::revoke_token(c, &id)))
        .unwrap()
        .unwrap();
    assert_eq!(get(&g.url("/api/v1/terminals"), Some(&token)).await.0, 401);

    let client = logged_in(&g).await;
    assert!(g
        .running
        .store
        .with(|c| auth::delete_user(c, "admin"))
        .unwrap());
    assert_eq!(me(&client, &g).await, 401);
    g.stop().await;
}

#[tokio::test]
async fn https_serves_the_api_with_the_configured_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_pem, key_pem) = (cert.cert.pem(), cert.signing_key.serialize_pem());
    let (cert_path, key_path) = (dir.path().join("weir.crt"), dir.path().join("weir.key"));
    std::fs::write(&cert_path, &cert_pem).unwrap();
    std::fs::write(&key_path, &key_pem).unwrap();
    let (g, _data) = gateway(|c| {
        c.http.tls_cert = cert_path.clone();
        c.http.tls_key = key_path.clone();
    })
    .await;
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert_pem.as_bytes()).unwrap())
        .resolve("localhost", g.http)
        .build()
        .unwrap();
    let url = format!("https://localhost:{}/api/v1/terminals", g.http.port());
    let r = client.get(&url).bearer_auth(&g.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Plain HTTP on the same port is not served.
    assert!(reqwest::get(format!("http://{}/healthz", g.http))
        .await
        .is_err());
    // The login cookie is Secure under HTTPS.
    let r = client
        .post(format!("https://localhost:{}/api/v1/login", g.http.port()))
        .json(&serde_json::json!({ "username": "admin", "password": ADMIN_PASSWORD }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.contains("; Secure"), "{cookie}");
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_publishes_over_mqtt_with_tls_checked_by_mosquitto_pub_against_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("mqtt.crt"), dir.path().join("mqtt.key"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let (g, _data) = gateway(|c| {
        c.mqtt.tls_listen = "127.0.0.1:0".parse().unwrap();
        c.mqtt.tls_cert = cert_path.clone();
        c.mqtt.tls_key = key_path.clone();
    })
    .await;
    let port = g.running.mqtts_addr.expect("a TLS listener").port();
    let password = g.add_terminal("HY-001");
    let ts = rfc3339(weir_store::now() - 60);
    let (ca, ok_password) = (cert_path.clone(), password.clone());
    let publish = move |password: String, cafile: std::path::PathBuf| {
        let line =
            format!(r#"{{"boot":1,"seq":7,"readings":[{{"ts":"{ts}","turbidity_ntu":6.5}}]}}"#);
        std::process::Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
            .args(["-u", "HY-001", "-P", &password])
            .arg("--cafile")
            .arg(&cafile)
            .args(["-t", "weir/terminals/HY-001/telemetry", "-m", &line])
            .output()
            .expect("mosquitto_pub (Debian package mosquitto-clients) must be installed")
    };
    // A CA that did not sign the broker's certificate: no connection.
    let stranger = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let stranger_path = dir.path().join("stranger.crt");
    std::fs::write(&stranger_path, stranger.cert.pem()).unwrap();
    let (p, s) = (ok_password.clone(), stranger_path.clone());
    let publish = std::sync::Arc::new(publish);
    let first = publish.clone();
    let out = tokio::task::spawn_blocking(move || first(p, s))
        .await
        .unwrap();
    assert!(!out.status.success(), "a stranger's CA was trusted");
    let out = tokio::task::spawn_blocking(move || publish(ok_password, ca))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "mosquitto_pub over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    g.eventually(20, || async {
        (g.count_readings("HY-001", weir_store::now() - 3600, weir_store::now() + 60)
            .await
            == 1)
            .then_some(())
    })
    .await;
    g.stop().await;
}

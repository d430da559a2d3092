//! Real servers for the gateway's tests, each on a free loopback port: Mosquitto,
//! VictoriaMetrics (serving InfluxDB's v2 write API), the gateway itself.
//! A missing server binary fails the test with a message saying what to install.

#![allow(dead_code)]

use std::io::Write as _;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weir_gateway::config::{BrokerMode, Config};
use weir_gateway::serve::{self, Running};
use weir_store::auth::{self, Role};
use weir_store::terminals::{self, NewTerminal};

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until something accepts connections on `port`.
pub fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not start listening on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn binary(path: &str, package: &str) -> PathBuf {
    let p = PathBuf::from(path);
    assert!(
        p.exists(),
        "{path} is missing: install the Debian package {package} (`bash .ci/install` does)"
    );
    p
}

/// A server process, killed when dropped. If the test is failing, the tail of the server's
/// log is printed.
pub struct Server {
    pub child: Child,
    pub port: u16,
    log: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let (true, Some(log)) = (std::thread::panicking(), &self.log) {
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            eprintln!("--- last lines of {}:", log.display());
            for l in &lines[lines.len().saturating_sub(60)..] {
                eprintln!("{l}");
            }
        }
    }
}

/// Mosquitto on a free port. `extra` is appended to its configuration.
pub fn mosquitto(extra: &str) -> Server {
    let bin = binary("/usr/sbin/mosquitto", "mosquitto");
    let dir = tempfile::tempdir().unwrap();
    // Started as root, mosquitto runs as the `mosquitto` user: let it write its log here.
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    let log = dir.path().join("mosquitto.log");
    let body = format!(
        "listener {port} 127.0.0.1\npersistence false\nmax_queued_messages 0\nmax_inflight_messages 1000\nlog_dest file {}\nlog_type all\n{extra}\n",
        log.display()
    );
    let body = if extra.contains("allow_anonymous") {
        body
    } else {
        format!("{body}allow_anonymous true\n")
    };
    std::fs::write(&conf, body).unwrap();
    let child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting mosquitto");
    wait_for_port(port, "mosquitto");
    Server {
        child,
        port,
        log: Some(log),
        _dir: dir,
    }
}

/// VictoriaMetrics on `port` (a free one if None), storing in a fresh directory.
pub fn victoria_metrics(port: Option<u16>) -> Server {
    let bin = binary("/usr/bin/victoria-metrics", "victoria-metrics");
    let dir = tempfile::tempdir().unwrap();
    let port = port.unwrap_or_else(free_port);
    let child = Command::new(bin)
        .arg(format!("-httpListenAddr=127.0.0.1:{port}"))
        .arg(format!("-storageDataPath={}", dir.path().display()))
        .arg("-search.latencyOffset=0s")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting victoria-metrics");
    wait_for_port(port, "victoria-metrics");
    Server {
        child,
        port,
        log: None,
        _dir: dir,
    }
}

/// A gateway configuration for tests: data in `dir`, HTTP on a free port, the given broker.
pub fn config(dir: &Path, broker: Option<u16>) -> Config {
    let mut c = Config {
        data_dir: dir.to_owned(),
        ..Config::default()
    };
    c.http.listen = "127.0.0.1:0".parse().unwrap();
    c.store.synchronous = weir_store::Synchronous::Normal;
    match broker {
        Some(port) => {
            c.mqtt.broker = BrokerMode::External;
            c.mqtt.port = port;
            c.mqtt.client_id = format!("weir-gateway-test-{}", free_port());
        }
        None => c.mqtt.listen = "127.0.0.1:0".parse().unwrap(),
    }
    c
}

/// The gateway in this process.
pub struct Gateway {
    pub running: Running,
    pub token: String,
    pub http: SocketAddr,
}

impl Gateway {
    pub async fn start(config: Config) -> Gateway {
        let running = serve::start(Arc::new(config))
            .await
            .expect("gateway starts");
        let token = running
            .store
            .with(|c| auth::create_token(c, "tests", Role::Admin))
            .unwrap();
        let http = running.http_addr;
        Gateway {
            running,
            token,
            http,
        }
    }

    pub fn add_terminal(&self, id: &str) -> String {
        let password = auth::new_password();
        let t = NewTerminal {
            id: id.into(),
            name: format!("Terminal {id}"),
            ..Default::default()
        };
        self.running
            .store
            .with(|c| Ok(terminals::add(c, &t, &auth::hash_password(&password))))
            .unwrap()
            .unwrap();
        password
    }

    /// How many raw readings of terminal `id` the API returns in `from..to`.
    pub async fn count_readings(&self, id: &str, from: i64, to: i64) -> usize {
        let (status, body) = self
            .get(&format!(
                "/api/v1/terminals/{id}/readings?from={}&to={}",
                rfc3339(from),
                rfc3339(to)
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        v["readings"].as_array().unwrap().len()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// GET with the admin token; returns status and body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        get(&self.url(path), Some(&self.token)).await
    }

    pub async fn stop(self) {
        self.running.cancel.cancel();
        self.running.done.await.unwrap().unwrap();
    }

    /// Polls `f` every 50 ms until it returns Some, for at most `secs` seconds.
    pub async fn eventually<T, F, Fut>(&self, secs: u64, mut f: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(v) = f().await {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "condition not met within {secs} s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A plain HTTP GET (reqwest), with an optional bearer token.
pub async fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("HTTP request");
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap())
}

/// The metric `name` (with labels, exactly as written) in a Prometheus text body.
pub fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
}

/// The node password `weir terminal add` (or `weir node provision`) printed, once.
pub fn printed_password(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("node MQTT password:"))
        .unwrap_or_else(|| panic!("weir printed no node password: {stdout}"))
        .trim()
        .to_owned()
}

/// RFC 3339 for Unix seconds.
pub fn rfc3339(ts: i64) -> String {
    weir_contract::Timestamp::from_unix(ts).to_string()
}

/// Publishes every line of `lines` as one QoS 1 message with mosquitto_pub, as
/// docs/protocol.md shows; `login` is the node's user name (its terminal id) and password.
pub fn mosquitto_pub(port: u16, login: Option<(&str, &str)>, topic: &str, lines: &[String]) {
    assert!(
        try_mosquitto_pub(port, login, topic, lines),
        "mosquitto_pub failed"
    );
}

/// [`mosquitto_pub`], returning whether it succeeded (a refused login fails).
pub fn try_mosquitto_pub(
    port: u16,
    login: Option<(&str, &str)>,
    topic: &str,
    lines: &[String],
) -> bool {
    let mut cmd = std::process::Command::new("mosquitto_pub");
    if let Some((user, password)) = login {
        cmd.args(["-u", user, "-P", password]);
    }
    let mut child = cmd
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-l",
        ])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("mosquitto_pub (Debian package mosquitto-clients) must be installed");
    let mut stdin = child.stdin.take().unwrap();
    for l in lines {
        writeln!(stdin, "{l}").unwrap();
    }
    drop(stdin);
    child.wait().unwrap().success()
}

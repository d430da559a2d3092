//! The gateway's configuration: one typed tree, defaults in code, a TOML file, and
//! environment overrides (`WEIR_` prefix, `__` between levels).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use weir_store::StoreConfig;

/// Environment variable whose value is accepted as an admin API token.
pub const BOOTSTRAP_TOKEN_VAR: &str = "WEIR_BOOTSTRAP_TOKEN";

/// `WEIR_*` variables that are not configuration keys: the bootstrap token and the command
/// line's own options (`--config`, passwords), so that setting one does not stop the start as
/// an unknown key.
pub const NOT_CONFIG_VARS: [&str; 6] = [
    BOOTSTRAP_TOKEN_VAR,
    "WEIR_CONFIG",
    "WEIR_NODE_PASSWORD",
    "WEIR_NEW_PASSWORD",
    "WEIR_DEMO_PASSWORD",
    "WEIR_CAMERA_PASSWORD",
];

/// Prefix (after `WEIR_`) of the simulated fleet's (`weir-fleet`) options, which may share the
/// gateway's shell.
const FLEET_VARS: &str = "FLEET_";

/// The whole configuration.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database and other state live.
    pub data_dir: PathBuf,
    /// Log filter: error, warn, info, debug, trace, or per module
    /// ("weir_gateway=debug,info"), in `tracing`'s syntax.
    pub log: String,
    /// Site settings shown to users.
    pub site: SiteConfig,
    /// The HTTP server: the API and the dashboard.
    pub http: HttpConfig,
    /// MQTT: the embedded broker, or an external one.
    pub mqtt: MqttConfig,
    /// The reading store.
    pub store: StoreConfig,
    /// Forwarding to InfluxDB.
    pub influx: InfluxConfig,
    /// Alert rules, escalation, service-time targets, crews and notifications.
    pub alerts: crate::alerts::AlertsConfig,
    /// What `weir node provision` writes into each node's configuration image (see
    /// docs/field-guide.md).
    pub nodes: NodesConfig,
    /// Inspectors' reports (docs/inspector-guide.md).
    pub reports: crate::reports::ReportsConfig,
    /// The HJ 212-2017 uplink to the environment bureau's platform (docs/hj212.md): each new
    /// reading of a terminal listed in `[hj212.terminals]` goes out as real-time data
    /// (CN 2011), in commit order; after an outage the stored readings are sent again from
    /// where the platform last answered.
    pub hj212: crate::hj212::Hj212Config,
    /// Pictures of the whole terminal (docs/operations.md): snapshots from a camera in the
    /// cabinet and photos field staff upload from the terminal's page. Files are kept beside
    /// the database, in `{data_dir}/pictures/`.
    pub pictures: crate::pictures::PicturesConfig,
    /// Firmware updates over the air: the county's key and the service's limits.
    pub firmware: crate::firmware::FirmwareConfig,
    /// Several gateways behind one external broker (`mqtt.broker = "external"`), each
    /// terminal's readings, alerts and acks on exactly one of them at a time
    /// (docs/scale-out.md). Off: this gateway takes every terminal.
    pub cluster: crate::cluster::ClusterConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("weir-data"),
            log: "info".into(),
            site: SiteConfig::default(),
            http: HttpConfig::default(),
            mqtt: MqttConfig::default(),
            store: StoreConfig::default(),
            influx: InfluxConfig::default(),
            alerts: crate::alerts::AlertsConfig::default(),
            nodes: NodesConfig::default(),
            reports: crate::reports::ReportsConfig::default(),
            hj212: crate::hj212::Hj212Config::default(),
            pictures: crate::pictures::PicturesConfig::default(),
            firmware: crate::firmware::FirmwareConfig::default(),
            cluster: crate::cluster::ClusterConfig::default(),
        }
    }
}

/// Defaults for `weir node provision`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NodesConfig {
    /// The broker as nodes reach it from a terminal's cabinet, "host:port" (empty: give
    /// `--broker` each time).
    pub broker: String,
    /// SNTP server nodes take UTC from; a node samples only once it knows the time.
    pub time_server: String,
    /// The dashboard as field staff reach it from a phone; a node label's QR code opens
    /// `{dashboard_url}/terminals/{id}` (empty: give `--dashboard-url` each time).
    pub dashboard_url: String,
    /// The board nodes are built on (its flash layout places the configuration image):
    /// "w5500-evb-pico".
    pub board: String,
}

impl Default for NodesConfig {
    fn default() -> Self {
        NodesConfig {
            broker: String::new(),
            time_server: "cn.pool.ntp.org".into(),
            dashboard_url: String::new(),
            board: "w5500-evb-pico".into(),
        }
    }
}

/// Site settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SiteConfig {
    /// Name shown in the dashboard's title.
    pub name: String,
    /// IANA time zone in which the dashboard shows times.
    pub timezone: String,
}

impl Default for SiteConfig {
    fn default() -> Self {
        SiteConfig {
            name: "Weir".into(),
            timezone: "Asia/Shanghai".into(),
        }
    }
}

/// The HTTP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port of the API and dashboard.
    pub listen: SocketAddr,
    /// Mark the login cookie Secure; set true when users reach Weir over HTTPS (for example
    /// behind a reverse proxy).
    pub secure_cookies: bool,
    /// Hours a dashboard login lasts.
    pub session_hours: u32,
    /// HTTPS: a certificate chain, PEM (docs/operations.md shows how to make one). With
    /// `tls_key` set too, the API and dashboard are served over TLS on `listen` (and the login
    /// cookie is Secure).
    pub tls_cert: PathBuf,
    /// The private key (PEM) of `tls_cert`.
    pub tls_key: PathBuf,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address; more are closed at once.
    pub max_connections_per_address: usize,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake) before
    /// its connection is closed.
    pub header_timeout_s: u32,
    /// Password checks running at once (argon2: each about 19 MiB and some milliseconds of a
    /// core); a login that waits more than 2 s for one is refused with 503.
    pub max_password_checks: usize,
    /// Failed logins of one user name, or from one address, after which logins are refused
    /// unchecked (429) until `login_lockout_min` after the first of them.
    pub login_max_failures: u32,
    /// Minutes of that window, from the first failure.
    pub login_lockout_min: u32,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: ([127, 0, 0, 1], 8080).into(),
            secure_cookies: false,
            session_hours: 12,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            max_connections: 1024,
            max_connections_per_address: 256,
            header_timeout_s: 10,
            max_password_checks: 4,
            login_max_failures: 10,
            login_lockout_min: 15,
        }
    }
}

impl HttpConfig {
    /// Whether HTTPS is configured.
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }

    fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.session_hours > 0,
            "http.session_hours must be at least 1"
        );
        anyhow::ensure!(
            self.tls_cert.as_os_str().is_empty() == self.tls_key.as_os_str().is_empty(),
            "http.tls_cert and http.tls_key go together: set both for HTTPS, or neither"
        );
        for (key, v) in [
            ("http.max_connections", self.max_connections),
            (
                "http.max_connections_per_address",
                self.max_connections_per_address,
            ),
            ("http.max_password_checks", self.max_password_checks),
            ("http.header_timeout_s", self.header_timeout_s as usize),
            ("http.login_max_failures", self.login_max_failures as usize),
            ("http.login_lockout_min", self.login_lockout_min as usize),
        ] {
            anyhow::ensure!(v > 0, "{key} must be at least 1");
        }
        Ok(())
    }
}

/// Which broker the gateway uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// Run the broker inside the gateway; nodes connect to `mqtt.listen`.
    Embedded,
    /// Connect to an existing broker (Mosquitto, EMQX) at `mqtt.host`:`mqtt.port`.
    External,
}

/// MQTT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// "embedded": the gateway runs the broker and nodes connect to it at `listen`.
    /// "external": the gateway connects to a broker (Mosquitto, EMQX) at `host`:`port`; see
    /// docs/operations.md for the broker's password file and ACL.
    pub broker: BrokerMode,
    /// Embedded broker: address and port nodes connect to.
    pub listen: SocketAddr,
    /// External broker: host name or address.
    pub host: String,
    /// External broker: port.
    pub port: u16,
    /// External broker: the gateway's own user name.
    pub username: String,
    /// External broker: the gateway's own password.
    pub password: String,
    /// Client id of the gateway's own MQTT session. The session is persistent: keep its
    /// client id stable across restarts.
    pub client_id: String,
    /// Topic prefix: topics are
    /// `{topic_prefix}/terminals/{terminal id}/{telemetry,status,ack,config}`.
    pub topic_prefix: String,
    /// Keep-alive of the gateway's MQTT session, seconds.
    pub keep_alive_s: u16,
    /// Embedded broker: most unacknowledged QoS 1 messages in flight to one client; further
    /// messages wait in its session queue.
    pub max_inflight: u16,
    /// Embedded broker: `max_inflight` for the gateway's own sessions. The gateway
    /// acknowledges a store commit at once (up to `store.batch_max_messages`), so this bounds
    /// its batches; two commits' worth lets one be written while the next arrives.
    pub service_max_inflight: u16,
    /// Embedded broker: most messages queued for one session while its client is away; the
    /// oldest are dropped beyond it.
    pub max_queued: usize,
    /// Embedded broker: MQTT over TLS (nodes' passwords then never cross the network in
    /// clear) on `tls_listen`, beside the plain listener, when both `tls_cert` and `tls_key`
    /// are set; docs/operations.md shows how to make them.
    pub tls_listen: SocketAddr,
    /// Certificate chain (PEM) of the TLS listener.
    pub tls_cert: PathBuf,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: PathBuf,
    /// What one client can make the embedded broker hold; each is explained in
    /// docs/security.md.
    pub limits: BrokerLimits,
}

/// The embedded broker's bounds on what a client can make it hold; the defaults are the
/// broker's own (`weir_broker::BrokerConfig`), where each is explained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerLimits {
    /// Clients connected at once.
    pub max_connections: usize,
    /// Connections not yet past CONNACK.
    pub max_pending_connections: usize,
    /// Connections from one address (an IPv6 /64 counts as one).
    pub max_connections_per_address: usize,
    /// Seconds to log in: send CONNECT (and finish a TLS handshake).
    pub connect_timeout_s: u16,
    /// Longest keep alive honoured, s.
    pub max_keep_alive_s: u16,
    /// Password checks at once.
    pub max_concurrent_auth: usize,
    /// Milliseconds a CONNECT waits for a password check before CONNACK 3.
    pub auth_wait_ms: u32,
    /// Failed logins from one address within the window (`auth_failure_window_s`) before
    /// further logins from there are refused unchecked until it ends.
    pub auth_failures_per_address: u32,
    /// Failed logins of one user name from one address within the window, likewise.
    pub auth_failures_per_user: u32,
    /// The failure window, s.
    pub auth_failure_window_s: u32,
    /// Seconds a disconnected client's persistent session is kept (7 days).
    pub session_expiry_s: u32,
    /// Persistent sessions one identity may hold.
    pub max_sessions_per_identity: usize,
    /// Bytes queued for one session.
    pub max_queued_bytes: usize,
    /// Messages per second one identity may publish.
    pub max_publish_rate: u32,
    /// Burst of messages above the rate (a node catching up on days of readings sends its
    /// whole flash queue at once).
    pub max_publish_burst: u32,
    /// Bytes per second one identity may publish.
    pub max_publish_bytes_per_s: u32,
    /// Burst of bytes above that.
    pub max_publish_bytes_burst: u32,
}

impl Default for BrokerLimits {
    fn default() -> Self {
        let b = weir_broker::BrokerConfig::default();
        BrokerLimits {
            max_connections: b.max_connections,
            max_pending_connections: b.max_pending_connections,
            max_connections_per_address: b.max_connections_per_address,
            connect_timeout_s: b.connect_timeout_s,
            max_keep_alive_s: b.max_keep_alive_s,
            max_concurrent_auth: b.max_concurrent_auth,
            auth_wait_ms: b.auth_wait_ms,
            auth_failures_per_address: b.auth_failures_per_address,
            auth_failures_per_user: b.auth_failures_per_user,
            auth_failure_window_s: b.auth_failure_window_s,
            session_expiry_s: b.session_expiry_s,
            max_sessions_per_identity: b.max_sessions_per_identity,
            max_queued_bytes: b.max_queued_bytes,
            max_publish_rate: b.max_publish_rate,
            max_publish_burst: b.max_publish_burst,
            max_publish_bytes_per_s: b.max_publish_bytes_per_s,
            max_publish_bytes_burst: b.max_publish_bytes_burst,
        }
    }
}

impl MqttConfig {
    /// Whether the embedded broker also listens with TLS.
    pub fn tls(&self) -> bool {
        !self.tls_cert.as_os_str().is_empty()
    }

    /// The embedded broker's settings.
    pub fn embedded(&self) -> weir_broker::BrokerConfig {
        let l = &self.limits;
        weir_broker::BrokerConfig {
            listen: self.listen,
            max_packet_size: weir_contract::MAX_PAYLOAD + 1024,
            max_inflight: self.max_inflight,
            service_max_inflight: self.service_max_inflight,
            max_queued: self.max_queued,
            max_queued_bytes: l.max_queued_bytes,
            max_publish_rate: l.max_publish_rate,
            max_publish_burst: l.max_publish_burst,
            max_publish_bytes_per_s: l.max_publish_bytes_per_s,
            max_publish_bytes_burst: l.max_publish_bytes_burst,
            session_expiry_s: l.session_expiry_s,
            max_sessions_per_identity: l.max_sessions_per_identity,
            max_keep_alive_s: l.max_keep_alive_s,
            connect_timeout_s: l.connect_timeout_s,
            max_connections: l.max_connections,
            max_pending_connections: l.max_pending_connections,
            max_connections_per_address: l.max_connections_per_address,
            max_concurrent_auth: l.max_concurrent_auth,
            auth_wait_ms: l.auth_wait_ms,
            auth_failures_per_address: l.auth_failures_per_address,
            auth_failures_per_user: l.auth_failures_per_user,
            auth_failure_window_s: l.auth_failure_window_s,
            tls: self.tls().then(|| weir_broker::TlsConfig {
                listen: self.tls_listen,
                certificate_chain_pem: self.tls_cert.clone(),
                private_key_pem: self.tls_key.clone(),
            }),
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            broker: BrokerMode::Embedded,
            listen: ([0, 0, 0, 0], 1883).into(),
            host: "127.0.0.1".into(),
            port: 1883,
            username: String::new(),
            password: String::new(),
            client_id: "weir-gateway".into(),
            topic_prefix: weir_contract::topic::DEFAULT_PREFIX.into(),
            keep_alive_s: 30,
            max_inflight: 1000,
            service_max_inflight: 4096,
            max_queued: 250_000,
            tls_listen: ([0, 0, 0, 0], 8883).into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            limits: BrokerLimits::default(),
        }
    }
}

/// Forwarding of every stored reading to InfluxDB 2 (or anything serving its v2 write API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// Forward every stored reading to InfluxDB 2 (or any server of its v2 write API).
    pub enabled: bool,
    /// Base URL, for example `http://influx.example:8086`.
    pub url: String,
    /// Organisation.
    pub org: String,
    /// Bucket.
    pub bucket: String,
    /// API token.
    pub token: String,
    /// Measurement name of the points written.
    pub measurement: String,
    /// Readings per write request, at most.
    pub batch_size: usize,
    /// Most readings per second while catching up after an outage.
    pub max_rate: u32,
    /// Compress request bodies with gzip.
    pub gzip: bool,
    /// Longest wait between two retries, seconds (a Retry-After from the server is honoured).
    pub max_backoff_s: u64,
}

impl Default for InfluxConfig {
    fn default() -> Self {
        InfluxConfig {
            enabled: false,
            url: "http://127.0.0.1:8086".into(),
            org: "weir".into(),
            bucket: "weir".into(),
            token: String::new(),
            measurement: "weir".into(),
            batch_size: 5000,
            max_rate: 20_000,
            gzip: true,
            max_backoff_s: 60,
        }
    }
}

impl Config {
    /// Loads defaults, then `file` (if given), then `WEIR_*` environment variables (figment's
    /// `Env` provider: `WEIR_HTTP__LISTEN` is `http.listen`, values read like TOML scalars).
    /// Unknown keys, from the file or the environment, are errors that name the key.
    pub fn load(file: Option<&Path>) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            anyhow::ensure!(
                path.exists(),
                "the configuration file {} does not exist",
                path.display()
            );
            figment = figment.merge(Toml::file(path));
        }
        let env = Env::prefixed("WEIR_")
            .filter(|key| {
                let key = key.as_str().to_ascii_uppercase();
                !key.starts_with(FLEET_VARS)
                    && !NOT_CONFIG_VARS
                        .iter()
                        .any(|v| v.strip_prefix("WEIR_") == Some(key.as_str()))
            })
            .split("__");
        let config: Config = figment
            .merge(env)
            .extract()
            .map_err(|e| anyhow::anyhow!(describe(e)))
            .context("reading the configuration")?;
        config.validate()?;
        Ok(config)
    }

    /// Checks what types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        weir_contract::topic::check_prefix(&self.mqtt.topic_prefix)
            .map_err(|e| anyhow::anyhow!("mqtt.topic_prefix: {}", e.reason))?;
        self.store.validate()?;
        anyhow::ensure!(
            self.mqtt.tls_cert.as_os_str().is_empty() == self.mqtt.tls_key.as_os_str().is_empty(),
            "mqtt.tls_cert and mqtt.tls_key go together: set both for MQTT over TLS, or neither"
        );
        if self.mqtt.broker == BrokerMode::Embedded {
            self.mqtt
                .embedded()
                .validate()
                .map_err(|e| anyhow::anyhow!("mqtt.limits: {e}"))?;
        }
        self.http.validate()?;
        self.alerts.validate()?;
        self.reports.validate()?;
        self.hj212.validate()?;
        self.pictures.validate()?;
        self.firmware.validate()?;
        self.cluster
            .validate(self.mqtt.broker == BrokerMode::External)?;
        crate::nodes::provision::board(&self.nodes.board).context("nodes.board")?;
        anyhow::ensure!(
            self.nodes.dashboard_url.is_empty()
                || self.nodes.dashboard_url.starts_with("http://")
                || self.nodes.dashboard_url.starts_with("https://"),
            "nodes.dashboard_url must start with http:// or https://, not {:?}",
            self.nodes.dashboard_url
        );
        if self.influx.enabled {
            anyhow::ensure!(
                self.influx.url.starts_with("http://") || self.influx.url.starts_with("https://"),
                "influx.url must start with http:// or https://, not {:?}",
                self.influx.url
            );
            anyhow::ensure!(
                !self.influx.bucket.is_empty(),
                "influx.bucket must not be empty"
            );
            anyhow::ensure!(
                self.influx.batch_size > 0,
                "influx.batch_size must be at least 1"
            );
            anyhow::ensure!(
                self.influx.max_rate > 0,
                "influx.max_rate must be at least 1"
            );
        }
        Ok(())
    }

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("weir.db")
    }
}

/// figment's errors, one line per problem, naming the key and where it came from.
fn describe(e: figment::Error) -> String {
    e.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .map(|m| match &m.source {
                    Some(src) => format!(" (from {} {src})", m.name),
                    None => format!(" (from {})", m.name),
                })
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{key}: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The default configuration as a commented TOML file (`weir config print`), written from the
/// configuration types themselves: each key's comment is its field's doc comment, its value the
/// field's default, and each nested struct a `[section]`, in the order the fields are declared.
pub fn default_file() -> String {
    let schema = schemars::schema_for!(Config);
    let schema = schema.as_value();
    let values = toml::Value::try_from(Config::default())
        .expect("the default configuration serialises to TOML");
    let mut out = String::from(FILE_HEADER);
    print::table(&mut out, schema, schema, &values, &mut Vec::new());
    out
}

/// What the printed file says before its first key.
const FILE_HEADER: &str = "\
# Weir gateway configuration. Every key is optional; this file shows the defaults.
# Any key can be overridden by an environment variable: WEIR_ + the key in capitals, with __
# between levels, for example WEIR_HTTP__LISTEN=0.0.0.0:8080 or WEIR_DATA_DIR=/var/lib/weir.
# WEIR_BOOTSTRAP_TOKEN, if set, is accepted as an admin API token (automation, first start).

";

/// Writing a TOML table from its JSON schema (schemars' output: `properties` in declaration
/// order, each with its `description`; nested structs as `$ref`s to `$defs`) and its values.
mod print {
    use serde_json::Value as Schema;
    use std::fmt::Write as _;
    use toml::Value;

    /// The schema `s` stands for: `s` itself, or the definition its `$ref` names.
    pub(super) fn resolve<'a>(root: &'a Schema, s: &'a Schema) -> &'a Schema {
        match s.get("$ref").and_then(Schema::as_str) {
            Some(r) => r
                .strip_prefix("#/$defs/")
                .and_then(|name| root.get("$defs")?.get(name))
                .unwrap_or(s),
            None => s,
        }
    }

    /// Whether `s` is a table in TOML: a struct (it has properties) or a map.
    pub(super) fn is_table(root: &Schema, s: &Schema) -> bool {
        let s = resolve(root, s);
        s.get("properties").is_some() || s.get("additionalProperties").is_some()
    }

    /// A property's comment: its own doc comment, or else its type's.
    pub(super) fn description<'a>(root: &'a Schema, s: &'a Schema) -> &'a str {
        s.get("description")
            .or_else(|| resolve(root, s).get("description"))
            .and_then(Schema::as_str)
            .unwrap_or("")
    }

    /// Writes `text` as comment lines; the fences of an example in a doc comment are left out.
    fn comment(out: &mut String, text: &str) {
        for line in text.lines().filter(|l| !l.starts_with("```")) {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {line}");
            }
        }
    }

    /// Writes the keys of the table at `path` (its header already written), then its nested
    /// tables, each under its own header: TOML puts every key after a header into that table.
    pub(super) fn table(
        out: &mut String,
        root: &Schema,
        schema: &Schema,
        values: &Value,
        path: &mut Vec<String>,
    ) {
        let schema = resolve(root, schema);
        let empty = serde_json::Map::new();
        let props = schema
            .get("properties")
            .and_then(Schema::as_object)
            .unwrap_or(&empty);
        for (key, prop) in props.iter().filter(|(_, p)| !is_table(root, p)) {
            comment(out, description(root, prop));
            match values.get(key) {
                Some(v) => {
                    let _ = writeln!(out, "{key} = {v}");
                }
                // An optional key without a default.
                None => {
                    let _ = writeln!(out, "# {key} = (not set)");
                }
            }
        }
        for (key, prop) in props.iter().filter(|(_, p)| is_table(root, p)) {
            path.push(key.clone());
            out.push('\n');
            comment(out, description(root, prop));
            let _ = writeln!(out, "[{}]", path.join("."));
            let nested = values
                .get(key)
                .cloned()
                .unwrap_or_else(|| Value::Table(Default::default()));
            if resolve(root, prop).get("properties").is_some() {
                table(out, root, prop, &nested, path);
            } else if let Value::Table(entries) = &nested {
                // A map (crews, terminals, cameras): empty by default; its doc comment shows
                // an example. Entries a default has are written as they are.
                for (k, v) in entries {
                    let _ = writeln!(out, "{} = {v}", toml::Value::String(k.clone()));
                }
            }
            path.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// [`Config::load`] with exactly `vars` set as `WEIR_*` variables, in figment's jail
    /// (which serialises the tests that change the process's environment).
    #[allow(clippy::result_large_err)] // figment's error type, in figment's own API
    fn load_with(file: Option<&Path>, vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let mut out = None;
        figment::Jail::expect_with(|jail| {
            for (k, v) in vars {
                jail.set_env(k, v);
            }
            out = Some(Config::load(file));
            Ok(())
        });
        out.expect("the jail ran")
    }

    #[test]
    fn the_printed_default_file_is_the_default_configuration() {
        let parsed: Config = toml::from_str(&default_file()).unwrap();
        assert_eq!(parsed, Config::default());
    }

    /// Every key of [`Config`], dotted (`http.listen`), sections included, by its schema.
    fn every_key(
        root: &serde_json::Value,
        schema: &serde_json::Value,
        prefix: &str,
    ) -> Vec<String> {
        let mut keys = Vec::new();
        let schema = print::resolve(root, schema);
        for (key, prop) in schema["properties"].as_object().into_iter().flatten() {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            keys.push(path.clone());
            keys.extend(every_key(root, prop, &path));
        }
        keys
    }

    #[test]
    fn every_key_of_the_configuration_is_printed_under_a_comment() {
        let file = default_file();
        // Each key or [section] printed, and whether a comment stands right above it.
        let mut printed = std::collections::BTreeMap::new();
        let (mut section, mut commented) = (String::new(), false);
        for line in file.lines() {
            if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = header.to_owned();
                printed.insert(section.clone(), commented);
            } else if let Some((key, _)) = line.split_once(" = ").filter(|_| !line.starts_with('#'))
            {
                let path = if section.is_empty() {
                    key.to_owned()
                } else {
                    format!("{section}.{key}")
                };
                printed.insert(path, commented);
            }
            commented = line.starts_with("# ");
        }
        let schema = schemars::schema_for!(Config);
        let keys = every_key(schema.as_value(), schema.as_value(), "");
        assert!(keys.len() > 150, "the walk found only {} keys", keys.len());
        let missing: Vec<_> = keys
            .iter()
            .filter(|k| printed.get(k.as_str()) != Some(&true))
            .collect();
        assert!(
            missing.is_empty(),
            "keys printed without a comment (a doc comment on the field), or not at all: {missing:?}\n{file}"
        );
    }

    #[test]
    fn environment_variables_override_nested_keys() {
        let c = load_with(
            None,
            &[
                ("WEIR_HTTP__LISTEN", "127.0.0.1:9999"),
                ("WEIR_DATA_DIR", "/var/lib/weir"),
                ("WEIR_MQTT__BROKER", "external"),
                ("WEIR_STORE__BATCH_MAX_MESSAGES", "2"),
                ("WEIR_BOOTSTRAP_TOKEN", "not-a-config-key"),
            ],
        )
        .unwrap();
        assert_eq!(c.http.listen, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(c.data_dir, PathBuf::from("/var/lib/weir"));
        assert_eq!(c.mqtt.broker, BrokerMode::External);
        assert_eq!(c.store.batch_max_messages, 2);
    }

    #[test]
    fn the_command_lines_own_variables_are_not_configuration_keys() {
        let mut vars: Vec<(&str, &str)> = NOT_CONFIG_VARS.iter().map(|k| (*k, "x")).collect();
        vars.extend([
            ("WEIR_FLEET_HOST", "127.0.0.1"),
            ("WEIR_DATA_DIR", "/srv/weir"),
        ]);
        let c = load_with(None, &vars).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/srv/weir"));
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.toml");
        std::fs::write(&path, "[http]\nlisten = \"127.0.0.1:1\"\nlisen = \"x\"\n").unwrap();
        let e = format!("{:#}", load_with(Some(&path), &[]).unwrap_err());
        assert!(e.contains("lisen"), "{e}");
    }

    #[test]
    fn an_unknown_environment_key_is_refused_by_name() {
        let e = load_with(None, &[("WEIR_HTTP__LISTN", "x")]).unwrap_err();
        assert!(format!("{e:#}").contains("listn"), "{e:#}");
    }

    #[test]
    fn a_bad_value_names_the_key() {
        let e = load_with(None, &[("WEIR_STORE__SYNCHRONOUS", "sometimes")]).unwrap_err();
        let e = format!("{e:#}");
        assert!(e.contains("store.synchronous"), "{e}");
        let e = load_with(None, &[("WEIR_MQTT__TOPIC_PREFIX", "a/#")]).unwrap_err();
        assert!(format!("{e:#}").contains("mqtt.topic_prefix"), "{e:#}");
    }

    #[test]
    fn a_missing_file_is_an_error_naming_it() {
        let e = load_with(Some(Path::new("/nonexistent/weir.toml")), &[]).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/weir.toml"));
    }
}

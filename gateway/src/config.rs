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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the database and other state live.
    pub data_dir: PathBuf,
    /// Log filter, in `tracing` syntax (`info`, `weir=debug,info`).
    pub log: String,
    /// Site settings shown to users.
    pub site: SiteConfig,
    /// The HTTP server (API and dashboard).
    pub http: HttpConfig,
    /// MQTT: the embedded broker, or an external one.
    pub mqtt: MqttConfig,
    /// The reading store.
    pub store: StoreConfig,
    /// Forwarding to InfluxDB.
    pub influx: InfluxConfig,
    /// Alert rules, escalation, service-time targets, crews and notifications.
    pub alerts: crate::alerts::AlertsConfig,
    /// What `weir node provision` writes into nodes.
    pub nodes: NodesConfig,
    /// Inspectors' reports.
    pub reports: crate::reports::ReportsConfig,
    /// The HJ 212 uplink to the environment bureau's platform.
    pub hj212: crate::hj212::Hj212Config,
    /// Pictures of the terminals: cameras, uploads, retention and the bound on disk use.
    pub pictures: crate::pictures::PicturesConfig,
    /// Firmware updates over the air: the county's key and the service's limits.
    pub firmware: crate::firmware::FirmwareConfig,
    /// Several gateways behind one external broker, the terminals divided among them.
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodesConfig {
    /// The broker as nodes reach it from a cabinet, `host:port`; empty: `--broker` is needed.
    pub broker: String,
    /// SNTP server nodes take UTC from.
    pub time_server: String,
    /// The dashboard as field staff reach it; node labels' QR codes open
    /// `{dashboard_url}/terminals/{id}`. Empty: `--dashboard-url` is needed.
    pub dashboard_url: String,
    /// The board nodes are built on (its flash layout places the configuration image).
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// Mark the session cookie `Secure` (set when the dashboard is served over HTTPS, for
    /// example behind a reverse proxy).
    pub secure_cookies: bool,
    /// Hours a dashboard login lasts.
    pub session_hours: u32,
    /// TLS certificate chain (PEM); with `tls_key`, the API and dashboard are served over
    /// HTTPS on `listen` (and the login cookie is Secure).
    pub tls_cert: PathBuf,
    /// TLS private key (PEM) of `tls_cert`.
    pub tls_key: PathBuf,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// Connections open at once from one address.
    pub max_connections_per_address: usize,
    /// Seconds a client has to send a request's headers (and finish a TLS handshake) before
    /// its connection is closed.
    pub header_timeout_s: u32,
    /// Password checks (argon2, about 19 MiB each) running at once; a login that waits
    /// more than 2 s for one is refused with 503.
    pub max_password_checks: usize,
    /// Failed logins of one user name, or from one address, after which logins are refused
    /// unchecked (429) until `login_lockout_min` after the first of them.
    pub login_max_failures: u32,
    /// Minutes of that window.
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BrokerMode {
    /// Run the broker inside the gateway; nodes connect to `mqtt.listen`.
    Embedded,
    /// Connect to an existing broker (Mosquitto, EMQX) at `mqtt.host`:`mqtt.port`.
    External,
}

/// MQTT.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `embedded` or `external`.
    pub broker: BrokerMode,
    /// Embedded broker: address and port nodes connect to.
    pub listen: SocketAddr,
    /// External broker: host name or address.
    pub host: String,
    /// External broker: port.
    pub port: u16,
    /// External broker: the gateway's user name.
    pub username: String,
    /// External broker: the gateway's password.
    pub password: String,
    /// Client id of the gateway's own MQTT session (persistent: keep it stable).
    pub client_id: String,
    /// Topic prefix, `weir` by default.
    pub topic_prefix: String,
    /// Keep-alive of the gateway's MQTT session, seconds.
    pub keep_alive_s: u16,
    /// Embedded broker: most unacknowledged QoS 1 messages in flight to one client. The
    /// gateway acknowledges after commit, so this bounds its batches.
    pub max_inflight: u16,
    /// Embedded broker: most messages queued for one session while its client is away.
    pub max_queued: usize,
    /// Embedded broker: MQTT over TLS on `tls_listen` when `tls_cert` and `tls_key` (PEM)
    /// are set, beside the plain listener.
    pub tls_listen: SocketAddr,
    /// Certificate chain (PEM) of the TLS listener.
    pub tls_cert: PathBuf,
    /// Private key (PEM) of `tls_cert`.
    pub tls_key: PathBuf,
    /// Embedded broker: what one client may make it hold (`[mqtt.limits]`, docs/security.md).
    pub limits: BrokerLimits,
}

/// The embedded broker's bounds on what a client can make it hold; the defaults are the
/// broker's own (`weir_broker::BrokerConfig`), where each is explained.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerLimits {
    /// Clients connected at once.
    pub max_connections: usize,
    /// Connections not yet past CONNACK.
    pub max_pending_connections: usize,
    /// Connections from one address (an IPv6 /64).
    pub max_connections_per_address: usize,
    /// Seconds to send CONNECT (and finish a TLS handshake).
    pub connect_timeout_s: u16,
    /// Longest keep alive honoured, s.
    pub max_keep_alive_s: u16,
    /// Password checks at once.
    pub max_concurrent_auth: usize,
    /// Milliseconds a CONNECT waits for a password check before CONNACK 3.
    pub auth_wait_ms: u32,
    /// Failed logins from one address per window before it is refused unchecked.
    pub auth_failures_per_address: u32,
    /// Failed logins of one user name from one address per window.
    pub auth_failures_per_user: u32,
    /// The failure window, s.
    pub auth_failure_window_s: u32,
    /// Seconds a disconnected client's persistent session is kept.
    pub session_expiry_s: u32,
    /// Persistent sessions one identity may hold.
    pub max_sessions_per_identity: usize,
    /// Bytes queued for one session.
    pub max_queued_bytes: usize,
    /// Messages per second one identity may publish, and the burst above it.
    pub max_publish_rate: u32,
    /// Burst of messages above the rate.
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
            max_queued: 250_000,
            tls_listen: ([0, 0, 0, 0], 8883).into(),
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            limits: BrokerLimits::default(),
        }
    }
}

/// Forwarding of every stored reading to InfluxDB 2 (or anything serving its v2 write API).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InfluxConfig {
    /// Forward at all.
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
    /// Most readings per write request.
    pub batch_size: usize,
    /// Most readings per second while catching up after an outage.
    pub max_rate: u32,
    /// Compress request bodies with gzip.
    pub gzip: bool,
    /// Longest wait between two retries, seconds.
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

/// The default configuration as a commented TOML file (`weir config`): the core keys, then
/// each domain's section.
pub fn default_file() -> String {
    format!(
        "{CORE_FILE}{}{}{}{}{}",
        crate::hj212::DEFAULT_CONFIG,
        crate::pictures::config::DEFAULT_CONFIG,
        crate::firmware::DEFAULT_CONFIG,
        crate::cluster::DEFAULT_CONFIG,
        crate::alerts::DEFAULT_CONFIG
    )
}

const CORE_FILE: &str = r#"# Weir gateway configuration. Every key is optional; this file shows the defaults.
# Any key can be overridden by an environment variable: WEIR_ + the key in capitals, with __
# between levels, for example WEIR_HTTP__LISTEN=0.0.0.0:8080 or WEIR_DATA_DIR=/var/lib/weir.
# WEIR_BOOTSTRAP_TOKEN, if set, is accepted as an admin API token (automation, first start).

# Where the database and other state live.
data_dir = "weir-data"
# Log filter: error, warn, info, debug, trace, or per module ("weir_gateway=debug,info").
log = "info"

[site]
# Name shown in the dashboard's title.
name = "Weir"
# IANA time zone in which the dashboard shows times.
timezone = "Asia/Shanghai"

[http]
# Address and port of the API and dashboard.
listen = "127.0.0.1:8080"
# Mark the login cookie Secure; set true when users reach Weir over HTTPS (e.g. behind a proxy).
secure_cookies = false
# Hours a dashboard login lasts.
session_hours = 12
# HTTPS: a certificate chain and its private key, PEM (docs/operations.md shows how to make
# one). Both set: the API and dashboard are served over TLS on `listen`.
tls_cert = ""
tls_key = ""
# Connections open at once, and from one address; more are closed at once.
max_connections = 1024
max_connections_per_address = 256
# Seconds to send a request's headers (or finish a TLS handshake) before the connection closes.
header_timeout_s = 10
# Password checks running at once (each about 19 MiB and some milliseconds of a core).
max_password_checks = 4
# Failed logins of one user name or from one address before logins are refused for
# login_lockout_min minutes from the first failure.
login_max_failures = 10
login_lockout_min = 15

[mqtt]
# "embedded": the gateway runs the broker and nodes connect to it at `listen`.
# "external": the gateway connects to a broker (Mosquitto, EMQX) at host:port; see
# docs/operations.md for the broker's password file and ACL.
broker = "embedded"
listen = "0.0.0.0:1883"
host = "127.0.0.1"
port = 1883
# The gateway's own credentials on an external broker.
username = ""
password = ""
# The gateway's MQTT session is persistent: keep its client id stable across restarts.
client_id = "weir-gateway"
# Topics are {topic_prefix}/terminals/{terminal id}/{telemetry,status,ack,config}.
topic_prefix = "weir"
keep_alive_s = 30
# Embedded broker: most unacknowledged messages in flight to one client (the gateway
# acknowledges after commit, so this bounds its batches), and most messages queued for one
# session while its client is away (the oldest are dropped beyond it).
max_inflight = 1000
max_queued = 250000
# Embedded broker: MQTT over TLS (nodes' passwords then never cross the network in clear) on
# tls_listen, beside the plain listener, when both a certificate chain and its key (PEM) are
# set; docs/operations.md shows how to make them.
tls_listen = "0.0.0.0:8883"
tls_cert = ""
tls_key = ""

[mqtt.limits]
# What one client can make the embedded broker hold; each is explained in docs/security.md.
# Connections: at once, not yet logged in, from one address (an IPv6 /64); seconds to log in.
max_connections = 10000
max_pending_connections = 256
max_connections_per_address = 64
connect_timeout_s = 10
max_keep_alive_s = 3600
# Password checks at once, and how long a login waits for one (ms) before CONNACK 3.
max_concurrent_auth = 4
auth_wait_ms = 5000
# Failed logins from one address, and of one user name from one address, within the window
# (s), before further logins from there are refused unchecked until it ends.
auth_failures_per_address = 20
auth_failures_per_user = 5
auth_failure_window_s = 60
# Persistent sessions: kept 7 days after their client left; at most this many per identity.
session_expiry_s = 604800
max_sessions_per_identity = 8
# Bytes queued for one session.
max_queued_bytes = 67108864
# What one identity may publish: messages and bytes per second, and the bursts above them
# (a node catching up on days of readings sends its whole flash queue at once).
max_publish_rate = 100
max_publish_burst = 30000
max_publish_bytes_per_s = 16384
max_publish_bytes_burst = 8388608

[store]
# "full": each commit reaches the disk before the node is acked (nothing acked is lost to a
# power cut). "normal": faster; survives a crash of the gateway, not a power cut.
synchronous = "full"
# Most messages committed in one transaction. The writer commits whatever has arrived without
# waiting for more, so batches grow only under load.
batch_max_messages = 2000
# Days of raw readings kept (0: everything, else at least 7). Hourly rollups (and the daily
# figures built from them) are kept for ever, so long charts and exports by the hour or day still
# work. A reading that arrives already older than this is not stored.
raw_retention_days = 0
# Refused messages kept for operators to inspect; the oldest are removed first.
dead_letters_max = 10000
# A node is acknowledged only up to the messages the gateway holds without a gap. A gap opens
# when a broker drops messages (it lost the gateway's session); the node fills it by sending its
# queue again. When a message above the gap, stored at least ack_gap_grace_s ago, comes again
# without the gap filled, the node no longer has those messages and the gap is passed over.
ack_gap_grace_s = 30
# Messages held above gaps per node and boot (memory: about 40 bytes each); past it the lowest
# gap is passed over.
ack_max_held = 4096

[influx]
# Forward every stored reading to InfluxDB 2 (or any server of its v2 write API).
enabled = false
url = "http://127.0.0.1:8086"
org = "weir"
bucket = "weir"
token = ""
measurement = "weir"
# Readings per write request, and at most this many per second while catching up.
batch_size = 5000
max_rate = 20000
gzip = true
# Longest wait between two retries, seconds (a Retry-After from the server is honoured).
max_backoff_s = 60

[reports]
# Inspectors' reports (docs/inspector-guide.md). The effluent compliance rate is the share of
# measured "time" (each turbidity reading stands for the time until the next) or of "samples"
# within the limit; every report states which.
basis = "time"
# Turbidity limit for compliance, NTU; 0 takes each terminal's alarm limit
# (alerts.rules.turbidity_alarm_ntu or its terminal's override).
turbidity_limit_ntu = 0.0
# Silence longer than this many sample intervals is listed as a gap in the data.
gap_factor = 2.0

[nodes]
# What `weir node provision` writes into each node's configuration image (see
# docs/field-guide.md). The broker as nodes reach it from a terminal's cabinet, "host:port"
# (empty: give --broker each time).
broker = ""
# SNTP server nodes take UTC from; a node samples only once it knows the time.
time_server = "cn.pool.ntp.org"
# The dashboard as field staff reach it from a phone; a node label's QR code opens
# {dashboard_url}/terminals/{id} (empty: give --dashboard-url each time).
dashboard_url = ""
# The board nodes are built on: "w5500-evb-pico".
board = "w5500-evb-pico"
"#;

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

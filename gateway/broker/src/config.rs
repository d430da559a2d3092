//! The broker's settings: one typed tree with defaults in code.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Settings of the embedded broker, the `[broker]` table of the gateway's config file.
///
/// Every key has a default; an unknown key is an error, so a typo is not silently ignored.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BrokerConfig {
    /// Address and port the broker listens on. Default `0.0.0.0:1883`.
    pub listen: SocketAddr,
    /// Largest packet a client may send, in bytes of remaining length (everything after the
    /// fixed header). A client that sends a larger one is disconnected. Default 65536.
    pub max_packet_size: usize,
    /// Most QoS 1 messages sent to one client and not yet acknowledged; further messages wait
    /// in its session queue. Default 100, at most 65535.
    pub max_inflight: u16,
    /// [`max_inflight`](Self::max_inflight) for the service (the gateway's own sessions). The
    /// gateway acknowledges a whole store commit at once (up to `store.batch_max_messages`,
    /// 2000), so a window of two commits lets one be written while the next arrives; with 1000,
    /// draining a backlog of a million messages ran at 55 % of `mosquitto_sub`'s rate
    /// (`weir-bench drain`, docs/performance.md). What is in flight has left the session queue:
    /// at most this many times `max_packet_size` bytes. Default 4096, at most 65535.
    pub service_max_inflight: u16,
    /// Most messages waiting in one session's queue (online or offline); when it is full the
    /// oldest is dropped and counted. Default 250000.
    pub max_queued: usize,
    /// Most bytes (topic and payload) of the messages waiting in one session's queue; when a
    /// new one would pass this the oldest are dropped and counted. At least `max_packet_size`.
    /// Default 67108864 (64 MiB: a week's backlog of a 38-terminal county is about 18 MiB).
    pub max_queued_bytes: usize,
    /// Messages per second one identity may publish over time, all its connections together;
    /// beyond `max_publish_burst` a client publishing faster is disconnected and counted. The
    /// service (the gateway's own client) is not limited. Default 100.
    pub max_publish_rate: u32,
    /// Messages one identity may publish at once above `max_publish_rate`. A device catching
    /// up publishes its backlog as fast as its link allows: two weeks at a Weir node's default
    /// schedule are about 4,000 messages (its W5500-EVB-Pico's 948 KiB queue holds at most
    /// about 14,000 of the smallest), and a logger sending one reading a minute, one per
    /// message, has 10,080 a week. Default 30000.
    pub max_publish_burst: u32,
    /// Bytes (topic and payload) per second one identity may publish over time; beyond
    /// `max_publish_bytes_burst` a client publishing more is disconnected and counted. Not for
    /// the service. Default 16384 (a node sends about one byte a second on average).
    pub max_publish_bytes_per_s: u32,
    /// Bytes one identity may publish at once above `max_publish_bytes_per_s`; at least
    /// `max_packet_size`. Default 8388608 (8 MiB: a node's full flash queue is under 1 MiB, a
    /// week of one JSON reading per message about 1.3 MiB).
    pub max_publish_bytes_burst: u32,
    /// Seconds a persistent session (clean session off) is kept after its client disconnected;
    /// then it ends with its subscriptions and queue. Default 604800 (7 days): a node's 4G
    /// link may be down for days (a long outage, a holiday, a technician's next round), and
    /// its session holds the acks and configs published meanwhile. Nothing is lost when a
    /// session expires all the same: the node keeps its readings in flash until acknowledged
    /// and republishes them, it subscribes again at each connection, and its config is
    /// retained.
    pub session_expiry_s: u32,
    /// Most persistent sessions one identity (user name) may hold. A new one beyond this ends
    /// the identity's session that has been offline longest; if all are connected, the
    /// CONNECT is refused with CONNACK 3. A node needs one, the gateway two. Default 8.
    pub max_sessions_per_identity: usize,
    /// Longest keep alive the broker honours, in seconds. A client asking for more, or for 0
    /// (no keep alive), is held to this, so a dead link is noticed. A client is disconnected
    /// after 1.5 times its keep alive without a packet. Default 3600.
    pub max_keep_alive_s: u16,
    /// Seconds a new connection has to send its CONNECT. Default 10.
    pub connect_timeout_s: u16,
    /// Most clients connected at once; further connections are closed at once and counted as
    /// refused. Default 10000.
    pub max_connections: usize,
    /// Most connections that have not yet completed CONNECT/CONNACK (the TLS handshake, the
    /// CONNECT, the password check). A socket accepted beyond this is closed at once and
    /// counted, so that idle or slow sockets cannot take the slots nodes need. Default 256.
    pub max_pending_connections: usize,
    /// Most connections, pending or established, from one source address (an IPv6 address
    /// counts as its /64); more are closed at once and counted. Loopback counts like any other
    /// address: tests that open many connections from one machine raise this. A county whose
    /// nodes reach the gateway through one carrier NAT address needs it above its node count.
    /// Default 64.
    pub max_connections_per_address: usize,
    /// Password checks ([`Policy::authenticate`](crate::Policy::authenticate)) running at once,
    /// on tokio's blocking pool. A check may be slow and large on purpose (the gateway's argon2
    /// takes tens of milliseconds and about 19 MiB), so this is what bounds the CPU and memory
    /// a storm of logins can take. Default 4.
    pub max_concurrent_auth: usize,
    /// Milliseconds a CONNECT waits for a free password check before it is refused with
    /// CONNACK 3 (server unavailable) rather than queueing without end. Waiting CONNECTs are
    /// few (at most `max_pending_connections`) and cost little; the wait must cover a queue of
    /// them, in order, ahead of a node: 128 at 4 checks of 30 ms at once take 1 s here, more
    /// on a slower box. Default 5000.
    pub auth_wait_ms: u32,
    /// Failed logins from one source address (an IPv6 address counts as its /64) within
    /// `auth_failure_window_s`, after which every CONNECT from that address is refused with
    /// CONNACK 3 without a password check until the window ends. A success does not reset it,
    /// so one valid login cannot launder an address's guesses. Default 20.
    pub auth_failures_per_address: u32,
    /// Failed logins for one user name from one source address within
    /// `auth_failure_window_s`, after which that user name is refused from that address with
    /// CONNACK 3 without a password check until the window ends; a success resets it. Keyed
    /// by address too, so that anyone who reads a terminal id off a cabinet label cannot lock
    /// that terminal's node out from elsewhere. Default 5.
    pub auth_failures_per_user: u32,
    /// Seconds a failure window lasts, counted from its first failure. Default 60.
    pub auth_failure_window_s: u32,
    /// MQTT over TLS, on a listener of its own next to the plain one (`[broker.tls]`). None by
    /// default: nodes' passwords then cross the network in clear.
    pub tls: Option<TlsConfig>,
}

/// The broker's TLS listener (MQTT over TLS, port 8883 by convention), the `[broker.tls]`
/// table. Its connections are served like plain ones and under the same limits; the TLS
/// handshake counts against `connect_timeout_s` and as pending.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address and port of the TLS listener. Default `0.0.0.0:8883`.
    #[serde(default = "TlsConfig::default_listen")]
    pub listen: SocketAddr,
    /// PEM file with the certificate chain: the broker's certificate first, then the
    /// intermediate certificates, if any. Required.
    pub certificate_chain_pem: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1). Required.
    pub private_key_pem: PathBuf,
}

impl TlsConfig {
    fn default_listen() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, 8883))
    }
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: SocketAddr::from((Ipv4Addr::UNSPECIFIED, 1883)),
            max_packet_size: 64 * 1024,
            max_inflight: 100,
            service_max_inflight: 4096,
            max_queued: 250_000,
            max_queued_bytes: 64 * 1024 * 1024,
            max_publish_rate: 100,
            max_publish_burst: 30_000,
            max_publish_bytes_per_s: 16 * 1024,
            max_publish_bytes_burst: 8 * 1024 * 1024,
            session_expiry_s: 7 * 24 * 3600,
            max_sessions_per_identity: 8,
            max_keep_alive_s: 3600,
            connect_timeout_s: 10,
            max_connections: 10_000,
            max_pending_connections: 256,
            max_connections_per_address: 64,
            max_concurrent_auth: 4,
            auth_wait_ms: 5000,
            auth_failures_per_address: 20,
            auth_failures_per_user: 5,
            auth_failure_window_s: 60,
            tls: None,
        }
    }
}

/// A setting that cannot work.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A key is zero where at least one is needed.
    #[error("broker.{0} must be at least 1")]
    Zero(&'static str),
    /// A byte limit is below `max_packet_size`: a message of the largest size could never
    /// pass it.
    #[error("broker.{key} must be at least max_packet_size ({max_packet_size}), not {got}")]
    BelowPacketSize {
        /// The key.
        key: &'static str,
        /// The configured `max_packet_size`.
        max_packet_size: usize,
        /// The configured value.
        got: usize,
    },
    /// `max_packet_size` is below what a CONNECT with credentials needs.
    #[error("broker.max_packet_size must be at least {min} bytes, not {got}")]
    PacketSizeTooSmall {
        /// The smallest accepted value.
        min: usize,
        /// The configured value.
        got: usize,
    },
}

impl BrokerConfig {
    /// Smallest accepted `max_packet_size`: room for a CONNECT with an id, credentials and a will.
    pub const MIN_PACKET_SIZE: usize = 1024;

    /// Checks the settings before the broker starts.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_packet_size < Self::MIN_PACKET_SIZE {
            return Err(ConfigError::PacketSizeTooSmall {
                min: Self::MIN_PACKET_SIZE,
                got: self.max_packet_size,
            });
        }
        for (key, got) in [
            ("max_queued_bytes", self.max_queued_bytes),
            (
                "max_publish_bytes_burst",
                self.max_publish_bytes_burst as usize,
            ),
        ] {
            if got < self.max_packet_size {
                return Err(ConfigError::BelowPacketSize {
                    key,
                    max_packet_size: self.max_packet_size,
                    got,
                });
            }
        }
        let non_zero = [
            ("max_inflight", self.max_inflight as usize),
            ("service_max_inflight", self.service_max_inflight as usize),
            ("max_queued", self.max_queued),
            ("max_publish_rate", self.max_publish_rate as usize),
            ("max_publish_burst", self.max_publish_burst as usize),
            (
                "max_publish_bytes_per_s",
                self.max_publish_bytes_per_s as usize,
            ),
            ("session_expiry_s", self.session_expiry_s as usize),
            ("max_sessions_per_identity", self.max_sessions_per_identity),
            ("max_keep_alive_s", self.max_keep_alive_s as usize),
            ("connect_timeout_s", self.connect_timeout_s as usize),
            ("max_connections", self.max_connections),
            ("max_pending_connections", self.max_pending_connections),
            (
                "max_connections_per_address",
                self.max_connections_per_address,
            ),
            ("max_concurrent_auth", self.max_concurrent_auth),
            ("auth_wait_ms", self.auth_wait_ms as usize),
            (
                "auth_failures_per_address",
                self.auth_failures_per_address as usize,
            ),
            (
                "auth_failures_per_user",
                self.auth_failures_per_user as usize,
            ),
            ("auth_failure_window_s", self.auth_failure_window_s as usize),
        ];
        match non_zero.into_iter().find(|(_, v)| *v == 0) {
            Some((key, _)) => Err(ConfigError::Zero(key)),
            None => Ok(()),
        }
    }

    /// How long a client asking for `requested` seconds of keep alive may stay silent.
    pub fn keep_alive_timeout(&self, requested: u16) -> Duration {
        let k = match requested {
            0 => self.max_keep_alive_s,
            k => k.min(self.max_keep_alive_s),
        };
        // 1.5 times the keep alive, MQTT-3.1.2-24.
        Duration::from_millis(u64::from(k) * 1500)
    }

    /// How long a new connection has to send its CONNECT.
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_s.into())
    }

    /// How long a persistent session is kept after its client disconnected.
    pub fn session_expiry(&self) -> Duration {
        Duration::from_secs(self.session_expiry_s.into())
    }

    /// How long a CONNECT waits for a free password check.
    pub fn auth_wait(&self) -> Duration {
        Duration::from_millis(self.auth_wait_ms.into())
    }

    /// How long a window of failed logins lasts.
    pub fn auth_failure_window(&self) -> Duration {
        Duration::from_secs(self.auth_failure_window_s.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_table_gives_the_defaults_and_they_are_valid() {
        let c: BrokerConfig = toml::from_str("").unwrap();
        assert_eq!(c, BrokerConfig::default());
        assert_eq!(c.listen.port(), 1883);
        assert_eq!(c.max_packet_size, 65536);
        c.validate().unwrap();
    }

    #[test]
    fn keys_override_defaults_and_unknown_keys_are_refused() {
        let c: BrokerConfig =
            toml::from_str("listen = \"127.0.0.1:1884\"\nmax_inflight = 20\n").unwrap();
        assert_eq!(c.listen, "127.0.0.1:1884".parse().unwrap());
        assert_eq!(c.max_inflight, 20);
        assert_eq!(c.max_queued, BrokerConfig::default().max_queued);
        let err = toml::from_str::<BrokerConfig>("max_inflite = 20").unwrap_err();
        assert!(err.to_string().contains("max_inflite"), "{err}");
    }

    #[test]
    fn zero_limits_and_tiny_packets_are_refused_by_name() {
        let c = BrokerConfig {
            max_queued: 0,
            ..BrokerConfig::default()
        };
        assert_eq!(c.validate(), Err(ConfigError::Zero("max_queued")));
        let c = BrokerConfig {
            max_packet_size: 100,
            ..BrokerConfig::default()
        };
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PacketSizeTooSmall { got: 100, .. })
        ));
        let c = BrokerConfig {
            max_queued_bytes: 1000,
            max_packet_size: 2000,
            ..BrokerConfig::default()
        };
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "broker.max_queued_bytes must be at least max_packet_size (2000), not 1000"
        );
    }

    #[test]
    fn keep_alive_is_one_and_a_half_times_the_requested_value_capped_by_the_maximum() {
        let c = BrokerConfig {
            max_keep_alive_s: 100,
            ..BrokerConfig::default()
        };
        assert_eq!(c.keep_alive_timeout(10), Duration::from_secs(15));
        assert_eq!(c.keep_alive_timeout(1), Duration::from_millis(1500));
        assert_eq!(c.keep_alive_timeout(500), Duration::from_secs(150));
        assert_eq!(c.keep_alive_timeout(0), Duration::from_secs(150));
    }
}

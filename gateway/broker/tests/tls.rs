//! MQTT over TLS: a listener of its own, with a certificate and key from PEM files, served
//! under the same rules as the plain one.

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rumqttc::{MqttOptions, QoS, TlsConfiguration, Transport};
use tokio::io::AsyncReadExt;
use weir_broker::{Broker, BrokerConfig, TlsConfig};

/// A certificate authority and a server certificate it signed for `localhost` and
/// `127.0.0.1`, as PEM files in a temporary directory.
struct Certificates {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Certificates {
    fn new() -> Self {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Weir test county CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca_cert = ca.self_signed(&ca_key).unwrap();

        let mut server =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "weir gateway");
        let server_key = KeyPair::generate().unwrap();
        let server_cert = server
            .signed_by(&server_key, &Issuer::from_params(&ca, &ca_key))
            .unwrap();

        let dir = tempfile::tempdir().unwrap();
        // The chain as a gateway would deploy it: the server's certificate, then its CA's.
        let chain = format!("{}{}", server_cert.pem(), ca_cert.pem());
        std::fs::write(dir.path().join("chain.pem"), chain).unwrap();
        std::fs::write(dir.path().join("key.pem"), server_key.serialize_pem()).unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
        Certificates {
            dir,
            ca_pem: ca_cert.pem(),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tls_config(&self) -> TlsConfig {
        TlsConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            certificate_chain_pem: self.path("chain.pem"),
            private_key_pem: self.path("key.pem"),
        }
    }
}

/// A broker with Weir's policy on a plain and a TLS listener.
struct TlsBroker {
    plain: TestBroker,
    tls_port: u16,
    _certificates: Certificates,
    ca_pem: String,
}

async fn start() -> TlsBroker {
    let certificates = Certificates::new();
    let plain = TestBroker::start().await;
    let listener = plain
        .broker
        .bind_tls(&certificates.tls_config())
        .await
        .unwrap();
    let tls_port = listener.local_addr().port();
    tokio::spawn(listener.run(plain.shutdown.clone()));
    TlsBroker {
        plain,
        tls_port,
        ca_pem: certificates.ca_pem.clone(),
        _certificates: certificates,
    }
}

fn over_tls(b: &TlsBroker, ca_pem: &str, client_id: &str, terminal: &str) -> MqttOptions {
    let mut o = MqttOptions::new(client_id, "127.0.0.1", b.tls_port);
    o.set_credentials(terminal, password_of(terminal));
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: ca_pem.as_bytes().to_vec(),
        alpn: None,
        client_auth: None,
    }));
    o
}

#[tokio::test]
async fn a_node_connects_over_tls_trusting_the_gateways_ca_and_its_telemetry_arrives() {
    let b = start().await;
    let mut gateway = connect(b.plain.service_options("gw")).await;
    gateway
        .subscribe("weir/terminals/+/telemetry", QoS::AtLeastOnce)
        .await;

    let mut node = connect(over_tls(&b, &b.ca_pem, "weir-node-HY-001", "HY-001")).await;
    node.publish_acked(&topic("HY-001", "telemetry"), b"over tls", false)
        .await;
    assert_eq!(payload_text(&gateway.next_publish().await), "over tls");
    assert_eq!(b.plain.stats().tls_handshakes_failed, 0);
}

#[tokio::test]
async fn mosquitto_pub_publishes_over_tls_with_the_cafile() {
    let b = start().await;
    let mut gateway = connect(b.plain.service_options("gw")).await;
    gateway
        .subscribe("weir/terminals/+/telemetry", QoS::AtLeastOnce)
        .await;

    let ca = b._certificates.path("ca.pem");
    let output = mosquitto_pub(&ca, b.tls_port, "from mosquitto").await;
    assert!(
        output.status.success(),
        "mosquitto_pub failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(
        payload_text(&gateway.next_publish().await),
        "from mosquitto"
    );
}

/// Runs `mosquitto_pub` as a node would: its terminal's login, QoS 1, the CA file.
async fn mosquitto_pub(cafile: &Path, port: u16, message: &str) -> std::process::Output {
    let child = tokio::process::Command::new("mosquitto_pub")
        .args(["-h", "localhost", "-p", &port.to_string()])
        .arg("--cafile")
        .arg(cafile)
        .args(["-u", "HY-001", "-P", password_of("HY-001")])
        .args(["-i", "weir-node-HY-001", "-q", "1"])
        .args(["-t", &topic("HY-001", "telemetry"), "-m", message])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run mosquitto_pub ({e}): install mosquitto-clients (bash .ci/install)")
        });
    tokio::time::timeout(Duration::from_secs(10), child.wait_with_output())
        .await
        .expect("mosquitto_pub did not finish")
        .unwrap()
}

#[tokio::test]
async fn a_client_that_does_not_trust_the_certificate_or_speaks_plain_mqtt_is_not_served() {
    let b = start().await;
    let stranger = Certificates::new();
    let refused = try_connect(over_tls(&b, &stranger.ca_pem, "weir-node-HY-001", "HY-001")).await;
    assert!(refused.is_err(), "a certificate of another CA was trusted");

    // Plain MQTT on the TLS port: the CONNECT is not a TLS hello. At most a TLS alert comes
    // back, never a CONNACK, and the connection is closed.
    let tls_addr = (b.plain.addr.ip(), b.tls_port).into();
    let mut plain = Raw::tcp(tls_addr).await;
    plain
        .send(rumqttc::mqttbytes::v4::Packet::Connect(node_login(
            "weir-node-HY-001",
            "HY-001",
            password_of("HY-001"),
        )))
        .await;
    let mut answer = Vec::new();
    tokio::time::timeout(PATIENCE, plain.stream.read_to_end(&mut answer))
        .await
        .expect("the connection was not closed")
        .unwrap();
    const TLS_ALERT: u8 = 0x15;
    assert!(answer.is_empty() || answer[0] == TLS_ALERT, "{answer:?}");

    eventually("both failed handshakes are counted", || {
        b.plain.stats().tls_handshakes_failed == 2
    })
    .await;
    assert_eq!(b.plain.stats().connections_total, 0);
}

#[tokio::test]
async fn a_tls_listener_without_its_key_file_fails_to_start_naming_the_file() {
    let certificates = Certificates::new();
    let broker = Broker::new(BrokerConfig::default(), policy()).unwrap();
    let mut config = certificates.tls_config();
    config.private_key_pem = certificates.path("missing.pem");
    let err = broker.bind_tls(&config).await.unwrap_err();
    assert!(err.to_string().contains("missing.pem"), "{err}");
    // And a file without a key is refused as well.
    config.private_key_pem = certificates.path("ca.pem");
    let err = broker.bind_tls(&config).await.unwrap_err();
    assert!(err.to_string().contains("ca.pem"), "{err}");
}

#[test]
fn a_tls_table_in_the_config_file_names_the_pem_files_and_defaults_to_port_8883() {
    let config: BrokerConfig = toml::from_str(
        "[tls]\ncertificate_chain_pem = \"/etc/weir/chain.pem\"\nprivate_key_pem = \"/etc/weir/key.pem\"\n",
    )
    .unwrap();
    let tls = config.tls.unwrap();
    assert_eq!(tls.listen.port(), 8883);
    assert_eq!(tls.private_key_pem, Path::new("/etc/weir/key.pem"));
    assert!(BrokerConfig::default().tls.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_never_starts_its_tls_handshake_is_closed_at_the_connect_timeout() {
    let b = start().await;
    let started = tokio::time::Instant::now();
    let mut silent = Raw::tcp((b.plain.addr.ip(), b.tls_port).into()).await;
    eventually("the socket is pending", || {
        b.plain.stats().connections_pending == 1
    })
    .await;
    assert_eq!(silent.recv_unbounded().await, None);
    assert!(started.elapsed() >= Duration::from_secs(10));
    let s = b.plain.stats();
    assert_eq!((s.tls_handshakes_failed, s.connections_pending), (1, 0));
}

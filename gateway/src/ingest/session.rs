//! The gateway's own MQTT session, on rumqttc's MQTT 3.1.1 codec.
//!
//! rumqttc's event loop writes and flushes every outgoing packet by itself. The gateway
//! acknowledges a whole committed batch at once: thousands of PUBACKs and a node ack per
//! terminal, which here leave in one write. That halves the broker's and the gateway's system
//! calls per message (see docs/performance.md).

use std::time::Duration;

use anyhow::{bail, Context as _};
use bytes::BytesMut;
use rumqttc::mqttbytes::v4::{Connect, Login, Packet, PingReq, PubAck, Publish, Subscribe};
use rumqttc::mqttbytes::{Error as CodecError, QoS};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

use super::Session;

/// Most topic filters in one SUBSCRIBE (about 40 KB of per-terminal filters).
const SUBSCRIBE_FILTERS: usize = 1000;

/// Largest packet accepted from the broker.
const MAX_PACKET: usize = weir_contract::MAX_PAYLOAD + 1024;

/// Reads packets from the broker.
#[derive(Debug)]
pub struct Reader {
    half: OwnedReadHalf,
    buf: BytesMut,
}

impl Reader {
    /// The next packet; reads as much as the socket has, so packets come from a buffer.
    pub async fn next(&mut self) -> anyhow::Result<Packet> {
        loop {
            match Packet::read(&mut self.buf, MAX_PACKET) {
                Ok(p) => return Ok(p),
                Err(CodecError::InsufficientBytes(_)) => {}
                Err(e) => bail!("the broker sent a malformed packet: {e:?}"),
            }
            self.buf.reserve(64 * 1024);
            let n = self.half.read_buf(&mut self.buf).await?;
            if n == 0 {
                bail!("the broker closed the connection");
            }
            if n < QUICK_ACK_BELOW {
                quick_ack(&self.half);
            }
        }
    }
}

/// A read shorter than this is a broker with little to send: only then is it acknowledged
/// at once (see [`quick_ack`]). Draining a backlog, reads are 64 KiB, the broker's writes are
/// large and the extra acknowledgements would only cost both sides CPU.
const QUICK_ACK_BELOW: usize = 16 * 1024;

/// Has the kernel acknowledge what the broker sent at once, not 40 ms later or with the next
/// write. The gateway writes only when a batch is committed (its PUBACKs), so without this its
/// TCP acknowledgements are delayed, and a broker that leaves Nagle's algorithm on (Mosquitto
/// unless `set_tcp_nodelay true`) holds every small message back until the last one is
/// acknowledged: the messages reached the gateway 7 ms (median) to 18 ms later than a
/// subscriber that answers each at once (`weir-bench latency`, docs/performance.md). Linux
/// turns quick acknowledgement off again by itself, so it is set after every short read.
fn quick_ack(half: &OwnedReadHalf) {
    #[cfg(target_os = "linux")]
    {
        let tcp: &TcpStream = half.as_ref();
        let _ = socket2::SockRef::from(tcp).set_tcp_quickack(true);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = half;
}

/// Encodes packets for one write.
#[derive(Debug, Default)]
pub struct Outgoing {
    buf: BytesMut,
    next_pkid: u16,
}

impl Outgoing {
    /// Acknowledges a QoS 1 message.
    pub fn puback(&mut self, pkid: u16) {
        let _ = PubAck::new(pkid).write(&mut self.buf);
    }

    /// A QoS 1 publish. Its PUBACK is not awaited: what it carries (a node's ack) is sent
    /// again whenever the node sends again.
    pub fn publish(&mut self, topic: &str, payload: Vec<u8>, retain: bool) {
        self.next_pkid = self.next_pkid.checked_add(1).unwrap_or(1);
        let mut p = Publish::new(topic, QoS::AtLeastOnce, payload);
        p.retain = retain;
        p.pkid = self.next_pkid;
        let _ = p.write(&mut self.buf);
    }

    /// A keep-alive ping.
    pub fn ping(&mut self) {
        let _ = PingReq.write(&mut self.buf);
    }

    /// The encoded packets, leaving this empty.
    pub fn take(&mut self) -> BytesMut {
        self.buf.split()
    }
}

/// Connects, resumes (or creates) the persistent session and subscribes to `filters`.
pub async fn connect(s: &Session, filters: &[String]) -> anyhow::Result<(Reader, OwnedWriteHalf)> {
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        TcpStream::connect((s.host.as_str(), s.port)),
    )
    .await
    .context("connecting to the broker timed out")?
    .with_context(|| format!("connecting to the broker at {}:{}", s.host, s.port))?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut connect = Connect::new(s.client_id.as_str());
    connect.keep_alive = s.keep_alive_s.max(5);
    connect.clean_session = false;
    connect.login = s
        .credentials
        .as_ref()
        .map(|(u, p)| Login::new(u.as_str(), p.as_str()));
    let mut out = BytesMut::new();
    connect.write(&mut out).context("encoding CONNECT")?;
    write.write_all(&out).await?;
    let mut reader = Reader {
        half: read,
        buf: BytesMut::with_capacity(64 * 1024),
    };
    match tokio::time::timeout(Duration::from_secs(10), reader.next())
        .await
        .context("no CONNACK")??
    {
        Packet::ConnAck(ack) if ack.code == rumqttc::ConnectReturnCode::Success => {
            tracing::info!(
                session_present = ack.session_present,
                "ingest: connected to the broker"
            );
        }
        Packet::ConnAck(ack) => bail!("the broker refused the gateway's session: {:?}", ack.code),
        other => bail!("the broker answered CONNECT with {other:?}"),
    }
    // At most SUBSCRIBE_FILTERS filters a packet: a cluster member subscribes per terminal, and
    // brokers bound a packet's size (EMQX: 1 MB by default).
    let mut out = BytesMut::new();
    for (i, chunk) in filters.chunks(SUBSCRIBE_FILTERS).enumerate() {
        let mut sub = Subscribe::new_many(
            chunk
                .iter()
                .map(|f| rumqttc::SubscribeFilter::new(f.clone(), QoS::AtLeastOnce)),
        );
        sub.pkid = u16::try_from(i % usize::from(u16::MAX)).unwrap_or(0) + 1;
        sub.write(&mut out).context("encoding SUBSCRIBE")?;
    }
    write.write_all(&out).await?;
    Ok((reader, write))
}

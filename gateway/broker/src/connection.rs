//! One client connection: the CONNECT handshake, then a loop that reads packets, writes
//! batches of outgoing packets and watches the keep alive, until the client leaves.

use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use rumqttc::mqttbytes::v4::{
    ConnAck, Connect, ConnectReturnCode, Packet, PubAck, PubComp, PubRec, Publish, SubAck,
    Subscribe, UnsubAck,
};
use rumqttc::mqttbytes::{self, PacketType, Protocol, QoS};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::sync::Notify;
use tokio::time::{sleep_until, timeout_at, Instant};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn, Instrument};

use crate::admission::{address_key, Slots};
use crate::auth::Throttled;
use crate::policy::{Identity, Refusal};
use crate::rate::{self, OverLimit, SharedBudget};
use crate::router::{NotAttached, SessionId};
use crate::server::Shared;
use crate::session::{Attachment, Message};
use crate::topic_filter::{valid_filter, valid_topic};
use crate::wire::{connect_protocol, write_packet};

/// Room made in the read buffer before a read. Small, because every idle node holds one.
const READ_CHUNK: usize = 8 * 1024;
/// Outgoing bytes gathered before a write, when that many are waiting.
const WRITE_BATCH: usize = 64 * 1024;
/// Outgoing bytes at which the broker stops reading from a client that does not read its acks.
const READ_PAUSE: usize = 1024 * 1024;

/// Why a connection ended.
#[derive(Debug)]
enum Exit {
    /// The client sent DISCONNECT: its will is discarded.
    Disconnect,
    /// The client closed the socket without DISCONNECT.
    Closed,
    Io(std::io::Error),
    KeepAlive,
    Protocol(String),
    TooLarge(usize),
    RateLimited(OverLimit),
    TakenOver,
    Shutdown,
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Disconnect => f.write_str("client disconnected"),
            Exit::Closed => f.write_str("client closed the connection without DISCONNECT"),
            Exit::Io(e) => write!(f, "connection error: {e}"),
            Exit::KeepAlive => f.write_str("keep alive expired"),
            Exit::Protocol(why) => write!(f, "protocol error: {why}"),
            Exit::TooLarge(n) => write!(f, "packet of {n} bytes is over the limit"),
            Exit::RateLimited(OverLimit::Messages) => {
                f.write_str("publishing more messages than max_publish_rate allows")
            }
            Exit::RateLimited(OverLimit::Bytes) => {
                f.write_str("publishing more bytes than max_publish_bytes_per_s allows")
            }
            Exit::TakenOver => f.write_str("session taken over by a new connection"),
            Exit::Shutdown => f.write_str("broker shutting down"),
        }
    }
}

/// The outcome of reading the first packet.
enum First {
    Connect(Connect),
    /// A CONNECT of another protocol version: answered with CONNACK 1.
    WrongVersion(u8),
    /// Nothing or something other than a valid CONNECT: closed without a word.
    Invalid(String),
}

/// What is known of a new connection, and what was reserved for it.
#[derive(Debug)]
pub(crate) struct Arrival {
    /// Where it comes from, if known.
    pub peer: Option<IpAddr>,
    /// The listener's slots for it: released as the connection ends, the pending one at
    /// CONNACK.
    pub slots: Option<Slots>,
    /// When its CONNECT must have arrived (a TLS handshake included).
    pub connect_by: Instant,
}

/// Serves one client until it leaves or `shutdown` is cancelled.
pub(crate) async fn serve<S>(
    shared: Arc<Shared>,
    stream: S,
    arrival: Arrival,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let Arrival {
        peer,
        mut slots,
        connect_by,
    } = arrival;
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut rbuf = BytesMut::with_capacity(READ_CHUNK);
    let max = shared.config.max_packet_size;

    let first = tokio::select! {
        _ = shutdown.cancelled() => return,
        first = timeout_at(connect_by, read_connect(&mut reader, &mut rbuf, max)) => first,
    };
    let connect = match first {
        Ok(First::Connect(c)) => c,
        Ok(First::WrongVersion(level)) => {
            debug!(level, "refusing a CONNECT of another protocol version");
            shared.stats.refused();
            refuse(&mut writer, ConnectReturnCode::RefusedProtocolVersion).await;
            return;
        }
        Ok(First::Invalid(why)) => {
            debug!(
                why,
                "closing a connection that did not start with a valid CONNECT"
            );
            shared.stats.protocol_error();
            return;
        }
        Err(_elapsed) => {
            debug!("closing a connection that sent no CONNECT in time");
            return;
        }
    };

    let Some(client) = admit(&shared, connect, address_key(peer), &mut writer).await else {
        return;
    };
    if let Some(slots) = &mut slots {
        slots.logged_in();
    }
    let span = tracing::info_span!("mqtt", client_id = %client.client_id, who = %client.identity);
    let session = client.session;
    let conn_id = client.conn_id;
    shared.stats.connected();
    let mut conn = Connection {
        shared: shared.clone(),
        client,
        reader,
        writer,
        rbuf,
        wbuf: BytesMut::with_capacity(1024),
        want_fill: true,
    };
    async move {
        let exit = conn.run(&shutdown).await;
        let publish_will = !matches!(exit, Exit::Disconnect | Exit::Shutdown);
        match &exit {
            Exit::Protocol(_) | Exit::TooLarge(_) => {
                shared.stats.protocol_error();
                warn!(%exit, "connection closed");
            }
            Exit::RateLimited(over) => {
                shared.stats.rate_limited(*over == OverLimit::Bytes);
                warn!(%exit, "connection closed");
            }
            Exit::Disconnect | Exit::Shutdown => debug!(%exit, "connection closed"),
            _ => info!(%exit, "connection closed"),
        }
        shared.router.disconnect(session, conn_id, publish_will);
        shared.stats.disconnected();
        drop(slots);
    }
    .instrument(span)
    .await;
}

/// Reads until the first packet is framed and checks that it is a 3.1.1 CONNECT.
async fn read_connect<R: AsyncRead + Unpin>(
    reader: &mut R,
    rbuf: &mut BytesMut,
    max: usize,
) -> First {
    loop {
        match mqttbytes::check(rbuf.iter(), max) {
            Ok(header) => {
                if header.packet_type().ok() != Some(PacketType::Connect) {
                    return First::Invalid("the first packet is not CONNECT".into());
                }
                match connect_protocol(&rbuf[..header.frame_length()]) {
                    Some((b"MQTT", 4)) => {}
                    Some((b"MQTT" | b"MQIsdp", level)) => return First::WrongVersion(level),
                    _ => return First::Invalid("not an MQTT CONNECT".into()),
                }
                return match Packet::read(rbuf, max) {
                    Ok(Packet::Connect(c)) => First::Connect(c),
                    Ok(other) => First::Invalid(format!("unexpected {other:?}")),
                    Err(e) => First::Invalid(e.to_string()),
                };
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                rbuf.reserve(READ_CHUNK);
                match reader.read_buf(rbuf).await {
                    Ok(0) => return First::Invalid("closed before CONNECT".into()),
                    Ok(_) => {}
                    Err(e) => return First::Invalid(e.to_string()),
                }
            }
            Err(e) => return First::Invalid(e.to_string()),
        }
    }
}

async fn refuse<W: AsyncWrite + Unpin>(writer: &mut W, code: ConnectReturnCode) {
    let mut buf = BytesMut::new();
    write_packet(&mut buf, Packet::ConnAck(ConnAck::new(code, false)));
    // The client may already be gone; nothing more to do either way.
    let _ = writer.write_all(&buf).await;
    let _ = writer.shutdown().await;
}

/// An authenticated client attached to its session.
struct Client {
    client_id: Arc<str>,
    identity: Identity,
    session: SessionId,
    conn_id: u64,
    /// What it may publish; `None` if not limited.
    budget: Option<SharedBudget>,
    notify: Arc<Notify>,
    kick: CancellationToken,
    keep_alive: std::time::Duration,
}

/// Authenticates the client and attaches it to its session, answering CONNACK either way.
/// `address` is what the client's failed logins count against.
async fn admit<W: AsyncWrite + Unpin>(
    shared: &Arc<Shared>,
    mut connect: Connect,
    address: IpAddr,
    writer: &mut W,
) -> Option<Client> {
    debug_assert_eq!(connect.protocol, Protocol::V4);
    let conn_id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    if let Some(will) = &mut connect.last_will {
        if !valid_topic(&will.topic) {
            debug!(topic = %will.topic, "closing a connection whose will topic is invalid");
            shared.stats.protocol_error();
            return None;
        }
        // Held for the whole connection: copied out of the read buffer (see `publish`).
        will.message = Bytes::copy_from_slice(&will.message);
    }
    let client_id: Arc<str> = match (connect.client_id.is_empty(), connect.clean_session) {
        (false, _) => connect.client_id.as_str().into(),
        // MQTT-3.1.3-6: the server assigns an id to a clean session without one.
        (true, true) => format!("weir-broker-auto-{conn_id}").into(),
        (true, false) => {
            debug!("refusing a persistent session without a client id");
            shared.stats.refused();
            refuse(writer, ConnectReturnCode::BadClientId).await;
            return None;
        }
    };

    let username = connect
        .login
        .as_ref()
        .map(|l| l.username.as_str())
        .unwrap_or_default();
    if shared.auth.throttled(address, username, Instant::now()) {
        // Debug: a throttled storm would flood the log; the counter says how many, and the
        // moment an address or user name is throttled is logged once, below.
        debug!(client_id = %client_id, username, %address, "refused without a password check: too many failed logins");
        shared.stats.auth_throttled();
        refuse(writer, ConnectReturnCode::ServiceUnavailable).await;
        return None;
    }
    let Some(permit) = shared.auth.permit().await else {
        debug!(client_id = %client_id, username, "refused: no password check free in time");
        shared.stats.auth_busy();
        refuse(writer, ConnectReturnCode::ServiceUnavailable).await;
        return None;
    };

    // Password checks may be slow by design (argon2): keep them off the async workers. The
    // permit goes with the check, so it is held until the check ends even if this
    // connection is dropped meanwhile.
    shared.stats.auth_checked();
    let policy = shared.policy.clone();
    let login = connect.login.clone();
    let id = client_id.clone();
    let verdict = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let (user, pass) = match &login {
            Some(l) => (
                Some(l.username.as_str()).filter(|u| !u.is_empty()),
                Some(l.password.as_bytes()).filter(|p| !p.is_empty()),
            ),
            None => (None, None),
        };
        policy.authenticate(&id, user, pass)
    })
    .await
    .unwrap_or(Err(Refusal::Unavailable));
    let identity = match verdict {
        Ok(identity) => {
            shared.auth.succeeded(address, username);
            identity
        }
        Err(refusal) => {
            info!(client_id = %client_id, username, %address, %refusal, "connection refused");
            let throttled = match refusal {
                Refusal::Unavailable => None,
                _ => shared.auth.failed(address, username, Instant::now()),
            };
            match throttled {
                Some(Throttled::Address) => {
                    warn!(%address, "too many failed logins: CONNECTs from this address are refused unchecked for a while");
                }
                Some(Throttled::UserName) => {
                    warn!(%address, username, "too many failed logins: this user name is refused unchecked from this address for a while");
                }
                None => {}
            }
            shared.stats.refused();
            let code = match refusal {
                Refusal::BadCredentials => ConnectReturnCode::BadUserNamePassword,
                Refusal::NotAuthorized => ConnectReturnCode::NotAuthorized,
                Refusal::Unavailable => ConnectReturnCode::ServiceUnavailable,
            };
            refuse(writer, code).await;
            return None;
        }
    };

    if !shared.policy.may_use_client_id(&identity, &client_id) {
        warn!(client_id = %client_id, %identity, "refused: the client id is reserved to another identity");
        shared.stats.refused();
        refuse(writer, ConnectReturnCode::NotAuthorized).await;
        return None;
    }

    let notify = Arc::new(Notify::new());
    let kick = CancellationToken::new();
    let attachment = Attachment {
        id: conn_id,
        notify: notify.clone(),
        kick: kick.clone(),
        will: connect.last_will,
    };
    let attached = match shared.router.connect(
        &client_id,
        &identity,
        connect.clean_session,
        attachment,
    ) {
        Ok(attached) => attached,
        Err(NotAttached::ClientIdInUse) => {
            warn!(client_id = %client_id, %identity, "refused: the client id belongs to the service's session");
            shared.stats.refused();
            refuse(writer, ConnectReturnCode::NotAuthorized).await;
            return None;
        }
        Err(NotAttached::TooManySessions) => {
            shared.stats.session_limit();
            refuse(writer, ConnectReturnCode::ServiceUnavailable).await;
            return None;
        }
    };
    let present = attached.present;
    let mut buf = BytesMut::new();
    write_packet(
        &mut buf,
        Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, present)),
    );
    if let Err(e) = writer.write_all(&buf).await {
        debug!(error = %e, "client left before CONNACK");
        shared.router.disconnect(attached.session, conn_id, true);
        return None;
    }
    info!(client_id = %client_id, %identity, session_present = present, "client connected");
    Some(Client {
        budget: shared.publish_limits.budget(&identity),
        client_id,
        identity,
        session: attached.session,
        conn_id,
        notify,
        kick,
        keep_alive: shared.config.keep_alive_timeout(connect.keep_alive),
    })
}

struct Connection<S> {
    shared: Arc<Shared>,
    client: Client,
    reader: ReadHalf<S>,
    writer: WriteHalf<S>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// Whether the session may have messages to send.
    want_fill: bool,
}

impl<S: AsyncRead + AsyncWrite> Connection<S> {
    async fn run(&mut self, shutdown: &CancellationToken) -> Exit {
        let keep_alive = self.client.keep_alive;
        let deadline = sleep_until(Instant::now() + keep_alive);
        tokio::pin!(deadline);
        let notify = self.client.notify.clone();
        let kick = self.client.kick.clone();
        // Packets that arrived with the CONNECT.
        if let Err(exit) = self.process_input() {
            return exit;
        }
        loop {
            if self.want_fill && self.wbuf.len() < WRITE_BATCH {
                match self.shared.router.fill(
                    self.client.session,
                    self.client.conn_id,
                    &mut self.wbuf,
                    WRITE_BATCH,
                ) {
                    Ok(filled) => self.want_fill = filled.more,
                    Err(_) => return Exit::TakenOver,
                }
            }
            if self.rbuf.capacity() - self.rbuf.len() < READ_CHUNK / 4 {
                self.rbuf.reserve(READ_CHUNK);
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Exit::Shutdown,
                _ = kick.cancelled() => return Exit::TakenOver,
                written = self.writer.write(&self.wbuf), if !self.wbuf.is_empty() => match written {
                    Ok(0) => return Exit::Closed,
                    Ok(n) => self.wbuf.advance(n),
                    Err(e) => return Exit::Io(e),
                },
                read = self.reader.read_buf(&mut self.rbuf), if self.wbuf.len() < READ_PAUSE => {
                    match read {
                        Ok(0) => return Exit::Closed,
                        Ok(_) => {}
                        Err(e) => return Exit::Io(e),
                    }
                    deadline.as_mut().reset(Instant::now() + keep_alive);
                    if let Err(exit) = self.process_input() {
                        return exit;
                    }
                }
                _ = notify.notified() => self.want_fill = true,
                _ = &mut deadline => return Exit::KeepAlive,
            }
        }
    }

    /// Handles every complete packet in the read buffer.
    fn process_input(&mut self) -> Result<(), Exit> {
        let max = self.shared.config.max_packet_size;
        loop {
            match Packet::read(&mut self.rbuf, max) {
                Ok(packet) => self.handle(packet)?,
                Err(mqttbytes::Error::InsufficientBytes(_)) => return Ok(()),
                Err(mqttbytes::Error::PayloadSizeLimitExceeded(n)) => {
                    return Err(Exit::TooLarge(n))
                }
                Err(e) => return Err(Exit::Protocol(e.to_string())),
            }
        }
    }

    fn handle(&mut self, packet: Packet) -> Result<(), Exit> {
        let shared = &self.shared;
        let (session, conn) = (self.client.session, self.client.conn_id);
        match packet {
            Packet::Publish(publish) => self.publish(publish)?,
            Packet::PubAck(ack) => {
                shared
                    .router
                    .acked(session, conn, ack.pkid)
                    .map_err(|_| Exit::TakenOver)?;
                self.want_fill = true;
            }
            Packet::PubRel(rel) => {
                shared
                    .router
                    .qos2_released(session, conn, rel.pkid)
                    .map_err(|_| Exit::TakenOver)?;
                write_packet(&mut self.wbuf, Packet::PubComp(PubComp::new(rel.pkid)));
            }
            Packet::Subscribe(subscribe) => {
                self.subscribe(subscribe)?;
                // Retained messages may now be queued.
                self.want_fill = true;
            }
            Packet::Unsubscribe(unsubscribe) => {
                shared
                    .router
                    .unsubscribe(session, conn, &unsubscribe.topics)
                    .map_err(|_| Exit::TakenOver)?;
                write_packet(
                    &mut self.wbuf,
                    Packet::UnsubAck(UnsubAck::new(unsubscribe.pkid)),
                );
            }
            Packet::PingReq => write_packet(&mut self.wbuf, Packet::PingResp),
            Packet::Disconnect => return Err(Exit::Disconnect),
            // The broker never sends QoS 2, so it expects no PUBREC or PUBCOMP.
            other @ (Packet::Connect(_)
            | Packet::ConnAck(_)
            | Packet::PubRec(_)
            | Packet::PubComp(_)
            | Packet::SubAck(_)
            | Packet::UnsubAck(_)
            | Packet::PingResp) => {
                return Err(Exit::Protocol(format!("unexpected {other:?}")));
            }
        }
        Ok(())
    }

    fn publish(&mut self, publish: Publish) -> Result<(), Exit> {
        let shared = &self.shared;
        shared.stats.message_in();
        if let Some(budget) = &self.client.budget {
            let size = publish.topic.len() + publish.payload.len();
            rate::lock(budget)
                .spend(size, Instant::now())
                .map_err(Exit::RateLimited)?;
        }
        if !valid_topic(&publish.topic) {
            return Err(Exit::Protocol(format!(
                "PUBLISH to invalid topic {:?}",
                publish.topic
            )));
        }
        let route = match publish.qos {
            QoS::AtMostOnce | QoS::AtLeastOnce => true,
            QoS::ExactlyOnce => shared
                .router
                .qos2_received(self.client.session, self.client.conn_id, publish.pkid)
                .map_err(|e| match e {
                    Some(_) => Exit::TakenOver,
                    None => Exit::Protocol("too many unreleased QoS 2 messages".into()),
                })?,
        };
        let (qos, pkid) = (publish.qos, publish.pkid);
        if route {
            if shared
                .policy
                .may_publish(&self.client.identity, &publish.topic)
            {
                // A copy, not a slice of the read buffer: a message waiting in a queue would
                // otherwise keep the whole buffer it arrived in alive.
                let msg = Message {
                    topic: publish.topic,
                    payload: Bytes::copy_from_slice(&publish.payload),
                };
                shared.router.publish(msg, qos, publish.retain);
            } else {
                shared.stats.denied();
                warn!(topic = %publish.topic, "publish refused by the ACL");
            }
        }
        // MQTT 3.1.1 has no negative acknowledgement: a refused message is acked all the same.
        match qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => write_packet(&mut self.wbuf, Packet::PubAck(PubAck::new(pkid))),
            QoS::ExactlyOnce => write_packet(&mut self.wbuf, Packet::PubRec(PubRec::new(pkid))),
        }
        Ok(())
    }

    fn subscribe(&mut self, subscribe: Subscribe) -> Result<(), Exit> {
        let shared = &self.shared;
        let mut filters = Vec::with_capacity(subscribe.filters.len());
        for f in subscribe.filters {
            let allowed = if !valid_filter(&f.path) {
                debug!(filter = %f.path, "invalid filter refused");
                false
            } else if !shared.policy.may_subscribe(&self.client.identity, &f.path) {
                shared.stats.denied();
                warn!(filter = %f.path, "subscription refused by the ACL");
                false
            } else {
                true
            };
            filters.push((f.path, allowed.then_some(f.qos)));
        }
        let codes = shared
            .router
            .subscribe(self.client.session, self.client.conn_id, filters)
            .map_err(|_| Exit::TakenOver)?;
        write_packet(
            &mut self.wbuf,
            Packet::SubAck(SubAck::new(subscribe.pkid, codes)),
        );
        Ok(())
    }
}

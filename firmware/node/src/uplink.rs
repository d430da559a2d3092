//! The node's link to the broker.

use weir_contract::topic::Channel;

/// An MQTT connection for one terminal: the uplink knows the broker, the terminal id, its
/// credentials and the topic prefix; the node only names the [`Channel`].
///
/// What an implementation must do, per `docs/protocol.md`:
/// * connect with a persistent session, the terminal id as user name, and the last will
///   [`Status::offline()`](weir_contract::Status::offline) retained on the status channel
///   (encode it with [`crate::ENCODING`]);
/// * after each connection, subscribe to [`Channel::Ack`] and [`Channel::Config`] at QoS 1
///   and report [`Event::Connected`]; report [`Event::Disconnected`] when the link drops, and
///   keep reconnecting by itself;
/// * publish at QoS 1.
// The node runs on one executor (embassy, or a tokio task); no `Send` bound is needed.
#[allow(async_fn_in_trait)]
pub trait Uplink {
    /// Why a publication failed.
    type Error: core::fmt::Debug;

    /// Publishes `payload` at QoS 1 on `channel` of this terminal.
    ///
    /// Should fail at once, rather than wait, when the link is down or the outgoing buffer is
    /// full: the node keeps the message and tries again later. Success means the message is
    /// on its way; only an ack from the gateway makes the node free it.
    async fn publish(
        &mut self,
        channel: Channel,
        payload: &[u8],
        retain: bool,
    ) -> Result<(), Self::Error>;

    /// Waits for the next event on the link.
    ///
    /// Must be cancel-safe: the node drops this future when its next sample is due.
    async fn next_event(&mut self) -> Event<'_>;
}

/// Something that happened on the link.
#[derive(Debug, PartialEq, Eq)]
pub enum Event<'a> {
    /// The link is up and subscribed: the node republishes its queue.
    Connected,
    /// The link dropped.
    Disconnected,
    /// A message arrived on `channel` (ack or config) of this terminal.
    Message {
        /// The channel it came on.
        channel: Channel,
        /// The payload, in either encoding.
        payload: &'a [u8],
    },
}

//! The few packet encodings done here rather than by rumqttc's codec: a look at the protocol
//! level of a CONNECT before decoding it, and outgoing PUBLISH written straight from a shared
//! message without building a `Publish` (a topic `String`) per delivery.

use bytes::{BufMut, BytesMut};
use rumqttc::mqttbytes::v4::Packet;
use rumqttc::mqttbytes::QoS;

/// Protocol name and level of the CONNECT packet framed at the start of `frame`, if readable.
///
/// rumqttc's `Connect::read` decodes a level-5 CONNECT as if it were 3.1.1 (its properties
/// would be read as the client id); looking first lets the broker answer it with CONNACK
/// "unacceptable protocol version".
pub(crate) fn connect_protocol(frame: &[u8]) -> Option<(&[u8], u8)> {
    // Skip the first byte and the remaining length (1 to 4 bytes, high bit = more).
    let len_bytes = frame.iter().skip(1).take(4).position(|b| b & 0x80 == 0)? + 1;
    let rest = frame.get(1 + len_bytes..)?;
    let name_len = usize::from(u16::from_be_bytes([*rest.first()?, *rest.get(1)?]));
    let name = rest.get(2..2 + name_len)?;
    let level = *rest.get(2 + name_len)?;
    Some((name, level))
}

/// Appends a PUBLISH packet to `buf`.
pub(crate) fn write_publish(
    buf: &mut BytesMut,
    topic: &str,
    payload: &[u8],
    qos: QoS,
    pkid: u16,
    dup: bool,
    retain: bool,
) {
    let has_pkid = qos != QoS::AtMostOnce;
    let len = 2 + topic.len() + if has_pkid { 2 } else { 0 } + payload.len();
    buf.reserve(5 + len);
    buf.put_u8(0x30 | (u8::from(dup) << 3) | ((qos as u8) << 1) | u8::from(retain));
    let mut rest = len;
    loop {
        let byte = (rest % 128) as u8;
        rest /= 128;
        if rest == 0 {
            buf.put_u8(byte);
            break;
        }
        buf.put_u8(byte | 0x80);
    }
    // Topics come from MQTT strings, so they fit in the u16 length.
    buf.put_u16(topic.len() as u16);
    buf.put_slice(topic.as_bytes());
    if has_pkid {
        buf.put_u16(pkid);
    }
    buf.put_slice(payload);
}

/// Appends a control packet to `buf`.
pub(crate) fn write_packet(buf: &mut BytesMut, packet: Packet) {
    // The broker writes only acks and CONNACK/SUBACK, which cannot fail to encode.
    if let Err(e) = packet.write(buf, usize::MAX) {
        tracing::error!(error = %e, "could not encode a packet");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::mqttbytes::v4::{Connect, Publish};
    use rumqttc::mqttbytes::Protocol;

    fn round_trip(qos: QoS, pkid: u16, dup: bool, retain: bool, payload: &[u8]) {
        let mut buf = BytesMut::new();
        write_publish(
            &mut buf,
            "weir/terminals/HY-001/ack",
            payload,
            qos,
            pkid,
            dup,
            retain,
        );
        let expected = Publish {
            dup,
            qos,
            retain,
            topic: "weir/terminals/HY-001/ack".into(),
            pkid,
            payload: bytes::Bytes::copy_from_slice(payload),
        };
        let mut theirs = BytesMut::new();
        Packet::Publish(expected.clone())
            .write(&mut theirs, usize::MAX)
            .unwrap();
        assert_eq!(buf, theirs, "same bytes as rumqttc's encoder");
        match Packet::read(&mut buf, usize::MAX).unwrap() {
            Packet::Publish(p) => assert_eq!(p, expected),
            other => panic!("{other:?}"),
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn publishes_decode_to_what_was_written() {
        round_trip(QoS::AtMostOnce, 0, false, false, b"{}");
        round_trip(QoS::AtLeastOnce, 7, true, true, b"{\"boot\":1,\"seq\":2}");
        round_trip(QoS::AtLeastOnce, 65535, false, false, &[0x01; 200]);
        round_trip(QoS::AtLeastOnce, 1, false, false, &[0x01; 20_000]);
        round_trip(QoS::AtMostOnce, 0, false, true, b"");
    }

    #[test]
    fn the_protocol_level_of_a_connect_is_read_before_decoding() {
        let mut buf = BytesMut::new();
        let mut connect = Connect::new("weir-node-HY-001");
        write_packet(&mut buf, Packet::Connect(connect.clone()));
        assert_eq!(connect_protocol(&buf), Some((&b"MQTT"[..], 4)));
        connect.protocol = Protocol::V5;
        buf.clear();
        write_packet(&mut buf, Packet::Connect(connect));
        assert_eq!(connect_protocol(&buf), Some((&b"MQTT"[..], 5)));
        assert_eq!(connect_protocol(&[0x10, 0x80]), None);
        assert_eq!(connect_protocol(&[0x10, 10, 0, 4, b'M']), None);
    }
}

//! Arbitrary input: parsers answer every byte string without panicking, and what the encoders
//! write reads back as it was.

use proptest::prelude::*;
use weir_netproto::mqtt::{
    encode_remaining_length, ConnAck, Connect, DecodeError, EncodeError, FixedHeader, Packet,
    PubAck, Publish, QoS, SubAck, Will, MAX_REMAINING_LEN,
};
use weir_netproto::{dhcp, dns, sntp};

/// Every parser of the crate, on `bytes`; the results do not matter, only that they return.
fn parse_everything(bytes: &[u8]) {
    let _ = dhcp::Reply::parse(bytes);
    let _ = dns::Answer::parse(bytes);
    let _ = sntp::transmit_time_unix_ms(bytes);
    let _ = FixedHeader::decode(bytes);
    let _ = Packet::decode(bytes);
    let _ = ConnAck::decode(bytes);
    let _ = PubAck::decode(bytes);
    let _ = SubAck::decode(bytes);
    for flags in 0..16 {
        let _ = Publish::decode(flags, bytes);
    }
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

proptest! {
    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..700)) {
        parse_everything(&bytes);
    }

    /// Random bytes rarely get past the first checks; these do, into the options.
    #[test]
    fn the_dhcp_parser_never_panics_on_arbitrary_options(
        options in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut m = vec![0u8; 236];
        m[0] = 2;
        m.extend_from_slice(&dhcp::MAGIC_COOKIE);
        m.extend_from_slice(&options);
        let _ = dhcp::Reply::parse(&m);
    }

    /// A response header with no error, then arbitrary records.
    #[test]
    fn the_dns_parser_never_panics_on_arbitrary_records(
        counts in any::<[u8; 4]>(),
        records in prop::collection::vec(any::<u8>(), 0..400),
    ) {
        let mut m = vec![0, 1, 0x81, 0x80, 0, counts[0] % 4, 0, counts[1] % 8, 0, counts[2], 0, counts[3]];
        m.extend_from_slice(&records);
        let _ = dns::Answer::parse(&m);
    }

    #[test]
    fn remaining_lengths_round_trip(len in 0..=MAX_REMAINING_LEN, first in any::<u8>()) {
        let mut buf = [0u8; 5];
        buf[0] = first;
        let n = encode_remaining_length(len, &mut buf[1..]).unwrap();
        let header = FixedHeader::decode(&buf[..1 + n]).unwrap();
        prop_assert_eq!(header, FixedHeader { first, remaining_len: len, len: 1 + n });
        // Any shorter prefix is incomplete, never misread.
        for short in 0..=n {
            prop_assert_eq!(FixedHeader::decode(&buf[..short]), Err(DecodeError::Incomplete));
        }
    }

    #[test]
    fn publishes_round_trip(
        topic in prop::collection::vec(any::<u8>(), 0..300),
        payload in prop::collection::vec(any::<u8>(), 0..3000),
        qos in qos(),
        id in 1..=u16::MAX,
        retain in any::<bool>(),
        dup in any::<bool>(),
    ) {
        let publish = Publish {
            topic: &topic,
            qos,
            retain,
            dup,
            packet_id: (qos != QoS::AtMostOnce).then_some(id),
            payload: &payload,
        };
        let mut buf = vec![0u8; 4000];
        let n = publish.encode(&mut buf).unwrap();
        prop_assert_eq!(Packet::decode(&buf[..n]), Ok((Packet::Publish(publish), n)));
        prop_assert_eq!(Packet::decode(&buf[..n - 1]), Err(DecodeError::Incomplete));
    }

    /// An encoder given too little room says so and never writes past its buffer; given
    /// enough, it writes what it writes into a large one.
    #[test]
    fn a_connect_fits_its_buffer_or_is_refused(
        client_id in "[a-z0-9-]{0,40}",
        will_topic in "[a-z/]{1,60}",
        will in prop::collection::vec(any::<u8>(), 0..20),
        user in prop::option::of("[a-z0-9-]{1,32}"),
        password in prop::collection::vec(any::<u8>(), 0..64),
        room in 0usize..300,
    ) {
        let connect = Connect {
            client_id: &client_id,
            keep_alive_s: 60,
            clean_session: false,
            will: Some(Will { topic: &will_topic, payload: &will, qos: QoS::AtLeastOnce, retain: true }),
            password: user.as_ref().map(|_| password.as_slice()),
            user_name: user.as_deref(),
        };
        let mut large = vec![0u8; 1024];
        let n = connect.encode(&mut large).unwrap();
        let header = FixedHeader::decode(&large[..n]).unwrap();
        prop_assert_eq!(header.packet_len(), n);

        let mut small = vec![0u8; room];
        match connect.encode(&mut small) {
            Ok(m) => {
                prop_assert_eq!(m, n);
                prop_assert_eq!(&small[..m], &large[..n]);
            }
            Err(e) => {
                prop_assert_eq!(e, EncodeError::BufferTooSmall);
                prop_assert!(room < n);
            }
        }
    }

    #[test]
    fn a_dns_query_for_a_valid_name_reads_back_as_its_labels(
        labels in prop::collection::vec("[a-z0-9-]{1,20}", 1..6),
        id in any::<u16>(),
    ) {
        let name = labels.join(".");
        let mut buf = [0u8; 512];
        let n = dns::Query { id, name: &name }.encode(&mut buf).unwrap();
        prop_assert_eq!(buf[..2].to_vec(), id.to_be_bytes().to_vec());
        let mut at = 12;
        for label in &labels {
            prop_assert_eq!(usize::from(buf[at]), label.len());
            prop_assert_eq!(&buf[at + 1..at + 1 + label.len()], label.as_bytes());
            at += 1 + label.len();
        }
        prop_assert_eq!(&buf[at..n], &[0, 0, 1, 0, 1]);
    }
}

use weir_netproto::mqtt::{
    encode_remaining_length, ConnAck, Connect, DecodeError, EncodeError, FixedHeader, Packet,
    PacketType, PubAck, Publish, QoS, SubAck, Subscribe, Will, DISCONNECT, MAX_REMAINING_LEN,
    PINGREQ,
};

fn encoded(f: impl FnOnce(&mut [u8]) -> Result<usize, EncodeError>) -> Vec<u8> {
    let mut buf = vec![0xAAu8; 1024];
    let n = f(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

/// A field as MQTT writes strings and binary data: two length bytes, then the bytes.
fn field(bytes: &[u8]) -> Vec<u8> {
    let mut v = (bytes.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(bytes);
    v
}

fn node_connect<'a>(will: &'a [u8]) -> Connect<'a> {
    Connect {
        client_id: "weir-node-lv-017",
        keep_alive_s: 60,
        clean_session: false,
        will: Some(Will {
            topic: "weir/terminals/lv-017/status",
            payload: will,
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
        user_name: Some("lv-017"),
        password: Some(b"s3cret"),
    }
}

// --- CONNECT (3.1) ---

#[test]
fn a_connect_with_will_user_and_password_follows_the_spec_layout_byte_by_byte() {
    let will = [0x01, 0x02];
    let bytes = encoded(|b| node_connect(&will).encode(b));
    #[rustfmt::skip]
    let variable_header = [
        0x00, 0x04, b'M', b'Q', b'T', b'T', // protocol name
        0x04,                               // protocol level: 3.1.1
        0b1110_1100,                        // user name, password, will retain, will QoS 1,
                                            // will flag; clean session 0, reserved 0
        0x00, 0x3C,                         // keep alive: 60 s
    ];
    // The payload: client id, will topic, will message, user name, password.
    let payload = [
        field(b"weir-node-lv-017"),
        field(b"weir/terminals/lv-017/status"),
        field(&will),
        field(b"lv-017"),
        field(b"s3cret"),
    ]
    .concat();
    let remaining = variable_header.len() + payload.len();
    assert_eq!(remaining, 78);
    let expected = [&[0x10, 78][..], &variable_header, &payload].concat();
    assert_eq!(bytes, expected);
}

#[test]
fn the_connect_flags_and_keep_alive_match_the_specs_example() {
    // 3.1.2.10's example: user name, password, will QoS 1, will flag, clean session;
    // keep alive 10 s.
    let connect = Connect {
        client_id: "c",
        keep_alive_s: 10,
        clean_session: true,
        will: Some(Will {
            topic: "t",
            payload: b"w",
            qos: QoS::AtLeastOnce,
            retain: false,
        }),
        user_name: Some("u"),
        password: Some(b"p"),
    };
    let bytes = encoded(|b| connect.encode(b));
    assert_eq!(bytes[2..12], [0, 4, b'M', b'Q', b'T', b'T', 4, 0xCE, 0, 10]);
}

#[test]
fn a_connect_with_only_a_client_id_is_the_shortest() {
    let connect = Connect {
        client_id: "a",
        keep_alive_s: 0,
        clean_session: true,
        will: None,
        user_name: None,
        password: None,
    };
    assert_eq!(
        encoded(|b| connect.encode(b)),
        [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 1, b'a']
    );
}

#[test]
fn a_will_at_qos_2_sets_both_will_qos_bits() {
    let mut connect = node_connect(b"x");
    connect.will.as_mut().unwrap().qos = QoS::ExactlyOnce;
    connect.will.as_mut().unwrap().retain = false;
    assert_eq!(encoded(|b| connect.encode(b))[9], 0b1101_0100);
}

#[test]
fn a_password_without_a_user_name_is_refused() {
    let connect = Connect {
        user_name: None,
        ..node_connect(b"x")
    };
    assert_eq!(
        connect.encode(&mut [0; 256]),
        Err(EncodeError::PasswordWithoutUserName)
    );
}

#[test]
fn a_string_over_65535_bytes_is_refused() {
    let long = "x".repeat(65_536);
    let connect = Connect {
        client_id: &long,
        ..node_connect(b"x")
    };
    assert_eq!(
        connect.encode(&mut vec![0; 70_000]),
        Err(EncodeError::StringTooLong)
    );
    let fits = "x".repeat(65_535);
    let connect = Connect {
        client_id: &fits,
        ..node_connect(b"x")
    };
    assert!(connect.encode(&mut vec![0; 70_000]).is_ok());
}

#[test]
fn a_buffer_one_byte_short_of_a_connect_is_refused() {
    let connect = node_connect(b"offline");
    let n = encoded(|b| connect.encode(b)).len();
    let mut buf = vec![0; n];
    assert_eq!(connect.encode(&mut buf), Ok(n));
    assert_eq!(
        connect.encode(&mut buf[..n - 1]),
        Err(EncodeError::BufferTooSmall)
    );
}

// --- CONNACK (3.2) ---

#[test]
fn a_connack_gives_its_return_code_and_session_present_flag() {
    let (packet, len) = Packet::decode(&[0x20, 2, 0x01, 0x00]).unwrap();
    assert_eq!(len, 4);
    let Packet::ConnAck(ack) = packet else {
        panic!("{packet:?}")
    };
    assert!(ack.session_present && ack.accepted());

    let refused = ConnAck::decode(&[0x00, 0x04]).unwrap();
    assert_eq!(refused.return_code, 4, "bad user name or password");
    assert!(!refused.session_present && !refused.accepted());
}

#[test]
fn a_connack_shorter_than_two_bytes_is_refused() {
    assert_eq!(ConnAck::decode(&[0]), Err(DecodeError::Truncated));
    assert_eq!(Packet::decode(&[0x20, 1, 0]), Err(DecodeError::Truncated));
}

// --- the fixed header and its remaining length (2.2) ---

#[test]
fn remaining_lengths_at_the_edges_encode_as_in_the_specs_table() {
    let table: [(usize, &[u8]); 9] = [
        (0, &[0x00]),
        (127, &[0x7F]),
        (128, &[0x80, 0x01]),
        (321, &[0xC1, 0x02]),
        (16_383, &[0xFF, 0x7F]),
        (16_384, &[0x80, 0x80, 0x01]),
        (2_097_151, &[0xFF, 0xFF, 0x7F]),
        (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
        (268_435_455, &[0xFF, 0xFF, 0xFF, 0x7F]),
    ];
    for (len, bytes) in table {
        let mut buf = [0u8; 4];
        let n = encode_remaining_length(len, &mut buf).unwrap();
        assert_eq!(&buf[..n], bytes, "{len}");

        let header = FixedHeader::decode(&[&[0x30][..], bytes].concat()).unwrap();
        assert_eq!(header.remaining_len, len);
        assert_eq!(header.len, 1 + bytes.len());
    }
}

#[test]
fn a_remaining_length_over_the_maximum_or_without_room_is_refused() {
    let mut buf = [0u8; 4];
    assert_eq!(
        encode_remaining_length(MAX_REMAINING_LEN + 1, &mut buf),
        Err(EncodeError::PacketTooLong)
    );
    assert_eq!(
        encode_remaining_length(128, &mut buf[..1]),
        Err(EncodeError::BufferTooSmall)
    );
}

#[test]
fn a_fixed_header_arriving_a_byte_at_a_time_is_incomplete_until_its_last_length_byte() {
    let bytes = [0x32, 0xFF, 0xFF, 0x7F];
    for len in 0..bytes.len() {
        assert_eq!(
            FixedHeader::decode(&bytes[..len]),
            Err(DecodeError::Incomplete),
            "{len}"
        );
    }
    let header = FixedHeader::decode(&bytes).unwrap();
    assert_eq!(
        header,
        FixedHeader {
            first: 0x32,
            remaining_len: 2_097_151,
            len: 4
        }
    );
    assert_eq!(header.packet_type(), Some(PacketType::Publish));
    assert_eq!(header.flags(), 0x02);
    assert_eq!(header.packet_len(), 2_097_155);
}

#[test]
fn a_fifth_length_byte_is_malformed() {
    assert_eq!(
        FixedHeader::decode(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF]),
        Err(DecodeError::MalformedRemainingLength)
    );
    assert_eq!(
        FixedHeader::decode(&[0x30, 0x80, 0x80, 0x80, 0x80, 0x01]),
        Err(DecodeError::MalformedRemainingLength)
    );
}

#[test]
fn a_non_minimal_remaining_length_is_read() {
    let header = FixedHeader::decode(&[0xD0, 0x80, 0x00]).unwrap();
    assert_eq!((header.remaining_len, header.len), (0, 3));
}

#[test]
fn reserved_packet_types_are_refused() {
    let header = FixedHeader::decode(&[0xF0, 0]).unwrap();
    assert_eq!(header.packet_type(), None);
    assert_eq!(
        Packet::decode(&[0x00, 0]),
        Err(DecodeError::ReservedPacketType)
    );
    assert_eq!(
        Packet::decode(&[0xF0, 0]),
        Err(DecodeError::ReservedPacketType)
    );
}

// --- PUBLISH (3.3) and PUBACK (3.4) ---

#[test]
fn a_qos_1_publish_has_the_topic_then_the_packet_id_then_the_payload() {
    let publish = Publish {
        topic: b"a/b",
        qos: QoS::AtLeastOnce,
        retain: true,
        dup: false,
        packet_id: Some(10),
        payload: b"hi",
    };
    assert_eq!(
        encoded(|b| publish.encode(b)),
        [0x33, 9, 0, 3, b'a', b'/', b'b', 0, 10, b'h', b'i']
    );
}

#[test]
fn a_qos_0_publish_has_no_packet_id_and_dup_sets_bit_3() {
    let publish = Publish {
        topic: b"t",
        qos: QoS::AtMostOnce,
        retain: false,
        dup: true,
        packet_id: None,
        payload: &[7],
    };
    assert_eq!(encoded(|b| publish.encode(b)), [0x38, 4, 0, 1, b't', 7]);
}

#[test]
fn the_publish_header_is_the_packet_without_its_payload() {
    let payload = [0x5A; 300];
    let publish = Publish {
        topic: b"weir/terminals/lv-017/telemetry",
        qos: QoS::AtLeastOnce,
        retain: false,
        dup: false,
        packet_id: Some(0x0102),
        payload: &payload,
    };
    let whole = encoded(|b| publish.encode(b));
    let head = encoded(|b| publish.encode_header(b));
    assert_eq!(head.len() + payload.len(), whole.len());
    assert_eq!(whole[..head.len()], head[..]);
    // 300 + 2 + 31 + 2 bytes after the header: two length bytes.
    assert_eq!(head[..3], [0x32, 0xCF, 0x02]);
}

#[test]
fn a_received_qos_1_publish_gives_its_topic_packet_id_and_payload() {
    let bytes = [0x32, 9, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'o', b'k'];
    let (packet, len) = Packet::decode(&bytes).unwrap();
    assert_eq!(len, bytes.len());
    assert_eq!(
        packet,
        Packet::Publish(Publish {
            topic: b"a/b",
            qos: QoS::AtLeastOnce,
            retain: false,
            dup: false,
            packet_id: Some(0x1234),
            payload: b"ok",
        })
    );
}

#[test]
fn a_publish_round_trips_through_encode_and_decode() {
    for (qos, packet_id) in [
        (QoS::AtMostOnce, None),
        (QoS::AtLeastOnce, Some(1)),
        (QoS::ExactlyOnce, Some(65_535)),
    ] {
        let publish = Publish {
            topic: b"weir/terminals/lv-017/config",
            qos,
            retain: true,
            dup: qos == QoS::ExactlyOnce,
            packet_id,
            payload: b"{\"sample_s\":60}",
        };
        let bytes = encoded(|b| publish.encode(b));
        assert_eq!(
            Packet::decode(&bytes),
            Ok((Packet::Publish(publish), bytes.len()))
        );
    }
}

#[test]
fn a_publish_with_qos_3_is_refused() {
    assert_eq!(
        Packet::decode(&[0x36, 5, 0, 1, b't', 0, 1]),
        Err(DecodeError::InvalidQoS)
    );
    assert_eq!(
        Publish::decode(0x06, &[0, 1, b't', 0, 1]),
        Err(DecodeError::InvalidQoS)
    );
}

#[test]
fn a_publish_whose_topic_or_packet_id_runs_past_its_body_is_refused() {
    assert_eq!(Publish::decode(0x00, &[]), Err(DecodeError::Truncated));
    assert_eq!(Publish::decode(0x00, &[0]), Err(DecodeError::Truncated));
    assert_eq!(
        Publish::decode(0x00, &[0, 4, b'a', b'b', b'c']),
        Err(DecodeError::Truncated)
    );
    // QoS 1: the topic is all there, the packet id is not.
    assert_eq!(
        Publish::decode(0x02, &[0, 1, b't', 0]),
        Err(DecodeError::Truncated)
    );
    // At QoS 0 the same bytes are a topic and a one-byte payload.
    assert_eq!(
        Publish::decode(0x00, &[0, 1, b't', 0]).unwrap().payload,
        [0]
    );
}

#[test]
fn packet_ids_that_do_not_go_with_the_qos_are_refused() {
    let base = Publish {
        topic: b"t",
        qos: QoS::AtLeastOnce,
        retain: false,
        dup: false,
        packet_id: Some(1),
        payload: b"",
    };
    let mut buf = [0u8; 16];
    for wrong in [
        Publish {
            packet_id: None,
            ..base
        },
        Publish {
            packet_id: Some(0),
            ..base
        },
        Publish {
            qos: QoS::AtMostOnce,
            ..base
        },
    ] {
        assert_eq!(
            wrong.encode(&mut buf),
            Err(EncodeError::InvalidPacketId),
            "{wrong:?}"
        );
    }
    assert!(base.encode(&mut buf).is_ok());
}

#[test]
fn a_publish_split_across_reads_is_incomplete_until_its_last_byte() {
    let bytes = [0x32, 9, 0, 3, b'a', b'/', b'b', 0x12, 0x34, b'o', b'k'];
    for len in 0..bytes.len() {
        assert_eq!(
            Packet::decode(&bytes[..len]),
            Err(DecodeError::Incomplete),
            "{len}"
        );
    }
}

#[test]
fn a_puback_is_four_bytes_carrying_the_packet_id() {
    let ack = PubAck { packet_id: 0x1234 };
    assert_eq!(ack.to_bytes(), [0x40, 2, 0x12, 0x34]);
    assert_eq!(
        Packet::decode(&ack.to_bytes()),
        Ok((Packet::PubAck(ack), 4))
    );
    assert_eq!(PubAck::decode(&[0x12]), Err(DecodeError::Truncated));
}

// --- SUBSCRIBE (3.8) and SUBACK (3.9) ---

#[test]
fn a_subscribe_has_the_reserved_flags_0010_and_one_qos_byte_per_filter() {
    let filters = [("a/b", QoS::AtLeastOnce), ("c", QoS::AtMostOnce)];
    let subscribe = Subscribe {
        packet_id: 1,
        filters: &filters,
    };
    #[rustfmt::skip]
    let expected = [
        0x82, 12,
        0, 1,                               // packet id
        0, 3, b'a', b'/', b'b', 1,          // filter, QoS 1
        0, 1, b'c', 0,                      // filter, QoS 0
    ];
    assert_eq!(encoded(|b| subscribe.encode(b)), expected);
}

#[test]
fn a_subscribe_without_filters_or_with_packet_id_0_is_refused() {
    let mut buf = [0u8; 64];
    let none = Subscribe {
        packet_id: 1,
        filters: &[],
    };
    assert_eq!(none.encode(&mut buf), Err(EncodeError::NoTopicFilters));
    let zero = Subscribe {
        packet_id: 0,
        filters: &[("a", QoS::AtLeastOnce)],
    };
    assert_eq!(zero.encode(&mut buf), Err(EncodeError::InvalidPacketId));
}

#[test]
fn a_suback_gives_one_return_code_per_filter() {
    let (packet, _) = Packet::decode(&[0x90, 4, 0, 7, 1, 0]).unwrap();
    let Packet::SubAck(ack) = packet else {
        panic!("{packet:?}")
    };
    assert_eq!(ack.packet_id, 7);
    assert_eq!(ack.return_codes, [1, 0]);
    assert!(ack.all_granted());
}

#[test]
fn a_suback_with_a_failure_code_is_not_all_granted() {
    let ack = SubAck::decode(&[0, 7, 1, SubAck::FAILURE]).unwrap();
    assert!(!ack.all_granted());
}

#[test]
fn a_suback_without_return_codes_is_refused() {
    assert_eq!(SubAck::decode(&[0, 7]), Err(DecodeError::Truncated));
    assert_eq!(SubAck::decode(&[0]), Err(DecodeError::Truncated));
}

// --- PINGREQ, PINGRESP, DISCONNECT, and what a client does not read ---

#[test]
fn pingreq_and_disconnect_are_two_bytes_each() {
    assert_eq!(PINGREQ, [0xC0, 0x00]);
    assert_eq!(DISCONNECT, [0xE0, 0x00]);
}

#[test]
fn a_pingresp_is_read() {
    assert_eq!(Packet::decode(&[0xD0, 0]), Ok((Packet::PingResp, 2)));
}

#[test]
fn packets_a_client_does_not_read_are_passed_over_with_their_length() {
    assert_eq!(
        Packet::decode(&[0xB0, 2, 0, 5, 0xFF]),
        Ok((Packet::Other(PacketType::UnsubAck), 4))
    );
}

#[test]
fn packets_one_after_the_other_in_a_buffer_are_read_in_turn() {
    let stream = [0x20, 2, 0, 0, 0x90, 3, 0, 1, 1, 0xD0, 0];
    let mut rest = &stream[..];
    let mut seen = Vec::new();
    while !rest.is_empty() {
        let (packet, len) = Packet::decode(rest).unwrap();
        seen.push(packet);
        rest = &rest[len..];
    }
    assert_eq!(
        seen,
        [
            Packet::ConnAck(ConnAck {
                session_present: false,
                return_code: 0
            }),
            Packet::SubAck(SubAck {
                packet_id: 1,
                return_codes: &[1]
            }),
            Packet::PingResp,
        ]
    );
}

#[test]
fn packet_types_map_to_their_codes_and_back() {
    for code in 1..=14 {
        assert_eq!(PacketType::from_code(code).unwrap() as u8, code);
    }
    assert_eq!(PacketType::from_code(0), None);
    assert_eq!(PacketType::from_code(15), None);
    for code in 0..=2 {
        assert_eq!(QoS::from_code(code).unwrap() as u8, code);
    }
    assert_eq!(QoS::from_code(3), None);
}

use weir_netproto::dhcp::{
    ClientMessage, EncodeError, MessageType, ParseError, Reply, MAGIC_COOKIE, MIN_MESSAGE_LEN,
};

const XID: u32 = 0x3903_F326;
const MAC: [u8; 6] = [0x02, 0x00, 0x5E, 0x10, 0x20, 0x30];

fn discover() -> ClientMessage<'static> {
    ClientMessage {
        message_type: MessageType::Discover,
        xid: XID,
        mac: MAC,
        client_ip: None,
        requested_ip: None,
        server_id: None,
        hostname: "lv-017",
    }
}

fn encode(message: &ClientMessage<'_>) -> Vec<u8> {
    let mut buf = [0xAAu8; 576];
    let n = message.encode(&mut buf).unwrap();
    buf[..n].to_vec()
}

/// The options of an encoded client message: from the cookie to the END option.
fn options(m: &[u8]) -> &[u8] {
    let end = 240 + m[240..].iter().position(|&b| b == 255).unwrap();
    &m[240..=end]
}

/// A server's reply to `XID` for `MAC`: BOOTP fixed fields, the magic cookie, then `options`.
fn reply(your_ip: [u8; 4], options: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 2; // BOOTREPLY
    m[1] = 1; // Ethernet
    m[2] = 6;
    m[4..8].copy_from_slice(&XID.to_be_bytes());
    m[10] = 0x80;
    m[16..20].copy_from_slice(&your_ip);
    m[20..24].copy_from_slice(&[192, 168, 1, 1]); // siaddr
    m[28..34].copy_from_slice(&MAC);
    m.extend_from_slice(&MAGIC_COOKIE);
    m.extend_from_slice(options);
    m
}

#[test]
fn a_discover_has_the_bootp_fields_the_magic_cookie_and_its_options_in_order() {
    let m = encode(&discover());
    assert_eq!(m.len(), MIN_MESSAGE_LEN);
    // op BOOTREQUEST, htype Ethernet, hlen 6, hops 0; xid; secs 0; flags: broadcast.
    assert_eq!(m[..12], [1, 1, 6, 0, 0x39, 0x03, 0xF3, 0x26, 0, 0, 0x80, 0]);
    // ciaddr, yiaddr, siaddr, giaddr all zero.
    assert_eq!(m[12..28], [0; 16]);
    assert_eq!(m[28..34], MAC);
    // The rest of chaddr, sname and file are zero.
    assert!(m[34..236].iter().all(|&b| b == 0));
    assert_eq!(m[236..240], [99, 130, 83, 99]);
    #[rustfmt::skip]
    let expected: &[u8] = &[
        53, 1, 1,                                   // DHCPDISCOVER
        12, 6, b'l', b'v', b'-', b'0', b'1', b'7',  // host name
        55, 4, 1, 3, 6, 51,                         // mask, router, DNS, lease time
        255,
    ];
    assert_eq!(options(&m), expected);
    // Padded with zeros (the buffer held 0xAA).
    assert!(m[240 + expected.len()..].iter().all(|&b| b == 0));
}

#[test]
fn a_request_answering_an_offer_names_the_offered_address_and_the_server() {
    let request = ClientMessage {
        message_type: MessageType::Request,
        requested_ip: Some([192, 168, 1, 57]),
        server_id: Some([192, 168, 1, 1]),
        ..discover()
    };
    let m = encode(&request);
    assert_eq!(m[12..16], [0; 4], "ciaddr stays zero while binding");
    #[rustfmt::skip]
    let expected: &[u8] = &[
        53, 1, 3,
        50, 4, 192, 168, 1, 57,
        54, 4, 192, 168, 1, 1,
        12, 6, b'l', b'v', b'-', b'0', b'1', b'7',
        55, 4, 1, 3, 6, 51,
        255,
    ];
    assert_eq!(options(&m), expected);
}

#[test]
fn a_renewal_carries_the_address_in_ciaddr_and_no_requested_address() {
    let renew = ClientMessage {
        message_type: MessageType::Request,
        client_ip: Some([10, 0, 0, 23]),
        ..discover()
    };
    let m = encode(&renew);
    assert_eq!(m[12..16], [10, 0, 0, 23]);
    assert_eq!(options(&m)[..3], [53, 1, 3]);
    assert_eq!(
        options(&m)[3],
        12,
        "the host name follows the type directly"
    );
}

#[test]
fn an_empty_host_name_leaves_its_option_out() {
    let m = encode(&ClientMessage {
        hostname: "",
        ..discover()
    });
    assert_eq!(options(&m), [53, 1, 1, 55, 4, 1, 3, 6, 51, 255]);
    let m = encode(&ClientMessage {
        hostname: "a",
        ..discover()
    });
    assert_eq!(
        options(&m),
        [53, 1, 1, 12, 1, b'a', 55, 4, 1, 3, 6, 51, 255]
    );
}

#[test]
fn a_message_longer_than_the_minimum_is_not_padded() {
    let name = "n".repeat(100);
    let m = encode(&ClientMessage {
        hostname: &name,
        ..discover()
    });
    assert_eq!(m.len(), 240 + 3 + (2 + 100) + 6 + 1);
    assert_eq!(*m.last().unwrap(), 255);
}

#[test]
fn a_host_name_over_255_bytes_is_refused() {
    let mut buf = [0u8; 1024];
    let fits = "h".repeat(255);
    assert!(ClientMessage {
        hostname: &fits,
        ..discover()
    }
    .encode(&mut buf)
    .is_ok());
    let name = "h".repeat(256);
    let long = ClientMessage {
        hostname: &name,
        ..discover()
    };
    assert_eq!(long.encode(&mut buf), Err(EncodeError::HostnameTooLong));
}

#[test]
fn a_buffer_smaller_than_the_padded_message_is_refused() {
    let mut buf = [0u8; MIN_MESSAGE_LEN];
    assert_eq!(discover().encode(&mut buf), Ok(MIN_MESSAGE_LEN));
    assert_eq!(
        discover().encode(&mut buf[..MIN_MESSAGE_LEN - 1]),
        Err(EncodeError::BufferTooSmall)
    );
    assert_eq!(discover().encode(&mut []), Err(EncodeError::BufferTooSmall));
}

#[test]
fn a_dhcp_offer_with_options_out_of_order_yields_the_offered_address() {
    #[rustfmt::skip]
    let m = reply([192, 168, 1, 57], &[
        54, 4, 192, 168, 1, 1,                  // server identifier
        51, 4, 0x00, 0x01, 0x51, 0x80,          // lease time: 86,400 s
        0, 0, 0,                                // pads (an odd number: each is one byte)
        6, 8, 192, 168, 1, 1, 8, 8, 8, 8,       // two DNS servers
        15, 4, b'h', b'o', b'm', b'e',          // domain name: not read
        3, 4, 192, 168, 1, 254,                 // router
        1, 4, 255, 255, 255, 0,                 // subnet mask
        53, 1, 2,                               // DHCPOFFER, last
        255,
        0, 0, 0, 0,                             // padding after END
    ]);
    let r = Reply::parse(&m).unwrap();
    assert_eq!(
        r,
        Reply {
            message_type: MessageType::Offer,
            xid: XID,
            client_mac: MAC,
            your_ip: [192, 168, 1, 57],
            subnet_mask: Some([255, 255, 255, 0]),
            router: Some([192, 168, 1, 254]),
            dns_server: Some([192, 168, 1, 1]),
            server_id: Some([192, 168, 1, 1]),
            lease_time_s: Some(86_400),
        }
    );
}

#[test]
fn an_ack_without_optional_options_leaves_them_unset() {
    let r = Reply::parse(&reply([10, 1, 2, 3], &[53, 1, 5, 255])).unwrap();
    assert_eq!(r.message_type, MessageType::Ack);
    assert_eq!(r.your_ip, [10, 1, 2, 3]);
    assert_eq!(
        (
            r.subnet_mask,
            r.router,
            r.dns_server,
            r.server_id,
            r.lease_time_s
        ),
        (None, None, None, None, None)
    );
}

#[test]
fn a_nak_is_read_as_one() {
    let r = Reply::parse(&reply([0; 4], &[53, 1, 6, 54, 4, 10, 0, 0, 1, 255])).unwrap();
    assert_eq!(r.message_type, MessageType::Nak);
    assert_eq!(r.server_id, Some([10, 0, 0, 1]));
}

#[test]
fn a_repeated_option_counts_by_its_last_occurrence() {
    let m = reply(
        [10, 0, 0, 9],
        &[51, 4, 0, 0, 0, 60, 53, 1, 2, 51, 4, 0, 0, 1, 0, 255],
    );
    assert_eq!(Reply::parse(&m).unwrap().lease_time_s, Some(256));
}

#[test]
fn options_without_an_end_stop_at_the_end_of_the_datagram() {
    // No END option, and a lone code byte with no length after it.
    let m = reply([10, 0, 0, 9], &[53, 1, 2, 3, 4, 10, 0, 0, 1, 42]);
    let r = Reply::parse(&m).unwrap();
    assert_eq!(r.router, Some([10, 0, 0, 1]));
}

#[test]
fn options_after_end_are_not_read() {
    let m = reply([10, 0, 0, 9], &[53, 1, 2, 255, 3, 4, 10, 0, 0, 1]);
    assert_eq!(Reply::parse(&m).unwrap().router, None);
}

#[test]
fn a_datagram_shorter_than_the_fixed_fields_and_cookie_is_refused() {
    let m = reply([10, 0, 0, 9], &[]);
    assert_eq!(m.len(), 240);
    assert_eq!(Reply::parse(&m[..239]), Err(ParseError::TooShort));
    assert_eq!(Reply::parse(&[]), Err(ParseError::TooShort));
    assert_eq!(Reply::parse(&m), Err(ParseError::NoMessageType));
}

#[test]
fn a_client_message_is_not_a_reply() {
    assert_eq!(
        Reply::parse(&encode(&discover())),
        Err(ParseError::NotAReply)
    );
}

#[test]
fn a_reply_without_the_magic_cookie_is_plain_bootp_and_refused() {
    let mut m = reply([10, 0, 0, 9], &[53, 1, 2, 255]);
    m[239] ^= 1;
    assert_eq!(Reply::parse(&m), Err(ParseError::NoMagicCookie));
}

#[test]
fn an_option_running_past_the_end_is_refused() {
    let m = reply([10, 0, 0, 9], &[53, 1, 2, 6, 8, 192, 168, 1, 1]);
    assert_eq!(
        Reply::parse(&m),
        Err(ParseError::OptionTruncated { code: 6 })
    );
}

#[test]
fn an_address_option_shorter_than_four_bytes_is_refused() {
    let m = reply([10, 0, 0, 9], &[53, 1, 2, 1, 3, 255, 255, 255, 255]);
    assert_eq!(
        Reply::parse(&m),
        Err(ParseError::OptionTooShort { code: 1 })
    );
    let m = reply([10, 0, 0, 9], &[53, 0, 255]);
    assert_eq!(
        Reply::parse(&m),
        Err(ParseError::OptionTooShort { code: 53 })
    );
}

#[test]
fn a_reply_without_a_known_message_type_is_refused() {
    let m = reply([10, 0, 0, 9], &[1, 4, 255, 255, 255, 0, 255]);
    assert_eq!(Reply::parse(&m), Err(ParseError::NoMessageType));
    let m = reply([10, 0, 0, 9], &[53, 1, 9, 255]);
    assert_eq!(Reply::parse(&m), Err(ParseError::UnknownMessageType(9)));
}

#[test]
fn message_types_map_to_their_rfc_2131_codes_and_back() {
    for code in 1..=8 {
        assert_eq!(MessageType::from_code(code).unwrap() as u8, code);
    }
    assert_eq!(MessageType::from_code(0), None);
    assert_eq!(MessageType::from_code(9), None);
}

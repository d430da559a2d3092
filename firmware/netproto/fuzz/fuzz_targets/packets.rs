//! Any bytes as what the board receives: the first byte picks the parser (0: DHCP reply,
//! 1: DNS response, 2: SNTP reply, else: a stream of MQTT packets from the broker), the rest
//! is the datagram or the stream. No panic; MQTT packets are consumed in order, each within
//! the bytes given, and a PUBLISH read (but one with packet id 0, which is read leniently and
//! never sent) encodes again to a packet that reads back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_netproto::mqtt::Packet;
use weir_netproto::{dhcp, dns, sntp};

fuzz_target!(|data: &[u8]| {
    let [which, rest @ ..] = data else {
        return;
    };
    match which {
        0 => {
            let _ = dhcp::Reply::parse(rest);
        }
        1 => {
            let _ = dns::Answer::parse(rest);
        }
        2 => {
            let _ = sntp::transmit_time_unix_ms(rest);
        }
        _ => {
            let mut at = 0;
            while let Ok((packet, len)) = Packet::decode(&rest[at..]) {
                assert!(len > 0 && len <= rest.len() - at, "{len} bytes read");
                at += len;
                // A packet id of 0 is read (a lenient receiver) but never sent.
                match packet {
                    Packet::Publish(p) if p.packet_id != Some(0) => {}
                    _ => continue,
                }
                if let Packet::Publish(publish) = packet {
                    let mut buf = vec![0u8; len + 16];
                    let n = publish.encode(&mut buf).expect("a PUBLISH read encodes");
                    let (again, m) = Packet::decode(&buf[..n]).expect("and reads back");
                    assert_eq!(m, n);
                    assert_eq!(again, Packet::Publish(publish));
                }
            }
        }
    }
});

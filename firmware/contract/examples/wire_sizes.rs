//! Prints bytes per reading for both encodings, with MQTT overhead, for docs/protocol.md.
//!
//! `cargo run -p weir-contract --example wire_sizes`

use weir_contract::topic::{self, Channel};
use weir_contract::{Encoding, Message, Quantity, Reading, Telemetry, TerminalId, Timestamp};

/// MQTT 3.1.1 bytes around a QoS 1 PUBLISH of `payload` bytes on `topic`, plus its PUBACK.
fn mqtt_overhead(topic: &str, payload: usize) -> usize {
    let variable = 2 + topic.len() + 2; // topic length prefix, topic, packet identifier
    let remaining = variable + payload;
    let length_bytes = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        _ => 3,
    };
    1 + length_bytes + variable + 4 // fixed header byte, remaining length, PUBACK
}

fn batch(n: usize) -> Telemetry {
    let mut t = Telemetry {
        boot: 7,
        seq: 1042,
        readings: Default::default(),
    };
    for i in 0..n {
        let r = Reading::new(Timestamp::from_unix(1_795_333_200 + 60 * i as i64))
            .with(Quantity::Flow, 1.52)
            .with(Quantity::Volume, 10_234.5 + 0.03 * i as f64)
            .with(Quantity::Turbidity, 3.4)
            .with(Quantity::Sludge, 41.5)
            .with(Quantity::Supply, 12.1)
            .with(Quantity::Rssi, -71.0);
        t.readings.push(r).expect("batch within MAX_READINGS");
    }
    t
}

fn main() {
    let id = TerminalId::new("HY-001").expect("valid id");
    let topic = topic::topic(topic::DEFAULT_PREFIX, &id, Channel::Telemetry).expect("topic");
    let mut buf = vec![0u8; weir_contract::MAX_PAYLOAD];
    println!("| readings per message | encoding | payload B | with MQTT B | B per reading |");
    println!("|---:|---|---:|---:|---:|");
    for n in [1, 5, 60] {
        let t = batch(n);
        for (name, enc) in [("binary", Encoding::Binary), ("JSON", Encoding::Json)] {
            let payload = t.encode(enc, &mut buf).expect("encodes");
            let total = payload + mqtt_overhead(&topic, payload);
            println!(
                "| {n} | {name} | {payload} | {total} | {:.1} |",
                total as f64 / n as f64
            );
        }
    }
}

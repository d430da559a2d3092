//! Property tests: both encodings round-trip, and no input makes a decoder panic.

use proptest::prelude::*;
use weir_contract::{
    decode_json_as_no_std, widen, Ack, Calibration, Encoding, Fault, Message, NodeConfig,
    NodeState, Quantity, Reading, Sample, Status, Telemetry, Timestamp, FIRMWARE_LEN, MAX_READINGS,
};

/// A value as a node would send it: an f32 reading, widened the way the receiver widens it.
fn value(q: Quantity) -> impl Strategy<Value = f64> {
    let (lo, hi) = q.range();
    (lo as f32..=hi as f32).prop_map(widen)
}

fn sample(q: Quantity) -> impl Strategy<Value = Option<Sample>> {
    prop_oneof![
        Just(None),
        value(q).prop_map(|v| Some(Sample::Value(v))),
        proptest::sample::select(Fault::ALL.to_vec()).prop_map(|f| Some(Sample::Fault(f))),
    ]
}

fn telemetry() -> impl Strategy<Value = Telemetry> {
    let reading = (1u32..86_400, Quantity::ALL.map(sample));
    (
        any::<u32>(),
        any::<u32>(),
        1_577_836_800i64..2_000_000_000,
        prop::collection::vec(reading, 1..=MAX_READINGS),
    )
        .prop_map(|(boot, seq, start, rs)| {
            let mut t = Telemetry {
                boot,
                seq,
                readings: Default::default(),
            };
            let mut ts = start;
            for (dt, samples) in rs {
                ts += i64::from(dt);
                let mut r = Reading::new(Timestamp::from_unix(ts));
                for (q, s) in Quantity::ALL.into_iter().zip(samples) {
                    r.set(q, s);
                }
                t.readings.push(r).unwrap();
            }
            t
        })
}

/// Any status a node may send: either state, each optional field absent or any value, the
/// firmware version any text that fits (quotes, backslashes, control characters, CJK).
fn status() -> impl Strategy<Value = Status> {
    let firmware = r#"\PC{0,24}|["\\\x00-\x1fa-z]{0,24}"#.prop_map(|text: String| {
        let mut s = heapless::String::<FIRMWARE_LEN>::new();
        for c in text.chars() {
            if s.push(c).is_err() {
                break;
            }
        }
        s
    });
    (
        prop_oneof![Just(NodeState::Online), Just(NodeState::Offline)],
        proptest::option::of(firmware),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
        proptest::option::of(any::<u32>()),
    )
        .prop_map(
            |(state, firmware, boot, buffered, dropped, uptime_s)| Status {
                state,
                firmware,
                boot,
                buffered,
                dropped,
                uptime_s,
            },
        )
}

/// A finite number of any magnitude, or a short decimal as people write them.
fn finite() -> impl Strategy<Value = f64> {
    prop_oneof![
        any::<f64>().prop_filter("finite", |v| v.is_finite()),
        (-100_000i32..100_000).prop_map(|n| f64::from(n) / 100.0),
    ]
}

/// Any configuration that passes validation: every setting anywhere in its range, each
/// quantity with or without a calibration.
fn node_config() -> impl Strategy<Value = NodeConfig> {
    let calibration = || {
        (
            finite(),
            finite().prop_filter("non-zero scale", |s| *s != 0.0),
        )
            .prop_map(|(offset, scale)| Calibration { offset, scale })
    };
    (
        10u32..=3600,
        0u32..=86_400,
        Quantity::ALL.map(|_| proptest::option::of(calibration())),
        proptest::option::of(0.2f64..=20.0),
        proptest::option::of(0.2f64..=25.0),
    )
        .prop_map(|(sample, publish, calibrations, tank, sensor)| {
            let mut cfg = NodeConfig {
                sample_interval_s: sample,
                // From the sample interval to a day.
                publish_interval_s: sample + publish % (86_400 - sample + 1),
                tank_depth_m: tank,
                sensor_height_m: sensor,
                ..Default::default()
            };
            for (q, c) in Quantity::ALL.into_iter().zip(calibrations) {
                cfg.calibration.set(q, c);
            }
            cfg
        })
}

proptest! {
    #[test]
    fn telemetry_round_trips_in_both_encodings(t in telemetry()) {
        let mut buf = vec![0u8; weir_contract::MAX_PAYLOAD];
        for enc in [Encoding::Binary, Encoding::Json] {
            let n = t.encode(enc, &mut buf).unwrap();
            prop_assert!(n <= weir_contract::MAX_PAYLOAD);
            prop_assert_eq!(Encoding::detect(&buf[..n]).unwrap(), enc);
            prop_assert_eq!(&Telemetry::decode(&buf[..n]).unwrap(), &t);
        }
    }

    #[test]
    fn ack_round_trips_in_both_encodings(boot: u32, seq: u32) {
        let ack = Ack { boot, seq };
        let mut buf = [0u8; 64];
        for enc in [Encoding::Binary, Encoding::Json] {
            let n = ack.encode(enc, &mut buf).unwrap();
            prop_assert_eq!(Ack::decode(&buf[..n]).unwrap(), ack);
        }
    }

    #[test]
    fn status_round_trips_in_both_encodings(status in status()) {
        let mut buf = [0u8; 512];
        for enc in [Encoding::Binary, Encoding::Json] {
            let n = status.encode(enc, &mut buf).unwrap();
            prop_assert_eq!(Encoding::detect(&buf[..n]).unwrap(), enc);
            prop_assert_eq!(Status::decode(&buf[..n]).unwrap(), status.clone());
        }
    }

    #[test]
    fn node_config_round_trips_in_both_encodings(cfg in node_config()) {
        prop_assert_eq!(cfg.validate(), Ok(()));
        let mut buf = [0u8; 1024];
        for enc in [Encoding::Binary, Encoding::Json] {
            let n = cfg.encode(enc, &mut buf).unwrap();
            prop_assert_eq!(Encoding::detect(&buf[..n]).unwrap(), enc);
            prop_assert_eq!(NodeConfig::decode(&buf[..n]).unwrap(), cfg);
        }
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = Telemetry::decode(&bytes);
        let _ = Ack::decode(&bytes);
        let _ = Status::decode(&bytes);
        let _ = NodeConfig::decode(&bytes);
    }

    #[test]
    fn decoding_binary_with_a_valid_header_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let mut b = vec![weir_contract::PROTOCOL_VERSION];
        b.extend_from_slice(&bytes);
        let _ = Telemetry::decode(&b);
        let _ = NodeConfig::decode(&b);
    }

    #[test]
    fn both_json_parsers_agree_on_valid_and_corrupted_messages(t in telemetry(), pos: usize, byte in 32u8..127) {
        let mut buf = vec![0u8; weir_contract::MAX_PAYLOAD];
        let n = t.encode(Encoding::Json, &mut buf).unwrap();
        prop_assert_eq!(decode_json_as_no_std(&buf[..n]).unwrap(), t);
        buf[pos % n] = byte;
        let std = Telemetry::decode(&buf[..n]);
        let core = decode_json_as_no_std(&buf[..n]);
        match (&std, &core) {
            // The same message when both accept.
            (Ok(a), Ok(b)) => prop_assert_eq!(a, b),
            // What the gateway's parser accepts, a node's accepts too.
            (Ok(_), Err(e)) => prop_assert!(false, "no_std refused valid JSON: {}", e),
            // serde-json-core is laxer about the form of a number (`+5.9`, `05.9`), which
            // serde_json refuses as bad JSON: lenient, never wrong about a valid message.
            (Err(e), Ok(_)) => prop_assert_eq!(e.code(), "bad_json", "{}", e),
            // The same reason when both refuse, unless one caught a lexical fault that the
            // other let through to validation: a number too large for f64 (`1e999`) is bad
            // JSON to serde_json and infinity (not finite) to serde-json-core.
            (Err(a), Err(b)) => {
                let (a, b) = (a.code(), b.code());
                let lexical = a == "bad_json" || b == "bad_json";
                prop_assert!(a == b || lexical, "std refused with {:?}, no_std with {:?}", a, b);
            }
        }
    }

    #[test]
    fn decoding_json_like_text_never_panics(text in r#"\{"(boot|seq|readings|ts|flow_m3h|faults|a_field_name_no_version_of_the_contract_has_ever_had)":[\[\]{}"0-9.,:eE+TZ-]{0,200}"#) {
        let _ = Telemetry::decode(text.as_bytes());
        let _ = decode_json_as_no_std(text.as_bytes());
    }

    #[test]
    fn corrupting_a_valid_binary_message_never_panics(t in telemetry(), pos: usize, byte: u8) {
        let mut buf = vec![0u8; weir_contract::MAX_PAYLOAD];
        let n = t.encode(Encoding::Binary, &mut buf).unwrap();
        buf[1 + pos % (n - 1)] = byte;
        let _ = Telemetry::decode(&buf[..n]);
        let _ = Telemetry::decode(&buf[..pos % n]);
    }
}

//! The contract as a third party sees it: payloads in, typed messages or named errors out.

use weir_contract::{
    Ack, Encoding, Fault, Field, Message, NodeConfig, NodeState, Quantity, Reading, Reason, Sample,
    Status, Telemetry, Timestamp, MAX_READINGS,
};

const EXAMPLE: &str = r#"{"boot":7,"seq":1042,"readings":[{"ts":"2026-11-22T07:40:00Z","flow_m3h":1.52,"volume_m3":10234.5,"turbidity_ntu":3.4,"sludge_pct":41.5}]}"#;

fn ts(s: &str) -> Timestamp {
    Timestamp::parse_rfc3339(s).unwrap()
}

fn error_text(payload: &str) -> String {
    Telemetry::decode(payload.as_bytes())
        .unwrap_err()
        .to_string()
}

fn reading_json(fields: &str) -> String {
    format!(r#"{{"boot":1,"seq":1,"readings":[{{"ts":"2026-11-22T07:40:00Z",{fields}}}]}}"#)
}

#[test]
fn the_documented_json_example_decodes_to_its_values() {
    let t = Telemetry::decode(EXAMPLE.as_bytes()).unwrap();
    assert_eq!((t.boot, t.seq, t.readings.len()), (7, 1042, 1));
    let r = &t.readings[0];
    assert_eq!(r.ts, ts("2026-11-22T07:40:00Z"));
    assert_eq!(r.value(Quantity::Flow), Some(1.52));
    assert_eq!(r.value(Quantity::Volume), Some(10234.5));
    assert_eq!(r.value(Quantity::Turbidity), Some(3.4));
    assert_eq!(r.value(Quantity::Sludge), Some(41.5));
    assert_eq!(r.get(Quantity::Supply), None);
    assert_eq!(Encoding::detect(EXAMPLE.as_bytes()), Ok(Encoding::Json));
}

#[test]
fn json_field_names_are_the_quantity_field_names() {
    let mut r = Reading::new(ts("2026-11-22T07:40:00Z"));
    for (i, q) in Quantity::ALL.into_iter().enumerate() {
        r = r.with(q, -(i as f64) * 0.0 + q.range().1 / 2.0);
    }
    let mut t = Telemetry {
        boot: 1,
        seq: 2,
        readings: Default::default(),
    };
    t.readings.push(r).unwrap();
    let mut buf = [0u8; 1024];
    let n = t.encode(Encoding::Json, &mut buf).unwrap();
    let text = std::str::from_utf8(&buf[..n]).unwrap();
    for q in Quantity::ALL {
        assert!(
            text.contains(&format!("\"{}\":", q.field())),
            "{q} missing in {text}"
        );
    }
    assert_eq!(Telemetry::decode(text.as_bytes()).unwrap(), t);
}

#[test]
fn faults_travel_in_both_encodings_and_never_as_numbers() {
    let payload = reading_json(r#""flow_m3h":1.0,"faults":{"turbidity_ntu":"no_response"}"#);
    let t = Telemetry::decode(payload.as_bytes()).unwrap();
    assert_eq!(
        t.readings[0].fault(Quantity::Turbidity),
        Some(Fault::NoResponse)
    );
    assert_eq!(t.readings[0].value(Quantity::Turbidity), None);
    let mut buf = [0u8; 256];
    let n = t.encode(Encoding::Binary, &mut buf).unwrap();
    assert_eq!(Telemetry::decode(&buf[..n]).unwrap(), t);
}

#[test]
fn escaped_json_strings_mean_the_same_to_both_parsers() {
    // `\u005A` is `Z`, `\u005f` is `_`: the same message as without escapes.
    let escaped = r#"{"boot":1,"seq":1,"readings":[{"ts":"2026-11-22T07:40:00\u005A","flow\u005fm3h":1.5,"faults":{"turbidity_ntu":"no\u005fresponse"}}]}"#;
    let plain = reading_json(r#""flow_m3h":1.5,"faults":{"turbidity_ntu":"no_response"}"#);
    let expected = Telemetry::decode(plain.as_bytes()).unwrap();
    assert_eq!(Telemetry::decode(escaped.as_bytes()).unwrap(), expected);
    assert_eq!(
        weir_contract::decode_json_as_no_std(escaped.as_bytes()).unwrap(),
        expected
    );
    // A bad escape is bad JSON to both.
    let bad = escaped.replace("\\u005A", "\\q");
    assert_eq!(
        Telemetry::decode(bad.as_bytes()).unwrap_err().code(),
        "bad_json"
    );
    assert_eq!(
        weir_contract::decode_json_as_no_std(bad.as_bytes())
            .unwrap_err()
            .code(),
        "bad_json"
    );
    // And text with quotes and control characters comes back as it was, in a status.
    let status = Status {
        firmware: Some("a\"b\\c\u{0}\u{1f}é".try_into().unwrap()),
        ..Status::offline()
    };
    let mut buf = [0u8; 256];
    let n = status.encode(Encoding::Json, &mut buf).unwrap();
    assert_eq!(Status::decode(&buf[..n]).unwrap(), status);
}

#[test]
fn a_value_and_a_fault_for_the_same_sensor_is_refused() {
    let payload = reading_json(r#""turbidity_ntu":3.0,"faults":{"turbidity_ntu":"checksum"}"#);
    assert_eq!(
        error_text(&payload),
        "readings[0].turbidity_ntu: has both a value and a fault code"
    );
}

#[test]
fn impossible_values_are_refused_naming_field_and_limit() {
    assert_eq!(
        error_text(&reading_json(r#""flow_m3h":-0.5"#)),
        "readings[0].flow_m3h: -0.5 is below the limit of 0 m3/h"
    );
    assert_eq!(
        error_text(&reading_json(r#""turbidity_ntu":4100"#)),
        "readings[0].turbidity_ntu: 4100 is above the limit of 4000 NTU"
    );
    assert_eq!(
        error_text(&reading_json(r#""sludge_pct":100.5"#)),
        "readings[0].sludge_pct: 100.5 is above the limit of 100 %"
    );
    assert_eq!(
        error_text(&reading_json(r#""sludge_pct":-1"#)),
        "readings[0].sludge_pct: -1 is below the limit of 0 %"
    );
}

#[test]
fn non_finite_numbers_are_refused_in_binary() {
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        let mut t = Telemetry {
            boot: 1,
            seq: 1,
            readings: Default::default(),
        };
        t.readings
            .push(Reading::new(ts("2026-11-22T07:40:00Z")).with(Quantity::Flow, bad))
            .unwrap();
        let mut buf = [0u8; 64];
        let n = t.encode(Encoding::Binary, &mut buf).unwrap();
        let e = Telemetry::decode(&buf[..n]).unwrap_err();
        assert_eq!(e.to_string(), "readings[0].flow_m3h: not a finite number");
        assert_eq!(e.code(), "not_finite");
    }
}

#[cfg(feature = "std")]
#[test]
fn a_wrong_type_names_the_field() {
    assert!(error_text(&reading_json(r#""flow_m3h":"1.5""#))
        .contains("flow_m3h: expected a number or null"));
}

#[test]
fn unknown_json_fields_are_refused_by_name() {
    let e = error_text(&reading_json(r#""flow_m3h":1.5,"temp_c":12"#));
    if cfg!(feature = "std") {
        assert_eq!(
            e,
            "message: invalid JSON: unknown field `temp_c` at line 1 column 82"
        );
    } else {
        assert!(e.starts_with("message: invalid JSON"), "{e}");
    }
    let e = Telemetry::decode(br#"{"boot":1,"seq":1,"node":"x","readings":[]}"#).unwrap_err();
    assert_eq!(e.code(), "bad_json");
    #[cfg(feature = "std")]
    assert!(e.to_string().contains("unknown field `node`"), "{e}");
}

#[test]
fn timestamps_far_in_the_future_or_before_2020_are_refused() {
    let now = ts("2026-11-22T07:00:00Z");
    let e =
        Telemetry::decode_received(reading_json(r#""flow_m3h":1"#).as_bytes(), now).unwrap_err();
    assert_eq!(e.field.to_string(), "readings[0].ts");
    assert_eq!(e.reason, Reason::InFuture { ahead_s: 2400 });
    // Within the allowed skew it passes.
    let near = ts("2026-11-22T07:35:00Z");
    assert!(Telemetry::decode_received(reading_json(r#""flow_m3h":1"#).as_bytes(), near).is_ok());
    let old = r#"{"boot":1,"seq":1,"readings":[{"ts":"1970-01-01T00:01:00Z","flow_m3h":1}]}"#;
    assert_eq!(
        Telemetry::decode(old.as_bytes()).unwrap_err().code(),
        "too_early"
    );
    let bad = r#"{"boot":1,"seq":1,"readings":[{"ts":"22/11/2026 07:40","flow_m3h":1}]}"#;
    assert!(error_text(bad).starts_with("readings[0].ts: not an RFC 3339 timestamp"));
}

/// Found by fuzzing: a binary message may carry any `i64` timestamp, and one past the year 9999
/// passed validation although its JSON form (`57515535271-04-23T11:38:56Z`) is no RFC 3339.
#[test]
fn timestamps_after_the_year_9999_are_refused_in_both_encodings() {
    let last = ts("9999-12-31T23:59:59Z");
    let mut t = Telemetry {
        boot: 1,
        seq: 1,
        readings: Default::default(),
    };
    t.readings.push(Reading::new(last)).unwrap();
    assert!(t.validate().is_ok());
    let mut buf = [0u8; 256];
    for encoding in [Encoding::Binary, Encoding::Json] {
        let n = t.encode(encoding, &mut buf).unwrap();
        assert_eq!(Telemetry::decode(&buf[..n]).unwrap(), t, "{encoding:?}");
    }
    t.readings[0].ts = Timestamp::from_unix(last.unix() + 1);
    let n = t.encode(Encoding::Binary, &mut buf).unwrap();
    let e = Telemetry::decode(&buf[..n]).unwrap_err();
    assert_eq!(e.field.to_string(), "readings[0].ts");
    assert_eq!(e.reason, Reason::BadTimestamp("after 9999-12-31T23:59:59Z"));
    // An offset can carry a four-digit year past the end as well.
    let late = r#"{"boot":1,"seq":1,"readings":[{"ts":"9999-12-31T23:59:59-01:00"}]}"#;
    assert_eq!(
        error_text(late),
        "readings[0].ts: not an RFC 3339 timestamp like 2026-11-22T07:40:00Z: after 9999-12-31T23:59:59Z"
    );
}

#[test]
fn readings_must_increase_in_time_within_a_message() {
    let p = r#"{"boot":1,"seq":1,"readings":[{"ts":"2026-11-22T07:40:00Z"},{"ts":"2026-11-22T07:40:00Z"}]}"#;
    assert_eq!(
        error_text(p),
        "readings[1].ts: not later than the previous reading; timestamps must increase"
    );
    assert_eq!(
        error_text(r#"{"boot":1,"seq":1,"readings":[]}"#),
        "readings: a telemetry message needs at least one reading"
    );
}

#[test]
fn a_batch_over_the_limit_is_refused() {
    let one = r#"{"ts":"2026-11-22T07:40:00Z"}"#;
    let many = vec![one; MAX_READINGS + 1].join(",");
    let payload = format!(r#"{{"boot":1,"seq":1,"readings":[{many}]}}"#);
    let e = Telemetry::decode(payload.as_bytes()).unwrap_err();
    assert_eq!(e.code(), "bad_json");
    #[cfg(feature = "std")]
    assert!(e.to_string().contains("readings: more than 64"), "{e}");
}

/// LEB128, as postcard writes an unsigned integer.
fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A binary sample of `q` with a value in range, as in "The binary encoding" of protocol.md.
fn binary_value(q: Quantity) -> Vec<u8> {
    let mut b = vec![q as u8];
    let v = q.range().1 / 2.0;
    match q {
        Quantity::Volume => b.extend(v.to_le_bytes()),
        _ => b.extend((v as f32).to_le_bytes()),
    }
    b
}

/// A binary telemetry message written by hand from the layout in protocol.md, not by the
/// encoder (whose `Telemetry` cannot hold more than the limit): boot 1, seq 1, `n` readings a
/// minute apart from 2026-11-22T06:40:00Z, each with `samples`.
fn binary_telemetry(n: usize, samples: &[Vec<u8>]) -> Vec<u8> {
    let mut b = vec![weir_contract::PROTOCOL_VERSION, 1, 1];
    let start = ts("2026-11-22T06:40:00Z").unix();
    varint(((start << 1) ^ (start >> 63)) as u64, &mut b); // zigzag
    varint(n as u64, &mut b);
    for i in 0..n {
        varint(if i == 0 { 0 } else { 60 }, &mut b);
        varint(samples.len() as u64, &mut b);
        b.extend(samples.concat());
    }
    b
}

#[test]
fn a_binary_batch_over_the_limit_is_refused_naming_readings() {
    let flow = [binary_value(Quantity::Flow)];
    // The same bytes with one reading fewer are a valid message.
    let t = Telemetry::decode(&binary_telemetry(MAX_READINGS, &flow)).unwrap();
    assert_eq!(t.readings.len(), MAX_READINGS);
    assert_eq!(t.readings[1].value(Quantity::Flow), Some(500.0));
    for n in [MAX_READINGS + 1, 200] {
        let e = Telemetry::decode(&binary_telemetry(n, &flow)).unwrap_err();
        assert_eq!(e.field, Field::Top("readings"));
        assert_eq!(e.reason, Reason::TooManyReadings);
        assert_eq!(e.code(), "too_many_readings");
        assert_eq!(
            e.to_string(),
            "readings: more than 64 readings in one message"
        );
    }
    // Bytes after the refused batch are still noticed: the extra readings were read through.
    let mut trailing = binary_telemetry(MAX_READINGS + 1, &flow);
    trailing.push(0);
    assert_eq!(
        Telemetry::decode(&trailing).unwrap_err().code(),
        "trailing_bytes"
    );
}

#[test]
fn a_binary_reading_with_more_samples_than_quantities_is_refused_naming_the_repeat() {
    let all: Vec<Vec<u8>> = Quantity::ALL.into_iter().map(binary_value).collect();
    let t = Telemetry::decode(&binary_telemetry(2, &all)).unwrap();
    assert_eq!(t.readings[0].samples().count(), Quantity::COUNT);
    // A seventh sample repeats a quantity: a second turbidity value...
    let mut seven = all.clone();
    seven.push(binary_value(Quantity::Turbidity));
    let e = Telemetry::decode(&binary_telemetry(2, &seven)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "readings[0].turbidity_ntu: appears more than once in the reading"
    );
    assert_eq!(e.code(), "repeated");
    // ... or a fault for one that has a value (variant 6: quantity 0, fault 0).
    let mut seven = all.clone();
    seven.push(vec![6, 0, 0]);
    let e = Telemetry::decode(&binary_telemetry(1, &seven)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "readings[0].flow_m3h: has both a value and a fault code"
    );
    // Many more than fit: still the first repeat, not a parser's error.
    let many: Vec<Vec<u8>> = (0..40).map(|_| binary_value(Quantity::Rssi)).collect();
    let e = Telemetry::decode(&binary_telemetry(1, &many)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "readings[0].rssi_dbm: appears more than once in the reading"
    );
}

#[test]
fn payloads_that_are_neither_encoding_are_refused_with_the_first_byte() {
    assert_eq!(
        Telemetry::decode(b"").unwrap_err().to_string(),
        "message: the payload is empty"
    );
    assert_eq!(
        Telemetry::decode(b"hello").unwrap_err().to_string(),
        "message: first byte 0x68 is neither '{' (JSON) nor binary protocol version 1"
    );
    let huge = vec![b' '; weir_contract::MAX_PAYLOAD + 1];
    assert_eq!(Telemetry::decode(&huge).unwrap_err().code(), "too_large");
    assert_eq!(
        Telemetry::decode(format!("{EXAMPLE} x").as_bytes())
            .unwrap_err()
            .code(),
        "bad_json"
    );
    // White space and a byte-order mark before JSON are fine.
    assert!(Telemetry::decode(format!("\u{feff}\n  {EXAMPLE}\n").as_bytes()).is_ok());
}

#[test]
fn binary_is_told_apart_from_json_by_its_version_byte() {
    let t = Telemetry::decode(EXAMPLE.as_bytes()).unwrap();
    let mut buf = [0u8; 128];
    let n = t.encode(Encoding::Binary, &mut buf).unwrap();
    assert_eq!(buf[0], weir_contract::PROTOCOL_VERSION);
    assert_eq!(Encoding::detect(&buf[..n]), Ok(Encoding::Binary));
    // f32 on the wire, and still 1.52 (not 1.5199999809265137) once decoded.
    assert_eq!(Telemetry::decode(&buf[..n]).unwrap(), t);
}

#[test]
fn ack_status_and_config_round_trip_in_both_encodings() {
    let mut cfg = NodeConfig {
        tank_depth_m: Some(2.5),
        sensor_height_m: Some(3.0),
        ..Default::default()
    };
    cfg.calibration.set(
        Quantity::Turbidity,
        Some(weir_contract::Calibration {
            offset: -0.4,
            scale: 1.02,
        }),
    );
    let status = Status {
        state: NodeState::Online,
        firmware: Some("weir-node 0.1.0".try_into().unwrap()),
        boot: Some(7),
        buffered: Some(12),
        dropped: Some(0),
        uptime_s: Some(3600),
    };
    let ack = Ack { boot: 7, seq: 1042 };
    for enc in [Encoding::Json, Encoding::Binary] {
        let mut buf = [0u8; 512];
        let n = cfg.encode(enc, &mut buf).unwrap();
        assert_eq!(NodeConfig::decode(&buf[..n]).unwrap(), cfg);
        let n = status.encode(enc, &mut buf).unwrap();
        assert_eq!(Status::decode(&buf[..n]).unwrap(), status);
        let n = ack.encode(enc, &mut buf).unwrap();
        assert_eq!(Ack::decode(&buf[..n]).unwrap(), ack);
    }
}

#[test]
fn the_last_will_and_a_short_config_are_plain_json() {
    assert_eq!(
        Status::decode(br#"{"state":"offline"}"#).unwrap(),
        Status::offline()
    );
    let cfg = NodeConfig::decode(br#"{"publish_interval_s":600}"#).unwrap();
    assert_eq!((cfg.sample_interval_s, cfg.publish_interval_s), (60, 600));
    assert_eq!(
        NodeConfig::decode(br#"{"sample_interval_s":5}"#)
            .unwrap_err()
            .to_string(),
        "sample_interval_s: out of range: must be 10 to 3600 s"
    );
    assert_eq!(
        NodeConfig::decode(br#"{"calibration":{"sludge_pct":{"offset":0,"scale":0}}}"#)
            .unwrap_err()
            .code(),
        "out_of_range"
    );
    assert_eq!(
        Ack::decode(br#"{"boot":1}"#).unwrap_err().code(),
        "bad_json"
    );
}

#[test]
fn binary_is_much_smaller_than_json_per_reading() {
    let mut t = Telemetry {
        boot: 7,
        seq: 1042,
        readings: Default::default(),
    };
    for i in 0..5 {
        let r = Reading::new(Timestamp::from_unix(1_795_333_200 + 60 * i))
            .with(Quantity::Flow, 1.52)
            .with(Quantity::Volume, 10234.5)
            .with(Quantity::Turbidity, 3.4)
            .with(Quantity::Sludge, 41.5)
            .with(Quantity::Supply, 12.1)
            .with(Quantity::Rssi, -71.0);
        t.readings.push(r).unwrap();
    }
    let mut buf = [0u8; 2048];
    let bin = t.encode(Encoding::Binary, &mut buf).unwrap();
    let json = t.encode(Encoding::Json, &mut buf).unwrap();
    assert!(bin * 3 < json, "binary {bin} B vs JSON {json} B");
    let _ = Sample::Value(0.0);
}

/// The refusals table of docs/protocol.md, row by row.
#[cfg(feature = "std")]
#[test]
fn the_refusals_documented_in_protocol_md_are_the_ones_given() {
    let doc = include_str!("../../../docs/protocol.md");
    let now = ts("2026-11-22T07:00:00Z");
    let decode = |p: &str| {
        Telemetry::decode_received(p.as_bytes(), now)
            .unwrap_err()
            .to_string()
    };
    let one = r#"{"ts":"2026-11-22T06:40:00Z"}"#;
    let cases = [
        decode(&reading_json(r#""flow_m3h":-0.5"#).replace("07:40", "06:40")),
        decode(&reading_json(r#""turbidity_ntu":4100"#).replace("07:40", "06:40")),
        decode(&reading_json(r#""sludge_pct":100.5"#).replace("07:40", "06:40")),
        decode(&reading_json(r#""flow_m3h":1"#)),
        decode(r#"{"boot":1,"seq":1,"readings":[{"ts":"1970-01-01T00:01:00Z","flow_m3h":1}]}"#),
        decode(&reading_json(r#""flow_m3h":1.5,"temp_c":12"#)),
        decode(&reading_json(r#""flow_m3h":"1.5""#)),
        decode(&format!(r#"{{"boot":1,"seq":1,"readings":[{one},{one}]}}"#)),
        decode(""),
        decode(&" ".repeat(20_000)),
    ];
    let decode_binary = |p: &[u8]| Telemetry::decode_received(p, now).unwrap_err().to_string();
    let flow = binary_value(Quantity::Flow);
    let binary_cases = [
        decode_binary(&binary_telemetry(
            MAX_READINGS + 1,
            std::slice::from_ref(&flow),
        )),
        decode_binary(&binary_telemetry(1, &[flow.clone(), flow])),
    ];
    let cases = cases.into_iter().chain(binary_cases);
    for text in cases {
        assert!(doc.contains(&text), "protocol.md does not show: {text}");
    }
}

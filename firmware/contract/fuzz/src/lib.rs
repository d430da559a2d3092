//! What the contract's fuzz targets check on every payload they are given.

use core::fmt::Debug;

use weir_contract::{
    decode_json_as_no_std, Ack, Encoding, Message, NodeConfig, Status, Telemetry, MAX_PAYLOAD,
};

/// Decodes `data` as a message of type `M`. When it decodes, it must encode again in the
/// encoding it came in, and in each of `also`, and every one of those must decode to the same
/// message (when it still fits in [`MAX_PAYLOAD`]).
pub fn round_trip<M: Message + PartialEq + Debug>(data: &[u8], also: &[Encoding]) {
    let Ok(message) = M::decode(data) else {
        return;
    };
    let came_in = Encoding::detect(data).expect("a payload that decodes has an encoding");
    let mut buf = vec![0u8; 4 * MAX_PAYLOAD];
    for &encoding in core::iter::once(&came_in).chain(also) {
        let n = message.encode(encoding, &mut buf).unwrap_or_else(|e| {
            panic!("{message:?} decoded but does not encode as {encoding:?}: {e}")
        });
        if n > MAX_PAYLOAD {
            continue;
        }
        match M::decode(&buf[..n]) {
            Ok(again) => assert_eq!(again, message, "{encoding:?}: {:?}", &buf[..n]),
            Err(e) => panic!(
                "{message:?} encoded as {encoding:?} does not decode: {e}: {:?}",
                String::from_utf8_lossy(&buf[..n])
            ),
        }
    }
}

/// Every decoder of the contract on one payload. Telemetry crosses to the other encoding only
/// from binary to JSON: its binary form keeps most values as `f32`.
pub fn every_decoder(data: &[u8]) {
    let _ = Encoding::detect(data);
    let _ = Telemetry::decode_unvalidated(data);
    let both = [Encoding::Json, Encoding::Binary];
    round_trip::<Telemetry>(data, &[Encoding::Json]);
    round_trip::<Status>(data, &both);
    round_trip::<Ack>(data, &both);
    round_trip::<NodeConfig>(data, &both);
}

/// The gateway's JSON parser (serde_json) and a node's (serde-json-core) hold a telemetry
/// payload to the same rules, as the property test
/// `both_json_parsers_agree_on_valid_and_corrupted_messages` says.
pub fn json_parsers_agree(data: &[u8]) {
    if Encoding::detect(data) != Ok(Encoding::Json) {
        return;
    }
    let std = Telemetry::decode(data);
    let core = decode_json_as_no_std(data);
    match (&std, &core) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Ok(_), Err(e)) => panic!("the no_std parser refused what the gateway's took: {e}"),
        // serde-json-core is laxer about the form of a number (`+5.9`, `05.9`).
        (Err(e), Ok(_)) => assert_eq!(e.code(), "bad_json", "{e}"),
        (Err(a), Err(b)) => {
            let (a, b) = (a.code(), b.code());
            let lexical = a == "bad_json" || b == "bad_json";
            assert!(
                a == b || lexical,
                "std refused with {a:?}, no_std with {b:?}"
            );
        }
    }
}

//! Arbitrary input never makes the decoder panic; arbitrary valid packets read back as
//! written; a decoded frame encodes back to itself.

use proptest::prelude::*;
use weir_hj212::{
    frame_len, CommandCode, CpBuilder, DataFlag, DataTime, Decimal, DecodeError, Field, Flag,
    Header, Item, Packet, Qn, Split, SystemCode, Value, MAX_FRAME_LEN,
};

/// Decodes `bytes`; when that succeeds, the packet must encode back to the same bytes (the
/// CRC's case aside) and its CP must iterate.
fn decode_and_reencode(bytes: &[u8]) -> Result<(), DecodeError> {
    let _ = frame_len(bytes);
    let packet = Packet::decode(bytes)?;
    let again = packet.to_frame().expect("a decoded packet encodes");
    assert!(again.eq_ignore_ascii_case(bytes));
    assert_eq!(&again[..again.len() - 6], &bytes[..bytes.len() - 6]);
    let _ = packet.cp.items().count();
    let _ = packet.cp.data_time();
    Ok(())
}

/// Segments made of the pieces a frame is made of, so that some get deep into the parser.
fn segment_soup() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        Just("QN=20160801085857223;"),
        Just("ST=32;"),
        Just("CN=2011;"),
        Just("PW=123456;"),
        Just("MN=A1;"),
        Just("Flag=5;"),
        Just("Flag=7;"),
        Just("PNUM=2;"),
        Just("PNO=1;"),
        Just("CP=&&"),
        Just("&&"),
        Just("DataTime=20160801085857"),
        Just("w01018-Rtd=1.5"),
        Just("w01018-Flag=N"),
        Just("w00000-Cou=-0.25"),
        Just("RtdInterval=30"),
        Just(";"),
        Just(","),
        Just("="),
        Just("-"),
        Just("&"),
        Just("x"),
        Just("中"),
    ];
    prop::collection::vec(piece, 0..40).prop_map(|pieces| pieces.concat())
}

fn data_time() -> impl Strategy<Value = DataTime> {
    (0u16..=9999, 1u8..=12, 1u8..=28, 0u8..24, 0u8..60, 0u8..60)
        .prop_map(|(y, mo, d, h, mi, s)| DataTime::new(y, mo, d, h, mi, s).unwrap())
}

fn data_flag() -> impl Strategy<Value = DataFlag> {
    prop_oneof![
        Just(DataFlag::Normal),
        Just(DataFlag::Fault),
        Just(DataFlag::Maintenance),
        (b'0'..=b'9').prop_map(DataFlag::Other),
    ]
}

/// A factor's group: its values (numeric fields with decimals, text fields with text) and
/// its flag.
type GroupSpec = (
    Vec<(Field<'static>, Result<Decimal, String>)>,
    Option<DataFlag>,
);

fn group() -> impl Strategy<Value = GroupSpec> {
    let numeric = prop_oneof![
        Just(Field::Rtd),
        Just(Field::Avg),
        Just(Field::Min),
        Just(Field::Max),
        Just(Field::Cou),
        Just(Field::ZsAvg)
    ];
    let decimal = (-999_999_999_999i64..=999_999_999_999, 0u8..=4)
        .prop_map(|(m, s)| Decimal::new(m, s).unwrap());
    let value = prop_oneof![
        (numeric, decimal).prop_map(|(f, d)| (f, Ok(d))),
        (
            prop_oneof![
                Just(Field::SampleTime),
                Just(Field::EFlag),
                Just(Field::Other("Info"))
            ],
            "[A-Za-z0-9]{1,8}"
        )
            .prop_map(|(f, t)| (f, Err(t))),
    ];
    (
        prop::collection::vec(value, 1..4).prop_map(|mut v| {
            // One value per field in a group: keys may not repeat.
            v.sort_by_key(|(f, _)| f.as_str());
            v.dedup_by_key(|(f, _)| f.as_str());
            v
        }),
        prop::option::of(data_flag()),
    )
}

prop_compose! {
    fn header_parts()(
        qn in prop::option::of((data_time(), 0u16..1000)),
        st in "[0-9A-Z]{2}",
        cn in 0u16..=9999,
        pw in "[!-%'-+\\--:<>-~]{1,6}",
        mn in "[A-Za-z0-9_-]{1,24}",
        flag in prop::option::of(any::<u8>()),
        total in 1u16..=9999,
        number in 1u16..=9999,
    ) -> (Option<(DataTime, u16)>, String, u16, String, String, Option<u8>, u16, u16) {
        (qn, st, cn, pw, mn, flag, total, number)
    }
}

proptest! {
    #[test]
    fn the_decoder_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..1100)) {
        let _ = decode_and_reencode(&bytes);
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_segments_in_a_valid_frame(
        bytes in prop::collection::vec(any::<u8>(), 0..1025)
    ) {
        let mut out = vec![0; MAX_FRAME_LEN];
        let len = weir_hj212::encode_frame(&bytes, &mut out).unwrap();
        let _ = decode_and_reencode(&out[..len]);
    }

    #[test]
    fn the_decoder_never_panics_on_segments_of_frame_pieces(segment in segment_soup()) {
        prop_assume!(segment.len() <= 1024);
        let _ = decode_and_reencode(&super::frame(&segment));
    }

    #[test]
    fn encode_then_decode_gives_back_any_valid_packet(
        (qn, st, cn, pw, mn, flag, total, number) in header_parts(),
        time in prop::option::of(data_time()),
        groups in prop::collection::vec(group(), 0..6),
    ) {
        let codes: Vec<String> = (0..groups.len()).map(|i| format!("w{:05}", i * 7)).collect();
        let items: Vec<Item<'_>> = groups
            .iter()
            .zip(&codes)
            .flat_map(|((values, flag), code)| {
                values.iter().map(move |(field, value)| Item {
                    code,
                    field: *field,
                    value: match value {
                        Ok(d) => Value::Number(*d),
                        Err(t) => Value::Text(t),
                    },
                    flag: *flag,
                })
            })
            .collect();
        let mut cp = CpBuilder::new();
        if let Some(time) = time {
            cp.data_time(time).unwrap();
        }
        cp.items(&items).unwrap();
        let flag = flag.map(Flag::from_bits);
        let split = flag.filter(|f| f.split()).map(|_| Split::new(total.max(number), number).unwrap());
        let packet = Packet {
            header: Header {
                qn: qn.map(|(t, ms)| Qn::new(t, ms).unwrap()),
                st: SystemCode::new(&st).unwrap(),
                cn: CommandCode::new(cn).unwrap(),
                pw: &pw,
                mn: &mn,
                flag,
                split,
            },
            cp: cp.cp(),
        };
        let frame = packet.to_frame().unwrap();
        prop_assert_eq!(frame_len(&frame), Ok(Some(frame.len())));
        let back = Packet::decode(&frame).unwrap();
        prop_assert_eq!(back, packet);
        prop_assert_eq!(back.cp.data_time(), time);
        prop_assert_eq!(back.cp.items().collect::<Vec<_>>(), items);
    }

    #[test]
    fn any_changed_segment_byte_is_refused_and_never_panics(
        index in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let mut frame = super::frame(
            "QN=20160801085000001;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;\
CP=&&DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Flag=N&&",
        );
        let i = 6 + index.index(frame.len() - 12);
        frame[i] = frame[i].wrapping_add(delta);
        prop_assert!(
            matches!(Packet::decode(&frame), Err(DecodeError::CrcMismatch { .. })),
            "byte {} changed",
            i
        );
    }
}

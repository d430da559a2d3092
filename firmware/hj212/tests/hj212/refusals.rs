//! Frames and packets that are refused, each with the error that names what is wrong.

use super::frame;
use weir_hj212::{
    decode_frame, frame_len, CommandCode, CpBuilder, CpError, CpProblem, DataFlag, DecodeError,
    EncodeError, Field, FieldName, Flag, Header, Packet, Problem, Split, SystemCode, Value,
    MAX_CP_DATA_LEN, MAX_FRAME_LEN,
};

const STANDARD_1062: &[u8] = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;\
MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

const HEAD: &str = "QN=20160801085857223;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;";

/// Decodes `segment` framed with a correct length and CRC.
fn decode(segment: &str) -> Result<(), DecodeError> {
    Packet::decode(&frame(segment)).map(|_| ())
}

/// Offset in the frame of the first `needle` in `segment`.
fn at(segment: &str, needle: &str) -> usize {
    6 + segment.find(needle).expect("needle in segment")
}

fn field(field: FieldName, problem: Problem, at: usize) -> Result<(), DecodeError> {
    Err(DecodeError::Field { field, problem, at })
}

fn cp(problem: CpProblem, at: usize) -> Result<(), DecodeError> {
    Err(DecodeError::Cp { problem, at })
}

#[test]
fn a_truncated_frame_is_refused_as_truncated_at_every_length() {
    for len in 0..STANDARD_1062.len() {
        let needed = if len < 6 { 12 } else { STANDARD_1062.len() };
        assert_eq!(
            Packet::decode(&STANDARD_1062[..len]),
            Err(DecodeError::Truncated { len, needed }),
            "{len} bytes"
        );
    }
}

#[test]
fn a_frame_with_a_byte_too_many_is_refused_as_too_long() {
    let mut long = STANDARD_1062.to_vec();
    long.push(b'\n');
    assert_eq!(
        Packet::decode(&long),
        Err(DecodeError::TooLong {
            len: 114,
            expected: 113
        })
    );
}

#[test]
fn a_length_field_that_does_not_match_the_segment_is_refused() {
    let mut short = STANDARD_1062.to_vec();
    short[2..6].copy_from_slice(b"0100");
    assert_eq!(
        Packet::decode(&short),
        Err(DecodeError::TooLong {
            len: 113,
            expected: 112
        })
    );
    let mut long = STANDARD_1062.to_vec();
    long[2..6].copy_from_slice(b"0102");
    assert_eq!(
        Packet::decode(&long),
        Err(DecodeError::Truncated {
            len: 113,
            needed: 114
        })
    );
}

#[test]
fn a_corrupted_byte_is_refused_as_a_crc_mismatch() {
    let mut corrupted = STANDARD_1062.to_vec();
    corrupted[40] ^= 0x01; // a digit of MN... or of PW: any byte of the segment
    let Err(DecodeError::CrcMismatch { sent, computed }) = Packet::decode(&corrupted) else {
        panic!("not a CRC mismatch");
    };
    assert_eq!(sent, 0x1C80);
    assert_ne!(computed, 0x1C80);
}

#[test]
fn the_frames_start_length_crc_digits_and_end_are_checked() {
    let with = |at: usize, bytes: &[u8]| {
        let mut f = STANDARD_1062.to_vec();
        f[at..at + bytes.len()].copy_from_slice(bytes);
        Packet::decode(&f).map(|_| ())
    };
    assert_eq!(with(0, b"#!"), Err(DecodeError::BadStart));
    assert_eq!(with(3, b"1A1"), Err(DecodeError::BadLength));
    assert_eq!(
        with(2, b"1025"),
        Err(DecodeError::SegmentTooLong { len: 1025 })
    );
    assert_eq!(with(107, b"1G80"), Err(DecodeError::BadCrcDigits));
    assert_eq!(with(111, b"\n\r"), Err(DecodeError::BadEnd));
    assert_eq!(frame_len(b"X"), Err(DecodeError::BadStart));
    assert_eq!(frame_len(b"##01"), Ok(None));
    assert_eq!(
        frame_len(b"##9999"),
        Err(DecodeError::SegmentTooLong { len: 9999 })
    );
}

#[test]
fn a_lower_case_crc_is_accepted() {
    let mut lower = STANDARD_1062.to_vec();
    lower[108] = b'c';
    assert!(Packet::decode(&lower).is_ok());
}

#[test]
fn a_segment_that_is_not_utf8_is_refused_where_it_stops_being_utf8() {
    let segment = [HEAD.as_bytes(), b"CP=&&i12001-Info=\xff&&"].concat();
    let mut out = vec![0; MAX_FRAME_LEN];
    let len = weir_hj212::encode_frame(&segment, &mut out).unwrap();
    assert_eq!(
        decode_frame(&out[..len]),
        Err(DecodeError::NotUtf8 {
            at: 6 + segment.len() - 3
        })
    );
}

#[test]
fn missing_required_fields_are_named() {
    let s = "QN=20160801085857223;CN=2011;PW=123456;MN=A1;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::St, Problem::Missing, at(s, "CP="))
    );
    let s = "ST=32;CN=2011;PW=123456;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::Mn, Problem::Missing, at(s, "CP="))
    );
    let s = "ST=32;CN=2011;PW=123456;MN=A1";
    assert_eq!(
        decode(s),
        field(FieldName::Cp, Problem::Missing, 6 + s.len())
    );
}

#[test]
fn fields_out_of_the_standards_order_or_repeated_are_refused() {
    let s = "QN=20160801085857223;CN=2011;ST=32;PW=123456;MN=A1;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::St, Problem::OutOfOrder, at(s, "32"))
    );
    let s = "ST=32;ST=32;CN=2011;PW=123456;MN=A1;CP=&&&&";
    assert_eq!(decode(s), field(FieldName::St, Problem::OutOfOrder, 6 + 9));
}

#[test]
fn an_unknown_header_field_is_refused_where_it_is() {
    let s = "ST=32;CN=2011;XX=1;PW=123456;MN=A1;CP=&&&&";
    assert_eq!(
        decode(s),
        Err(DecodeError::UnknownField { at: at(s, "XX") })
    );
    let s = "ST=32;CN=2011;PW;MN=A1;CP=&&&&";
    assert_eq!(
        decode(s),
        Err(DecodeError::UnknownField { at: at(s, "PW") })
    );
}

#[test]
fn header_values_of_the_wrong_form_or_size_are_refused() {
    let cases: [(&str, FieldName, Problem, &str); 10] = [
        (
            "QN=20161301085857223;ST=32;CN=2011;PW=1;MN=A;CP=&&&&",
            FieldName::Qn,
            Problem::Malformed,
            "2016",
        ),
        (
            "QN=2016080108585722;ST=32;CN=2011;PW=1;MN=A;CP=&&&&",
            FieldName::Qn,
            Problem::Malformed,
            "2016",
        ),
        (
            "ST=3;CN=2011;PW=1;MN=A;CP=&&&&",
            FieldName::St,
            Problem::Malformed,
            "3;",
        ),
        (
            "ST=3a;CN=2011;PW=1;MN=A;CP=&&&&",
            FieldName::St,
            Problem::Malformed,
            "3a",
        ),
        (
            "ST=32;CN=201;PW=1;MN=A;CP=&&&&",
            FieldName::Cn,
            Problem::Malformed,
            "201;",
        ),
        (
            "ST=32;CN=2011;PW=1234567;MN=A;CP=&&&&",
            FieldName::Pw,
            Problem::TooLong,
            "1234567",
        ),
        (
            "ST=32;CN=2011;PW=;MN=A;CP=&&&&",
            FieldName::Pw,
            Problem::Malformed,
            ";MN",
        ),
        (
            "ST=32;CN=2011;PW=1;MN=0123456789012345678901234;CP=&&&&",
            FieldName::Mn,
            Problem::TooLong,
            "0123",
        ),
        (
            "ST=32;CN=2011;PW=1;MN=A;Flag=05;CP=&&&&",
            FieldName::Flag,
            Problem::Malformed,
            "05",
        ),
        (
            "ST=32;CN=2011;PW=1;MN=A;Flag=256;CP=&&&&",
            FieldName::Flag,
            Problem::Malformed,
            "256",
        ),
    ];
    for (s, name, problem, needle) in cases {
        assert_eq!(decode(s), field(name, problem, at(s, needle)), "{s}");
    }
}

#[test]
fn pnum_and_pno_must_agree_with_the_flags_split_bit() {
    let s = "ST=32;CN=2061;PW=1;MN=A;Flag=5;PNUM=2;PNO=1;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::Flag, Problem::Inconsistent, at(s, "CP="))
    );
    let s = "ST=32;CN=2061;PW=1;MN=A;Flag=7;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::Pnum, Problem::Missing, at(s, "CP="))
    );
    let s = "ST=32;CN=2061;PW=1;MN=A;Flag=7;PNUM=2;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::Pno, Problem::Missing, at(s, "CP="))
    );
    let s = "ST=32;CN=2061;PW=1;MN=A;Flag=7;PNUM=2;PNO=3;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::Pno, Problem::Inconsistent, at(s, "CP="))
    );
    let s = "ST=32;CN=2061;PW=1;MN=A;Flag=7;PNUM=0002;PNO=1;CP=&&&&";
    assert_eq!(
        decode(s),
        field(FieldName::Pnum, Problem::Malformed, at(s, "0002"))
    );
}

#[test]
fn a_cp_that_breaks_the_grammar_is_refused_where_it_breaks() {
    let cases: [(&str, CpProblem, &str); 11] = [
        ("CP=&&a=1&", CpProblem::Unbracketed, "CP="),
        ("CP=a=1", CpProblem::Unbracketed, "CP="),
        ("CP=&&w01018-Rtd=1;;a=2&&", CpProblem::EmptyEntry, ";a=2"),
        ("CP=&&w01018-Rtd=1;&&", CpProblem::EmptyEntry, "&&"),
        ("CP=&&w01018-Rtd&&", CpProblem::NoEquals, "w01018"),
        ("CP=&&w01018-Rtd-x=1&&", CpProblem::BadKey, "w01018"),
        ("CP=&&w01018-Rtd=&&", CpProblem::BadValue, "&&"),
        ("CP=&&w01018-Rtd=1.2.3&&", CpProblem::BadNumber, "1.2.3"),
        (
            "CP=&&DataTime=20160230000000&&",
            CpProblem::BadDataTime,
            "20160230",
        ),
        (
            "CP=&&w01018-Rtd=1,w01018-Flag=n&&",
            CpProblem::BadFlag,
            "n&&",
        ),
        (
            "CP=&&w01018-Rtd=1;w01018-Rtd=2&&",
            CpProblem::RepeatedKey,
            "w01018-Rtd=2",
        ),
    ];
    for (tail, problem, needle) in cases {
        let s = format!("{HEAD}{tail}");
        let mut expected = at(&s, needle);
        if needle == "&&" {
            expected = 6 + s.rfind("&&").unwrap();
        }
        assert_eq!(decode(&s), cp(problem, expected), "{tail}");
    }
}

#[test]
fn a_data_time_with_milliseconds_as_some_loggers_send_is_refused() {
    // xiaoyao9184/hj-t212-parser's T212MapperTest.java frame: its CRC (4980) is right, but
    // DataTime has 17 digits, and the standard's DataTime is YYYYMMDDhhmmss.
    let frame = b"##0139ST=32;CN=2011;PW=123456;MN=LD130133000015;\
CP=&&DataTime=20160824003817000;B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,\
060-Flag=N&&4980\r\n";
    let at = 6 + 56; // where "20160824003817000" starts in the segment
    assert_eq!(&frame[at..at + 17], b"20160824003817000");
    assert_eq!(
        Packet::decode(frame),
        Err(DecodeError::Cp {
            problem: CpProblem::BadDataTime,
            at
        })
    );
}

#[test]
fn a_cp_over_950_characters_is_refused() {
    let long = "x".repeat(MAX_CP_DATA_LEN - 1);
    let s = format!("ST=32;CN=2011;PW=1;MN=A;CP=&&a={long}&&");
    assert_eq!(decode(&s), cp(CpProblem::TooLong, at(&s, "CP=")));
    let fits = format!(
        "ST=32;CN=2011;PW=1;MN=A;CP=&&a={}&&",
        "x".repeat(MAX_CP_DATA_LEN - 2)
    );
    assert!(decode(&fits).is_ok());
}

fn header() -> Header<'static> {
    Header {
        qn: None,
        st: SystemCode::SURFACE_WATER_POLLUTION_SOURCE,
        cn: CommandCode::REAL_TIME_DATA,
        pw: "123456",
        mn: "A1",
        flag: Flag::new(1, false, false),
        split: None,
    }
}

#[test]
fn encoding_refuses_header_values_the_wire_cannot_carry() {
    let mut buf = [0u8; MAX_FRAME_LEN];
    let refuse = |h: Header<'static>| {
        Packet {
            header: h,
            cp: weir_hj212::Cp::EMPTY,
        }
        .encode(&mut [0u8; MAX_FRAME_LEN])
    };
    let err = |field, problem| Err(EncodeError::Field { field, problem });
    assert_eq!(
        refuse(Header {
            pw: "1234567",
            ..header()
        }),
        err(FieldName::Pw, Problem::TooLong)
    );
    assert_eq!(
        refuse(Header { pw: "", ..header() }),
        err(FieldName::Pw, Problem::Malformed)
    );
    assert_eq!(
        refuse(Header {
            mn: "A;B",
            ..header()
        }),
        err(FieldName::Mn, Problem::Malformed)
    );
    assert_eq!(
        refuse(Header {
            mn: "A B",
            ..header()
        }),
        err(FieldName::Mn, Problem::Malformed)
    );
    assert_eq!(
        refuse(Header {
            split: Split::new(2, 1),
            ..header()
        }),
        err(FieldName::Pnum, Problem::Inconsistent)
    );
    assert_eq!(
        refuse(Header {
            flag: Flag::new(1, true, false),
            ..header()
        }),
        err(FieldName::Pnum, Problem::Inconsistent)
    );
    let ok = Packet {
        header: header(),
        cp: weir_hj212::Cp::EMPTY,
    };
    let len = ok.encode(&mut buf).unwrap();
    assert_eq!(
        ok.encode(&mut buf[..len - 1]),
        Err(EncodeError::BufferTooSmall { needed: len })
    );
    assert_eq!(len, ok.segment_len() + 12);
}

#[test]
fn encoding_refuses_a_segment_over_1024_bytes() {
    let mut cp = CpBuilder::new();
    for i in 0.. {
        if cp
            .param(&format!("K{i}"), Value::Text("xxxxxxxxx"))
            .is_err()
        {
            break;
        }
    }
    assert!(cp.cp().as_str().len() > MAX_CP_DATA_LEN - 20);
    let longest = Header {
        qn: weir_hj212::Qn::parse("20260301000000000"),
        mn: "012345678901234567890123",
        flag: Flag::new(1, true, true),
        split: Split::new(9999, 9999),
        ..header()
    };
    let packet = Packet {
        header: longest,
        cp: cp.cp(),
    };
    let len = packet.segment_len();
    assert!(len > 1024);
    assert_eq!(
        packet.encode(&mut [0u8; 2000]),
        Err(EncodeError::SegmentTooLong { len })
    );
}

#[test]
fn the_builder_refuses_what_would_not_decode_and_stays_as_it_was() {
    let mut cp = CpBuilder::new();
    cp.param("RtdInterval", Value::Text("30")).unwrap();
    let before = cp.cp().as_str().to_owned();
    let one = Value::Text("1");
    assert_eq!(
        cp.param("Rtd-Interval", one).unwrap_err().problem,
        CpProblem::BadKey
    );
    assert_eq!(
        cp.param("RtdInterval", one).unwrap_err().problem,
        CpProblem::RepeatedKey
    );
    assert_eq!(
        cp.param("Info", Value::Text("a;b")).unwrap_err().problem,
        CpProblem::BadValue
    );
    assert_eq!(
        cp.param("DataTime", one).unwrap_err().problem,
        CpProblem::BadDataTime
    );
    assert_eq!(
        cp.group("w01018", &[(Field::Rtd, Value::Text("abc"))], None)
            .unwrap_err()
            .problem,
        CpProblem::BadNumber
    );
    assert_eq!(
        cp.group("w01018", &[(Field::Other("Flag"), Value::Text("N"))], None)
            .unwrap_err()
            .problem,
        CpProblem::BadKey
    );
    assert_eq!(
        cp.group("w01018", &[], Some(DataFlag::Other(b'n')))
            .unwrap_err()
            .problem,
        CpProblem::BadFlag
    );
    assert_eq!(
        cp.group("w01018", &[], None).unwrap_err().problem,
        CpProblem::EmptyEntry
    );
    assert_eq!(
        cp.param("Big", Value::Text(&"x".repeat(MAX_CP_DATA_LEN)))
            .unwrap_err(),
        CpError {
            problem: CpProblem::TooLong,
            at: before.len()
        }
    );
    assert_eq!(cp.cp().as_str(), before);
}

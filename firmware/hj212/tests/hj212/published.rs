//! Frames published by others, decoded and encoded back byte for byte.

use weir_hj212::{
    CommandCode, DataFlag, DataTime, Decimal, Field, Flag, Item, Packet, QnRtn, SystemCode, Value,
};

/// HJ 212-2017 appendix A's example: the platform sets the real-time interval to 30 s.
const STANDARD_1062: &[u8] = b"##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;\
MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n";

/// A real-time upload of an air station, https://blog.csdn.net/qq_17486399/article/details/143863664
const CSDN_2011: &[u8] = b"##0313QN=20241115190408000;ST=27;CN=2011;PW=123456;\
MN=AQI2411132600332;Flag=5;CP=&&DataTime=20241115190408;a21026-Rtd=117;a21004-Rtd=16;\
o31104-Rtd=29;a21005-Rtd=0.14;a34004-Rtd=6;a34002-Rtd=6;a34001-Rtd=6;a01001-Rtd=28.1;\
a01002-Rtd=68;LA-Rtd=49;a01006-Rtd=1002;a06001-Rtd=0.0;a04003-Rtd=0;a01007-Rtd=0.0;\
a01008-Rtd=70&&9901\r\n";

/// HJ/T 212-2005 style (no QN, no Flag), lower-case CRC: github.com/xiaoyao9184/hj-t212-parser,
/// hj-t212-parser/src/test/java/com/xy/format/hbt212/core/T212ParserTest.java.
const XIAOYAO_2005: &[u8] = b"##0136ST=32;CN=2011;PW=000000;MN=LD130133000015;\
CP=&&DataTime=20160824003817;011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,\
060-Flag=N&&1dc0\r\n";

fn number(text: &str) -> Value<'_> {
    Value::Number(Decimal::parse(text).unwrap())
}

#[test]
fn the_standards_example_decodes_and_encodes_back_byte_for_byte() {
    let packet = Packet::decode(STANDARD_1062).unwrap();
    let h = packet.header;
    assert_eq!(h.qn.unwrap().to_string(), "20160801085857223");
    assert_eq!(
        h.qn.unwrap().time(),
        DataTime::new(2016, 8, 1, 8, 58, 57).unwrap()
    );
    assert_eq!(h.st, SystemCode::SURFACE_WATER_POLLUTION_SOURCE);
    assert_eq!(h.cn, CommandCode::SET_REAL_TIME_INTERVAL);
    assert_eq!((h.pw, h.mn), ("100000", "010000A8900016F000169DC0"));
    let flag = h.flag.unwrap();
    assert_eq!(flag.version(), Flag::VERSION_2017);
    assert!(flag.answer_required() && !flag.split());
    assert_eq!(packet.cp.get("RtdInterval"), Some("30"));
    assert_eq!(packet.cp.items().count(), 0);
    assert_eq!(packet.to_frame().unwrap().as_slice(), STANDARD_1062);
}

#[test]
fn the_standards_example_is_answered_as_appendix_c_answers_requests() {
    // Table C.1 ff.: the field unit answers a request with 9011 QnRtn=1 and, once done,
    // 9012 ExeRtn=1, under the request's QN, with ST=91 and Flag=4.
    let request = Packet::decode(STANDARD_1062).unwrap();
    let answer = request.request_answer(QnRtn::Ready).to_frame().unwrap();
    let segment = "QN=20160801085857223;ST=91;CN=9011;PW=100000;MN=010000A8900016F000169DC0;\
Flag=4;CP=&&QnRtn=1&&";
    assert_eq!(answer.as_slice(), super::frame(segment).as_slice());
}

#[test]
fn a_captured_air_station_upload_decodes_and_encodes_back_byte_for_byte() {
    let packet = Packet::decode(CSDN_2011).unwrap();
    assert_eq!(packet.header.cn, CommandCode::REAL_TIME_DATA);
    assert_eq!(packet.header.st.as_str(), "27");
    assert_eq!(packet.cp.data_time(), DataTime::new(2024, 11, 15, 19, 4, 8));
    let items: Vec<Item<'_>> = packet.cp.items().collect();
    assert_eq!(items.len(), 15);
    assert_eq!(
        items[0],
        Item {
            code: "a21026",
            field: Field::Rtd,
            value: number("117"),
            flag: None
        }
    );
    assert_eq!(items[9].code, "LA");
    assert_eq!(items[11].value, number("0.0"));
    assert_eq!(packet.to_frame().unwrap().as_slice(), CSDN_2011);
}

#[test]
fn an_hjt_212_2005_frame_without_qn_and_flag_decodes_and_encodes_back_with_an_upper_case_crc() {
    let packet = Packet::decode(XIAOYAO_2005).unwrap();
    assert_eq!(packet.header.qn, None);
    assert_eq!(packet.header.flag, None);
    assert!(!packet.answer_required());
    let items: Vec<Item<'_>> = packet.cp.items().collect();
    assert_eq!(
        items,
        [
            Item {
                code: "011",
                field: Field::Rtd,
                value: number("231.0"),
                flag: Some(DataFlag::Normal)
            },
            Item {
                code: "B01",
                field: Field::Rtd,
                value: number("36.91"),
                flag: None
            },
            Item {
                code: "060",
                field: Field::Rtd,
                value: number("1.803"),
                flag: Some(DataFlag::Normal)
            },
        ]
    );
    let again = packet.to_frame().unwrap();
    // The frame is the same but for the CRC's case: the standard's example writes 1C80.
    assert_eq!(
        &again[..again.len() - 6],
        &XIAOYAO_2005[..XIAOYAO_2005.len() - 6]
    );
    assert_eq!(&again[again.len() - 6..], b"1DC0\r\n");
}

//! The upload and answer examples of HJ 212-2017 appendix C, written by the builder character
//! for character. The standard prints segments without their frames and ends each data
//! example with "…" (more factors); the segments here stop before the "…" and its `;`.

use weir_hj212::{
    CommandCode, CpBuilder, DataFlag, DataTime, Decimal, Field, Flag, Header, Item, Packet, Qn,
    Split, SystemCode, Value,
};

const MN: &str = "010000A8900016F000169DC0";

fn n(text: &str) -> Value<'_> {
    Value::Number(Decimal::parse(text).unwrap())
}

fn time(text: &str) -> DataTime {
    DataTime::parse(text).unwrap()
}

fn upload<'a>(
    qn: &str,
    cn: CommandCode,
    flag: u8,
    split: Option<Split>,
    cp: &'a CpBuilder,
) -> Packet<'a> {
    Packet {
        header: Header {
            qn: Qn::parse(qn),
            st: SystemCode::SURFACE_WATER_POLLUTION_SOURCE,
            cn,
            pw: "123456",
            mn: MN,
            flag: Some(Flag::from_bits(flag)),
            split,
        },
        cp: cp.cp(),
    }
}

/// Writes `packet`, reads it back, and returns its segment.
fn segment(packet: &Packet<'_>) -> String {
    let frame = packet.to_frame().unwrap();
    assert_eq!(Packet::decode(&frame).as_ref(), Ok(packet));
    String::from_utf8(frame[6..frame.len() - 6].to_vec()).unwrap()
}

/// The w00000, w01001 and w01018 groups of tables C.16 to C.18, with the cumulative amounts
/// that differ between minute, hour and day.
fn statistics(cp: &mut CpBuilder, flow_cou: &str, cod_cou: &str) {
    let n_ = Some(DataFlag::Normal);
    cp.group(
        "w00000",
        &[
            (Field::Cou, n(flow_cou)),
            (Field::Min, n("16.4")),
            (Field::Avg, n("17.5")),
            (Field::Max, n("20.1")),
        ],
        n_,
    )
    .unwrap();
    cp.group(
        "w01001",
        &[
            (Field::Min, n("7.1")),
            (Field::Avg, n("7.5")),
            (Field::Max, n("7.8")),
        ],
        n_,
    )
    .unwrap();
    cp.group(
        "w01018",
        &[
            (Field::Cou, n(cod_cou)),
            (Field::Min, n("40.1")),
            (Field::Avg, n("40.1")),
            (Field::Max, n("40.1")),
        ],
        n_,
    )
    .unwrap();
}

#[test]
fn the_builder_writes_table_c16s_minute_data_upload() {
    let mut cp = CpBuilder::new();
    cp.data_time(time("20160801084000")).unwrap();
    statistics(&mut cp, "10.5", "10.5");
    let packet = upload("20160801085000001", CommandCode::MINUTE_DATA, 5, None, &cp);
    assert_eq!(
        segment(&packet),
        "QN=20160801085000001;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;Flag=5;\
CP=&&DataTime=20160801084000;w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,\
w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;\
w01018-Cou=10.5,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&"
    );
    // And the platform's answer, as the table prints it.
    assert_eq!(
        segment(&packet.data_answer()),
        "QN=20160801085000001;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
    );
}

#[test]
fn the_builder_writes_table_c17s_hourly_data_upload() {
    let mut cp = CpBuilder::new();
    cp.data_time(time("20160801080000")).unwrap();
    statistics(&mut cp, "63.0", "63.0");
    let packet = upload("20160801090000001", CommandCode::HOUR_DATA, 5, None, &cp);
    assert_eq!(
        segment(&packet),
        "QN=20160801090000001;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=5;\
CP=&&DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,\
w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;\
w01018-Cou=63.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&"
    );
}

#[test]
fn the_builder_writes_table_c18s_daily_data_upload() {
    let mut cp = CpBuilder::new();
    cp.data_time(time("20160801000000")).unwrap();
    statistics(&mut cp, "1512.0", "2142.0");
    let packet = upload("20160802000000001", CommandCode::DAY_DATA, 5, None, &cp);
    assert_eq!(
        segment(&packet),
        "QN=20160802000000001;ST=32;CN=2031;PW=123456;MN=010000A8900016F000169DC0;Flag=5;\
CP=&&DataTime=20160801000000;w00000-Cou=1512.0,w00000-Min=16.4,w00000-Avg=17.5,\
w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N;\
w01018-Cou=2142.0,w01018-Min=40.1,w01018-Avg=40.1,w01018-Max=40.1,w01018-Flag=N&&"
    );
}

#[test]
fn the_builder_writes_table_c14s_real_time_upload_from_items() {
    // Table C.14 prints "01018-Rtd" for "w01018-Rtd", a misprint, and ends the group with
    // "w01018-EFlag=A01" after the flag; the builder writes a group's flag last, so this
    // leaves the EFlag out. The rest is as printed.
    let mut cp = CpBuilder::new();
    cp.data_time(time("20160801085857")).unwrap();
    let normal = Some(DataFlag::Normal);
    cp.items(&[
        Item {
            code: "w01001",
            field: Field::Rtd,
            value: n("7.1"),
            flag: normal,
        },
        Item {
            code: "w01018",
            field: Field::SampleTime,
            value: Value::Text("20160801070000"),
            flag: normal,
        },
        Item {
            code: "w01018",
            field: Field::Rtd,
            value: n("2.2"),
            flag: normal,
        },
    ])
    .unwrap();
    let packet = upload(
        "20160801085857223",
        CommandCode::REAL_TIME_DATA,
        5,
        None,
        &cp,
    );
    assert_eq!(
        segment(&packet),
        "QN=20160801085857223;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;Flag=5;\
CP=&&DataTime=20160801085857;w01001-Rtd=7.1,w01001-Flag=N;\
w01018-SampleTime=20160801070000,w01018-Rtd=2.2,w01018-Flag=N&&"
    );
}

#[test]
fn table_c50s_split_hourly_upload_carries_pnum_and_pno_and_gets_a_plain_data_answer() {
    let text = "QN=20160801085857534;ST=32;CN=2061;PW=123456;MN=010000A8900016F000169DC0;Flag=7;\
PNUM=2;PNO=1;CP=&&DataTime=20160801080000;w00000-Cou=63.0,w00000-Min=16.4,w00000-Avg=17.5,\
w00000-Max=20.1,w00000-Flag=N;w01001-Min=7.1,w01001-Avg=7.5,w01001-Max=7.8,w01001-Flag=N&&";
    let frame = super::frame(text);
    let packet = Packet::decode(&frame).unwrap();
    let flag = packet.header.flag.unwrap();
    assert!(flag.split() && flag.answer_required());
    assert_eq!(packet.header.split, Split::new(2, 1));
    assert_eq!(segment(&packet), text);
    assert_eq!(
        segment(&packet.data_answer()),
        "QN=20160801085857534;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;Flag=4;CP=&&&&"
    );
}

#[test]
fn table_c1s_request_gets_the_request_answer_and_execution_result_the_table_prints() {
    let request = super::frame(
        "QN=20160801085857223;ST=32;CN=1000;PW=123456;MN=010000A8900016F000169DC0;Flag=5;\
CP=&&OverTime=5;ReCount=3&&",
    );
    let request = Packet::decode(&request).unwrap();
    assert_eq!(request.cp.get("OverTime"), Some("5"));
    assert_eq!(
        segment(&request.request_answer(weir_hj212::QnRtn::Ready)),
        "QN=20160801085857223;ST=91;CN=9011;PW=123456;MN=010000A8900016F000169DC0;Flag=4;\
CP=&&QnRtn=1&&"
    );
    assert_eq!(
        segment(&request.execution_result(weir_hj212::ExeRtn::Success)),
        "QN=20160801085857223;ST=91;CN=9012;PW=123456;MN=010000A8900016F000169DC0;Flag=4;\
CP=&&ExeRtn=1&&"
    );
    assert_eq!(
        request.notification_answer().header.cn,
        CommandCode::NOTIFICATION_ANSWER
    );
}

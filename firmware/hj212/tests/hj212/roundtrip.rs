//! Weir's uploads written and read back, and the value types on their own.

use weir_hj212::codes::{FLOW, SLUDGE_LEVEL, TURBIDITY, WEIR_FACTORS};
use weir_hj212::{
    frame_len, CommandCode, CpBuilder, DataFlag, DataTime, Decimal, Field, Flag, Header, Item,
    Packet, Qn, SystemCode, Value, MAX_FRAME_LEN,
};

fn weir_header(cn: CommandCode, qn: Qn) -> Header<'static> {
    Header {
        qn: Some(qn),
        st: SystemCode::SURFACE_WATER_POLLUTION_SOURCE,
        cn,
        pw: "123456",
        mn: "W0000000000000000000T001",
        flag: Flag::new(Flag::VERSION_2017, false, true),
        split: None,
    }
}

fn num(value: f64, decimals: u8) -> Value<'static> {
    Value::Number(Decimal::from_f64(value, decimals).unwrap())
}

#[test]
fn a_real_time_upload_of_weirs_three_quantities_reads_back_as_written() {
    let time = DataTime::new(2026, 3, 1, 8, 15, 0).unwrap();
    let items = [
        // 4.5 m3/h is 1.25 L/s.
        Item {
            code: FLOW.code,
            field: Field::Rtd,
            value: num(4.5 / 3.6, FLOW.decimals),
            flag: Some(DataFlag::Normal),
        },
        Item {
            code: TURBIDITY.code,
            field: Field::Rtd,
            value: num(12.34, TURBIDITY.decimals),
            flag: Some(DataFlag::Normal),
        },
        Item {
            code: SLUDGE_LEVEL.code,
            field: Field::Rtd,
            value: num(0.8125, SLUDGE_LEVEL.decimals),
            flag: Some(DataFlag::Fault),
        },
    ];
    let mut cp = CpBuilder::new();
    cp.data_time(time).unwrap().items(&items).unwrap();
    assert_eq!(
        cp.cp().as_str(),
        "DataTime=20260301081500;w00000-Rtd=1.25,w00000-Flag=N;w01003-Rtd=12.3,w01003-Flag=N;\
e71001-Rtd=0.813,e71001-Flag=D"
    );
    let packet = Packet {
        header: weir_header(CommandCode::REAL_TIME_DATA, Qn::new(time, 7).unwrap()),
        cp: cp.cp(),
    };
    let mut buf = [0u8; MAX_FRAME_LEN];
    let len = packet.encode(&mut buf).unwrap();
    assert_eq!(frame_len(&buf[..6]), Ok(Some(len)));
    let back = Packet::decode(&buf[..len]).unwrap();
    assert_eq!(back, packet);
    assert_eq!(back.cp.data_time(), Some(time));
    assert_eq!(back.cp.items().collect::<Vec<_>>(), items);
    assert_eq!(back.header.qn.unwrap().to_string(), "20260301081500007");
}

#[test]
fn minute_hour_and_day_uploads_carry_cou_min_avg_max_per_factor() {
    for cn in [
        CommandCode::MINUTE_DATA,
        CommandCode::HOUR_DATA,
        CommandCode::DAY_DATA,
    ] {
        let time = DataTime::new(2026, 3, 1, 0, 0, 0).unwrap();
        let normal = Some(DataFlag::Normal);
        let flow = [
            (Field::Cou, num(108.0, 2)),
            (Field::Min, num(0.0, 2)),
            (Field::Avg, num(1.25, 2)),
            (Field::Max, num(3.5, 2)),
        ];
        let mut cp = CpBuilder::new();
        cp.data_time(time).unwrap();
        cp.group(FLOW.code, &flow, normal).unwrap();
        cp.group(
            TURBIDITY.code,
            &[
                (Field::Min, num(3.0, 1)),
                (Field::Avg, num(5.25, 1)),
                (Field::Max, num(9.0, 1)),
            ],
            normal,
        )
        .unwrap();
        let packet = Packet {
            header: weir_header(cn, Qn::new(time, 1).unwrap()),
            cp: cp.cp(),
        };
        let frame = packet.to_frame().unwrap();
        let back = Packet::decode(&frame).unwrap();
        assert_eq!(back.header.cn, cn);
        let flow_back: Vec<_> = back
            .cp
            .items()
            .filter(|i| i.code == "w00000")
            .map(|i| (i.field, i.value))
            .collect();
        assert_eq!(flow_back, flow);
        assert_eq!(back.cp.get("w01003-Avg"), Some("5.3"));
        assert_eq!(back.cp.get("w00000-Cou"), Some("108.00"));
    }
}

#[test]
fn the_data_answer_to_a_weir_upload_decodes_as_a_9014_with_the_uploads_qn() {
    let time = DataTime::new(2026, 3, 1, 8, 15, 0).unwrap();
    let mut cp = CpBuilder::new();
    cp.data_time(time).unwrap();
    let upload = Packet {
        header: weir_header(CommandCode::REAL_TIME_DATA, Qn::new(time, 999).unwrap()),
        cp: cp.cp(),
    };
    let answer = upload.data_answer().to_frame().unwrap();
    let answer = Packet::decode(&answer).unwrap();
    assert_eq!(answer.header.cn, CommandCode::DATA_ANSWER);
    assert_eq!(answer.header.st, SystemCode::SYSTEM_INTERACTION);
    assert_eq!(answer.header.qn, upload.header.qn);
    assert_eq!(answer.header.flag.map(Flag::bits), Some(4));
    assert!(!answer.answer_required());
    assert!(answer.cp.is_empty());
}

#[test]
fn weirs_factor_table_names_flow_as_the_standards_w00000_and_the_rest_as_not_the_standards() {
    use weir_hj212::codes::Source;
    assert_eq!(FLOW.code, "w00000");
    assert_eq!(FLOW.source, Source::Standard { table: "B.1" });
    assert_eq!(TURBIDITY.source, Source::Hj525);
    assert_eq!(SLUDGE_LEVEL.source, Source::Weir);
    assert_eq!(WEIR_FACTORS.len(), 3);
}

#[test]
fn decimals_write_back_as_they_were_read() {
    for text in [
        "0",
        "7",
        "-0.5",
        "-0.05",
        "231.0",
        "0.000",
        "12.30",
        "-0",
        "123456789012345.67",
    ] {
        assert_eq!(Decimal::parse(text).unwrap().to_string(), text, "{text}");
    }
    for bad in [
        "",
        "-",
        "+1",
        "01",
        "1.",
        ".5",
        "1e3",
        "1.2.3",
        " 1",
        "1234567890123456789",
    ] {
        assert_eq!(Decimal::parse(bad), None, "{bad:?}");
    }
    assert_eq!(Decimal::new(1230, 2).unwrap().to_string(), "12.30");
    assert_eq!(Decimal::new(-5, 3).unwrap().to_string(), "-0.005");
    assert_eq!(Decimal::from_f64(1.005, 1).unwrap().to_string(), "1.0");
    assert_eq!(Decimal::from_f64(-2.25, 1).unwrap().mantissa(), -23);
    assert_eq!(Decimal::from_f64(-0.001, 1).unwrap().to_string(), "0.0");
    assert_eq!(Decimal::from_f64(f64::NAN, 1), None);
    assert_eq!(Decimal::from_f64(1e300, 1), None);
    assert_eq!(Decimal::parse("17.5").unwrap().to_f64(), 17.5);
}

#[test]
fn data_times_exist_or_are_refused() {
    assert!(DataTime::new(2024, 2, 29, 23, 59, 59).is_some());
    assert!(DataTime::new(2025, 2, 29, 0, 0, 0).is_none());
    assert!(DataTime::new(1900, 2, 29, 0, 0, 0).is_none());
    assert!(DataTime::new(2000, 2, 29, 0, 0, 0).is_some());
    assert!(DataTime::new(2026, 4, 31, 0, 0, 0).is_none());
    assert!(DataTime::new(2026, 1, 1, 24, 0, 0).is_none());
    assert_eq!(
        DataTime::parse("20260301081500").unwrap().to_string(),
        "20260301081500"
    );
    assert_eq!(DataTime::parse("2026030108150"), None);
    assert_eq!(DataTime::parse("2026030108150x"), None);
    assert_eq!(Qn::parse("20260301081500123").unwrap().millis(), 123);
    assert_eq!(Qn::parse("2026030108150012"), None);
}

#[test]
fn the_flag_holds_the_version_and_the_two_bits() {
    let flag = Flag::new(Flag::VERSION_2017, true, true).unwrap();
    assert_eq!(flag.bits(), 7);
    assert_eq!(
        (flag.version(), flag.split(), flag.answer_required()),
        (1, true, true)
    );
    assert_eq!(
        Flag::new(Flag::VERSION_2017, false, false).unwrap().bits(),
        4
    );
    assert_eq!(Flag::new(64, false, false), None);
    assert_eq!(Flag::from_bits(8).version(), Flag::VERSION_2025);
}

#[test]
fn the_example_frames_in_docs_hj212_md_decode_as_described() {
    let real_time =
        b"##0200QN=20260301081500000;ST=32;CN=2011;PW=123456;MN=010000A8900016F000169DC0;\
Flag=5;CP=&&DataTime=20260301081500;w00000-Rtd=1.25,w00000-Flag=N;w01003-Rtd=3.4,w01003-Flag=N;\
e71001-Rtd=0.830,e71001-Flag=N&&4980\r\n";
    let minute = b"##0312QN=20260301082000000;ST=32;CN=2051;PW=123456;MN=010000A8900016F000169DC0;\
Flag=5;CP=&&DataTime=20260301081000;w00000-Cou=0.76,w00000-Min=1.10,w00000-Avg=1.27,\
w00000-Max=1.41,w00000-Flag=N;w01003-Min=3.1,w01003-Avg=3.4,w01003-Max=3.9,w01003-Flag=N;\
e71001-Min=0.820,e71001-Avg=0.826,e71001-Max=0.830,e71001-Flag=N&&EE01\r\n";
    let answer = b"##0087QN=20260301081500000;ST=91;CN=9014;PW=123456;MN=010000A8900016F000169DC0;\
Flag=4;CP=&&&&5A00\r\n";
    let real_time = Packet::decode(real_time).unwrap();
    assert_eq!(real_time.cp.items().count(), 3);
    assert_eq!(Packet::decode(minute).unwrap().cp.items().count(), 10);
    assert_eq!(
        real_time.data_answer().to_frame().unwrap().as_slice(),
        answer
    );
}

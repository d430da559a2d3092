//! The CRC of appendix A against CRCs published with real frames.

use weir_hj212::crc16;

/// The data segment of the example in HJ 212-2017 appendix A (also quoted, with the
/// standard's own misprint corrected, at https://www.cnblogs.com/LiuSiyuan/p/8110192.html).
const STANDARD_SEGMENT: &str = "QN=20160801085857223;ST=32;CN=1062;PW=100000;\
MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&";

#[test]
fn the_standards_appendix_a_example_has_crc_1c80() {
    // HJ 212-2017 appendix A: "其中 1C80 为CRC16 校验码".
    assert_eq!(crc16(STANDARD_SEGMENT.as_bytes()), 0x1C80);
}

#[test]
fn a_captured_air_station_frame_has_crc_9901() {
    // A real-time upload captured from an air quality station, printed in hex in
    // https://blog.csdn.net/qq_17486399/article/details/143863664 (frame ends "&&9901\r\n").
    let segment = "QN=20241115190408000;ST=27;CN=2011;PW=123456;MN=AQI2411132600332;Flag=5;\
CP=&&DataTime=20241115190408;a21026-Rtd=117;a21004-Rtd=16;o31104-Rtd=29;a21005-Rtd=0.14;\
a34004-Rtd=6;a34002-Rtd=6;a34001-Rtd=6;a01001-Rtd=28.1;a01002-Rtd=68;LA-Rtd=49;\
a01006-Rtd=1002;a06001-Rtd=0.0;a04003-Rtd=0;a01007-Rtd=0.0;a01008-Rtd=70&&";
    assert_eq!(segment.len(), 313);
    assert_eq!(crc16(segment.as_bytes()), 0x9901);
}

#[test]
fn the_java_parsers_test_frames_have_crcs_4980_and_1dc0() {
    // github.com/xiaoyao9184/hj-t212-parser, T212MapperTest.java (CRC 4980) and
    // T212ParserTest.java (CRC 1dc0): HJ/T 212-2005 style segments without QN and Flag.
    let with_millis = "ST=32;CN=2011;PW=123456;MN=LD130133000015;CP=&&DataTime=20160824003817000;\
B01-Rtd=36.91;011-Rtd=231.0,011-Flag=N;060-Rtd=1.803,060-Flag=N&&";
    let reordered = "ST=32;CN=2011;PW=000000;MN=LD130133000015;CP=&&DataTime=20160824003817;\
011-Rtd=231.0,011-Flag=N;B01-Rtd=36.91;060-Rtd=1.803,060-Flag=N&&";
    assert_eq!(crc16(with_millis.as_bytes()), 0x4980);
    assert_eq!(crc16(reordered.as_bytes()), 0x1DC0);
}

#[test]
fn the_crc_is_not_crc16_modbus() {
    // CRC-16/MODBUS of "123456789" is 0x4B37; appendix A XORs each byte into the register's
    // high byte instead, and gives 0x2F80 (worked by hand from the appendix's steps and
    // checked with an independent script).
    assert_eq!(crc16(b"123456789"), 0x2F80);
    assert_ne!(crc16(b"123456789"), 0x4B37);
}

#[test]
fn the_crc_of_nothing_is_the_initial_register() {
    assert_eq!(crc16(b""), 0xFFFF);
}

#[test]
fn every_single_byte_change_changes_the_crc() {
    // Each byte goes through an 8-bit state whose next value is a bijection of it, so one
    // changed byte always shows.
    let base = STANDARD_SEGMENT.as_bytes().to_vec();
    for i in 0..base.len() {
        for delta in 1..=255u8 {
            let mut changed = base.clone();
            changed[i] = changed[i].wrapping_add(delta);
            assert_ne!(crc16(&changed), 0x1C80, "byte {i} + {delta}");
        }
    }
}

#[test]
fn the_crc_takes_only_256_values() {
    // The register after the last byte is the table entry of one 8-bit value, so a frame
    // corrupted in more than one byte passes the check once in 256 times. docs/hj212.md says so.
    let mut seen = std::collections::HashSet::new();
    let mut segment = Vec::new();
    for i in 0u32..20_000 {
        segment.push((i.wrapping_mul(2_654_435_761) >> 24) as u8);
        if segment.len() > 40 {
            segment.clear();
        }
        seen.insert(crc16(&segment));
    }
    assert!(seen.len() <= 257, "{} values", seen.len());
}

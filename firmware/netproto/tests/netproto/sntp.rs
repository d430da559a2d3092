use weir_netproto::sntp::{
    ntp_to_unix_ms, transmit_time_unix_ms, ParseError, NTP_TO_UNIX_S, PACKET_LEN, REQUEST,
};

/// 2024-01-01T00:00:00Z: 1,704,067,200 s after 1970 and 3,913,056,000 s after 1900.
const NEW_YEAR_2024_UNIX_S: i64 = 1_704_067_200;
const NEW_YEAR_2024_NTP_S: u32 = 3_913_056_000;

/// A server's answer: leap indicator 0, version 4, mode 4, `stratum`, and the transmit time.
fn answer(stratum: u8, seconds: u32, fraction: u32) -> [u8; PACKET_LEN] {
    let mut m = [0u8; PACKET_LEN];
    m[0] = 0b00_100_100;
    m[1] = stratum;
    m[2] = 6; // poll
    m[3] = 0xEC; // precision
                 // Reference, originate and receive timestamps: anything, they are not read.
    m[16..40].fill(0x5A);
    m[40..44].copy_from_slice(&seconds.to_be_bytes());
    m[44..48].copy_from_slice(&fraction.to_be_bytes());
    m
}

#[test]
fn the_request_is_version_4_client_mode_and_otherwise_zero() {
    assert_eq!(REQUEST.len(), 48);
    // LI 0 (bits 7-6), VN 4 (bits 5-3), mode 3 (bits 2-0).
    assert_eq!(REQUEST[0], 0b00_100_011);
    assert!(REQUEST[1..].iter().all(|&b| b == 0));
}

#[test]
fn the_epoch_offset_maps_a_known_date_to_its_unix_time() {
    assert_eq!(
        i64::from(NEW_YEAR_2024_NTP_S) - i64::from(NTP_TO_UNIX_S),
        NEW_YEAR_2024_UNIX_S
    );
    assert_eq!(
        ntp_to_unix_ms(NEW_YEAR_2024_NTP_S, 0),
        NEW_YEAR_2024_UNIX_S * 1000
    );
    assert_eq!(ntp_to_unix_ms(NTP_TO_UNIX_S, 0), 0, "1970-01-01T00:00:00Z");
}

#[test]
fn a_fraction_is_in_units_of_2_to_the_minus_32_seconds_rounded_down_to_the_millisecond() {
    let base = NEW_YEAR_2024_UNIX_S * 1000;
    assert_eq!(ntp_to_unix_ms(NEW_YEAR_2024_NTP_S, 0x8000_0000), base + 500);
    assert_eq!(ntp_to_unix_ms(NEW_YEAR_2024_NTP_S, 0x4000_0000), base + 250);
    assert_eq!(ntp_to_unix_ms(NEW_YEAR_2024_NTP_S, u32::MAX), base + 999);
    // 1 ms is 4,294,967.296 units: one unit short of it is still 0 ms.
    assert_eq!(ntp_to_unix_ms(NEW_YEAR_2024_NTP_S, 4_294_967), base);
    assert_eq!(ntp_to_unix_ms(NEW_YEAR_2024_NTP_S, 4_294_968), base + 1);
}

#[test]
fn seconds_below_the_epoch_offset_belong_to_era_1_from_february_2036() {
    // The last second of era 0: 2036-02-07T06:28:15Z.
    assert_eq!(ntp_to_unix_ms(u32::MAX, 0), 2_085_978_495_000);
    // The first seconds of era 1: 2036-02-07T06:28:16Z and one second later.
    assert_eq!(ntp_to_unix_ms(0, 0), 2_085_978_496_000);
    assert_eq!(ntp_to_unix_ms(1, 0), 2_085_978_497_000);
    // The last second read as era 1: 2106-02-07T06:28:15Z, 2^32 - 1 s after 1970.
    assert_eq!(ntp_to_unix_ms(NTP_TO_UNIX_S - 1, 0), 4_294_967_295_000);
}

#[test]
fn a_server_answer_gives_its_transmit_time() {
    let m = answer(2, NEW_YEAR_2024_NTP_S, 0x4000_0000);
    assert_eq!(
        transmit_time_unix_ms(&m),
        Ok(NEW_YEAR_2024_UNIX_S * 1000 + 250)
    );
}

#[test]
fn an_answer_with_an_extension_or_key_after_the_48_bytes_is_read_the_same() {
    let mut m = answer(1, NEW_YEAR_2024_NTP_S, 0).to_vec();
    m.extend_from_slice(&[0xFF; 20]);
    assert_eq!(transmit_time_unix_ms(&m), Ok(NEW_YEAR_2024_UNIX_S * 1000));
}

#[test]
fn an_answer_shorter_than_48_bytes_is_refused() {
    let m = answer(2, NEW_YEAR_2024_NTP_S, 0);
    for len in 0..PACKET_LEN {
        assert_eq!(transmit_time_unix_ms(&m[..len]), Err(ParseError::TooShort));
    }
}

#[test]
fn anything_but_mode_4_is_not_a_server_answer() {
    assert_eq!(
        transmit_time_unix_ms(&REQUEST),
        Err(ParseError::NotAServerReply)
    );
    let mut m = answer(2, NEW_YEAR_2024_NTP_S, 0);
    m[0] = 0b00_100_101; // broadcast
    assert_eq!(transmit_time_unix_ms(&m), Err(ParseError::NotAServerReply));
}

#[test]
fn a_kiss_of_death_or_an_unsynchronised_server_is_refused() {
    let mut kod = answer(0, NEW_YEAR_2024_NTP_S, 0);
    kod[12..16].copy_from_slice(b"RATE");
    assert_eq!(
        transmit_time_unix_ms(&kod),
        Err(ParseError::Unsynchronised { stratum: 0 })
    );
    assert_eq!(
        transmit_time_unix_ms(&answer(16, NEW_YEAR_2024_NTP_S, 0)),
        Err(ParseError::Unsynchronised { stratum: 16 })
    );
    assert!(transmit_time_unix_ms(&answer(15, NEW_YEAR_2024_NTP_S, 0)).is_ok());
}

#[test]
fn a_zero_transmit_time_is_refused() {
    assert_eq!(
        transmit_time_unix_ms(&answer(2, 0, 0x8000_0000)),
        Err(ParseError::NoTransmitTime)
    );
}

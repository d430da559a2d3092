use embedded_hal_mock::eh1::delay::{CheckedDelay, Transaction as DelayTx};
use weir_contract::Fault;
use weir_drivers::ultrasonic::{Config, Error, UltrasonicSensor, MAX_SCAN_BYTES};
use weir_drivers::FaultCode;

use crate::support::{ScriptedUart, Step};

/// The datasheet's example frame: 0x07A1 = 1953 mm, SUM 0xA7.
const FRAME_1953: [u8; 4] = [0xFF, 0x07, 0xA1, 0xA7];

/// 1 ms polls, a 5 ms timeout.
const CONFIG: Config = Config {
    timeout_us: 5_000,
    poll_interval_us: 1_000,
    ..Config::new()
};
const TIMEOUT_POLLS: usize = 5;

type Sensor = UltrasonicSensor<ScriptedUart, CheckedDelay>;

/// A sensor whose UART plays `script`, expecting `polls` empty polls of 1 ms.
fn sensor(script: Vec<Step>, polls: usize) -> Sensor {
    let delays = vec![DelayTx::delay_us(1_000); polls];
    UltrasonicSensor::new(
        ScriptedUart::new(script),
        CheckedDelay::new(&delays),
        CONFIG,
    )
}

/// Nothing buffered, then `polls` empty polls, then `bytes` arrive.
fn fresh_after(polls: usize, bytes: &[u8]) -> Vec<Step> {
    // One more idle answer for the check of stale input that starts every read.
    vec![Step::Idle(polls + 1), Step::Reply(bytes.to_vec())]
}

fn finish(sensor: Sensor) {
    let (uart, mut delay) = sensor.destroy();
    uart.done();
    delay.done();
}

fn read_distance(script: Vec<Step>, polls: usize) -> Result<u16, Error<embedded_io::ErrorKind>> {
    let mut sensor = sensor(script, polls);
    let result = sensor.read_distance_mm();
    finish(sensor);
    result
}

#[test]
fn the_datasheet_frame_reads_1953_mm() {
    assert_eq!(read_distance(fresh_after(2, &FRAME_1953), 2), Ok(1953));
}

#[test]
fn input_buffered_before_the_read_is_discarded() {
    let script = vec![
        Step::Reply(vec![0xFF, 0x00, 0x64, 0x63, 0xFF, 0x00]),
        Step::Idle(1),
        Step::Reply(FRAME_1953.to_vec()),
    ];
    assert_eq!(read_distance(script, 0), Ok(1953));
}

#[test]
fn the_reader_resynchronises_after_garbage() {
    // Noise, then a 0xFF that starts no frame, then the frame.
    let mut bytes = vec![0x00, 0x12, 0xFF];
    bytes.extend(FRAME_1953);
    assert_eq!(read_distance(fresh_after(0, &bytes), 0), Ok(1953));
}

#[test]
fn a_frame_whose_distance_contains_0xff_is_found_after_a_cut_frame() {
    // A cut frame "FF 0F", then 0x0FFF = 4095 mm, whose low byte is 0xFF (SUM 0x0D).
    let bytes = [0xFF, 0x0F, 0xFF, 0x0F, 0xFF, 0x0D];
    assert_eq!(read_distance(fresh_after(0, &bytes), 0), Ok(4095));
}

#[test]
fn a_frame_with_a_bad_sum_is_skipped_for_the_next_good_one() {
    // 300 mm is 0x012C, SUM 0x2C.
    let bytes = [0xFF, 0x07, 0xA1, 0x00, 0xFF, 0x01, 0x2C, 0x2C];
    assert_eq!(read_distance(fresh_after(1, &bytes), 1), Ok(300));
}

#[test]
fn a_bad_sum_followed_by_silence_is_a_checksum_fault() {
    let script = vec![Step::Idle(1), Step::Reply(vec![0xFF, 0x07, 0xA1, 0x00])];
    let error = read_distance(script, TIMEOUT_POLLS).unwrap_err();
    assert_eq!(error, Error::Checksum);
    assert_eq!(error.fault(), Fault::Checksum);
}

#[test]
fn a_stream_of_bad_frames_is_given_up_after_max_scan_bytes() {
    let bad: Vec<u8> = [0xFF, 0x07, 0xA1, 0x00].repeat(MAX_SCAN_BYTES / 4);
    // The scan stops at exactly MAX_SCAN_BYTES: the script holds no byte more.
    assert_eq!(read_distance(fresh_after(0, &bad), 0), Err(Error::Checksum));
}

#[test]
fn a_silent_sensor_times_out_after_the_scripted_number_of_polls() {
    let error = read_distance(vec![], TIMEOUT_POLLS).unwrap_err();
    assert_eq!(error, Error::Timeout);
    assert_eq!(error.fault(), Fault::NoResponse);
}

#[test]
fn a_distance_inside_the_blind_zone_is_out_of_range() {
    // 20 mm is 0x0014, SUM 0x13.
    let error = read_distance(fresh_after(0, &[0xFF, 0x00, 0x14, 0x13]), 0).unwrap_err();
    assert_eq!(error.fault(), Fault::OutOfRange);
}

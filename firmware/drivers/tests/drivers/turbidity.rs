use weir_contract::Fault;
use weir_drivers::modbus::{self, RegisterKind, WordOrder};
use weir_drivers::turbidity::{Config, Error, TurbidityProbe};
use weir_drivers::FaultCode;

use crate::support::{finish, with_crc, ModbusScript, TestMaster, RESPONSE_POLLS};

/// Reading holding registers 0-1 of slave 1, the default layout.
fn default_request() -> Vec<u8> {
    with_crc(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x02])
}

/// Slave 1's answer carrying `registers`.
fn answer(registers: [u16; 2]) -> Vec<u8> {
    let mut frame = vec![0x01, 0x03, 0x04];
    frame.extend(registers.iter().flat_map(|r| r.to_be_bytes()));
    with_crc(&frame)
}

/// One read of the default probe against a master scripted with one request and `reply`.
fn read_default(reply: &[u8]) -> Result<f32, Error<modbus::Error<embedded_io::ErrorKind>>> {
    let master = ModbusScript::new()
        .request(&default_request())
        .reply_after(2, reply)
        .master(2);
    read_and_finish(master, Config::new(1))
}

fn read_and_finish(
    mut master: TestMaster,
    config: Config,
) -> Result<f32, Error<modbus::Error<embedded_io::ErrorKind>>> {
    let result = TurbidityProbe::new(&mut master, config).read();
    finish(master);
    result
}

#[test]
fn turbidity_probe_reads_a_big_endian_float() {
    // 3.4 NTU is 0x4059999A.
    assert_eq!(read_default(&answer([0x4059, 0x999A])), Ok(3.4));
}

#[test]
fn turbidity_probe_reads_a_word_swapped_float_from_input_registers_at_a_configured_address() {
    let master = ModbusScript::new()
        .request(&with_crc(&[0x05, 0x04, 0x00, 0x2A, 0x00, 0x02]))
        .reply_after(0, &with_crc(&[0x05, 0x04, 0x04, 0x99, 0x9A, 0x40, 0x59]))
        .master(2);
    let config = Config {
        registers: RegisterKind::Input,
        address: 0x002A,
        word_order: WordOrder::Cdab,
        ..Config::new(5)
    };

    assert_eq!(read_and_finish(master, config), Ok(3.4));
}

#[test]
fn turbidity_probe_reads_the_same_bytes_differently_in_each_word_order() {
    // 0x4059999A read as CDAB is 0x999A4059, a tiny negative number: out of range. This guards
    // against a probe configured with the wrong order passing silently.
    let master = ModbusScript::new()
        .request(&default_request())
        .reply_after(0, &answer([0x4059, 0x999A]))
        .master(2);
    let config = Config {
        word_order: WordOrder::Cdab,
        ..Config::new(1)
    };

    assert_eq!(read_and_finish(master, config), Err(Error::OutOfRange));
}

#[test]
fn turbidity_probe_reports_a_checksum_fault_after_three_bad_crcs() {
    let mut bad = answer([0x4059, 0x999A]);
    bad[4] ^= 0x01;
    let master = ModbusScript::new()
        .request(&default_request())
        .reply_after(1, &bad)
        .request(&default_request())
        .reply_after(1, &bad)
        .request(&default_request())
        .reply_after(1, &bad)
        .master(2);

    let error = read_and_finish(master, Config::new(1)).unwrap_err();

    assert_eq!(error, Error::Modbus(modbus::Error::Checksum));
    assert_eq!(Fault::from(error), Fault::Checksum);
}

#[test]
fn a_silent_turbidity_probe_is_a_no_response_fault() {
    let mut script = ModbusScript::new();
    for _ in 0..3 {
        script = script.request(&default_request()).quiet(RESPONSE_POLLS);
    }

    let error = read_and_finish(script.master(2), Config::new(1)).unwrap_err();

    assert_eq!(error.fault(), Fault::NoResponse);
}

#[test]
fn negative_turbidity_is_out_of_range() {
    // -1.0 is 0xBF800000.
    let error = read_default(&answer([0xBF80, 0x0000])).unwrap_err();
    assert_eq!(error, Error::OutOfRange);
    assert_eq!(error.fault(), Fault::OutOfRange);
}

#[test]
fn a_nan_from_the_probe_is_out_of_range() {
    assert_eq!(
        read_default(&answer([0x7FC0, 0x0000])),
        Err(Error::OutOfRange)
    );
}

#[test]
fn turbidity_above_the_probe_range_is_out_of_range() {
    // 1500.0 is 0x44BB8000; the default probe measures up to 1000 NTU.
    assert_eq!(
        read_default(&answer([0x44BB, 0x8000])),
        Err(Error::OutOfRange)
    );
}

#[test]
fn the_top_of_the_probe_range_is_a_value() {
    // 1000.0 is 0x447A0000.
    assert_eq!(read_default(&answer([0x447A, 0x0000])), Ok(1000.0));
}

#[test]
fn a_probe_exception_is_a_sensor_error() {
    let error = read_default(&with_crc(&[0x01, 0x83, 0x04])).unwrap_err();
    assert_eq!(error, Error::Modbus(modbus::Error::Exception(0x04)));
    assert_eq!(error.fault(), Fault::SensorError);
}

use weir_contract::Fault;
use weir_drivers::flow_meter::{Config, Error, FlowMeter};
use weir_drivers::modbus::{self, RegisterKind, WordOrder};
use weir_drivers::FaultCode;

use crate::support::{finish, with_crc, ModbusScript, TestMaster};

type Result<T> = core::result::Result<T, Error<modbus::Error<embedded_io::ErrorKind>>>;

/// Input registers 0x1010-0x1011 of slave 2: the flow.
fn flow_request() -> Vec<u8> {
    with_crc(&[0x02, 0x04, 0x10, 0x10, 0x00, 0x02])
}

/// Input registers 0x1018-0x101B of slave 2: the totaliser.
fn total_request() -> Vec<u8> {
    with_crc(&[0x02, 0x04, 0x10, 0x18, 0x00, 0x04])
}

fn answer(function: u8, registers: &[u16]) -> Vec<u8> {
    let mut frame = vec![0x02, function, 2 * registers.len() as u8];
    frame.extend(registers.iter().flat_map(|r| r.to_be_bytes()));
    with_crc(&frame)
}

fn finish_with<T>(
    mut master: TestMaster,
    read: impl FnOnce(&mut FlowMeter<&mut TestMaster>) -> T,
) -> T {
    let result = read(&mut FlowMeter::new(&mut master, Config::new(2)));
    finish(master);
    result
}

fn read_flow(registers: [u16; 2]) -> Result<f32> {
    let master = ModbusScript::new()
        .request(&flow_request())
        .reply_after(1, &answer(0x04, &registers))
        .master(2);
    finish_with(master, |m| m.read_flow())
}

fn read_total(registers: [u16; 4]) -> Result<f64> {
    let master = ModbusScript::new()
        .request(&total_request())
        .reply_after(1, &answer(0x04, &registers))
        .master(2);
    finish_with(master, |m| m.read_total())
}

#[test]
fn flow_is_read_word_swapped_from_input_register_0x1010() {
    // 1.52 m3/h is 0x3FC28F5C; word-swapped, the low word comes first.
    assert_eq!(read_flow([0x8F5C, 0x3FC2]), Ok(1.52));
}

#[test]
fn the_totaliser_joins_its_integer_and_fraction_read_in_one_request() {
    // 10234 is 0x000027FA and 0.5 is 0x3F000000, both word-swapped.
    assert_eq!(read_total([0x27FA, 0x0000, 0x0000, 0x3F00]), Ok(10234.5));
}

#[test]
fn the_totaliser_keeps_the_fraction_decimal_form() {
    // 0.3 as an f32 (0x3E99999A) is 0.30000001192...; the total must still be 12.3.
    assert_eq!(read_total([0x000C, 0x0000, 0x999A, 0x3E99]), Ok(12.3));
}

#[test]
fn a_meter_with_another_map_is_read_where_configured() {
    let mut master = ModbusScript::new()
        .request(&with_crc(&[0x07, 0x03, 0x00, 0x10, 0x00, 0x02]))
        .reply_after(0, &with_crc(&[0x07, 0x03, 0x04, 0x3F, 0xC2, 0x8F, 0x5C]))
        .master(0);
    let config = Config {
        registers: RegisterKind::Holding,
        flow_address: 0x0010,
        word_order: WordOrder::Abcd,
        ..Config::new(7)
    };

    let flow = FlowMeter::new(&mut master, config).read_flow();

    assert_eq!(flow, Ok(1.52));
    finish(master);
}

#[test]
fn reverse_flow_is_out_of_range() {
    // -1.52 is 0xBFC28F5C.
    let error = read_flow([0x8F5C, 0xBFC2]).unwrap_err();
    assert_eq!(error, Error::OutOfRange);
    assert_eq!(error.fault(), Fault::OutOfRange);
}

#[test]
fn flow_above_the_contract_limit_is_out_of_range() {
    // 1500.0 is 0x44BB8000.
    assert_eq!(read_flow([0x8000, 0x44BB]), Err(Error::OutOfRange));
}

#[test]
fn a_totaliser_fraction_of_one_or_more_is_out_of_range() {
    // 1.5 is 0x3FC00000.
    assert_eq!(
        read_total([0x27FA, 0x0000, 0x0000, 0x3FC0]),
        Err(Error::OutOfRange)
    );
}

#[test]
fn a_totaliser_above_the_contract_limit_is_out_of_range() {
    // 4_000_000_000 is 0xEE6B2800, above the contract's 1e9 m3.
    assert_eq!(
        read_total([0x2800, 0xEE6B, 0x0000, 0x0000]),
        Err(Error::OutOfRange)
    );
}

#[test]
fn a_meter_exception_is_a_sensor_error() {
    let master = ModbusScript::new()
        .request(&flow_request())
        .reply_after(0, &with_crc(&[0x02, 0x84, 0x02]))
        .master(2);

    let error = finish_with(master, |m| m.read_flow()).unwrap_err();

    assert_eq!(Fault::from(error), Fault::SensorError);
}

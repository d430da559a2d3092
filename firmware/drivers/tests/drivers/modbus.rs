use embedded_hal_mock::eh1::delay::CheckedDelay;
use embedded_hal_mock::eh1::digital::{Mock as PinMock, State, Transaction as PinTx};
use embedded_hal_mock::eh1::MockError;
use embedded_io::ErrorKind;
use weir_contract::Fault;
use weir_drivers::modbus::{exception, Config, Error, Master};
use weir_drivers::FaultCode;

use crate::support::{
    finish, modbus_config, with_crc, ModbusScript, ScriptedUart, GAP_POLLS, RESPONSE_POLLS,
};

/// The request and answer printed in a flow meter's manual: slave 1, holding registers 4 and 5
/// (0x0651, 0x3F9E: 1.2345678 word-swapped), CRCs included.
const MANUAL_REQUEST: [u8; 8] = [0x01, 0x03, 0x00, 0x04, 0x00, 0x02, 0x85, 0xCA];
const MANUAL_ANSWER: [u8; 9] = [0x01, 0x03, 0x04, 0x06, 0x51, 0x3F, 0x9E, 0x3B, 0x32];

fn corrupt(frame: &[u8]) -> Vec<u8> {
    let mut bad = frame.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xFF;
    bad
}

#[test]
fn a_read_sends_the_specification_example_request_byte_for_byte() {
    // The Modbus specification's example, 10 holding registers from 0 on slave 1: C5 CD.
    let request = [0x01, 0x03, 0x00, 0x00, 0x00, 0x0A, 0xC5, 0xCD];
    let mut answer = vec![0x01, 0x03, 20];
    answer.extend((1..=10u16).flat_map(|r| (r * 0x0101).to_be_bytes()));
    let mut master = ModbusScript::new()
        .request(&request)
        .reply_after(3, &with_crc(&answer))
        .master(2);

    let mut registers = [0u16; 10];
    master
        .read_holding_registers(1, 0x0000, &mut registers)
        .unwrap();

    assert_eq!(registers, core::array::from_fn(|i| (i as u16 + 1) * 0x0101));
    finish(master);
}

#[test]
fn a_published_answer_is_accepted_with_its_own_crc() {
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(1, &MANUAL_ANSWER)
        .master(2);

    let mut registers = [0u16; 2];
    master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap();

    assert_eq!(registers, [0x0651, 0x3F9E]);
    finish(master);
}

#[test]
fn input_registers_are_read_with_function_04() {
    let mut master = ModbusScript::new()
        .request(&with_crc(&[0x11, 0x04, 0x00, 0x08, 0x00, 0x01]))
        .reply_after(0, &with_crc(&[0x11, 0x04, 0x02, 0x00, 0x0A]))
        .master(0);

    let mut registers = [0u16; 1];
    master
        .read_input_registers(0x11, 0x0008, &mut registers)
        .unwrap();

    assert_eq!(registers, [0x000A]);
    finish(master);
}

#[test]
fn a_bad_crc_is_retried_and_the_next_good_answer_returned() {
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(1, &corrupt(&MANUAL_ANSWER))
        .request(&MANUAL_REQUEST)
        .reply_after(1, &MANUAL_ANSWER)
        .master(2);

    let mut registers = [0u16; 2];
    master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap();

    assert_eq!(registers, [0x0651, 0x3F9E]);
    finish(master);
}

#[test]
fn a_bad_crc_on_every_attempt_is_a_checksum_error() {
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(1, &corrupt(&MANUAL_ANSWER))
        .request(&MANUAL_REQUEST)
        .reply_after(1, &corrupt(&MANUAL_ANSWER))
        .request(&MANUAL_REQUEST)
        .reply_after(1, &corrupt(&MANUAL_ANSWER))
        .master(2);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Checksum);
    assert_eq!(error.fault(), Fault::Checksum);
    finish(master);
}

#[test]
fn a_dead_sensor_times_out_after_the_scripted_number_of_polls() {
    // Each attempt: the silence, the request, then exactly RESPONSE_POLLS empty polls; the
    // delay mock fails the test on one poll more.
    let mut script = ModbusScript::new();
    for _ in 0..3 {
        script = script.request(&MANUAL_REQUEST).quiet(RESPONSE_POLLS);
    }
    let mut master = script.master(2);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Timeout);
    assert_eq!(Fault::from(error), Fault::NoResponse);
    finish(master);
}

#[test]
fn an_exception_answer_is_reported_and_not_retried() {
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(2, &with_crc(&[0x01, 0x83, 0x02]))
        .master(2);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Exception(exception::ILLEGAL_DATA_ADDRESS));
    assert_eq!(error.fault(), Fault::SensorError);
    finish(master);
}

#[test]
fn an_answer_from_another_slave_is_refused_then_retried() {
    let other_slave = with_crc(&[0x02, 0x03, 0x04, 0x06, 0x51, 0x3F, 0x9E]);
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(1, &other_slave)
        .request(&MANUAL_REQUEST)
        .reply_after(1, &MANUAL_ANSWER)
        .master(1);

    let mut registers = [0u16; 2];
    master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap();

    assert_eq!(registers, [0x0651, 0x3F9E]);
    finish(master);
}

#[test]
fn an_answer_from_another_slave_on_the_last_attempt_is_malformed() {
    let other_slave = with_crc(&[0x02, 0x03, 0x04, 0x06, 0x51, 0x3F, 0x9E]);
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(1, &other_slave)
        .master(0);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Malformed);
    assert_eq!(error.fault(), Fault::SensorError);
    finish(master);
}

#[test]
fn an_answer_with_the_wrong_byte_count_is_malformed() {
    // A good CRC around one register when two were asked for.
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(0, &with_crc(&[0x01, 0x03, 0x02, 0x06, 0x51]))
        .master(0);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Malformed);
    finish(master);
}

#[test]
fn a_truncated_answer_ends_at_the_silence_and_fails_its_crc() {
    // The header announces 4 data bytes; 2 arrive, then the line stays quiet.
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .reply_after(0, &MANUAL_ANSWER[..5])
        .quiet(GAP_POLLS)
        .master(0);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Checksum);
    finish(master);
}

#[test]
fn a_late_answer_waiting_in_the_uart_is_dropped_before_the_request() {
    let mut master = ModbusScript::new()
        .stale(&[0x01, 0x03, 0x04, 0xDE, 0xAD])
        .request(&MANUAL_REQUEST)
        .reply_after(1, &MANUAL_ANSWER)
        .master(0);

    let mut registers = [0u16; 2];
    master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap();

    assert_eq!(registers, [0x0651, 0x3F9E]);
    finish(master);
}

#[test]
fn a_uart_error_on_every_attempt_is_a_bus_error() {
    let mut master = ModbusScript::new()
        .request(&MANUAL_REQUEST)
        .uart_fails(ErrorKind::Other)
        .request(&MANUAL_REQUEST)
        .uart_fails(ErrorKind::Other)
        .master(1);

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Bus(ErrorKind::Other));
    assert_eq!(error.fault(), Fault::Checksum);
    finish(master);
}

#[test]
fn a_failing_direction_pin_stops_the_read_without_retries() {
    let pin = [PinTx::set(State::High).with_error(MockError::Io(std::io::ErrorKind::Other))];
    let delay = [embedded_hal_mock::eh1::delay::Transaction::delay_us(
        crate::support::SILENCE_US,
    )];
    let mut master = Master::new(
        ScriptedUart::new([]),
        PinMock::new(&pin),
        CheckedDelay::new(&delay),
        modbus_config(),
    );

    let mut registers = [0u16; 2];
    let error = master
        .read_holding_registers(1, 0x0004, &mut registers)
        .unwrap_err();

    assert_eq!(error, Error::Pin(embedded_hal::digital::ErrorKind::Other));
    assert_eq!(error.fault(), Fault::NoResponse);
    finish(master);
}

#[test]
fn an_invalid_request_touches_nothing() {
    let mut master = ModbusScript::new().master(2);

    // Broadcast and reserved addresses, then 0 and 126 registers.
    for (slave, count) in [(0, 2), (248, 2), (1, 0), (1, 126)] {
        let mut registers = vec![0u16; count];
        assert_eq!(
            master.read_input_registers(slave, 0, &mut registers),
            Err(Error::InvalidRequest),
            "slave {slave}, {count} registers"
        );
    }
    assert_eq!(
        Error::<ErrorKind>::InvalidRequest.fault(),
        Fault::NotCalibrated
    );
    finish(master);
}

#[test]
fn the_silence_is_three_and_a_half_characters_up_to_19200_baud_then_1750_us() {
    assert_eq!(Config::new(9_600).silence_us(), 4_011);
    assert_eq!(Config::new(19_200).silence_us(), 2_006);
    assert_eq!(Config::new(115_200).silence_us(), 1_750);
    assert_eq!(Config::new(0).silence_us(), 38_500_000);
}

#[test]
fn poll_budgets_follow_the_timeout_and_the_silence() {
    let config = Config {
        response_timeout_us: 500_000,
        poll_interval_us: 2_000,
        ..Config::new(9_600)
    };
    assert_eq!(config.response_polls(), 250);
    assert_eq!(config.gap_polls(), 3);
}

use weir_contract::Fault;
use weir_drivers::current_loop::{Config, CurrentLoop, Error};
use weir_drivers::FaultCode;

use crate::support::ScriptedAdc;

/// A 0-1000 NTU transmitter across a 250 Ω shunt: 4 mA is 1000 mV, 20 mA is 5000 mV.
const TURBIDITY: Config = Config::new(250.0, 0.0, 1000.0);

fn read_once(
    millivolts: Result<u32, &'static str>,
    config: Config,
) -> Result<f32, Error<&'static str>> {
    let mut input = CurrentLoop::new(ScriptedAdc::new([millivolts]), config);
    let result = input.read();
    input.destroy().done();
    result
}

#[test]
fn twelve_milliamps_is_the_middle_of_the_range() {
    assert_eq!(read_once(Ok(3_000), TURBIDITY), Ok(500.0));
}

#[test]
fn four_and_twenty_milliamps_are_the_range_ends() {
    assert_eq!(read_once(Ok(1_000), TURBIDITY), Ok(0.0));
    assert_eq!(read_once(Ok(5_000), TURBIDITY), Ok(1000.0));
}

#[test]
fn the_loop_current_is_millivolts_over_the_shunt() {
    let mut input = CurrentLoop::new(ScriptedAdc::new([Ok(1_800)]), Config::new(150.0, 0.0, 1.0));
    assert_eq!(input.read_milliamps(), Ok(12.0));
    input.destroy().done();
}

#[test]
fn a_loop_below_3_6_milliamps_is_open() {
    // 800 mV / 250 Ω = 3.2 mA; a cut wire reads 0.
    for mv in [800, 0] {
        let error = read_once(Ok(mv), TURBIDITY).unwrap_err();
        assert_eq!(error, Error::OpenLoop);
        assert_eq!(error.fault(), Fault::OpenLoop);
    }
}

#[test]
fn a_loop_above_21_milliamps_is_shorted() {
    // 5500 mV / 250 Ω = 22 mA.
    let error = read_once(Ok(5_500), TURBIDITY).unwrap_err();
    assert_eq!(error, Error::ShortCircuit);
    assert_eq!(Fault::from(error), Fault::ShortCircuit);
}

#[test]
fn a_loop_between_measurement_and_failure_levels_is_out_of_range() {
    // 3.7 mA and 20.8 mA.
    for mv in [925, 5_200] {
        let error = read_once(Ok(mv), TURBIDITY).unwrap_err();
        assert_eq!(error.fault(), Fault::OutOfRange, "{mv} mV");
    }
}

#[test]
fn an_adc_failure_is_a_no_response_fault() {
    let error = read_once(Err("conversion timed out"), TURBIDITY).unwrap_err();
    assert_eq!(error, Error::Adc("conversion timed out"));
    assert_eq!(error.fault(), Fault::NoResponse);
}

#[test]
fn a_loop_without_a_shunt_is_not_calibrated_and_the_adc_is_not_read() {
    let mut input = CurrentLoop::new(ScriptedAdc::new([]), Config::new(0.0, 0.0, 1000.0));
    let error = input.read().unwrap_err();
    assert_eq!(error.fault(), Fault::NotCalibrated);
    input.destroy().done();
}

use weir_contract::Fault;
use weir_drivers::pulse::{Config, Error, PulseFlowMeter, PulseReading};
use weir_drivers::FaultCode;

use crate::support::ScriptedCounter;

/// A meter pulsing every 10 L.
const METER: Config = Config::new(100.0);

/// Reads `counts` at the given times; returns the readings after checking every count was read.
fn read_all(
    config: Config,
    start_m3: f64,
    reads: &[(Result<u32, &'static str>, u64)],
) -> Vec<Result<PulseReading, Error<&'static str>>> {
    let counter = ScriptedCounter::new(reads.iter().map(|(count, _)| *count));
    let mut meter = PulseFlowMeter::new(counter, config, start_m3);
    let readings = reads
        .iter()
        .map(|(_, now_ms)| meter.read(*now_ms))
        .collect();
    meter.destroy().done();
    readings
}

#[test]
fn the_first_read_sets_the_baseline_and_has_no_flow() {
    let readings = read_all(METER, 1_200.0, &[(Ok(5_000), 10_000)]);
    assert_eq!(
        readings,
        [Ok(PulseReading {
            volume_m3: 1_200.0,
            flow_m3h: None
        })]
    );
}

#[test]
fn pulses_over_a_minute_give_the_totaliser_and_the_flow() {
    // 100 pulses = 1 m3 in 60 s = 60 m3/h; then 25 pulses in 30 s = 30 m3/h.
    let readings = read_all(
        METER,
        1_200.0,
        &[
            (Ok(5_000), 10_000),
            (Ok(5_100), 70_000),
            (Ok(5_125), 100_000),
        ],
    );
    assert_eq!(
        readings[1..],
        [
            Ok(PulseReading {
                volume_m3: 1_201.0,
                flow_m3h: Some(Ok(60.0))
            }),
            Ok(PulseReading {
                volume_m3: 1_201.25,
                flow_m3h: Some(Ok(30.0))
            }),
        ]
    );
}

#[test]
fn a_counter_wrapping_past_u32_max_still_counts_every_pulse() {
    // 49 pulses up to u32::MAX, one more to 0, 50 more: 100 pulses.
    let readings = read_all(METER, 0.0, &[(Ok(u32::MAX - 49), 0), (Ok(50), 60_000)]);
    assert_eq!(
        readings[1],
        Ok(PulseReading {
            volume_m3: 1.0,
            flow_m3h: Some(Ok(60.0))
        })
    );
}

#[test]
fn a_flow_above_the_limit_is_out_of_range_but_its_pulses_are_counted() {
    // 100_000 pulses in one second: 1000 m3 in 1 s, far above 1000 m3/h.
    let readings = read_all(METER, 0.0, &[(Ok(0), 0), (Ok(100_000), 1_000)]);
    assert_eq!(
        readings[1],
        Ok(PulseReading {
            volume_m3: 1_000.0,
            flow_m3h: Some(Err(Fault::OutOfRange))
        })
    );
}

#[test]
fn a_read_at_the_same_instant_gives_no_flow() {
    let readings = read_all(METER, 0.0, &[(Ok(0), 5_000), (Ok(10), 5_000)]);
    assert_eq!(
        readings[1],
        Ok(PulseReading {
            volume_m3: 0.1,
            flow_m3h: None
        })
    );
}

#[test]
fn a_counter_failure_is_a_no_response_fault_and_keeps_the_baseline() {
    let readings = read_all(
        METER,
        0.0,
        &[
            (Ok(0), 0),
            (Err("timer stopped"), 60_000),
            (Ok(200), 120_000),
        ],
    );
    let error = readings[1].unwrap_err();
    assert_eq!(error, Error::Counter("timer stopped"));
    assert_eq!(error.fault(), Fault::NoResponse);
    assert_eq!(
        readings[2],
        Ok(PulseReading {
            volume_m3: 2.0,
            flow_m3h: Some(Ok(60.0))
        })
    );
}

#[test]
fn a_meter_without_a_pulse_weight_is_not_calibrated_and_the_counter_is_not_read() {
    let mut meter = PulseFlowMeter::new(ScriptedCounter::new([]), Config::new(0.0), 0.0);
    assert_eq!(
        Fault::from(meter.read(0).unwrap_err()),
        Fault::NotCalibrated
    );
    meter.destroy().done();
}

//! From raw sensor values to a reading: calibration, the sludge level, range checks.

use weir_contract::{Fault, NodeConfig, Quantity, Reading, Sample, Timestamp};

use crate::sensors::RawReading;

/// Turns a raw sample into a reading at `ts` with the configuration's corrections.
///
/// * every value becomes `raw * scale + offset` (identity when not calibrated);
/// * sludge: the raw value is the distance from the sensor to the sludge surface, and the
///   level is `(sensor_height_m - distance) / tank_depth_m * 100` before correction; without
///   both heights (or with one that is not a positive number) it is [`Fault::NotCalibrated`].
///   A level up to [`SLUDGE_TOLERANCE_PCT`] outside 0-100 % is reported as 0 or 100 %;
/// * a value outside the quantity's range, or not finite, becomes [`Fault::OutOfRange`]: the
///   node never sends a number it knows is wrong.
pub fn calibrate(raw: &RawReading, config: &NodeConfig, ts: Timestamp) -> Reading {
    let mut reading = Reading::new(ts);
    for q in Quantity::ALL {
        let sample = match raw.get(q) {
            None => continue,
            Some(Err(fault)) => Sample::Fault(fault),
            Some(Ok(raw)) => match value(q, raw, config) {
                Ok(v) => Sample::Value(v),
                Err(fault) => Sample::Fault(fault),
            },
        };
        reading.set(q, Some(sample));
    }
    reading
}

/// How far outside 0-100 % a sludge level may fall and still be reported as 0 or 100 %, in
/// percentage points: the slack of a sensor height measured with a tape and of the sensor's
/// own accuracy (about 1 cm), so that a freshly desludged tank or a full one does not flicker
/// between a level and [`Fault::OutOfRange`]. Beyond it the geometry or the echo is wrong.
pub const SLUDGE_TOLERANCE_PCT: f64 = 2.0;

fn value(q: Quantity, raw: f64, config: &NodeConfig) -> Result<f64, Fault> {
    let base = if q == Quantity::Sludge {
        sludge_pct(raw, config)?
    } else {
        raw
    };
    let mut v = config.calibration.get(q).apply(base);
    if q == Quantity::Sludge {
        v = clamp_within(v, Quantity::Sludge.range(), SLUDGE_TOLERANCE_PCT);
    }
    q.check(v).map(|()| v).map_err(|_| Fault::OutOfRange)
}

/// The sludge level, % of the tank's working depth, for a distance `distance_m` from the
/// sensor to the sludge surface, before calibration and range checks.
fn sludge_pct(distance_m: f64, config: &NodeConfig) -> Result<f64, Fault> {
    let usable = |x: f64| x.is_finite() && x > 0.0;
    match (config.sensor_height_m, config.tank_depth_m) {
        (Some(height), Some(depth)) if usable(height) && usable(depth) => {
            Ok((height - distance_m) / depth * 100.0)
        }
        _ => Err(Fault::NotCalibrated),
    }
}

/// `v` brought into `min..=max` if it is outside by at most `tolerance`; otherwise unchanged
/// (and NaN stays NaN), for the range check to refuse.
fn clamp_within(v: f64, (min, max): (f64, f64), tolerance: f64) -> f64 {
    if (min - tolerance..=max + tolerance).contains(&v) {
        v.clamp(min, max)
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::Calibration;

    use super::*;

    const TS: Timestamp = Timestamp::from_unix(1_790_000_000);

    fn tank() -> NodeConfig {
        NodeConfig {
            tank_depth_m: Some(2.5),
            sensor_height_m: Some(3.0),
            ..NodeConfig::default()
        }
    }

    #[test]
    fn sludge_level_is_the_share_of_the_working_depth_below_the_measured_surface() {
        // Surface 1.0 m below a sensor 3.0 m above the bottom: 2.0 m of 2.5 m is sludge.
        let r = calibrate(&RawReading::new().with(Quantity::Sludge, 1.0), &tank(), TS);
        let pct = r.value(Quantity::Sludge).unwrap();
        assert!((pct - 80.0).abs() < 1e-9, "{pct}");
    }

    #[test]
    fn sludge_without_the_tank_geometry_is_not_calibrated() {
        let only_depth = NodeConfig {
            tank_depth_m: Some(2.5),
            ..NodeConfig::default()
        };
        for config in [NodeConfig::default(), only_depth] {
            let r = calibrate(&RawReading::new().with(Quantity::Sludge, 1.0), &config, TS);
            assert_eq!(r.fault(Quantity::Sludge), Some(Fault::NotCalibrated));
        }
    }

    #[test]
    fn calibration_scales_then_offsets_the_raw_value() {
        let mut config = NodeConfig::default();
        config.calibration.set(
            Quantity::Turbidity,
            Some(Calibration {
                offset: -0.4,
                scale: 1.02,
            }),
        );
        let raw = RawReading::new()
            .with(Quantity::Turbidity, 10.0)
            .with(Quantity::Flow, 1.5);
        let r = calibrate(&raw, &config, TS);
        assert!((r.value(Quantity::Turbidity).unwrap() - 9.8).abs() < 1e-9);
        assert_eq!(r.value(Quantity::Flow), Some(1.5));
    }

    #[test]
    fn calibrated_values_outside_the_range_become_out_of_range_faults() {
        let mut config = tank();
        config.calibration.set(
            Quantity::Flow,
            Some(Calibration {
                offset: -5.0,
                scale: 1.0,
            }),
        );
        let raw = RawReading::new()
            .with(Quantity::Flow, 1.0)
            .with(Quantity::Turbidity, f64::NAN)
            // Surface further away than the tank bottom: a negative level.
            .with(Quantity::Sludge, 3.5);
        let r = calibrate(&raw, &config, TS);
        for q in [Quantity::Flow, Quantity::Turbidity, Quantity::Sludge] {
            assert_eq!(r.fault(q), Some(Fault::OutOfRange), "{q}");
        }
    }

    fn sludge(distance_m: f64, config: &NodeConfig) -> Result<f64, Fault> {
        let r = calibrate(
            &RawReading::new().with(Quantity::Sludge, distance_m),
            config,
            TS,
        );
        match r.get(Quantity::Sludge) {
            Some(Sample::Value(v)) => Ok(v),
            Some(Sample::Fault(f)) => Err(f),
            None => panic!("no sludge sample"),
        }
    }

    #[test]
    fn an_empty_tank_within_the_tolerance_reads_zero_percent() {
        // Sensor 3.0 m above the bottom of a 2.5 m tank: 1 % is 2.5 cm.
        assert_eq!(sludge(3.0, &tank()), Ok(0.0));
        // A freshly desludged tank whose echo comes from 1 cm, then 2.5 cm, then 5 cm (the
        // tolerance exactly) below the bottom: 0 %, not out of range.
        assert_eq!(sludge(3.01, &tank()), Ok(0.0));
        assert_eq!(sludge(3.025, &tank()), Ok(0.0));
        assert_eq!(sludge(3.0499, &tank()), Ok(0.0));
        // Beyond the tolerance the geometry or the echo is wrong.
        assert_eq!(sludge(3.06, &tank()), Err(Fault::OutOfRange));
        assert_eq!(sludge(4.0, &tank()), Err(Fault::OutOfRange));
    }

    #[test]
    fn a_full_tank_within_the_tolerance_reads_a_hundred_percent() {
        // The overflow level is 0.5 m below the sensor.
        assert_eq!(sludge(0.5, &tank()), Ok(100.0));
        assert_eq!(sludge(0.49, &tank()), Ok(100.0));
        assert_eq!(sludge(0.4501, &tank()), Ok(100.0));
        assert_eq!(sludge(0.44, &tank()), Err(Fault::OutOfRange));
        assert_eq!(sludge(0.1, &tank()), Err(Fault::OutOfRange));
    }

    #[test]
    fn the_tolerance_applies_to_the_calibrated_level_and_never_to_nan() {
        let mut config = tank();
        // An operator's correction that takes 1 % to -1 %: still reported as 0 %.
        config.calibration.set(
            Quantity::Sludge,
            Some(Calibration {
                offset: -2.0,
                scale: 1.0,
            }),
        );
        assert_eq!(sludge(2.975, &config), Ok(0.0));
        assert_eq!(sludge(f64::NAN, &tank()), Err(Fault::OutOfRange));
        assert_eq!(sludge(f64::INFINITY, &tank()), Err(Fault::OutOfRange));
    }

    #[test]
    fn an_unusable_tank_geometry_is_not_calibrated() {
        for (height, depth) in [(3.0, 0.0), (3.0, -2.5), (0.0, 2.5), (f64::NAN, 2.5)] {
            let config = NodeConfig {
                sensor_height_m: Some(height),
                tank_depth_m: Some(depth),
                ..NodeConfig::default()
            };
            assert_eq!(
                sludge(1.0, &config),
                Err(Fault::NotCalibrated),
                "{height} {depth}"
            );
        }
    }

    #[test]
    fn sensor_faults_and_missing_sensors_pass_through() {
        let raw = RawReading::new().with_fault(Quantity::Turbidity, Fault::NoResponse);
        let r = calibrate(&raw, &NodeConfig::default(), TS);
        assert_eq!(r.fault(Quantity::Turbidity), Some(Fault::NoResponse));
        assert_eq!(r.get(Quantity::Flow), None);
        assert_eq!(r.samples().count(), 1);
    }
}

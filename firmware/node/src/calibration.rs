//! From raw sensor values to a reading: calibration, the sludge level, range checks.

use weir_contract::{Fault, NodeConfig, Quantity, Reading, Sample, Timestamp};

use crate::sensors::RawReading;

/// Turns a raw sample into a reading at `ts` with the configuration's corrections.
///
/// * every value becomes `raw * scale + offset` (identity when not calibrated);
/// * sludge: the raw value is the distance from the sensor to the sludge surface, and the
///   level is `(sensor_height_m - distance) / tank_depth_m * 100` before correction; without
///   both heights it is [`Fault::NotCalibrated`];
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

fn value(q: Quantity, raw: f64, config: &NodeConfig) -> Result<f64, Fault> {
    let base = if q == Quantity::Sludge {
        match (config.sensor_height_m, config.tank_depth_m) {
            (Some(height), Some(depth)) => (height - raw) / depth * 100.0,
            _ => return Err(Fault::NotCalibrated),
        }
    } else {
        raw
    };
    let v = config.calibration.get(q).apply(base);
    q.check(v).map(|()| v).map_err(|_| Fault::OutOfRange)
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

    #[test]
    fn sensor_faults_and_missing_sensors_pass_through() {
        let raw = RawReading::new().with_fault(Quantity::Turbidity, Fault::NoResponse);
        let r = calibrate(&raw, &NodeConfig::default(), TS);
        assert_eq!(r.fault(Quantity::Turbidity), Some(Fault::NoResponse));
        assert_eq!(r.get(Quantity::Flow), None);
        assert_eq!(r.samples().count(), 1);
    }
}

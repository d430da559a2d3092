//! From the distance to the sludge surface to a share of the tank's working depth.
//!
//! The ultrasonic sensor hangs above the tank looking down; the node knows, from its
//! [`NodeConfig`], how high the sensor's face is above the tank bottom and how deep the tank
//! works (bottom to overflow level). Then
//!
//! ```text
//! sludge_pct = (sensor_height_m - distance_m) / tank_depth_m * 100
//! ```

use weir_contract::{Fault, NodeConfig};

use crate::FaultCode;

/// How far outside 0-100 % a level may fall and still be reported as 0 or 100 %, in
/// percentage points: the slack of a sensor height measured with a tape and of the sensor's
/// own accuracy (about 1 cm). Beyond it the geometry or the echo is wrong.
pub const TOLERANCE_PCT: f64 = 2.0;

/// Why no sludge level can be given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SludgeError {
    /// The node has no sensor height or tank depth (or an unusable one).
    NotCalibrated,
    /// The level falls outside 0-100 % by more than [`TOLERANCE_PCT`].
    OutOfRange,
}

impl FaultCode for SludgeError {
    fn fault(&self) -> Fault {
        match self {
            SludgeError::NotCalibrated => Fault::NotCalibrated,
            SludgeError::OutOfRange => Fault::OutOfRange,
        }
    }
}

impl From<SludgeError> for Fault {
    fn from(e: SludgeError) -> Fault {
        e.fault()
    }
}

/// The geometry of a sludge tank and its sensor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tank {
    /// Height of the sensor's face above the tank bottom, m.
    pub sensor_height_m: f64,
    /// Working depth: tank bottom to overflow level, m.
    pub depth_m: f64,
}

impl Tank {
    /// The tank described by the node's configuration (`sensor_height_m`, `tank_depth_m`).
    pub fn from_config(config: &NodeConfig) -> Result<Tank, SludgeError> {
        match (config.sensor_height_m, config.tank_depth_m) {
            (Some(sensor_height_m), Some(depth_m)) => Ok(Tank {
                sensor_height_m,
                depth_m,
            }),
            _ => Err(SludgeError::NotCalibrated),
        }
    }

    /// The sludge level, % of the working depth, for a measured `distance_m` from the sensor
    /// to the sludge surface.
    pub fn sludge_pct(&self, distance_m: f64) -> Result<f32, SludgeError> {
        let usable = |x: f64| x.is_finite() && x > 0.0;
        if !usable(self.depth_m) || !usable(self.sensor_height_m) {
            return Err(SludgeError::NotCalibrated);
        }
        let pct = (self.sensor_height_m - distance_m) / self.depth_m * 100.0;
        if (-TOLERANCE_PCT..=100.0 + TOLERANCE_PCT).contains(&pct) {
            Ok(pct.clamp(0.0, 100.0) as f32)
        } else {
            Err(SludgeError::OutOfRange)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TANK: Tank = Tank {
        sensor_height_m: 3.0,
        depth_m: 2.5,
    };

    #[test]
    fn sludge_follows_the_protocol_formula() {
        // (3.0 - 1.9625) / 2.5 * 100 = 41.5
        assert_eq!(TANK.sludge_pct(1.9625), Ok(41.5));
        assert_eq!(TANK.sludge_pct(3.0), Ok(0.0));
        assert_eq!(TANK.sludge_pct(0.5), Ok(100.0));
    }

    #[test]
    fn levels_just_outside_the_tank_clamp_within_the_tolerance() {
        // 1 % below the bottom and 1 % above the overflow level.
        assert_eq!(TANK.sludge_pct(3.025), Ok(0.0));
        assert_eq!(TANK.sludge_pct(0.475), Ok(100.0));
    }

    #[test]
    fn levels_beyond_the_tolerance_are_out_of_range() {
        // 4 % below the bottom, 4 % above the overflow level.
        assert_eq!(TANK.sludge_pct(3.1), Err(SludgeError::OutOfRange));
        assert_eq!(TANK.sludge_pct(0.4), Err(SludgeError::OutOfRange));
        assert_eq!(TANK.sludge_pct(f64::NAN), Err(SludgeError::OutOfRange));
    }

    #[test]
    fn a_node_without_tank_geometry_is_not_calibrated() {
        let mut config = NodeConfig::default();
        assert_eq!(Tank::from_config(&config), Err(SludgeError::NotCalibrated));
        config.tank_depth_m = Some(2.5);
        assert_eq!(Tank::from_config(&config), Err(SludgeError::NotCalibrated));
        config.sensor_height_m = Some(3.0);
        assert_eq!(Tank::from_config(&config), Ok(TANK));
        let flat = Tank {
            depth_m: 0.0,
            ..TANK
        };
        assert_eq!(flat.sludge_pct(1.0), Err(SludgeError::NotCalibrated));
    }
}

//! The terminal registry: what the county has, where it is, each node's credentials, and
//! how each node is wired and set up (kept by `weir node provision`).

use anyhow::Context as _;
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};
use weir_contract::CalibrationSet;
use weir_node::provision::{Network, SensorSet};

/// A registered terminal.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Terminal {
    /// `HY-001`.
    pub id: String,
    /// Human name, any script.
    pub name: String,
    /// Village it serves.
    pub village: Option<String>,
    /// Latitude, degrees.
    pub lat: Option<f64>,
    /// Longitude, degrees.
    pub lon: Option<f64>,
    /// Design capacity, m3/day.
    pub design_flow_m3d: Option<f64>,
    /// Working depth of the tank, m.
    pub tank_depth_m: Option<f64>,
    /// When the gateway last stored a message of it, Unix seconds.
    pub last_seen: Option<i64>,
}

/// A terminal to register.
#[derive(Clone, Debug, Default)]
pub struct NewTerminal {
    /// Checked against the contract's id rule by the caller.
    pub id: String,
    /// Human name.
    pub name: String,
    /// Village.
    pub village: Option<String>,
    /// Latitude.
    pub lat: Option<f64>,
    /// Longitude.
    pub lon: Option<f64>,
    /// Design capacity, m3/day.
    pub design_flow_m3d: Option<f64>,
    /// Working depth, m.
    pub tank_depth_m: Option<f64>,
}

/// Why a terminal could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    /// The id is taken.
    #[error("terminal {0} is already registered")]
    Exists(String),
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error(transparent)]
    Db(#[from] rusqlite::Error),
}

/// The key of terminal `id`, if registered.
pub fn key_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT key FROM terminals WHERE id = ?1")?
        .query_row([id], |r| r.get(0))
        .optional()
}

/// Registers a terminal with the hash of its node's MQTT password.
pub fn add(conn: &Connection, t: &NewTerminal, password_hash: &str) -> Result<(), AddError> {
    weir_contract::TerminalId::new(&t.id).map_err(|e| AddError::Invalid(e.reason.to_string()))?;
    if t.name.trim().is_empty() {
        return Err(AddError::Invalid("the name must not be empty".into()));
    }
    if t.lat.is_some_and(|v| !(-90.0..=90.0).contains(&v)) {
        return Err(AddError::Invalid(
            "latitude must be between -90 and 90".into(),
        ));
    }
    if t.lon.is_some_and(|v| !(-180.0..=180.0).contains(&v)) {
        return Err(AddError::Invalid(
            "longitude must be between -180 and 180".into(),
        ));
    }
    if t.design_flow_m3d
        .is_some_and(|v| !(v > 0.0 && v < 100_000.0))
    {
        return Err(AddError::Invalid(
            "design flow must be above 0 and below 100000 m3/day".into(),
        ));
    }
    if t.tank_depth_m.is_some_and(|v| !(0.2..=20.0).contains(&v)) {
        return Err(AddError::Invalid("tank depth must be 0.2 to 20 m".into()));
    }
    if key_of(conn, &t.id)?.is_some() {
        return Err(AddError::Exists(t.id.clone()));
    }
    conn.execute(
        "INSERT INTO terminals (id, name, village, lat, lon, design_flow_m3d, tank_depth_m,
                                mqtt_password_hash, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            t.id,
            t.name.trim(),
            t.village,
            t.lat,
            t.lon,
            t.design_flow_m3d,
            t.tank_depth_m,
            password_hash,
            super::now()
        ],
    )?;
    Ok(())
}

/// Replaces a terminal's node password hash. Returns false if there is no such terminal.
pub fn set_password_hash(conn: &Connection, id: &str, hash: &str) -> rusqlite::Result<bool> {
    Ok(conn.execute(
        "UPDATE terminals SET mqtt_password_hash = ?2 WHERE id = ?1",
        params![id, hash],
    )? == 1)
}

/// The node password hash of terminal `id`.
pub fn password_hash(conn: &Connection, id: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT mqtt_password_hash FROM terminals WHERE id = ?1")?
        .query_row([id], |r| r.get::<_, Option<String>>(0))
        .optional()
        .map(Option::flatten)
}

const COLUMNS: &str = "id, name, village, lat, lon, design_flow_m3d, tank_depth_m, last_seen";

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Terminal> {
    Ok(Terminal {
        id: r.get(0)?,
        name: r.get(1)?,
        village: r.get(2)?,
        lat: r.get(3)?,
        lon: r.get(4)?,
        design_flow_m3d: r.get(5)?,
        tank_depth_m: r.get(6)?,
        last_seen: r.get(7)?,
    })
}

/// Every terminal, by id.
pub fn list(conn: &Connection) -> rusqlite::Result<Vec<Terminal>> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {COLUMNS} FROM terminals ORDER BY id"))?;
    let rows = stmt.query_map([], from_row)?;
    rows.collect()
}

/// One terminal.
pub fn get(conn: &Connection, id: &str) -> rusqlite::Result<Option<Terminal>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM terminals WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

/// How a terminal's node is wired and set up, as kept in the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSetup {
    /// The sensors and how they are connected.
    pub sensors: SensorSet,
    /// Height of the ultrasonic sensor's face above the tank bottom, m.
    pub sensor_height_m: Option<f64>,
    /// Sampling and publishing, s (the node's defaults when unset).
    pub sample_interval_s: Option<u32>,
    /// Publishing interval, s.
    pub publish_interval_s: Option<u32>,
    /// Sensor corrections found on site.
    pub calibration: CalibrationSet,
    /// DHCP or a fixed address.
    pub network: Option<Network>,
}

/// The registry's record of a node's setup, if it was ever provisioned.
pub fn setup(conn: &Connection, id: &str) -> anyhow::Result<Option<NodeSetup>> {
    let text: Option<Option<String>> = conn
        .query_row(
            "SELECT node_setup FROM terminals WHERE id = ?1",
            [id],
            |r| r.get(0),
        )
        .optional()?;
    match text.flatten() {
        None => Ok(None),
        Some(t) => Ok(Some(serde_json::from_str(&t).with_context(|| {
            format!("the registry's node setup of {id} does not read: {t}")
        })?)),
    }
}

/// Records how terminal `id`'s node is wired and set up.
pub fn save_setup(conn: &Connection, id: &str, setup: &NodeSetup) -> anyhow::Result<()> {
    conn.execute(
        "UPDATE terminals SET node_setup = ?2 WHERE id = ?1",
        params![id, serde_json::to_string(setup)?],
    )?;
    Ok(())
}

/// Sets the working depth of terminal `id`'s tank, m.
pub fn set_tank_depth(conn: &Connection, id: &str, depth_m: Option<f64>) -> rusqlite::Result<()> {
    conn.execute(
        "UPDATE terminals SET tank_depth_m = ?2 WHERE id = ?1",
        params![id, depth_m],
    )?;
    Ok(())
}

//! Each node's retained `{prefix}/terminals/{id}/config`: how often to sample and publish, the
//! sensor corrections and the tank geometry.
//!
//! The registry is the source: a node's setup (written by `weir node provision` or
//! `PUT /api/v1/terminals/{id}/config`) and its terminal's tank depth. A terminal with no setup
//! (a third-party logger, say) gets no config. The gateway publishes every config, retained,
//! each time its publisher connects to the broker (the embedded broker starts empty; an
//! external one may have lost its retained store), and a terminal's config again whenever it
//! changes. A node applies a config on receipt and keeps it across restarts; it writes flash
//! only when the config differs from what it has.

use rusqlite::Connection;
use weir_contract::NodeConfig;
use weir_store::terminals::{self, NodeSetup, Terminal};

/// The config of a node with `setup` at `terminal`.
pub fn of(terminal: &Terminal, setup: &NodeSetup) -> NodeConfig {
    let defaults = NodeConfig::default();
    NodeConfig {
        sample_interval_s: setup
            .sample_interval_s
            .unwrap_or(defaults.sample_interval_s),
        publish_interval_s: setup
            .publish_interval_s
            .unwrap_or(defaults.publish_interval_s),
        calibration: setup.calibration,
        tank_depth_m: terminal.tank_depth_m,
        sensor_height_m: setup.sensor_height_m,
    }
}

/// Terminal `id`'s config and whether its node was ever set up (provisioned or configured);
/// one never set up gets the defaults with the terminal's tank depth, what a change starts
/// from. `None` for an unknown terminal.
pub fn get(conn: &Connection, id: &str) -> anyhow::Result<Option<(NodeConfig, bool)>> {
    let Some(t) = terminals::get(conn, id)? else {
        return Ok(None);
    };
    let setup = terminals::setup(conn, id)?;
    let set_up = setup.is_some();
    Ok(Some((of(&t, &setup.unwrap_or_default()), set_up)))
}

/// Every terminal's config, for those with a node setup.
pub fn all(conn: &Connection) -> anyhow::Result<Vec<(String, NodeConfig)>> {
    let mut out = Vec::new();
    for t in terminals::list(conn)? {
        if let Some(setup) = terminals::setup(conn, &t.id)? {
            out.push((t.id.clone(), of(&t, &setup)));
        }
    }
    Ok(out)
}

/// Makes `config` terminal `id`'s: its setup's intervals, calibration and sensor height, and
/// the terminal's tank depth, in one transaction. The caller validates `config` first.
pub fn set(conn: &Connection, id: &str, config: &NodeConfig) -> anyhow::Result<()> {
    // IMMEDIATE: this reads, then writes; a deferred transaction would fail at once if the
    // store writer committed in between (see writer.rs).
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    let mut setup = terminals::setup(&tx, id)?.unwrap_or_default();
    setup.sample_interval_s = Some(config.sample_interval_s);
    setup.publish_interval_s = Some(config.publish_interval_s);
    setup.calibration = config.calibration;
    setup.sensor_height_m = config.sensor_height_m;
    terminals::save_setup(&tx, id, &setup)?;
    terminals::set_tank_depth(&tx, id, config.tank_depth_m)?;
    tx.commit()?;
    Ok(())
}

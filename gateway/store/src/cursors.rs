//! How far each consumer of commit order has got: the id of the last reading it processed.
//!
//! The readings table's rowid is the commit order. Everything downstream of the store (the
//! alert engine, the InfluxDB forwarder) follows it and keeps its place here, one row per
//! consumer, so a restart resumes where it stopped and retention never deletes a reading a
//! consumer has not processed yet.

use rusqlite::{params, Connection, OptionalExtension as _};

/// The alert engine's cursor.
pub const ALERTS: &str = "alerts";
/// The InfluxDB forwarder's cursor.
pub const INFLUX: &str = "influx";
/// The HJ 212 uplink's cursor.
pub const HJ212: &str = "hj212";

/// The last reading id `consumer` processed, if it ever saved one.
pub fn get(conn: &Connection, consumer: &str) -> rusqlite::Result<Option<i64>> {
    conn.prepare_cached("SELECT last_id FROM consumer_cursors WHERE consumer = ?1")?
        .query_row([consumer], |r| r.get(0))
        .optional()
}

/// Saves the last reading id `consumer` processed.
pub fn set(conn: &Connection, consumer: &str, last_id: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO consumer_cursors (consumer, last_id) VALUES (?1, ?2)
         ON CONFLICT (consumer) DO UPDATE SET last_id = excluded.last_id",
    )?
    .execute(params![consumer, last_id])?;
    Ok(())
}

/// The lowest position of `consumers` (0 for one that never saved a cursor): every reading
/// at or below it has been processed by all of them.
pub fn lowest(conn: &Connection, consumers: &[&str]) -> rusqlite::Result<Option<i64>> {
    let mut lowest = None;
    for c in consumers {
        let at = get(conn, c)?.unwrap_or(0);
        lowest = Some(lowest.map_or(at, |l: i64| l.min(at)));
    }
    Ok(lowest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_consumer_keeps_its_own_place_and_the_lowest_holds_for_all() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        assert_eq!(get(&conn, ALERTS).unwrap(), None);
        set(&conn, ALERTS, 7).unwrap();
        set(&conn, INFLUX, 3).unwrap();
        set(&conn, ALERTS, 9).unwrap();
        assert_eq!(get(&conn, ALERTS).unwrap(), Some(9));
        assert_eq!(get(&conn, INFLUX).unwrap(), Some(3));
        assert_eq!(lowest(&conn, &[ALERTS, INFLUX]).unwrap(), Some(3));
        assert_eq!(lowest(&conn, &[ALERTS]).unwrap(), Some(9));
        // A consumer that never saved a cursor has processed nothing.
        assert_eq!(lowest(&conn, &[ALERTS, "other"]).unwrap(), Some(0));
        assert_eq!(lowest(&conn, &[]).unwrap(), None);
    }

    #[test]
    fn the_old_per_consumer_cursor_tables_carry_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.db");
        // A database as the gateway left it before the cursors were one table.
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        for (name, sql) in crate::schema::migrations() {
            if name == "core_0005_consumer_cursors" {
                break;
            }
            tx.execute_batch(&sql).unwrap();
            tx.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [name])
                .unwrap();
        }
        tx.execute_batch(
            "INSERT INTO alert_cursor (name, last_id) VALUES ('readings', 41);
             INSERT INTO forward_cursor (sink, last_id) VALUES ('influx', 17);",
        )
        .unwrap();
        tx.commit().unwrap();
        drop(conn);
        let store = crate::Store::open(&path, crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        assert_eq!(get(&conn, ALERTS).unwrap(), Some(41));
        assert_eq!(get(&conn, INFLUX).unwrap(), Some(17));
    }
}

//! The database schema and its migrations. Quantity columns come from the contract's
//! `Quantity` table, so a field name is declared in one place only.

use rusqlite::Connection;
use weir_contract::Quantity;

/// The store's own migrations, by name, in order.
fn core_migrations() -> Vec<(&'static str, String)> {
    let values: String = Quantity::ALL
        .iter()
        .map(|q| format!(", {} REAL", q.field()))
        .collect();
    let stats: String = Quantity::ALL
        .iter()
        .map(|q| {
            let f = q.field();
            format!(", {f}_n INTEGER NOT NULL DEFAULT 0, {f}_min REAL, {f}_max REAL, {f}_sum REAL")
        })
        .collect();
    vec![
        (
            "core_0001",
            format!(
                "
        CREATE TABLE terminals (
            key INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            village TEXT,
            lat REAL,
            lon REAL,
            design_flow_m3d REAL,
            tank_depth_m REAL,
            mqtt_password_hash TEXT,
            created_at INTEGER NOT NULL,
            -- When the gateway last stored a message of this terminal, Unix seconds.
            last_seen INTEGER
        );
        -- One row per telemetry message stored: (terminal, boot, seq) identifies a message.
        CREATE TABLE messages (
            terminal INTEGER NOT NULL REFERENCES terminals(key),
            boot INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            received_at INTEGER NOT NULL,
            readings INTEGER NOT NULL,
            PRIMARY KEY (terminal, boot, seq)
        ) WITHOUT ROWID;
        -- The rowid `id` is the commit order that the forwarder and live feed follow.
        CREATE TABLE readings (
            id INTEGER PRIMARY KEY,
            terminal INTEGER NOT NULL REFERENCES terminals(key),
            ts INTEGER NOT NULL
            {values},
            faults TEXT
        );
        CREATE UNIQUE INDEX readings_by_terminal_time ON readings(terminal, ts);
        CREATE TABLE rollup_hour (
            terminal INTEGER NOT NULL REFERENCES terminals(key),
            bucket INTEGER NOT NULL,
            n INTEGER NOT NULL
            {stats},
            PRIMARY KEY (terminal, bucket)
        ) WITHOUT ROWID;
        CREATE TABLE node_status (
            terminal INTEGER PRIMARY KEY REFERENCES terminals(key),
            online INTEGER NOT NULL,
            firmware TEXT,
            boot INTEGER,
            buffered INTEGER,
            dropped INTEGER,
            uptime_s INTEGER,
            updated_at INTEGER NOT NULL
        );
        CREATE TABLE dead_letters (
            id INTEGER PRIMARY KEY,
            received_at INTEGER NOT NULL,
            terminal TEXT,
            topic TEXT NOT NULL,
            reason TEXT NOT NULL,
            detail TEXT NOT NULL,
            payload BLOB NOT NULL
        );
        CREATE TABLE users (
            id INTEGER PRIMARY KEY,
            username TEXT NOT NULL UNIQUE,
            password_hash TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE sessions (
            token_hash TEXT PRIMARY KEY,
            user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
            expires_at INTEGER NOT NULL
        );
        CREATE TABLE api_tokens (
            token_hash TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            role TEXT NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE TABLE forward_cursor (
            sink TEXT PRIMARY KEY,
            last_id INTEGER NOT NULL
        );
        CREATE TABLE forward_rejects (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            sink TEXT NOT NULL,
            first_id INTEGER NOT NULL,
            last_id INTEGER NOT NULL,
            status INTEGER NOT NULL,
            detail TEXT NOT NULL
        );
        "
            ),
        ),
        (
            "core_0002_node_setup",
            // How each terminal's node is wired and set up (JSON), kept by `weir node provision`.
            "ALTER TABLE terminals ADD COLUMN node_setup TEXT;".into(),
        ),
        (
            "core_0003_messages_by_time",
            // Retention deletes message records by the time they arrived.
            "CREATE INDEX messages_by_received_at ON messages(received_at);".into(),
        ),
        (
            "core_0004_retention_floor",
            // The oldest reading time retention ever deleted below: older readings are not
            // stored again, even after the window is widened or retention turned off.
            "CREATE TABLE retention (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 pruned_before INTEGER NOT NULL
             );"
            .into(),
        ),
    ]
}

/// The alert engine's tables: alerts and their history, incidents, each terminal's rule
/// state, and every notification sent.
const ALERTS_0001: &str = "        CREATE TABLE alert_incidents (
            id INTEGER PRIMARY KEY,
            kind TEXT NOT NULL,
            title TEXT NOT NULL,
            opened_at INTEGER NOT NULL,
            resolved_at INTEGER
        );
        CREATE TABLE alerts (
            id INTEGER PRIMARY KEY,
            terminal TEXT NOT NULL,
            rule TEXT NOT NULL,
            severity TEXT NOT NULL,
            state TEXT NOT NULL,
            title TEXT NOT NULL,
            detail TEXT NOT NULL,
            value REAL,
            threshold REAL,
            opened_at INTEGER NOT NULL,
            acknowledged_at INTEGER,
            acknowledged_by TEXT,
            resolved_at INTEGER,
            resolved_by TEXT,
            resolution_note TEXT,
            assignee TEXT,
            incident_id INTEGER REFERENCES alert_incidents(id),
            escalated INTEGER NOT NULL DEFAULT 0,
            crew TEXT,
            dispatched_at INTEGER,
            arrived_at INTEGER
        );
        -- At most one open or acknowledged alert per terminal and rule.
        CREATE UNIQUE INDEX alerts_one_active ON alerts(terminal, rule) WHERE state <> 'resolved';
        CREATE INDEX alerts_by_opened ON alerts(opened_at);
        CREATE INDEX alerts_by_incident ON alerts(incident_id) WHERE incident_id IS NOT NULL;
        -- Every transition: who did what, when.
        CREATE TABLE alert_history (
            id INTEGER PRIMARY KEY,
            alert INTEGER NOT NULL REFERENCES alerts(id),
            at INTEGER NOT NULL,
            who TEXT NOT NULL,
            action TEXT NOT NULL,
            note TEXT
        );
        CREATE INDEX alert_history_by_alert ON alert_history(alert);
        -- The reading rules' state of each terminal (JSON), so a restart resumes mid-run.
        CREATE TABLE alert_terminal_state (
            terminal TEXT PRIMARY KEY,
            rules TEXT NOT NULL,
            gaps TEXT NOT NULL
        );
        -- The newest reading id the engine has evaluated.
        CREATE TABLE alert_cursor (
            name TEXT PRIMARY KEY,
            last_id INTEGER NOT NULL
        );
        -- Every message sent, failed or held back by throttling.
        CREATE TABLE alert_notifications (
            id INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            channel TEXT NOT NULL,
            recipient TEXT NOT NULL,
            subject TEXT NOT NULL,
            event TEXT NOT NULL,
            severity TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            detail TEXT,
            text TEXT NOT NULL
        );
        CREATE INDEX alert_notifications_by_at ON alert_notifications(at);
        ";

/// Every migration, in the order it first ran. Each runs once, in its own transaction,
/// recorded by name in `schema_migrations`; a name, once released, never changes.
pub fn migrations() -> Vec<(&'static str, String)> {
    let mut all = core_migrations();
    all.push(("alerts_0001", ALERTS_0001.to_string()));
    all.push((
        "core_0005_consumer_cursors",
        // One cursor table for every consumer of commit order (the alert engine, the InfluxDB
        // forwarder), in place of one table each; their positions carry over.
        "CREATE TABLE consumer_cursors (
             consumer TEXT PRIMARY KEY,
             last_id INTEGER NOT NULL
         );
         INSERT INTO consumer_cursors (consumer, last_id)
             SELECT 'alerts', last_id FROM alert_cursor WHERE name = 'readings';
         INSERT INTO consumer_cursors (consumer, last_id)
             SELECT sink, last_id FROM forward_cursor;
         DROP TABLE alert_cursor;
         DROP TABLE forward_cursor;"
            .to_string(),
    ));
    all.push((
        "core_0006_no_message_table",
        // Replays are told apart per reading by (terminal, ts) alone; the per-message record
        // of (terminal, boot, seq) cost a third of the writer's time and could only drop a
        // message that reused a sequence number with new readings.
        "DROP TABLE messages;".to_string(),
    ));
    all.push(("pictures_0001", PICTURES_0001.to_string()));
    all.push(("firmware_0001", crate::firmware::MIGRATION.to_string()));
    // Where each node's unbroken run of messages stands, so acks never pass a gap.
    all.push((
        "core_0007_node_acks",
        crate::node_acks::MIGRATION.to_string(),
    ));
    all
}

/// Pictures of each terminal (their files are beside the database) and each terminal's camera
/// as set from the command line.
const PICTURES_0001: &str = "
    CREATE TABLE pictures (
        -- Never reused: the dashboard may cache a picture by its id.
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        terminal INTEGER NOT NULL REFERENCES terminals(key),
        -- Unix seconds.
        taken_at INTEGER NOT NULL,
        -- 'camera' or 'upload'.
        source TEXT NOT NULL,
        uploaded_by TEXT,
        content_type TEXT NOT NULL,
        width INTEGER NOT NULL,
        height INTEGER NOT NULL,
        -- Bytes of both files: the original and its thumbnail.
        bytes INTEGER NOT NULL,
        -- Relative to the pictures directory.
        file TEXT NOT NULL,
        thumbnail TEXT NOT NULL
    );
    CREATE INDEX pictures_by_terminal_time ON pictures(terminal, taken_at);
    CREATE INDEX pictures_by_time ON pictures(taken_at);
    CREATE TABLE terminal_cameras (
        terminal INTEGER PRIMARY KEY REFERENCES terminals(key),
        url TEXT NOT NULL,
        username TEXT NOT NULL DEFAULT '',
        password TEXT NOT NULL DEFAULT '',
        interval_s INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
";

/// The migrations the database records, or None if it has no record of migrations at all
/// (a new file, or not Weir's).
pub fn recorded_migrations(conn: &Connection) -> rusqlite::Result<Option<Vec<String>>> {
    let exists: bool = conn.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations')",
        [],
        |r| r.get(0),
    )?;
    if !exists {
        return Ok(None);
    }
    let mut stmt = conn.prepare("SELECT name FROM schema_migrations ORDER BY applied_at, name")?;
    let names = stmt.query_map([], |r| r.get::<_, String>(0))?;
    names.collect::<rusqlite::Result<_>>().map(Some)
}

/// Of `recorded`, the migrations this version does not know: the database was written by a
/// newer Weir, whose schema this version must not write to.
pub fn unknown_migrations(recorded: &[String]) -> Vec<&str> {
    let known = migrations();
    recorded
        .iter()
        .map(String::as_str)
        .filter(|n| !known.iter().any(|(k, _)| k == n))
        .collect()
}

/// Brings the database to the newest schema.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)")?;
    for (name, sql) in migrations() {
        let done: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM schema_migrations WHERE name = ?1)",
            [name],
            |r| r.get(0),
        )?;
        if done {
            continue;
        }
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        tx.execute_batch(&sql)?;
        tx.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES (?1, ?2)",
            rusqlite::params![name, super::now()],
        )?;
        tx.commit()?;
    }
    Ok(())
}

/// The reading columns in wire order, for SELECT and INSERT lists.
pub fn value_columns() -> String {
    Quantity::ALL
        .iter()
        .map(|q| q.field())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_the_message_table_keeps_every_reading_and_its_commit_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.db");
        // A database as the gateway left it while it still kept a row per message.
        let mut conn = Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )
        .unwrap();
        let tx = conn.transaction().unwrap();
        for (name, sql) in migrations() {
            if name == "core_0006_no_message_table" {
                break;
            }
            tx.execute_batch(&sql).unwrap();
            tx.execute("INSERT INTO schema_migrations VALUES (?1, 0)", [name])
                .unwrap();
        }
        tx.execute_batch(
            "INSERT INTO terminals (key, id, name, created_at) VALUES (1, 'HY-001', 'a', 0);
             INSERT INTO messages (terminal, boot, seq, received_at, readings) VALUES (1, 1, 0, 5, 2);
             INSERT INTO readings (id, terminal, ts, flow_m3h) VALUES (7, 1, 60, 1.5), (9, 1, 120, 2.5);",
        )
        .unwrap();
        tx.commit().unwrap();
        drop(conn);
        let store = crate::Store::open(&path, crate::Synchronous::Normal).unwrap();
        let conn = store.connect().unwrap();
        let gone: bool = conn
            .query_row(
                "SELECT NOT EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'messages')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(gone, "the message table is still there");
        let rows: Vec<(i64, i64, f64)> = conn
            .prepare("SELECT id, ts, flow_m3h FROM readings ORDER BY id")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(7, 60, 1.5), (9, 120, 2.5)]);
        // A reading at a stored time is still refused by the unique index.
        assert!(conn
            .execute("INSERT INTO readings (terminal, ts) VALUES (1, 60)", [])
            .is_err());
    }

    #[test]
    fn a_database_of_a_newer_weir_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weir.db");
        drop(crate::Store::open(&path, crate::Synchronous::Normal).unwrap());
        let conn = Connection::open(&path).unwrap();
        conn.execute(
            "INSERT INTO schema_migrations (name, applied_at) VALUES ('core_9999_from_the_future', 0)",
            [],
        )
        .unwrap();
        drop(conn);
        let before = std::fs::read(&path).unwrap();
        let Err(e) = crate::Store::open(&path, crate::Synchronous::Normal) else {
            panic!("a newer database is refused");
        };
        let msg = format!("{e:#}");
        assert!(
            msg.contains("newer Weir") && msg.contains("core_9999_from_the_future"),
            "{msg}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
    }
}

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
    all.push(("firmware_0001", crate::firmware::MIGRATION.to_string()));
    all
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

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

/// Every migration: the store's, then each domain module's (alerts keep their own tables).
/// Each runs once, in its own transaction, recorded by name in `schema_migrations`.
pub fn migrations() -> Vec<(&'static str, String)> {
    let mut all = core_migrations();
    all.extend(crate::alerts::migrations());
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

//! Readings: the one row codec (a contract `Reading` to columns and back, faults both ways),
//! raw ranges, the latest reading, and the commit-order feed (`after`, `max_id`) that every
//! consumer downstream of the store follows.
//!
//! Scans call back once per row so that a caller can stream a year of minute data without
//! holding it in memory.

use rusqlite::{params, Connection, OptionalExtension, Transaction};
use weir_contract::{Fault, Quantity, Reading, Sample, Timestamp};

/// A stored reading.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// Unix seconds.
    pub ts: i64,
    /// Values in `Quantity::ALL` order.
    pub values: [Option<f64>; Quantity::COUNT],
    /// `{"turbidity_ntu":"no_response"}` or None.
    pub faults: Option<String>,
}

impl Row {
    /// A reading as the store keeps it.
    pub fn of(r: &Reading) -> Row {
        Row {
            ts: r.ts.unix(),
            values: Quantity::ALL.map(|q| r.value(q)),
            faults: encode_faults(r.samples().filter_map(|(q, s)| match s {
                Sample::Fault(f) => Some((q, f)),
                Sample::Value(_) => None,
            })),
        }
    }

    /// The failed sensors, each with its fault (nothing for a fault the contract no longer
    /// knows).
    pub fn faults(&self) -> Vec<(Quantity, Fault)> {
        self.faults
            .as_deref()
            .map(decode_faults)
            .unwrap_or_default()
    }

    /// The reading as the contract has it.
    pub fn to_reading(&self) -> Reading {
        let mut r = Reading::new(Timestamp::from_unix(self.ts));
        for (q, v) in Quantity::ALL.iter().zip(self.values) {
            if let Some(v) = v {
                r.set(*q, Some(Sample::Value(v)));
            }
        }
        for (q, f) in self.faults() {
            r.set(q, Some(Sample::Fault(f)));
        }
        r
    }

    /// The reading as the API and the live feed show it: `ts` in RFC 3339 UTC, one field per
    /// value, `faults` if a sensor failed.
    pub fn to_json(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        m.insert(
            "ts".into(),
            Timestamp::from_unix(self.ts).to_string().into(),
        );
        for (q, v) in Quantity::ALL.iter().zip(self.values) {
            if let Some(v) = v {
                m.insert(q.field().into(), serde_json::json!(v));
            }
        }
        let faults = self.faults();
        if !faults.is_empty() {
            let faults = faults
                .into_iter()
                .map(|(q, f)| (q.field().to_string(), f.code().into()))
                .collect();
            m.insert("faults".into(), serde_json::Value::Object(faults));
        }
        serde_json::Value::Object(m)
    }

    /// Reads a row from `ts, {value columns}, faults` starting at column `at`.
    fn read(r: &rusqlite::Row<'_>, at: usize) -> rusqlite::Result<Row> {
        let mut values = [None; Quantity::COUNT];
        for (i, v) in values.iter_mut().enumerate() {
            *v = r.get(at + 1 + i)?;
        }
        Ok(Row {
            ts: r.get(at)?,
            values,
            faults: r.get(at + 1 + Quantity::COUNT)?,
        })
    }
}

/// The `faults` column: `{"turbidity_ntu":"no_response"}`, or NULL when no sensor failed.
/// Field names and fault codes are plain identifiers from the contract: nothing to escape.
fn encode_faults(faults: impl Iterator<Item = (Quantity, Fault)>) -> Option<String> {
    let faults: Vec<String> = faults
        .map(|(q, f)| format!("\"{}\":\"{}\"", q.field(), f.code()))
        .collect();
    (!faults.is_empty()).then(|| format!("{{{}}}", faults.join(",")))
}

/// The `faults` column read back, in `Quantity::ALL` order.
fn decode_faults(text: &str) -> Vec<(Quantity, Fault)> {
    let Ok(map) = serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(text) else {
        return Vec::new();
    };
    Quantity::ALL
        .iter()
        .filter_map(|q| {
            let code = map.get(q.field())?.as_str()?;
            Some((*q, Fault::from_code(code)?))
        })
        .collect()
}

/// The value columns in `Quantity::ALL` order, for SELECT and INSERT lists, each prefixed
/// with `table.` when given.
fn value_columns(table: &str) -> String {
    Quantity::ALL
        .iter()
        .map(|q| format!("{table}{}", q.field()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The reading INSERT, built once from the quantity table.
fn insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let placeholders: String = (0..Quantity::COUNT)
            .map(|i| format!(", ?{}", i + 3))
            .collect();
        format!(
            "INSERT INTO readings (terminal, ts, {}, faults) VALUES (?1, ?2{placeholders}, ?{})
             ON CONFLICT (terminal, ts) DO NOTHING",
            value_columns(""),
            Quantity::COUNT + 3
        )
    })
}

/// The statement [`insert`] runs, prepared once per transaction.
pub(crate) fn insert_statement<'t>(
    tx: &'t Transaction<'_>,
) -> rusqlite::Result<rusqlite::CachedStatement<'t>> {
    tx.prepare_cached(insert_sql())
}

/// Stores `row` for the terminal with key `terminal`; its commit-order id, or None if the
/// terminal already has a reading at that time (a replay).
pub(crate) fn insert(
    tx: &Transaction<'_>,
    insert: &mut rusqlite::CachedStatement<'_>,
    terminal: i64,
    row: &Row,
) -> rusqlite::Result<Option<i64>> {
    let [v0, v1, v2, v3, v4, v5] = &row.values;
    let args: [&dyn rusqlite::ToSql; Quantity::COUNT + 3] =
        [&terminal, &row.ts, v0, v1, v2, v3, v4, v5, &row.faults];
    Ok((insert.execute(args.as_slice())? > 0).then(|| tx.last_insert_rowid()))
}

/// Calls `each` for every reading of `terminal` with `from <= ts < to`, oldest first.
/// Returns false if the terminal is unknown.
pub fn scan(
    conn: &Connection,
    terminal: &str,
    from: i64,
    to: i64,
    mut each: impl FnMut(Row) -> bool,
) -> rusqlite::Result<bool> {
    let Some(key) = crate::terminals::key_of(conn, terminal)? else {
        return Ok(false);
    };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT ts, {}, faults FROM readings WHERE terminal = ?1 AND ts >= ?2 AND ts < ?3 ORDER BY ts",
        value_columns("")
    ))?;
    let mut rows = stmt.query(params![key, from, to])?;
    while let Some(r) = rows.next()? {
        if !each(Row::read(r, 0)?) {
            break;
        }
    }
    Ok(true)
}

/// Number of readings of `terminal` with `from <= ts < to`.
pub fn count(conn: &Connection, terminal: &str, from: i64, to: i64) -> rusqlite::Result<i64> {
    conn.prepare_cached(
        "SELECT count(*) FROM readings r JOIN terminals t ON t.key = r.terminal
         WHERE t.id = ?1 AND r.ts >= ?2 AND r.ts < ?3",
    )?
    .query_row(params![terminal, from, to], |r| r.get(0))
}

/// The newest reading of `terminal`.
pub fn latest(conn: &Connection, terminal: &str) -> rusqlite::Result<Option<Row>> {
    let Some(key) = crate::terminals::key_of(conn, terminal)? else {
        return Ok(None);
    };
    conn.prepare_cached(&format!(
        "SELECT ts, {}, faults FROM readings WHERE terminal = ?1 ORDER BY ts DESC LIMIT 1",
        value_columns("")
    ))?
    .query_row([key], |r| Row::read(r, 0))
    .optional()
}

/// A reading in commit order, as the store's consumers follow it.
#[derive(Clone, Debug, PartialEq)]
pub struct Committed {
    /// Commit order (the `readings` rowid).
    pub id: i64,
    /// Terminal id.
    pub terminal: String,
    /// The reading.
    pub row: Row,
}

/// Readings committed after `after_id`, in commit order, at most `limit`.
pub fn after(conn: &Connection, after_id: i64, limit: u32) -> rusqlite::Result<Vec<Committed>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT r.id, t.id, r.ts, {}, r.faults FROM readings r JOIN terminals t ON t.key = r.terminal
         WHERE r.id > ?1 ORDER BY r.id LIMIT ?2",
        value_columns("r.")
    ))?;
    let rows = stmt.query_map(params![after_id, limit], |r| {
        Ok(Committed {
            id: r.get(0)?,
            terminal: r.get(1)?,
            row: Row::read(r, 2)?,
        })
    })?;
    rows.collect()
}

/// The newest reading id in the store (0 when it holds none).
pub fn max_id(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT coalesce(max(id), 0) FROM readings", [], |r| {
        r.get(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading() -> Reading {
        let mut r = Reading::new(Timestamp::from_unix(1_790_000_000));
        r.set(Quantity::ALL[0], Some(Sample::Value(12.5)));
        r.set(Quantity::ALL[1], Some(Sample::Fault(Fault::ALL[0])));
        r.set(Quantity::ALL[2], Some(Sample::Fault(Fault::ALL[1])));
        r
    }

    #[test]
    fn a_reading_round_trips_through_its_row_faults_included() {
        let r = reading();
        let row = Row::of(&r);
        assert_eq!(row.to_reading(), r);
        assert_eq!(
            row.faults(),
            vec![
                (Quantity::ALL[1], Fault::ALL[0]),
                (Quantity::ALL[2], Fault::ALL[1])
            ]
        );
        let json = row.to_json();
        assert_eq!(
            json["faults"][Quantity::ALL[1].field()],
            serde_json::json!(Fault::ALL[0].code())
        );
        assert_eq!(json[Quantity::ALL[0].field()], serde_json::json!(12.5));
    }

    #[test]
    fn a_reading_without_faults_stores_null() {
        let mut r = Reading::new(Timestamp::from_unix(1_790_000_000));
        r.set(Quantity::ALL[0], Some(Sample::Value(1.0)));
        let row = Row::of(&r);
        assert_eq!(row.faults, None);
        assert!(row.to_json().get("faults").is_none());
    }

    #[test]
    fn the_faults_column_is_the_documented_json() {
        let row = Row::of(&reading());
        let text = row.faults.unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({
                Quantity::ALL[1].field(): Fault::ALL[0].code(),
                Quantity::ALL[2].field(): Fault::ALL[1].code(),
            })
        );
    }
}

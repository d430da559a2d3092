//! The only writer of telemetry: one thread, batched transactions.
//!
//! Ingest hands it jobs; it takes whatever has arrived (up to `batch_max_messages`), commits
//! it in one transaction, and only then reports the outcome of every job, in order. Ingest
//! acknowledges to the broker and the node on that report, never before.

use std::collections::HashMap;

use rusqlite::{params, Connection, Transaction};
use tokio::sync::mpsc;
use weir_contract::{Reading, Status, Telemetry, TerminalId};

use crate::node_acks::Tracker;
use crate::readings::Row;
use crate::rollups::{self, HourAgg};

/// What ingest asks the writer to persist.
#[derive(Debug)]
pub enum Item {
    /// A valid telemetry message.
    Telemetry {
        /// From the topic.
        terminal: TerminalId,
        /// The decoded, validated message, its readings moved out of the contract's
        /// fixed-capacity buffer (which holds 64 inline) so a job stays small.
        telemetry: Stored,
        /// The topic it came on, kept with the payload if it is refused after all.
        topic: String,
        /// The payload as received, kept if the message must be refused after all.
        raw: bytes::Bytes,
    },
    /// A refused message, kept as a dead letter.
    Refused {
        /// Terminal from the topic, if the topic named one.
        terminal: Option<String>,
        /// The topic it came on.
        topic: String,
        /// The raw payload.
        payload: Vec<u8>,
        /// Stable reason code (`above_max`, `bad_json`, `unknown_terminal`, ...).
        reason: &'static str,
        /// The full reason for people.
        detail: String,
        /// The message's (boot, seq), when it could be read: a refused message is still
        /// acknowledged, so the node does not send it for ever.
        message: Option<(u32, u32)>,
    },
    /// A node's status.
    Status {
        /// From the topic.
        terminal: TerminalId,
        /// The decoded status.
        status: Status,
    },
}

/// A telemetry message as the writer keeps it.
#[derive(Debug)]
pub struct Stored {
    /// Boot counter.
    pub boot: u32,
    /// Sequence number.
    pub seq: u32,
    /// Its readings.
    pub readings: Vec<Reading>,
}

impl From<&Telemetry> for Stored {
    fn from(t: &Telemetry) -> Self {
        Stored {
            boot: t.boot,
            seq: t.seq,
            readings: t.readings.to_vec(),
        }
    }
}

/// An item with the caller's token (for example what it needs to acknowledge the message).
#[derive(Debug)]
pub struct Job<T> {
    /// What to persist.
    pub item: Item,
    /// Returned untouched with the outcome.
    pub token: T,
    /// When the gateway received it, Unix seconds.
    pub received_at: i64,
}

/// What became of a job, once committed.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// A telemetry message was stored (possibly only partly new).
    Stored {
        /// Its terminal.
        terminal: TerminalId,
        /// Its boot counter.
        boot: u32,
        /// Its sequence number.
        seq: u32,
        /// Readings newly stored.
        new_readings: usize,
        /// Readings already stored before (replays).
        duplicate_readings: usize,
        /// Readings older than the raw retention window, not stored (see `retention`).
        expired_readings: usize,
        /// The seq of this boot the node may be acknowledged up to (see `node_acks`).
        ack: Option<u32>,
    },
    /// Every reading of the message was stored before (a replay); nothing changed.
    DuplicateMessage {
        /// Its readings, each a duplicate.
        duplicate_readings: usize,
        /// Its terminal.
        terminal: TerminalId,
        /// Its boot counter.
        boot: u32,
        /// Its sequence number.
        seq: u32,
        /// The seq of this boot the node may be acknowledged up to (see `node_acks`).
        ack: Option<u32>,
    },
    /// Telemetry from a terminal that is not in the registry: kept as a dead letter.
    UnknownTerminal,
    /// Kept as a dead letter.
    DeadLettered {
        /// For a message of a registered terminal whose (boot, seq) could be read: the seq
        /// of that boot the node may be acknowledged up to.
        ack: Option<u32>,
    },
    /// Status saved.
    StatusSaved,
}

/// A reading as committed, with its commit-order id.
#[derive(Clone, Debug, PartialEq)]
pub struct StoredReading {
    /// Commit order (the `readings` rowid).
    pub id: i64,
    /// Its terminal.
    pub terminal: TerminalId,
    /// The reading.
    pub reading: Reading,
}

/// One committed transaction: the outcome of each job in arrival order, and the readings
/// it added, in commit order.
#[derive(Debug)]
pub struct Committed<T> {
    /// Per job, in order.
    pub outcomes: Vec<(T, Outcome)>,
    /// New readings.
    pub readings: Vec<StoredReading>,
    /// Status items saved, for the live view.
    pub statuses: Vec<(TerminalId, Status)>,
    /// Gaps in nodes' messages passed over in this transaction (see `node_acks`).
    pub gaps_passed_over: usize,
    /// Messages held above gaps, waiting for the node to fill them, after this transaction.
    pub held_above_gaps: usize,
}

/// Settings of the writer.
#[derive(Clone, Copy, Debug)]
pub struct WriterSettings {
    /// Most jobs in one transaction.
    pub batch_max: usize,
    /// Dead letters kept.
    pub dead_letters_max: u32,
    /// Days of raw readings kept (0: all); older readings are not stored.
    pub raw_retention_days: u32,
    /// Bounds of the tracker of what may be acknowledged.
    pub acks: crate::node_acks::Limits,
}

/// Starts the writer thread. It ends when every sender of `jobs` is dropped and the last
/// batch is committed, which is how the gateway flushes on shutdown.
pub fn spawn<T: Send + 'static>(
    conn: Connection,
    settings: WriterSettings,
    mut jobs: mpsc::Receiver<Job<T>>,
    committed: mpsc::UnboundedSender<Committed<T>>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("weir-store-writer".into())
        .spawn(move || {
            let mut writer = Writer {
                conn,
                settings,
                terminals: HashMap::new(),
                acks: Tracker::new(settings.acks),
            };
            while let Some(first) = jobs.blocking_recv() {
                let mut batch = vec![first];
                while batch.len() < settings.batch_max {
                    match jobs.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let done = writer.commit_until_it_succeeds(batch);
                if committed.send(done).is_err() {
                    tracing::warn!("nobody is waiting for commits any more; stopping the writer");
                    break;
                }
            }
            tracing::debug!("store writer stopped");
        })
}

struct Writer {
    conn: Connection,
    settings: WriterSettings,
    /// Terminal id -> key; misses are looked up again (a terminal may be added at any time).
    terminals: HashMap<String, i64>,
    /// How far each node's messages are held without a gap.
    acks: Tracker,
}

impl Writer {
    /// A failed commit (disk full, I/O error) acknowledges nothing; the batch is retried so
    /// that nothing is lost and back-pressure reaches the broker.
    fn commit_until_it_succeeds<T>(&mut self, batch: Vec<Job<T>>) -> Committed<T> {
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match self.commit(&batch) {
                Ok((outcomes, readings, statuses, gaps_passed_over)) => {
                    self.acks.saved();
                    let outcomes = batch.into_iter().map(|j| j.token).zip(outcomes).collect();
                    return Committed {
                        outcomes,
                        readings,
                        statuses,
                        gaps_passed_over,
                        held_above_gaps: self.acks.held(),
                    };
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "committing a batch failed; retrying");
                    self.terminals.clear();
                    self.acks.forget();
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_secs(10));
                }
            }
        }
    }

    #[allow(clippy::type_complexity)]
    fn commit<T>(
        &mut self,
        batch: &[Job<T>],
    ) -> rusqlite::Result<(
        Vec<Outcome>,
        Vec<StoredReading>,
        Vec<(TerminalId, Status)>,
        usize,
    )> {
        // IMMEDIATE: take the write lock at BEGIN. A deferred transaction that reads first
        // fails at once (SQLITE_BUSY, no busy wait) if another connection, such as the alert
        // engine's, committed in between.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(batch.len());
        let mut readings = Vec::new();
        let mut statuses = Vec::new();
        let mut hours: HashMap<(i64, i64), HourAgg> = HashMap::new();
        let mut dead_letters = false;
        let mut last_seen: HashMap<i64, i64> = HashMap::new();
        let mut gaps = 0;
        // Records a held message; the seq its node may be acknowledged up to.
        let mut held = |acks: &mut Tracker,
                        tx: &Transaction<'_>,
                        (key, terminal): (i64, &str),
                        (boot, seq): (u32, u32),
                        at: i64|
         -> rusqlite::Result<Option<u32>> {
            let (ack, skipped) = acks.receive(tx, key, boot, seq, at)?;
            if let Some(s) = skipped {
                gaps += 1;
                tracing::warn!(
                    terminal,
                    boot,
                    from = s.from,
                    to = s.to,
                    "the node resent its queue without these messages: they will never come; acknowledging past them"
                );
            }
            Ok(ack)
        };
        let horizon =
            crate::retention::oldest_accepted(&tx, self.settings.raw_retention_days, crate::now())?;
        // One statement for every reading of the batch, not a cache lookup each.
        let mut insert = crate::readings::insert_statement(&tx)?;
        for job in batch {
            let outcome = match &job.item {
                Item::Telemetry {
                    terminal,
                    telemetry,
                    topic,
                    raw,
                } => match lookup(&tx, &mut self.terminals, terminal.as_str())? {
                    Some(key) => {
                        last_seen.insert(key, job.received_at);
                        let mut outcome = store_telemetry(
                            (&tx, &mut insert),
                            key,
                            terminal,
                            telemetry,
                            horizon,
                            &mut readings,
                            &mut hours,
                        )?;
                        let acked = held(
                            &mut self.acks,
                            &tx,
                            (key, terminal.as_str()),
                            (telemetry.boot, telemetry.seq),
                            job.received_at,
                        )?;
                        if let Outcome::Stored { ack, .. } | Outcome::DuplicateMessage { ack, .. } =
                            &mut outcome
                        {
                            *ack = acked;
                        }
                        outcome
                    }
                    None => {
                        let detail = format!(
                            "terminal {terminal} is not registered (weir terminal add {terminal})"
                        );
                        tracing::warn!(%topic, %terminal, reason = "unknown_terminal", %detail, "refused a message");
                        crate::dead_letters::insert(
                            &tx,
                            job.received_at,
                            Some(terminal.as_str()),
                            topic,
                            "unknown_terminal",
                            &detail,
                            raw,
                        )?;
                        dead_letters = true;
                        Outcome::UnknownTerminal
                    }
                },
                Item::Refused {
                    terminal,
                    topic,
                    payload,
                    reason,
                    detail,
                    message,
                } => {
                    let mut ack = None;
                    if let (Some(id), Some(message)) = (terminal.as_deref(), message) {
                        if let Some(key) = lookup(&tx, &mut self.terminals, id)? {
                            ack = held(&mut self.acks, &tx, (key, id), *message, job.received_at)?;
                        }
                    }
                    crate::dead_letters::insert(
                        &tx,
                        job.received_at,
                        terminal.as_deref(),
                        topic,
                        reason,
                        detail,
                        payload,
                    )?;
                    dead_letters = true;
                    Outcome::DeadLettered { ack }
                }
                Item::Status { terminal, status } => {
                    if let Some(key) = lookup(&tx, &mut self.terminals, terminal.as_str())? {
                        crate::status::upsert(&tx, key, status, job.received_at)?;
                        statuses.push((terminal.clone(), status.clone()));
                    }
                    Outcome::StatusSaved
                }
            };
            outcomes.push(outcome);
        }
        drop(insert);
        self.acks.save(&tx)?;
        rollups::add(&tx, &hours)?;
        let mut seen = tx.prepare_cached(
            "UPDATE terminals SET last_seen = max(coalesce(last_seen, 0), ?2) WHERE key = ?1",
        )?;
        for (key, at) in last_seen {
            seen.execute(params![key, at])?;
        }
        drop(seen);
        if dead_letters {
            crate::dead_letters::trim(&tx, self.settings.dead_letters_max)?;
        }
        tx.commit()?;
        Ok((outcomes, readings, statuses, gaps))
    }
}

fn lookup(
    tx: &Transaction<'_>,
    cache: &mut HashMap<String, i64>,
    id: &str,
) -> rusqlite::Result<Option<i64>> {
    if let Some(key) = cache.get(id) {
        return Ok(Some(*key));
    }
    let key = crate::terminals::key_of(tx, id)?;
    if let Some(key) = key {
        cache.insert(id.to_owned(), key);
    }
    Ok(key)
}

fn store_telemetry(
    // The transaction and its reading INSERT.
    (tx, insert): (&Transaction<'_>, &mut rusqlite::CachedStatement<'_>),
    key: i64,
    terminal: &TerminalId,
    t: &Stored,
    // The oldest reading time retention keeps.
    horizon: Option<i64>,
    stored: &mut Vec<StoredReading>,
    hours: &mut HashMap<(i64, i64), HourAgg>,
) -> rusqlite::Result<Outcome> {
    let (mut new_readings, mut duplicate_readings, mut expired_readings) = (0, 0, 0);
    for r in &t.readings {
        let row = Row::of(r);
        if horizon.is_some_and(|h| row.ts < h) {
            expired_readings += 1;
            continue;
        }
        let Some(id) = crate::readings::insert(tx, insert, key, &row)? else {
            duplicate_readings += 1;
            continue;
        };
        new_readings += 1;
        stored.push(StoredReading {
            id,
            terminal: terminal.clone(),
            reading: *r,
        });
        hours
            .entry((key, rollups::hour_of(row.ts)))
            .or_default()
            .add(&row.values);
    }
    // A message is a replay when every reading in it was stored before: messages are told
    // apart by their readings' (terminal, ts), not by (boot, seq), so a node that reuses a
    // sequence number for new readings (after a power cut, say) loses nothing.
    if new_readings == 0 && duplicate_readings > 0 && expired_readings == 0 {
        return Ok(Outcome::DuplicateMessage {
            duplicate_readings,
            terminal: terminal.clone(),
            boot: t.boot,
            seq: t.seq,
            ack: None,
        });
    }
    Ok(Outcome::Stored {
        terminal: terminal.clone(),
        boot: t.boot,
        seq: t.seq,
        new_readings,
        duplicate_readings,
        expired_readings,
        ack: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_contract::{Quantity, Timestamp};

    fn telemetry(seq: u32, times: &[i64]) -> Item {
        Item::Telemetry {
            terminal: TerminalId::new("HY-001").unwrap(),
            telemetry: Stored {
                boot: 1,
                seq,
                readings: times
                    .iter()
                    .map(|t| Reading::new(Timestamp::from_unix(*t)).with(Quantity::Flow, 1.5))
                    .collect(),
            },
            topic: "weir/terminals/HY-001/telemetry".into(),
            raw: bytes::Bytes::new(),
        }
    }

    /// Commits `items` one transaction each through a running writer; their outcomes.
    fn commit_each(items: Vec<Item>) -> (Vec<Outcome>, Vec<i64>) {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let new = crate::terminals::NewTerminal {
            id: "HY-001".into(),
            name: "one".into(),
            ..Default::default()
        };
        store
            .with(|c| Ok(crate::terminals::add(c, &new, "")))
            .unwrap()
            .unwrap();
        let settings = WriterSettings {
            batch_max: 1,
            dead_letters_max: 10,
            raw_retention_days: 0,
            acks: crate::node_acks::Limits::default(),
        };
        let (jobs, rx) = mpsc::channel(16);
        let (done_tx, mut done) = mpsc::unbounded_channel();
        let thread = spawn(store.connect().unwrap(), settings, rx, done_tx).unwrap();
        let mut outcomes = Vec::new();
        for item in items {
            jobs.blocking_send(Job {
                item,
                token: (),
                received_at: 1_800_000_000,
            })
            .unwrap();
            let c = done.blocking_recv().unwrap();
            outcomes.extend(c.outcomes.into_iter().map(|(_, o)| o));
        }
        drop(jobs);
        thread.join().unwrap();
        let mut times = Vec::new();
        crate::readings::scan(&store.connect().unwrap(), "HY-001", 0, i64::MAX, |r| {
            times.push(r.ts);
            true
        })
        .unwrap();
        (outcomes, times)
    }

    #[test]
    fn a_replayed_message_is_a_duplicate_and_stores_nothing_twice() {
        let (outcomes, times) =
            commit_each(vec![telemetry(7, &[60, 120]), telemetry(7, &[60, 120])]);
        assert!(matches!(
            outcomes[0],
            Outcome::Stored {
                new_readings: 2,
                duplicate_readings: 0,
                ..
            }
        ));
        assert!(matches!(
            outcomes[1],
            Outcome::DuplicateMessage { seq: 7, .. }
        ));
        assert_eq!(times, vec![60, 120]);
    }

    #[test]
    fn a_reused_sequence_number_with_new_readings_loses_none_of_them() {
        // After a power cut a node may send new readings under a sequence number it used
        // before: they are new readings, and stored.
        let (outcomes, times) = commit_each(vec![
            telemetry(7, &[60, 120]),
            telemetry(7, &[120, 180, 240]),
        ]);
        assert!(matches!(
            outcomes[1],
            Outcome::Stored {
                new_readings: 2,
                duplicate_readings: 1,
                ..
            }
        ));
        assert_eq!(times, vec![60, 120, 180, 240]);
    }

    fn ack_of(o: &Outcome) -> Option<u32> {
        match o {
            Outcome::Stored { ack, .. }
            | Outcome::DuplicateMessage { ack, .. }
            | Outcome::DeadLettered { ack } => *ack,
            _ => panic!("no ack in {o:?}"),
        }
    }

    #[test]
    fn acks_stop_at_a_gap_and_count_refused_messages_as_held() {
        let refused = |seq| Item::Refused {
            terminal: Some("HY-001".into()),
            topic: "weir/terminals/HY-001/telemetry".into(),
            payload: b"{}".to_vec(),
            reason: "above_max",
            detail: "flow_m3h above its maximum".into(),
            message: Some((1, seq)),
        };
        let (outcomes, _) = commit_each(vec![
            telemetry(0, &[60]),
            refused(1),
            // 2 and 3 lost on the way.
            telemetry(4, &[300]),
            telemetry(2, &[180]),
            telemetry(3, &[240]),
            telemetry(4, &[300]),
        ]);
        let acks: Vec<Option<u32>> = outcomes.iter().map(ack_of).collect();
        assert_eq!(
            acks,
            vec![Some(0), Some(1), Some(1), Some(2), Some(4), Some(4)]
        );
    }
}

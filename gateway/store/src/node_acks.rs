//! What the gateway may acknowledge to each node: the unbroken run of its messages it holds.
//!
//! A node frees every queued message of a boot up to the `(boot, seq)` the gateway
//! acknowledges. So the gateway must never acknowledge past a sequence number it has not
//! stored: a broker that lost the gateway's session drops what nodes publish until the gateway
//! subscribes again, and acknowledging the next message that does arrive would free the
//! dropped ones on the node. Per (terminal, boot) the writer keeps the highest seq up to which
//! it holds every message (`acked`, persisted in `node_acks` with the readings, so a restarted
//! gateway goes on from there) and the seqs it holds above a gap (`held`, in memory only).
//!
//! A gap is filled when the node sends the missing messages again: it resends its queue,
//! oldest first, when its acks stop advancing. A gap the node can never fill (messages it
//! dropped from a full queue, or acknowledged by an earlier database) is passed over when a
//! message above it that was first stored at least `gap_grace_s` ago arrives again: that is
//! the node resending its queue, and whatever it still held below came first, in order.
//! A broker redelivering what the gateway had not yet acknowledged to it sends only what
//! arrived moments before, so it cannot be mistaken for that.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, Connection, OptionalExtension};

/// The table, created by migration `core_0007_node_acks`.
pub const MIGRATION: &str = "CREATE TABLE node_acks (
         terminal INTEGER NOT NULL REFERENCES terminals(key) ON DELETE CASCADE,
         boot INTEGER NOT NULL,
         acked INTEGER NOT NULL,
         PRIMARY KEY (terminal, boot)
     ) WITHOUT ROWID;";

/// Bounds of the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Seconds a message above a gap must have been stored before its resend passes over
    /// the gap.
    pub gap_grace_s: i64,
    /// Messages held above gaps per (terminal, boot); past it the lowest gap is passed over.
    pub max_held: usize,
    /// Boots tracked per terminal (the newest); an older boot's messages are acknowledged
    /// as they come.
    pub boots_kept: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            gap_grace_s: 30,
            max_held: 4096,
            boots_kept: 4,
        }
    }
}

/// A gap passed over: the node will never send these seqs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// Its terminal's key.
    pub terminal: i64,
    /// Its boot.
    pub boot: u32,
    /// The first seq passed over.
    pub from: u32,
    /// The last seq passed over.
    pub to: u32,
}

#[derive(Debug, Default)]
struct Run {
    /// Every seq up to this one is held (None: not even 0).
    acked: Option<u32>,
    /// Seqs held above a gap, with when each was first stored.
    held: BTreeMap<u32, i64>,
    /// `acked` changed since it was last saved.
    dirty: bool,
}

impl Run {
    fn next(&self) -> u32 {
        self.acked.map_or(0, |a| a.saturating_add(1))
    }

    /// Records `seq`, stored at `now`; returns the gap passed over, if one was.
    fn receive(&mut self, seq: u32, now: i64, limits: &Limits) -> Option<(u32, u32)> {
        if self.acked.is_some_and(|a| seq <= a) {
            return None;
        }
        if seq == self.next() {
            self.acked = Some(seq);
            self.dirty = true;
            self.absorb();
            return None;
        }
        match self.held.get(&seq) {
            Some(&first) if now - first >= limits.gap_grace_s => {
                // The node is resending its queue: what it held below `seq` came before.
                let gap = self.pass_over_below(seq);
                self.acked = Some(seq);
                self.held.remove(&seq);
                self.absorb();
                gap
            }
            Some(_) => None,
            None => {
                self.held.insert(seq, now);
                if self.held.len() > limits.max_held {
                    let (&lowest, _) = self.held.iter().next()?;
                    let gap = self.pass_over_below(lowest);
                    self.acked = Some(lowest);
                    self.held.remove(&lowest);
                    self.absorb();
                    return gap;
                }
                None
            }
        }
    }

    /// Drops what is held below `seq` and marks the run dirty; returns the seqs missing
    /// between `acked` and `seq`, which are now passed over.
    fn pass_over_below(&mut self, seq: u32) -> Option<(u32, u32)> {
        let from = self.next();
        self.held = self.held.split_off(&seq);
        self.dirty = true;
        (from < seq).then(|| (from, seq - 1))
    }

    /// Moves `acked` over the held seqs that follow it.
    fn absorb(&mut self) {
        while let Some(first) = self.held.first_key_value().map(|(s, _)| *s) {
            if first != self.next() {
                break;
            }
            self.held.remove(&first);
            self.acked = Some(first);
            self.dirty = true;
        }
    }
}

/// The writer's tracker of every node's unbroken run.
#[derive(Debug, Default)]
pub struct Tracker {
    limits: Limits,
    /// Terminal key -> boot -> run, the newest `boots_kept` boots of each.
    runs: HashMap<i64, BTreeMap<u32, Run>>,
    /// The terminals whose runs changed since the last commit: a commit visits only these,
    /// not every terminal the gateway has heard from (a province has tens of thousands).
    touched: std::collections::HashSet<i64>,
    /// Messages held above gaps, over every run.
    held: usize,
}

impl Tracker {
    /// An empty tracker; runs are read from `node_acks` as their terminals send.
    pub fn new(limits: Limits) -> Self {
        Tracker {
            limits,
            runs: HashMap::new(),
            touched: std::collections::HashSet::new(),
            held: 0,
        }
    }

    /// Records that message `(boot, seq)` of terminal `key` is held (stored, found stored
    /// before, or kept as a dead letter) at `now`, Unix seconds. Returns the seq the gateway
    /// may acknowledge for this boot (None: none yet) and a gap passed over, if one was.
    pub fn receive(
        &mut self,
        conn: &Connection,
        key: i64,
        boot: u32,
        seq: u32,
        now: i64,
    ) -> rusqlite::Result<(Option<u32>, Option<Skipped>)> {
        let boots = self.runs.entry(key).or_default();
        if !boots.contains_key(&boot) {
            if boots.len() >= self.limits.boots_kept
                && boots.first_key_value().is_some_and(|(b, _)| *b > boot)
            {
                // Older than every boot kept: a late replay. Acknowledge it as it is, so the
                // node frees it; nothing newer is at stake.
                return Ok((Some(seq), None));
            }
            let acked = conn
                .prepare_cached("SELECT acked FROM node_acks WHERE terminal = ?1 AND boot = ?2")?
                .query_row(params![key, boot], |r| r.get::<_, u32>(0))
                .optional()?;
            boots.insert(
                boot,
                Run {
                    acked,
                    ..Run::default()
                },
            );
            while boots.len() > self.limits.boots_kept {
                if let Some((_, dropped)) = boots.pop_first() {
                    self.held -= dropped.held.len();
                }
            }
        }
        let Some(run) = boots.get_mut(&boot) else {
            return Ok((Some(seq), None));
        };
        self.touched.insert(key);
        let before = run.held.len();
        let skipped = run.receive(seq, now, &self.limits);
        self.held = self.held + run.held.len() - before;
        let skipped = skipped.map(|(from, to)| Skipped {
            terminal: key,
            boot,
            from,
            to,
        });
        Ok((run.acked, skipped))
    }

    /// Writes every run that moved, in the caller's transaction; keeps only the newest
    /// `boots_kept` boots of each terminal in the table.
    pub fn save(&mut self, conn: &Connection) -> rusqlite::Result<()> {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO node_acks (terminal, boot, acked) VALUES (?1, ?2, ?3)
             ON CONFLICT (terminal, boot) DO UPDATE SET acked = max(acked, excluded.acked)",
        )?;
        let mut prune =
            conn.prepare_cached("DELETE FROM node_acks WHERE terminal = ?1 AND boot < ?2")?;
        for key in &self.touched {
            let Some(boots) = self.runs.get_mut(key) else {
                continue;
            };
            let mut moved = false;
            for (boot, run) in boots.iter_mut() {
                if let (true, Some(acked)) = (run.dirty, run.acked) {
                    upsert.execute(params![key, boot, acked])?;
                    moved = true;
                }
            }
            if moved && boots.len() >= self.limits.boots_kept {
                if let Some((oldest, _)) = boots.first_key_value() {
                    prune.execute(params![key, oldest])?;
                }
            }
        }
        Ok(())
    }

    /// The transaction that [`Tracker::save`] wrote in committed: the runs are clean.
    pub fn saved(&mut self) {
        for key in self.touched.drain() {
            for run in self
                .runs
                .get_mut(&key)
                .into_iter()
                .flat_map(|b| b.values_mut())
            {
                run.dirty = false;
            }
        }
    }

    /// The transaction failed: forget everything (it is read again from the table).
    pub fn forget(&mut self) {
        self.runs.clear();
        self.touched.clear();
        self.held = 0;
    }

    /// Messages held above gaps, for every terminal (a gauge).
    pub fn held(&self) -> usize {
        self.held
    }
}

/// Moves where a terminal's run stands for `boot` up to `acked`, or sets it if the gateway has
/// no record of it; never moves it down. For a gateway taking its terminals back from another
/// that held them meanwhile: the node's retained ack says what the other stored without a gap.
pub fn advance(conn: &Connection, terminal: &str, boot: u32, acked: u32) -> rusqlite::Result<bool> {
    let n = conn.execute(
        "INSERT INTO node_acks (terminal, boot, acked)
             SELECT key, ?2, ?3 FROM terminals WHERE id = ?1
         ON CONFLICT (terminal, boot) DO UPDATE SET acked = excluded.acked
             WHERE excluded.acked > node_acks.acked",
        params![terminal, boot, acked],
    )?;
    Ok(n > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        gap_grace_s: 30,
        max_held: 8,
        boots_kept: 2,
    };

    fn run_of(seqs: &[(u32, i64)]) -> (Run, Vec<(u32, u32)>) {
        let mut run = Run::default();
        let mut gaps = Vec::new();
        for &(seq, now) in seqs {
            gaps.extend(run.receive(seq, now, &LIMITS));
        }
        (run, gaps)
    }

    #[test]
    fn in_order_messages_are_acknowledged_each() {
        let (run, gaps) = run_of(&[(0, 0), (1, 0), (2, 0)]);
        assert_eq!(run.acked, Some(2));
        assert!(gaps.is_empty());
    }

    #[test]
    fn a_gap_holds_the_ack_until_it_is_filled() {
        // 2 and 3 were dropped by a broker that forgot the gateway's session.
        let (mut run, _) = run_of(&[(0, 0), (1, 0), (4, 1), (5, 1)]);
        assert_eq!(run.acked, Some(1), "nothing past the gap");
        // The node resends its queue: 2, 3, then 4 and 5 again.
        for seq in [2, 3, 4, 5] {
            assert_eq!(run.receive(seq, 70, &LIMITS), None);
        }
        assert_eq!(run.acked, Some(5));
        assert!(run.held.is_empty());
    }

    #[test]
    fn a_quick_redelivery_does_not_pass_over_a_gap() {
        // The broker redelivers 4 moments after it first came: not the node's resend.
        let (run, gaps) = run_of(&[(0, 0), (4, 10), (4, 12)]);
        assert_eq!(run.acked, Some(0));
        assert!(gaps.is_empty());
    }

    #[test]
    fn a_resend_that_skips_a_gap_shows_the_gap_is_for_ever() {
        // The node dropped 1..=3 from its full queue; its resend starts at 4.
        let (run, gaps) = run_of(&[(0, 0), (4, 10), (5, 10), (4, 100), (5, 100), (6, 100)]);
        assert_eq!(gaps, vec![(1, 3)]);
        assert_eq!(run.acked, Some(6));
        assert!(run.held.is_empty());
    }

    #[test]
    fn a_first_message_above_zero_waits_for_the_resend() {
        // A gateway with a new database: the node's earlier messages were acknowledged by
        // the old one. The first resend passes over them.
        let (run, gaps) = run_of(&[(57, 0), (58, 0), (57, 60)]);
        assert_eq!(gaps, vec![(0, 56)]);
        assert_eq!(run.acked, Some(58));
    }

    #[test]
    fn too_many_held_messages_pass_over_the_lowest_gap() {
        let seqs: Vec<(u32, i64)> = [0].into_iter().chain(2..=10).map(|s| (s, 0)).collect();
        let (run, gaps) = run_of(&seqs);
        assert_eq!(gaps, vec![(1, 1)]);
        assert_eq!(run.acked, Some(10));
        assert!(run.held.len() <= LIMITS.max_held);
    }

    #[test]
    fn runs_survive_a_restart_and_old_boots_are_pruned() {
        let dir = tempfile::tempdir().unwrap();
        let store =
            crate::Store::open(&dir.path().join("weir.db"), crate::Synchronous::Normal).unwrap();
        let mut conn = store.connect().unwrap();
        let new = crate::terminals::NewTerminal {
            id: "HY-001".into(),
            name: "one".into(),
            ..Default::default()
        };
        crate::terminals::add(&conn, &new, "").unwrap();
        let key = crate::terminals::key_of(&conn, "HY-001").unwrap().unwrap();
        let mut t = Tracker::new(LIMITS);
        let tx = conn.transaction().unwrap();
        for (boot, seq) in [(1, 0), (1, 1), (2, 0), (3, 0), (3, 1), (3, 3)] {
            t.receive(&tx, key, boot, seq, 0).unwrap();
        }
        assert_eq!(t.held(), 1, "boot 3's seq 3, above the gap at 2");
        t.save(&tx).unwrap();
        tx.commit().unwrap();
        t.saved();
        let rows: Vec<(u32, u32)> = conn
            .prepare("SELECT boot, acked FROM node_acks ORDER BY boot")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![(2, 0), (3, 1)],
            "two boots kept, 3 stops at the gap"
        );
        // A new writer goes on from the table: 2 fills boot 3's gap (3 is no longer held
        // in memory, so it is acknowledged when it comes again).
        let mut t = Tracker::new(LIMITS);
        assert_eq!(t.receive(&conn, key, 3, 2, 0).unwrap(), (Some(2), None));
        assert_eq!(t.receive(&conn, key, 3, 3, 0).unwrap(), (Some(3), None));
        // A boot older than every boot kept is acknowledged as it comes.
        assert_eq!(t.receive(&conn, key, 2, 1, 0).unwrap(), (Some(1), None));
        assert_eq!(t.receive(&conn, key, 1, 5, 0).unwrap(), (Some(5), None));
        assert_eq!(t.held(), 0);
        // Advancing sets a run where none is, and never moves one down.
        assert!(advance(&conn, "HY-001", 4, 10).unwrap());
        assert!(!advance(&conn, "HY-001", 4, 9).unwrap());
        assert_eq!(t.receive(&conn, key, 4, 11, 0).unwrap(), (Some(11), None));
        // Advancing moves a run up, never down, and sets one where none is.
        assert!(advance(&conn, "HY-001", 5, 7).unwrap());
        assert!(advance(&conn, "HY-001", 5, 9).unwrap());
        assert!(!advance(&conn, "HY-001", 5, 8).unwrap());
        let mut t = Tracker::new(LIMITS);
        assert_eq!(t.receive(&conn, key, 5, 10, 0).unwrap(), (Some(10), None));
    }
}

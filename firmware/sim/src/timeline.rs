//! Simulated time: starts in the past, runs faster than the wall clock until it catches up
//! with it, then runs in real time. It never gets ahead of the wall clock, because the gateway
//! refuses readings from the future.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use weir_contract::Timestamp;
use weir_node::Clock;

/// The mapping from wall-clock time to simulated time, in Unix milliseconds.
///
/// `sim = min(sim_origin + (wall - wall_origin) * speed, wall)`: a line that starts
/// `history` in the past, rises `speed` times faster than the wall clock, and joins it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Timeline {
    /// Wall-clock time at which the simulation started, ms.
    pub wall_origin_ms: i64,
    /// Simulated time at that moment, ms.
    pub sim_origin_ms: i64,
    /// How many simulated seconds pass per wall-clock second until the catch-up.
    pub speed: f64,
}

/// File name of the timeline in a data directory.
const FILE: &str = "timeline";

impl Timeline {
    /// A timeline starting at wall time `now_ms`, `history` in the past, at `speed`.
    pub fn new(now_ms: i64, history: Duration, speed: f64) -> Self {
        Timeline {
            wall_origin_ms: now_ms,
            sim_origin_ms: now_ms - history.as_millis() as i64,
            speed: speed.max(1.0),
        }
    }

    /// Simulated time at wall time `wall_ms`.
    pub fn sim_at(&self, wall_ms: i64) -> i64 {
        let elapsed = (wall_ms - self.wall_origin_ms).max(0) as f64;
        let accelerated = self.sim_origin_ms + (elapsed * self.speed) as i64;
        accelerated.min(wall_ms)
    }

    /// The wall time at which the simulation reaches `sim_ms`.
    pub fn wall_at(&self, sim_ms: i64) -> i64 {
        let accelerated =
            self.wall_origin_ms + ((sim_ms - self.sim_origin_ms) as f64 / self.speed).ceil() as i64;
        accelerated.max(sim_ms)
    }

    /// The timeline kept in `dir`, or a new one (saved there) if there is none: a restarted
    /// simulator continues the same simulated time.
    pub fn load_or_create(dir: &Path, history: Duration, speed: f64) -> io::Result<(Self, bool)> {
        let path = dir.join(FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bad = || {
                    io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("{}: not a timeline", path.display()),
                    )
                };
                let mut parts = text.split_whitespace();
                let mut next = || parts.next().ok_or_else(bad);
                let timeline = Timeline {
                    wall_origin_ms: next()?.parse().map_err(|_| bad())?,
                    sim_origin_ms: next()?.parse().map_err(|_| bad())?,
                    speed: next()?.parse().map_err(|_| bad())?,
                };
                Ok((timeline, true))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir)?;
                let timeline = Timeline::new(wall_now_ms(), history, speed);
                std::fs::write(
                    &path,
                    format!(
                        "{} {} {}\n",
                        timeline.wall_origin_ms, timeline.sim_origin_ms, timeline.speed
                    ),
                )?;
                Ok((timeline, false))
            }
            Err(e) => Err(e),
        }
    }
}

/// The wall clock, Unix milliseconds.
pub fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A node's clock in simulated time.
///
/// Time moves in steps: it advances when the node sleeps, to exactly the instant the node
/// asked for, so readings fall on the schedule's grid and the sensors see the same instant
/// as the node's timestamp. It never passes the timeline (and so never the wall clock); a
/// node that falls behind catches up without skipping samples.
#[derive(Clone, Debug)]
pub struct SimClock {
    timeline: Timeline,
    now_ms: Arc<AtomicI64>,
}

impl SimClock {
    /// A clock at the timeline's current instant.
    pub fn new(timeline: Timeline) -> Self {
        SimClock {
            timeline,
            now_ms: Arc::new(AtomicI64::new(timeline.sim_at(wall_now_ms()))),
        }
    }

    /// The clock's current instant, Unix seconds (shared with the simulated sensors).
    pub fn unix_s(&self) -> i64 {
        self.now_ms.load(Ordering::Relaxed).div_euclid(1000)
    }

    /// The timeline.
    pub fn timeline(&self) -> Timeline {
        self.timeline
    }
}

impl Clock for SimClock {
    fn utc(&mut self) -> Option<Timestamp> {
        Some(Timestamp::from_unix(self.unix_s()))
    }

    fn now_ms(&mut self) -> u64 {
        self.now_ms.load(Ordering::Relaxed).max(0) as u64
    }

    async fn sleep_until(&mut self, at_ms: u64) {
        let at = at_ms.min(i64::MAX as u64) as i64;
        loop {
            let wall = wall_now_ms();
            let wake = self.timeline.wall_at(at);
            if wall >= wake {
                // Due already (the node is catching up): yield all the same, or a node behind
                // schedule never lets its runtime poll anything else, cancellation included.
                tokio::task::yield_now().await;
                break;
            }
            tokio::time::sleep(Duration::from_millis((wake - wall) as u64)).await;
        }
        self.now_ms.fetch_max(at, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_000_000_000;
    const DAY_MS: i64 = 86_400_000;

    #[test]
    fn a_week_at_10080x_takes_a_minute_then_time_runs_at_wall_speed() {
        let t = Timeline::new(NOW, Duration::from_secs(7 * 86_400), 10_080.0);
        assert_eq!(t.sim_at(NOW), NOW - 7 * DAY_MS);
        assert_eq!(t.sim_at(NOW + 30_000), NOW - 7 * DAY_MS + 30_000 * 10_080);
        // The accelerated line meets the wall clock just after a minute.
        let meet = NOW + (7 * DAY_MS) / 10_079;
        assert!((t.sim_at(meet) - meet).abs() <= 10_080);
        assert_eq!(t.sim_at(NOW + 3_600_000), NOW + 3_600_000);
    }

    #[test]
    fn simulated_time_never_runs_ahead_of_the_wall_clock() {
        let t = Timeline::new(NOW, Duration::from_secs(3 * 86_400), 5000.0);
        let mut previous = i64::MIN;
        for step in 0..10_000 {
            let wall = NOW + step * 37;
            let sim = t.sim_at(wall);
            assert!(sim <= wall, "{sim} > {wall}");
            assert!(sim >= previous);
            previous = sim;
        }
    }

    #[test]
    fn wall_at_inverts_sim_at() {
        let t = Timeline::new(NOW, Duration::from_secs(86_400), 2880.0);
        for sim in [NOW - DAY_MS + 1000, NOW - DAY_MS / 2, NOW - 1, NOW + 5_000] {
            let wall = t.wall_at(sim);
            assert!(t.sim_at(wall) >= sim, "{sim}");
            assert!(t.sim_at(wall - 1) < sim || wall == sim, "{sim}");
        }
    }

    #[test]
    fn a_restarted_simulator_continues_the_saved_timeline() {
        let dir = tempfile::tempdir().unwrap();
        let (a, resumed) =
            Timeline::load_or_create(dir.path(), Duration::from_secs(86_400), 100.0).unwrap();
        assert!(!resumed);
        let (b, resumed) =
            Timeline::load_or_create(dir.path(), Duration::from_secs(5), 1.0).unwrap();
        assert!(resumed);
        assert_eq!(a, b);
    }
}

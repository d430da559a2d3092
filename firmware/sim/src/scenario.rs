//! The fleet's scenario: which terminals exist, how each behaves, and which one gets which
//! scripted fault. Everything follows from the seed, the terminal count and the timeline.

use std::fmt;

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use weir_contract::{Fault, NodeConfig, Quantity, TerminalId};
use weir_node::RawReading;

use crate::signals::{self, DAY_S, WEEK_S};

/// A fault the scenario plays on one terminal, so alert rules have something to catch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ScriptedFault {
    /// The flow meter's output freezes at its value at `from` (a stuck sensor).
    StuckFlow {
        /// Unix seconds.
        from: i64,
    },
    /// The node's link is dead from `from` to `until`; the node keeps its readings.
    DeadLink {
        /// Unix seconds.
        from: i64,
        /// Unix seconds.
        until: i64,
    },
    /// The node restarts at `at` (a power cycle: its boot counter increases).
    Reboot {
        /// Unix seconds.
        at: i64,
    },
    /// The turbidity probe fouls from `from`: its reading drifts up by `ntu_per_day`.
    FouledTurbidity {
        /// Unix seconds.
        from: i64,
        /// Drift, NTU a day.
        ntu_per_day: f64,
    },
    /// The tank is overdue for desludging: sludge above 30 % and rising, never emptied.
    OverdueSludge,
    /// The turbidity probe fails from `from` and the node reports `fault` instead.
    FailedTurbidity {
        /// Unix seconds.
        from: i64,
        /// The fault code sent.
        fault: Fault,
    },
}

impl ScriptedFault {
    /// A short name, for logs and the scenario table.
    pub fn name(&self) -> &'static str {
        match self {
            ScriptedFault::StuckFlow { .. } => "stuck flow meter",
            ScriptedFault::DeadLink { .. } => "dead link",
            ScriptedFault::Reboot { .. } => "reboot",
            ScriptedFault::FouledTurbidity { .. } => "fouled turbidity probe",
            ScriptedFault::OverdueSludge => "overdue desludging",
            ScriptedFault::FailedTurbidity { .. } => "failed turbidity probe",
        }
    }
}

/// One simulated terminal: its id, the parameters of its signals and its scripted fault.
#[derive(Clone, Debug, PartialEq)]
pub struct TerminalPlan {
    /// `HY-001`, ...
    pub id: TerminalId,
    /// Position in the fleet, from 0.
    pub index: usize,
    /// Wastewater treated per day, m3.
    pub daily_m3: f64,
    /// Totaliser at 2024-01-01, m3.
    pub volume_at_ref_m3: f64,
    /// Turbidity in dry weather, NTU.
    pub turbidity_base_ntu: f64,
    /// How late rain shows at this terminal, s.
    pub rain_delay_s: i64,
    /// Working depth of the tank, m.
    pub tank_depth_m: f64,
    /// Height of the ultrasonic sensor above the tank bottom, m.
    pub sensor_height_m: f64,
    /// How fast sludge builds up, % a week.
    pub sludge_rate_pct_week: f64,
    /// Shifts the desludging cycle, s.
    pub sludge_phase_s: i64,
    /// Battery voltage around which the supply swings, V.
    pub supply_base_v: f64,
    /// Typical signal strength, dBm.
    pub rssi_base_dbm: f64,
    /// The scripted fault, if this terminal has one.
    pub fault: Option<ScriptedFault>,
    seed: u64,
}

/// Signals that get their own noise.
mod channel {
    pub const FLOW: u64 = 1;
    pub const TURBIDITY: u64 = 2;
    pub const SLUDGE: u64 = 3;
    pub const SUPPLY: u64 = 4;
    pub const RSSI: u64 = 5;
}

impl TerminalPlan {
    /// The configuration the node is installed with: the tank's geometry, default schedule.
    pub fn factory_config(&self) -> NodeConfig {
        NodeConfig {
            tank_depth_m: Some(self.tank_depth_m),
            sensor_height_m: Some(self.sensor_height_m),
            ..NodeConfig::default()
        }
    }

    /// The true sludge level at `t`, %.
    pub fn sludge_pct(&self, t: i64) -> f64 {
        match self.fault {
            Some(ScriptedFault::OverdueSludge) => {
                // Past the desludging level and climbing; a full tank tops out.
                let since = (t - self.sludge_phase_s).max(0) as f64 / WEEK_S as f64;
                (30.5 + self.sludge_rate_pct_week * since).min(95.0)
            }
            _ => signals::sludge_pct(self.sludge_rate_pct_week, self.sludge_phase_s, t),
        }
    }

    /// The true effluent turbidity at `t`, NTU (what a clean probe would read, without noise).
    pub fn turbidity_ntu(&self, t: i64) -> f64 {
        signals::turbidity_ntu(self.seed, self.turbidity_base_ntu, self.rain_delay_s, t)
    }

    /// What the node's sensors give at `t`: raw values with noise, and the scripted faults.
    /// Sludge is the distance from the sensor to the sludge surface, m.
    pub fn raw_at(&self, t: i64) -> RawReading {
        let n = |signal, t| signals::noise(self.seed, self.index as u64, signal, t);
        let flow_at =
            |t| (signals::flow_m3h(self.daily_m3, t) * (1.0 + 0.03 * n(channel::FLOW, t))).max(0.0);
        let flow = match self.fault {
            Some(ScriptedFault::StuckFlow { from }) if t >= from => flow_at(from),
            _ => flow_at(t),
        };
        let volume = signals::volume_m3(self.daily_m3, self.volume_at_ref_m3, t);
        let mut turbidity = Ok(self.turbidity_ntu(t) * (1.0 + 0.05 * n(channel::TURBIDITY, t)));
        match self.fault {
            Some(ScriptedFault::FouledTurbidity { from, ntu_per_day }) if t >= from => {
                turbidity = turbidity.map(|v| v + ntu_per_day * (t - from) as f64 / DAY_S as f64);
            }
            Some(ScriptedFault::FailedTurbidity { from, fault }) if t >= from => {
                turbidity = Err(fault);
            }
            _ => {}
        }
        let surface = self.sludge_pct(t) / 100.0 * self.tank_depth_m;
        let distance = self.sensor_height_m - surface + 0.005 * n(channel::SLUDGE, t);
        let supply = signals::supply_v(self.supply_base_v, t) + 0.05 * n(channel::SUPPLY, t);
        let rssi = (self.rssi_base_dbm + 3.0 * n(channel::RSSI, t)).round();

        let mut raw = RawReading::new()
            .with(Quantity::Flow, flow)
            .with(Quantity::Volume, volume)
            .with(Quantity::Sludge, distance)
            .with(Quantity::Supply, supply)
            .with(Quantity::Rssi, rssi);
        raw.set(Quantity::Turbidity, turbidity);
        raw
    }

    /// When the link is scripted dead at `t`.
    pub fn link_dead(&self, t: i64) -> bool {
        matches!(self.fault, Some(ScriptedFault::DeadLink { from, until }) if (from..until).contains(&t))
    }

    /// When the node is scripted to restart, if ever.
    pub fn reboot_at(&self) -> Option<i64> {
        match self.fault {
            Some(ScriptedFault::Reboot { at }) => Some(at),
            _ => None,
        }
    }
}

/// The whole fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    /// The seed everything follows from.
    pub seed: u64,
    /// Every terminal, `HY-001` first.
    pub terminals: Vec<TerminalPlan>,
}

/// The faults, in the order they are handed out.
const FAULT_KINDS: usize = 6;

impl Scenario {
    /// The scenario of `count` terminals for `seed`. Fault times are placed in the span
    /// `start .. start + max(span, 1 day)` (the simulated history), in Unix seconds.
    ///
    /// Six terminals, chosen by the seed, get one fault each (fewer if the fleet is smaller):
    /// a stuck flow meter from 50 % of the span on, a link dead for 6 hours from an hour
    /// before the end of the span (so a fleet that replays the span and then runs live is
    /// still cut off when it goes live: silence is measured on the wall clock), a reboot
    /// at 40 %, a turbidity probe fouling from 30 % (+6 NTU a day), a tank overdue for
    /// desludging (above 30 % all along), a turbidity probe failing at 70 % (`no_response`).
    pub fn new(seed: u64, count: usize, start: i64, span: i64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let span = span.max(DAY_S);
        let at = |share: f64| start + (span as f64 * share) as i64;
        let mut terminals: Vec<TerminalPlan> = (0..count)
            .map(|index| {
                let tank_depth_m = rng.gen_range(2.0..3.0);
                TerminalPlan {
                    id: TerminalId::new(&format!("HY-{:03}", index + 1))
                        .expect("HY-nnn is a valid terminal id"),
                    index,
                    daily_m3: rng.gen_range(20.0..80.0),
                    volume_at_ref_m3: rng.gen_range(2_000.0..30_000.0),
                    turbidity_base_ntu: rng.gen_range(1.5..6.0),
                    rain_delay_s: rng.gen_range(0..2 * 3600),
                    tank_depth_m,
                    sensor_height_m: tank_depth_m + rng.gen_range(0.3..0.8),
                    sludge_rate_pct_week: rng.gen_range(2.0..5.0),
                    sludge_phase_s: rng.gen_range(0..8 * WEEK_S),
                    supply_base_v: rng.gen_range(12.2..13.0),
                    rssi_base_dbm: rng.gen_range(-100.0..-65.0),
                    fault: None,
                    seed,
                }
            })
            .collect();
        let mut order: Vec<usize> = (0..count).collect();
        order.shuffle(&mut rng);
        for (kind, &index) in order.iter().take(FAULT_KINDS).enumerate() {
            let t = &mut terminals[index];
            t.fault = Some(match kind {
                0 => ScriptedFault::StuckFlow { from: at(0.5) },
                1 => ScriptedFault::DeadLink {
                    from: at(1.0) - 3600,
                    until: at(1.0) + 5 * 3600,
                },
                2 => ScriptedFault::Reboot { at: at(0.4) },
                3 => ScriptedFault::FouledTurbidity {
                    from: at(0.3),
                    ntu_per_day: 6.0,
                },
                4 => {
                    // The overdue tank counts its climb from the start of the span.
                    t.sludge_phase_s = start;
                    ScriptedFault::OverdueSludge
                }
                _ => ScriptedFault::FailedTurbidity {
                    from: at(0.7),
                    fault: Fault::NoResponse,
                },
            });
        }
        Scenario { seed, terminals }
    }

    /// The terminal with id `id`.
    pub fn terminal(&self, id: &str) -> Option<&TerminalPlan> {
        self.terminals.iter().find(|t| t.id.as_str() == id)
    }

    /// A table of the scenario, times as days after `start`.
    pub fn table(&self, start: i64) -> ScenarioTable<'_> {
        ScenarioTable {
            scenario: self,
            start,
        }
    }
}

/// [`Scenario::table`]'s printable form.
#[derive(Debug)]
pub struct ScenarioTable<'a> {
    scenario: &'a Scenario,
    start: i64,
}

impl fmt::Display for ScenarioTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let day = |t: i64| (t - self.start) as f64 / DAY_S as f64;
        writeln!(
            f,
            "terminal  m3/day  tank m  sludge %/wk  fault (days after the start)"
        )?;
        for t in &self.scenario.terminals {
            let fault = match t.fault {
                None => String::new(),
                Some(ScriptedFault::StuckFlow { from }) => {
                    format!("stuck flow meter from day {:.1}", day(from))
                }
                Some(ScriptedFault::DeadLink { from, until }) => format!(
                    "link dead from day {:.1} for {} h",
                    day(from),
                    (until - from) / 3600
                ),
                Some(ScriptedFault::Reboot { at }) => format!("reboot on day {:.1}", day(at)),
                Some(ScriptedFault::FouledTurbidity { from, ntu_per_day }) => format!(
                    "turbidity probe fouling from day {:.1}, +{ntu_per_day} NTU/day",
                    day(from)
                ),
                Some(ScriptedFault::OverdueSludge) => {
                    "tank overdue for desludging (sludge > 30 %)".to_string()
                }
                Some(ScriptedFault::FailedTurbidity { from, fault }) => format!(
                    "turbidity probe fails on day {:.1} ({})",
                    day(from),
                    fault.code()
                ),
            };
            writeln!(
                f,
                "{:<8}  {:>6.1}  {:>6.2}  {:>11.1}  {}",
                t.id.as_str(),
                t.daily_m3,
                t.tank_depth_m,
                t.sludge_rate_pct_week,
                fault
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use weir_contract::Timestamp;
    use weir_node::calibrate;

    use super::*;

    const START: i64 = 1_795_000_000;

    #[test]
    fn the_same_seed_gives_the_same_fleet_and_another_seed_another() {
        let a = Scenario::new(1, 38, START, 7 * DAY_S);
        assert_eq!(a, Scenario::new(1, 38, START, 7 * DAY_S));
        let b = Scenario::new(2, 38, START, 7 * DAY_S);
        assert_ne!(a, b);
        let t = START + 12_345;
        assert_eq!(a.terminals[5].raw_at(t), a.clone().terminals[5].raw_at(t));
        assert_ne!(a.terminals[5].raw_at(t), b.terminals[5].raw_at(t));
    }

    #[test]
    fn six_terminals_get_one_fault_each_chosen_by_the_seed() {
        let faulty = |seed| -> Vec<(String, &'static str)> {
            Scenario::new(seed, 38, START, 7 * DAY_S)
                .terminals
                .iter()
                .filter_map(|t| t.fault.map(|f| (t.id.to_string(), f.name())))
                .collect()
        };
        let a = faulty(1);
        assert_eq!(a.len(), 6);
        let mut kinds: Vec<_> = a.iter().map(|(_, k)| *k).collect();
        kinds.sort();
        kinds.dedup();
        assert_eq!(kinds.len(), 6);
        assert_eq!(a, faulty(1));
        assert_ne!(a, faulty(3));
        assert_eq!(
            Scenario::new(1, 3, START, DAY_S)
                .terminals
                .iter()
                .filter(|t| t.fault.is_some())
                .count(),
            3
        );
    }

    #[test]
    fn ids_run_from_hy_001() {
        let s = Scenario::new(1, 38, START, DAY_S);
        assert_eq!(s.terminals[0].id.as_str(), "HY-001");
        assert_eq!(s.terminals[37].id.as_str(), "HY-038");
    }

    fn plan_with(fault: ScriptedFault) -> TerminalPlan {
        let mut t = Scenario::new(1, 1, START, 7 * DAY_S).terminals.remove(0);
        t.fault = Some(fault);
        t
    }

    #[test]
    fn a_stuck_flow_meter_repeats_one_value() {
        let t = plan_with(ScriptedFault::StuckFlow {
            from: START + DAY_S,
        });
        let flows: Vec<_> = (0..10)
            .map(|k| t.raw_at(START + DAY_S + k * 3600).get(Quantity::Flow))
            .collect();
        assert!(flows.windows(2).all(|w| w[0] == w[1]));
        let before = t.raw_at(START + DAY_S - 3600).get(Quantity::Flow);
        assert_ne!(before, flows[0]);
    }

    #[test]
    fn a_fouled_probe_drifts_up_over_days_and_a_failed_one_sends_a_fault() {
        let fouled = plan_with(ScriptedFault::FouledTurbidity {
            from: START,
            ntu_per_day: 6.0,
        });
        let turbidity = |t: i64| fouled.raw_at(t).get(Quantity::Turbidity).unwrap().unwrap();
        let drift = turbidity(START + 5 * DAY_S) - fouled.turbidity_ntu(START + 5 * DAY_S);
        assert!((drift - 30.0).abs() < 3.0, "{drift}");

        let failed = plan_with(ScriptedFault::FailedTurbidity {
            from: START,
            fault: Fault::NoResponse,
        });
        assert_eq!(
            failed.raw_at(START + 1).get(Quantity::Turbidity),
            Some(Err(Fault::NoResponse))
        );
        assert!(failed
            .raw_at(START - 1)
            .get(Quantity::Turbidity)
            .unwrap()
            .is_ok());
    }

    #[test]
    fn the_node_reads_the_overdue_tank_above_thirty_percent() {
        let s = Scenario::new(4, 38, START, 7 * DAY_S);
        let t = s
            .terminals
            .iter()
            .find(|t| t.fault == Some(ScriptedFault::OverdueSludge))
            .unwrap();
        for day in 0..14 {
            let at = START + day * DAY_S;
            let r = calibrate(&t.raw_at(at), &t.factory_config(), Timestamp::from_unix(at));
            let pct = r.value(Quantity::Sludge).unwrap();
            assert!(pct > 30.0, "day {day}: {pct}");
        }
    }

    #[test]
    fn healthy_terminals_give_plausible_calibrated_readings() {
        let s = Scenario::new(9, 38, START, 7 * DAY_S);
        for t in s.terminals.iter().filter(|t| t.fault.is_none()) {
            for h in 0..48 {
                let at = START + h * 3600;
                let r = calibrate(&t.raw_at(at), &t.factory_config(), Timestamp::from_unix(at));
                let v = |q| r.value(q).unwrap_or_else(|| panic!("{} {q}: {r:?}", t.id));
                assert!((0.1..10.0).contains(&v(Quantity::Flow)));
                assert!((0.5..60.0).contains(&v(Quantity::Turbidity)));
                assert!(
                    (5.0..30.0).contains(&v(Quantity::Sludge)),
                    "{}",
                    v(Quantity::Sludge)
                );
                assert!((11.0..14.0).contains(&v(Quantity::Supply)));
                assert!((-110.0..-60.0).contains(&v(Quantity::Rssi)));
            }
        }
    }
}

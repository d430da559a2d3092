//! `[hj212]`: the environment bureau's platform, and each terminal's identity on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_hj212::{codes, SystemCode, MAX_MN_LEN, MAX_PW_LEN};

/// The HJ 212 uplink to the environment bureau's platform (docs/hj212.md).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct Hj212Config {
    /// Send at all.
    pub enabled: bool,
    /// The platform, "host:port", as its operator gives it.
    pub address: String,
    /// System code ST, two characters: "32", surface water pollution source (a terminal
    /// discharges to a ditch).
    pub st: String,
    /// Seconds to wait for the platform's data answer (9014) to each upload; without it the
    /// upload is sent again. 0: ask for no answer (Flag=4), an upload counts as delivered
    /// once written.
    pub answer_timeout_s: u32,
    /// Seconds between attempts while the platform cannot be reached or does not answer.
    pub retry_s: u32,
    /// Minute data (CN 2051) every this many minutes (a divisor of 60 up to 30; 0: none).
    /// Minute, hourly and daily data are each sent `statistics_delay_min` after their period
    /// ends; a terminal starts with the last period that ended, not with its whole history.
    pub minute_interval_min: u32,
    /// Send hourly data (CN 2061) from the hourly rollups.
    pub hourly: bool,
    /// Send daily data (CN 2031), by the site's calendar day.
    pub daily: bool,
    /// Minutes after an hour or day ends before its data is sent, so that readings a node
    /// held back over a short outage are in it.
    pub statistics_delay_min: u32,
    /// Factor codes of flow (sent in L/s), turbidity (NTU) and sludge level (m above the tank
    /// bottom, from the terminal's tank depth). Change them only if the platform expects
    /// others.
    pub codes: FactorCodes,
    /// Terminals sent (others are not): one table per terminal, keyed by its terminal id,
    /// with the MN and password the platform issued for it, for example:
    ///
    /// ```toml
    /// [hj212.terminals.HY-001]
    /// mn = "010000A8900016F000169DC0"
    /// pw = "123456"
    /// ```
    pub terminals: BTreeMap<String, TerminalUplink>,
}

impl Default for Hj212Config {
    fn default() -> Self {
        Hj212Config {
            enabled: false,
            address: String::new(),
            st: SystemCode::SURFACE_WATER_POLLUTION_SOURCE.as_str().into(),
            answer_timeout_s: 10,
            retry_s: 30,
            minute_interval_min: 10,
            hourly: true,
            daily: true,
            statistics_delay_min: 15,
            codes: FactorCodes::default(),
            terminals: BTreeMap::new(),
        }
    }
}

/// The factor codes of Weir's quantities (`[hj212.codes]`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FactorCodes {
    /// Effluent flow, sent in L/s (`-Cou` in m³).
    pub flow: String,
    /// Turbidity, NTU.
    pub turbidity: String,
    /// Sludge level, metres above the tank bottom (from the terminal's tank depth).
    pub sludge: String,
}

impl Default for FactorCodes {
    fn default() -> Self {
        FactorCodes {
            flow: codes::FLOW.code.into(),
            turbidity: codes::TURBIDITY.code.into(),
            sludge: codes::SLUDGE_LEVEL.code.into(),
        }
    }
}

/// One terminal as the platform knows it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TerminalUplink {
    /// `MN`, the identifier the platform issued (up to 24 characters).
    pub mn: String,
    /// `PW`, the password the platform issued (up to 6 characters).
    pub pw: String,
}

/// Characters HJ 212 carries in `MN` and `PW`: printable ASCII without its separators.
fn is_wire_text(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'=' | b'&'))
}

/// A factor code: wire text without `-`, which separates the code from its field.
fn is_code(s: &str) -> bool {
    is_wire_text(s) && !s.contains('-')
}

impl Hj212Config {
    /// Checks what types cannot, naming the key.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            SystemCode::new(&self.st).is_some(),
            "hj212.st must be two characters (32: surface water pollution source), not {:?}",
            self.st
        );
        anyhow::ensure!(
            self.answer_timeout_s <= 600,
            "hj212.answer_timeout_s must be 0 (no answer) to 600"
        );
        anyhow::ensure!(self.retry_s >= 1, "hj212.retry_s must be at least 1");
        anyhow::ensure!(
            self.minute_interval_min == 0
                || (self.minute_interval_min <= 30 && 60 % self.minute_interval_min == 0),
            "hj212.minute_interval_min must be 0 (none) or 1, 2, 3, 4, 5, 6, 10, 12, 15, 20 or 30, not {}",
            self.minute_interval_min
        );
        anyhow::ensure!(
            self.statistics_delay_min <= 1440,
            "hj212.statistics_delay_min must be 0 to 1440"
        );
        for (key, code) in [
            ("flow", &self.codes.flow),
            ("turbidity", &self.codes.turbidity),
            ("sludge", &self.codes.sludge),
        ] {
            anyhow::ensure!(
                is_code(code),
                "hj212.codes.{key} must be a factor code such as w00000, not {code:?}"
            );
        }
        for (id, t) in &self.terminals {
            anyhow::ensure!(
                is_wire_text(&t.mn) && t.mn.len() <= MAX_MN_LEN,
                "hj212.terminals.{id}.mn must be 1 to {MAX_MN_LEN} printable characters without ; , = &, not {:?}",
                t.mn
            );
            anyhow::ensure!(
                is_wire_text(&t.pw) && t.pw.len() <= MAX_PW_LEN,
                "hj212.terminals.{id}.pw must be 1 to {MAX_PW_LEN} printable characters without ; , = &"
            );
        }
        if self.enabled {
            let port = self
                .address
                .rsplit_once(':')
                .filter(|(host, _)| !host.is_empty())
                .and_then(|(_, port)| port.parse::<u16>().ok())
                .filter(|p| *p > 0);
            anyhow::ensure!(
                port.is_some(),
                "hj212.address must be the platform's host:port, not {:?}",
                self.address
            );
            anyhow::ensure!(
                !self.terminals.is_empty(),
                "hj212.terminals: name at least one terminal ([hj212.terminals.<id>] with mn and pw) when hj212.enabled"
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enabled() -> Hj212Config {
        let mut c = Hj212Config {
            enabled: true,
            address: "platform.example:8801".into(),
            ..Hj212Config::default()
        };
        c.terminals.insert(
            "HY-001".into(),
            TerminalUplink {
                mn: "010000A8900016F000169DC0".into(),
                pw: "123456".into(),
            },
        );
        c
    }

    #[test]
    fn the_defaults_are_the_standards_codes_and_pass() {
        let c = Hj212Config::default();
        assert_eq!(c.st, "32");
        assert_eq!(
            (c.codes.flow.as_str(), c.codes.turbidity.as_str()),
            ("w00000", "w01003")
        );
        c.validate().unwrap();
        enabled().validate().unwrap();
    }

    #[test]
    fn each_bad_value_is_refused_by_its_key() {
        let mut c = enabled();
        c.address = "platform.example".into();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hj212.address"));
        let mut c = enabled();
        c.terminals.get_mut("HY-001").unwrap().pw = "1234567".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("hj212.terminals.HY-001.pw"), "{e}");
        let mut c = enabled();
        c.terminals.get_mut("HY-001").unwrap().mn = String::new();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("hj212.terminals.HY-001.mn"), "{e}");
        let mut c = enabled();
        c.st = "3".into();
        assert!(c.validate().unwrap_err().to_string().contains("hj212.st"));
        let mut c = enabled();
        c.codes.sludge = "e7;1".into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("hj212.codes.sludge"), "{e}");
        let mut c = enabled();
        c.terminals.clear();
        assert!(c
            .validate()
            .unwrap_err()
            .to_string()
            .contains("hj212.terminals"));
    }
}

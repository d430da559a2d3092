//! What alerts say, in the configured language: titles, details, message subjects.

use weir_contract::{Fault, Quantity};

use super::config::Language;
use super::model::{Rule, Severity};

/// Words of one language.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Text(pub Language);

impl Text {
    fn pick(self, zh: &'static str, en: &'static str) -> &'static str {
        match self.0 {
            Language::Zh => zh,
            Language::En => en,
        }
    }

    /// The title of an alert.
    pub fn title(self, rule: Rule, severity: Severity) -> String {
        match rule {
            Rule::Turbidity if severity == Severity::Alarm => {
                self.pick("出水浊度超标", "Effluent turbidity over the alarm limit")
            }
            Rule::Turbidity => self.pick("出水浊度偏高", "Effluent turbidity high"),
            Rule::Desludge => self.pick("需要清掏污泥", "Desludging due"),
            Rule::NoFlow => self.pick("无流量", "No flow"),
            Rule::Overflow => self.pick("流量超过设计能力", "Flow above design capacity"),
            Rule::StuckSensor => self.pick("传感器读数不变", "Sensor value stuck"),
            Rule::SensorFault => self.pick("传感器故障", "Sensor fault"),
            Rule::Offline => self.pick("终端离线", "Terminal offline"),
            Rule::DataGap => self.pick("数据缺失", "Data missing"),
        }
        .to_string()
    }

    /// The title of an incident of `n` terminals offline together.
    pub fn offline_incident(self, n: usize) -> String {
        match self.0 {
            Language::Zh => format!("{n} 个终端同时离线"),
            Language::En => format!("{n} terminals offline together"),
        }
    }

    /// A severity's name.
    pub fn severity(self, s: Severity) -> &'static str {
        match s {
            Severity::Alarm => self.pick("告警", "alarm"),
            Severity::Warning => self.pick("预警", "warning"),
            Severity::Maintenance => self.pick("维护", "maintenance"),
        }
    }

    /// A quantity's name.
    pub fn quantity(self, q: Quantity) -> &'static str {
        match q {
            Quantity::Flow => self.pick("流量", "flow"),
            Quantity::Volume => self.pick("累计流量", "totaliser"),
            Quantity::Turbidity => self.pick("浊度", "turbidity"),
            Quantity::Sludge => self.pick("泥位", "sludge level"),
            Quantity::Supply => self.pick("供电电压", "supply voltage"),
            Quantity::Rssi => self.pick("信号强度", "signal strength"),
        }
    }

    /// A fault code's meaning.
    pub fn fault(self, f: Fault) -> &'static str {
        match f {
            Fault::NoResponse => self.pick("无响应", "no response"),
            Fault::Checksum => self.pick("校验错误", "bad checksum"),
            Fault::OutOfRange => self.pick("超出量程", "out of range"),
            Fault::OpenLoop => self.pick("回路断线", "open loop"),
            Fault::ShortCircuit => self.pick("回路短路", "short circuit"),
            Fault::SensorError => self.pick("传感器报错", "sensor error"),
            Fault::NotCalibrated => self.pick("未标定", "not calibrated"),
        }
    }

    /// `value` was above (or at) `limit` for `minutes`.
    pub fn above_for(self, q: Quantity, value: f64, limit: f64, minutes: i64) -> String {
        let unit = q.unit();
        match self.0 {
            Language::Zh => format!(
                "{} {value} {unit}，高于 {limit} {unit} 已 {minutes} 分钟",
                self.quantity(q)
            ),
            Language::En => format!(
                "{} {value} {unit}, above {limit} {unit} for {minutes} min",
                self.quantity(q)
            ),
        }
    }

    /// Flow at or below `limit` for `hours`.
    pub fn no_flow(self, value: f64, limit: f64, hours: f64) -> String {
        match self.0 {
            Language::Zh => format!("流量 {value} m3/h，不超过 {limit} m3/h 已 {hours:.1} 小时"),
            Language::En => format!("flow {value} m3/h, at most {limit} m3/h for {hours:.1} h"),
        }
    }

    /// Values unchanged for `hours`.
    pub fn stuck(self, stuck: &[(Quantity, f64)], hours: f64) -> String {
        let list: Vec<String> = stuck
            .iter()
            .map(|(q, v)| format!("{} {v} {}", self.quantity(*q), q.unit()))
            .collect();
        match self.0 {
            Language::Zh => format!("{} 已 {hours:.1} 小时完全不变", list.join("、")),
            Language::En => format!("{} unchanged for {hours:.1} h", list.join(", ")),
        }
    }

    /// Fault codes reported.
    pub fn faults(self, faults: &[(Quantity, Fault)]) -> String {
        let list: Vec<String> = faults
            .iter()
            .map(|(q, f)| match self.0 {
                Language::Zh => format!("{}{}（{}）", self.quantity(*q), self.fault(*f), f.code()),
                Language::En => format!("{} {} ({})", self.quantity(*q), self.fault(*f), f.code()),
            })
            .collect();
        list.join(self.pick("、", ", "))
    }

    /// Nothing received for `silent_s`.
    pub fn silent(self, silent_s: i64) -> String {
        let min = silent_s / 60;
        match self.0 {
            Language::Zh => format!("已 {min} 分钟未收到数据"),
            Language::En => format!("nothing received for {min} min"),
        }
    }

    /// The node's last will arrived.
    pub fn last_will(self) -> String {
        self.pick(
            "终端连接中断（遗嘱消息：离线）",
            "the node's connection dropped (last will: offline)",
        )
        .to_string()
    }

    /// `missing` messages never arrived; `ranges` lists them.
    pub fn data_gap(self, missing: u64, ranges: &str) -> String {
        match self.0 {
            Language::Zh => format!("缺少 {missing} 条消息：{ranges}"),
            Language::En => format!("{missing} messages missing: {ranges}"),
        }
    }

    /// A list of terminals.
    pub fn terminals(self, ids: &[String]) -> String {
        ids.join(self.pick("、", ", "))
    }

    /// Sludge at or above `limit` for `minutes`.
    pub fn sludge(self, value: f64, limit: f64, minutes: i64) -> String {
        match self.0 {
            Language::Zh => format!("泥位 {value} %，达到清掏线 {limit} % 已 {minutes} 分钟"),
            Language::En => format!("sludge {value} %, at or above {limit} % for {minutes} min"),
        }
    }

    /// The condition cleared; `value` is the reading that cleared it.
    pub fn cleared(self, value: Option<(Quantity, f64)>) -> String {
        let base = self.pick("条件已解除", "condition cleared");
        match value {
            Some((q, v)) => format!("{base}: {} {v} {}", self.quantity(q), q.unit()),
            None => base.to_string(),
        }
    }

    /// The node was heard from again.
    pub fn back_online(self) -> String {
        self.pick("终端恢复通信", "the node is reporting again")
            .to_string()
    }

    /// The missing messages arrived after all.
    pub fn gap_filled(self) -> String {
        self.pick("缺失的消息已补齐", "the missing messages arrived")
            .to_string()
    }
}

//! The `[alerts]` configuration: rule thresholds (global, and overridden per terminal),
//! escalation, service-time targets, crews, incident grouping and notification channels.
//!
//! Every default is explained in docs/alerts.md, with its source or reasoning.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use weir_contract::Quantity;

use weir_store::alerts::{Rule, Severity};

/// Declares the rule parameters once, and from that list both [`RuleParams`] (every key, with
/// its default) and [`RuleOverrides`] (every key optional), so the two cannot drift apart.
macro_rules! rule_params {
    ($( $(#[doc = $doc:literal])* $name:ident : $ty:ty = $default:expr ;)*) => {
        /// Thresholds and durations of every rule (`[alerts.rules]`).
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
        #[serde(default, deny_unknown_fields)]
        pub struct RuleParams {
            $( $(#[doc = $doc])* pub $name: $ty, )*
        }

        impl Default for RuleParams {
            fn default() -> Self {
                RuleParams { $( $name: $default, )* }
            }
        }

        /// The same keys as [`RuleParams`], each optional: one terminal's overrides
        /// (`[alerts.terminals.HY-003]`), or the changed thresholds of a rule preview.
        #[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema)]
        #[serde(default, deny_unknown_fields)]
        pub struct RuleOverrides {
            $( $(#[doc = $doc])* #[serde(skip_serializing_if = "Option::is_none")] pub $name: Option<$ty>, )*
        }

        impl RuleParams {
            /// These parameters with `o`'s keys replacing their own.
            pub fn with(&self, o: &RuleOverrides) -> RuleParams {
                let mut p = self.clone();
                $( if let Some(v) = &o.$name { p.$name = v.clone(); } )*
                p
            }
        }
    };
}

rule_params! {
    /// Turbidity above this for `turbidity_sustain_min` opens a warning, NTU.
    turbidity_warning_ntu: f64 = 10.0;
    /// Turbidity above this for `turbidity_sustain_min` makes it an alarm, NTU.
    turbidity_alarm_ntu: f64 = 20.0;
    /// Minutes the turbidity must stay above a limit before an alert opens.
    turbidity_sustain_min: u32 = 30;
    /// The alert clears only once turbidity stays below this, NTU (hysteresis, so a signal
    /// near a limit does not flap).
    turbidity_clear_ntu: f64 = 8.0;
    /// Minutes turbidity must stay below `turbidity_clear_ntu` to clear.
    turbidity_clear_min: u32 = 30;
    /// Sludge at or above this share of the working depth means desludging is due, %.
    desludge_pct: f64 = 30.0;
    /// Minutes the sludge level must stay at or above `desludge_pct`.
    desludge_sustain_min: u32 = 60;
    /// The desludging alert clears once the level stays below this, %.
    desludge_clear_pct: f64 = 20.0;
    /// Minutes below `desludge_clear_pct` to clear.
    desludge_clear_min: u32 = 60;
    /// Flow at or below this counts as no flow, m3/h (a meter's zero is rarely exactly 0).
    no_flow_below_m3h: f64 = 0.05;
    /// Hours of no flow, by the readings' timestamps, before an alert opens.
    no_flow_h: u32 = 6;
    /// Flow above this multiple of the registry's design flow (`design_flow_m3d` / 24) is an
    /// overflow (or inflow); terminals without a design flow are not checked.
    overflow_factor: f64 = 3.0;
    /// Minutes above the overflow limit before an alert opens.
    overflow_sustain_min: u32 = 30;
    /// The overflow clears below this multiple of the design flow.
    overflow_clear_factor: f64 = 2.0;
    /// Minutes below the clearing limit to clear.
    overflow_clear_min: u32 = 30;
    /// Quantities watched for a stuck sensor (a value that does not change at all).
    stuck_quantities: Vec<String> = vec!["turbidity_ntu".into(), "flow_m3h".into()];
    /// Hours a value must stay exactly the same to count as stuck (zero flow excepted).
    stuck_window_h: u32 = 6;
    /// Readings the unchanged value must span, at least (one stray repeat is no evidence).
    stuck_min_readings: u32 = 12;
    /// Minutes a sensor must keep reporting a fault code (docs/protocol.md) before an alert
    /// opens.
    fault_sustain_min: u32 = 10;
    /// Minutes of readings without fault codes to clear.
    fault_clear_min: u32 = 30;
    /// The node's publish interval, seconds (the protocol's default `publish_interval_s`).
    publish_interval_s: u32 = 300;
    /// A node is offline after this many publish intervals with nothing received. Timers
    /// start again when the gateway starts, so its own downtime raises nothing.
    offline_intervals: u32 = 3;
    /// Seconds after a node's last will (status offline) before it counts as offline.
    offline_will_grace_s: u32 = 60;
    /// Minutes a missing sequence number may still arrive, after a later one did, before it
    /// is a data gap.
    data_gap_grace_min: u32 = 15;
    /// Rules not evaluated at all (`["overflow"]`): turbidity, desludge, no_flow, overflow,
    /// stuck_sensor, sensor_fault, offline, data_gap.
    disabled: Vec<Rule> = Vec::new();
}

impl RuleParams {
    /// The watched quantities, parsed (unknown names were refused by `validate`).
    pub fn stuck_quantities(&self) -> Vec<Quantity> {
        self.stuck_quantities
            .iter()
            .filter_map(|f| Quantity::from_field(f))
            .collect()
    }

    /// Whether `rule` is evaluated.
    pub fn enabled(&self, rule: Rule) -> bool {
        !self.disabled.contains(&rule)
    }

    /// Seconds of silence after which a node is offline.
    pub fn offline_after_s(&self) -> i64 {
        i64::from(self.publish_interval_s) * i64::from(self.offline_intervals.max(1))
    }

    /// Checks what types cannot; `at` names the section for the message.
    pub fn validate(&self, at: &str) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.turbidity_clear_ntu < self.turbidity_warning_ntu
                && self.turbidity_warning_ntu <= self.turbidity_alarm_ntu,
            "{at}: turbidity_clear_ntu < turbidity_warning_ntu <= turbidity_alarm_ntu must hold"
        );
        anyhow::ensure!(
            self.desludge_clear_pct < self.desludge_pct,
            "{at}: desludge_clear_pct must be below desludge_pct"
        );
        anyhow::ensure!(
            self.overflow_clear_factor < self.overflow_factor && self.overflow_clear_factor > 0.0,
            "{at}: overflow_clear_factor must be above 0 and below overflow_factor"
        );
        anyhow::ensure!(
            self.publish_interval_s > 0 && self.offline_intervals > 0,
            "{at}: publish_interval_s and offline_intervals must be at least 1"
        );
        for q in &self.stuck_quantities {
            anyhow::ensure!(
                Quantity::from_field(q).is_some(),
                "{at}: stuck_quantities: {q:?} is not a quantity (flow_m3h, turbidity_ntu, ...)"
            );
        }
        Ok(())
    }
}

/// The language of alert titles, details and messages.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    /// Simplified Chinese, what operators' screens and phones use.
    #[default]
    Zh,
    /// English.
    En,
}

/// Minutes an alert may stay open (not acknowledged) before it escalates; 0 never escalates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EscalationConfig {
    /// Minutes for alarms.
    pub alarm_min: u32,
    /// Minutes for warnings.
    pub warning_min: u32,
    /// Minutes for maintenance alerts.
    pub maintenance_min: u32,
}

impl Default for EscalationConfig {
    fn default() -> Self {
        EscalationConfig {
            alarm_min: 15,
            warning_min: 60,
            maintenance_min: 1440,
        }
    }
}

impl EscalationConfig {
    /// Seconds before an unacknowledged alert of `severity` escalates, if it does.
    pub fn after_s(&self, severity: Severity) -> Option<i64> {
        let min = match severity {
            Severity::Alarm => self.alarm_min,
            Severity::Warning => self.warning_min,
            Severity::Maintenance => self.maintenance_min,
        };
        (min > 0).then(|| i64::from(min) * 60)
    }
}

/// Service-time targets of a work order, minutes from the alert's opening.
#[derive(
    Clone, Copy, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema, utoipa::ToSchema,
)]
#[serde(default, deny_unknown_fields)]
pub struct ServiceTargets {
    /// Until a crew is dispatched.
    pub dispatch_min: u32,
    /// Until the crew is on site.
    pub arrive_min: u32,
    /// Until the alert is resolved.
    pub resolve_min: u32,
}

impl Default for ServiceTargets {
    fn default() -> Self {
        // Rural: terminals are an hour's drive apart; see docs/alerts.md.
        ServiceTargets {
            dispatch_min: 30,
            arrive_min: 240,
            resolve_min: 1440,
        }
    }
}

/// A field crew and the terminals it is responsible for (zone responsibility).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct CrewConfig {
    /// Terminal ids; a trailing `*` matches a prefix (`"HY-0*"`).
    pub terminals: Vec<String>,
    /// Phone numbers that get SMS about the crew's terminals.
    pub sms: Vec<String>,
    /// Addresses that get email about the crew's terminals.
    pub email: Vec<String>,
    /// Targets for this crew, instead of `[alerts.service_targets]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub targets: Option<ServiceTargets>,
}

impl CrewConfig {
    /// Whether the crew is responsible for `terminal`.
    pub fn covers(&self, terminal: &str) -> bool {
        self.terminals.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => terminal.starts_with(prefix),
            None => p == terminal,
        })
    }
}

/// Grouping of offline alerts into one incident.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct IncidentConfig {
    /// Offline alerts opened within this many seconds of each other are grouped.
    pub window_s: u32,
    /// At least this many terminals make an incident; 0 turns grouping off.
    pub min_terminals: u32,
}

impl Default for IncidentConfig {
    fn default() -> Self {
        IncidentConfig {
            window_s: 300,
            min_terminals: 3,
        }
    }
}

/// What a notification is about.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum NoticeEvent {
    /// An alert or incident opened, or an alert's severity rose.
    Opened,
    /// An alert stayed unacknowledged past its escalation time.
    Escalated,
    /// An alert or incident was resolved.
    Resolved,
}

fn all_severities() -> Vec<Severity> {
    vec![Severity::Alarm, Severity::Warning, Severity::Maintenance]
}

/// The generic webhook: a JSON POST per notice, signed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookConfig {
    /// URL to POST to; empty turns the webhook off.
    pub url: String,
    /// Shared secret: the body's HMAC-SHA256 is sent in `X-Weir-Signature`.
    pub secret: String,
    /// Severities sent.
    pub severities: Vec<Severity>,
    /// Events sent.
    pub events: Vec<NoticeEvent>,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        WebhookConfig {
            url: String::new(),
            secret: String::new(),
            severities: all_severities(),
            events: vec![
                NoticeEvent::Opened,
                NoticeEvent::Escalated,
                NoticeEvent::Resolved,
            ],
        }
    }
}

/// An SMS gateway reached over HTTP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SmsConfig {
    /// URL of the SMS gateway; empty turns SMS off.
    pub url: String,
    /// Content type of the request body.
    pub content_type: String,
    /// Request body; `{to}` and `{text}` are replaced, escaped for the content type.
    pub body: String,
    /// The message; `{terminal}`, `{title}`, `{detail}`, `{severity}` are replaced.
    pub text: String,
    /// Extra request headers (an API key, for example).
    pub headers: BTreeMap<String, String>,
    /// Numbers that get every message (the O&M centre); crews add their own.
    pub to: Vec<String>,
    /// Numbers that get escalations only (supervisors).
    pub escalate_to: Vec<String>,
    /// Severities sent.
    pub severities: Vec<Severity>,
    /// Events sent.
    pub events: Vec<NoticeEvent>,
}

impl Default for SmsConfig {
    fn default() -> Self {
        SmsConfig {
            url: String::new(),
            content_type: "application/json".into(),
            body: r#"{"to":"{to}","text":"{text}"}"#.into(),
            text: "【Weir】{terminal} {title}：{detail}".into(),
            headers: BTreeMap::new(),
            to: Vec::new(),
            escalate_to: Vec::new(),
            severities: vec![Severity::Alarm, Severity::Warning],
            events: vec![NoticeEvent::Opened, NoticeEvent::Escalated],
        }
    }
}

/// How the SMTP session is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SmtpTls {
    /// Plain text: a relay on the gateway's own host or LAN.
    None,
    /// STARTTLS, required: the session fails rather than go on in plain text (port 587).
    Starttls,
    /// TLS from the first byte (SMTPS, port 465).
    Tls,
}

/// Email through an SMTP server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    /// SMTP server host; empty turns email off.
    pub smtp_host: String,
    /// SMTP port.
    pub smtp_port: u16,
    /// `none`, `starttls` or `tls`. The server's certificate is checked against the
    /// system's trusted roots (`/etc/ssl/certs`).
    pub tls: SmtpTls,
    /// User name for SMTP AUTH; empty sends no login.
    pub username: String,
    /// Password for SMTP AUTH; better set from the environment
    /// (`WEIR_ALERTS__NOTIFY__EMAIL__PASSWORD`) than written in the file.
    pub password: String,
    /// Name the gateway gives in EHLO.
    pub helo: String,
    /// Sender address.
    pub from: String,
    /// Addresses that get every message; crews add their own.
    pub to: Vec<String>,
    /// Addresses that get escalations only.
    pub escalate_to: Vec<String>,
    /// Severities sent.
    pub severities: Vec<Severity>,
    /// Events sent.
    pub events: Vec<NoticeEvent>,
}

impl Default for EmailConfig {
    fn default() -> Self {
        EmailConfig {
            smtp_host: String::new(),
            smtp_port: 25,
            tls: SmtpTls::None,
            username: String::new(),
            password: String::new(),
            helo: "weir".into(),
            from: "weir@localhost".into(),
            to: Vec::new(),
            escalate_to: Vec::new(),
            severities: all_severities(),
            events: vec![NoticeEvent::Opened, NoticeEvent::Escalated],
        }
    }
}

/// Notification channels, retries and throttling.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct NotifyConfig {
    /// A recipient gets at most one message per alert (terminal and rule) or incident, event
    /// and severity within this many minutes.
    pub throttle_min: u32,
    /// And at most this many messages an hour in all; 0 is no limit.
    pub max_per_hour: u32,
    /// Attempts per message before it is recorded as failed (about 13 minutes with the
    /// default waits); each attempt may take `timeout_s`. A permanent refusal (HTTP 4xx,
    /// SMTP 5xx) is not retried.
    pub max_attempts: u32,
    /// First wait between attempts, milliseconds; doubled after each.
    pub retry_initial_ms: u64,
    /// Longest wait between attempts, seconds.
    pub retry_max_s: u64,
    /// Seconds one attempt may take.
    pub timeout_s: u64,
    /// A JSON POST per notification; the body's HMAC-SHA256 with `secret`, in hex, is sent
    /// as "X-Weir-Signature: sha256=<hex>". An empty url turns it off.
    pub webhook: WebhookConfig,
    /// An SMS gateway over HTTP: `body` is sent to `url` with {to} and {text} replaced
    /// (escaped for the content type: JSON strings, or form encoding); `text` is the
    /// message.
    pub sms: SmsConfig,
    /// Email through an SMTP server: a relay on the gateway's host or LAN (plain, no login),
    /// or a mail provider (tls = "starttls" on port 587 or "tls" on 465, with a login).
    /// Certificates are checked against the system's trusted roots. Set the password from
    /// the environment: WEIR_ALERTS__NOTIFY__EMAIL__PASSWORD.
    pub email: EmailConfig,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            throttle_min: 60,
            max_per_hour: 20,
            max_attempts: 10,
            retry_initial_ms: 2000,
            retry_max_s: 300,
            timeout_s: 10,
            webhook: WebhookConfig::default(),
            sms: SmsConfig::default(),
            email: EmailConfig::default(),
        }
    }
}

/// The `[alerts]` configuration section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsConfig {
    /// Language of alert titles, details and messages: "zh" or "en".
    pub language: Language,
    /// Rule thresholds for every terminal; docs/alerts.md gives the reason for each default.
    /// Durations of the reading rules are measured on the readings' own timestamps, so late
    /// readings (a node replaying its queue after an outage) are judged by when they were
    /// taken.
    pub rules: RuleParams,
    /// Per terminal, any key of `[alerts.rules]` that differs, for example:
    ///
    /// ```toml
    /// [alerts.terminals.HY-003]
    /// turbidity_warning_ntu = 15.0
    /// disabled = ["overflow"]
    /// ```
    pub terminals: BTreeMap<String, RuleOverrides>,
    /// Minutes an alert may stay open without being acknowledged before it escalates (0:
    /// never).
    pub escalation: EscalationConfig,
    /// Work-order targets, minutes from the alert's opening: rural defaults. The
    /// neighbouring city districts work to 1 / 5 / 20; a crew may set its own under
    /// `[alerts.crews.NAME.targets]`.
    pub service_targets: ServiceTargets,
    /// Field crews and the terminals each is responsible for, by name, for example:
    ///
    /// ```toml
    /// [alerts.crews.north]
    /// terminals = ["HY-001", "HY-002", "HY-01*"]
    /// sms = ["+8613800000000"]
    /// email = ["north@example.org"]
    /// [alerts.crews.north.targets]
    /// dispatch_min = 15
    /// arrive_min = 120
    /// resolve_min = 480
    /// ```
    pub crews: BTreeMap<String, CrewConfig>,
    /// Terminals going offline within `window_s` of each other, at least `min_terminals` of
    /// them (a 4G cell or a power cut), become one incident with one notification.
    pub incidents: IncidentConfig,
    /// Notification channels, retries and throttling.
    pub notify: NotifyConfig,
}

impl AlertsConfig {
    /// The rule parameters of `terminal`: the global ones with its overrides.
    pub fn params_for(&self, terminal: &str) -> RuleParams {
        match self.terminals.get(terminal) {
            Some(o) => self.rules.with(o),
            None => self.rules.clone(),
        }
    }

    /// The crew responsible for `terminal` (the first, by name, that covers it).
    pub fn crew_of(&self, terminal: &str) -> Option<(&str, &CrewConfig)> {
        self.crews
            .iter()
            .find(|(_, c)| c.covers(terminal))
            .map(|(n, c)| (n.as_str(), c))
    }

    /// The targets that apply to `crew`.
    pub fn targets_of(&self, crew: Option<&str>) -> ServiceTargets {
        crew.and_then(|c| self.crews.get(c))
            .and_then(|c| c.targets)
            .unwrap_or(self.service_targets)
    }

    /// Checks what types cannot.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.rules.validate("alerts.rules")?;
        for (id, o) in &self.terminals {
            self.rules
                .with(o)
                .validate(&format!("alerts.terminals.{id}"))?;
        }
        let n = &self.notify;
        for (what, url) in [("webhook", &n.webhook.url), ("sms", &n.sms.url)] {
            anyhow::ensure!(
                url.is_empty() || url.starts_with("http://") || url.starts_with("https://"),
                "alerts.notify.{what}.url must start with http:// or https://, not {url:?}"
            );
        }
        anyhow::ensure!(
            n.max_attempts > 0,
            "alerts.notify.max_attempts must be at least 1"
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_terminal_override_changes_only_its_own_keys() {
        let c: AlertsConfig = toml::from_str(
            "[terminals.HY-003]\nturbidity_warning_ntu = 15.0\ndisabled = [\"overflow\"]\n",
        )
        .unwrap();
        let p = c.params_for("HY-003");
        assert_eq!(p.turbidity_warning_ntu, 15.0);
        assert_eq!(p.turbidity_alarm_ntu, 20.0);
        assert!(!p.enabled(Rule::Overflow));
        assert_eq!(c.params_for("HY-004").turbidity_warning_ntu, 10.0);
    }

    #[test]
    fn an_override_that_breaks_the_hysteresis_is_refused_by_name() {
        let c: AlertsConfig =
            toml::from_str("[terminals.HY-003]\nturbidity_clear_ntu = 12.0\n").unwrap();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("alerts.terminals.HY-003"), "{e}");
    }

    #[test]
    fn a_crew_pattern_covers_a_prefix() {
        let crew = CrewConfig {
            terminals: vec!["HY-01*".into(), "HY-100".into()],
            ..CrewConfig::default()
        };
        assert!(crew.covers("HY-017"));
        assert!(crew.covers("HY-100"));
        assert!(!crew.covers("HY-020"));
    }
}

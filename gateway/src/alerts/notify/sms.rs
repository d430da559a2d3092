//! An SMS gateway over HTTP: a configurable URL and body template. Most Chinese SMS
//! gateways take a JSON or form POST with the number and the text; the template covers both.

use std::collections::BTreeMap;

use super::{Notice, SendError};
use crate::alerts::config::SmsConfig;

/// One POST for one number.
#[derive(Clone, Debug)]
pub struct Request {
    /// Where to.
    pub url: String,
    /// The number.
    pub to: String,
    /// The message.
    pub text: String,
    /// Content type.
    pub content_type: String,
    /// The body, template filled in.
    pub body: String,
    /// Extra headers.
    pub headers: BTreeMap<String, String>,
}

/// Fills `{name}` placeholders of `template`, each value passed through `escape`.
pub fn fill(template: &str, values: &[(&str, &str)], escape: impl Fn(&str) -> String) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        let hit = after.find('}').and_then(|end| {
            let name = &after[..end];
            values
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (end, escape(v)))
        });
        match hit {
            Some((end, value)) => {
                out.push_str(&value);
                rest = &after[end + 1..];
            }
            None => {
                out.push('{');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Escapes for a JSON string (the template supplies the quotes).
fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted[1..quoted.len() - 1].to_string()
}

/// Escapes for `application/x-www-form-urlencoded`.
fn form_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

impl Request {
    /// The POST telling `to` about `notice`; `terminal` is the terminal list as text.
    pub fn new(config: &SmsConfig, to: &str, terminal: &str, notice: &Notice) -> Request {
        let severity = notice.severity.name();
        let text = fill(
            &config.text,
            &[
                ("terminal", terminal),
                ("title", &notice.title),
                ("detail", &notice.detail),
                ("severity", severity),
            ],
            str::to_string,
        );
        let ct = config.content_type.to_ascii_lowercase();
        let values = [("to", to), ("text", text.as_str())];
        let body = if ct.contains("json") {
            fill(&config.body, &values, json_escape)
        } else if ct.contains("x-www-form-urlencoded") {
            fill(&config.body, &values, form_escape)
        } else {
            fill(&config.body, &values, str::to_string)
        };
        Request {
            url: config.url.clone(),
            to: to.into(),
            text,
            content_type: config.content_type.clone(),
            body,
            headers: config.headers.clone(),
        }
    }
}

/// One attempt.
pub async fn send(client: &reqwest::Client, r: &Request) -> Result<(), SendError> {
    let mut req = client
        .post(&r.url)
        .header(reqwest::header::CONTENT_TYPE, &r.content_type)
        .body(r.body.clone());
    for (k, v) in &r.headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| SendError::Transient(format!("{e}")))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    super::webhook::outcome(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::config::NoticeEvent;
    use crate::alerts::model::Severity;

    fn notice() -> Notice {
        Notice {
            event: NoticeEvent::Opened,
            subject: "HY-001/turbidity".into(),
            severity: Severity::Alarm,
            terminals: vec!["HY-001".into()],
            title: "出水浊度超标".into(),
            detail: "浊度 23.4 NTU，高于 20 NTU 已 35 分钟".into(),
            payload: serde_json::json!({}),
        }
    }

    #[test]
    fn the_default_template_sends_chinese_text_in_a_json_body() {
        let r = Request::new(&SmsConfig::default(), "+8613800000000", "HY-001", &notice());
        assert_eq!(
            r.text,
            "【Weir】HY-001 出水浊度超标：浊度 23.4 NTU，高于 20 NTU 已 35 分钟"
        );
        let body: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(body["to"], "+8613800000000");
        assert_eq!(body["text"], r.text.as_str());
    }

    #[test]
    fn a_form_template_is_url_encoded_and_unknown_placeholders_are_kept() {
        let config = SmsConfig {
            content_type: "application/x-www-form-urlencoded".into(),
            body: "mobile={to}&content={text}&sign={sign}".into(),
            text: "{terminal} {title}".into(),
            ..SmsConfig::default()
        };
        let r = Request::new(&config, "+86 1", "HY-001", &notice());
        assert!(
            r.body
                .starts_with("mobile=%2B86+1&content=HY-001+%E5%87%BA"),
            "{}",
            r.body
        );
        assert!(r.body.ends_with("&sign={sign}"), "{}", r.body);
    }
}

//! The generic webhook: the notice as JSON, POSTed, signed with a shared secret.
//!
//! `X-Weir-Signature: sha256=<hex>` is the HMAC-SHA256 of the exact body bytes under the
//! secret; a receiver recomputes it and compares in constant time. `X-Weir-Event` names the
//! event (`alert.opened`, `incident.opened`, `alert.escalated`, `alert.resolved`).

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Notice, SendError};
use crate::alerts::config::WebhookConfig;

/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Weir-Signature";
/// Header naming the event.
pub const EVENT_HEADER: &str = "X-Weir-Event";

/// One POST.
#[derive(Clone, Debug)]
pub struct Request {
    /// Where to.
    pub url: String,
    /// `alert.opened`, ...
    pub event: String,
    /// The JSON body.
    pub body: Vec<u8>,
    /// `sha256=<hex>`, if a secret is set.
    pub signature: Option<String>,
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn sign(secret: &str, body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Request {
    /// The POST for `notice`.
    pub fn new(config: &WebhookConfig, notice: &Notice) -> Request {
        let body = serde_json::to_vec(&notice.payload).unwrap_or_default();
        let event = notice.payload["event"]
            .as_str()
            .unwrap_or("alert")
            .to_string();
        Request {
            url: config.url.clone(),
            event,
            signature: (!config.secret.is_empty()).then(|| sign(&config.secret, &body)),
            body,
        }
    }
}

/// Classifies an HTTP answer: 2xx is done; 429 and 5xx are worth retrying.
pub fn outcome(status: reqwest::StatusCode, body: &str) -> Result<(), SendError> {
    if status.is_success() {
        return Ok(());
    }
    let e = format!(
        "HTTP {status}: {}",
        body.chars().take(200).collect::<String>()
    );
    if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        Err(SendError::Transient(e))
    } else {
        Err(SendError::Permanent(e))
    }
}

/// One attempt.
pub async fn send(client: &reqwest::Client, r: &Request) -> Result<(), SendError> {
    let mut req = client
        .post(&r.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_HEADER, &r.event)
        .body(r.body.clone());
    if let Some(s) = &r.signature {
        req = req.header(SIGNATURE_HEADER, s);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| SendError::Transient(format!("{e}")))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    outcome(status, &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_rfc_4231_hmac_sha256_of_the_body() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

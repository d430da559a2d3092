//! Email through an SMTP server, with lettre: plain to a relay on the gateway's host or LAN,
//! or with STARTTLS or TLS and a login to a mail provider. Subject and body are UTF-8 (RFC 2047
//! and base64), since the text is usually Chinese. One session per message, so a retry starts
//! afresh.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Mailbox, SinglePart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::extension::ClientId;
use lettre::{AsyncSmtpTransport, AsyncTransport as _, Tokio1Executor};

use super::{Notice, SendError};
use crate::alerts::config::{EmailConfig, SmtpTls};

/// One email to one address.
#[derive(Clone, Debug)]
pub struct Message {
    /// The server and how to reach it.
    pub server: EmailConfig,
    /// Recipient.
    pub to: String,
    /// Subject, plain text.
    pub subject: String,
    /// Body, plain text.
    pub body: String,
}

impl Message {
    /// The email telling `to` about `notice`; `terminal` is the terminal list as text.
    pub fn new(config: &EmailConfig, to: &str, terminal: &str, notice: &Notice) -> Message {
        Message {
            server: config.clone(),
            to: to.into(),
            subject: format!("【Weir】{terminal} {}", notice.title),
            body: format!(
                "{}\r\n{}\r\n\r\n{terminal} · {} · {}\r\n",
                notice.title,
                notice.detail,
                notice.severity.name(),
                notice.subject
            ),
        }
    }

    /// The message as lettre builds it. A bad address is permanent: resending cannot help.
    pub fn mail(&self) -> Result<lettre::Message, SendError> {
        let address = |what: &str, a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| SendError::Permanent(format!("{what} address {a:?}: {e}")))
        };
        // The subject as one RFC 2047 encoded word, as Weir has always sent it.
        let subject = HeaderValue::dangerous_new_pre_encoded(
            HeaderName::new_from_ascii_str("Subject"),
            self.subject.clone(),
            format!("=?UTF-8?B?{}?=", B64.encode(self.subject.as_bytes())),
        );
        lettre::Message::builder()
            .from(address("from", &self.server.from)?)
            .to(address("to", &self.to)?)
            .raw_header(subject)
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .header(ContentTransferEncoding::Base64)
                    .body(self.body.clone()),
            )
            .map_err(|e| SendError::Permanent(format!("building the email: {e}")))
    }

    /// The SMTP transport for this message's server, sessions bounded by `timeout`.
    fn transport(
        &self,
        timeout: Duration,
    ) -> Result<AsyncSmtpTransport<Tokio1Executor>, SendError> {
        let s = &self.server;
        let host = s.smtp_host.as_str();
        let tls = |e: lettre::transport::smtp::Error| {
            SendError::Permanent(format!("TLS for the SMTP server {host}: {e}"))
        };
        let mut builder = match s.tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
            SmtpTls::Starttls => {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host).map_err(tls)?
            }
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host).map_err(tls)?,
        }
        .port(s.smtp_port)
        .hello_name(ClientId::Domain(s.helo.clone()))
        .timeout(Some(timeout));
        if !s.username.is_empty() {
            builder = builder.credentials(Credentials::new(s.username.clone(), s.password.clone()));
        }
        Ok(builder.build())
    }
}

/// One attempt, bounded by `timeout`. The server's 4xx answers (and a connection that fails)
/// are worth another attempt; its 5xx answers are not.
pub async fn send(m: &Message, timeout: Duration) -> Result<(), SendError> {
    let mail = m.mail()?;
    let transport = m.transport(timeout)?;
    let server = format!("{}:{}", m.server.smtp_host, m.server.smtp_port);
    match tokio::time::timeout(timeout, transport.send(mail)).await {
        Err(_) => Err(SendError::Transient(format!(
            "the SMTP session with {server} took over {timeout:?}"
        ))),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(e)) if e.is_permanent() => Err(SendError::Permanent(format!("{server}: {e}"))),
        Ok(Err(e)) => Err(SendError::Transient(format!("{server}: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_and_body_travel_as_utf8_base64() {
        let m = Message {
            server: EmailConfig {
                smtp_host: "127.0.0.1".into(),
                from: "weir@localhost".into(),
                ..EmailConfig::default()
            },
            to: "ops@example.org".into(),
            subject: "【Weir】HY-001 终端离线".into(),
            body: "已 15 分钟未收到数据".into(),
        };
        let data = String::from_utf8(m.mail().unwrap().formatted()).unwrap();
        assert!(data.contains(&format!(
            "Subject: =?UTF-8?B?{}?=",
            B64.encode(m.subject.as_bytes())
        )));
        let body = data
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .trim_end_matches("\r\n");
        let decoded = B64.decode(body.replace("\r\n", "")).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), m.body);
    }

    #[test]
    fn a_bad_address_is_a_permanent_error_naming_it() {
        let m = Message {
            server: EmailConfig::default(),
            to: "not an address".into(),
            subject: "s".into(),
            body: "b".into(),
        };
        match m.mail() {
            Err(SendError::Permanent(e)) => assert!(e.contains("not an address"), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

//! Email over plain SMTP to a relay (RFC 5321): EHLO, MAIL FROM, RCPT TO, DATA, QUIT. No
//! login and no TLS: the relay is on the gateway's host or its LAN and forwards onwards.
//! Subject and body are UTF-8 (RFC 2047 and base64), since the text is usually Chinese.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::{Notice, SendError};
use crate::alerts::config::EmailConfig;

/// One email to one address.
#[derive(Clone, Debug)]
pub struct Message {
    /// Relay host.
    pub host: String,
    /// Relay port.
    pub port: u16,
    /// EHLO name.
    pub helo: String,
    /// Sender.
    pub from: String,
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
            host: config.smtp_host.clone(),
            port: config.smtp_port,
            helo: config.helo.clone(),
            from: config.from.clone(),
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

    /// The message as sent after DATA, dot-stuffed, ending with the lone dot.
    pub fn data(&self) -> String {
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_string(&jiff::Timestamp::now())
            .unwrap_or_default();
        let body = B64.encode(self.body.as_bytes());
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(76)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        let mut out = format!(
            "From: <{}>\r\nTo: <{}>\r\nSubject: =?UTF-8?B?{}?=\r\nDate: {date}\r\n\
             Message-ID: <{:016x}@{}>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n",
            self.from,
            self.to,
            B64.encode(self.subject.as_bytes()),
            rand::random::<u64>(),
            self.helo,
        );
        for l in lines {
            // Dot-stuffing (RFC 5321 4.5.2); base64 never starts a line with '.', headers might.
            if l.starts_with('.') {
                out.push('.');
            }
            out.push_str(l);
            out.push_str("\r\n");
        }
        out.push_str(".\r\n");
        out
    }
}

/// Reads one reply, multi-line or not: its code and text.
async fn reply<R: AsyncBufReadExt + Unpin>(r: &mut R) -> Result<(u16, String), SendError> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = r
            .read_line(&mut line)
            .await
            .map_err(|e| SendError::Transient(format!("reading the SMTP reply: {e}")))?;
        if n == 0 {
            return Err(SendError::Transient(
                "the SMTP server closed the connection".into(),
            ));
        }
        let code = line
            .get(..3)
            .and_then(|c| c.parse::<u16>().ok())
            .ok_or_else(|| SendError::Transient(format!("not an SMTP reply: {line:?}")))?;
        text.push_str(line.trim_end());
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok((code, text));
        }
        text.push(' ');
    }
}

/// Sends `line` (if any), then checks the reply's code against `want`.
async fn step<R, W>(r: &mut R, w: &mut W, line: Option<&str>, want: &[u16]) -> Result<(), SendError>
where
    R: AsyncBufReadExt + Unpin,
    W: AsyncWriteExt + Unpin,
{
    if let Some(line) = line {
        w.write_all(line.as_bytes())
            .await
            .map_err(|e| SendError::Transient(format!("writing to the SMTP server: {e}")))?;
    }
    let (code, text) = reply(r).await?;
    if want.contains(&code) {
        Ok(())
    } else if (400..500).contains(&code) {
        Err(SendError::Transient(text))
    } else {
        Err(SendError::Permanent(text))
    }
}

async fn session(m: &Message) -> Result<(), SendError> {
    let stream = TcpStream::connect((m.host.as_str(), m.port))
        .await
        .map_err(|e| SendError::Transient(format!("connecting to {}:{}: {e}", m.host, m.port)))?;
    let (r, mut w) = stream.into_split();
    let mut r = BufReader::new(r);
    step(&mut r, &mut w, None, &[220]).await?;
    step(
        &mut r,
        &mut w,
        Some(&format!("EHLO {}\r\n", m.helo)),
        &[250],
    )
    .await?;
    step(
        &mut r,
        &mut w,
        Some(&format!("MAIL FROM:<{}>\r\n", m.from)),
        &[250],
    )
    .await?;
    step(
        &mut r,
        &mut w,
        Some(&format!("RCPT TO:<{}>\r\n", m.to)),
        &[250, 251],
    )
    .await?;
    step(&mut r, &mut w, Some("DATA\r\n"), &[354]).await?;
    step(&mut r, &mut w, Some(&m.data()), &[250]).await?;
    // The message is accepted; a failed goodbye changes nothing.
    let _ = step(&mut r, &mut w, Some("QUIT\r\n"), &[221]).await;
    Ok(())
}

/// One attempt, bounded by `timeout`.
pub async fn send(m: &Message, timeout: Duration) -> Result<(), SendError> {
    tokio::time::timeout(timeout, session(m))
        .await
        .map_err(|_| SendError::Transient(format!("the SMTP session took over {timeout:?}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subject_and_body_travel_as_utf8_base64() {
        let m = Message {
            host: "127.0.0.1".into(),
            port: 25,
            helo: "weir".into(),
            from: "weir@localhost".into(),
            to: "ops@example.org".into(),
            subject: "【Weir】HY-001 终端离线".into(),
            body: "已 15 分钟未收到数据".into(),
        };
        let data = m.data();
        assert!(data.contains(&format!(
            "Subject: =?UTF-8?B?{}?=",
            B64.encode(m.subject.as_bytes())
        )));
        let body = data
            .split("\r\n\r\n")
            .nth(1)
            .unwrap()
            .trim_end_matches("\r\n.\r\n");
        let decoded = B64.decode(body.replace("\r\n", "")).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), m.body);
        assert!(data.ends_with("\r\n.\r\n"));
    }
}

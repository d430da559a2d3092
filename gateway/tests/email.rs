//! E-mail against a scripted SMTP server on loopback: the login a mail provider needs, and
//! a STARTTLS requirement that never falls back to plain text.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use weir_gateway::alerts::config::{EmailConfig, SmtpTls};
use weir_gateway::alerts::notify::email::{self, Message};
use weir_gateway::alerts::notify::SendError;

/// An SMTP server that offers `extensions` after EHLO, accepts AUTH PLAIN and every
/// message, and records each command line it receives.
async fn server(extensions: &'static str) -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 relay ESMTP\r\n").await?;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        break;
                    }
                    log.lock().unwrap().push(line.trim_end().to_owned());
                    let cmd = line.to_ascii_uppercase();
                    let reply = if cmd.starts_with("EHLO") {
                        format!("250-relay\r\n{extensions}250 8BITMIME\r\n")
                    } else if cmd.starts_with("AUTH") {
                        "235 2.7.0 authenticated\r\n".to_owned()
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 go ahead\r\n").await?;
                        let mut l = String::new();
                        loop {
                            l.clear();
                            if r.read_line(&mut l).await? == 0 || l == ".\r\n" {
                                break;
                            }
                        }
                        "250 queued\r\n".to_owned()
                    } else if cmd.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await?;
                        break;
                    } else {
                        "250 OK\r\n".to_owned()
                    };
                    w.write_all(reply.as_bytes()).await?;
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    (port, seen)
}

fn message(port: u16, tls: SmtpTls, username: &str, password: &str) -> Message {
    Message {
        server: EmailConfig {
            smtp_host: "127.0.0.1".into(),
            smtp_port: port,
            tls,
            username: username.into(),
            password: password.into(),
            ..EmailConfig::default()
        },
        to: "ops@example.org".into(),
        subject: "【Weir】HY-001 终端离线".into(),
        body: "已 15 分钟未收到数据".into(),
    }
}

#[tokio::test]
async fn a_configured_login_is_sent_as_smtp_auth_before_the_message() {
    let (port, seen) = server("250-AUTH PLAIN LOGIN\r\n").await;
    let m = message(port, SmtpTls::None, "weir", "s3cret");
    email::send(&m, Duration::from_secs(10)).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let auth = seen
        .iter()
        .position(|l| l.to_ascii_uppercase().starts_with("AUTH"))
        .unwrap_or_else(|| panic!("no AUTH in {seen:?}"));
    let mail = seen
        .iter()
        .position(|l| l.starts_with("MAIL FROM"))
        .unwrap();
    assert!(auth < mail, "{seen:?}");
    // AUTH PLAIN carries "\0user\0password", base64, on the line or the next.
    let encoded = seen[auth]
        .split_whitespace()
        .nth(2)
        .map(str::to_owned)
        .unwrap_or_else(|| seen[auth + 1].clone());
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap();
    assert_eq!(decoded, b"\0weir\0s3cret");
}

#[tokio::test]
async fn without_a_login_no_auth_is_sent() {
    let (port, seen) = server("250-AUTH PLAIN LOGIN\r\n").await;
    email::send(
        &message(port, SmtpTls::None, "", ""),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|l| l.starts_with("MAIL FROM")), "{seen:?}");
    assert!(
        !seen
            .iter()
            .any(|l| l.to_ascii_uppercase().starts_with("AUTH")),
        "{seen:?}"
    );
}

#[tokio::test]
async fn required_starttls_is_never_given_up_for_plain_text() {
    // The server offers no STARTTLS: the message must not go out in the clear, and the
    // password must never be sent.
    let (port, seen) = server("250-AUTH PLAIN LOGIN\r\n").await;
    let m = message(port, SmtpTls::Starttls, "weir", "s3cret");
    let e = email::send(&m, Duration::from_secs(10)).await.unwrap_err();
    let (SendError::Permanent(e) | SendError::Transient(e)) = e;
    assert!(e.contains(&format!("127.0.0.1:{port}")), "{e}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        !seen
            .iter()
            .any(|l| l.starts_with("MAIL FROM") || l.to_ascii_uppercase().starts_with("AUTH")),
        "{seen:?}"
    );
}

//! Notifications reach real receivers on loopback: a webhook and an SMS gateway (a small
//! axum server) and an SMTP relay (a tiny SMTP server on a TcpListener). Each fails the
//! first attempt, so the retries are exercised; every message is recorded.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use weir_contract::{Quantity, Reading, TerminalId, Timestamp};
use weir_gateway::alerts::config::CrewConfig;
use weir_gateway::config::Config;
use weir_gateway::live::LiveEvent;
use weir_store::alerts as alert_store;
use weir_store::notifications::{self, NotificationRow};
use weir_store::writer::StoredReading;
use weir_store::Store;
use weir_store::Synchronous;

/// What the HTTP receiver got, per path: (headers, body), failed attempts included.
type Hits = Arc<Mutex<HashMap<String, Vec<(HeaderMap, Bytes)>>>>;

async fn receive(
    State(hits): State<Hits>,
    Path(path): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut hits = hits.lock().unwrap();
    let list = hits.entry(path).or_default();
    list.push((headers, body));
    // The first attempt on each path fails, as a receiver that is restarting would.
    if list.len() == 1 {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    }
}

async fn http_receiver() -> (u16, Hits) {
    let hits: Hits = Arc::default();
    let app = Router::new()
        .route("/{path}", post(receive))
        .with_state(hits.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (port, hits)
}

/// A tiny SMTP relay: refuses the first session with a temporary error at RCPT, accepts
/// the rest, and keeps every message's DATA.
async fn smtp_sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let messages: Arc<Mutex<Vec<String>>> = Arc::default();
    let kept = messages.clone();
    tokio::spawn(async move {
        let mut sessions = 0;
        while let Ok((sock, _)) = listener.accept().await {
            sessions += 1;
            let first = sessions == 1;
            let kept = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut r = BufReader::new(r);
                w.write_all(b"220 sink ESMTP\r\n").await?;
                let mut line = String::new();
                loop {
                    line.clear();
                    if r.read_line(&mut line).await? == 0 {
                        break;
                    }
                    let cmd = line.to_ascii_uppercase();
                    let reply: &[u8] = if cmd.starts_with("EHLO") {
                        b"250-sink\r\n250 8BITMIME\r\n"
                    } else if cmd.starts_with("RCPT") && first {
                        b"451 4.3.0 try again later\r\n"
                    } else if cmd.starts_with("MAIL") || cmd.starts_with("RCPT") {
                        b"250 OK\r\n"
                    } else if cmd.starts_with("DATA") {
                        w.write_all(b"354 go ahead\r\n").await?;
                        let mut data = String::new();
                        loop {
                            let mut l = String::new();
                            if r.read_line(&mut l).await? == 0 || l == ".\r\n" {
                                break;
                            }
                            data.push_str(&l);
                        }
                        kept.lock().unwrap().push(data);
                        b"250 queued\r\n"
                    } else if cmd.starts_with("QUIT") {
                        w.write_all(b"221 bye\r\n").await?;
                        break;
                    } else {
                        b"500 unknown command\r\n"
                    };
                    w.write_all(reply).await?;
                }
                Ok::<_, std::io::Error>(())
            });
        }
    });
    (port, messages)
}

fn turbidity(ts: i64, ntu: f64) -> Reading {
    Reading::new(Timestamp::from_unix(ts)).with(Quantity::Turbidity, ntu)
}

struct Feed {
    live: broadcast::Sender<LiveEvent>,
    next_id: i64,
}

impl Feed {
    fn readings(&mut self, rs: impl IntoIterator<Item = Reading>) {
        let readings = rs
            .into_iter()
            .map(|reading| {
                self.next_id += 1;
                StoredReading {
                    id: self.next_id,
                    terminal: TerminalId::new("HY-001").unwrap(),
                    reading,
                }
            })
            .collect();
        self.live
            .send(LiveEvent::Committed {
                messages: Arc::new(Vec::new()),
                readings: Arc::new(readings),
                statuses: Arc::new(Vec::new()),
            })
            .unwrap();
    }
}

async fn rows(store: &Arc<Store>) -> Vec<NotificationRow> {
    store.run(|c| notifications::list(c, 1000)).await.unwrap()
}

/// Polls `f` every 20 ms for at most 20 s of real time.
async fn until<T, F, Fut>(mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(Instant::now() < deadline, "condition not met within 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_reaches_the_webhook_sms_gateway_and_smtp_relay_after_a_failed_first_attempt_and_a_repeat_is_throttled(
) {
    let (http_port, hits) = http_receiver().await;
    let (smtp_port, mails) = smtp_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("weir.db"), Synchronous::Normal).unwrap();
    store
        .with(|c| {
            c.execute(
                "INSERT INTO terminals (id, name, created_at) VALUES ('HY-001', '沈荡一号', 0)",
                [],
            )
        })
        .unwrap();

    let mut config = Config::default();
    let n = &mut config.alerts.notify;
    n.retry_initial_ms = 50;
    n.webhook.url = format!("http://127.0.0.1:{http_port}/hook");
    n.webhook.secret = "a-shared-secret".into();
    n.sms.url = format!("http://127.0.0.1:{http_port}/sms");
    n.sms.to = vec!["+8613800000000".into()];
    n.email.smtp_host = "127.0.0.1".into();
    n.email.smtp_port = smtp_port;
    n.email.to = vec!["ops@example.org".into()];
    config.alerts.crews.insert(
        "north".into(),
        CrewConfig {
            terminals: vec!["HY-001".into()],
            sms: vec!["+8613900000000".into()],
            ..CrewConfig::default()
        },
    );

    let (live, rx) = broadcast::channel(64);
    let cancel = CancellationToken::new();
    let alerts = weir_gateway::alerts::start(config.alerts, store.clone(), rx, cancel.clone())
        .await
        .unwrap();
    let mut feed = Feed { live, next_id: 0 };
    let t0 = weir_store::now() - 7200;
    feed.readings((0..=40).map(|m| turbidity(t0 + m * 60, 25.0)));

    // One webhook, two SMS (the O&M centre's number and the zone crew's), one email.
    let sent = until(|| async {
        let r = rows(&store).await;
        (r.len() == 4).then_some(r)
    })
    .await;
    assert!(sent.iter().all(|r| r.status == "sent"), "{sent:#?}");
    assert!(
        sent.iter().all(|r| r.subject == "HY-001/turbidity"),
        "{sent:#?}"
    );
    let webhook = sent.iter().find(|r| r.channel == "webhook").unwrap();
    assert_eq!(webhook.attempts, 2, "{webhook:?}");
    let email = sent.iter().find(|r| r.channel == "email").unwrap();
    assert_eq!(email.attempts, 2, "{email:?}");
    let mut numbers: Vec<&str> = sent
        .iter()
        .filter(|r| r.channel == "sms")
        .map(|r| r.recipient.as_str())
        .collect();
    numbers.sort();
    assert_eq!(numbers, ["+8613800000000", "+8613900000000"]);

    {
        let hits = hits.lock().unwrap();
        // The webhook: tried twice with the same signed body.
        let hooks = &hits["hook"];
        assert_eq!(hooks.len(), 2);
        let (headers, body) = &hooks[1];
        assert_eq!(body, &hooks[0].1);
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a-shared-secret").unwrap();
        mac.update(body);
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers["x-weir-signature"], expected.as_str());
        assert_eq!(headers["x-weir-event"], "alert.opened");
        let v: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(v["event"], "alert.opened");
        assert_eq!(v["alert"]["rule"], "turbidity");
        assert_eq!(v["alert"]["severity"], "alarm");
        assert_eq!(v["alert"]["state"], "open");

        // The SMS gateway: a JSON body with the Chinese text.
        let sms = &hits["sms"];
        assert_eq!(sms.len(), 3, "one failed attempt, two messages");
        for (_, body) in sms {
            let v: serde_json::Value = serde_json::from_slice(body).unwrap();
            let text = v["text"].as_str().unwrap();
            assert!(text.starts_with("【Weir】HY-001 出水浊度超标："), "{text}");
            assert!(text.contains("25 NTU"), "{text}");
        }
    }

    // The email: UTF-8 subject and body, delivered on the second session.
    let mails = mails.lock().unwrap().clone();
    assert_eq!(mails.len(), 1);
    let b64 = base64::engine::general_purpose::STANDARD;
    let subject = format!(
        "Subject: =?UTF-8?B?{}?=",
        b64.encode("【Weir】HY-001 出水浊度超标".as_bytes())
    );
    assert!(mails[0].contains(&subject), "{}", mails[0]);
    let body = mails[0]
        .split("\r\n\r\n")
        .nth(1)
        .unwrap()
        .replace("\r\n", "");
    let body = String::from_utf8(b64.decode(body).unwrap()).unwrap();
    assert!(body.contains("高于 20 NTU"), "{body}");

    // The water clears (the webhook hears of it), then turns turbid again within the hour:
    // the same alert subject, so every recipient is spared a second message.
    let t1 = t0 + 41 * 60;
    feed.readings((0..=31).map(|m| turbidity(t1 + m * 60, 5.0)));
    let t2 = t1 + 32 * 60;
    feed.readings((0..=31).map(|m| turbidity(t2 + m * 60, 25.0)));
    let all = until(|| async {
        let r = rows(&store).await;
        (r.iter().filter(|x| x.status == "throttled").count() == 4).then_some(r)
    })
    .await;
    let resolved: Vec<_> = all.iter().filter(|r| r.event == "resolved").collect();
    assert_eq!(resolved.len(), 1, "{all:#?}");
    assert_eq!(resolved[0].channel, "webhook");
    let alerts_opened = store
        .run(|c| {
            alert_store::list(
                c,
                &alert_store::Filter {
                    limit: 100,
                    ..Default::default()
                },
            )
        })
        .await
        .unwrap();
    assert_eq!(alerts_opened.len(), 2, "the alert reopened");
    until(|| async {
        let r = rows(&store).await;
        (r.iter().filter(|x| x.status == "sent").count() == 5).then_some(())
    })
    .await;
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(10), alerts.stopped())
        .await
        .unwrap();
}

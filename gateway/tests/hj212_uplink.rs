//! The HJ 212 uplink against a platform written here: a loopback receiver that checks every
//! frame's length, CRC and fields with weir-hj212's decoder, answers 9014 and records what it
//! accepted. It is taken down mid-run and brought back on the same port; every reading must
//! arrive exactly once, in order.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::{JoinHandle, JoinSet};
use weir_gateway::hj212::TerminalUplink;
use weir_hj212::{frame_len, CommandCode, Field, Packet, SystemCode, Value};

/// One upload the receiver accepted.
#[derive(Clone, Debug, PartialEq)]
struct Got {
    /// 2011, 2051, 2061 or 2031.
    cn: u16,
    /// The whole CP data area.
    cp: String,
    mn: String,
    data_time: String,
    /// `w00000-Rtd`, L/s as sent.
    flow: String,
    /// `e71001-Rtd`, m, if sent.
    sludge: Option<String>,
    qn: String,
}

/// The platform: an accept loop whose connections live in its own task set, so aborting it
/// drops the listener and every connection at once.
struct Platform {
    task: JoinHandle<()>,
}

fn listen(addr: SocketAddr) -> tokio::net::TcpListener {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_reuseaddr(true).unwrap();
    socket.bind(addr).unwrap();
    socket.listen(16).unwrap()
}

impl Platform {
    fn start(addr: SocketAddr, log: Log) -> Platform {
        let listener = listen(addr);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                connections.spawn(serve(stream, log.clone()));
            }
        });
        Platform { task }
    }

    /// Down: the listener and its connections are dropped. Returns once every connection
    /// task has ended (each holds a clone of `log`), so nothing is recorded after.
    async fn stop(self, log: &Log) {
        self.task.abort();
        let _ = self.task.await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while Arc::strong_count(log) > 1 {
            assert!(
                std::time::Instant::now() < deadline,
                "the platform's tasks did not end"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// What the receiver saw: the uploads it accepted, and every frame it refused (which fails
/// the test).
#[derive(Default)]
struct Seen {
    accepted: Vec<Got>,
    refused: Vec<String>,
}

type Log = Arc<Mutex<Seen>>;

/// Checks one frame as a platform would: length, CRC and header through the decoder, then
/// the fields Weir must send.
fn check(frame: &[u8]) -> Result<Got, String> {
    let text = String::from_utf8_lossy(frame).into_owned();
    let p = Packet::decode(frame).map_err(|e| format!("{e}: {text:?}"))?;
    let h = p.header;
    let fail = |what: &str| Err(format!("{what}: {text:?}"));
    if h.st != SystemCode::SURFACE_WATER_POLLUTION_SOURCE {
        return fail("ST is not 32");
    }
    let real_time = h.cn == CommandCode::REAL_TIME_DATA;
    let statistics = [
        CommandCode::MINUTE_DATA,
        CommandCode::HOUR_DATA,
        CommandCode::DAY_DATA,
    ];
    if !real_time && !statistics.contains(&h.cn) {
        return fail("CN is not 2011, 2051, 2061 or 2031");
    }
    match h.flag {
        Some(f) if f.version() == 1 && f.answer_required() && !f.split() => {}
        _ => return fail("Flag is not 5"),
    }
    let expected_pw = match h.mn {
        "MN0001" => "111111",
        "MN0002" => "222222",
        _ => return fail("an MN not configured"),
    };
    if h.pw != expected_pw {
        return fail("the wrong PW");
    }
    let Some(qn) = h.qn else {
        return fail("no QN");
    };
    let Some(data_time) = p.cp.data_time() else {
        return fail("no DataTime");
    };
    let mut flow = None;
    let mut sludge = None;
    for item in p.cp.items() {
        let Value::Number(n) = item.value else {
            return fail("a text value");
        };
        let expected_field = if real_time {
            item.field == Field::Rtd
        } else {
            matches!(
                item.field,
                Field::Cou | Field::Min | Field::Avg | Field::Max
            )
        };
        if !expected_field || item.flag.is_none() {
            return fail("an item with the wrong field for its CN, or without a Flag");
        }
        match item.code {
            "w00000" if item.field == Field::Rtd => flow = Some(n.to_string()),
            "w00000" => flow = Some(String::new()),
            "e71001" => sludge = Some(n.to_string()),
            "w01003" => {}
            _ => return fail("an unexpected factor"),
        }
    }
    let Some(flow) = flow else {
        return fail("no flow");
    };
    Ok(Got {
        cn: h.cn.get(),
        cp: p.cp.as_str().to_owned(),
        mn: h.mn.to_owned(),
        data_time: data_time.to_string(),
        flow,
        sludge,
        qn: qn.to_string(),
    })
}

/// Reads frames, answers each valid one with 9014, then records it (a frame not answered was
/// not accepted). A bad frame is recorded as refused and closes the connection.
async fn serve(mut stream: TcpStream, log: Log) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        loop {
            let len = match frame_len(&buf) {
                Ok(Some(len)) if buf.len() >= len => len,
                Ok(_) => break,
                Err(e) => {
                    log.lock().unwrap().refused.push(format!("{e}: {buf:?}"));
                    return;
                }
            };
            let frame: Vec<u8> = buf.drain(..len).collect();
            let got = match check(&frame) {
                Ok(got) => got,
                Err(e) => {
                    log.lock().unwrap().refused.push(e);
                    return;
                }
            };
            // A platform takes a moment per upload; it also keeps the backlog long enough to
            // be cut in the middle.
            tokio::time::sleep(Duration::from_millis(5)).await;
            let answer = Packet::decode(&frame)
                .unwrap()
                .data_answer()
                .to_frame()
                .unwrap();
            if stream.write_all(&answer).await.is_err() {
                return;
            }
            log.lock().unwrap().accepted.push(got);
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Stores readings of `terminal` at `ts..` one minute apart, flow `i / 10` m³/h, sludge 50 %.
fn store_readings(g: &Gateway, terminal: &str, first: i64, range: std::ops::Range<i64>) {
    let conn = g.running.store.connect().unwrap();
    let key: i64 = conn
        .query_row("SELECT key FROM terminals WHERE id = ?1", [terminal], |r| {
            r.get(0)
        })
        .unwrap();
    conn.execute_batch("BEGIN").unwrap();
    for i in range {
        conn.execute(
            "INSERT INTO readings (terminal, ts, flow_m3h, turbidity_ntu, sludge_pct)
             VALUES (?1, ?2, ?3, 4.5, 50.0)",
            rusqlite::params![key, first + i * 60, i as f64 / 10.0],
        )
        .unwrap();
    }
    conn.execute_batch("COMMIT").unwrap();
}

/// What the platform must receive for reading `i` of terminal `mn`.
fn expected(
    mn: &str,
    first: i64,
    i: i64,
    sludge: Option<&str>,
) -> (String, String, String, Option<String>) {
    let t = jiff::Timestamp::from_second(first + i * 60)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::get("Asia/Shanghai").unwrap());
    (
        mn.to_owned(),
        t.strftime("%Y%m%d%H%M%S").to_string(),
        // m³/h to L/s, two decimals.
        format!("{:.2}", i as f64 / 10.0 / 3.6),
        sludge.map(str::to_owned),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_reading_reaches_the_platform_once_in_order_across_an_outage() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cfg = config(dir.path(), None);
    cfg.hj212.enabled = true;
    cfg.hj212.address = addr.to_string();
    cfg.hj212.answer_timeout_s = 2;
    cfg.hj212.retry_s = 1;
    // Real-time data only here; the statistics have their own test.
    cfg.hj212.hourly = false;
    cfg.hj212.daily = false;
    for (id, mn, pw) in [
        ("HY-001", "MN0001", "111111"),
        ("HY-002", "MN0002", "222222"),
    ] {
        cfg.hj212.terminals.insert(
            id.into(),
            TerminalUplink {
                mn: mn.into(),
                pw: pw.into(),
            },
        );
    }
    let log: Log = Arc::default();
    let platform = Platform::start(addr, log.clone());
    let g = Gateway::start(cfg).await;
    g.add_terminal("HY-001");
    g.add_terminal("HY-002");
    // Not configured for the platform: never sent.
    g.add_terminal("HY-003");
    g.running
        .store
        .with(|c| weir_store::terminals::set_tank_depth(c, "HY-001", Some(2.0)))
        .unwrap();

    let first = weir_store::now() - 86_400;
    // Interleaved in commit order: HY-001, HY-003, HY-002, ...
    let mut want = Vec::new();
    let mut stored = 0;
    let mut store_round = |g: &Gateway, range: std::ops::Range<i64>, want: &mut Vec<_>| {
        for i in range {
            store_readings(g, "HY-001", first, i..i + 1);
            store_readings(g, "HY-003", first, i..i + 1);
            store_readings(g, "HY-002", first, i..i + 1);
            want.push(expected("MN0001", first, i, Some("1.000")));
            want.push(expected("MN0002", first, i, None));
            stored += 3;
        }
    };
    store_round(&g, 0..150, &mut want);

    // The platform goes down while the backlog is being sent.
    g.eventually(30, || async {
        (log.lock().unwrap().accepted.len() >= 60).then_some(())
    })
    .await;
    platform.stop(&log).await;
    let at_outage = log.lock().unwrap().accepted.len();
    assert!(at_outage < want.len(), "the outage came too late to matter");
    // Readings keep arriving while it is down; the uplink fails and knows how far behind it is.
    store_round(&g, 150..200, &mut want);
    let m = g
        .eventually(30, || async {
            let (_, m) = g.get("/metrics").await;
            (metric(&m, "weir_hj212_failures_total").unwrap_or(0.0) >= 2.0).then_some(m)
        })
        .await;
    assert!(metric(&m, "weir_hj212_lag_readings").unwrap() > 0.0, "{m}");
    assert_eq!(log.lock().unwrap().accepted.len(), at_outage);

    // Back on the same port: the rest arrives, resent from the store.
    let platform = Platform::start(addr, log.clone());
    store_round(&g, 200..220, &mut want);
    g.eventually(60, || async {
        (log.lock().unwrap().accepted.len() >= want.len()).then_some(())
    })
    .await;
    let m = g
        .eventually(10, || async {
            let (_, m) = g.get("/metrics").await;
            (metric(&m, "weir_hj212_lag_readings") == Some(0.0)).then_some(m)
        })
        .await;
    // A moment more: nothing is sent twice after the backlog.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = log.lock().unwrap().accepted.clone();
    assert_eq!(log.lock().unwrap().refused, Vec::<String>::new());
    let got_keys: Vec<_> = got
        .iter()
        .map(|g| {
            (
                g.mn.clone(),
                g.data_time.clone(),
                g.flow.clone(),
                g.sludge.clone(),
            )
        })
        .collect();
    assert_eq!(got_keys.len(), want.len(), "lost or doubled readings");
    for (i, (got, expected)) in got_keys.iter().zip(&want).enumerate() {
        assert_eq!(got, expected, "upload {i} of {}", want.len());
    }
    let mut qns: Vec<_> = got.iter().map(|g| g.qn.clone()).collect();
    qns.sort();
    qns.dedup();
    assert_eq!(qns.len(), got.len(), "every QN is unique");
    let answers = metric(&m, "weir_hj212_answers_total").unwrap();
    assert_eq!(answers as usize, want.len(), "{m}");
    assert!(metric(&m, "weir_hj212_frames_sent_total").unwrap() >= answers);
    eprintln!(
        "HJ 212 uplink: {} uploads accepted, {} at the outage, {} failures, {} frames sent, {stored} readings stored",
        got.len(),
        at_outage,
        metric(&m, "weir_hj212_failures_total").unwrap(),
        metric(&m, "weir_hj212_frames_sent_total").unwrap(),
    );
    platform.stop(&log).await;
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switched_on_it_sends_the_last_ten_minutes_hour_and_day_and_no_older_readings() {
    let dir = tempfile::tempdir().unwrap();
    let tz = jiff::tz::TimeZone::get("Asia/Shanghai").unwrap();
    let local = |ts: i64| {
        jiff::Timestamp::from_second(ts)
            .unwrap()
            .to_zoned(tz.clone())
            .strftime("%Y%m%d%H%M%S")
            .to_string()
    };
    // The test and the gateway must agree on the last whole ten minutes and the last whole
    // hour: not within half a minute of a ten-minute boundary (every hour starts on one).
    let into_ten = weir_store::now().rem_euclid(600);
    if into_ten > 600 - 30 {
        tokio::time::sleep(Duration::from_secs((600 - into_ten + 2) as u64)).await;
    }
    // The hour before this one, and yesterday (local) from 10:00 and 11:00: 7.2 m³/h (2 L/s)
    // and 3 NTU throughout, one reading per hour.
    let now = weir_store::now();
    let last_hour = now.div_euclid(3600) * 3600 - 3600;
    let today = jiff::Timestamp::from_second(now)
        .unwrap()
        .to_zoned(tz.clone())
        .start_of_day()
        .unwrap();
    let yesterday = today
        .yesterday()
        .unwrap()
        .start_of_day()
        .unwrap()
        .timestamp()
        .as_second();
    {
        // The gateway makes the database and the terminal; the rollups are written before the
        // uplink starts, so that its first pass sees them.
        let g = Gateway::start(config(dir.path(), None)).await;
        g.add_terminal("HY-001");
        let conn = g.running.store.connect().unwrap();
        let mut buckets = vec![yesterday + 10 * 3600, yesterday + 11 * 3600];
        if !buckets.contains(&last_hour) {
            buckets.push(last_hour);
        }
        for bucket in buckets {
            conn.execute(
                "INSERT INTO rollup_hour (terminal, bucket, n, flow_m3h_n, flow_m3h_min,
                 flow_m3h_max, flow_m3h_sum, turbidity_ntu_n, turbidity_ntu_min,
                 turbidity_ntu_max, turbidity_ntu_sum)
                 SELECT key, ?1, 1, 1, 7.2, 7.2, 7.2, 1, 3.0, 3.0, 3.0 FROM terminals
                 WHERE id = 'HY-001'",
                [bucket],
            )
            .unwrap();
        }
        drop(conn);
        // Readings stored before the uplink is switched on are history: not sent as real-time
        // data, only in the minute data of the last 10 minutes that ended.
        store_readings(&g, "HY-001", now - 600, 0..5);
        g.stop().await;
    }
    let port = free_port();
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let log: Log = Arc::default();
    let platform = Platform::start(addr, log.clone());
    let mut cfg = config(dir.path(), None);
    cfg.hj212.enabled = true;
    cfg.hj212.address = addr.to_string();
    cfg.hj212.statistics_delay_min = 0;
    cfg.hj212.terminals.insert(
        "HY-001".into(),
        TerminalUplink {
            mn: "MN0001".into(),
            pw: "111111".into(),
        },
    );
    let g = Gateway::start(cfg).await;
    g.eventually(20, || async {
        (log.lock().unwrap().accepted.len() >= 3).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let got = log.lock().unwrap().accepted.clone();
    assert_eq!(log.lock().unwrap().refused, Vec::<String>::new());
    let minute: Vec<_> = got.iter().filter(|g| g.cn == 2051).collect();
    let hourly: Vec<_> = got.iter().filter(|g| g.cn == 2061).collect();
    let daily: Vec<_> = got.iter().filter(|g| g.cn == 2031).collect();
    // Nothing else: no real-time upload of the readings stored before.
    assert_eq!(
        (minute.len(), hourly.len(), daily.len(), got.len()),
        (1, 1, 1, 3),
        "{got:#?}"
    );
    assert_eq!(
        hourly[0].cp,
        format!(
            "DataTime={};w00000-Cou=7.20,w00000-Min=2.00,w00000-Avg=2.00,w00000-Max=2.00,w00000-Flag=N;w01003-Min=3.0,w01003-Avg=3.0,w01003-Max=3.0,w01003-Flag=N",
            local(last_hour)
        )
    );
    // The last 10 minutes that ended, from the raw readings (the first of them is always in
    // it; turbidity reads 4.5 throughout).
    let ten = now.div_euclid(600) * 600 - 600;
    assert!(
        minute[0]
            .cp
            .starts_with(&format!("DataTime={};w00000-Cou=", local(ten))),
        "{minute:?}"
    );
    assert!(
        minute[0]
            .cp
            .ends_with(";w01003-Min=4.5,w01003-Avg=4.5,w01003-Max=4.5,w01003-Flag=N"),
        "{minute:?}"
    );
    // A day's volume is its mean flow over 24 h where no totaliser reads.
    assert_eq!(
        daily[0].cp,
        format!(
            "DataTime={};w00000-Cou=172.80,w00000-Min=2.00,w00000-Avg=2.00,w00000-Max=2.00,w00000-Flag=N;w01003-Min=3.0,w01003-Avg=3.0,w01003-Max=3.0,w01003-Flag=N",
            local(yesterday)
        )
    );
    platform.stop(&log).await;
    g.stop().await;
}

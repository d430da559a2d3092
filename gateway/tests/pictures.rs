//! Pictures of the terminal: uploads through the API (what is taken, what is refused and why,
//! who may), the bound on disk use, retention deleting files with their rows, and a camera
//! served by the test that the gateway's scheduler fetches (with a digest login, as most IP
//! cameras ask).

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::IntoResponse;
use support::*;
use weir_store::auth::{self, Role};

/// A JPEG of `w` x `h` pixels, a gradient (so it does not compress to nothing).
fn jpeg(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x * 7 % 256) as u8,
            (y * 5 % 256) as u8,
            ((x ^ y) % 256) as u8,
        ])
    });
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&img)
        .unwrap();
    out
}

async fn post_picture(
    g: &Gateway,
    token: &str,
    terminal: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value) {
    let resp = reqwest::Client::new()
        .post(g.url(&format!("/api/v1/terminals/{terminal}/pictures")))
        .bearer_auth(token)
        .header(header::CONTENT_TYPE.as_str(), content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)),
    )
}

fn token(g: &Gateway, role: Role) -> String {
    g.running
        .store
        .with(|c| auth::create_token(c, "pictures test", role))
        .unwrap()
}

async fn pictures(g: &Gateway, terminal: &str) -> Vec<serde_json::Value> {
    let (status, body) = g
        .get(&format!("/api/v1/terminals/{terminal}/pictures"))
        .await;
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).unwrap()
}

/// Every file under the data directory's pictures/.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(terminals) = std::fs::read_dir(dir.join("pictures")) {
        for t in terminals.flatten() {
            for f in std::fs::read_dir(t.path()).unwrap().flatten() {
                out.push(format!(
                    "{}/{}",
                    t.file_name().to_string_lossy(),
                    f.file_name().to_string_lossy()
                ));
            }
        }
    }
    out.sort();
    out
}

async fn get_bytes(g: &Gateway, path: &str) -> (u16, String, Vec<u8>) {
    let resp = reqwest::Client::new()
        .get(g.url(path))
        .bearer_auth(&g.token)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn field_staff_upload_a_photo_and_get_it_back_with_a_320_pixel_thumbnail() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    g.add_terminal("HY-001");
    let field = token(&g, Role::Field);
    let photo = jpeg(1280, 960);

    let (status, body) = post_picture(&g, &field, "HY-001", "image/jpeg", photo.clone()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["source"], "upload");
    assert_eq!(body["uploaded_by"], "pictures test");
    assert_eq!(
        (body["width"].as_u64(), body["height"].as_u64()),
        (Some(1280), Some(960))
    );

    let list = pictures(&g, "HY-001").await;
    assert_eq!(list.len(), 1);
    let (status, ct, original) = get_bytes(&g, list[0]["url"].as_str().unwrap()).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(original, photo, "the original comes back as it was sent");
    let (status, ct, thumb) = get_bytes(&g, list[0]["thumbnail_url"].as_str().unwrap()).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    let thumb = image::load_from_memory(&thumb).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (320, 240));
    // Two files beside the database, counted in /metrics.
    assert_eq!(files(dir.path()).len(), 2, "{:?}", files(dir.path()));
    let (_, metrics) = g.get("/metrics").await;
    assert_eq!(metric(&metrics, "weir_pictures_uploaded_total"), Some(1.0));
    assert_eq!(metric(&metrics, "weir_pictures_stored"), Some(1.0));
    assert!(metric(&metrics, "weir_pictures_bytes").unwrap() > photo.len() as f64);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_are_refused_naming_the_problem_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), None);
    c.pictures.max_picture_bytes = 64 * 1024;
    c.pictures.max_pixels = 4_000_000;
    let g = Gateway::start(c).await;
    g.add_terminal("HY-001");
    let field = token(&g, Role::Field);

    // Not a picture at all.
    let (status, body) = post_picture(
        &g,
        &field,
        "HY-001",
        "image/jpeg",
        b"these are not pixels".to_vec(),
    )
    .await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("not a JPEG or PNG"),
        "{body}"
    );

    // A type that is not taken.
    let (status, body) = post_picture(&g, &field, "HY-001", "image/heic", jpeg(10, 10)).await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("image/heic"),
        "{body}"
    );
    let (status, body) = post_picture(&g, &field, "HY-001", "image/png", jpeg(10, 10)).await;
    assert_eq!(status, 415, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("image/jpeg"),
        "{body}"
    );

    // Larger than pictures.max_picture_bytes.
    let big = jpeg(1600, 1200);
    assert!(big.len() > 64 * 1024);
    let (status, body) = post_picture(&g, &field, "HY-001", "image/jpeg", big).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("max_picture_bytes"),
        "{body}"
    );

    // A small file declaring 30000 x 30000 pixels: refused from its header.
    let mut bomb = jpeg(16, 16);
    let sof = bomb.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    bomb[sof + 5..sof + 7].copy_from_slice(&30000u16.to_be_bytes());
    bomb[sof + 7..sof + 9].copy_from_slice(&30000u16.to_be_bytes());
    let (status, body) = post_picture(&g, &field, "HY-001", "image/jpeg", bomb).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("30000 x 30000"),
        "{body}"
    );

    // No such terminal.
    let (status, _) = post_picture(&g, &field, "HY-404", "image/jpeg", jpeg(10, 10)).await;
    assert_eq!(status, 404);

    assert!(pictures(&g, "HY-001").await.is_empty());
    assert!(files(dir.path()).is_empty(), "{:?}", files(dir.path()));
    let (_, metrics) = g.get("/metrics").await;
    assert_eq!(
        metric(
            &metrics,
            "weir_pictures_refused_total{reason=\"not_an_image\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_pictures_refused_total{reason=\"too_large\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(
            &metrics,
            "weir_pictures_refused_total{reason=\"too_many_pixels\"}"
        ),
        Some(1.0)
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_field_staff_and_operators_may_upload_and_a_browser_session_needs_a_picture_type() {
    let dir = tempfile::tempdir().unwrap();
    let g = Gateway::start(config(dir.path(), None)).await;
    g.add_terminal("HY-001");
    let inspector = token(&g, Role::Inspector);
    let (status, body) = post_picture(&g, &inspector, "HY-001", "image/jpeg", jpeg(40, 30)).await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["detail"].as_str().unwrap().contains("inspector"),
        "{body}"
    );
    let operator = token(&g, Role::Operator);
    let (status, body) = post_picture(&g, &operator, "HY-001", "image/jpeg", jpeg(40, 30)).await;
    assert_eq!(status, 201, "{body}");
    // An inspector may look.
    let (status, _) = get(
        &g.url("/api/v1/terminals/HY-001/pictures"),
        Some(&inspector),
    )
    .await;
    assert_eq!(status, 200);
    // Nobody logged in may not.
    let (status, _) = get(&g.url("/api/v1/terminals/HY-001/pictures"), None).await;
    assert_eq!(status, 401);

    // With a session cookie, a form's type (what a cross-site page can send) is refused
    // before the handler; the picture's own type is taken.
    g.running
        .store
        .with(|c| {
            auth::put_user(c, "li", "field-pass-12", Role::Field, false)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.to_string().into()))
        })
        .unwrap();
    let browser = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let login = browser
        .post(g.url("/api/v1/login"))
        .json(&serde_json::json!({"username": "li", "password": "field-pass-12"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let form = browser
        .post(g.url("/api/v1/terminals/HY-001/pictures"))
        .header("content-type", "multipart/form-data; boundary=x")
        .body(jpeg(40, 30))
        .send()
        .await
        .unwrap();
    assert_eq!(form.status(), 415);
    let photo = browser
        .post(g.url("/api/v1/terminals/HY-001/pictures"))
        .header("content-type", "image/jpeg")
        .body(jpeg(40, 30))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 201);
    assert_eq!(pictures(&g, "HY-001").await.len(), 2);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oldest_pictures_go_to_keep_within_the_disk_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), None);
    // A thumbnail is a twenty-fifth of this picture's pixels: room for two pictures with
    // their thumbnails, not three.
    let photo = jpeg(1600, 1200);
    c.pictures.max_picture_bytes = photo.len() as u64 + 1024;
    c.pictures.max_total_bytes = 2 * c.pictures.max_picture_bytes + photo.len() as u64 / 2;
    let bound = c.pictures.max_total_bytes;
    let g = Gateway::start(c).await;
    g.add_terminal("HY-001");
    let field = token(&g, Role::Field);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (status, body) = post_picture(&g, &field, "HY-001", "image/jpeg", photo.clone()).await;
        assert_eq!(status, 201, "{body}");
        ids.push(body["id"].as_i64().unwrap());
    }
    let kept: Vec<i64> = pictures(&g, "HY-001")
        .await
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(kept, vec![ids[2], ids[1]], "the oldest went");
    let (status, _, _) = get_bytes(&g, &format!("/api/v1/pictures/{}", ids[0])).await;
    assert_eq!(status, 404);
    assert_eq!(files(dir.path()).len(), 4, "{:?}", files(dir.path()));
    let (_, metrics) = g.get("/metrics").await;
    assert_eq!(metric(&metrics, "weir_pictures_evicted_total"), Some(1.0));
    assert!(metric(&metrics, "weir_pictures_bytes").unwrap() <= bound as f64);
    assert_eq!(
        metric(&metrics, "weir_pictures_max_bytes"),
        Some(bound as f64)
    );
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_pictures_with_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let now = weir_store::now();
    // Two pictures stored 40 and 5 days ago, before the gateway starts.
    let (old, recent) = {
        let store =
            weir_store::Store::open(&dir.path().join("weir.db"), weir_store::Synchronous::Normal)
                .unwrap();
        registered(dir.path(), "HY-001");
        let conn = store.connect().unwrap();
        let photo = jpeg(64, 48);
        let save = |days: i64| {
            weir_store::pictures::save(
                &conn,
                &store.pictures_dir(),
                &weir_store::pictures::NewPicture {
                    terminal: "HY-001",
                    taken_at: now - days * 86_400,
                    source: weir_store::pictures::Source::Camera,
                    uploaded_by: None,
                    content_type: "image/jpeg",
                    extension: "jpg",
                    width: 64,
                    height: 48,
                    original: &photo,
                    thumbnail: &photo,
                },
                1 << 30,
            )
            .unwrap()
            .picture
        };
        (save(40), save(5))
    };
    assert_eq!(files(dir.path()).len(), 4);
    let mut c = config(dir.path(), None);
    c.pictures.retention_days = 30;
    let g = Gateway::start(c).await;
    g.eventually(20, || async {
        (pictures(&g, "HY-001").await.len() == 1).then_some(())
    })
    .await;
    let left = pictures(&g, "HY-001").await;
    assert_eq!(left[0]["id"].as_i64(), Some(recent.id));
    let pics = dir.path().join("pictures");
    assert!(!pics.join(&old.file).exists() && !pics.join(&old.thumbnail).exists());
    assert!(pics.join(&recent.file).exists() && pics.join(&recent.thumbnail).exists());
    assert_eq!(files(dir.path()).len(), 2);
    let (_, metrics) = g.get("/metrics").await;
    assert_eq!(metric(&metrics, "weir_pictures_pruned_total"), Some(1.0));
    g.stop().await;
}

/// A camera on a free loopback port: answers its snapshot URL with `picture`, asking for a
/// digest login when `login` is given (as Hikvision and Dahua cameras do).
struct Camera {
    url: String,
    served: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

async fn camera(picture: Vec<u8>, login: Option<(&'static str, &'static str)>) -> Camera {
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    const CHALLENGE: &str =
        r#"Digest realm="IP Camera", qop="auth", nonce="4e6f6e6365-weir-test", opaque="a1b2""#;
    let handler = {
        let (served, refused) = (served.clone(), refused.clone());
        move |headers: HeaderMap| {
            let (served, refused, picture) = (served.clone(), refused.clone(), picture.clone());
            async move {
                if let Some((user, password)) = login {
                    let ok = headers
                        .get(header::AUTHORIZATION)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| digest_auth::AuthorizationHeader::parse(v).ok())
                        .is_some_and(|got| {
                            // What the right password gives for the same nonces.
                            let mut prompt = digest_auth::parse(CHALLENGE).unwrap();
                            let mut ctx =
                                digest_auth::AuthContext::new(user, password, got.uri.clone());
                            if let Some(c) = &got.cnonce {
                                ctx.set_custom_cnonce(c.clone());
                            }
                            let want = prompt.respond(&ctx).unwrap();
                            got.username == user && got.response == want.response
                        });
                    if !ok {
                        refused.fetch_add(1, Ordering::SeqCst);
                        return (
                            StatusCode::UNAUTHORIZED,
                            [(header::WWW_AUTHENTICATE, CHALLENGE)],
                        )
                            .into_response();
                    }
                }
                served.fetch_add(1, Ordering::SeqCst);
                ([(header::CONTENT_TYPE, "image/jpeg")], picture).into_response()
            }
        }
    };
    let app = axum::Router::new().route(
        "/ISAPI/Streaming/channels/101/picture",
        axum::routing::get(handler),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Camera {
        url: format!("http://{addr}/ISAPI/Streaming/channels/101/picture"),
        served,
        refused,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_scheduler_fetches_a_camera_snapshot_with_its_digest_login() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = jpeg(640, 360);
    let cam = camera(snapshot.clone(), Some(("weir", "cam-secret"))).await;
    let mut c = config(dir.path(), None);
    c.pictures.cameras.insert(
        "HY-001".into(),
        weir_gateway::pictures::CameraConfig {
            url: cam.url.clone(),
            username: "weir".into(),
            password: "cam-secret".into(),
            interval_s: 3600,
        },
    );
    registered(dir.path(), "HY-001");
    let g = Gateway::start(c).await;
    let list = g
        .eventually(20, || async {
            let l = pictures(&g, "HY-001").await;
            (!l.is_empty()).then_some(l)
        })
        .await;
    assert_eq!(list[0]["source"], "camera");
    assert!(list[0]["uploaded_by"].is_null());
    let (_, _, original) = get_bytes(&g, list[0]["url"].as_str().unwrap()).await;
    assert_eq!(original, snapshot);
    assert!(
        cam.refused.load(Ordering::SeqCst) >= 1,
        "the camera asked for a login"
    );
    assert!(cam.served.load(Ordering::SeqCst) >= 1);
    let (_, metrics) = g.get("/metrics").await;
    assert!(metric(&metrics, "weir_pictures_from_cameras_total").unwrap() >= 1.0);
    g.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_with_a_wrong_password_stores_nothing_and_is_counted() {
    let dir = tempfile::tempdir().unwrap();
    let cam = camera(jpeg(64, 48), Some(("weir", "cam-secret"))).await;
    registered(dir.path(), "HY-001");
    let mut c = config(dir.path(), None);
    c.pictures.cameras.insert(
        "HY-001".into(),
        weir_gateway::pictures::CameraConfig {
            url: cam.url.clone(),
            username: "weir".into(),
            password: "wrong".into(),
            interval_s: 3600,
        },
    );
    let g = Gateway::start(c).await;
    g.eventually(20, || async {
        let (_, metrics) = g.get("/metrics").await;
        (metric(&metrics, "weir_camera_failures_total")? >= 1.0).then_some(())
    })
    .await;
    assert_eq!(cam.served.load(Ordering::SeqCst), 0);
    assert!(pictures(&g, "HY-001").await.is_empty());
    g.stop().await;
}

/// The command line records a camera in the store; the gateway fetches it at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_set_from_the_command_line_is_fetched_and_shown_around_an_alert() {
    let dir = tempfile::tempdir().unwrap();
    let snapshot = jpeg(320, 200);
    let cam = camera(snapshot.clone(), None).await;
    let weir = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
            .env("WEIR_DATA_DIR", dir.path())
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "weir {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    weir(&["terminal", "add", "HY-001", "--name", "a"]);
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .env("WEIR_DATA_DIR", dir.path())
        .args([
            "terminal",
            "camera",
            "set",
            "HY-001",
            "--url",
            "rtsp://x/stream",
        ])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("http://"));
    weir(&[
        "terminal",
        "camera",
        "set",
        "HY-001",
        "--url",
        &cam.url,
        "--interval",
        "600",
    ]);
    let tested = weir(&["terminal", "camera", "test", "HY-001"]);
    assert!(
        tested.contains("image/jpeg of 320 x 200 pixels"),
        "{tested}"
    );
    let listed = weir(&["terminal", "camera", "list"]);
    assert!(
        listed.contains(&cam.url) && listed.contains("600"),
        "{listed}"
    );
    assert!(
        pictures_in(dir.path()).is_empty(),
        "the test stores nothing"
    );

    let g = Gateway::start(config(dir.path(), None)).await;
    let list = g
        .eventually(20, || async {
            let l = pictures(&g, "HY-001").await;
            (!l.is_empty()).then_some(l)
        })
        .await;
    assert_eq!(list[0]["source"], "camera");

    // An alert raised now: the snapshot is its "before"; an upload after it, its "after".
    let opened = weir_store::now() + 1;
    let alert_id: i64 = g
        .running
        .store
        .with(|c| {
            c.execute(
                "INSERT INTO alerts (terminal, rule, severity, state, title, detail, opened_at)
                 VALUES ('HY-001', 'turbidity', 'alarm', 'open', 't', 'd', ?1)",
                [opened],
            )?;
            Ok(c.last_insert_rowid())
        })
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let field = token(&g, Role::Field);
    let (status, after) = post_picture(&g, &field, "HY-001", "image/jpeg", jpeg(50, 50)).await;
    assert_eq!(status, 201, "{after}");
    let (status, body) = g.get(&format!("/api/v1/alerts/{alert_id}")).await;
    assert_eq!(status, 200, "{body}");
    let alert: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(alert["pictures"]["before"]["id"], list[0]["id"], "{alert}");
    assert_eq!(alert["pictures"]["after"]["id"], after["id"], "{alert}");
    g.stop().await;
}

fn pictures_in(dir: &std::path::Path) -> Vec<String> {
    files(dir)
}

/// Registers terminal `id` in the store of data directory `dir`, before a gateway starts.
fn registered(dir: &std::path::Path, id: &str) {
    let store =
        weir_store::Store::open(&dir.join("weir.db"), weir_store::Synchronous::Normal).unwrap();
    weir_store::terminals::add(
        &store.connect().unwrap(),
        &weir_store::terminals::NewTerminal {
            id: id.into(),
            name: format!("Terminal {id}"),
            ..Default::default()
        },
        "x",
    )
    .unwrap();
}

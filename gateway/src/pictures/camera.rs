//! Snapshots from each terminal's IP camera: one task per camera fetches its snapshot URL at
//! start and then every `interval_s`, answering a camera's HTTP basic or digest challenge with
//! its login. The cameras are those of `[pictures.cameras]` and those `weir terminal camera
//! set` recorded in the store (which win), read again every minute.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{AUTHORIZATION, CONTENT_LENGTH, WWW_AUTHENTICATE};
use reqwest::StatusCode;
use tokio_util::sync::CancellationToken;
use weir_store::cameras::Camera;
use weir_store::pictures::Source;

use super::{CameraConfig, PictureError, Pictures};

/// How often the cameras recorded in the store are read again.
pub const RELOAD: Duration = Duration::from_secs(60);

/// Why a snapshot was not fetched.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// No answer, a broken connection, a timeout.
    #[error("the camera did not answer: {0}")]
    Http(#[from] reqwest::Error),
    /// An answer other than 200.
    #[error("the camera answered HTTP {0}")]
    Status(StatusCode),
    /// A digest challenge that could not be answered.
    #[error("the camera's digest challenge could not be answered: {0}")]
    Digest(String),
    /// The answer is larger than `pictures.max_picture_bytes`.
    #[error("the camera's answer is larger than pictures.max_picture_bytes ({0} bytes)")]
    TooLarge(u64),
}

/// The HTTP client cameras are fetched with: `timeout` for the whole answer, 5 s to connect.
pub fn client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(timeout))
        .timeout(timeout)
        .redirect(reqwest::redirect::Policy::limited(3))
        .build()
        .unwrap_or_default()
}

/// Fetches one snapshot of `cam`, at most `max_bytes` long.
pub async fn fetch(
    client: &reqwest::Client,
    cam: &Camera,
    max_bytes: u64,
) -> Result<bytes::Bytes, FetchError> {
    let mut resp = client.get(&cam.url).send().await?;
    if resp.status() == StatusCode::UNAUTHORIZED && !cam.username.is_empty() {
        let challenge = resp
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let req = if challenge
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("digest")
        {
            let mut prompt =
                digest_auth::parse(&challenge).map_err(|e| FetchError::Digest(e.to_string()))?;
            let url = resp.url();
            let uri = match url.query() {
                Some(q) => format!("{}?{q}", url.path()),
                None => url.path().to_owned(),
            };
            let ctx = digest_auth::AuthContext::new(&cam.username, &cam.password, &uri);
            let answer = prompt
                .respond(&ctx)
                .map_err(|e| FetchError::Digest(e.to_string()))?;
            client
                .get(&cam.url)
                .header(AUTHORIZATION, answer.to_header_string())
        } else {
            client
                .get(&cam.url)
                .basic_auth(&cam.username, Some(&cam.password))
        };
        resp = req.send().await?;
    }
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status()));
    }
    let declared = resp
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max_bytes) {
        return Err(FetchError::TooLarge(max_bytes));
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(FetchError::TooLarge(max_bytes));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.into())
}

/// Fetches and stores one snapshot of `cam`.
pub async fn snapshot(
    pictures: &Pictures,
    client: &reqwest::Client,
    cam: &Camera,
) -> Result<weir_store::pictures::Picture, String> {
    // A camera waits for its turn as long as it takes: nobody is waiting on it, and at a
    // restart every camera asks at once.
    let turn = super::Turn(pictures.turns.acquire().await.map_err(|e| e.to_string())?);
    let bytes = fetch(client, cam, pictures.config().max_picture_bytes)
        .await
        .map_err(|e| {
            if let FetchError::TooLarge(_) = e {
                pictures.refused(PictureError::TooLarge {
                    max: pictures.config().max_picture_bytes,
                });
            }
            e.to_string()
        })?;
    // A camera's Content-Type is often wrong (image/jpg, octet-stream): the bytes decide.
    pictures
        .take(&turn, &cam.terminal, Source::Camera, None, bytes, None)
        .await
        .map_err(|e| e.to_string())
}

async fn one_camera(pictures: Arc<Pictures>, cam: Camera, cancel: CancellationToken) {
    let client = client(Duration::from_secs(
        pictures.config().camera_timeout_s.into(),
    ));
    let every = Duration::from_secs(cam.interval_s.max(1).into());
    let mut failing = false;
    loop {
        let done = tokio::select! {
            _ = cancel.cancelled() => return,
            r = snapshot(&pictures, &client, &cam) => r,
        };
        match done {
            Ok(p) => {
                if failing {
                    tracing::info!(terminal = %cam.terminal, "the camera answers again");
                }
                failing = false;
                tracing::debug!(terminal = %cam.terminal, picture = p.id, bytes = p.bytes, "camera snapshot stored");
            }
            Err(e) => {
                pictures.metrics.camera_failures.fetch_add(1, Relaxed);
                // Said once per outage at warn, then quietly.
                if !failing {
                    tracing::warn!(terminal = %cam.terminal, url = %cam.url, error = %e, "no snapshot from the terminal's camera");
                } else {
                    tracing::debug!(terminal = %cam.terminal, error = %e, "still no snapshot");
                }
                failing = true;
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}

/// The cameras in force: the configuration file's, replaced by the store's per terminal.
fn cameras(
    from_config: &BTreeMap<String, CameraConfig>,
    from_store: Vec<Camera>,
) -> BTreeMap<String, Camera> {
    let mut all: BTreeMap<String, Camera> = from_config
        .iter()
        .map(|(id, c)| {
            (
                id.clone(),
                Camera {
                    terminal: id.clone(),
                    url: c.url.clone(),
                    username: c.username.clone(),
                    password: c.password.clone(),
                    interval_s: c.interval_s,
                },
            )
        })
        .collect();
    for c in from_store {
        all.insert(c.terminal.clone(), c);
    }
    all
}

/// Runs every camera until `cancel`, starting, changing and stopping them as the store's
/// cameras change.
pub async fn run(pictures: Arc<Pictures>, cancel: CancellationToken) {
    let from_config = pictures.config().cameras.clone();
    let mut running: BTreeMap<String, (Camera, CancellationToken)> = BTreeMap::new();
    loop {
        match pictures.store.run(weir_store::cameras::list).await {
            Ok(from_store) => {
                let wanted = cameras(&from_config, from_store);
                running.retain(|id, (cam, stop)| {
                    let keep = wanted.get(id) == Some(cam);
                    if !keep {
                        stop.cancel();
                    }
                    keep
                });
                for (id, cam) in wanted {
                    if running.contains_key(&id) {
                        continue;
                    }
                    tracing::info!(terminal = %id, url = %cam.url, every_s = cam.interval_s, "fetching the terminal's camera");
                    let stop = cancel.child_token();
                    tokio::spawn(one_camera(pictures.clone(), cam.clone(), stop.clone()));
                    running.insert(id, (cam, stop));
                }
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "could not read the cameras; keeping those running")
            }
        }
        tokio::select! {
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep(RELOAD) => {}
        }
    }
    for (_, (_, stop)) in running {
        stop.cancel();
    }
}

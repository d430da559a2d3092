//! Pictures of the whole terminal, so an operator can see a flooded well, a broken lid or an
//! overgrown site without sending anyone: snapshots the gateway fetches from a camera in the
//! cabinet (`camera`), and photos field staff upload from a phone (through `api/`). Every
//! picture is checked to be a JPEG or PNG within bounds (`examine`), given a thumbnail and
//! stored with its row (`weir_store::pictures`), within one bound on disk use.

pub mod camera;
pub mod config;
pub mod examine;

use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

pub use config::{CameraConfig, PicturesConfig};
use examine::{Bounds, Kind};
use weir_store::pictures::{self, NewPicture, Picture, SaveError, Source};
use weir_store::Store;

use crate::metrics::Metrics;

/// How long a picture waits for its turn to be decoded before it is refused as busy.
const TURN_WAIT: Duration = Duration::from_secs(10);

/// Why a picture was not stored. The API gives each its own status.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    /// The declared media type is not one taken.
    #[error("Content-Type {0:?} is not taken: send the picture as image/jpeg or image/png (a phone set to \"most compatible\" saves JPEG)")]
    WrongType(String),
    /// The declared media type is not what the body is.
    #[error("Content-Type says {declared} but the picture is {actual}")]
    Mismatch {
        /// What the request said.
        declared: &'static str,
        /// What the bytes are.
        actual: &'static str,
    },
    /// The bytes are not a picture that decodes.
    #[error("not a JPEG or PNG picture: {0}")]
    NotAnImage(String),
    /// Larger than `pictures.max_picture_bytes`.
    #[error("the picture is larger than pictures.max_picture_bytes ({max} bytes)")]
    TooLarge {
        /// The bound.
        max: u64,
    },
    /// More pixels than `pictures.max_pixels` or a side over `pictures.max_side_px`.
    #[error("the picture declares {width} x {height} pixels; at most {max_pixels} pixels and {max_side} on a side are taken (pictures.max_pixels, pictures.max_side_px)")]
    TooManyPixels {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The bound on pixels.
        max_pixels: u64,
        /// The bound on a side.
        max_side: u32,
    },
    /// No such terminal.
    #[error("no terminal {0}")]
    NoTerminal(String),
    /// Every turn to decode was taken for too long.
    #[error("the gateway is taking in too many pictures at once: try again shortly")]
    Busy,
    /// The body did not arrive in time.
    #[error("the picture did not arrive within pictures.upload_timeout_s ({0} s)")]
    Timeout(u32),
    /// Anything else: the store, the disk.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl PictureError {
    /// A short stable name, for `weir_pictures_refused_total{reason}`.
    pub fn reason(&self) -> &'static str {
        match self {
            PictureError::WrongType(_) => "wrong_type",
            PictureError::Mismatch { .. } => "wrong_type",
            PictureError::NotAnImage(_) => "not_an_image",
            PictureError::TooLarge { .. } => "too_large",
            PictureError::TooManyPixels { .. } => "too_many_pixels",
            PictureError::NoTerminal(_) => "no_terminal",
            PictureError::Busy => "busy",
            PictureError::Timeout(_) => "timeout",
            PictureError::Internal(_) => "internal",
        }
    }
}

/// Takes pictures in: checks, thumbnails and stores them, a bounded number at once.
#[derive(Debug)]
pub struct Pictures {
    store: Arc<Store>,
    dir: PathBuf,
    config: PicturesConfig,
    metrics: Arc<Metrics>,
    turns: tokio::sync::Semaphore,
}

/// A turn to receive and decode one picture.
#[derive(Debug)]
pub struct Turn<'a>(#[allow(dead_code)] tokio::sync::SemaphorePermit<'a>);

impl Pictures {
    /// Pictures stored beside `store`'s database.
    pub fn new(store: Arc<Store>, config: &PicturesConfig, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Pictures {
            dir: store.pictures_dir(),
            store,
            config: config.clone(),
            metrics,
            turns: tokio::sync::Semaphore::new(config.max_in_flight),
        })
    }

    /// The section of the configuration in force.
    pub fn config(&self) -> &PicturesConfig {
        &self.config
    }

    /// The file of `p`: its original, or its thumbnail.
    pub fn file(&self, p: &Picture, thumbnail: bool) -> PathBuf {
        self.dir
            .join(if thumbnail { &p.thumbnail } else { &p.file })
    }

    /// Waits (at most 10 s) for a turn to receive and decode a picture: at most
    /// `pictures.max_in_flight` are in memory at once.
    pub async fn turn(&self) -> Result<Turn<'_>, PictureError> {
        match tokio::time::timeout(TURN_WAIT, self.turns.acquire()).await {
            Ok(Ok(p)) => Ok(Turn(p)),
            _ => Err(self.refused(PictureError::Busy)),
        }
    }

    /// Counts a refused picture and gives the error back.
    pub fn refused(&self, e: PictureError) -> PictureError {
        self.metrics.picture_refused(e.reason());
        e
    }

    /// Checks `bytes` (of the kind `declared` says, if given), makes its thumbnail and stores
    /// both for `terminal`. The caller holds a [`Turn`].
    pub async fn take(
        &self,
        _turn: &Turn<'_>,
        terminal: &str,
        source: Source,
        uploaded_by: Option<String>,
        bytes: bytes::Bytes,
        declared: Option<Kind>,
    ) -> Result<Picture, PictureError> {
        let result = self
            .take_inner(terminal, source, uploaded_by, bytes, declared)
            .await;
        match result {
            Ok((p, evicted)) => {
                let stored = match source {
                    Source::Camera => &self.metrics.pictures_from_cameras,
                    Source::Upload => &self.metrics.pictures_uploaded,
                };
                stored.fetch_add(1, Relaxed);
                self.metrics.pictures_evicted.fetch_add(evicted, Relaxed);
                Ok(p)
            }
            Err(e) => Err(self.refused(e)),
        }
    }

    async fn take_inner(
        &self,
        terminal: &str,
        source: Source,
        uploaded_by: Option<String>,
        bytes: bytes::Bytes,
        declared: Option<Kind>,
    ) -> Result<(Picture, u64), PictureError> {
        if bytes.len() as u64 > self.config.max_picture_bytes {
            return Err(PictureError::TooLarge {
                max: self.config.max_picture_bytes,
            });
        }
        let bounds = Bounds {
            max_pixels: self.config.max_pixels,
            max_side_px: self.config.max_side_px,
            thumbnail_width: self.config.thumbnail_width,
        };
        let (store, dir, max_total, terminal) = (
            self.store.clone(),
            self.dir.clone(),
            self.config.max_total_bytes,
            terminal.to_owned(),
        );
        tokio::task::spawn_blocking(move || {
            let found = store
                .with(|c| weir_store::terminals::key_of(c, &terminal))
                .map_err(anyhow::Error::from)?;
            if found.is_none() {
                return Err(PictureError::NoTerminal(terminal));
            }
            let e = examine::examine(&bytes, declared, &bounds)?;
            let new = NewPicture {
                terminal: &terminal,
                taken_at: weir_store::now(),
                source,
                uploaded_by: uploaded_by.as_deref(),
                content_type: e.kind.content_type(),
                extension: e.kind.extension(),
                width: e.width,
                height: e.height,
                original: &bytes,
                thumbnail: &e.thumbnail,
            };
            let conn = store.connect().map_err(anyhow::Error::from)?;
            match pictures::save(&conn, &dir, &new, max_total) {
                Ok(s) => Ok((s.picture, s.evicted)),
                Err(SaveError::NoTerminal(t)) => Err(PictureError::NoTerminal(t)),
                Err(SaveError::LargerThanBound { max, .. }) => Err(PictureError::TooLarge { max }),
                Err(e) => Err(PictureError::Internal(
                    anyhow::Error::from(e).context("storing a picture"),
                )),
            }
        })
        .await
        .map_err(|e| PictureError::Internal(anyhow::anyhow!("the picture's worker failed: {e}")))?
    }
}

/// Removes picture files that no row names (left by a crash between writing a picture and
/// committing its row), at start.
pub async fn sweep(store: &Arc<Store>) {
    let dir = store.pictures_dir();
    match store
        .run(move |c| pictures::sweep_orphans(c, &dir, Duration::from_secs(3600)))
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(files = n, "removed picture files without a row"),
        Err(e) => tracing::warn!(error = %format!("{e:#}"), "could not check the picture files"),
    }
}

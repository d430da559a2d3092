//! NOR flash kept in a file, so a simulated node that is killed keeps its queue.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// Page (erase) size of the simulated flash, like most SPI NOR chips.
pub const PAGE: usize = 4096;

/// A NOR flash of whole pages in a file, with a copy in memory for reads.
///
/// Writes go to the file at once (a killed process loses nothing it wrote; the operating
/// system keeps the file's pages), with NOR semantics: erasing sets `0xFF`, writing can
/// only clear bits.
#[derive(Debug)]
pub struct FileFlash {
    file: File,
    bytes: Vec<u8>,
    power: Option<PowerCut>,
}

/// A power cut in the middle of a flash operation, for tests: the flash of one node (all its
/// partitions share one) loses power during its `n`-th write or erase from now.
///
/// That operation is torn: only a prefix of its words reaches the flash (the word it stopped
/// in keeps only some of its cleared bits), and the operation never returns, as on a board
/// whose power went. [`PowerCut::tripped`] then resolves, and whoever runs the node drops it
/// (its RAM is gone) and starts a new one on the same files.
#[derive(Clone, Debug)]
pub struct PowerCut {
    inner: Arc<PowerCutState>,
}

#[derive(Debug)]
struct PowerCutState {
    /// Operations left before the cut.
    left: AtomicU64,
    /// Which word of the torn operation the cut falls in, and how many of its bits stay:
    /// drawn from this.
    tear: Mutex<u64>,
    tripped: AtomicBool,
    notify: tokio::sync::Notify,
    /// Where the cut fell: (operation, offset, length, bytes kept).
    at: Mutex<Option<(&'static str, u32, usize, usize)>>,
}

impl PowerCut {
    /// Power goes during the `ops`-th write or erase from now (1: the next one); `tear`
    /// seeds where in that operation it stops.
    pub fn after(ops: u64, tear: u64) -> Self {
        PowerCut {
            inner: Arc::new(PowerCutState {
                left: AtomicU64::new(ops.max(1)),
                tear: Mutex::new(tear),
                tripped: AtomicBool::new(false),
                notify: tokio::sync::Notify::new(),
                at: Mutex::new(None),
            }),
        }
    }

    /// Resolves once the power has gone.
    pub async fn tripped(&self) {
        loop {
            let notified = self.inner.notify.notified();
            if self.inner.tripped.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }

    /// Where the cut fell, once it has: the operation (`write` or `erase`), its offset and
    /// length, and how many of its bytes were done.
    pub fn torn(&self) -> Option<(&'static str, u32, usize, usize)> {
        *self.inner.at.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one operation; `Some(draw)` if the power goes during it.
    fn take(&self) -> Option<u64> {
        if self.inner.tripped.load(Ordering::SeqCst) {
            return Some(0);
        }
        let left = self.inner.left.fetch_sub(1, Ordering::SeqCst);
        if left > 1 {
            return None;
        }
        let mut tear = self.inner.tear.lock().unwrap_or_else(|e| e.into_inner());
        // splitmix64: a different tear at every cut of the same seed.
        *tear = tear.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *tear;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Some(z ^ (z >> 31))
    }

    fn trip(&self, op: &'static str, offset: u32, len: usize, kept: usize) {
        *self.inner.at.lock().unwrap_or_else(|e| e.into_inner()) = Some((op, offset, len, kept));
        self.inner.tripped.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }
}

/// Why a flash operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FileFlashError {
    /// Outside the flash.
    #[error("outside the flash")]
    OutOfBounds,
    /// Not aligned to the write or erase size.
    #[error("not aligned to the write or erase size")]
    NotAligned,
    /// The file could not be written.
    #[error("writing the flash file: {0}")]
    Io(#[from] io::Error),
}

impl NorFlashError for FileFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            FileFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            FileFlashError::NotAligned => NorFlashErrorKind::NotAligned,
            FileFlashError::Io(_) => NorFlashErrorKind::Other,
        }
    }
}

impl FileFlash {
    /// Opens the flash file at `path`, or creates an erased one of `pages` pages. A file of
    /// another size is refused rather than reinterpreted.
    pub fn open(path: &Path, pages: usize) -> io::Result<Self> {
        let size = pages * PAGE;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let len = file.metadata()?.len() as usize;
        let bytes = if len == 0 {
            let erased = vec![0xFF; size];
            file.write_all_at(&erased, 0)?;
            erased
        } else if len == size {
            let mut bytes = vec![0; size];
            file.read_exact_at(&mut bytes, 0)?;
            bytes
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {len} bytes, expected {size}", path.display()),
            ));
        };
        Ok(FileFlash {
            file,
            bytes,
            power: None,
        })
    }

    /// Cuts the power as `cut` says (for tests of torn writes).
    pub fn with_power_cut(mut self, cut: PowerCut) -> Self {
        self.power = Some(cut);
        self
    }

    /// The flash's contents.
    pub fn contents(&self) -> &[u8] {
        &self.bytes
    }

    fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<std::ops::Range<usize>, FileFlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(FileFlashError::OutOfBounds)?;
        if end > self.bytes.len() {
            return Err(FileFlashError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(FileFlashError::NotAligned);
        }
        Ok(start..end)
    }
}

impl ErrorType for FileFlash {
    type Error = FileFlashError;
}

impl ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, out: &mut [u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, out.len(), 1)?;
        out.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        self.bytes.len()
    }
}

impl NorFlash for FileFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(FileFlashError::OutOfBounds)?;
        let range = self.range(from, len, PAGE)?;
        if let Some(draw) = self.power.as_ref().and_then(PowerCut::take) {
            // Torn erase: part of the range is erased, word by word from its start.
            let words = len / Self::WRITE_SIZE;
            let kept = (draw as usize % words.max(1)) * Self::WRITE_SIZE;
            let torn = range.start..range.start + kept;
            self.bytes[torn.clone()].fill(0xFF);
            self.file.write_all_at(&self.bytes[torn], u64::from(from))?;
            if let Some(cut) = &self.power {
                cut.trip("erase", from, len, kept);
            }
            return std::future::pending().await;
        }
        self.bytes[range.clone()].fill(0xFF);
        self.file
            .write_all_at(&self.bytes[range], u64::from(from))?;
        Ok(())
    }

    async fn write(&mut self, offset: u32, data: &[u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, data.len(), Self::WRITE_SIZE)?;
        if let Some(draw) = self.power.as_ref().and_then(PowerCut::take) {
            // Torn write: the words before the cut are written, the word it falls in keeps
            // only some of the bits it was to clear, the rest are untouched.
            let words = data.len() / Self::WRITE_SIZE;
            let whole = draw as usize % words.max(1);
            let kept = whole * Self::WRITE_SIZE;
            for (cell, b) in self.bytes[range.start..range.start + kept]
                .iter_mut()
                .zip(data)
            {
                *cell &= *b;
            }
            let mask = (draw >> 32) as u32;
            let partial = range.start + kept..range.start + kept + Self::WRITE_SIZE;
            for (i, (cell, b)) in self.bytes[partial.clone()]
                .iter_mut()
                .zip(&data[kept..])
                .enumerate()
            {
                // A bit stays set unless the write cleared it and the cut let it through.
                *cell &= *b | (mask >> (8 * i)) as u8;
            }
            let written = range.start..partial.end;
            self.file
                .write_all_at(&self.bytes[written], u64::from(offset))?;
            if let Some(cut) = &self.power {
                cut.trip("write", offset, data.len(), kept);
            }
            return std::future::pending().await;
        }
        for (cell, b) in self.bytes[range.clone()].iter_mut().zip(data) {
            *cell &= *b;
        }
        self.file
            .write_all_at(&self.bytes[range], u64::from(offset))?;
        Ok(())
    }
}

impl MultiwriteNorFlash for FileFlash {}

// The simulated boot loader (embassy-boot's `BootLoader`) uses the blocking traits.
impl embedded_storage::nor_flash::ReadNorFlash for FileFlash {
    const READ_SIZE: usize = 1;

    fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        futures_lite_block_on(ReadNorFlash::read(self, offset, bytes))
    }

    fn capacity(&self) -> usize {
        ReadNorFlash::capacity(self)
    }
}

impl embedded_storage::nor_flash::NorFlash for FileFlash {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        futures_lite_block_on(NorFlash::erase(self, from, to))
    }

    fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        futures_lite_block_on(NorFlash::write(self, offset, bytes))
    }
}

/// Runs one of the flash's futures, which never wait (file I/O is done in place).
fn futures_lite_block_on<T>(f: impl std::future::Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => v,
        std::task::Poll::Pending => unreachable!("the file flash never waits"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn writes_survive_reopening_the_file_with_nor_semantics() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("queue.flash");
        block_on(async {
            let mut f = FileFlash::open(&path, 2).unwrap();
            f.write(8, &[0x0F, 0xF0, 0xAA, 0x55]).await.unwrap();
            // A second write only clears bits.
            f.write(8, &[0xFF, 0x0F, 0xFF, 0xFF]).await.unwrap();
            drop(f);
            let mut f = FileFlash::open(&path, 2).unwrap();
            let mut out = [0; 4];
            f.read(8, &mut out).await.unwrap();
            assert_eq!(out, [0x0F, 0x00, 0xAA, 0x55]);
            f.erase(0, PAGE as u32).await.unwrap();
            f.read(8, &mut out).await.unwrap();
            assert_eq!(out, [0xFF; 4]);
            assert!(matches!(
                f.write(2, &[0; 4]).await,
                Err(FileFlashError::NotAligned)
            ));
            assert!(matches!(
                f.write(2 * PAGE as u32, &[0; 4]).await,
                Err(FileFlashError::OutOfBounds)
            ));
        });
        assert!(
            FileFlash::open(&path, 3).is_err(),
            "a file of another size is refused"
        );
    }
}

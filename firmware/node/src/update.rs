//! Firmware updates: download an offered image into the second slot, check its signature,
//! have the boot loader swap it in, and confirm it once it has proved itself.
//!
//! The flash layout and the swap are embassy-boot's: an ACTIVE slot the board runs from, a
//! DFU slot (one page larger) the new image is written to, and a STATE partition where
//! [`FirmwareUpdater`] marks "swap at next boot" and "booted fine". At each start the boot
//! loader (`embassy_boot::BootLoader::prepare_boot`) swaps the slots page by page when
//! marked, resuming after a power cut; if the new image then starts but never confirms, the
//! next reset swaps back (a rollback). The updater writes the DFU slot itself, erasing each
//! page as the download reaches it, and uses embassy-boot's [`FirmwareState`] for the marks.
//!
//! The [`Updater`] keeps no record of its own: a power cut during a download means starting
//! the download again (the gateway's retained offer arrives at the next connection), and
//! after a rollback the image that failed is still in the DFU slot, so an offer of that same
//! signed image is recognised and refused instead of tried again.
//!
//! Signatures are Ed25519 over the SHA-512 digest of the image (`ed25519-compact`, pure
//! Rust, no heap), the convention of embassy-boot's own `verify_and_mark_updated`.

use embassy_boot::{FirmwareState, FirmwareUpdaterError, State};
use embedded_storage_async::nor_flash::{NorFlash, NorFlashError as _, NorFlashErrorKind};
use weir_contract::firmware::{version, Version};
use weir_contract::{FirmwareChunk, FirmwareOffer, UpdateReport, UpdateState, CHUNK_LEN};

/// Why the updater stopped: the flash failed (or lost power), or the boot loader's state is
/// not one an update may start from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// A flash operation failed.
    Flash(NorFlashErrorKind),
    /// embassy-boot refused: an update may only be written from a confirmed image.
    BadState,
}

impl From<FirmwareUpdaterError> for Error {
    fn from(e: FirmwareUpdaterError) -> Self {
        match e {
            FirmwareUpdaterError::Flash(kind) => Error::Flash(kind),
            _ => Error::BadState,
        }
    }
}

impl core::fmt::Display for Error {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Error::Flash(kind) => write!(f, "firmware update: flash: {kind:?}"),
            Error::BadState => f.write_str("firmware update: the boot state forbids it"),
        }
    }
}

/// What the node asks of a firmware updater. [`NoUpdates`] for a node that never updates,
/// [`Updater`] for one with embassy-boot partitions.
#[allow(async_fn_in_trait)]
pub trait Updates {
    /// Reads the boot state: a new image on trial, or one just rolled back.
    async fn start(&mut self) -> Result<(), Error>;
    /// The gateway's offer arrived (`None`: withdrawn). Returns what to tell the gateway.
    async fn offer(&mut self, offer: Option<&FirmwareOffer>)
        -> Result<Option<UpdateReport>, Error>;
    /// A piece of the image arrived. Returns what to tell the gateway.
    async fn chunk(&mut self, chunk: &FirmwareChunk) -> Result<Option<UpdateReport>, Error>;
    /// The gateway has stored something this image sent: if it is on trial, it is confirmed.
    async fn confirm(&mut self) -> Result<Option<UpdateReport>, Error>;
    /// The request to repeat if its piece has not come.
    fn retry(&self) -> Option<UpdateReport>;
    /// A verified image is marked for the boot loader: restart now.
    fn reboot_due(&self) -> bool;
    /// This run is a new image's trial, not yet confirmed.
    fn on_trial(&self) -> bool {
        false
    }
}

/// A node without firmware updates: ignores offers.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoUpdates;

impl Updates for NoUpdates {
    async fn start(&mut self) -> Result<(), Error> {
        Ok(())
    }
    async fn offer(&mut self, _: Option<&FirmwareOffer>) -> Result<Option<UpdateReport>, Error> {
        Ok(None)
    }
    async fn chunk(&mut self, _: &FirmwareChunk) -> Result<Option<UpdateReport>, Error> {
        Ok(None)
    }
    async fn confirm(&mut self) -> Result<Option<UpdateReport>, Error> {
        Ok(None)
    }
    fn retry(&self) -> Option<UpdateReport> {
        None
    }
    fn reboot_due(&self) -> bool {
        false
    }
}

/// A download in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Job {
    version: Version,
    size: u32,
    signature: [u8; 64],
    /// Bytes written so far; the next piece wanted starts here.
    next: u32,
}

/// Buffer for a piece, padded to the flash's write size, aligned for flash drivers that
/// want it.
#[repr(C, align(32))]
struct Piece([u8; CHUNK_LEN]);

/// The node's firmware updater over embassy-boot's DFU and STATE partitions.
///
/// `aligned` is embassy-boot's buffer for the state partition: `STATE::WRITE_SIZE` (at least
/// `READ_SIZE`) bytes, aligned as the flash needs.
pub struct Updater<'d, DFU: NorFlash, STATE: NorFlash> {
    dfu: DFU,
    state: FirmwareState<'d, STATE>,
    public_key: [u8; 32],
    running: Version,
    /// Largest image the ACTIVE slot holds, bytes.
    max_size: u32,
    /// Started on a new image not yet confirmed.
    trial: bool,
    /// Started after the boot loader rolled back an image that was not confirmed.
    reverted: bool,
    /// An image refused (bad signature) or rolled back in this run: not tried again.
    refused: Option<(Version, [u8; 64])>,
    job: Option<Job>,
    reboot: bool,
    piece: Piece,
}

impl<DFU: NorFlash, STATE: NorFlash> core::fmt::Debug for Updater<'_, DFU, STATE> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Updater")
            .field("running", &self.running)
            .field("trial", &self.trial)
            .field("reverted", &self.reverted)
            .field(
                "job",
                &self.job.as_ref().map(|j| (&j.version, j.next, j.size)),
            )
            .field("reboot", &self.reboot)
            .finish_non_exhaustive()
    }
}

fn report(version: &Version, state: UpdateState, offset: u32) -> Option<UpdateReport> {
    Some(UpdateReport {
        version: version.clone(),
        state,
        offset,
    })
}

impl<'d, DFU: NorFlash, STATE: NorFlash> Updater<'d, DFU, STATE> {
    /// An updater for a node running `running` (as in its status), accepting images signed
    /// by `public_key` of at most `max_size` bytes (the ACTIVE slot's size).
    pub fn new(
        dfu: DFU,
        state: STATE,
        aligned: &'d mut [u8],
        public_key: [u8; 32],
        running: &str,
        max_size: u32,
    ) -> Self {
        let max_size = max_size.min((dfu.capacity() as u32).saturating_sub(DFU::ERASE_SIZE as u32));
        Updater {
            dfu,
            state: FirmwareState::new(state, aligned),
            public_key,
            running: version(running),
            max_size,
            trial: false,
            reverted: false,
            refused: None,
            job: None,
            reboot: false,
            piece: Piece([0xFF; CHUNK_LEN]),
        }
    }

    /// Whether this run is a new image's trial (confirmed at the first [`Updates::confirm`]).
    pub fn on_trial(&self) -> bool {
        self.trial
    }

    /// Whether the boot loader rolled back before this run.
    pub fn rolled_back(&self) -> bool {
        self.reverted
    }

    /// Whether the DFU slot holds `size` bytes whose digest `signature` signs with the
    /// configured key.
    pub async fn dfu_verifies(&mut self, size: u32, signature: &[u8; 64]) -> Result<bool, Error> {
        if size == 0 || size > self.max_size {
            return Ok(false);
        }
        let mut hash = ed25519_compact::sha512::Hash::new();
        let mut offset = 0u32;
        while offset < size {
            let n = (size - offset).min(CHUNK_LEN as u32) as usize;
            let buf = &mut self.piece.0;
            // Read whole words; only the image's bytes are hashed.
            let read = n.next_multiple_of(DFU::READ_SIZE.max(1)).min(CHUNK_LEN);
            self.dfu
                .read(offset, &mut buf[..read])
                .await
                .map_err(|e| Error::Flash(e.kind()))?;
            hash.update(&buf[..n]);
            offset += n as u32;
        }
        let digest = hash.finalize();
        let key = ed25519_compact::PublicKey::new(self.public_key);
        Ok(key
            .verify(digest, &ed25519_compact::Signature::new(*signature))
            .is_ok())
    }

    async fn finish(&mut self, job: Job) -> Result<Option<UpdateReport>, Error> {
        if self.dfu_verifies(job.size, &job.signature).await? {
            self.state.mark_updated().await?;
            self.reboot = true;
            Ok(report(&job.version, UpdateState::Installing, 0))
        } else {
            self.refused = Some((job.version.clone(), job.signature));
            Ok(report(&job.version, UpdateState::Refused, 0))
        }
    }
}

impl<DFU: NorFlash, STATE: NorFlash> Updates for Updater<'_, DFU, STATE> {
    async fn start(&mut self) -> Result<(), Error> {
        match self.state.get_state().await? {
            State::Swap => self.trial = true,
            State::Revert => self.reverted = true,
            _ => {}
        }
        Ok(())
    }

    async fn offer(
        &mut self,
        offer: Option<&FirmwareOffer>,
    ) -> Result<Option<UpdateReport>, Error> {
        let Some(offer) = offer else {
            self.job = None;
            return Ok(None);
        };
        // Running it already (confirmed or on trial), or marked and about to restart: nothing
        // to do. A new image on trial takes no other until it is confirmed.
        if offer.version == self.running || self.trial || self.reboot {
            self.job = None;
            return Ok(None);
        }
        let signature = offer.signature_bytes();
        if self
            .refused
            .as_ref()
            .is_some_and(|(v, s)| *v == offer.version && *s == signature)
        {
            return Ok(None);
        }
        if offer.size > self.max_size {
            self.refused = Some((offer.version.clone(), signature));
            return Ok(report(&offer.version, UpdateState::Refused, 0));
        }
        if let Some(job) = &self.job {
            if job.version == offer.version && job.size == offer.size && job.signature == signature
            {
                // A reconnection: ask again for the piece still missing.
                return Ok(report(&job.version, UpdateState::Fetching, job.next));
            }
        }
        // Already in the DFU slot: either the image the boot loader just rolled back (refuse
        // it), or one fully written before a restart (install it without a download).
        if self.dfu_verifies(offer.size, &signature).await? {
            if self.reverted {
                self.refused = Some((offer.version.clone(), signature));
                self.job = None;
                return Ok(report(&offer.version, UpdateState::RolledBack, 0));
            }
            let job = Job {
                version: offer.version.clone(),
                size: offer.size,
                signature,
                next: offer.size,
            };
            return self.finish(job).await;
        }
        self.job = Some(Job {
            version: offer.version.clone(),
            size: offer.size,
            signature,
            next: 0,
        });
        Ok(report(&offer.version, UpdateState::Fetching, 0))
    }

    async fn chunk(&mut self, chunk: &FirmwareChunk) -> Result<Option<UpdateReport>, Error> {
        let Some(job) = &mut self.job else {
            return Ok(None);
        };
        // A repeated or late piece: the one wanted has been asked for already.
        if chunk.version != job.version || chunk.offset != job.next {
            return Ok(None);
        }
        let n = chunk.data.len();
        let end = job.next + n as u32;
        if end > job.size || (n < CHUNK_LEN && end != job.size) {
            // Not the image offered: start again.
            job.next = 0;
            return Ok(report(&job.version, UpdateState::Fetching, 0));
        }
        let padded = n.next_multiple_of(DFU::WRITE_SIZE.max(1));
        self.piece.0[..n].copy_from_slice(&chunk.data);
        self.piece.0[n..padded].fill(0xFF);
        // Each page is erased when its first byte is written: the pieces come in order from
        // offset 0, so a download started again erases again.
        let erase = DFU::ERASE_SIZE as u32;
        let mut page = job.next.next_multiple_of(erase);
        while page < job.next + padded as u32 {
            self.dfu
                .erase(page, page + erase)
                .await
                .map_err(|e| Error::Flash(e.kind()))?;
            page += erase;
        }
        self.dfu
            .write(job.next, &self.piece.0[..padded])
            .await
            .map_err(|e| Error::Flash(e.kind()))?;
        job.next = end;
        if end < job.size {
            return Ok(report(&job.version, UpdateState::Fetching, end));
        }
        let job = self.job.take().expect("a job is in progress");
        self.finish(job).await
    }

    async fn confirm(&mut self) -> Result<Option<UpdateReport>, Error> {
        if !self.trial {
            return Ok(None);
        }
        self.state.mark_booted().await?;
        self.trial = false;
        Ok(report(&self.running, UpdateState::Installed, 0))
    }

    fn retry(&self) -> Option<UpdateReport> {
        let job = self.job.as_ref()?;
        report(&job.version, UpdateState::Fetching, job.next)
    }

    fn reboot_due(&self) -> bool {
        self.reboot
    }

    fn on_trial(&self) -> bool {
        self.trial
    }
}

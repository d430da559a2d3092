//! The node's flash: three partitions, each a `sequential-storage` structure.
//!
//! * `settings`, a map: the boot counter, the dropped-readings record and the last valid
//!   configuration.
//! * `pending`, a queue of reading records: what was sampled since the last publication, so
//!   that a power cut loses no reading, even one not yet published.
//! * `queue`, a queue of message records: every message not yet acknowledged, oldest first.

use embedded_storage_async::nor_flash::{MultiwriteNorFlash, NorFlash};
use sequential_storage::cache::page_states::CalculatedPageStates;
use sequential_storage::cache::{Cache, Uncached};
use sequential_storage::map::{MapConfig, MapStorage};
use sequential_storage::queue::{QueueConfig, QueueStorage};
use weir_contract::{Message, NodeConfig, MAX_READINGS};

use crate::error::Error;
use crate::record::{MESSAGE_HEADER_LEN, READING_RECORD_MAX};
use crate::MAX_MESSAGE_LEN;

/// The node's three flash partitions.
///
/// They may be three chips or three ranges of one (for example embassy-embedded-hal's
/// `Partition`). Each is used from offset 0 to its capacity rounded down to whole pages, and
/// needs at least two pages. The flash must allow writing a word twice
/// ([`MultiwriteNorFlash`]), which `sequential-storage` uses to mark records as freed.
#[derive(Debug)]
pub struct Partitions<F> {
    /// Boot counter, dropped-readings counter and configuration. Two pages are plenty.
    pub settings: F,
    /// Readings sampled since the last publication. Two pages hold a full message's worth.
    pub pending: F,
    /// Messages waiting for an ack. Its size sets how long an outage the node rides out
    /// before it drops the oldest readings: about 40 bytes per reading, so 64 KiB hold
    /// about 1500 readings, a day at one a minute.
    pub queue: F,
}

/// How many readings one message may carry, given the flash's page size: a message record
/// must fit in one page. 64 (the protocol's limit) from 4 KiB pages; fewer with smaller ones.
pub const fn max_readings_per_message<F: NorFlash>() -> usize {
    let word = if F::WRITE_SIZE > F::READ_SIZE {
        F::WRITE_SIZE
    } else {
        F::READ_SIZE
    };
    let overhead = QueueStorage::<F, QueueCache>::item_overhead_size() as usize;
    let item = F::ERASE_SIZE.saturating_sub(2 * word + overhead + word);
    let readings =
        item.saturating_sub(MESSAGE_HEADER_LEN + (MAX_MESSAGE_LEN - MAX_READINGS * 40)) / 40;
    if readings > MAX_READINGS {
        MAX_READINGS
    } else {
        readings
    }
}

type QueueCache = Cache<CalculatedPageStates, Uncached, Uncached>;
type MapCache = Cache<CalculatedPageStates, Uncached, Uncached, u8>;

/// Keys of the settings map.
pub(crate) mod key {
    pub const BOOT: u8 = 1;
    pub const DROPPED: u8 = 2;
    pub const CONFIG: u8 = 3;
}

/// Some flash (internal flash of several microcontrollers) wants word-aligned RAM buffers.
#[derive(Debug)]
#[repr(C, align(32))]
pub(crate) struct Aligned<const N: usize>(pub [u8; N]);

/// Room for a message record, rounded up to a flash word.
pub(crate) const MESSAGE_BUF: usize =
    (MESSAGE_HEADER_LEN + MAX_MESSAGE_LEN + 32).next_multiple_of(32);

pub(crate) struct Store<F: MultiwriteNorFlash> {
    pub settings: MapStorage<u8, F, MapCache>,
    pub pending: QueueStorage<F, QueueCache>,
    pub queue: QueueStorage<F, QueueCache>,
    /// For message records (queue entries).
    pub msg_buf: Aligned<MESSAGE_BUF>,
    /// For reading records (pending entries).
    pub rec_buf: Aligned<{ (READING_RECORD_MAX + 32).next_multiple_of(32) }>,
    /// For settings.
    pub map_buf: Aligned<256>,
}

impl<F: MultiwriteNorFlash> core::fmt::Debug for Store<F> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Store").finish_non_exhaustive()
    }
}

fn pages<F: NorFlash, E>(flash: &F, name: &'static str) -> Result<(u32, usize), Error<E>> {
    let pages = flash.capacity() / F::ERASE_SIZE;
    if pages < 2 {
        return Err(Error::Partition {
            name,
            why: "needs at least two flash pages",
        });
    }
    Ok(((pages * F::ERASE_SIZE) as u32, pages))
}

fn queue<F: NorFlash>(
    flash: F,
    name: &'static str,
) -> Result<QueueStorage<F, QueueCache>, Error<F::Error>> {
    let (end, pages) = pages(&flash, name)?;
    let config = QueueConfig::try_new(0..end).map_err(|_| Error::Partition {
        name,
        why: "its pages are too small or its word size too large for sequential-storage",
    })?;
    Ok(QueueStorage::new(
        flash,
        config,
        Cache::new(CalculatedPageStates::new(pages), Uncached, Uncached),
    ))
}

impl<F: MultiwriteNorFlash> Store<F> {
    /// Checks the partitions and wraps them; reads nothing yet.
    pub fn open(parts: Partitions<F>) -> Result<Self, Error<F::Error>> {
        if max_readings_per_message::<F>() == 0 {
            return Err(Error::Partition {
                name: "queue",
                why: "a flash page cannot hold a message with even one reading",
            });
        }
        let (end, pages) = pages(&parts.settings, "settings")?;
        let config = MapConfig::try_new(0..end).map_err(|_| Error::Partition {
            name: "settings",
            why: "its pages are too small or its word size too large for sequential-storage",
        })?;
        Ok(Store {
            settings: MapStorage::new(
                parts.settings,
                config,
                Cache::new(CalculatedPageStates::new(pages), Uncached, Uncached),
            ),
            pending: queue(parts.pending, "pending")?,
            queue: queue(parts.queue, "queue")?,
            msg_buf: Aligned([0; MESSAGE_BUF]),
            rec_buf: Aligned([0; (READING_RECORD_MAX + 32).next_multiple_of(32)]),
            map_buf: Aligned([0; 256]),
        })
    }

    /// Gives the partitions back.
    pub fn close(self) -> Partitions<F> {
        Partitions {
            settings: self.settings.destroy().0,
            pending: self.pending.destroy().0,
            queue: self.queue.destroy().0,
        }
    }

    pub async fn counter(&mut self, key: u8) -> Result<Option<u32>, Error<F::Error>> {
        Ok(self
            .settings
            .fetch_item::<u32>(&mut self.map_buf.0, &key)
            .await?)
    }

    pub async fn set_counter(&mut self, key: u8, value: u32) -> Result<(), Error<F::Error>> {
        Ok(self
            .settings
            .store_item(&mut self.map_buf.0, &key, &value)
            .await?)
    }

    /// The dropped-readings record: how many readings the full queue dropped since the flash
    /// was new, and the identity (boot, seq) of the newest message dropped. A record written
    /// by an older firmware holds the count alone.
    pub async fn drops(&mut self) -> Result<(u32, Option<(u32, u32)>), Error<F::Error>> {
        let bytes = self
            .settings
            .fetch_item::<&[u8]>(&mut self.map_buf.0, &key::DROPPED)
            .await?;
        let word = |b: &[u8], i: usize| {
            b.get(4 * i..4 * i + 4)
                .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
        };
        Ok(match bytes {
            None => (0, None),
            Some(b) => (word(b, 0).unwrap_or(0), word(b, 1).zip(word(b, 2))),
        })
    }

    /// Writes the dropped-readings record as one map item, the count with the message it
    /// includes: `sequential-storage` makes a power cut leave the old item or the new one. The count comes first, so an older
    /// firmware reading a `u32` still finds it.
    pub async fn set_drops(
        &mut self,
        dropped: u32,
        last: (u32, u32),
    ) -> Result<(), Error<F::Error>> {
        let mut record = [0u8; 12];
        record[..4].copy_from_slice(&dropped.to_le_bytes());
        record[4..8].copy_from_slice(&last.0.to_le_bytes());
        record[8..].copy_from_slice(&last.1.to_le_bytes());
        Ok(self
            .settings
            .store_item(&mut self.map_buf.0, &key::DROPPED, &&record[..])
            .await?)
    }

    /// The stored configuration; `None` if there is none or it no longer validates.
    pub async fn config(&mut self) -> Result<Option<NodeConfig>, Error<F::Error>> {
        let bytes = self
            .settings
            .fetch_item::<&[u8]>(&mut self.map_buf.0, &key::CONFIG)
            .await?;
        Ok(bytes.and_then(|b| NodeConfig::decode(b).ok()))
    }

    pub async fn set_config(&mut self, config: &NodeConfig) -> Result<(), Error<F::Error>> {
        let mut encoded = [0u8; 192];
        let len = config
            .encode(crate::ENCODING, &mut encoded)
            .map_err(Error::Encode)?;
        Ok(self
            .settings
            .store_item(&mut self.map_buf.0, &key::CONFIG, &&encoded[..len])
            .await?)
    }
}

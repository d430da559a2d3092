//! A NOR flash in RAM, for host tests and for trying the node on a board before its flash
//! driver is written. It forgets everything at reset, so it is no place for a real queue.

use embedded_storage_async::nor_flash::{
    ErrorType, MultiwriteNorFlash, NorFlash, NorFlashError, NorFlashErrorKind, ReadNorFlash,
};

/// `SIZE` bytes of NOR flash in pages of `PAGE` bytes, written in 4-byte words.
///
/// Behaves like NOR flash: erasing sets bytes to `0xFF`, writing can only clear bits (a word
/// may be written more than once: [`MultiwriteNorFlash`]).
#[derive(Clone, Debug)]
pub struct RamFlash<const SIZE: usize, const PAGE: usize = 4096> {
    bytes: [u8; SIZE],
    erases: u32,
    writes: u32,
}

/// Why a flash operation was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RamFlashError {
    /// The range is not inside the flash.
    OutOfBounds,
    /// The offset or length is not a multiple of the write or erase size.
    NotAligned,
}

impl NorFlashError for RamFlashError {
    fn kind(&self) -> NorFlashErrorKind {
        match self {
            RamFlashError::OutOfBounds => NorFlashErrorKind::OutOfBounds,
            RamFlashError::NotAligned => NorFlashErrorKind::NotAligned,
        }
    }
}

impl<const SIZE: usize, const PAGE: usize> RamFlash<SIZE, PAGE> {
    /// An erased flash.
    pub const fn new() -> Self {
        RamFlash {
            bytes: [0xFF; SIZE],
            erases: 0,
            writes: 0,
        }
    }

    /// The raw contents.
    pub fn bytes(&self) -> &[u8; SIZE] {
        &self.bytes
    }

    /// Page erases so far.
    pub fn erases(&self) -> u32 {
        self.erases
    }

    /// Writes so far.
    pub fn writes(&self) -> u32 {
        self.writes
    }

    fn range(
        &self,
        offset: u32,
        len: usize,
        align: usize,
    ) -> Result<core::ops::Range<usize>, RamFlashError> {
        let start = offset as usize;
        let end = start.checked_add(len).ok_or(RamFlashError::OutOfBounds)?;
        if end > SIZE {
            return Err(RamFlashError::OutOfBounds);
        }
        if !start.is_multiple_of(align) || !len.is_multiple_of(align) {
            return Err(RamFlashError::NotAligned);
        }
        Ok(start..end)
    }
}

impl<const SIZE: usize, const PAGE: usize> Default for RamFlash<SIZE, PAGE> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const SIZE: usize, const PAGE: usize> ErrorType for RamFlash<SIZE, PAGE> {
    type Error = RamFlashError;
}

impl<const SIZE: usize, const PAGE: usize> ReadNorFlash for RamFlash<SIZE, PAGE> {
    const READ_SIZE: usize = 1;

    async fn read(&mut self, offset: u32, bytes: &mut [u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), 1)?;
        bytes.copy_from_slice(&self.bytes[range]);
        Ok(())
    }

    fn capacity(&self) -> usize {
        SIZE
    }
}

impl<const SIZE: usize, const PAGE: usize> NorFlash for RamFlash<SIZE, PAGE> {
    const WRITE_SIZE: usize = 4;
    const ERASE_SIZE: usize = PAGE;

    async fn erase(&mut self, from: u32, to: u32) -> Result<(), Self::Error> {
        let len = (to as usize)
            .checked_sub(from as usize)
            .ok_or(RamFlashError::OutOfBounds)?;
        let range = self.range(from, len, PAGE)?;
        self.bytes[range].fill(0xFF);
        self.erases += 1;
        Ok(())
    }

    async fn write(&mut self, offset: u32, bytes: &[u8]) -> Result<(), Self::Error> {
        let range = self.range(offset, bytes.len(), Self::WRITE_SIZE)?;
        for (cell, b) in self.bytes[range].iter_mut().zip(bytes) {
            *cell &= *b;
        }
        self.writes += 1;
        Ok(())
    }
}

impl<const SIZE: usize, const PAGE: usize> MultiwriteNorFlash for RamFlash<SIZE, PAGE> {}

//! Bounds-checked cursors over byte slices, so that no encoder or parser indexes past an end.

/// The buffer being written has no room left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Full;

/// Appends to a caller's buffer. A write that does not fit is dropped and remembered, and
/// [`Writer::finish`] reports it: an encoder checks once, at its end, not after every field
/// (less code on a microcontroller). What is in the buffer after a failure is unspecified.
#[derive(Debug)]
pub(crate) struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    full: bool,
}

impl<'a> Writer<'a> {
    pub(crate) fn new(buf: &'a mut [u8]) -> Self {
        Writer {
            buf,
            len: 0,
            full: false,
        }
    }

    /// Bytes written so far.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The length written, or [`Full`] if anything did not fit.
    pub(crate) fn finish(self) -> Result<usize, Full> {
        if self.full {
            Err(Full)
        } else {
            Ok(self.len)
        }
    }

    /// The next `n` bytes of the buffer, now counted as written; `None` (remembered) if they
    /// are not there.
    fn next(&mut self, n: usize) -> Option<&mut [u8]> {
        let end = self.len.checked_add(n);
        match end.and_then(|end| self.buf.get_mut(self.len..end)) {
            Some(dst) => {
                self.len += n;
                Some(dst)
            }
            None => {
                self.full = true;
                None
            }
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        if let Some(dst) = self.next(bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }

    pub(crate) fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }

    pub(crate) fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }

    /// `n` zero bytes.
    pub(crate) fn zeros(&mut self, n: usize) {
        if let Some(dst) = self.next(n) {
            dst.fill(0);
        }
    }
}

/// Reads from the front of a slice; `None` once it runs out.
#[derive(Clone, Debug)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// How far it has read.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let bytes = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(bytes)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes(self.array()?))
    }

    pub(crate) fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }

    /// Everything not read yet.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        self.pos = self.buf.len();
        rest
    }
}

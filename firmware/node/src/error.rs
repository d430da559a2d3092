//! What can stop the node.

use core::fmt;

/// An error the node cannot work around; the board should log it and restart.
///
/// Link failures are not errors: the node keeps its queue and waits for the link.
#[derive(Debug)]
pub enum Error<E> {
    /// The flash failed, or its contents are beyond repair.
    Flash(sequential_storage::Error<E>),
    /// A flash partition is unusable for its purpose: which one, and why.
    Partition {
        /// `settings`, `pending` or `queue`.
        name: &'static str,
        /// What is wrong with it.
        why: &'static str,
    },
    /// A message could not be encoded (a bug: the node only builds valid messages).
    Encode(weir_contract::Error),
    /// The firmware updater's flash failed.
    Update(crate::update::Error),
}

impl<E> From<crate::update::Error> for Error<E> {
    fn from(e: crate::update::Error) -> Self {
        Error::Update(e)
    }
}

impl<E> From<sequential_storage::Error<E>> for Error<E> {
    fn from(e: sequential_storage::Error<E>) -> Self {
        Error::Flash(e)
    }
}

impl<E: fmt::Debug> fmt::Display for Error<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Flash(e) => write!(f, "flash: {e:?}"),
            Error::Partition { name, why } => write!(f, "flash partition {name}: {why}"),
            Error::Encode(e) => write!(f, "encoding a message: {e}"),
            Error::Update(e) => write!(f, "{e}"),
        }
    }
}

impl<E: fmt::Debug> core::error::Error for Error<E> {}

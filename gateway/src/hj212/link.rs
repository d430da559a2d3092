//! The TCP connection to the platform: write a frame, read frames back until the data answer
//! (9014) that carries the upload's QN.

use std::time::Duration;

use std::sync::atomic::Ordering::Relaxed;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use tokio::net::TcpStream;
use weir_hj212::{frame_len, CommandCode, Packet, Qn, MAX_FRAME_LEN};

use crate::metrics::Metrics;

/// Longest wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why an upload was not delivered; the connection is dropped after any of them.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// Connecting, writing or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The platform closed the connection.
    #[error("the platform closed the connection")]
    Closed,
    /// No answer within the timeout.
    #[error("no data answer within {0:?}")]
    Timeout(Duration),
    /// The platform sent bytes that are not an HJ 212 frame.
    #[error("the platform sent a malformed frame: {0}")]
    Malformed(weir_hj212::DecodeError),
}

/// One connection to the platform.
#[derive(Debug)]
pub struct Link {
    stream: TcpStream,
    /// Bytes read and not yet cut into frames.
    buf: Vec<u8>,
}

impl Link {
    /// Connects to `address` (`host:port`) within `timeout`.
    pub async fn connect(address: &str, timeout: Duration) -> Result<Link, LinkError> {
        let stream = tokio::time::timeout(timeout, TcpStream::connect(address))
            .await
            .map_err(|_| LinkError::Timeout(timeout))??;
        stream.set_nodelay(true)?;
        Ok(Link {
            stream,
            buf: Vec::with_capacity(MAX_FRAME_LEN),
        })
    }

    /// Writes one whole frame.
    pub async fn send(&mut self, frame: &[u8]) -> Result<(), LinkError> {
        self.stream.write_all(frame).await?;
        Ok(())
    }

    /// Waits for the data answer to the upload numbered `qn`, at most `timeout`. Other frames
    /// (answers to earlier uploads, requests the gateway does not serve) are skipped.
    pub async fn answer(&mut self, qn: Qn, timeout: Duration) -> Result<(), LinkError> {
        tokio::time::timeout(timeout, self.read_answer(qn))
            .await
            .map_err(|_| LinkError::Timeout(timeout))?
    }

    async fn read_answer(&mut self, qn: Qn) -> Result<(), LinkError> {
        loop {
            while let Some(len) = frame_len(&self.buf).map_err(LinkError::Malformed)? {
                if self.buf.len() < len {
                    break;
                }
                let frame: Vec<u8> = self.buf.drain(..len).collect();
                match Packet::decode(&frame) {
                    Ok(p) if p.header.cn == CommandCode::DATA_ANSWER && p.header.qn == Some(qn) => {
                        return Ok(());
                    }
                    Ok(p) => {
                        tracing::debug!(
                            cn = p.header.cn.get(),
                            "HJ 212: skipped a frame from the platform"
                        );
                    }
                    Err(e) => return Err(LinkError::Malformed(e)),
                }
            }
            let mut chunk = [0u8; 2048];
            let n = self.stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(LinkError::Closed);
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }
}

/// Sends one frame on the open link (connecting first if there is none), then waits for its
/// answer when one is asked.
pub async fn deliver(
    link: &mut Option<Link>,
    address: &str,
    frame: &[u8],
    answer: Option<(Qn, Duration)>,
    metrics: &Metrics,
) -> Result<(), LinkError> {
    if link.is_none() {
        *link = Some(Link::connect(address, CONNECT_TIMEOUT).await?);
    }
    let Some(l) = link.as_mut() else {
        return Err(LinkError::Closed);
    };
    l.send(frame).await?;
    metrics.hj212_sent.fetch_add(1, Relaxed);
    if let Some((qn, timeout)) = answer {
        l.answer(qn, timeout).await?;
        metrics.hj212_answers.fetch_add(1, Relaxed);
    }
    Ok(())
}

//! SNTP (RFC 4330): the client's request and the server's transmit time.
//!
//! The client sends [`REQUEST`] and takes the server's transmit timestamp as the time at the
//! middle of the exchange; that is the caller's part, as is checking that the answer came from
//! the server it asked.

use core::fmt;

/// The UDP port NTP servers listen on.
pub const SERVER_PORT: u16 = 123;
/// Length of a request and of the part of a response that is read.
pub const PACKET_LEN: usize = 48;
/// A client request: leap indicator 0, version 4, mode 3 (client), everything else zero.
pub const REQUEST: [u8; PACKET_LEN] = {
    let mut packet = [0; PACKET_LEN];
    packet[0] = 0x23;
    packet
};
/// Seconds from the NTP epoch (1900-01-01) to the Unix epoch (1970-01-01).
pub const NTP_TO_UNIX_S: u32 = 2_208_988_800;

/// Mode 4: a server's answer.
const MODE_SERVER: u8 = 4;
/// Where the transmit timestamp (seconds, then fraction) starts.
const TRANSMIT_AT: usize = 40;

/// Why a datagram is not a usable server answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than [`PACKET_LEN`].
    TooShort,
    /// Its mode is not 4 (server).
    NotAServerReply,
    /// Stratum 0 (a kiss-o'-death, such as "slow down") or above 15 (unsynchronised).
    Unsynchronised {
        /// The stratum it gave.
        stratum: u8,
    },
    /// The transmit timestamp is zero.
    NoTransmitTime,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => f.write_str("shorter than an SNTP packet"),
            ParseError::NotAServerReply => f.write_str("not an SNTP server reply (mode 4)"),
            ParseError::Unsynchronised { stratum } => {
                write!(f, "the SNTP server is not synchronised (stratum {stratum})")
            }
            ParseError::NoTransmitTime => f.write_str("the SNTP reply has no transmit time"),
        }
    }
}

impl core::error::Error for ParseError {}

/// The transmit time of a server's answer, in milliseconds since the Unix epoch.
pub fn transmit_time_unix_ms(m: &[u8]) -> Result<i64, ParseError> {
    let m: &[u8; PACKET_LEN] = m
        .get(..PACKET_LEN)
        .and_then(|m| m.try_into().ok())
        .ok_or(ParseError::TooShort)?;
    if m[0] & 0x07 != MODE_SERVER {
        return Err(ParseError::NotAServerReply);
    }
    let stratum = m[1];
    if stratum == 0 || stratum > 15 {
        return Err(ParseError::Unsynchronised { stratum });
    }
    let t = TRANSMIT_AT;
    let seconds = u32::from_be_bytes([m[t], m[t + 1], m[t + 2], m[t + 3]]);
    let fraction = u32::from_be_bytes([m[t + 4], m[t + 5], m[t + 6], m[t + 7]]);
    if seconds == 0 {
        return Err(ParseError::NoTransmitTime);
    }
    Ok(ntp_to_unix_ms(seconds, fraction))
}

/// An NTP timestamp (seconds and 2^-32 fractions of a second) as milliseconds since the Unix
/// epoch, rounded down.
///
/// The 32-bit seconds wrap on 2036-02-07 (era 1 starts): seconds below [`NTP_TO_UNIX_S`] are
/// taken to be in era 1, so the timestamps from 1970 to 2106 are read right.
pub fn ntp_to_unix_ms(seconds: u32, fraction: u32) -> i64 {
    let seconds = i64::from(seconds);
    let era_start = if seconds < i64::from(NTP_TO_UNIX_S) {
        1 << 32
    } else {
        0
    };
    let millis = (u64::from(fraction) * 1000) >> 32;
    (era_start + seconds - i64::from(NTP_TO_UNIX_S)) * 1000 + millis as i64
}

//! DHCP (RFC 2131, options from RFC 2132): the client's DISCOVER and REQUEST, the server's
//! OFFER, ACK and NAK.
//!
//! A client binds with DISCOVER, OFFER, REQUEST (naming the offered address and the server),
//! ACK, and renews with a REQUEST carrying its address in `ciaddr`. Which reply belongs to which
//! request (the `xid` and the client's MAC address) is for the caller to check.

use core::fmt;

use crate::bytes::{Full, Reader, Writer};

/// The UDP port DHCP servers listen on.
pub const SERVER_PORT: u16 = 67;
/// The UDP port DHCP clients listen on.
pub const CLIENT_PORT: u16 = 68;
/// The magic cookie that starts the options field (RFC 2131, 3).
pub const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];
/// Messages are padded to this size (the BOOTP minimum, RFC 1542, 2.1): some servers drop
/// anything shorter.
pub const MIN_MESSAGE_LEN: usize = 300;
/// The options a client asks for (option 55): subnet mask, router, DNS server, lease time.
pub const PARAMETER_REQUEST_LIST: [u8; 4] = [
    option::SUBNET_MASK,
    option::ROUTER,
    option::DNS_SERVER,
    option::LEASE_TIME,
];

/// Where the options start: after the fixed BOOTP fields (236 bytes) and the magic cookie.
const OPTIONS_AT: usize = 240;
const BOOTREQUEST: u8 = 1;
const BOOTREPLY: u8 = 2;
/// `htype` of Ethernet, and its address length.
const ETHERNET: (u8, u8) = (1, 6);
/// The `flags` bit asking servers to broadcast their replies.
const BROADCAST: u16 = 0x8000;

/// The option codes this module reads or writes.
mod option {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS_SERVER: u8 = 6;
    pub const HOST_NAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const END: u8 = 255;
}

/// The DHCP message type (option 53).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum MessageType {
    /// A client looks for servers.
    Discover = 1,
    /// A server offers an address.
    Offer = 2,
    /// A client asks for an offered address, or to keep its own.
    Request = 3,
    /// A client found the address in use.
    Decline = 4,
    /// A server grants the address.
    Ack = 5,
    /// A server refuses the request.
    Nak = 6,
    /// A client gives its address back.
    Release = 7,
    /// A client with an address asks for its other parameters.
    Inform = 8,
}

impl MessageType {
    /// The type with code `code`, if it is one of RFC 2131's.
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            _ => return None,
        })
    }
}

/// A message from the client: what [`ClientMessage::encode`] writes.
///
/// It always asks for broadcast replies (a chip that takes no unicast before it has an address
/// still hears them) and for [`PARAMETER_REQUEST_LIST`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientMessage<'a> {
    /// DISCOVER or REQUEST, usually.
    pub message_type: MessageType,
    /// The transaction id, which the server's replies carry back.
    pub xid: u32,
    /// The client's Ethernet address (`chaddr`).
    pub mac: [u8; 6],
    /// `ciaddr`: the client's own address when renewing it; zero when `None`.
    pub client_ip: Option<[u8; 4]>,
    /// Option 50: the offered address, in a REQUEST answering an OFFER.
    pub requested_ip: Option<[u8; 4]>,
    /// Option 54: the server whose offer is taken, in a REQUEST answering an OFFER.
    pub server_id: Option<[u8; 4]>,
    /// Option 12: a name for the server's lease table; left out when empty.
    pub hostname: &'a str,
}

/// Why a [`ClientMessage`] could not be written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The buffer is smaller than the message (at least [`MIN_MESSAGE_LEN`] bytes).
    BufferTooSmall,
    /// The host name is longer than an option can hold (255 bytes).
    HostnameTooLong,
}

impl From<Full> for EncodeError {
    fn from(_: Full) -> Self {
        EncodeError::BufferTooSmall
    }
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EncodeError::BufferTooSmall => "the buffer is too small for the DHCP message",
            EncodeError::HostnameTooLong => "the host name is longer than 255 bytes",
        })
    }
}

impl core::error::Error for EncodeError {}

impl ClientMessage<'_> {
    /// Writes the message at the start of `buf`, padded with zeros to [`MIN_MESSAGE_LEN`];
    /// returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        let hostname = self.hostname.as_bytes();
        let hostname_len =
            u8::try_from(hostname.len()).map_err(|_| EncodeError::HostnameTooLong)?;
        let mut w = Writer::new(buf);
        w.put(&[BOOTREQUEST, ETHERNET.0, ETHERNET.1, 0]); // op, htype, hlen, hops
        w.put(&self.xid.to_be_bytes());
        w.u16(0); // secs
        w.u16(BROADCAST);
        w.put(&self.client_ip.unwrap_or([0; 4]));
        w.zeros(12); // yiaddr, siaddr, giaddr
        w.put(&self.mac);
        w.zeros(10 + 64 + 128); // the rest of chaddr, sname, file
        w.put(&MAGIC_COOKIE);

        w.put(&[option::MESSAGE_TYPE, 1, self.message_type as u8]);
        if let Some(ip) = self.requested_ip {
            w.put(&[option::REQUESTED_IP, 4]);
            w.put(&ip);
        }
        if let Some(server) = self.server_id {
            w.put(&[option::SERVER_ID, 4]);
            w.put(&server);
        }
        if hostname_len > 0 {
            w.put(&[option::HOST_NAME, hostname_len]);
            w.put(hostname);
        }
        w.put(&[option::PARAMETER_REQUEST_LIST, 4]);
        w.put(&PARAMETER_REQUEST_LIST);
        w.u8(option::END);
        let pad = MIN_MESSAGE_LEN.saturating_sub(w.len());
        w.zeros(pad);
        Ok(w.finish()?)
    }
}

/// A server's reply: its type, whom it is for, and the lease it describes.
///
/// Options it does not carry are `None`; what to assume then is the client's choice. Options
/// this module does not read are skipped; when one appears twice, the last one counts. An
/// address option longer than four bytes (a list of routers or DNS servers) gives its first
/// address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Option 53.
    pub message_type: MessageType,
    /// The transaction id of the request it answers.
    pub xid: u32,
    /// `chaddr`: the Ethernet address of the client it is for.
    pub client_mac: [u8; 6],
    /// `yiaddr`: the address offered or granted.
    pub your_ip: [u8; 4],
    /// Option 1.
    pub subnet_mask: Option<[u8; 4]>,
    /// Option 3 (the first router).
    pub router: Option<[u8; 4]>,
    /// Option 6 (the first DNS server).
    pub dns_server: Option<[u8; 4]>,
    /// Option 54: the server that sent it.
    pub server_id: Option<[u8; 4]>,
    /// Option 51, seconds.
    pub lease_time_s: Option<u32>,
}

/// Why a datagram is not a DHCP reply this module can read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the fixed fields and the magic cookie (240 bytes).
    TooShort,
    /// `op` is not BOOTREPLY: a request, perhaps another client's.
    NotAReply,
    /// No magic cookie where the options start: plain BOOTP, or not DHCP at all.
    NoMagicCookie,
    /// The option with this code runs past the end of the datagram.
    OptionTruncated {
        /// The option's code.
        code: u8,
    },
    /// The option with this code is shorter than its value (an address, a lease time, a type).
    OptionTooShort {
        /// The option's code.
        code: u8,
    },
    /// No message type option (53).
    NoMessageType,
    /// A message type RFC 2131 does not define.
    UnknownMessageType(u8),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::TooShort => f.write_str("shorter than a DHCP message"),
            ParseError::NotAReply => f.write_str("not a BOOTREPLY"),
            ParseError::NoMagicCookie => f.write_str("no DHCP magic cookie"),
            ParseError::OptionTruncated { code } => {
                write!(f, "option {code} runs past the end of the message")
            }
            ParseError::OptionTooShort { code } => write!(f, "option {code} is too short"),
            ParseError::NoMessageType => f.write_str("no DHCP message type option"),
            ParseError::UnknownMessageType(t) => write!(f, "unknown DHCP message type {t}"),
        }
    }
}

impl core::error::Error for ParseError {}

impl Reply {
    /// Reads a server's reply from one UDP datagram.
    pub fn parse(m: &[u8]) -> Result<Reply, ParseError> {
        if m.len() < OPTIONS_AT {
            return Err(ParseError::TooShort);
        }
        // The fixed fields are all there: indexing below OPTIONS_AT cannot fail.
        let word = |at: usize| [m[at], m[at + 1], m[at + 2], m[at + 3]];
        if m[0] != BOOTREPLY {
            return Err(ParseError::NotAReply);
        }
        if word(236) != MAGIC_COOKIE {
            return Err(ParseError::NoMagicCookie);
        }
        let xid = u32::from_be_bytes(word(4));
        let your_ip = word(16);
        let client_mac = [m[28], m[29], m[30], m[31], m[32], m[33]];
        let mut reply = Reply {
            message_type: MessageType::Discover,
            xid,
            client_mac,
            your_ip,
            subnet_mask: None,
            router: None,
            dns_server: None,
            server_id: None,
            lease_time_s: None,
        };
        let mut message_type = None;
        let mut options = Reader::new(&m[OPTIONS_AT..]);
        // A code with no length byte after it ends the options, as END does.
        while let Some(code) = options.u8() {
            if code == option::PAD {
                continue;
            }
            if code == option::END {
                break;
            }
            let Some(len) = options.u8() else { break };
            let data = options
                .take(usize::from(len))
                .ok_or(ParseError::OptionTruncated { code })?;
            let short = ParseError::OptionTooShort { code };
            let address =
                || -> Result<[u8; 4], ParseError> { Reader::new(data).array().ok_or(short) };
            match code {
                option::MESSAGE_TYPE => message_type = Some(*data.first().ok_or(short)?),
                option::SUBNET_MASK => reply.subnet_mask = Some(address()?),
                option::ROUTER => reply.router = Some(address()?),
                option::DNS_SERVER => reply.dns_server = Some(address()?),
                option::LEASE_TIME => reply.lease_time_s = Some(u32::from_be_bytes(address()?)),
                option::SERVER_ID => reply.server_id = Some(address()?),
                _ => {}
            }
        }
        let code = message_type.ok_or(ParseError::NoMessageType)?;
        reply.message_type =
            MessageType::from_code(code).ok_or(ParseError::UnknownMessageType(code))?;
        Ok(reply)
    }
}

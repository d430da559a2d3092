//! CONNECT (3.1) and its answer, CONNACK (3.2).

use super::{
    field_len, write_field, write_fixed_header, DecodeError, EncodeError, PacketType, QoS,
};
use crate::bytes::{Reader, Writer};

/// The variable header's protocol name and level: "MQTT", 4 for 3.1.1.
const PROTOCOL: [u8; 7] = [0, 4, b'M', b'Q', b'T', b'T', 4];

/// Connect flags (3.1.2.3).
const USER_NAME: u8 = 0x80;
const PASSWORD: u8 = 0x40;
const WILL_RETAIN: u8 = 0x20;
const WILL_QOS_SHIFT: u8 = 3;
const WILL: u8 = 0x04;
const CLEAN_SESSION: u8 = 0x02;

/// A CONNECT packet: the first a client sends on a new connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Connect<'a> {
    /// The client identifier.
    pub client_id: &'a str,
    /// Keep-alive, seconds: the broker drops the client after one and a half of it without a
    /// packet; 0 turns it off.
    pub keep_alive_s: u16,
    /// Start a new session, dropping any the broker kept for this client id; `false` resumes
    /// it (subscriptions and queued QoS 1 and 2 messages survive a disconnection).
    pub clean_session: bool,
    /// What the broker publishes for the client if the connection ends without DISCONNECT.
    pub will: Option<Will<'a>>,
    /// The user name.
    pub user_name: Option<&'a str>,
    /// The password: only with a user name.
    pub password: Option<&'a [u8]>,
}

/// The last will of a [`Connect`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Will<'a> {
    /// The topic it is published on.
    pub topic: &'a str,
    /// Its payload.
    pub payload: &'a [u8],
    /// The QoS it is published with.
    pub qos: QoS,
    /// Whether the broker retains it.
    pub retain: bool,
}

impl Connect<'_> {
    /// Writes the packet at the start of `buf`; returns its length.
    pub fn encode(&self, buf: &mut [u8]) -> Result<usize, EncodeError> {
        if self.password.is_some() && self.user_name.is_none() {
            return Err(EncodeError::PasswordWithoutUserName);
        }
        let client_id = self.client_id.as_bytes();
        let user_name = self.user_name.map(str::as_bytes);
        let optional = |field: Option<&[u8]>| field.map_or(Ok(0), field_len);
        let mut body = PROTOCOL.len() + 1 + 2 + field_len(client_id)?;
        if let Some(will) = &self.will {
            body += field_len(will.topic.as_bytes())? + field_len(will.payload)?;
        }
        body += optional(user_name)? + optional(self.password)?;

        let mut flags = 0;
        if user_name.is_some() {
            flags |= USER_NAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if let Some(will) = &self.will {
            flags |= WILL | ((will.qos as u8) << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.clean_session {
            flags |= CLEAN_SESSION;
        }

        let mut w = Writer::new(buf);
        write_fixed_header(&mut w, (PacketType::Connect as u8) << 4, body)?;
        w.put(&PROTOCOL);
        w.u8(flags);
        w.u16(self.keep_alive_s);
        // The payload's fields, in the order the flags announce them.
        write_field(&mut w, client_id);
        if let Some(will) = &self.will {
            write_field(&mut w, will.topic.as_bytes());
            write_field(&mut w, will.payload);
        }
        if let Some(user_name) = user_name {
            write_field(&mut w, user_name);
        }
        if let Some(password) = self.password {
            write_field(&mut w, password);
        }
        Ok(w.finish()?)
    }
}

/// A CONNACK packet: the broker's answer to CONNECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConnAck {
    /// The broker kept a session for this client id (only when resuming one).
    pub session_present: bool,
    /// 0 accepted; 1 protocol version, 2 client identifier, 3 server unavailable, 4 user name
    /// or password, 5 not authorised: refused for that reason.
    pub return_code: u8,
}

impl ConnAck {
    /// The broker accepted the connection.
    pub fn accepted(&self) -> bool {
        self.return_code == 0
    }

    /// Reads a CONNACK's body (the bytes after its fixed header).
    pub fn decode(body: &[u8]) -> Result<ConnAck, DecodeError> {
        let mut r = Reader::new(body);
        let [flags, return_code] = r.array().ok_or(DecodeError::Truncated)?;
        Ok(ConnAck {
            session_present: flags & 0x01 != 0,
            return_code,
        })
    }
}

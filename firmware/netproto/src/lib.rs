//! The byte-level network protocols of Weir's board firmware, where the host can test them.
//!
//! A board whose Ethernet chip has its own TCP/IP stack (the W5500-EVB-Pico's) still has to
//! speak the protocols above it itself. This crate holds that part, as functions over byte
//! slices:
//!
//! * [`dhcp`]: DISCOVER and REQUEST messages; OFFER, ACK and NAK replies.
//! * [`dns`]: a recursive query for a name's A record; the first A record of the response.
//! * [`sntp`]: the client request; the server's transmit time as Unix milliseconds.
//! * [`mqtt`]: the MQTT 3.1.1 packets a client sends (CONNECT, PUBLISH, PUBACK, SUBSCRIBE,
//!   PINGREQ, DISCONNECT) and receives (CONNACK, PUBLISH, PUBACK, SUBACK, PINGRESP), and the
//!   fixed header's remaining length, which may arrive a byte at a time.
//!
//! No sockets, timers, retries or state machines: those stay with the board. No heap and no
//! `unsafe`. An encoder writes into the caller's buffer and returns how many bytes it wrote, or
//! a small error enum saying why it could not (the buffer is too small, a name or string is too
//! long). A parser takes a whole datagram or packet body and returns what it found, borrowing
//! from the input, or an error enum saying what was wrong with it; no input makes one panic.
#![no_std]
#![deny(unsafe_code, missing_docs)]

mod bytes;
pub mod dhcp;
pub mod dns;
pub mod mqtt;
pub mod sntp;

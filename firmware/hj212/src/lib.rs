//! HJ 212-2017, the data transmission standard of China's online pollution monitoring: the
//! packets a data logger sends an environment bureau's platform, and the platform's answers.
//!
//! A frame is `##`, the data segment's length in four digits, the data segment, its CRC-16 in
//! four hex digits, and `\r\n`:
//!
//! ```text
//! ##0101QN=20160801085857223;ST=32;CN=1062;PW=100000;MN=010000A8900016F000169DC0;Flag=5;CP=&&RtdInterval=30&&1C80\r\n
//! ```
//!
//! The data segment is `QN`, `ST`, `CN`, `PW`, `MN`, `Flag`, (`PNUM`, `PNO`), then
//! `CP=&&...&&` with the command's parameters or measured values ([`Cp`]).
//!
//! * [`Packet::decode`] checks a whole frame and borrows from it; [`frame_len`] cuts frames
//!   out of a byte stream.
//! * [`Packet::encode`] writes into the caller's buffer; [`CpBuilder`] writes the CP.
//! * [`crc16`] is the CRC of the standard's appendix A (not CRC-16/MODBUS).
//! * [`codes`] holds the factor codes Weir uses for flow, turbidity and sludge level.
//!
//! No heap, no `unsafe`, and no input makes the decoder panic. The crate follows HJ 212-2017;
//! HJ 212-2025 (in force from 2026-01-01) keeps the frame, the CRC and the Flag bits as far as
//! public descriptions show, with version code 2 ([`Flag::VERSION_2025`]).
//!
//! ```
//! use weir_hj212::{CommandCode, CpBuilder, DataFlag, DataTime, Decimal, Field, Flag, Header,
//!     Item, Packet, Qn, SystemCode, Value};
//!
//! let time = DataTime::new(2026, 3, 1, 8, 0, 0).unwrap();
//! let mut cp = CpBuilder::new();
//! cp.data_time(time)?;
//! cp.items(&[Item {
//!     code: "w00000",
//!     field: Field::Rtd,
//!     value: Value::Number(Decimal::from_f64(1.25, 2).unwrap()),
//!     flag: Some(DataFlag::Normal),
//! }])?;
//! let packet = Packet {
//!     header: Header {
//!         qn: Qn::new(time, 0),
//!         st: SystemCode::SURFACE_WATER_POLLUTION_SOURCE,
//!         cn: CommandCode::REAL_TIME_DATA,
//!         pw: "123456",
//!         mn: "010000A8900016F000169DC0",
//!         flag: Flag::new(Flag::VERSION_2017, false, true),
//!         split: None,
//!     },
//!     cp: cp.cp(),
//! };
//! let mut buf = [0u8; weir_hj212::MAX_FRAME_LEN];
//! let len = packet.encode(&mut buf).unwrap();
//! let back = Packet::decode(&buf[..len]).unwrap();
//! assert_eq!(back, packet);
//! assert!(back.answer_required());
//! assert_eq!(back.data_answer().header.cn, CommandCode::DATA_ANSWER);
//! # Ok::<(), weir_hj212::CpError>(())
//! ```
#![no_std]
#![deny(unsafe_code, missing_docs)]

mod builder;
pub mod codes;
mod cp;
mod crc;
mod decimal;
mod error;
mod frame;
mod header;
mod packet;
mod text;
mod time;

pub use builder::CpBuilder;
pub use cp::{Cp, DataFlag, Entries, Entry, Field, Group, GroupItems, Groups, Item, Items, Value};
pub use crc::crc16;
pub use decimal::Decimal;
pub use error::{CpError, CpProblem, DecodeError, EncodeError, FieldName, Problem};
pub use frame::{decode_frame, encode_frame, frame_len};
pub use header::{CommandCode, Flag, Header, Qn, Split, SystemCode};
pub use packet::{ExeRtn, Packet, QnRtn};
pub use time::DataTime;

/// The largest data segment, in bytes (HJ 212-2017 table 2).
pub const MAX_SEGMENT_LEN: usize = 1024;
/// What a frame adds to its data segment: `##`, four length digits, four CRC digits, `\r\n`.
pub const FRAME_OVERHEAD: usize = 12;
/// The largest frame, in bytes.
pub const MAX_FRAME_LEN: usize = MAX_SEGMENT_LEN + FRAME_OVERHEAD;
/// The largest `CP=&&...&&` field, counting `CP=&&` and `&&` (HJ 212-2017 table 3 counts each
/// field's name and `=` in its length).
pub const MAX_CP_LEN: usize = 950;
/// The largest CP data area, between `CP=&&` and `&&`.
pub const MAX_CP_DATA_LEN: usize = MAX_CP_LEN - 7;
/// The longest `PW` value.
pub const MAX_PW_LEN: usize = 6;
/// The longest `MN` value.
pub const MAX_MN_LEN: usize = 24;
/// The longest numeric value, sign and point included (type `N14.2`, 6.3.3.2.2).
pub const MAX_NUMBER_LEN: usize = 18;

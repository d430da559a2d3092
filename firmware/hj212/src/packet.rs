//! A whole packet: header and CP, decoded from a frame or encoded into one.

use core::fmt::{self, Write};

use crate::cp::Cp;
use crate::error::{DecodeError, EncodeError, FieldName, Problem};
use crate::frame::{decode_frame, seal, SEGMENT_AT};
use crate::header::{CommandCode, Flag, Header, Qn, Split, SystemCode};
use crate::text::{canonical_number, header_text_ok};
use crate::{
    FRAME_OVERHEAD, MAX_CP_DATA_LEN, MAX_FRAME_LEN, MAX_MN_LEN, MAX_PW_LEN, MAX_SEGMENT_LEN,
};

/// The header fields in the standard's order (HJ 212-2017 table 3), `CP` last.
const ORDER: [FieldName; 8] = [
    FieldName::Qn,
    FieldName::St,
    FieldName::Cn,
    FieldName::Pw,
    FieldName::Mn,
    FieldName::Flag,
    FieldName::Pnum,
    FieldName::Pno,
];

/// One HJ 212 packet: the data segment's header fields and its CP.
///
/// Decoding borrows from the frame; encoding writes into the caller's buffer. A decoded packet
/// encodes back to the same bytes, except that the CRC is written in upper case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Packet<'a> {
    /// `QN` to `PNO`.
    pub header: Header<'a>,
    /// The data area of `CP=&&...&&`.
    pub cp: Cp<'a>,
}

/// `QnRtn`, the request answer's code (HJ 212-2017 table 7), carried by 9011.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum QnRtn {
    /// 1: the request will be carried out.
    Ready,
    /// 2: the request is refused.
    Refused,
    /// 3: wrong `PW`.
    WrongPw,
    /// 4: wrong `MN`.
    WrongMn,
    /// 5: wrong `ST`.
    WrongSt,
    /// 6: wrong `Flag`.
    WrongFlag,
    /// 7: wrong `QN`.
    WrongQn,
    /// 8: wrong `CN`.
    WrongCn,
    /// 9: CRC error.
    WrongCrc,
    /// 100: unknown error.
    Unknown,
}

impl QnRtn {
    /// The CP data area that carries it.
    pub const fn cp(self) -> Cp<'static> {
        Cp::trusted(match self {
            QnRtn::Ready => "QnRtn=1",
            QnRtn::Refused => "QnRtn=2",
            QnRtn::WrongPw => "QnRtn=3",
            QnRtn::WrongMn => "QnRtn=4",
            QnRtn::WrongSt => "QnRtn=5",
            QnRtn::WrongFlag => "QnRtn=6",
            QnRtn::WrongQn => "QnRtn=7",
            QnRtn::WrongCn => "QnRtn=8",
            QnRtn::WrongCrc => "QnRtn=9",
            QnRtn::Unknown => "QnRtn=100",
        })
    }
}

/// `ExeRtn`, the execution result's code (HJ 212-2017 table 6), carried by 9012.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ExeRtn {
    /// 1: done.
    Success,
    /// 2: failed, reason unknown.
    Failed,
    /// 3: the request's conditions are wrong.
    BadCondition,
    /// 4: communication timed out.
    Timeout,
    /// 5: busy.
    Busy,
    /// 6: system fault.
    SystemFault,
    /// 100: no data.
    NoData,
}

impl ExeRtn {
    /// The CP data area that carries it.
    pub const fn cp(self) -> Cp<'static> {
        Cp::trusted(match self {
            ExeRtn::Success => "ExeRtn=1",
            ExeRtn::Failed => "ExeRtn=2",
            ExeRtn::BadCondition => "ExeRtn=3",
            ExeRtn::Timeout => "ExeRtn=4",
            ExeRtn::Busy => "ExeRtn=5",
            ExeRtn::SystemFault => "ExeRtn=6",
            ExeRtn::NoData => "ExeRtn=100",
        })
    }
}

impl<'a> Packet<'a> {
    /// Decodes one whole frame, from `##` to `\r\n`: length, CRC, fields in the standard's
    /// order, their sizes and forms, and the CP grammar. Never panics.
    ///
    /// Error positions are byte offsets in `frame`.
    pub fn decode(frame: &'a [u8]) -> Result<Self, DecodeError> {
        parse_segment(decode_frame(frame)?, SEGMENT_AT)
    }

    /// Decodes a data segment that is already out of its frame (length and CRC checked by
    /// the caller, or [`decode_frame`](crate::decode_frame)). Error positions are byte offsets
    /// in `segment`.
    pub fn decode_segment(segment: &'a str) -> Result<Self, DecodeError> {
        if segment.len() > MAX_SEGMENT_LEN {
            return Err(DecodeError::SegmentTooLong { len: segment.len() });
        }
        parse_segment(segment, 0)
    }

    /// Whether the sender asked for an answer (Flag bit `A`).
    pub fn answer_required(&self) -> bool {
        self.header.answer_required()
    }

    /// The data segment's length once encoded (without checking it).
    pub fn segment_len(&self) -> usize {
        let mut counter = Counter(0);
        // Counting cannot fail.
        let _ = self.write_segment(&mut counter);
        counter.0
    }

    /// Writes the frame into `out` and returns its length. Refuses a `PW` or `MN` the wire
    /// cannot carry, `PNUM`/`PNO` that disagree with the Flag, a segment over 1024 bytes and a
    /// buffer that is too small, without writing past `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, EncodeError> {
        self.check()?;
        let len = self.segment_len();
        if len > MAX_SEGMENT_LEN {
            return Err(EncodeError::SegmentTooLong { len });
        }
        let needed = len + FRAME_OVERHEAD;
        let Some(frame) = out.get_mut(..needed) else {
            return Err(EncodeError::BufferTooSmall { needed });
        };
        let mut writer = SliceWriter {
            buf: &mut frame[SEGMENT_AT..SEGMENT_AT + len],
            len: 0,
        };
        self.write_segment(&mut writer)
            .map_err(|_| EncodeError::BufferTooSmall { needed })?;
        seal(frame);
        Ok(needed)
    }

    /// The frame in a vector of the largest frame's capacity (1036 bytes).
    pub fn to_frame(&self) -> Result<heapless::Vec<u8, MAX_FRAME_LEN>, EncodeError> {
        let mut frame = heapless::Vec::new();
        // The capacity is the largest frame, so this cannot fail.
        let _ = frame.resize(MAX_FRAME_LEN, 0);
        let len = self.encode(&mut frame)?;
        frame.truncate(len);
        Ok(frame)
    }

    /// The data answer (9014) to this packet: same `QN`, `PW` and `MN`, `ST=91`, the same
    /// version with no answer asked, `CP=&&&&`. What a platform sends back for an upload whose
    /// Flag asked for an answer.
    pub fn data_answer(&self) -> Packet<'a> {
        self.answer(CommandCode::DATA_ANSWER, Cp::EMPTY)
    }

    /// The notification answer (9013) to this packet.
    pub fn notification_answer(&self) -> Packet<'a> {
        self.answer(CommandCode::NOTIFICATION_ANSWER, Cp::EMPTY)
    }

    /// The request answer (9011) to this request, carrying `QnRtn`.
    pub fn request_answer(&self, code: QnRtn) -> Packet<'a> {
        self.answer(CommandCode::REQUEST_ANSWER, code.cp())
    }

    /// The execution result (9012) of this request, carrying `ExeRtn`.
    pub fn execution_result(&self, code: ExeRtn) -> Packet<'a> {
        self.answer(CommandCode::EXECUTION_RESULT, code.cp())
    }

    fn answer(&self, cn: CommandCode, cp: Cp<'a>) -> Packet<'a> {
        Packet {
            header: Header {
                qn: self.header.qn,
                st: SystemCode::SYSTEM_INTERACTION,
                cn,
                pw: self.header.pw,
                mn: self.header.mn,
                flag: self
                    .header
                    .flag
                    .map(|f| Flag::from_bits(f.bits() & !(Flag::ANSWER | Flag::SPLIT))),
                split: None,
            },
            cp,
        }
    }

    /// What `encode` refuses before writing anything.
    fn check(&self) -> Result<(), EncodeError> {
        let field = |field, problem| Err(EncodeError::Field { field, problem });
        let h = &self.header;
        for (name, text, max) in [
            (FieldName::Pw, h.pw, MAX_PW_LEN),
            (FieldName::Mn, h.mn, MAX_MN_LEN),
        ] {
            if text.len() > max {
                return field(name, Problem::TooLong);
            }
            if !header_text_ok(text) {
                return field(name, Problem::Malformed);
            }
        }
        if h.split.is_some() != h.flag.is_some_and(Flag::split) {
            return field(FieldName::Pnum, Problem::Inconsistent);
        }
        if self.cp.as_str().len() > MAX_CP_DATA_LEN {
            return field(FieldName::Cp, Problem::TooLong);
        }
        Ok(())
    }

    fn write_segment(&self, w: &mut impl Write) -> fmt::Result {
        let h = &self.header;
        if let Some(qn) = h.qn {
            write!(w, "QN={qn};")?;
        }
        write!(w, "ST={};CN={};PW={};MN={};", h.st, h.cn, h.pw, h.mn)?;
        if let Some(flag) = h.flag {
            write!(w, "Flag={flag};")?;
        }
        if let Some(split) = h.split {
            write!(w, "PNUM={};PNO={};", split.total(), split.number())?;
        }
        write!(w, "CP=&&{}&&", self.cp.as_str())
    }
}

/// Parses a data segment; `base` is its offset in the frame, for error positions.
fn parse_segment(s: &str, base: usize) -> Result<Packet<'_>, DecodeError> {
    let field_error = |field, problem, at: usize| DecodeError::Field {
        field,
        problem,
        at: base + at,
    };
    let mut qn = None;
    let mut st = None;
    let mut cn = None;
    let mut pw = None;
    let mut mn = None;
    let mut flag = None;
    let mut pnum = None;
    let mut pno = None;
    let mut next_rank = 0;
    let mut pos = 0;
    while !s[pos..].starts_with("CP=") {
        let rest = &s[pos..];
        let Some(end) = rest.find(';') else {
            return Err(field_error(FieldName::Cp, Problem::Missing, s.len()));
        };
        let Some((key, value)) = rest[..end].split_once('=') else {
            return Err(DecodeError::UnknownField { at: base + pos });
        };
        let Some(rank) = ORDER.iter().position(|f| f.key() == key) else {
            return Err(DecodeError::UnknownField { at: base + pos });
        };
        let name = ORDER[rank];
        let value_at = pos + key.len() + 1;
        if rank < next_rank {
            return Err(field_error(name, Problem::OutOfOrder, value_at));
        }
        next_rank = rank + 1;
        let bad = |problem| field_error(name, problem, value_at);
        match name {
            FieldName::Qn => qn = Some(Qn::parse(value).ok_or_else(|| bad(Problem::Malformed))?),
            FieldName::St => {
                st = Some(SystemCode::new(value).ok_or_else(|| bad(Problem::Malformed))?)
            }
            FieldName::Cn => {
                let code = (value.len() == 4 && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| crate::time::digits(value.as_bytes()))
                    .and_then(CommandCode::new);
                cn = Some(code.ok_or_else(|| bad(Problem::Malformed))?);
            }
            FieldName::Pw | FieldName::Mn => {
                let max = if name == FieldName::Pw {
                    MAX_PW_LEN
                } else {
                    MAX_MN_LEN
                };
                if value.len() > max {
                    return Err(bad(Problem::TooLong));
                }
                if !header_text_ok(value) {
                    return Err(bad(Problem::Malformed));
                }
                if name == FieldName::Pw {
                    pw = Some(value);
                } else {
                    mn = Some(value);
                }
            }
            FieldName::Flag => {
                let bits = canonical_number(value, 3).and_then(|n| u8::try_from(n).ok());
                flag = Some(Flag::from_bits(
                    bits.ok_or_else(|| bad(Problem::Malformed))?,
                ));
            }
            FieldName::Pnum => pnum = Some(number(value).ok_or_else(|| bad(Problem::Malformed))?),
            FieldName::Pno => pno = Some(number(value).ok_or_else(|| bad(Problem::Malformed))?),
            // ORDER has no CP: the loop stops at it.
            FieldName::Cp => {}
        }
        pos += end + 1;
    }
    let cp_at = pos;
    let missing = |field| field_error(field, Problem::Missing, cp_at);
    let header = Header {
        qn,
        st: st.ok_or_else(|| missing(FieldName::St))?,
        cn: cn.ok_or_else(|| missing(FieldName::Cn))?,
        pw: pw.ok_or_else(|| missing(FieldName::Pw))?,
        mn: mn.ok_or_else(|| missing(FieldName::Mn))?,
        flag,
        split: match (pnum, pno) {
            (None, None) => None,
            (Some(_), None) => return Err(missing(FieldName::Pno)),
            (None, Some(_)) => return Err(missing(FieldName::Pnum)),
            (Some(total), Some(number)) => Some(
                Split::new(total, number)
                    .ok_or_else(|| field_error(FieldName::Pno, Problem::Inconsistent, cp_at))?,
            ),
        },
    };
    if header.split.is_some() != header.flag.is_some_and(Flag::split) {
        let field = if header.split.is_some() {
            FieldName::Flag
        } else {
            FieldName::Pnum
        };
        let problem = if header.split.is_some() {
            Problem::Inconsistent
        } else {
            Problem::Missing
        };
        return Err(field_error(field, problem, cp_at));
    }
    let cp_field = &s[cp_at..];
    if cp_field.len() > MAX_CP_DATA_LEN + 7 {
        return Err(DecodeError::Cp {
            problem: crate::CpProblem::TooLong,
            at: base + cp_at,
        });
    }
    let data = cp_field
        .strip_prefix("CP=&&")
        .and_then(|d| d.strip_suffix("&&"))
        .ok_or(DecodeError::Cp {
            problem: crate::CpProblem::Unbracketed,
            at: base + cp_at,
        })?;
    let cp = Cp::parse(data).map_err(|e| DecodeError::Cp {
        problem: e.problem,
        at: base + cp_at + 5 + e.at,
    })?;
    Ok(Packet { header, cp })
}

/// `PNUM` or `PNO`: 1-9999 without leading zeros.
fn number(text: &str) -> Option<u16> {
    canonical_number(text, 4).filter(|&n| n > 0)
}

/// Counts what would be written.
struct Counter(usize);

impl Write for Counter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0 += s.len();
        Ok(())
    }
}

/// Writes into a slice, failing instead of writing past it.
struct SliceWriter<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl Write for SliceWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len.checked_add(s.len()).ok_or(fmt::Error)?;
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

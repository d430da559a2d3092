//! The fields before `CP`: `QN`, `ST`, `CN`, `PW`, `MN`, `Flag`, `PNUM`, `PNO`.

use core::fmt;

use crate::time::{digits, DataTime};

/// `QN`, the request number: a millisecond time stamp `YYYYMMDDhhmmsszzz` that names one
/// exchange. An answer carries the QN of what it answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Qn {
    time: DataTime,
    millis: u16,
}

impl Qn {
    /// A QN from a time and milliseconds (0-999).
    pub const fn new(time: DataTime, millis: u16) -> Option<Self> {
        if millis > 999 {
            return None;
        }
        Some(Qn { time, millis })
    }

    /// Reads exactly 17 digits `YYYYMMDDhhmmsszzz`.
    pub fn parse(text: &str) -> Option<Self> {
        if text.len() != 17 || !text.is_char_boundary(14) {
            return None;
        }
        let (time, millis) = text.split_at(14);
        let millis = millis.as_bytes();
        if !millis.iter().all(u8::is_ascii_digit) {
            return None;
        }
        Qn::new(DataTime::parse(time)?, digits(millis))
    }

    /// The time to the second.
    pub const fn time(&self) -> DataTime {
        self.time
    }

    /// The milliseconds, 0-999.
    pub const fn millis(&self) -> u16 {
        self.millis
    }
}

impl fmt::Display for Qn {
    /// `YYYYMMDDhhmmsszzz`, as on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:03}", self.time, self.millis)
    }
}

/// `ST`, the system code: two characters `0`-`9`/`A`-`Z` (HJ 212-2017 table 5, from
/// GB/T 16706-1996).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SystemCode([u8; 2]);

impl SystemCode {
    /// 21, surface water quality monitoring (地表水质量监测).
    pub const SURFACE_WATER_QUALITY: SystemCode = SystemCode(*b"21");
    /// 32, surface water pollution source (地表水体环境污染源): a discharge to a river or
    /// ditch, such as a village treatment terminal's outlet. What Weir sends.
    pub const SURFACE_WATER_POLLUTION_SOURCE: SystemCode = SystemCode(*b"32");
    /// 52, wastewater discharge process monitoring (污水排放过程监控), for the `e` process
    /// codes of table B.5.
    pub const WASTEWATER_PROCESS: SystemCode = SystemCode(*b"52");
    /// 91, system interaction (系统交互): the answers 9011-9014.
    pub const SYSTEM_INTERACTION: SystemCode = SystemCode(*b"91");

    /// A system code from its two characters, or `None` if they are not `0`-`9`/`A`-`Z`.
    pub fn new(code: &str) -> Option<Self> {
        let b: [u8; 2] = code.as_bytes().try_into().ok()?;
        b.iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
            .then_some(SystemCode(b))
    }

    /// The two characters.
    pub fn as_str(&self) -> &str {
        // Both bytes are ASCII (checked on construction).
        core::str::from_utf8(&self.0).unwrap_or("??")
    }
}

impl fmt::Display for SystemCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `CN`, the command code: four digits (HJ 212-2017 table 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandCode(u16);

impl CommandCode {
    /// 1011: platform asks for the field unit's clock / the unit uploads it.
    pub const FIELD_TIME: CommandCode = CommandCode(1011);
    /// 1012: platform sets the field unit's clock.
    pub const SET_FIELD_TIME: CommandCode = CommandCode(1012);
    /// 1013: field unit asks the platform for the time (a notification).
    pub const TIME_CALIBRATION_REQUEST: CommandCode = CommandCode(1013);
    /// 1061: real-time data interval, asked or uploaded.
    pub const REAL_TIME_INTERVAL: CommandCode = CommandCode(1061);
    /// 1062: platform sets the real-time data interval (`RtdInterval`, 30-3600 s).
    pub const SET_REAL_TIME_INTERVAL: CommandCode = CommandCode(1062);
    /// 1063: minute data interval, asked or uploaded.
    pub const MINUTE_INTERVAL: CommandCode = CommandCode(1063);
    /// 1064: platform sets the minute data interval (`MinInterval`).
    pub const SET_MINUTE_INTERVAL: CommandCode = CommandCode(1064);
    /// 2011: real-time data (`-Rtd`), uploaded by the field unit or asked for by the platform.
    pub const REAL_TIME_DATA: CommandCode = CommandCode(2011);
    /// 2012: platform stops real-time uploads (a notification).
    pub const STOP_REAL_TIME_DATA: CommandCode = CommandCode(2012);
    /// 2021: treatment equipment running state (`SBxxx-RS`).
    pub const RUNNING_STATE: CommandCode = CommandCode(2021);
    /// 2031: daily data (`-Cou/-Min/-Avg/-Max`), uploaded or asked for.
    pub const DAY_DATA: CommandCode = CommandCode(2031);
    /// 2041: daily running time of treatment equipment (`SBxxx-RT`).
    pub const DAY_RUNNING_TIME: CommandCode = CommandCode(2041);
    /// 2051: minute data (`-Cou/-Min/-Avg/-Max`), uploaded or asked for.
    pub const MINUTE_DATA: CommandCode = CommandCode(2051);
    /// 2061: hourly data (`-Cou/-Min/-Avg/-Max`), uploaded or asked for.
    pub const HOUR_DATA: CommandCode = CommandCode(2061);
    /// 2081: the data logger's start-up time (`RestartTime`).
    pub const RESTART_TIME: CommandCode = CommandCode(2081);
    /// 9011: request answer (`QnRtn`), field unit to platform: the request is accepted or why not.
    pub const REQUEST_ANSWER: CommandCode = CommandCode(9011);
    /// 9012: execution result (`ExeRtn`), field unit to platform.
    pub const EXECUTION_RESULT: CommandCode = CommandCode(9012);
    /// 9013: notification answer, either way.
    pub const NOTIFICATION_ANSWER: CommandCode = CommandCode(9013);
    /// 9014: data answer, either way: the platform's receipt for an upload whose Flag asked
    /// for one.
    pub const DATA_ANSWER: CommandCode = CommandCode(9014);

    /// A command code, or `None` above 9999.
    pub const fn new(code: u16) -> Option<Self> {
        if code > 9999 {
            None
        } else {
            Some(CommandCode(code))
        }
    }

    /// The number.
    pub const fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CommandCode {
    /// Four digits, as on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}", self.0)
    }
}

/// `Flag`: `V5 V4 V3 V2 V1 V0 D A`, a number 0-255 on the wire.
///
/// `A` (bit 0): the receiver must answer. `D` (bit 1): the packet carries `PNUM` and `PNO`
/// (a split message). `V5..V0` (bits 2-7): the standard's version, 0 for HJ/T 212-2005 and 1
/// for HJ 212-2017. `Flag=5` is a 2017 packet that wants an answer, `Flag=4` one that does not.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Flag(u8);

impl Flag {
    /// Bit `A`: the packet must be answered.
    pub const ANSWER: u8 = 0b0000_0001;
    /// Bit `D`: the packet is one of a split message and carries `PNUM` and `PNO`.
    pub const SPLIT: u8 = 0b0000_0010;
    /// Version code of HJ/T 212-2005.
    pub const VERSION_2005: u8 = 0;
    /// Version code of HJ 212-2017.
    pub const VERSION_2017: u8 = 1;
    /// Version code that HJ 212-2025 is reported to use (section 6.3.3 of that standard, as
    /// quoted by a third-party implementation; not checked against the text).
    pub const VERSION_2025: u8 = 2;

    /// A flag from its version (0-63) and its two bits; `None` if the version is over 63.
    pub const fn new(version: u8, split: bool, answer: bool) -> Option<Self> {
        if version > 63 {
            return None;
        }
        let mut bits = version << 2;
        if split {
            bits |= Self::SPLIT;
        }
        if answer {
            bits |= Self::ANSWER;
        }
        Some(Flag(bits))
    }

    /// A flag from its wire value.
    pub const fn from_bits(bits: u8) -> Self {
        Flag(bits)
    }

    /// The wire value.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// The version code, bits 2-7.
    pub const fn version(self) -> u8 {
        self.0 >> 2
    }

    /// Bit `D`: `PNUM` and `PNO` follow.
    pub const fn split(self) -> bool {
        self.0 & Self::SPLIT != 0
    }

    /// Bit `A`: the receiver must answer.
    pub const fn answer_required(self) -> bool {
        self.0 & Self::ANSWER != 0
    }
}

impl fmt::Display for Flag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// `PNUM` and `PNO` of a split message: packet `number` of `total`, both 1-9999.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Split {
    total: u16,
    number: u16,
}

impl Split {
    /// Packet `number` of `total`; `None` unless `1 <= number <= total <= 9999`.
    pub const fn new(total: u16, number: u16) -> Option<Self> {
        if number == 0 || number > total || total > 9999 {
            return None;
        }
        Some(Split { total, number })
    }

    /// `PNUM`: how many packets the message has.
    pub const fn total(&self) -> u16 {
        self.total
    }

    /// `PNO`: which one this is, from 1.
    pub const fn number(&self) -> u16 {
        self.number
    }
}

/// The data segment's fields before `CP`.
///
/// `pw` and `mn` are checked when encoding: 1-6 and 1-24 characters, printable ASCII other
/// than space and `;` `,` `=` `&`. The standard describes `MN` as 24 hexadecimal digits (an
/// EPC-96 code); platforms issue other forms too, so any such characters are accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// `QN`. Absent in HJ/T 212-2005 frames and in the uploads of some data loggers.
    pub qn: Option<Qn>,
    /// `ST`.
    pub st: SystemCode,
    /// `CN`.
    pub cn: CommandCode,
    /// `PW`, the access password the platform issued.
    pub pw: &'a str,
    /// `MN`, the unique identifier the platform knows the device by.
    pub mn: &'a str,
    /// `Flag`. Absent in HJ/T 212-2005 frames.
    pub flag: Option<Flag>,
    /// `PNUM` and `PNO`, present exactly when the flag's split bit is set.
    pub split: Option<Split>,
}

impl Header<'_> {
    /// Whether the sender asked for an answer (Flag bit `A`).
    pub fn answer_required(&self) -> bool {
        self.flag.is_some_and(Flag::answer_required)
    }
}

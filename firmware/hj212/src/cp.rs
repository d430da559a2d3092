//! `CP=&&...&&`: the command parameters and measured values.
//!
//! The data area is a list of groups separated by `;`, each a list of `key=value` entries
//! separated by `,` (HJ 212-2017 6.3.3.1). A key is a plain name (`DataTime`, `RtdInterval`,
//! `QnRtn`) or `code-field`, a monitoring factor's code and what the value is of it
//! (`w01018-Rtd`, `w00000-Cou`, `w01018-Flag`). One group holds one factor's values and its
//! data flag: `w00000-Cou=10.5,w00000-Min=16.4,w00000-Avg=17.5,w00000-Max=20.1,w00000-Flag=N`.

use core::fmt;
use core::str::Split;

use crate::decimal::Decimal;
use crate::error::{CpError, CpProblem};
use crate::text::{is_name, is_value};
use crate::time::DataTime;
use crate::MAX_CP_DATA_LEN;

/// What a value is of: the part after `-` in `w01018-Rtd`.
///
/// Compares by name, so `Field::Other("Rtd")` equals `Field::Rtd`.
#[derive(Clone, Copy, Debug, Eq, Hash)]
pub enum Field<'a> {
    /// `Rtd`: a real-time value (command 2011).
    Rtd,
    /// `Avg`: the average over a minute, hour or day period (2051, 2061, 2031).
    Avg,
    /// `Min`: the period's minimum.
    Min,
    /// `Max`: the period's maximum.
    Max,
    /// `Cou`: the period's cumulative amount (for flow `w00000`, m³ discharged in the period).
    Cou,
    /// `ZsRtd`: real-time value converted to a reference condition.
    ZsRtd,
    /// `ZsAvg`: converted period average.
    ZsAvg,
    /// `ZsMin`: converted period minimum.
    ZsMin,
    /// `ZsMax`: converted period maximum.
    ZsMax,
    /// `SampleTime`: when the sample behind a real-time value was taken, `YYYYMMDDhhmmss`.
    SampleTime,
    /// `EFlag`: the instrument's own extra flag, up to 4 characters.
    EFlag,
    /// Any other field (`RS`, `RT`, `Info`, `SN`, `Data`, ...); never `Flag`, which is
    /// [`Item::flag`].
    Other(&'a str),
}

impl<'a> Field<'a> {
    /// The field named `name`: a known variant, or [`Field::Other`].
    pub fn parse(name: &'a str) -> Self {
        match name {
            "Rtd" => Field::Rtd,
            "Avg" => Field::Avg,
            "Min" => Field::Min,
            "Max" => Field::Max,
            "Cou" => Field::Cou,
            "ZsRtd" => Field::ZsRtd,
            "ZsAvg" => Field::ZsAvg,
            "ZsMin" => Field::ZsMin,
            "ZsMax" => Field::ZsMax,
            "SampleTime" => Field::SampleTime,
            "EFlag" => Field::EFlag,
            other => Field::Other(other),
        }
    }

    /// The name on the wire.
    pub fn as_str(&self) -> &'a str {
        match self {
            Field::Rtd => "Rtd",
            Field::Avg => "Avg",
            Field::Min => "Min",
            Field::Max => "Max",
            Field::Cou => "Cou",
            Field::ZsRtd => "ZsRtd",
            Field::ZsAvg => "ZsAvg",
            Field::ZsMin => "ZsMin",
            Field::ZsMax => "ZsMax",
            Field::SampleTime => "SampleTime",
            Field::EFlag => "EFlag",
            Field::Other(name) => name,
        }
    }

    /// Whether its value must be a decimal number: `Rtd`, `Avg`, `Min`, `Max`, `Cou` and the
    /// `Zs` fields. Their values decode as [`Value::Number`], others as [`Value::Text`].
    pub fn is_numeric(&self) -> bool {
        matches!(
            Field::parse(self.as_str()),
            Field::Rtd
                | Field::Avg
                | Field::Min
                | Field::Max
                | Field::Cou
                | Field::ZsRtd
                | Field::ZsAvg
                | Field::ZsMin
                | Field::ZsMax
        )
    }
}

impl PartialEq for Field<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Display for Field<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A data flag (`xxxxxx-Flag`, HJ 212-2017 table 8): the state of the instrument behind a
/// value. One character `A`-`Z` or `0`-`9`; the table may be extended, so others are kept as
/// [`DataFlag::Other`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DataFlag {
    /// `N`: instrument working normally.
    Normal,
    /// `F`: instrument stopped.
    Stopped,
    /// `M`: data taken during maintenance.
    Maintenance,
    /// `S`: a value set by hand.
    Manual,
    /// `D`: instrument fault.
    Fault,
    /// `C`: instrument calibrating.
    Calibration,
    /// `T`: sample above the instrument's measuring range.
    OverRange,
    /// `B`: instrument not communicating with the data logger.
    CommunicationFault,
    /// Another letter or digit.
    Other(u8),
}

impl DataFlag {
    /// The flag for a character, or `None` unless it is `A`-`Z` or `0`-`9`.
    pub const fn from_char(c: u8) -> Option<Self> {
        Some(match c {
            b'N' => DataFlag::Normal,
            b'F' => DataFlag::Stopped,
            b'M' => DataFlag::Maintenance,
            b'S' => DataFlag::Manual,
            b'D' => DataFlag::Fault,
            b'C' => DataFlag::Calibration,
            b'T' => DataFlag::OverRange,
            b'B' => DataFlag::CommunicationFault,
            b'A'..=b'Z' | b'0'..=b'9' => DataFlag::Other(c),
            _ => return None,
        })
    }

    /// The character on the wire (for `Other`, whatever it holds; the builder checks it).
    pub const fn as_char(self) -> u8 {
        match self {
            DataFlag::Normal => b'N',
            DataFlag::Stopped => b'F',
            DataFlag::Maintenance => b'M',
            DataFlag::Manual => b'S',
            DataFlag::Fault => b'D',
            DataFlag::Calibration => b'C',
            DataFlag::OverRange => b'T',
            DataFlag::CommunicationFault => b'B',
            DataFlag::Other(c) => c,
        }
    }
}

/// A value in the CP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Value<'a> {
    /// A decimal number, as the numeric fields carry.
    Number(Decimal),
    /// Text: times, codes, flags, information strings.
    Text(&'a str),
}

impl fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(n) => n.fmt(f),
            Value::Text(t) => f.write_str(t),
        }
    }
}

/// One measured value: a factor's code, what the value is of, the value, and the data flag
/// of its group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Item<'a> {
    /// The monitoring factor (`w00000`, `w01018`, `e71001`, ...).
    pub code: &'a str,
    /// What the value is of (`Rtd`, `Avg`, ...).
    pub field: Field<'a>,
    /// The value.
    pub value: Value<'a>,
    /// The group's `code-Flag`, if it has one.
    pub flag: Option<DataFlag>,
}

/// One `key=value` entry of the CP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Entry<'a> {
    /// The key (`DataTime`, `w01018-Rtd`).
    pub key: &'a str,
    /// The value as written.
    pub value: &'a str,
}

impl<'a> Entry<'a> {
    /// `(code, field)` of a `code-field` key, `None` for a plain key.
    pub fn code_field(&self) -> Option<(&'a str, &'a str)> {
        self.key.split_once('-')
    }
}

/// A validated CP data area: the text between `CP=&&` and `&&`, borrowed.
///
/// Made by [`Cp::parse`], by [`Packet::decode`](crate::Packet::decode) or by a
/// [`CpBuilder`](crate::CpBuilder); whatever it holds decodes again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Cp<'a> {
    data: &'a str,
}

impl<'a> Cp<'a> {
    /// The empty data area, `CP=&&&&`, which the answers 9013 and 9014 carry.
    pub const EMPTY: Cp<'static> = Cp { data: "" };

    /// Checks a data area (without `CP=&&` and `&&`).
    pub fn parse(data: &'a str) -> Result<Self, CpError> {
        validate(data)?;
        Ok(Cp { data })
    }

    /// A data area the crate wrote itself and knows to be valid.
    pub(crate) const fn trusted(data: &'a str) -> Self {
        Cp { data }
    }

    /// The text between `CP=&&` and `&&`.
    pub fn as_str(&self) -> &'a str {
        self.data
    }

    /// Whether it is `CP=&&&&`.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The groups, in order.
    pub fn groups(&self) -> Groups<'a> {
        Groups {
            parts: (!self.data.is_empty()).then(|| self.data.split(';')),
        }
    }

    /// Every entry, in order.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            parts: (!self.data.is_empty()).then(|| self.data.split([';', ','])),
        }
    }

    /// The value of `key` (`"DataTime"`, `"QnRtn"`, `"w01018-Rtd"`).
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.entries().find(|e| e.key == key).map(|e| e.value)
    }

    /// `DataTime`, if present.
    pub fn data_time(&self) -> Option<DataTime> {
        self.get("DataTime").and_then(DataTime::parse)
    }

    /// Every measured value (`code-field` entries other than `-Flag`), each with its group's
    /// data flag.
    pub fn items(&self) -> Items<'a> {
        Items {
            groups: self.groups(),
            current: None,
        }
    }
}

/// A `;`-separated group of the CP.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Group<'a> {
    text: &'a str,
}

impl<'a> Group<'a> {
    /// The group's text.
    pub fn as_str(&self) -> &'a str {
        self.text
    }

    /// Its entries, in order.
    pub fn entries(&self) -> Entries<'a> {
        Entries {
            parts: Some(self.text.split([';', ','])),
        }
    }

    /// The data flag of `code` in this group (`code-Flag`).
    pub fn flag(&self, code: &str) -> Option<DataFlag> {
        self.entries()
            .find(|e| e.code_field() == Some((code, "Flag")))
            .and_then(|e| match e.value.as_bytes() {
                [c] => DataFlag::from_char(*c),
                _ => None,
            })
    }

    /// Its measured values, each with its data flag.
    pub fn items(&self) -> GroupItems<'a> {
        GroupItems {
            group: *self,
            entries: self.entries(),
        }
    }
}

/// Iterator over the groups of a CP.
#[derive(Clone, Debug)]
pub struct Groups<'a> {
    parts: Option<Split<'a, char>>,
}

impl<'a> Iterator for Groups<'a> {
    type Item = Group<'a>;
    fn next(&mut self) -> Option<Group<'a>> {
        self.parts.as_mut()?.next().map(|text| Group { text })
    }
}

/// Iterator over the entries of a CP or a group.
#[derive(Clone, Debug)]
pub struct Entries<'a> {
    parts: Option<Split<'a, [char; 2]>>,
}

impl<'a> Iterator for Entries<'a> {
    type Item = Entry<'a>;
    fn next(&mut self) -> Option<Entry<'a>> {
        let part = self.parts.as_mut()?.next()?;
        // Validated data has '=' in every entry; anything else would read as an empty value.
        let (key, value) = part.split_once('=').unwrap_or((part, ""));
        Some(Entry { key, value })
    }
}

/// Iterator over the measured values of a group.
#[derive(Clone, Debug)]
pub struct GroupItems<'a> {
    group: Group<'a>,
    entries: Entries<'a>,
}

impl<'a> Iterator for GroupItems<'a> {
    type Item = Item<'a>;
    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            let entry = self.entries.next()?;
            let Some((code, field)) = entry.code_field() else {
                continue;
            };
            if field == "Flag" {
                continue;
            }
            let field = Field::parse(field);
            let value = match field.is_numeric().then(|| Decimal::parse(entry.value)) {
                Some(Some(number)) => Value::Number(number),
                _ => Value::Text(entry.value),
            };
            return Some(Item {
                code,
                field,
                value,
                flag: self.group.flag(code),
            });
        }
    }
}

/// Iterator over the measured values of a CP.
#[derive(Clone, Debug)]
pub struct Items<'a> {
    groups: Groups<'a>,
    current: Option<GroupItems<'a>>,
}

impl<'a> Iterator for Items<'a> {
    type Item = Item<'a>;
    fn next(&mut self) -> Option<Item<'a>> {
        loop {
            if let Some(item) = self.current.as_mut().and_then(Iterator::next) {
                return Some(item);
            }
            self.current = Some(self.groups.next()?.items());
        }
    }
}

/// Checks the grammar and limits of a data area; positions are offsets into it.
fn validate(data: &str) -> Result<(), CpError> {
    let fail = |problem, at| Err(CpError { problem, at });
    if data.len() > MAX_CP_DATA_LEN {
        return fail(CpProblem::TooLong, MAX_CP_DATA_LEN);
    }
    if data.is_empty() {
        return Ok(());
    }
    let mut at = 0;
    for (index, entry) in data.split([';', ',']).enumerate() {
        check_entry(entry, at)?;
        // No key twice in one CP: entries before this one, compared by key.
        let key = entry.split_once('=').map_or(entry, |(k, _)| k);
        if data
            .split([';', ','])
            .take(index)
            .any(|earlier| earlier.split_once('=').map_or(earlier, |(k, _)| k) == key)
        {
            return fail(CpProblem::RepeatedKey, at);
        }
        at += entry.len() + 1;
    }
    Ok(())
}

/// Checks one `key=value` entry that starts at offset `at`.
fn check_entry(entry: &str, at: usize) -> Result<(), CpError> {
    let fail = |problem, at| Err(CpError { problem, at });
    if entry.is_empty() {
        return fail(CpProblem::EmptyEntry, at);
    }
    let Some((key, value)) = entry.split_once('=') else {
        return fail(CpProblem::NoEquals, at);
    };
    let value_at = at + key.len() + 1;
    let field = match key.split_once('-') {
        None if is_name(key) => None,
        Some((code, field)) if is_name(code) && is_name(field) => Some(field),
        _ => return fail(CpProblem::BadKey, at),
    };
    if !is_value(value) {
        return fail(CpProblem::BadValue, value_at);
    }
    match field {
        None if key == "DataTime" && DataTime::parse(value).is_none() => {
            fail(CpProblem::BadDataTime, value_at)
        }
        Some("Flag") if !matches!(value.as_bytes(), [c] if DataFlag::from_char(*c).is_some()) => {
            fail(CpProblem::BadFlag, value_at)
        }
        Some(field) if Field::parse(field).is_numeric() && Decimal::parse(value).is_none() => {
            fail(CpProblem::BadNumber, value_at)
        }
        _ => Ok(()),
    }
}

//! Writing a CP data area.

use core::fmt::Write;

use crate::cp::{Cp, DataFlag, Field, Item, Value};
use crate::error::{CpError, CpProblem};
use crate::text::{is_name, is_value};
use crate::time::DataTime;
use crate::MAX_CP_DATA_LEN;

/// Writes a CP data area into a fixed buffer of [`MAX_CP_DATA_LEN`] bytes, checking each
/// addition: what [`CpBuilder::cp`] returns always decodes.
///
/// A failed call leaves the builder as it was before it.
///
/// ```
/// use weir_hj212::{CpBuilder, DataFlag, DataTime, Decimal, Field, Value};
///
/// let mut cp = CpBuilder::new();
/// cp.data_time(DataTime::new(2016, 8, 1, 8, 40, 0).unwrap())?;
/// cp.group(
///     "w00000",
///     &[
///         (Field::Cou, Value::Number(Decimal::new(105, 1).unwrap())),
///         (Field::Avg, Value::Number(Decimal::new(175, 1).unwrap())),
///     ],
///     Some(DataFlag::Normal),
/// )?;
/// assert_eq!(
///     cp.cp().as_str(),
///     "DataTime=20160801084000;w00000-Cou=10.5,w00000-Avg=17.5,w00000-Flag=N"
/// );
/// # Ok::<(), weir_hj212::CpError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct CpBuilder {
    data: heapless::String<MAX_CP_DATA_LEN>,
}

impl CpBuilder {
    /// An empty data area.
    pub const fn new() -> Self {
        CpBuilder {
            data: heapless::String::new(),
        }
    }

    /// Empties it, to build another.
    pub fn clear(&mut self) {
        self.data.clear();
    }

    /// What has been written so far.
    pub fn cp(&self) -> Cp<'_> {
        Cp::trusted(self.data.as_str())
    }

    /// Adds `DataTime=YYYYMMDDhhmmss` as a group of its own.
    pub fn data_time(&mut self, time: DataTime) -> Result<&mut Self, CpError> {
        self.checked(|w| write!(w, "DataTime={time}"))
    }

    /// Adds a plain `key=value` as a group of its own (`RtdInterval=30`, `QnRtn=1`).
    pub fn param(&mut self, key: &str, value: Value<'_>) -> Result<&mut Self, CpError> {
        if key.contains('-') || !is_name(key) {
            return Err(self.error(CpProblem::BadKey));
        }
        self.check_values([&value].into_iter())?;
        self.checked(|w| write!(w, "{key}={value}"))
    }

    /// Adds one factor's group: `code-field=value` for each value, then `code-Flag=F` if
    /// there is a flag.
    pub fn group(
        &mut self,
        code: &str,
        values: &[(Field<'_>, Value<'_>)],
        flag: Option<DataFlag>,
    ) -> Result<&mut Self, CpError> {
        if values.is_empty() && flag.is_none() {
            return Err(self.error(CpProblem::EmptyEntry));
        }
        self.check_code_and_fields(code, values.iter().map(|(field, _)| field))?;
        self.check_values(values.iter().map(|(_, value)| value))?;
        self.checked(|w| write_group(w, code, values.iter().copied(), flag))
    }

    /// Adds measured values: consecutive items with the same code and flag share a group,
    /// as the standard's examples write them.
    pub fn items(&mut self, items: &[Item<'_>]) -> Result<&mut Self, CpError> {
        if items.is_empty() {
            return Ok(self);
        }
        for item in items {
            self.check_code_and_fields(item.code, [&item.field].into_iter())?;
            self.check_values([&item.value].into_iter())?;
        }
        self.checked(|w| {
            let mut rest = items;
            let mut first = true;
            while let Some(head) = rest.first() {
                let run = rest
                    .iter()
                    .take_while(|i| i.code == head.code && i.flag == head.flag)
                    .count();
                let (group, tail) = rest.split_at(run);
                if !first {
                    w.write_char(';')?;
                }
                first = false;
                write_group(
                    w,
                    head.code,
                    group.iter().map(|i| (i.field, i.value)),
                    head.flag,
                )?;
                rest = tail;
            }
            Ok(())
        })
    }

    /// Refuses a code or field name the wire cannot carry, and a value field named `Flag`
    /// (the group's flag goes in `flag`).
    fn check_code_and_fields<'f>(
        &self,
        code: &str,
        mut fields: impl Iterator<Item = &'f Field<'f>>,
    ) -> Result<(), CpError> {
        if !is_name(code) || fields.any(|f| !is_name(f.as_str()) || f.as_str() == "Flag") {
            return Err(self.error(CpProblem::BadKey));
        }
        Ok(())
    }

    /// Refuses text with a separator, which would change the CP's structure rather than fail
    /// to parse.
    fn check_values<'v>(
        &self,
        mut values: impl Iterator<Item = &'v Value<'v>>,
    ) -> Result<(), CpError> {
        if values.any(|v| matches!(v, Value::Text(t) if !is_value(t))) {
            return Err(self.error(CpProblem::BadValue));
        }
        Ok(())
    }

    fn error(&self, problem: CpProblem) -> CpError {
        CpError {
            problem,
            at: self.data.len(),
        }
    }

    /// Writes one more group with `write` (after a `;` if needed), then checks the whole data
    /// area; on any failure puts the builder back as it was.
    fn checked(
        &mut self,
        write: impl FnOnce(&mut heapless::String<MAX_CP_DATA_LEN>) -> core::fmt::Result,
    ) -> Result<&mut Self, CpError> {
        let before = self.data.len();
        let written = (before == 0 || self.data.push(';').is_ok()) && write(&mut self.data).is_ok();
        let result = if written {
            Cp::parse(self.data.as_str()).map(|_| ())
        } else {
            Err(CpError {
                problem: CpProblem::TooLong,
                at: before,
            })
        };
        match result {
            Ok(()) => Ok(self),
            Err(error) => {
                self.data.truncate(before);
                Err(error)
            }
        }
    }
}

fn write_group<'v>(
    w: &mut impl Write,
    code: &str,
    values: impl Iterator<Item = (Field<'v>, Value<'v>)>,
    flag: Option<DataFlag>,
) -> core::fmt::Result {
    let mut first = true;
    for (field, value) in values {
        if !first {
            w.write_char(',')?;
        }
        first = false;
        write!(w, "{code}-{field}={value}")?;
    }
    if let Some(flag) = flag {
        if !first {
            w.write_char(',')?;
        }
        write!(w, "{code}-Flag={}", char::from(flag.as_char()))?;
    }
    Ok(())
}

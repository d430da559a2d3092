//! `YYYYMMDDhhmmss`, the standard's time stamp (`DataTime`, and the first 14 digits of `QN`).
//!
//! The standard does not name a time zone; platforms in China read it as Beijing time
//! (UTC+8). Converting is the caller's part.

use core::fmt;

/// A calendar date and time of day to the second, as `DataTime` carries it.
///
/// Always valid: month 1-12, a day that exists in that month (leap years counted), hour 0-23,
/// minute and second 0-59. Ordered by time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DataTime {
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

impl DataTime {
    /// A time, or `None` if it does not exist (or the year has more than four digits).
    pub const fn new(
        year: u16,
        month: u8,
        day: u8,
        hour: u8,
        minute: u8,
        second: u8,
    ) -> Option<Self> {
        if year > 9999
            || month == 0
            || month > 12
            || day == 0
            || day > days_in_month(year, month)
            || hour > 23
            || minute > 59
            || second > 59
        {
            return None;
        }
        Some(DataTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }

    /// Reads exactly 14 digits `YYYYMMDDhhmmss`.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 14 || !b.iter().all(u8::is_ascii_digit) {
            return None;
        }
        let year = digits(&b[0..4]);
        let two = |i: usize| digits(&b[i..i + 2]) as u8;
        DataTime::new(year, two(4), two(6), two(8), two(10), two(12))
    }

    /// Year, 0-9999.
    pub const fn year(&self) -> u16 {
        self.year
    }
    /// Month, 1-12.
    pub const fn month(&self) -> u8 {
        self.month
    }
    /// Day of the month, 1-31.
    pub const fn day(&self) -> u8 {
        self.day
    }
    /// Hour, 0-23.
    pub const fn hour(&self) -> u8 {
        self.hour
    }
    /// Minute, 0-59.
    pub const fn minute(&self) -> u8 {
        self.minute
    }
    /// Second, 0-59.
    pub const fn second(&self) -> u8 {
        self.second
    }
}

impl fmt::Display for DataTime {
    /// `YYYYMMDDhhmmss`, as on the wire.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}{:02}{:02}{:02}{:02}{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// The value of ASCII digits (the caller checked they are digits and at most four).
pub(crate) fn digits(b: &[u8]) -> u16 {
    b.iter().fold(0u16, |n, &d| {
        n.wrapping_mul(10).wrapping_add(u16::from(d - b'0'))
    })
}

const fn days_in_month(year: u16, month: u8) -> u8 {
    match month {
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

//! UTC timestamps with one-second resolution, and their RFC 3339 text form.

use core::fmt;

/// A UTC instant, in whole seconds since 1970-01-01T00:00:00Z.
///
/// Readings are identified per terminal by their timestamp, to the second: two readings of
/// one terminal in the same second are the same reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `secs` seconds after the Unix epoch.
    pub const fn from_unix(secs: i64) -> Self {
        Timestamp(secs)
    }

    /// Seconds since the Unix epoch.
    pub const fn unix(self) -> i64 {
        self.0
    }

    /// Parses RFC 3339 (`2026-11-22T07:40:00Z`, `2026-11-22T15:40:00+08:00`,
    /// `2026-11-22T07:40:00.250Z`). Fractions of a second are dropped; an offset is
    /// converted to UTC.
    pub fn parse_rfc3339(s: &str) -> Result<Self, &'static str> {
        let b = s.as_bytes();
        if b.len() < 20 {
            return Err("too short");
        }
        let num = |range: core::ops::Range<usize>, what: &'static str| -> Result<i64, _> {
            let mut n = 0i64;
            for &c in &b[range] {
                if !c.is_ascii_digit() {
                    return Err(what);
                }
                n = n * 10 + i64::from(c - b'0');
            }
            Ok(n)
        };
        let sep = |i: usize, c: u8, what: &'static str| {
            if b[i] == c {
                Ok(())
            } else {
                Err(what)
            }
        };
        let year = num(0..4, "bad year")?;
        sep(4, b'-', "expected '-' after the year")?;
        let month = num(5..7, "bad month")?;
        sep(7, b'-', "expected '-' after the month")?;
        let day = num(8..10, "bad day")?;
        if !matches!(b[10], b'T' | b't') {
            return Err("expected 'T' between date and time");
        }
        let hour = num(11..13, "bad hour")?;
        sep(13, b':', "expected ':' after the hour")?;
        let minute = num(14..16, "bad minute")?;
        sep(16, b':', "expected ':' after the minute")?;
        let second = num(17..19, "bad second")?;
        if !(1..=12).contains(&month) {
            return Err("month out of range");
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err("day out of range");
        }
        if hour > 23 || minute > 59 || second > 60 {
            return Err("time of day out of range");
        }
        let mut i = 19;
        if b[i] == b'.' {
            i += 1;
            let start = i;
            while i < b.len() && b[i].is_ascii_digit() {
                i += 1;
            }
            if i == start {
                return Err("no digits after '.'");
            }
        }
        let offset = match b.get(i) {
            Some(b'Z' | b'z') if i + 1 == b.len() => 0,
            Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
                let h = num(i + 1..i + 3, "bad offset hours")?;
                sep(i + 3, b':', "expected ':' in the offset")?;
                let m = num(i + 4..i + 6, "bad offset minutes")?;
                if h > 23 || m > 59 {
                    return Err("offset out of range");
                }
                let off = h * 3600 + m * 60;
                if *sign == b'-' {
                    -off
                } else {
                    off
                }
            }
            _ => return Err("expected 'Z' or an offset like +08:00 at the end"),
        };
        // A leap second (:60) is folded into the next second.
        let secs = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
        Ok(Timestamp(secs - offset))
    }

    /// Year, month, day, hour, minute, second in UTC.
    pub fn to_civil(self) -> (i64, u8, u8, u8, u8, u8) {
        let days = self.0.div_euclid(86_400);
        let rem = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        (
            y,
            m,
            d,
            (rem / 3600) as u8,
            (rem % 3600 / 60) as u8,
            (rem % 60) as u8,
        )
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC: `2026-11-22T07:40:00Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, mo, d, h, mi, s) = self.to_civil();
        write!(f, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days (public-domain algorithms), proleptic
// Gregorian calendar, days relative to 1970-01-01.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, u8, u8) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        let z = Timestamp::parse_rfc3339("2026-11-22T07:40:00Z").unwrap();
        assert_eq!(z.unix(), 1_795_333_200);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-22T15:40:00+08:00"), Ok(z));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-22T07:40:00.999Z"), Ok(z));
        assert_eq!(Timestamp::parse_rfc3339("2026-11-21T23:40:00-08:00"), Ok(z));
    }

    #[test]
    fn formats_as_rfc3339_utc() {
        let ts = Timestamp::from_unix(1_795_333_200);
        let mut buf = heapless::String::<32>::new();
        core::fmt::write(&mut buf, format_args!("{ts}")).unwrap();
        assert_eq!(buf.as_str(), "2026-11-22T07:40:00Z");
    }

    #[test]
    fn rejects_malformed_timestamps_with_a_reason() {
        for (s, why) in [
            ("2026-11-22 07:40:00Z", "expected 'T' between date and time"),
            ("2026-13-22T07:40:00Z", "month out of range"),
            ("2026-02-29T07:40:00Z", "day out of range"),
            ("2026-11-22T24:00:00Z", "time of day out of range"),
            ("2026-11-22T07:40:00", "too short"),
            (
                "2026-11-22T07:40:00+8",
                "expected 'Z' or an offset like +08:00 at the end",
            ),
            (
                "1764-11-22T07:40:00ZZ",
                "expected 'Z' or an offset like +08:00 at the end",
            ),
            ("2026-1x-22T07:40:00Z", "bad month"),
        ] {
            assert_eq!(Timestamp::parse_rfc3339(s), Err(why), "{s}");
        }
    }

    #[test]
    fn civil_conversion_round_trips_over_centuries() {
        for days in (-200_000..200_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, i64::from(m), i64::from(d)), days);
        }
    }
}

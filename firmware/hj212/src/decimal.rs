//! A decimal number exactly as written on the wire (`12.30` stays `12.30`).

use core::fmt;

use crate::MAX_NUMBER_LEN;

/// Powers of ten that `f64` holds exactly (up to 10^22), for conversions.
const POW10: [f64; 19] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18,
];
/// At most 18 digits, so that every digit string fits in a `u64` and an `i64`.
const MAX_DIGITS: u64 = 999_999_999_999_999_999;

/// A decimal number as the standard writes measured values (its type `N14.2` and the like):
/// an optional `-`, digits, and optionally `.` and more digits.
///
/// It keeps the number of decimals, so `7.0` and `7.00` are different values that each write
/// back as they were read; [`Decimal::to_f64`] compares them as numbers. At most 18 digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    digits: u64,
    scale: u8,
}

impl Decimal {
    /// `mantissa / 10^scale`, for example `Decimal::new(1230, 2)` is `12.30`. `None` if the
    /// mantissa has more than 18 digits or the scale is over 18.
    pub const fn new(mantissa: i64, scale: u8) -> Option<Self> {
        let digits = mantissa.unsigned_abs();
        if digits > MAX_DIGITS || scale > 18 {
            return None;
        }
        Some(Decimal {
            negative: mantissa < 0,
            digits,
            scale,
        })
    }

    /// `value` rounded half away from zero to `decimals` places, or `None` if it is not finite
    /// or needs more than 18 digits.
    pub fn from_f64(value: f64, decimals: u8) -> Option<Self> {
        if !value.is_finite() || usize::from(decimals) >= POW10.len() {
            return None;
        }
        let scaled = value * POW10[usize::from(decimals)];
        let magnitude = if scaled < 0.0 { -scaled } else { scaled } + 0.5;
        if magnitude >= 1e18 {
            return None;
        }
        // `as` truncates towards zero; with the 0.5 added that rounds half away from zero.
        let digits = magnitude as u64;
        Some(Decimal {
            negative: scaled < 0.0 && digits != 0,
            digits,
            scale: decimals,
        })
    }

    /// Reads `-?(0|[1-9][0-9]*)(\.[0-9]+)?` of at most 18 characters (the standard's longest
    /// numeric type, `N14.2`, is 18 with sign and point). No `+`, exponent or spaces.
    pub fn parse(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.is_empty() || b.len() > MAX_NUMBER_LEN {
            return None;
        }
        let (negative, body) = match b.split_first() {
            Some((b'-', rest)) => (true, rest),
            _ => (false, b),
        };
        let (int, frac) = match body.iter().position(|&c| c == b'.') {
            Some(dot) => (&body[..dot], Some(&body[dot + 1..])),
            None => (body, None),
        };
        if int.is_empty() || (int.len() > 1 && int[0] == b'0') {
            return None;
        }
        let frac = frac.unwrap_or(&[]);
        if body.len() > int.len() && frac.is_empty() {
            return None; // "5."
        }
        let mut digits: u64 = 0;
        for &c in int.iter().chain(frac) {
            if !c.is_ascii_digit() {
                return None;
            }
            digits = digits.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        }
        Some(Decimal {
            negative,
            digits,
            scale: u8::try_from(frac.len()).ok()?,
        })
    }

    /// The digits as an integer with the sign: `12.30` gives 1230.
    pub const fn mantissa(&self) -> i64 {
        // At most 18 digits, so this cannot overflow.
        let m = self.digits as i64;
        if self.negative {
            -m
        } else {
            m
        }
    }

    /// Number of decimals: `12.30` gives 2.
    pub const fn scale(&self) -> u8 {
        self.scale
    }

    /// The nearest `f64`.
    pub fn to_f64(&self) -> f64 {
        let v = self.digits as f64 / POW10[usize::from(self.scale).min(POW10.len() - 1)];
        if self.negative {
            -v
        } else {
            v
        }
    }
}

impl fmt::Display for Decimal {
    /// As on the wire: `-0.05`, `231.0`, `7`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.negative {
            f.write_str("-")?;
        }
        let scale = u32::from(self.scale);
        if scale == 0 {
            return write!(f, "{}", self.digits);
        }
        // 10^scale may not fit in a u64 for scale 19+; the constructors keep scale <= 18.
        let unit = 10u64.pow(scale);
        write!(
            f,
            "{}.{:0width$}",
            self.digits / unit,
            self.digits % unit,
            width = scale as usize
        )
    }
}

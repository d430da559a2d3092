//! Which characters may stand where.

/// A character of `PW` or `MN`: printable ASCII other than space and the separators.
pub(crate) fn is_header_char(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b';' | b',' | b'=' | b'&')
}

/// `PW` or `MN`: 1 to `max` header characters.
pub(crate) fn header_text_ok(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(is_header_char)
}

/// A key or a part of a `code-field` key: ASCII letters and digits.
pub(crate) fn is_name(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A CP value: not empty, no control character, none of `;` `,` `=` `&`. Other UTF-8 text
/// (the standard allows Chinese characters as UTF-8) and spaces may stand in it.
pub(crate) fn is_value(text: &str) -> bool {
    !text.is_empty()
        && text
            .chars()
            .all(|c| !c.is_control() && !matches!(c, ';' | ',' | '=' | '&'))
}

/// A decimal number without leading zeros, 1-4 digits (`PNUM`, `PNO`) or 1-3 (`Flag`).
pub(crate) fn canonical_number(text: &str, max_digits: usize) -> Option<u16> {
    let b = text.as_bytes();
    if b.is_empty() || b.len() > max_digits || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if b.len() > 1 && b[0] == b'0' {
        return None;
    }
    Some(crate::time::digits(b))
}

//! Exact decimal strings → scaled integers (the Arrow `Decimal128` representation).
//!
//! Xledger sends money and hours as decimal strings (`"101.00"`, `"-7.125"`). The lake stores
//! them with a fixed scale per column. A value with more fractional digits than the scale is an
//! error, never rounded or cut: a cut amount is a wrong number in a finance report.

use std::fmt;

/// Why a decimal string was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecimalError {
    /// Not of the form `[-+]digits[.digits]`.
    NotANumber,
    /// More fractional digits than the column's scale.
    TooManyFractionalDigits { digits: usize, scale: i8 },
    /// More significant digits than the column's precision.
    Overflow { precision: u8 },
}

impl fmt::Display for DecimalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecimalError::NotANumber => f.write_str("not a decimal number"),
            DecimalError::TooManyFractionalDigits { digits, scale } => {
                write!(f, "{digits} fractional digits, but the column keeps {scale}; refusing to round")
            }
            DecimalError::Overflow { precision } => write!(f, "more than {precision} significant digits"),
        }
    }
}

impl std::error::Error for DecimalError {}

/// Parses `text` as an exact decimal scaled by `10^scale`, e.g. `("7.5", 2)` → `750`.
///
/// Accepts an optional sign, digits, and an optional `.` with digits on at least one side;
/// trailing zeros beyond the scale are fine (`"1.500"` at scale 2 is `150`), other digits are not.
/// Exponents, spaces and thousands separators are refused.
///
/// ```
/// use xledger_model::decimal::{parse_decimal, DecimalError};
/// assert_eq!(parse_decimal("-101.25", 28, 6), Ok(-101_250_000));
/// assert_eq!(parse_decimal("1.500", 10, 2), Ok(150));
/// assert!(matches!(parse_decimal("7.125", 10, 2), Err(DecimalError::TooManyFractionalDigits { .. })));
/// ```
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, DecimalError> {
    let bytes = text.as_bytes();
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let (int_part, frac_part) = match rest.iter().position(|&b| b == b'.') {
        Some(dot) => (&rest[..dot], &rest[dot + 1..]),
        None => (rest, &rest[rest.len()..]),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(DecimalError::NotANumber);
    }
    if !int_part.iter().chain(frac_part).all(u8::is_ascii_digit) {
        return Err(DecimalError::NotANumber);
    }
    let scale_digits = usize::try_from(scale.max(0)).unwrap_or(0);
    let significant_frac = frac_part.len() - frac_part.iter().rev().take_while(|&&b| b == b'0').count();
    if significant_frac > scale_digits {
        return Err(DecimalError::TooManyFractionalDigits { digits: significant_frac, scale });
    }
    let mut value: i128 = 0;
    let mut digits = 0usize;
    let mut push = |d: u8, value: &mut i128| -> Result<(), DecimalError> {
        // Leading zeros are not significant (`d` is the ASCII digit).
        if *value != 0 || d != b'0' {
            digits += 1;
        }
        if digits > usize::from(precision) {
            return Err(DecimalError::Overflow { precision });
        }
        *value = *value * 10 + i128::from(d - b'0');
        Ok(())
    };
    for &d in int_part {
        push(d, &mut value)?;
    }
    for i in 0..scale_digits {
        let d = frac_part.get(i).copied().unwrap_or(b'0');
        push(d, &mut value)?;
    }
    Ok(if negative { -value } else { value })
}

/// Formats a scaled integer back to its decimal text with exactly `scale` fractional digits.
///
/// ```
/// assert_eq!(xledger_model::decimal::format_decimal(-750, 2), "-7.50");
/// ```
pub fn format_decimal(value: i128, scale: i8) -> String {
    let scale = usize::try_from(scale.max(0)).unwrap_or(0);
    let digits = value.unsigned_abs().to_string();
    let sign = if value < 0 { "-" } else { "" };
    if scale == 0 {
        return format!("{sign}{digits}");
    }
    let padded = format!("{digits:0>width$}", width = scale + 1);
    let (int_part, frac_part) = padded.split_at(padded.len() - scale);
    format!("{sign}{int_part}.{frac_part}")
}

#[cfg(test)]
mod tests {
    use super::*;

    use proptest::prelude::*;

    proptest! {
        /// Every value of a column formats to a text that parses back to it, padded or not.
        #[test]
        fn formatted_values_parse_back_exactly(value in -(10_i128.pow(28) - 1)..10_i128.pow(28), scale in 0_i8..=12) {
            let text = format_decimal(value, scale);
            prop_assert_eq!(parse_decimal(&text, 28, scale), Ok(value), "{}", text);
            let padded = if scale == 0 { format!("{text}.000") } else { format!("{text}000") };
            prop_assert_eq!(parse_decimal(&padded, 28, scale), Ok(value), "{}", padded);
            let wider = scale + 1;
            prop_assert_eq!(parse_decimal(&text, 29, wider), Ok(value * 10), "{}", text);
        }

        /// A nonzero digit beyond the scale is refused, never rounded.
        #[test]
        fn a_digit_beyond_the_scale_is_refused(int in 0_u64..1_000_000, frac in "[0-9]{0,5}[1-9]", scale in 0_i8..=5) {
            let text = format!("{int}.{frac}");
            let significant = frac.len();
            prop_assume!(significant > scale as usize);
            prop_assert_eq!(
                parse_decimal(&text, 38, scale),
                Err(DecimalError::TooManyFractionalDigits { digits: significant, scale }),
                "{}", text
            );
        }
    }

    #[test]
    fn malformed_texts_and_overflows_are_refused() {
        for text in ["", "-", "+", ".", "-.", "1..2", "1.2.3", "1e5", " 1", "1,5", "0x10"] {
            assert_eq!(parse_decimal(text, 18, 2), Err(DecimalError::NotANumber), "{text:?}");
        }
        for (text, expected) in [("1.", 100), (".5", 50), ("-0.00", 0), ("+7", 700), ("00", 0)] {
            assert_eq!(parse_decimal(text, 18, 2), Ok(expected), "{text:?}");
        }
        assert_eq!(parse_decimal("99999999999999999999", 19, 0), Err(DecimalError::Overflow { precision: 19 }));
        assert_eq!(parse_decimal("9999999999999999999", 19, 0), Ok(9_999_999_999_999_999_999));
        assert_eq!(parse_decimal("123.45", 4, 2), Err(DecimalError::Overflow { precision: 4 }));
    }

    #[test]
    fn leading_zeros_are_not_significant_digits() {
        // They were counted once: "0.5" did not fit a decimal(1,1) column.
        assert_eq!(parse_decimal("0.5", 1, 1), Ok(5));
        assert_eq!(parse_decimal("000123", 3, 0), Ok(123));
        assert_eq!(parse_decimal("0000000000000000000000123.5", 4, 1), Ok(1235));
        assert_eq!(parse_decimal("0000000000000000000001234.5", 4, 1), Err(DecimalError::Overflow { precision: 4 }));
    }
}

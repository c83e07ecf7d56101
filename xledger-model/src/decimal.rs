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
    match parse_short(text.as_bytes(), scale) {
        // Below 10^precision: at most `precision` significant digits, as the general parser counts.
        Some((negative, value)) if precision >= 19 || value < 10_u64.pow(u32::from(precision)) => {
            let value = i128::from(value);
            Ok(if negative { -value } else { value })
        }
        _ => parse_general(text, precision, scale),
    }
}

/// The common case in one pass, in `u64`: `[-+]digits[.digits]` with at most `scale` fractional
/// digits and at most 19 digits once scaled (so below 10^19 < 2^64). `None` for anything else,
/// valid or not: [`parse_general`] then decides and names the error. Same results in a third
/// less time (`decimal/parse_decimal` bench: 16 → 11 ns per value).
fn parse_short(bytes: &[u8], scale: i8) -> Option<(bool, u64)> {
    let scale = usize::try_from(scale).ok()?;
    let (negative, rest) = match bytes.first() {
        Some(b'-') => (true, &bytes[1..]),
        Some(b'+') => (false, &bytes[1..]),
        _ => (false, bytes),
    };
    let mut value: u64 = 0;
    let mut digits = 0_usize;
    let mut fraction: Option<usize> = None;
    for &b in rest {
        if b.is_ascii_digit() {
            // Wraps only past 19 digits, which the length check below then refuses.
            value = value.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
            digits += 1;
            if let Some(fraction) = fraction.as_mut() {
                *fraction += 1;
            }
        } else if b == b'.' && fraction.is_none() {
            fraction = Some(0);
        } else {
            return None;
        }
    }
    let fraction = fraction.unwrap_or(0);
    let padding = scale.checked_sub(fraction)?;
    if digits == 0 || digits + padding > 19 {
        return None;
    }
    value.checked_mul(10_u64.checked_pow(u32::try_from(padding).ok()?)?).map(|value| (negative, value))
}

/// Every input the short path leaves: long numbers, trailing zeros beyond the scale, errors.
fn parse_general(text: &str, precision: u8, scale: i8) -> Result<i128, DecimalError> {
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
        /// The short path is an optimisation: it must agree with the general parser everywhere.
        #[test]
        fn the_short_path_agrees_with_the_general_parser(
            text in "[-+]?[0-9]{0,22}(\\.[0-9]{0,12})?|[-+0-9. e]{0,8}",
            precision in 0_u8..=38,
            scale in -2_i8..=12,
        ) {
            prop_assert_eq!(parse_decimal(&text, precision, scale), parse_general(&text, precision, scale), "{}", text);
        }
    }

    #[test]
    fn short_path_edges_agree_with_the_general_parser() {
        let cases = [
            "",
            "-",
            "+",
            ".",
            "-.",
            "0",
            "-0",
            "-0.00",
            "1.",
            ".5",
            "1..2",
            "1.2.3",
            "1e5",
            " 1",
            "00",
            "9999999999999999999",
            "99999999999999999999",
            "1844674407370955161.5",
            "18446744073709551615",
            "0.000001",
            "1.500",
            "1.5000000",
            "123456789012.123456",
        ];
        for text in cases {
            for precision in [0, 1, 3, 10, 18, 19, 20, 28, 38] {
                for scale in [-1, 0, 1, 2, 6, 7, 18] {
                    assert_eq!(
                        parse_decimal(text, precision, scale),
                        parse_general(text, precision, scale),
                        "{text:?} ({precision}, {scale})"
                    );
                }
            }
        }
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

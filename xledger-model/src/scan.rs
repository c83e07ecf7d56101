//! A small JSON scanner for the one-pass read of full-load pages.
//!
//! A full load reads every page of items straight from the response body into the lake writer's
//! Arrow builders (see [`crate::page::NodeSink`]). serde_json did that through its visitor
//! machinery: each key and value went through `Deserializer` dispatch, `MapAccess`, seeds and
//! visitors, and the whole body was checked as UTF-8 in a separate pass first. This scanner reads
//! the same bytes directly, checking UTF-8 only where a string has a byte above ASCII.
//!
//! It is deliberately partial. It reads the JSON pages are made of (objects, arrays, strings with
//! every escape, integers, `true`, `false`, `null`) and gives up with [`Bail`] on anything it is
//! not certain to read exactly as serde_json does: a number with a fraction or an exponent where
//! a value is wanted, an integer of 19 digits or more, `-0`, an escaped object key, a lone
//! surrogate, a control character in a string, nesting deeper than [`MAX_DEPTH`], bytes that are
//! not UTF-8. Giving up is always safe: the caller discards what it read and hands the body to
//! the careful path (serde_json), which decides whether it is an error and says what is wrong.
//! The one rule the scanner must keep is the converse: never accept a text serde_json refuses,
//! and never read a value differently (tested against serde_json in `tests/scan.rs` and, for
//! whole nodes, in lake-writer's `tests/streamed.rs`).

use std::fmt;

/// The scanner gave up: the text is malformed, or well-formed but outside what it reads. The
/// caller falls back to serde_json, which tells the two apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bail;

impl fmt::Display for Bail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to the careful JSON path")
    }
}

impl std::error::Error for Bail {}

/// What every scanning step returns.
pub type Scan<T> = Result<T, Bail>;

/// Nesting the scanner follows when skipping a value; deeper is left to serde_json (whose own
/// limit is 128 levels, more than any page needs).
pub const MAX_DEPTH: usize = 64;

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Bit 7 of each byte of `word` that is zero. Exact below the lowest zero byte (a borrow only
/// runs upwards from a zero byte), so the lowest set bit always marks the first zero byte.
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    word.wrapping_sub(ONES) & !word & HIGHS
}

/// Bit 7 of each byte of `word` that ends a run of plain string bytes: `"`, `\` or a control
/// character (below 0x20). The lowest set bit marks the first one exactly (see [`zero_bytes`]).
#[inline(always)]
fn string_stops(word: u64) -> u64 {
    let quote = zero_bytes(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_bytes(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    quote | backslash | control
}

/// Whether two object keys are equal, compared in machine words rather than through a `memcmp`
/// call (keys are a few bytes long, and a full load compares about 25 of them per row).
#[inline(always)]
pub fn same_key(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let n = a.len();
    if n != b.len() {
        return false;
    }
    let word = |s: &[u8], at: usize| s.get(at..at + 8).map(|w| u64::from_le_bytes(w.try_into().unwrap_or_default()));
    if n >= 8 {
        // Whole words, then the last eight bytes (overlapping the previous word if need be).
        let mut at = 0;
        while at + 8 < n {
            if word(a, at) != word(b, at) {
                return false;
            }
            at += 8;
        }
        return word(a, n - 8) == word(b, n - 8);
    }
    let mut at = 0;
    while at < n {
        if a[at] != b[at] {
            return false;
        }
        at += 1;
    }
    true
}

/// A position in a JSON text, read forwards.
#[derive(Debug)]
pub struct Scanner<'a> {
    bytes: &'a [u8],
    pos: usize,
    /// Decoded text of the last string that had escapes.
    scratch: String,
}

/// A string's bytes between its quotes, before escapes are decoded.
struct Run {
    start: usize,
    end: usize,
    /// Some byte in `start..end` may be above ASCII (false means certainly none is).
    non_ascii: bool,
}

impl<'a> Scanner<'a> {
    /// A scanner at the start of `bytes`.
    pub fn new(bytes: &'a [u8]) -> Self {
        Scanner { bytes, pos: 0, scratch: String::new() }
    }

    /// Bytes read so far.
    pub fn position(&self) -> usize {
        self.pos
    }

    #[inline]
    fn skip_whitespace(&mut self) {
        while let Some(&byte) = self.bytes.get(self.pos) {
            if !matches!(byte, b' ' | b'\n' | b'\r' | b'\t') {
                break;
            }
            self.pos += 1;
        }
    }

    /// The next byte after whitespace, not consumed.
    #[inline]
    pub fn peek(&mut self) -> Option<u8> {
        self.skip_whitespace();
        self.bytes.get(self.pos).copied()
    }

    /// Consumes `byte` (after whitespace) if it comes next.
    #[inline]
    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    #[inline]
    fn expect(&mut self, byte: u8) -> Scan<()> {
        if self.eat(byte) { Ok(()) } else { Err(Bail) }
    }

    /// Nothing but whitespace is left.
    pub fn finish(&mut self) -> Scan<()> {
        self.skip_whitespace();
        if self.pos == self.bytes.len() { Ok(()) } else { Err(Bail) }
    }

    fn literal(&mut self, word: &[u8]) -> Scan<()> {
        self.skip_whitespace();
        match self.bytes.get(self.pos..self.pos + word.len()) {
            Some(found) if found == word => {
                self.pos += word.len();
                Ok(())
            }
            _ => Err(Bail),
        }
    }

    /// Reads `null` if it comes next: true, or false with nothing consumed.
    #[inline]
    pub fn null(&mut self) -> Scan<bool> {
        if self.peek() != Some(b'n') {
            return Ok(false);
        }
        self.literal(b"null")?;
        Ok(true)
    }

    /// Reads `true` or `false`.
    pub fn boolean(&mut self) -> Scan<bool> {
        match self.peek() {
            Some(b't') => self.literal(b"true").map(|()| true),
            Some(b'f') => self.literal(b"false").map(|()| false),
            _ => Err(Bail),
        }
    }

    /// Enters an object: the next byte must be `{`. Read its members with [`next_key`](Self::next_key).
    #[inline]
    pub fn begin_object(&mut self) -> Scan<()> {
        self.expect(b'{')
    }

    /// The next key of the object being read, with its `:` consumed, or `None` after its closing
    /// `}`. `first` starts true for each object. Keys with escapes are left to serde_json.
    #[inline]
    pub fn next_key(&mut self, first: &mut bool) -> Scan<Option<&'a str>> {
        if self.eat(b'}') {
            return Ok(None);
        }
        if !std::mem::replace(first, false) {
            self.expect(b',')?;
            self.skip_whitespace();
        }
        if self.bytes.get(self.pos) != Some(&b'"') {
            return Err(Bail);
        }
        let run = self.run(self.pos + 1)?;
        if self.bytes.get(run.end) != Some(&b'"') {
            return Err(Bail);
        }
        self.pos = run.end + 1;
        let key = self.text(&run)?;
        self.expect(b':')?;
        Ok(Some(key))
    }

    /// Enters an array: the next byte must be `[`. Read its elements with [`next_element`](Self::next_element).
    pub fn begin_array(&mut self) -> Scan<()> {
        self.expect(b'[')
    }

    /// Whether another element of the array being read follows (its `,` consumed); false after
    /// the closing `]`. `first` starts true for each array.
    #[inline]
    pub fn next_element(&mut self, first: &mut bool) -> Scan<bool> {
        if self.eat(b']') {
            return Ok(false);
        }
        if !std::mem::replace(first, false) {
            self.expect(b',')?;
        }
        Ok(true)
    }

    /// Scans the plain bytes of a string from `start` up to the first `"`, `\` or control
    /// character (at `end`, not consumed; `self.pos` is left unchanged).
    #[inline]
    fn run(&self, start: usize) -> Scan<Run> {
        let mut at = start;
        let mut high = 0u64;
        while let Some(chunk) = self.bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(chunk.try_into().map_err(|_| Bail)?);
            high |= word;
            let stops = string_stops(word);
            if stops != 0 {
                let end = at + (stops.trailing_zeros() / 8) as usize;
                return Ok(Run { start, end, non_ascii: high & HIGHS != 0 });
            }
            at += 8;
        }
        while let Some(&byte) = self.bytes.get(at) {
            if byte == b'"' || byte == b'\\' || byte < 0x20 {
                break;
            }
            high |= u64::from(byte);
            at += 1;
        }
        if at >= self.bytes.len() {
            return Err(Bail);
        }
        Ok(Run { start, end: at, non_ascii: high & HIGHS != 0 })
    }

    /// The text of `run`, checked as UTF-8 when it may hold a byte above ASCII.
    #[inline]
    fn text(&self, run: &Run) -> Scan<&'a str> {
        let bytes: &'a [u8] = &self.bytes[run.start..run.end];
        if run.non_ascii {
            return std::str::from_utf8(bytes).map_err(|_| Bail);
        }
        debug_assert!(bytes.is_ascii());
        // SAFETY: `run` found no byte with bit 7 set anywhere in `start..end` (every byte of the
        // run was or-ed into its `high` mask), and bytes below 0x80 are ASCII, which is UTF-8.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    }

    /// Reads the string that comes next, escapes decoded. The text lives in the body when the
    /// string has no escapes, else in the scanner's scratch buffer until the next string.
    #[inline]
    pub fn string(&mut self) -> Scan<&str> {
        if self.peek() != Some(b'"') {
            return Err(Bail);
        }
        let run = self.run(self.pos + 1)?;
        if self.bytes[run.end] == b'"' {
            self.pos = run.end + 1;
            return self.text(&run);
        }
        self.escaped_string(run)
    }

    /// The rest of a string whose first run ends at an escape or a control character.
    #[cold]
    fn escaped_string(&mut self, first: Run) -> Scan<&str> {
        let mut scratch = std::mem::take(&mut self.scratch);
        scratch.clear();
        let mut run = first;
        loop {
            scratch.push_str(self.text(&run)?);
            match self.bytes[run.end] {
                b'"' => {
                    self.pos = run.end + 1;
                    break;
                }
                b'\\' => {
                    self.pos = run.end + 1;
                    self.escape(&mut scratch)?;
                }
                _ => return Err(Bail),
            }
            run = self.run(self.pos)?;
        }
        self.scratch = scratch;
        Ok(&self.scratch)
    }

    /// Decodes the escape after a `\` (at `self.pos`) into `out`.
    fn escape(&mut self, out: &mut String) -> Scan<()> {
        let byte = *self.bytes.get(self.pos).ok_or(Bail)?;
        self.pos += 1;
        let decoded = match byte {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xD800..=0xDBFF => {
                        // A leading surrogate must be followed by an escaped trailing one.
                        if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                            return Err(Bail);
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&low) {
                            return Err(Bail);
                        }
                        0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00)
                    }
                    0xDC00..=0xDFFF => return Err(Bail),
                    other => other,
                };
                char::from_u32(code).ok_or(Bail)?
            }
            _ => return Err(Bail),
        };
        out.push(decoded);
        Ok(())
    }

    fn hex4(&mut self) -> Scan<u32> {
        let digits = self.bytes.get(self.pos..self.pos + 4).ok_or(Bail)?;
        let mut value = 0u32;
        for &digit in digits {
            let nibble = (digit as char).to_digit(16).ok_or(Bail)?;
            value = value * 16 + nibble;
        }
        self.pos += 4;
        Ok(value)
    }

    /// Skips a string, checking it as [`string`](Self::string) does.
    fn skip_string(&mut self) -> Scan<()> {
        self.string().map(|_| ())
    }

    /// Reads an integer: `-?(0|[1-9][0-9]*)` of at most 18 digits, so that it is exact in an
    /// `i64`. A fraction, an exponent, more digits or `-0` (which serde_json reads as a float)
    /// are left to serde_json.
    #[inline]
    pub fn integer(&mut self) -> Scan<i64> {
        self.skip_whitespace();
        let negative = self.bytes.get(self.pos) == Some(&b'-');
        let start = self.pos + usize::from(negative);
        let mut at = start;
        let mut value: i64 = 0;
        while let Some(&digit) = self.bytes.get(at) {
            if !digit.is_ascii_digit() {
                break;
            }
            if at - start == 18 {
                return Err(Bail);
            }
            value = value * 10 + i64::from(digit - b'0');
            at += 1;
        }
        let digits = at - start;
        let leading_zero = digits > 1 && self.bytes[start] == b'0';
        if digits == 0 || leading_zero || (negative && value == 0) {
            return Err(Bail);
        }
        if matches!(self.bytes.get(at), Some(b'.' | b'e' | b'E')) {
            return Err(Bail);
        }
        self.pos = at;
        Ok(if negative { -value } else { value })
    }

    /// Skips a number of any JSON form, checking its grammar only (as serde_json does for a
    /// value it ignores).
    fn skip_number(&mut self) -> Scan<()> {
        let digits = |scanner: &mut Self| {
            let start = scanner.pos;
            while scanner.bytes.get(scanner.pos).is_some_and(u8::is_ascii_digit) {
                scanner.pos += 1;
            }
            scanner.pos - start
        };
        if self.bytes.get(self.pos) == Some(&b'-') {
            self.pos += 1;
        }
        let start = self.pos;
        let whole = digits(self);
        if whole == 0 || (whole > 1 && self.bytes[start] == b'0') {
            return Err(Bail);
        }
        if self.bytes.get(self.pos) == Some(&b'.') {
            self.pos += 1;
            if digits(self) == 0 {
                return Err(Bail);
            }
        }
        if matches!(self.bytes.get(self.pos), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.bytes.get(self.pos), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if digits(self) == 0 {
                return Err(Bail);
            }
        }
        Ok(())
    }

    /// Skips the value that comes next, whatever it is, checking that it is well-formed.
    pub fn skip_value(&mut self) -> Scan<()> {
        self.skip_nested(0)
    }

    /// Skips the value that comes next as [`skip_value`](Self::skip_value) does and returns its
    /// text, as written.
    pub fn raw_value(&mut self) -> Scan<&'a str> {
        self.skip_whitespace();
        let start = self.pos;
        self.skip_nested(0)?;
        std::str::from_utf8(&self.bytes[start..self.pos]).map_err(|_| Bail)
    }

    fn skip_nested(&mut self, depth: usize) -> Scan<()> {
        match self.peek().ok_or(Bail)? {
            b'"' => self.skip_string(),
            b'-' | b'0'..=b'9' => self.skip_number(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'{' if depth < MAX_DEPTH => {
                self.pos += 1;
                let mut first = true;
                loop {
                    if self.eat(b'}') {
                        return Ok(());
                    }
                    if !std::mem::replace(&mut first, false) {
                        self.expect(b',')?;
                    }
                    if self.peek() != Some(b'"') {
                        return Err(Bail);
                    }
                    self.skip_string()?;
                    self.expect(b':')?;
                    self.skip_nested(depth + 1)?;
                }
            }
            b'[' if depth < MAX_DEPTH => {
                self.pos += 1;
                let mut first = true;
                while self.next_element(&mut first)? {
                    self.skip_nested(depth + 1)?;
                }
                Ok(())
            }
            _ => Err(Bail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_found_at_the_first_quote_backslash_or_control_byte() {
        for (text, at) in [
            (&b"abcdefgh"[..], None),
            (b"abc\"efgh", Some(3)),
            (b"\\bcdefgh", Some(0)),
            (b"abcdefg\x1f", Some(7)),
            (b"\xc3\xa6\"\x00\x00\x00\x00\x00", Some(2)),
            (b"\x00\"\\\x01\x02\x03\x04\x05", Some(0)),
            (b"\x20\x7f\x80\xff\x21\x5b\x5d\"", Some(7)),
        ] {
            let word = u64::from_le_bytes(text.try_into().unwrap());
            let stops = string_stops(word);
            let found = (stops != 0).then(|| (stops.trailing_zeros() / 8) as usize);
            assert_eq!(found, at, "{text:?}");
        }
    }

    #[test]
    fn keys_compare_like_strings() {
        let words = [
            "",
            "a",
            "b",
            "ab",
            "dbId",
            "code",
            "description",
            "descriptioN",
            "fullAddress",
            "codeTranslated",
            "codeTranslatee",
            "a_key_of_exactly_24_bytes",
            "a_key_of_exactly_24_bytez",
        ];
        for a in words {
            for b in words {
                assert_eq!(same_key(a, b), a == b, "{a} {b}");
            }
        }
    }

    #[test]
    fn strings_are_read_with_their_escapes() {
        let mut scanner = Scanner::new(
            r#" "plain" "a\"b\\c\/d\b\f\n\r\t" "\u00e6\u00F8\ud83d\ude00x" "æøå long enough to span words""#.as_bytes(),
        );
        assert_eq!(scanner.string(), Ok("plain"));
        assert_eq!(scanner.string(), Ok("a\"b\\c/d\u{8}\u{c}\n\r\t"));
        assert_eq!(scanner.string(), Ok("æø😀x"));
        assert_eq!(scanner.string(), Ok("æøå long enough to span words"));
        assert_eq!(scanner.finish(), Ok(()));
    }

    #[test]
    fn doubtful_strings_are_left_to_serde_json() {
        for text in [
            &br#""abc"#[..],
            br#""a\x""#,
            br#""\ud83d""#,
            br#""\ud83dx""#,
            br#""\ude00""#,
            br#""\ud83d\u0041""#,
            br#""\u12g4""#,
            b"\"a\x01b\"",
            b"\"\xff\"",
            b"\"\xc3\"",
        ] {
            assert_eq!(Scanner::new(text).string(), Err(Bail), "{:?}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn integers_are_exact_or_left_alone() {
        let read = |text: &[u8]| {
            let mut scanner = Scanner::new(text);
            scanner.integer().map(|value| (value, scanner.position()))
        };
        assert_eq!(read(b"0,"), Ok((0, 1)));
        assert_eq!(read(b"-7}"), Ok((-7, 2)));
        assert_eq!(read(b"999999999999999999"), Ok((999_999_999_999_999_999, 18)));
        assert_eq!(read(b"-999999999999999999"), Ok((-999_999_999_999_999_999, 19)));
        for doubtful in [&b"1000000000000000000"[..], b"-0", b"01", b"1.5", b"1e3", b"2E1", b"-", b"", b"x"] {
            assert_eq!(read(doubtful), Err(Bail), "{:?}", String::from_utf8_lossy(doubtful));
        }
    }

    #[test]
    fn objects_and_arrays_are_walked_member_by_member() {
        let mut scanner =
            Scanner::new(br#"{ "a" : [1, {"b": null}], "c": {"d": [true, false, "x", -1.5e-3]} , "e":{}}"#);
        scanner.begin_object().unwrap();
        let mut first = true;
        let mut keys = Vec::new();
        while let Some(key) = scanner.next_key(&mut first).unwrap() {
            keys.push(key);
            scanner.skip_value().unwrap();
        }
        assert_eq!(keys, ["a", "c", "e"]);
        scanner.finish().unwrap();
    }

    #[test]
    fn malformed_structure_bails() {
        for text in [
            &br#"{"a":1,}"#[..],
            br#"{,"a":1}"#,
            br#"{"a" 1}"#,
            br#"{"a":1"b":2}"#,
            br#"[1,]"#,
            br#"[,1]"#,
            br#"[1 2]"#,
            br#"{"a":tru}"#,
            br#"{"a":nul}"#,
            br#"{"a":01}"#,
            br#"{"a":1.}"#,
            br#"{"a":1e}"#,
            br#"{"a":-}"#,
            br#"{"a":+1}"#,
            br#"{"a":.5}"#,
            br#"{"a":[}"#,
            br#"{"a":1"#,
            br#"{'a':1}"#,
            b"\xef\xbb\xbf{}",
        ] {
            let mut scanner = Scanner::new(text);
            let outcome = scanner.skip_value().and_then(|()| scanner.finish());
            assert_eq!(outcome, Err(Bail), "{:?}", String::from_utf8_lossy(text));
            assert!(
                serde_json::from_slice::<serde_json::Value>(text).is_err(),
                "serde_json accepts {:?}",
                String::from_utf8_lossy(text)
            );
        }
    }

    #[test]
    fn nesting_beyond_the_limit_bails() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        assert_eq!(Scanner::new(deep.as_bytes()).skip_value(), Err(Bail));
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(Scanner::new(fine.as_bytes()).skip_value(), Ok(()));
    }
}

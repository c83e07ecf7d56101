//! The scanner against serde_json: whatever it accepts, serde_json accepts and reads the same.

use proptest::prelude::*;
use serde_json::Value;
use xledger_model::scan::{Bail, Scanner};

/// Texts made of the bytes that matter to JSON, so that many are almost JSON.
fn jsonish() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "{", "}", "[", "]", ",", ":", " ", "\n", "\"", "\"a\"", "\"k\":", "\\", "\\u", "\\ud83d", "\\ude00", "\\n",
        "0", "1", "7", "-", ".", "e", "E", "+", "true", "false", "null", "nul", "é", "\u{1}", "x",
    ]);
    prop::collection::vec(pieces, 0..24).prop_map(|pieces| pieces.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn a_skipped_value_is_one_serde_json_reads(text in jsonish()) {
        let mut scanner = Scanner::new(text.as_bytes());
        if scanner.skip_value().and_then(|()| scanner.finish()).is_ok() {
            prop_assert!(serde_json::from_str::<Value>(&text).is_ok(), "{text:?}");
        }
    }

    #[test]
    fn raw_values_of_real_json_are_taken_whole(value in any_json()) {
        let text = serde_json::to_string_pretty(&value).unwrap();
        let mut scanner = Scanner::new(text.as_bytes());
        prop_assert_eq!(scanner.raw_value(), Ok(text.as_str()));
        prop_assert_eq!(scanner.finish(), Ok(()));
    }

    #[test]
    fn strings_read_as_serde_json_reads_them(text in jsonish(), plain in any::<String>()) {
        let quoted = format!("\"{text}\"");
        let mut scanner = Scanner::new(quoted.as_bytes());
        let read = scanner.string().map(str::to_string);
        if let Ok(read) = read
            && scanner.finish().is_ok()
        {
            prop_assert_eq!(Ok(read), serde_json::from_str::<String>(&quoted).map_err(|e| e.to_string()), "{:?}", quoted);
        }
        // Every string serde_json writes, escaped or not, is read back exactly.
        let written = serde_json::to_string(&plain).unwrap();
        let mut scanner = Scanner::new(written.as_bytes());
        prop_assert_eq!(scanner.string(), Ok(plain.as_str()));
        let escaped: String = plain.encode_utf16().map(|unit| format!("\\u{unit:04x}")).collect();
        let escaped = format!("\"{escaped}\"");
        let mut scanner = Scanner::new(escaped.as_bytes());
        prop_assert_eq!(scanner.string(), Ok(plain.as_str()));
    }

    #[test]
    fn integers_read_as_serde_json_reads_them(text in "-?[0-9]{0,21}(\\.[0-9]*)?([eE][-+]?[0-9]*)?", value in any::<i64>()) {
        let mut scanner = Scanner::new(text.as_bytes());
        if let Ok(read) = scanner.integer() {
            // Whole text read, serde_json sees the same integer (not a float).
            prop_assert_eq!(scanner.finish(), Ok(()));
            let parsed: Value = serde_json::from_str(&text).unwrap();
            prop_assert!(parsed.is_i64() || parsed.is_u64(), "{text}");
            prop_assert_eq!(parsed.as_i64(), Some(read));
        }
        let written = value.to_string();
        match Scanner::new(written.as_bytes()).integer() {
            Ok(read) => prop_assert_eq!(read, value),
            Err(Bail) => prop_assert!(value.unsigned_abs() >= 1_000_000_000_000_000_000),
        }
    }
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        any::<String>().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(any::<String>(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

//! Reading a bundle line's JSON as I-JSON (RFC 7493), which RFC 8785 presumes: a member name
//! that appears twice in one object, and a number an event never holds (a fraction, an
//! exponent, `-0`, or an integer of magnitude 2^53 or more), are noted rather than silently
//! resolved, so a verifier can refuse what two readers could read differently.
//!
//! The value itself keeps the last occurrence of a repeated member (what `serde_json` and
//! Python's `json` do), so the rest of verification behaves as other verifiers' would.
//!
//! The same reading serves JOSE in `mandate-core` (`oauth::jws`): a client assertion's or
//! DPoP proof's header and claims are refused when [`Findings::duplicate`] is set, so a token
//! and a bundle line are read by one implementation.
//!
//! What it is not: a general JSON parser. It is `serde_json` with a visitor that watches.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Integers of this magnitude and more are outside what events hold (§2 of the format).
pub const MAX_INTEGER: u64 = 1 << 53;

/// What was noticed while reading one line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Findings {
    /// The first member name that appeared twice in one object.
    pub duplicate: Option<String>,
    /// The first number outside the events' domain, as read.
    pub number: Option<String>,
}

/// Parse one line (without its newline) into a value, noting what [`Findings`] describes.
pub fn parse(bytes: &[u8]) -> Result<(Value, Findings), serde_json::Error> {
    let findings = RefCell::new(Findings::default());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let v = Watch(&findings).deserialize(&mut de)?;
    de.end()?;
    Ok((v, findings.into_inner()))
}

#[derive(Clone, Copy)]
struct Watch<'f>(&'f RefCell<Findings>);

impl Watch<'_> {
    fn number(&self, n: impl fmt::Display) {
        let mut f = self.0.borrow_mut();
        if f.number.is_none() {
            f.number = Some(n.to_string());
        }
    }
}

impl<'de> DeserializeSeed<'de> for Watch<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Watch<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        if v.unsigned_abs() >= MAX_INTEGER {
            self.number(v);
        }
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        if v >= MAX_INTEGER {
            self.number(v);
        }
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        // serde_json reads a fraction, an exponent, `-0` and integers beyond 64 bits as f64.
        self.number(if v == 0.0 && v.is_sign_negative() {
            "-0".to_string()
        } else {
            v.to_string()
        });
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(self)?;
            if out.contains_key(&k) {
                let mut f = self.0.borrow_mut();
                if f.duplicate.is_none() {
                    f.duplicate = Some(k.clone());
                }
            }
            out.insert(k, v);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn repeated_members_and_numbers_outside_the_domain_are_noted() {
        let (v, f) = parse(br#"{"a":{"r":"A","r":"B"},"n":[1,9007199254740991]}"#).unwrap();
        assert_eq!(f.duplicate.as_deref(), Some("r"));
        assert_eq!(f.number, None);
        assert_eq!(v["a"]["r"], "B", "the last occurrence is kept");
        for (text, number) in [
            ("9007199254740992", "9007199254740992"),
            ("-9007199254740992", "-9007199254740992"),
            ("0.5", "0.5"),
            ("1e2", "100"),
            ("-0", "-0"),
            ("1.0", "1"),
            ("18446744073709551616", "18446744073709552000"),
        ] {
            let (_, f) = parse(format!("{{\"x\":{text}}}").as_bytes()).unwrap();
            assert_eq!(f.number.as_deref(), Some(number), "{text}");
            assert_eq!(f.duplicate, None);
        }
        let (_, f) = parse(br#"{"x":-9007199254740991,"y":0}"#).unwrap();
        assert_eq!(f, Findings::default());
        // Not JSON at all, or a lone surrogate: an error, as before.
        assert!(parse(br#"{"x":1"#).is_err());
        assert!(parse(br#"{"x":"\ud800"}"#).is_err());
        assert!(parse(br#"{"x":NaN}"#).is_err());
    }
}

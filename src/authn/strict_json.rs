//! JSON parsing that refuses duplicate member names at any depth.
//!
//! `{"sub":"alice","sub":"admin"}` means one thing to a parser that keeps the first
//! member and another to one that keeps the last: a parser differential between ward
//! and the upstream is an authorization bypass, so such documents are rejected.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Parses `bytes` as a JSON object with no duplicate member names anywhere.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, String> {
    let StrictValue(v) = serde_json::from_slice(bytes).map_err(|e| {
        if e.to_string().contains("duplicate member") {
            "duplicate JSON member".to_string()
        } else {
            "not JSON".to_string()
        }
    })?;
    match v {
        Value::Object(m) => Ok(m),
        _ => Err("not a JSON object".into()),
    }
}

struct StrictValue(Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
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
        while let Some(StrictValue(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let StrictValue(v) = map.next_value()?;
            if out.insert(key, v).is_some() {
                return Err(de::Error::custom("duplicate member"));
            }
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_objects() {
        let m = parse_object(br#"{"a":1,"b":{"c":[1,"x",null,true,1.5]}}"#).unwrap();
        assert_eq!(m["b"]["c"][1], "x");
    }

    #[test]
    fn rejects_duplicates_at_any_depth() {
        assert_eq!(
            parse_object(br#"{"a":1,"a":2}"#).unwrap_err(),
            "duplicate JSON member"
        );
        assert_eq!(
            parse_object(br#"{"a":{"b":1,"b":1}}"#).unwrap_err(),
            "duplicate JSON member"
        );
        assert_eq!(
            parse_object(br#"{"a":[{"b":1,"b":1}]}"#).unwrap_err(),
            "duplicate JSON member"
        );
        // Escapes that decode to the same name are the same member.
        assert_eq!(
            parse_object(br#"{"sub":1,"s\u0075b":2}"#).unwrap_err(),
            "duplicate JSON member"
        );
    }

    #[test]
    fn rejects_non_objects_and_garbage() {
        assert!(parse_object(b"[1]").is_err());
        assert!(parse_object(b"\"x\"").is_err());
        assert!(parse_object(b"{").is_err());
        assert!(parse_object(b"{} trailing").is_err());
    }
}

//! Decoding Envoy's proto3 JSON: lenient scalars (64-bit integers arrive as strings, wrapper
//! types as bare values or `{"value": n}` in old dumps), and the leading fields of an object
//! read without the rest of it.

use serde::{Deserialize, Deserializer};
use serde_json::Value;
use serde_json::value::RawValue;
use std::fmt;

/// Decodes a number given as a JSON number, a string, or `{"value": n}`.
pub fn flex_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<Value>::deserialize(d)?;
    Ok(v.as_ref().and_then(value_u64))
}

/// The number inside a proto3 JSON scalar or wrapper.
pub fn value_u64(v: &Value) -> Option<u64> {
    match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        Value::Object(m) => m.get("value").and_then(value_u64),
        _ => None,
    }
}

/// The values of `N` fields (each under any of its spellings) of the JSON object `raw`, read
/// only as far as the last of them: Envoy writes a resource's name first, so a resource that
/// is not selected costs a few bytes, not a scan of its body. `None` when `raw` is not an
/// object this reading understands.
pub fn leading<'a, const N: usize>(raw: &'a str, fields: [&[&str]; N]) -> Option<[Option<&'a RawValue>; N]> {
    struct Leading<'f, 'a, const N: usize> {
        fields: [&'f [&'f str]; N],
        found: [Option<&'a RawValue>; N],
        complete: bool,
    }
    impl<'de, const N: usize> serde::de::Visitor<'de> for &mut Leading<'_, 'de, N> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
            while let Some(key) = map.next_key::<&'de str>()? {
                match self.fields.iter().position(|spellings| spellings.contains(&key)) {
                    // The first spelling found counts.
                    Some(i) if self.found[i].is_none() => self.found[i] = Some(map.next_value()?),
                    _ => {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                if self.found.iter().all(Option::is_some) {
                    self.complete = true;
                    return Err(serde::de::Error::custom("complete"));
                }
            }
            Ok(())
        }
    }
    let mut reading = Leading { fields, found: [None; N], complete: false };
    let mut de = serde_json::Deserializer::from_str(raw);
    match serde::Deserializer::deserialize_map(&mut de, &mut reading) {
        Ok(()) => Some(reading.found),
        Err(_) if reading.complete => Some(reading.found),
        Err(_) => None,
    }
}

//! Lenient scalar decoding for proto3 JSON: 64-bit integers arrive as strings, wrapper types
//! as bare values or `{"value": n}` in old dumps.

use serde::{Deserialize, Deserializer};
use serde_json::Value;

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

//! Label maps held compactly: a big mesh holds tens of thousands of objects and subsets, each
//! with a few labels, and a `BTreeMap` spends a half-kilobyte node on even one pair.

use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;

/// Labels in one buffer, sorted by key, each key once.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PackedLabels {
    /// Each key followed by its value.
    text: Box<str>,
    /// Where each key, then its value, ends in `text`.
    ends: Box<[u32]>,
}

impl PackedLabels {
    /// The labels of a `metadata.labels` value: its string entries (a value of another type is
    /// for the typed reading to report).
    pub fn of(labels: &Value) -> PackedLabels {
        labels.as_object().into_iter().flatten().filter_map(|(k, v)| Some((k.as_str(), v.as_str()?))).collect()
    }

    /// The labels, in key order.
    pub fn iter(&self) -> Iter<'_> {
        Iter { labels: self, next: 0 }
    }

    /// The value of label `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        // An object has a handful of labels: a scan is as quick as a search.
        self.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    /// The label keys, in order.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.iter().map(|(k, _)| k)
    }

    /// Whether label `key` is set.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.ends.len() / 2
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The labels as a map, for what takes one.
    pub fn to_map(&self) -> BTreeMap<String, String> {
        self.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn pair(&self, i: usize) -> (&str, &str) {
        let start = if i == 0 { 0 } else { self.ends[2 * i - 1] as usize };
        let (key_end, end) = (self.ends[2 * i] as usize, self.ends[2 * i + 1] as usize);
        (&self.text[start..key_end], &self.text[key_end..end])
    }
}

impl<K: AsRef<str>, V: AsRef<str>> FromIterator<(K, V)> for PackedLabels {
    /// Later pairs win over earlier ones with the same key, as a map's inserts do.
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> PackedLabels {
        let mut pairs: Vec<(K, V)> = pairs.into_iter().collect();
        // Stable, so that of equal keys the last is the one kept below.
        pairs.sort_by(|(a, _), (b, _)| a.as_ref().cmp(b.as_ref()));
        let mut kept: Vec<(&str, &str)> = Vec::with_capacity(pairs.len());
        for (k, v) in &pairs {
            match kept.last_mut() {
                Some(last) if last.0 == k.as_ref() => last.1 = v.as_ref(),
                _ => kept.push((k.as_ref(), v.as_ref())),
            }
        }
        let mut text = String::with_capacity(kept.iter().map(|(k, v)| k.len() + v.len()).sum());
        let mut ends = Vec::with_capacity(kept.len() * 2);
        for part in kept.iter().flat_map(|(k, v)| [k, v]) {
            text.push_str(part);
            // Offsets fit: a snapshot file is far smaller than 4 GiB.
            ends.push(text.len() as u32);
        }
        PackedLabels { text: text.into(), ends: ends.into() }
    }
}

/// The pairs of a [`PackedLabels`], in key order.
pub struct Iter<'l> {
    labels: &'l PackedLabels,
    next: usize,
}

impl<'l> Iterator for Iter<'l> {
    type Item = (&'l str, &'l str);
    fn next(&mut self) -> Option<Self::Item> {
        let pair = (self.next < self.labels.len()).then(|| self.labels.pair(self.next))?;
        self.next += 1;
        Some(pair)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.labels.len() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<'l> IntoIterator for &'l PackedLabels {
    type Item = (&'l str, &'l str);
    type IntoIter = Iter<'l>;
    fn into_iter(self) -> Iter<'l> {
        self.iter()
    }
}

impl From<BTreeMap<String, String>> for PackedLabels {
    fn from(map: BTreeMap<String, String>) -> PackedLabels {
        map.iter().collect()
    }
}

impl fmt::Debug for PackedLabels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl super::Labels for PackedLabels {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key)
    }
}

impl<'de> Deserialize<'de> for PackedLabels {
    /// A map of strings, as a `BTreeMap<String, String>` reads one.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<PackedLabels, D::Error> {
        struct Pairs;
        impl<'de> Visitor<'de> for Pairs {
            type Value = PackedLabels;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PackedLabels, A::Error> {
                let mut pairs: Vec<(String, String)> = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(pairs.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_labels_read_as_a_map_does() {
        let text = r#"{"version": "v2", "app": "reviews", "tier": "", "app": "ratings"}"#;
        let packed: PackedLabels = serde_json::from_str(text).unwrap();
        let map: BTreeMap<String, String> = serde_json::from_str(text).unwrap();
        assert_eq!(packed.to_map(), map);
        assert_eq!((packed.get("app"), packed.get("tier"), packed.get("zone")), (Some("ratings"), Some(""), None));
        assert_eq!(packed.len(), 3);
        assert_eq!((&packed).into_iter().collect::<Vec<_>>(), [("app", "ratings"), ("tier", ""), ("version", "v2")]);
        assert_eq!(packed.iter().skip(1).len(), 2);
        assert_eq!(PackedLabels::from(map.clone()), packed);
        assert!(serde_json::from_str::<PackedLabels>(r#"{"app": 1}"#).is_err());
    }
}

//! Gathering: the edge that produces a [`Snapshot`](crate::snapshot::Snapshot), from saved files
//! (`files`) or from a live cluster (`live`), and writes live captures back out (`write`). Read
//! for one question, saved files are read only as far as it looks (`focus` for the objects,
//! `cut` for the proxies).

pub mod cut;
pub mod files;
pub mod focus;
pub mod live;
pub mod write;

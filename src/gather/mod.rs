//! Gathering: the edge that produces a [`Snapshot`](crate::snapshot::Snapshot), from saved files
//! (`files`) or from a live cluster (`live`), and writes live captures back out (`write`).

pub mod cut;
pub mod files;
pub mod focus;
pub mod live;
pub mod write;

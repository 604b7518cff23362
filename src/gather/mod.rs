//! Gathering: the edge that produces a [`Snapshot`](crate::snapshot::Snapshot), from saved files
//! (this module's `files`) or, in live mode, from a cluster.

pub mod files;

//! mesh-why: explains why Istio traffic for a service is not landing where expected.
//!
//! The flow is one-way: [`gather`] → [`snapshot`] → [`model`] → [`intent`] / [`actual`] → [`diff`] →
//! [`diagnose`] → [`render`]. Everything between gathering and rendering is pure (no I/O, no
//! clock, no network) and runs the same on saved files as on a live cluster.

pub mod actual;
pub mod cli;
pub mod complete;
pub mod diagnose;
pub mod diff;
pub mod envoy;
pub mod error;
pub mod gather;
pub mod intent;
pub mod istio;
pub mod mcp;
pub mod model;
pub mod parallel;
pub mod question;
pub mod render;
pub mod snapshot;
pub mod trace;
pub mod version;
pub mod view;

//! Passes over the compiled graph, each with one purpose.

pub mod dce;
pub mod schedule;

//! Passes over the compiled graph, each with one purpose.

pub mod cse;
pub mod dce;
pub mod persist;
pub mod schedule;

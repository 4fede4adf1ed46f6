//! The `lablink` binary as a library, so the end-to-end tests start the real server in-process.

pub mod cli;
pub mod config;
pub mod credential;
#[cfg(feature = "demo")]
pub mod demo;
pub mod doctor;
pub mod master_key;
pub mod rekey;
pub mod startup;
pub mod telemetry;

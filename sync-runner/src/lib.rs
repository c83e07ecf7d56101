//! The sync engine behind the `xledger-sync` command, its command line, and its Azure Functions
//! custom handler.
//!
//! - [`engine`]: full loads (new and resumed), incremental passes, gap detection, leases,
//!   deadlines; the only place that moves sync state, and only after the lake has the data.
//! - [`cli`] / [`app`]: settings (flags and environment variables) and the commands.
//! - [`serve`] / [`service`]: the Functions custom handler and the engine behind it.
//! - [`demo`]: the credential-free demo on the built-in simulator.
//!
//! This crate is glue: it must never convert data (lake-writer does), talk HTTP to Xledger
//! directly (xledger-client does) or know a state backend (sync-state does).

pub mod app;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod logging;
pub mod memory;
pub mod progress;
pub mod serve;
pub mod service;

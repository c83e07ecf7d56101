//! The `xledger-sync` command: its settings, its commands, its Azure Functions custom handler,
//! all thin glue over the [`sync_engine`] library.
//!
//! - [`cli`] / [`app`]: settings (flags and environment variables) and the commands.
//! - [`serve`] / [`service`]: the Functions custom handler and the engine behind it.
//! - `demo` (feature `demo`, on by default): the credential-free demo on the built-in simulator;
//!   the Functions package is built without it.
//! - [`logging`], [`progress`]: logs for machines and progress bars for people.
//!
//! This crate must never convert data (lake-writer does), talk HTTP to Xledger directly
//! (xledger-client does), decide what to sync (sync-engine does) or know a state backend
//! (sync-state does).

pub mod app;
pub mod cli;
#[cfg(feature = "demo")]
pub mod demo;
pub mod error;
pub mod logging;
pub mod memory;
pub mod progress;
pub mod serve;
pub mod service;

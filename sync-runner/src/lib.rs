//! The sync engine behind `xledger-sync` (issue 7 builds it) and its Azure Functions custom handler.

pub mod serve;

//! sync-state's integration tests, one binary: the backend conformance suite, then what is particular
//! to each backend. (`file_race` has its own binary: it re-executes itself as competing processes;
//! `managed_identity` too: it sets process environment variables.)

mod app_config;
mod conformance;
mod file;
mod support;

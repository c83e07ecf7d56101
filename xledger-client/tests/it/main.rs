//! The client's integration tests, one binary, against wiremock: errors and retries, pagination, the probe, transport.

mod common;
mod errors;
mod pagination;
mod probe;
mod transport;

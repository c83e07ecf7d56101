//! The simulator's integration tests, one binary: the GraphQL surface, data, feeds, faults, admin API, silent changes, scans, webhooks, the generator.

mod admin;
mod common;
mod data;
mod deltas;
mod economy;
mod entities;
mod faults;
mod generator;
mod graphql;
mod silent;
mod webhooks;

//! Integration tests of lake-tables: raw files written with lake-writer's own API, tables caught up
//! from them, compared with the contract's rebuild (and read by DuckDB and Python `deltalake`).

mod faults;
mod readers;
mod scenarios;
mod support;

//! `xledger-sync`: the sync engine's command line (issue 7 builds it).
fn main() {}

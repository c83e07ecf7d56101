//! xledger-sim: a stateful Xledger stand-in (issue 6 builds it).

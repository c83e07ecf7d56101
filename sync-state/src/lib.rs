//! sync-state: durable sync state (issue 5 builds it).

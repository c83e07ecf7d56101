//! xledger-client: a GraphQL client for Xledger (issue 3 builds it).

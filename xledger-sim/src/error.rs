//! Why the simulator could not start or do what it was asked.

/// A simulator error. Never contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The name is not an entity this simulator serves ([`crate::SimConfig::entities`]).
    #[error("unknown entity {entity:?}: the simulator serves {known}")]
    UnknownEntity { entity: String, known: String },
    #[error("invalid simulator configuration: {reason}")]
    InvalidConfig { reason: String },
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: std::net::SocketAddr, source: std::io::Error },
    /// A registry operation document the simulator must understand does not parse.
    #[error("the registry's document {operation} for entity {entity} is not understood: {reason}")]
    Registry { entity: String, operation: String, reason: String },
    #[error("generating the initial rows failed: {reason}")]
    Internal { reason: String },
    /// [`crate::SimHandle::corrupt`] was given a path the row does not have (or under a null object).
    #[error("{entity} row {db_id} has no field {path:?}")]
    NoSuchField { entity: String, db_id: i64, path: String },
    /// A webhook cannot be registered or signed (a URL off loopback, a subscription the simulator
    /// does not serve, an API key that is not base64url).
    #[error("webhook refused: {reason}")]
    InvalidWebhook { reason: String },
}

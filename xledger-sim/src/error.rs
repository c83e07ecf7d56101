//! Why the simulator could not start or do what it was asked.

/// A simulator error. Never contains the API key.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The name is not an entity of the registry (`xledger_model::entities()`).
    #[error("unknown entity {entity:?}: the registry has {known}", known = known_entities())]
    UnknownEntity { entity: String },
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
}

fn known_entities() -> String {
    xledger_model::entities().iter().map(|e| e.name).collect::<Vec<_>>().join(", ")
}

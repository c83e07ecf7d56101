//! The engine's typed errors: what failed, for which entity, doing what.

use lake_writer::LakeError;
use sync_state::StateError;
use xledger_client::{ClientError, ErrorKind};

/// Why an entity's run failed. Every variant names the entity and what the engine was doing;
/// the source says what went wrong underneath (and never carries a secret: the client, the lake
/// and the state store scrub their own).
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Xledger refused or failed a request, after the client's retries.
    #[error("{entity}: {action}: {source}")]
    Api {
        entity: &'static str,
        action: &'static str,
        #[source]
        source: ClientError,
    },
    /// Writing, committing or reading lake files failed, or a node did not convert.
    #[error("{entity}: {action}: {source}")]
    Lake {
        entity: &'static str,
        action: &'static str,
        #[source]
        source: LakeError,
    },
    /// The state store failed (including a compare-and-swap conflict: someone else wrote).
    #[error("{entity}: {action}: {source}")]
    State {
        entity: &'static str,
        action: &'static str,
        #[source]
        source: StateError,
    },
    /// The stored state or the lake says something impossible (a bad run stamp, a node without a
    /// dbId); nothing is written on top of it.
    #[error("{entity}: {reason}")]
    Inconsistent { entity: &'static str, reason: String },
}

impl EngineError {
    pub(crate) fn api(entity: &'static str, action: &'static str) -> impl FnOnce(ClientError) -> EngineError {
        move |source| EngineError::Api { entity, action, source }
    }

    pub(crate) fn lake(entity: &'static str, action: &'static str) -> impl FnOnce(LakeError) -> EngineError {
        move |source| EngineError::Lake { entity, action, source }
    }

    pub(crate) fn state(entity: &'static str, action: &'static str) -> impl FnOnce(StateError) -> EngineError {
        move |source| EngineError::State { entity, action, source }
    }

    /// The entity the failure belongs to.
    pub fn entity(&self) -> &'static str {
        match self {
            EngineError::Api { entity, .. }
            | EngineError::Lake { entity, .. }
            | EngineError::State { entity, .. }
            | EngineError::Inconsistent { entity, .. } => entity,
        }
    }

    /// The kind of Xledger failure, when Xledger's answer caused it.
    pub fn api_kind(&self) -> Option<&ErrorKind> {
        match self {
            EngineError::Api { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

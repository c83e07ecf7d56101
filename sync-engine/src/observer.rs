//! Progress as the engine reports it, for whoever shows it (progress bars, a test's recorder).

use crate::report::{EntityReport, Mode};

/// Told what each entity's run is doing while it runs. The engine's structured log events carry
/// the same facts for machines; an observer is for people (the CLI's progress bars). Every method
/// has a default that does nothing, and none may block: they are called on the pass's tasks.
pub trait Observer: Send + Sync {
    /// An entity's run started, or switched mode (a full load after a gap, changes after a load).
    fn entity_started(&self, _entity: &str, _mode: Mode) {}
    /// Rows written (not yet committed).
    fn rows(&self, _entity: &str, _rows: u64) {}
    /// A file became visible in the lake.
    fn file_committed(&self, _entity: &str, _file: &str) {}
    /// The entity's run ended.
    fn entity_finished(&self, _report: &EntityReport) {}
}

/// Reports nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Observer for Quiet {}

//! Progress for people: one bar per entity on a terminal; nothing extra elsewhere (the engine's
//! structured log events carry the same facts for machines).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use sync_engine::{EntityReport, Mode, Observer};

/// Progress bars (or nothing), as the engine's [`Observer`]. Cheap to clone.
#[derive(Clone, Default)]
pub struct Progress {
    bars: Option<Arc<Bars>>,
}

struct Bars {
    multi: MultiProgress,
    by_entity: Mutex<HashMap<String, ProgressBar>>,
}

impl Progress {
    /// Progress bars on stderr (use only when stderr is a terminal).
    pub fn bars() -> Self {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr_with_hz(4));
        Progress { bars: Some(Arc::new(Bars { multi, by_entity: Mutex::new(HashMap::new()) })) }
    }

    /// No bars (logs only).
    pub fn hidden() -> Self {
        Progress { bars: None }
    }

    /// The underlying `MultiProgress`, so log lines can be printed above the bars.
    pub fn multi(&self) -> Option<MultiProgress> {
        self.bars.as_ref().map(|b| b.multi.clone())
    }

    fn bar(&self, entity: &str) -> Option<ProgressBar> {
        let bars = self.bars.as_ref()?;
        bars.by_entity.lock().ok()?.get(entity).cloned()
    }
}

impl Observer for Progress {
    fn entity_started(&self, entity: &str, mode: Mode) {
        let Some(bars) = &self.bars else { return };
        let Ok(mut map) = bars.by_entity.lock() else { return };
        let bar = map.entry(entity.to_string()).or_insert_with(|| {
            let bar = bars.multi.add(ProgressBar::new_spinner());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix:<16} {msg:<12} {human_pos:>12} rows  {per_sec:>14}  {elapsed_precise}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar.set_prefix(entity.to_string());
            bar
        });
        bar.set_message(mode.as_str().to_string());
    }

    fn rows(&self, entity: &str, rows: u64) {
        if let Some(bar) = self.bar(entity) {
            bar.inc(rows);
        }
    }

    fn file_committed(&self, entity: &str, _file: &str) {
        if let Some(bar) = self.bar(entity) {
            bar.tick();
        }
    }

    fn entity_finished(&self, report: &EntityReport) {
        if let Some(bar) = self.bar(report.entity) {
            bar.finish_with_message(format!("{} — {}", report.mode.as_str(), report.outcome));
        }
    }
}

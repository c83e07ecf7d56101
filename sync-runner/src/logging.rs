//! Logs: JSON lines for machines (Application Insights, CI), text for people.

use tracing_subscriber::EnvFilter;

/// Where log lines go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogDestination {
    /// Under the Functions host: its stdout becomes Application Insights traces.
    Stdout,
    /// Everywhere else, so command output on stdout stays clean.
    Stderr,
}

/// How the process logs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogSettings {
    /// JSON lines (one event per line) rather than text.
    pub json: bool,
    pub destination: LogDestination,
    /// Progress bars are on the terminal: only warnings are printed unless `RUST_LOG` says otherwise.
    pub quiet_for_progress_bars: bool,
}

/// Installs the global subscriber once; a second call (tests) keeps the first.
pub fn init(settings: LogSettings) {
    let default = if settings.quiet_for_progress_bars { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = match (settings.json, settings.destination) {
        (true, LogDestination::Stdout) => {
            builder.json().flatten_event(true).with_current_span(false).with_writer(std::io::stdout).try_init()
        }
        (true, LogDestination::Stderr) => {
            builder.json().flatten_event(true).with_current_span(false).with_writer(std::io::stderr).try_init()
        }
        (false, LogDestination::Stdout) => builder.with_writer(std::io::stdout).try_init(),
        (false, LogDestination::Stderr) => builder.with_writer(std::io::stderr).try_init(),
    };
    let _ = result;
}

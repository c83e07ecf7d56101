//! Logs: JSON lines for machines (Application Insights, CI), text for people.
//!
//! JSON goes to stdout under the Functions host (its stdout becomes Application Insights traces)
//! and to stderr otherwise, so command output on stdout stays clean. With progress bars on a
//! terminal only warnings are printed unless `RUST_LOG` says otherwise.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber once.
pub fn init(json: bool, progress_bars: bool, functions_host: bool) {
    let default = if progress_bars { "warn" } else { "info" };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = match (json, functions_host) {
        (true, true) => {
            builder.json().flatten_event(true).with_current_span(false).with_writer(std::io::stdout).try_init()
        }
        (true, false) => {
            builder.json().flatten_event(true).with_current_span(false).with_writer(std::io::stderr).try_init()
        }
        (false, _) => builder.with_writer(std::io::stderr).try_init(),
    };
    // A second init (tests) keeps the first subscriber.
    let _ = result;
}

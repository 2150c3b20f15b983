//! Logging: `RUST_LOG` filters (default `info`), one line per event.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call is a no-op (tests).
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

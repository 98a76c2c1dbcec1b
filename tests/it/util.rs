//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use synscope::capture;
use synscope::correlate::correlate;
use synscope::linux::SynTiming;
use synscope::timeline::Attempt;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run is CI's, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Replays a capture file through the library, as `synscope replay` does.
pub fn replay(path: &Path) -> (Vec<Attempt>, capture::FileCapture) {
    let mut capture = capture::read_file(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    let events = std::mem::take(&mut capture.events);
    (correlate(events, SynTiming::default(), capture.last_ts), capture)
}

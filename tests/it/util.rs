//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use synscope::correlate::Finished;
use synscope::linux::SynTiming;
use synscope::replay;
use synscope::timeline::Attempt;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Whether this run is CI's, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Replays a capture file through the library's streaming engine, as `synscope replay` does: the
/// attempts in the order it reports them.
pub fn replay(path: &Path) -> (Vec<Attempt>, replay::FileReport) {
    let mut keep = Keep(Vec::new());
    let report = replay::replay_file(path, SynTiming::default(), None, &mut |_| {}, &mut keep, &mut std::io::sink())
        .unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    (keep.0, report)
}

/// Keeps every attempt a replay shows, and checks on the way that the hand-written JSON writer gives
/// exactly serde_json's bytes for it.
struct Keep(Vec<Attempt>);

impl replay::Sink for Keep {
    fn wants(&self, _: &Finished) -> bool {
        true
    }

    fn show(&mut self, attempt: Attempt, _: &mut Vec<u8>) -> anyhow::Result<()> {
        let mut written = Vec::new();
        synscope::render::json::attempt_into(&mut written, &attempt)?;
        let mut reference = serde_json::to_vec(&attempt)?;
        reference.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&reference));
        self.0.push(attempt);
        Ok(())
    }
}

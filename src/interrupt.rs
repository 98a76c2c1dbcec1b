//! Ctrl-C and SIGTERM: a trace stops waiting for `connect()`, a replay stops reading, the lab stops
//! the scenario at hand; each prints what it has (the timeline so far, the summary, the table),
//! cleans up (the `--write` file is flushed, namespaces removed), and exits 130.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// The run was stopped by Ctrl-C or SIGTERM after cleaning up; `main` exits with 130.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: {0}")]
pub struct Interrupted(pub &'static str);

/// Catches Ctrl-C and SIGTERM from now on; `what` says what happens next.
pub fn install(what: &'static str) {
    let _ = ctrlc::set_handler(move || {
        INTERRUPTED.store(true, Ordering::Release);
        eprintln!("synscope: interrupted: {what}");
    });
}

/// Whether an interruption was asked for.
pub fn requested() -> bool {
    INTERRUPTED.load(Ordering::Acquire)
}

/// Sleeps `duration`, waking early when interrupted.
pub fn sleep(duration: Duration) {
    let end = Instant::now() + duration;
    while !requested() {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        std::thread::sleep(left.min(Duration::from_millis(50)));
    }
}

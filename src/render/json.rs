//! JSON Lines output: one object per attempt, then one summary object (DESIGN.md's contract).

use std::io::{self, Write};

use crate::timeline::{Attempt, Summary};

/// Writes one attempt as a JSON line.
pub fn attempt(w: &mut dyn Write, attempt: &Attempt) -> io::Result<()> {
    serde_json::to_writer(&mut *w, attempt)?;
    w.write_all(b"\n")
}

/// Writes the summary as a JSON line.
pub fn summary(w: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *w, summary)?;
    w.write_all(b"\n")
}

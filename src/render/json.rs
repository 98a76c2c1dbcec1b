//! JSON Lines output: one object per attempt, then one summary object (DESIGN.md's contract).

use std::io::{self, Write};

use crate::timeline::{Attempt, Summary};

/// Writes one attempt as a JSON line.
pub fn attempt(w: &mut dyn Write, attempt: &Attempt) -> io::Result<()> {
    serde_json::to_writer(&mut *w, attempt)?;
    w.write_all(b"\n")
}

/// Appends one attempt as a JSON line to `buf`: the replay's hot path, where writing each small
/// fragment through a `dyn Write` costs more than the JSON itself.
pub fn attempt_into(buf: &mut Vec<u8>, attempt: &Attempt) -> io::Result<()> {
    serde_json::to_writer(&mut *buf, attempt)?;
    buf.push(b'\n');
    Ok(())
}

/// Writes the summary as a JSON line.
pub fn summary(w: &mut dyn Write, summary: &Summary) -> io::Result<()> {
    serde_json::to_writer(&mut *w, summary)?;
    w.write_all(b"\n")
}

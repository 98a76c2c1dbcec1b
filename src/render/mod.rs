//! Rendering: attempts and summaries as text for people or JSON Lines for tools, into any `io::Write`.

pub mod json;
pub mod text;

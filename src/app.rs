//! Wiring: runs a parsed command line against the real system and says how it ended.

use std::io::Write;

use crate::capture;
use crate::cli::{Cli, Command, Format, ReplayArgs};
use crate::correlate::correlate;
use crate::linux::SynTiming;
use crate::render::{json, text};
use crate::timeline::{Outcome, Summary};

/// How a run ended, mapped to the exit code by `main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything read (replay) or every attempt established (trace): exit 0.
    Clean,
    /// A connect failed (trace) or the input is damaged and results are partial (replay): exit 1.
    Partial,
}

/// Runs the command, writing its report to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write, style: text::Style) -> anyhow::Result<Status> {
    match &cli.command {
        Command::Replay(args) => replay(args, out, style),
    }
}

fn replay(args: &ReplayArgs, out: &mut dyn Write, style: text::Style) -> anyhow::Result<Status> {
    let capture = capture::read_file(&args.file)?;
    let attempts = correlate(capture.events, SynTiming::default(), capture.last_ts);
    let selected: Vec<_> = attempts
        .into_iter()
        .filter(|a| args.server.is_none_or(|f| f.matches(a.server)))
        .filter(|a| args.client.is_none_or(|f| f.matches(a.client)))
        .filter(|a| !args.failed || a.outcome != Outcome::Established)
        .collect();
    let damage = capture.damage.as_ref().map(|d| format!("{}: {d}", args.file.display()));
    let summary = Summary::of(&selected, capture.packets, capture.undecodable, damage.clone());
    match args.format {
        Format::Json => {
            for attempt in &selected {
                json::attempt(out, attempt)?;
            }
            json::summary(out, &summary)?;
        }
        Format::Text => {
            for attempt in &selected {
                text::attempt(out, attempt, style)?;
            }
            text::summary(out, &summary, &args.file.display().to_string(), style)?;
        }
    }
    out.flush()?;
    if let Some(damage) = damage {
        eprintln!("synscope: {damage}; the attempts above are those read before the damage");
        return Ok(Status::Partial);
    }
    Ok(Status::Clean)
}

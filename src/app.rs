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
    let several = args.files.len() > 1;
    let mut reported = Vec::new();
    let (mut packets, mut undecodable) = (0, 0);
    let mut damages = Vec::new();
    let mut unreadable = None;
    for path in &args.files {
        let capture = match capture::read_file(path) {
            Ok(capture) => capture,
            // One unreadable file must not hide what the others hold: report it and go on.
            Err(err) if several => {
                eprintln!("synscope: error: {err:#}");
                unreadable.get_or_insert(err);
                continue;
            }
            Err(err) => return Err(err),
        };
        packets += capture.packets;
        undecodable += capture.undecodable;
        let attempts = correlate(capture.events, SynTiming::default(), capture.last_ts);
        let selected: Vec<_> = attempts
            .into_iter()
            .filter(|a| args.server.is_none_or(|f| f.matches(a.server)))
            .filter(|a| args.client.is_none_or(|f| f.matches(a.client)))
            .filter(|a| !args.failed || a.outcome != Outcome::Established)
            .collect();
        match args.format {
            Format::Json => {
                for attempt in &selected {
                    json::attempt(out, attempt)?;
                }
            }
            Format::Text => {
                if several {
                    text::file_heading(out, &path.display().to_string(), style)?;
                }
                for attempt in &selected {
                    text::attempt(out, attempt, style)?;
                }
            }
        }
        reported.extend(selected);
        if let Some(damage) = &capture.damage {
            let damage = format!("{}: {damage}", path.display());
            eprintln!("synscope: {damage}; the attempts shown are those read before the damage");
            damages.push(damage);
        }
    }
    let damaged = (!damages.is_empty()).then(|| damages.join("; "));
    let summary = Summary::of(&reported, packets, undecodable, damaged);
    match args.format {
        Format::Json => json::summary(out, &summary)?,
        Format::Text => {
            let source = match args.files.as_slice() {
                [one] => one.display().to_string(),
                many => format!("{} files", many.len()),
            };
            text::summary(out, &summary, &source, style)?;
        }
    }
    out.flush()?;
    if let Some(err) = unreadable {
        return Err(err.context("some files could not be replayed"));
    }
    Ok(if damages.is_empty() { Status::Clean } else { Status::Partial })
}

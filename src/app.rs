//! Wiring: runs a parsed command line against the real system and says how it ended.

use std::io::Write;

use anyhow::Context as _;

use crate::capture;
use crate::cli::{Cli, Command, FamilyChoice, Format, LabArgs, ReplayArgs, TraceArgs};
use crate::correlate::correlate;
use crate::flow::Family;
use crate::interrupt;
use crate::lab::{self, LabConfig};
use crate::linux::SynTiming;
use crate::render::{json, text};
use crate::timeline::{Outcome, Summary};
use crate::trace::{self, TraceConfig};

/// How a run ended, mapped to the exit code by `main`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Everything read (replay) or every attempt established (trace): exit 0.
    Clean,
    /// A connect failed (trace) or the input is damaged and results are partial (replay): exit 1.
    Failed,
}

/// Runs the command, writing its report to `out`.
pub fn run(cli: &Cli, out: &mut dyn Write, style: text::Style) -> anyhow::Result<Status> {
    match &cli.command {
        Command::Trace(args) => trace(args, out, style),
        Command::Replay(args) => replay(args, out, style),
        Command::Lab(args) => lab(args, out, style),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut command, "synscope", out);
            Ok(Status::Clean)
        }
        Command::Man => {
            clap_mangen::Man::new(<Cli as clap::CommandFactory>::command()).render(out)?;
            Ok(Status::Clean)
        }
    }
}

fn lab(args: &LabArgs, out: &mut dyn Write, style: text::Style) -> anyhow::Result<Status> {
    if args.list {
        for s in lab::SCENARIOS {
            writeln!(out, "{:<18} {}", s.name, s.summary)?;
        }
        return Ok(Status::Clean);
    }
    let mut scenarios = Vec::new();
    for name in &args.scenarios {
        let known: Vec<&str> = lab::SCENARIOS.iter().map(|s| s.name).collect();
        let scenario = lab::Scenario::named(name)
            .with_context(|| format!("no scenario `{name}`; there are: {}", known.join(", ")))?;
        scenarios.push(scenario);
    }
    if args.mode == crate::connect::Mode::Blocking && args.timeout.is_some() {
        anyhow::bail!("--timeout needs a non-blocking --mode: select, poll or epoll");
    }
    if let Some(dir) = &args.write {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let families = match args.family {
        FamilyChoice::V4 => vec![Family::Ipv4],
        FamilyChoice::V6 => vec![Family::Ipv6],
        FamilyChoice::Both => vec![Family::Ipv4, Family::Ipv6],
    };
    let config = LabConfig {
        scenarios,
        families,
        mode: args.mode,
        timeout: args.timeout,
        write_dir: args.write.clone(),
        path: args.path,
    };
    // Ctrl-C or SIGTERM: finish the scenario at hand (each is bounded), remove its namespaces, stop.
    interrupt::install("finishing the scenario at hand, then removing its namespaces");
    let runs = lab::run(&config, |run| {
        match args.format {
            Format::Json => {
                let mut value = serde_json::to_value(&run.report.attempt)?;
                if let Some(object) = value.as_object_mut() {
                    object.insert("scenario".into(), run.label().into());
                    object.insert("expected".into(), run.scenario.expected_errno(run.family).into());
                }
                serde_json::to_writer(&mut *out, &value)?;
                writeln!(out)?;
            }
            Format::Text => {
                text::section_heading(out, &format!("lab: {}", run.label()), run.scenario.summary, style)?;
                render_trace(&run.report, Format::Text, out, style)?;
                writeln!(out)?;
            }
        }
        out.flush()?;
        Ok(())
    })?;
    let attempts: Vec<_> = runs.iter().map(|r| r.report.attempt.clone()).collect();
    let packets = runs.iter().filter_map(|r| r.report.capture.as_ref()).map(|c| c.packets).sum();
    let mut summary = Summary::of(&attempts, packets, 0, None);
    summary.dropped =
        Some(runs.iter().filter_map(|r| r.report.capture.as_ref()).map(|c| c.dropped + c.if_dropped).sum());
    match args.format {
        Format::Json => json::summary(out, &summary)?,
        Format::Text => text::lab_table(out, &lab::table(&runs), style)?,
    }
    out.flush()?;
    if interrupt::requested() {
        return Err(interrupt::Interrupted("the namespaces are removed, the results above are partial").into());
    }
    Ok(if runs.iter().all(lab::LabRun::as_expected) { Status::Clean } else { Status::Failed })
}

/// How long a trace keeps capturing after the syscall result, for late ICMP errors and the final ACK.
const TRACE_GRACE: std::time::Duration = std::time::Duration::from_millis(250);

/// The trace configuration a command line asks for.
pub fn trace_config(args: &TraceArgs) -> anyhow::Result<TraceConfig> {
    args.validate().map_err(anyhow::Error::msg)?;
    let family = match (args.ipv4, args.ipv6) {
        (true, _) => Some(Family::Ipv4),
        (_, true) => Some(Family::Ipv6),
        _ => None,
    };
    Ok(TraceConfig {
        host: args.host.clone(),
        port: args.port,
        family,
        source: args.source,
        interface: args.interface.clone(),
        mode: args.mode(),
        timeout: args.timeout,
        syn_retries: args.syn_retries,
        user_timeout: args.user_timeout,
        write: args.write.clone(),
        capture: !args.no_capture,
        grace: TRACE_GRACE,
        path: args.path,
        linger: args.linger,
    })
}

fn trace(args: &TraceArgs, out: &mut dyn Write, style: text::Style) -> anyhow::Result<Status> {
    let config = trace_config(args)?;
    if args.all_addresses {
        return trace_every_address(&config, args.format, out, style);
    }
    if args.count > 1 {
        return trace_repeatedly(&config, args, out, style);
    }
    let report = trace::run(&config)?;
    render_trace(&report, args.format, out, style)?;
    Ok(if report.attempt.outcome == Outcome::Established { Status::Clean } else { Status::Failed })
}

/// `--all-addresses`: each address in getaddrinfo order, with its own verdict, until one connects.
fn trace_every_address(
    config: &TraceConfig,
    format: Format,
    out: &mut dyn Write,
    style: text::Style,
) -> anyhow::Result<Status> {
    let addresses = trace::resolve(&config.host, config.port, config.family)?;
    let mut attempts = Vec::new();
    let mut worked = None;
    for (i, address) in addresses.iter().enumerate() {
        let one = TraceConfig { host: address.ip().to_string(), family: None, ..config.clone() };
        let report = trace::run(&one)?;
        if format == Format::Text {
            let title = format!("address {} of {}: {}", i + 1, addresses.len(), address.ip());
            text::section_heading(out, &title, &config.host, style)?;
        }
        render_trace(&report, format, out, style)?;
        let established = report.attempt.outcome == Outcome::Established;
        attempts.push(report.attempt);
        if established {
            worked = Some(*address);
            break;
        }
    }
    if format == Format::Text {
        match worked {
            Some(a) => writeln!(out, "{}: {} worked after {} attempt(s)", config.host, a, attempts.len())?,
            None => writeln!(out, "{}: none of its {} address(es) worked", config.host, addresses.len())?,
        }
    }
    Ok(if worked.is_some() { Status::Clean } else { Status::Failed })
}

/// `--count N`: one line per attempt, then statistics, like ping; Ctrl-C prints them so far.
fn trace_repeatedly(
    config: &TraceConfig,
    args: &TraceArgs,
    out: &mut dyn Write,
    style: text::Style,
) -> anyhow::Result<Status> {
    interrupt::install("printing the statistics so far");
    let mut attempts = Vec::new();
    let mut packets = 0;
    let mut dropped = 0;
    for n in 1..=args.count {
        let started = std::time::Instant::now();
        let report = trace::run(config)?;
        if let Some(c) = &report.capture {
            packets += c.packets;
            dropped += c.dropped + c.if_dropped;
        }
        match args.format {
            Format::Json => json::attempt(out, &report.attempt)?,
            Format::Text => text::probe_line(out, n, &report.attempt, style)?,
        }
        out.flush()?;
        attempts.push(report.attempt);
        if n == args.count || interrupt::requested() {
            break;
        }
        interrupt::sleep(args.interval.saturating_sub(started.elapsed()));
        if interrupt::requested() {
            break;
        }
    }
    let mut summary = Summary::of(&attempts, packets, 0, None).with_latencies(&attempts);
    summary.dropped = config.capture.then_some(dropped);
    match args.format {
        Format::Json => json::summary(out, &summary)?,
        Format::Text => text::probe_statistics(out, &format!("{}:{}", config.host, config.port), &summary, style)?,
    }
    out.flush()?;
    if interrupt::requested() {
        return Err(interrupt::Interrupted("the statistics above cover the attempts made").into());
    }
    Ok(if attempts.iter().all(|a| a.outcome == Outcome::Established) { Status::Clean } else { Status::Failed })
}

/// Writes a trace report as text (header, timeline, verdict, capture line) or JSON Lines.
pub fn render_trace(
    report: &trace::TraceReport,
    format: Format,
    out: &mut dyn Write,
    style: text::Style,
) -> anyhow::Result<()> {
    let (packets, undecodable) = report.capture.as_ref().map_or((0, 0), |c| (c.packets, c.undecodable));
    match format {
        Format::Json => {
            json::attempt(out, &report.attempt)?;
            let mut summary = Summary::of(std::slice::from_ref(&report.attempt), packets, undecodable, None);
            summary.dropped = report.capture.as_ref().map(|c| c.dropped + c.if_dropped);
            json::summary(out, &summary)?;
        }
        Format::Text => {
            text::trace_header(out, &report.preflight, style)?;
            text::attempt(out, &report.attempt, report.capture.is_some(), style)?;
            text::capture_line(out, report.capture.as_ref(), style)?;
        }
    }
    out.flush()?;
    Ok(())
}

fn replay(args: &ReplayArgs, out: &mut dyn Write, style: text::Style) -> anyhow::Result<Status> {
    let several = args.files.len() > 1;
    let mut bpf = args.bpf.as_deref().map(capture::BpfFilter::new).transpose()?;
    let (mut first, mut last) = (None::<crate::event::Timestamp>, None::<crate::event::Timestamp>);
    let mut reported = Vec::new();
    let (mut packets, mut undecodable) = (0, 0);
    let mut damages = Vec::new();
    let mut unreadable = None;
    for path in &args.files {
        let capture = match capture::read_file_filtered(path, bpf.as_mut()) {
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
        first = match (first, capture.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = last.max(capture.last_ts);
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
                    text::attempt(out, attempt, true, style)?;
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
    let summary = Summary::of(&reported, packets, undecodable, damaged).with_replay_overview(&reported, first, last);
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
    Ok(if damages.is_empty() { Status::Clean } else { Status::Failed })
}

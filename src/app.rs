//! Wiring: runs a parsed command line against the real system and says how it ended.

use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::capture;
use crate::cli::{Cli, Command, FamilyChoice, Format, LabArgs, ReplayArgs, TraceArgs};
use crate::correlate::Finished;
use crate::event::Timestamp;
use crate::flow::Family;
use crate::interrupt;
use crate::lab::{self, LabConfig};
use crate::linux::SynTiming;
use crate::privilege;
use crate::render::{json, text};
use crate::replay;
use crate::timeline::{Attempt, FileRead, Outcome, ReplaySummary, Summary, SummaryEntry};
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
pub fn run(cli: &Cli, out: &mut (dyn Write + Send), style: text::Style) -> anyhow::Result<Status> {
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
    // Ctrl-C or SIGTERM: stop the scenario at hand, remove its namespaces, print the table so far.
    interrupt::install("stopping the scenario at hand, then removing its namespaces");
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
        // One trace needs nothing once its capture is armed; `--count` and `--all-addresses`
        // arm a new capture for each attempt, so they keep the capabilities to capture only.
        drop_privileges: args.count <= 1 && !args.all_addresses,
        show_waiting: std::io::stderr().is_terminal(),
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
    interrupt::install("showing the trace so far");
    let report = trace::run(&config)?;
    render_trace(&report, args.format, out, style)?;
    if report.interrupted {
        return Err(interrupt::Interrupted(
            "connect() had not returned; the timeline above is what happened until then",
        )
        .into());
    }
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
    interrupt::install("showing the traces so far");
    // Each address gets a capture of its own: keep what arming one takes, nothing else.
    privilege::keep_only_capture()?;
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
        if report.interrupted {
            return Err(interrupt::Interrupted("the addresses above are those traced until then").into());
        }
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
    // Each attempt gets a capture of its own: keep what arming one takes, nothing else.
    if config.capture {
        privilege::keep_only_capture()?;
    }
    let mut attempts = Vec::new();
    let mut packets = 0;
    let mut dropped = 0;
    for n in 1..=args.count {
        let started = std::time::Instant::now();
        let report = match trace::run(config) {
            Ok(report) => report,
            // Interrupted before this attempt began: the statistics cover the ones before it.
            Err(err) if err.is::<interrupt::Interrupted>() => break,
            Err(err) => return Err(err),
        };
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

fn replay(args: &ReplayArgs, out: &mut (dyn Write + Send), style: text::Style) -> anyhow::Result<Status> {
    let several = args.files.len() > 1;
    if args.files.iter().filter(|path| capture::is_stdin(path)).count() > 1 {
        anyhow::bail!("`{}` (standard input) can be replayed only once in a run", capture::STDIN);
    }
    let mut bpf = args.bpf.as_deref().map(capture::BpfFilter::new).transpose()?;
    let (mut first, mut last) = (None::<crate::event::Timestamp>, None::<crate::event::Timestamp>);
    let sink = ReplaySink { args, style };
    let mut summary = ReplaySummary::default();
    let replaying = replay::Replaying {
        timing: SynTiming::default(),
        readers: args.threads.map_or(replay::DEFAULT_READERS, usize::from),
        max_open: args.max_open.unwrap_or(replay::DEFAULT_MAX_OPEN),
    };
    let (mut finished_early, mut finished_early_awaiting_ack, mut icmp_quotes_cut, mut attempts_found) = (0, 0, 0, 0);
    // Ctrl-C or SIGTERM: stop reading, show the attempts read so far and the summary, exit 130.
    interrupt::install("showing the attempts read so far and the summary");
    let mut interrupted = false;
    let (mut packets, mut undecodable) = (0, 0);
    let mut damages = Vec::new();
    let mut unreadable = None;
    // (One file needs no order, nor a look at its first record.)
    let files = match args.apart || !several {
        true => args.files.iter().map(|path| (path.as_path(), None)).collect(),
        false => in_time_order(&args.files),
    };
    // The capture the last file left open, when the next continues it.
    let mut goes_on: Option<replay::GoesOn> = None;
    let mut files_read = Vec::new();
    for (i, &(path, _)) in files.iter().enumerate() {
        // (A capture goes on only from the file before.)
        let continues = goes_on.is_some().then(|| capture::source_name(files[i - 1].0));
        // (Each file's frames number on from the records of those read before it.)
        let first_frame = packets + 1;
        if several && args.format == Format::Text {
            text::file_heading(out, &capture::source_name(path), continues.as_deref(), style)?;
        }
        let next_begins = files.get(i + 1).and_then(|&(_, first)| first);
        let piece = replay::Piece { continues: goes_on.take(), next_begins, frames_before: packets };
        let bar = progress_bar(path, several.then_some((i + 1, files.len())));
        let mut progress = |p: replay::Progress| match p.compressed {
            // The bar goes through the compressed file, whose size is known.
            Some((read, _)) => {
                bar.set_position(read);
                let capture = indicatif::HumanBytes(p.bytes);
                bar.set_message(format!("{capture} of capture, {} packets, {} attempts", p.packets, p.attempts));
            }
            None => {
                bar.set_position(p.bytes);
                bar.set_message(format!("{} packets, {} attempts", p.packets, p.attempts));
            }
        };
        // Output to the terminal the bar is drawn on goes around it, or lines start after its text.
        let mut beside_bar;
        let out: &mut (dyn Write + Send) = if !bar.is_hidden() && std::io::stdout().is_terminal() {
            beside_bar = BesideBar { bar: &bar, out: &mut *out };
            &mut beside_bar
        } else {
            &mut *out
        };
        let output = replay::Output { sink: &sink, count: &mut |seen| summary.count(seen), out };
        let result = replay::replay_file(path, replaying, piece, bpf.as_mut(), &mut progress, output);
        bar.finish_and_clear();
        let report = match result {
            Ok((report, going_on)) => {
                goes_on = going_on;
                report
            }
            // One unreadable file must not hide what the others hold: report it and go on.
            Err(err) if several => {
                eprintln!("synscope: error: {err:#}");
                unreadable.get_or_insert(err);
                continue;
            }
            Err(err) => return Err(err),
        };
        files_read.push(FileRead { file: capture::source_name(path), packets: report.packets, first_frame, continues });
        packets += report.packets;
        finished_early += report.finished_early;
        finished_early_awaiting_ack += report.finished_early_awaiting_ack;
        attempts_found += report.attempts;
        icmp_quotes_cut += report.icmp_quotes_cut;
        undecodable += report.undecodable;
        first = match (first, report.first_ts) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        last = last.max(report.last_ts);
        if let Some(damage) = &report.damage {
            let damage = format!("{}: {damage}", capture::source_name(path));
            eprintln!("synscope: {damage}; the attempts shown are those read before the damage");
            damages.push(damage);
        }
        if let Some(at) = report.interrupted_at {
            damages.push(format!("{}: interrupted after {at} bytes; results are partial", capture::source_name(path)));
            interrupted = true;
            break;
        }
        for (link, records) in &report.unsupported_link_types {
            let damage = format!(
                "{}: {records} record(s) of link type {link}, which synscope does not decode",
                capture::source_name(path)
            );
            eprintln!("synscope: {damage}; they were skipped (results are partial)");
            damages.push(damage);
        }
    }
    let damaged = (!damages.is_empty()).then(|| damages.join("; "));
    let mut summary = summary.finish(packets, undecodable, damaged, first, last);
    summary.finished_early = finished_early;
    summary.attempts_found = sink.chooses().then_some(attempts_found);
    summary.icmp_quotes_cut = icmp_quotes_cut;
    if several {
        summary.files = files_read;
    }
    if finished_early > 0 {
        eprintln!(
            "synscope: {}",
            finished_early_warning(finished_early, finished_early_awaiting_ack, replaying.max_open)
        );
    }
    match args.format {
        Format::Json => json::summary(out, &summary)?,
        Format::Text => {
            let source = match args.files.as_slice() {
                [one] => capture::source_name(one),
                many => format!("{} files", many.len()),
            };
            text::summary(out, &summary, &source, style)?;
        }
    }
    out.flush()?;
    if interrupted {
        return Err(interrupt::Interrupted("the attempts and the summary above cover what was read").into());
    }
    if let Some(err) = unreadable {
        return Err(err.context("some files could not be replayed"));
    }
    Ok(if damages.is_empty() { Status::Clean } else { Status::Failed })
}

/// The files of a replay in the order their first records' times give (pipes last, standard input
/// or not, and files that cannot be read or hold no record first, as given), each with that time: pieces of a
/// rotated capture come in the order they were written whatever their names sort as (`trace`,
/// `trace1`, `trace10`, `trace2` ...), and each may continue the one before (see
/// [`replay::continues`]). Only the first window of each file is read here.
fn in_time_order(files: &[PathBuf]) -> Vec<(&Path, Option<Timestamp>)> {
    // (A pipe is read as it comes: it has no first time to go by, and never continues.)
    let mut files: Vec<(&Path, Option<Timestamp>)> = files
        .iter()
        .map(|path| {
            let first = (!capture::is_stream(path)).then(|| capture::first_record_time(path).ok().flatten()).flatten();
            (path.as_path(), first)
        })
        .collect();
    files.sort_by_key(|&(path, first)| (capture::is_stream(path), first));
    files
}

/// What `replay` shows of each attempt (on the thread that words them), and its summary.
struct ReplaySink<'a> {
    args: &'a ReplayArgs,
    style: text::Style,
}

impl ReplaySink<'_> {
    /// Whether [`replay::Sink::wants`] may leave attempts out (`--server`, `--client`, `--failed`).
    fn chooses(&self) -> bool {
        self.args.server.is_some() || self.args.client.is_some() || self.args.failed
    }
}

impl replay::Sink for ReplaySink<'_> {
    type Seen = SummaryEntry;

    fn wants(&self, attempt: &Finished) -> bool {
        let key = attempt.key();
        self.args.server.is_none_or(|f| f.matches(key.server))
            && self.args.client.is_none_or(|f| f.matches(key.client))
            && (!self.args.failed || !attempt.established())
    }

    fn show(&self, attempt: &Attempt, out: &mut Vec<u8>) -> anyhow::Result<SummaryEntry> {
        match self.args.format {
            Format::Json => json::attempt_into(out, attempt)?,
            Format::Text => text::attempt_into(out, attempt, true, self.style),
        }
        Ok(SummaryEntry::of(attempt))
    }

    fn show_finished(
        &self,
        attempt: &Finished,
        out: &mut Vec<u8>,
        scratch: &mut String,
    ) -> Option<anyhow::Result<SummaryEntry>> {
        let handshake = attempt.handshake()?;
        let written = match self.args.format {
            Format::Json => json::handshake_into(out, &handshake, scratch),
            Format::Text => {
                text::handshake_into(out, &handshake, scratch, self.style);
                Ok(())
            }
        };
        Some(written.map(|()| SummaryEntry::established(handshake.rtt_ms(), handshake.server())).map_err(Into::into))
    }
}

/// Writes to the terminal a progress bar is drawn on: the bar is cleared before each write and
/// drawn again after it (`ProgressBar::suspend`), so that no line of output starts after the
/// bar's text, which a write between two of its draws would leave in front of it.
struct BesideBar<'a> {
    bar: &'a indicatif::ProgressBar,
    out: &'a mut (dyn Write + Send),
}

impl Write for BesideBar<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bar.suspend(|| self.out.write(buf))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.bar.suspend(|| self.out.flush())
    }
}

/// A progress bar on stderr (bytes read, packets, attempts so far) when stderr is a terminal;
/// hidden otherwise, so logs and pipes stay clean. `of_files`: which file it is of how many.
fn progress_bar(path: &std::path::Path, of_files: Option<(usize, usize)>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    // A pipe's size is not known: then the bar shows how far it has come, not how far to go.
    let (bar, template) = match capture::source_size(path) {
        capture::SourceSize::Capture(size) => (
            indicatif::ProgressBar::new(size),
            "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}, {msg} ({eta} left)",
        ),
        capture::SourceSize::Compressed(size) => (
            indicatif::ProgressBar::new(size),
            "{prefix} [{bar:30}] {bytes}/{total_bytes} compressed {bytes_per_sec}, {msg} ({eta} left)",
        ),
        capture::SourceSize::Unknown => {
            (indicatif::ProgressBar::no_length(), "{prefix} {spinner} {bytes} {bytes_per_sec}, {msg}")
        }
    };
    let style = indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    let name = match path.file_name() {
        Some(name) if !capture::is_stdin(path) => name.to_string_lossy().into_owned(),
        _ => capture::source_name(path),
    };
    match of_files {
        // (Which of the files: a rotated capture may come in hundreds of pieces.)
        Some((nth, of)) => bar.set_prefix(format!("{name} ({nth}/{of})")),
        None => bar.set_prefix(name),
    }
    bar
}

/// What stderr says when `finished` attempts were finished before their time because more than
/// `max_open` were open at once, `awaiting_ack` of them established and waiting only for the
/// client's ACK. Mostly those, the capture holds no ACKs (a filter that keeps SYN and RST, as the
/// README's live pipe does), and the attempts were no flood: they were kept open for seconds, for
/// a retransmitted SYN that would overturn them (`retire::expires_at`).
fn finished_early_warning(finished: u64, awaiting_ack: u64, max_open: usize) -> String {
    let why = if 2 * awaiting_ack > finished {
        format!(
            ". {awaiting_ack} of them were established and waited only for the client's ACK, which this capture seems not to hold (was it filtered to SYN and RST?): each is kept open for seconds, in case a retransmitted SYN shows that the client never saw the SYN-ACK"
        )
    } else {
        " (a SYN flood?)".to_string()
    };
    format!(
        "{finished} attempt(s) were finished before their time, on the evidence seen so far, because more than {max_open} were open at once{why}. Those whose outcome could still change have the finding decided_early; --max-open raises the bound, at about 0.8 KiB an attempt"
    )
}

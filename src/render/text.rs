//! Text output: an annotated timeline per attempt, its verdict and cause, and a summary table.

use std::io::{self, Write};
use std::net::SocketAddr;

use colored::{Color, Colorize};

use super::json;
use crate::correlate::Handshake;
use crate::event::{Span, Timestamp};
use crate::flow::{AddrText, Dir, Family};
use crate::linux::Errno;
use crate::timeline::{Attempt, ErrnoSource, Outcome, Summary, What};

/// How to draw text output.
#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    /// Use ANSI colours.
    pub color: bool,
}

impl Style {
    fn paint(self, s: &str, color: Color) -> String {
        if self.color {
            s.color(color).to_string()
        } else {
            s.to_string()
        }
    }

    fn bold(self, s: &str) -> String {
        if self.color {
            s.bold().to_string()
        } else {
            s.to_string()
        }
    }

    fn dim(self, s: &str) -> String {
        if self.color {
            s.dimmed().to_string()
        } else {
            s.to_string()
        }
    }
}

/// How [`Style::put`] draws a piece of text when colour is on.
#[derive(Clone, Copy)]
enum Look {
    Bold,
    Dim,
    Paint(Color),
}

impl Style {
    /// Appends `s` to `buf` drawn in `look`: as it is without colour, and as `colored` draws it
    /// with colour (its codes, and its own say, from `colored::control`, in whether to draw).
    fn put(self, buf: &mut Vec<u8>, s: &str, look: Look) {
        if !self.color {
            buf.extend_from_slice(s.as_bytes());
            return;
        }
        let drawn = match look {
            Look::Bold => s.bold(),
            Look::Dim => s.dimmed(),
            Look::Paint(color) => s.color(color),
        };
        let _ = write!(buf, "{drawn}");
    }
}

fn outcome_color(outcome: Outcome) -> Color {
    match outcome {
        Outcome::Established => Color::Green,
        Outcome::Refused | Outcome::Unreachable | Outcome::LocalError => Color::Red,
        Outcome::TimedOut | Outcome::Aborted => Color::Yellow,
    }
}

/// `2026-11-24 23:38:36.123456 UTC` from a timestamp (proleptic Gregorian, Howard Hinnant's
/// `civil_from_days`).
pub fn utc(ts: Timestamp) -> String {
    let mut buf = Vec::with_capacity(30);
    utc_into(&mut buf, ts);
    String::from_utf8(buf).unwrap_or_default()
}

/// [`utc`], appended to `buf`: digit by digit, as every attempt's header has one.
fn utc_into(buf: &mut Vec<u8>, ts: Timestamp) {
    let secs = ts.0.div_euclid(1_000_000_000);
    let micros = ts.0.rem_euclid(1_000_000_000) / 1_000;
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    // (A timestamp's i64 nanoseconds span the years 1677 to 2262: four digits.)
    match u64::try_from(year).ok().filter(|year| *year <= 9999) {
        Some(year) => {
            buf.extend_from_slice(&json::PAIRS[(year / 100) as usize]);
            buf.extend_from_slice(&json::PAIRS[(year % 100) as usize]);
        }
        None => {
            let _ = write!(buf, "{year:04}");
        }
    }
    for (separator, value) in [(b'-', month), (b'-', day), (b' ', tod / 3600), (b':', tod / 60 % 60), (b':', tod % 60)]
    {
        buf.push(separator);
        buf.extend_from_slice(&json::PAIRS[value as usize]);
    }
    buf.push(b'.');
    buf.extend_from_slice(&json::six_digits(micros as usize));
    buf.extend_from_slice(b" UTC");
}

/// `ECONNREFUSED (111: Connection refused)`, appended to `out`.
fn errno_words(out: &mut String, errno: Errno) {
    out.push_str(errno.name());
    out.push_str(" (");
    out.push_str(itoa::Buffer::new().format(errno.number()));
    out.push_str(": ");
    out.push_str(errno.strerror());
    out.push(')');
}

/// Writes one attempt: header, timeline, verdict and cause. `captured` is false for a trace made
/// with `--no-capture`, whose SYNs were not counted.
pub fn attempt(w: &mut dyn Write, a: &Attempt, captured: bool, style: Style) -> io::Result<()> {
    let mut buf = Vec::with_capacity(1024);
    attempt_into(&mut buf, a, captured, style);
    w.write_all(&buf)
}

/// [`attempt`], appended to `buf`: in pieces, not through format arguments and the strings they
/// make, as a replay words millions of attempts (they took 4.5 times the instructions of the same
/// attempts in JSON).
pub fn attempt_into(buf: &mut Vec<u8>, a: &Attempt, captured: bool, style: Style) {
    header_into(buf, a.client, a.server, a.family, a.start, style);
    for e in &a.events {
        let line =
            Line { t: e.t, dir: e.dir, what: e.what, ignored: e.ignored, summary: &e.summary, note: e.note.as_deref() };
        timeline_line(buf, &line, style);
    }
    let verdict = Verdict {
        outcome: a.outcome,
        errno: a.errno,
        decided_after: a.decided_after,
        syns: captured.then_some(a.syn_count),
        source: a.errno_source,
        cause: &a.cause,
    };
    verdict_into(buf, &verdict, style);
    for finding in &a.findings {
        buf.extend_from_slice(b"  ");
        style.put(buf, &format!("[{}]", finding.code), Look::Paint(Color::Magenta));
        buf.push(b' ');
        buf.extend_from_slice(finding.summary.as_bytes());
        buf.push(b'\n');
    }
    if let Some(path) = &a.path {
        // (Writing to a vector cannot fail.)
        let _ = path_report(buf, path, style);
    }
    buf.push(b'\n');
}

/// Appends a clean three-way handshake to `buf` as [`attempt_into`] writes its report, from the
/// evidence without the report (see [`Handshake`]), as JSON's is (`json::handshake_into`).
/// `scratch` is room for its words, reused from one attempt to the next.
pub fn handshake_into(buf: &mut Vec<u8>, h: &Handshake<'_>, scratch: &mut String, style: Style) {
    header_into(buf, h.client(), h.server(), h.family(), h.start(), style);
    for step in h.steps() {
        scratch.clear();
        step.summary_into(scratch);
        let summary_len = scratch.len();
        let noted = step.note_into(scratch);
        let (summary, note) = scratch.split_at(summary_len);
        let line = Line {
            t: step.t(),
            dir: step.dir(),
            what: step.what(),
            ignored: false,
            summary,
            note: noted.then_some(note),
        };
        timeline_line(buf, &line, style);
    }
    scratch.clear();
    h.cause_into(scratch);
    let verdict = Verdict {
        outcome: Outcome::Established,
        errno: None,
        decided_after: Some(h.decided_after()),
        syns: Some(1),
        source: ErrnoSource::Inferred,
        cause: scratch,
    };
    verdict_into(buf, &verdict, style);
    buf.push(b'\n');
}

/// An attempt's first line: `192.0.2.10:43512 → 198.51.100.7:80  IPv4  2024-01-01 00:00:00.000000 UTC`.
fn header_into(
    buf: &mut Vec<u8>,
    client: SocketAddr,
    server: SocketAddr,
    family: Family,
    start: Timestamp,
    style: Style,
) {
    style.put(buf, AddrText::socket(client).as_str(), Look::Bold);
    buf.extend_from_slice(" → ".as_bytes());
    style.put(buf, AddrText::socket(server).as_str(), Look::Bold);
    buf.extend_from_slice(match family {
        Family::Ipv4 => b"  IPv4  ",
        Family::Ipv6 => b"  IPv6  ",
    });
    utc_into(buf, start);
    buf.push(b'\n');
}

/// What an attempt's verdict line and cause say (see [`verdict_into`]).
struct Verdict<'a> {
    outcome: Outcome,
    errno: Option<Errno>,
    decided_after: Option<f64>,
    /// The SYNs sent, or `None` when they were not captured (`trace --no-capture`).
    syns: Option<u32>,
    source: ErrnoSource,
    cause: &'a str,
}

/// An attempt's verdict line and its cause: `  ⇒ refused: ECONNREFUSED (111: Connection refused)
/// after 1.2 ms  (1 SYN; inferred from the packets)`, then `  why: ...`.
fn verdict_into(buf: &mut Vec<u8>, v: &Verdict<'_>, style: Style) {
    let color = outcome_color(v.outcome);
    let mut verdict = String::with_capacity(128);
    match (v.errno, v.outcome) {
        (Some(errno), _) => {
            verdict.push_str(v.outcome.name());
            verdict.push_str(": ");
            errno_words(&mut verdict, errno);
        }
        (None, Outcome::Aborted) => verdict.push_str("aborted: the application stopped waiting"),
        (None, _) => {
            verdict.push_str(v.outcome.name());
            verdict.push_str(": connect() returned 0");
        }
    }
    if let Some(t) = v.decided_after {
        verdict.push_str(" after ");
        let _ = Span((t * 1e9) as i64).write_to(&mut verdict);
    }
    if v.errno.is_none() && v.outcome == Outcome::Aborted {
        verdict.push_str(", before the kernel decided");
    }
    buf.extend_from_slice(b"  ");
    style.put(buf, "⇒", Look::Paint(color));
    buf.push(b' ');
    style.put(buf, &verdict, Look::Paint(color));
    buf.extend_from_slice(b"  (");
    match v.syns {
        None => buf.extend_from_slice(b"SYNs not captured"),
        Some(1) => buf.extend_from_slice(b"1 SYN"),
        Some(n) => {
            buf.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
            buf.extend_from_slice(b" SYNs");
        }
    }
    buf.extend_from_slice(match v.source {
        ErrnoSource::Syscall => b"; returned by connect())\n",
        ErrnoSource::Inferred => b"; inferred from the packets)\n",
    });
    buf.extend_from_slice(b"  ");
    style.put(buf, "why:", Look::Bold);
    buf.push(b' ');
    buf.extend_from_slice(v.cause.as_bytes());
    buf.push(b'\n');
}

/// Writes `--path`: one line per hop, then where the SYN is last seen.
fn path_report(w: &mut dyn Write, path: &crate::timeline::PathReport, style: Style) -> io::Result<()> {
    use crate::timeline::HopAnswer;
    writeln!(w, "  {}", style.bold("path (hop by hop, as TCP traceroute):"))?;
    for hop in &path.hops {
        let answer = match &hop.answer {
            HopAnswer::TimeExceeded { from } => format!("{from}  time exceeded"),
            HopAnswer::Unreachable { from, icmp_type, code } => {
                format!("{from}  unreachable (type {icmp_type}/code {code})")
            }
            HopAnswer::Server => "the server answers (SYN-ACK)".to_string(),
            HopAnswer::Refused => "RST".to_string(),
            HopAnswer::LocalError { error: e } => format!("not sent: {e}"),
            HopAnswer::NoAnswer => "*".to_string(),
        };
        let rtt = hop.rtt_ms.map_or(String::new(), |r| format!("  {r:.3} ms"));
        writeln!(w, "    {:>2}  {answer}{rtt}", hop.ttl)?;
    }
    writeln!(w, "  {} {}", style.paint("→", Color::Cyan), path.verdict)
}

/// One entry of a timeline, as [`timeline_line`] writes it.
struct Line<'a> {
    t: f64,
    dir: Dir,
    what: What,
    ignored: bool,
    summary: &'a str,
    note: Option<&'a str>,
}

/// One entry of the timeline: `  +0.032613 ← SYN-ACK      Flags [S.], ...  — note`, its offset
/// right-aligned in 11 columns, its label left-aligned in 12.
fn timeline_line(buf: &mut Vec<u8>, e: &Line<'_>, style: Style) {
    const OFFSET_WIDTH: usize = 11;
    const LABEL_WIDTH: usize = 12;
    buf.extend_from_slice(b"  ");
    let offset_at = buf.len();
    match json::plain_micros(e.t).and_then(|micros| u64::try_from(micros).ok()) {
        // What `{:.6}` writes of the time: it is the double nearest to so many microseconds (see
        // `plain_micros`), so its six decimals are those microseconds.
        Some(micros) => {
            buf.push(b'+');
            json::integer(buf, micros / 1_000_000);
            buf.push(b'.');
            buf.extend_from_slice(&json::six_digits((micros % 1_000_000) as usize));
        }
        None => {
            let _ = write!(buf, "+{:.6}", e.t);
        }
    }
    let written = buf.len() - offset_at;
    if written < OFFSET_WIDTH {
        buf.splice(offset_at..offset_at, std::iter::repeat_n(b' ', OFFSET_WIDTH - written));
    }
    buf.push(b' ');
    buf.extend_from_slice(e.dir.arrow().as_bytes());
    buf.push(b' ');
    let label = e.what.label();
    let look = if e.ignored { Look::Dim } else { Look::Bold };
    if style.color {
        style.put(buf, &format!("{label:<LABEL_WIDTH$}"), look);
    } else {
        buf.extend_from_slice(label.as_bytes());
        buf.extend(std::iter::repeat_n(b' ', LABEL_WIDTH.saturating_sub(label.chars().count())));
    }
    buf.push(b' ');
    buf.extend_from_slice(e.summary.as_bytes());
    if let Some(note) = e.note {
        buf.extend_from_slice("  — ".as_bytes());
        style.put(buf, note, if e.ignored { Look::Dim } else { Look::Paint(Color::Cyan) });
    }
    buf.push(b'\n');
}

/// Writes a trace's header: target, route, socket and mode, the SYN deadline, the capture.
pub fn trace_header(w: &mut dyn Write, p: &crate::trace::Preflight, style: Style) -> io::Result<()> {
    let others: Vec<String> = p.resolved.iter().skip(1).map(|a| a.ip().to_string()).collect();
    let also = if others.is_empty() { String::new() } else { format!(" (also: {})", others.join(", ")) };
    let name = if p.host == p.target.ip().to_string() { String::new() } else { format!("{} → ", p.host) };
    writeln!(w, "{} {name}{}{also}", style.bold("trace"), style.bold(&p.target.to_string()))?;
    let route = match &p.route {
        Ok(route) => route.describe(),
        Err(reason) => style.paint(&format!("none: {reason}"), Color::Red),
    };
    writeln!(w, "  route     {route}")?;
    let wait = match p.timeout {
        Some(t) => format!("{} connect(), gives up after {}", p.mode.name(), Span(t.as_nanos() as i64)),
        None => format!("{} connect()", p.mode.name()),
    };
    writeln!(w, "  socket    {} → {}, {wait}", p.flow.client, p.flow.server)?;
    let schedule = p.timing.schedule();
    let at: Vec<String> = schedule.retransmits.iter().map(|s| format!("{}", s.0 / 1_000_000_000)).collect();
    let why = match p.timing.user_timeout {
        Some(t) => format!("TCP_USER_TIMEOUT {t}"),
        None => {
            format!("tcp_syn_retries={}, tcp_syn_linear_timeouts={}", p.timing.syn_retries, p.timing.linear_timeouts)
        }
    };
    writeln!(
        w,
        "  deadline  ETIMEDOUT {} after the first SYN ({why}; retransmits at {} s)",
        schedule.deadline,
        if at.is_empty() { "-".to_string() } else { at.join(", ") }
    )?;
    match &p.capture {
        Some((device, filter)) => writeln!(w, "  capture   {device}: {}", style.dim(filter))?,
        None => writeln!(w, "  capture   none (--no-capture)")?,
    }
    if let Some(privileges) = &p.privileges {
        writeln!(w, "  privilege {privileges}")?;
    }
    writeln!(w)
}

/// Writes what the live capture saw and lost.
pub fn capture_line(w: &mut dyn Write, capture: Option<&crate::capture::LiveResult>, style: Style) -> io::Result<()> {
    if let Some(c) = capture {
        let dropped = c.dropped + c.if_dropped;
        let lost = if dropped == 0 {
            style.paint("0 dropped", Color::Green)
        } else {
            style.paint(&format!("{dropped} dropped"), Color::Red)
        };
        writeln!(w, "  capture: {} packet(s) for this attempt, {lost}", c.packets)?;
    }
    Ok(())
}

/// One `--count` attempt on one line: outcome, errno, handshake RTT, connect() latency, SYNs.
pub fn probe_line(w: &mut dyn Write, n: u32, a: &Attempt, style: Style) -> io::Result<()> {
    let verdict = match a.errno {
        Some(e) => format!("{} {}", a.outcome.name(), e.name()),
        None => a.outcome.name().to_string(),
    };
    let rtt = a.rtt_ms.map_or("rtt -".to_string(), |r| format!("rtt {r:.3} ms"));
    let latency = match (a.outcome, a.decided_after) {
        (Outcome::Aborted, _) | (_, None) => "connect() -".to_string(),
        (_, Some(t)) => format!("connect() {:.3} ms", t * 1e3),
    };
    writeln!(
        w,
        "[{n}] {} → {}  {}  {rtt}  {latency}  {} SYN(s)",
        a.client,
        a.server,
        style.paint(&format!("{verdict:<28}"), outcome_color(a.outcome)),
        a.syn_count
    )
}

/// The statistics after `--count` attempts, as ping prints them.
pub fn probe_statistics(w: &mut dyn Write, target: &str, s: &Summary, style: Style) -> io::Result<()> {
    writeln!(w, "{}", style.bold(&format!("--- {target} synscope statistics ---")))?;
    let outcomes: Vec<String> =
        Outcome::ALL.iter().filter_map(|o| s.outcomes.get(o.name()).map(|n| format!("{n} {}", o.name()))).collect();
    let errnos: Vec<String> = s.errnos.iter().map(|(e, n)| format!("{n} {e}")).collect();
    let errnos = if errnos.is_empty() { String::new() } else { format!(" ({})", errnos.join(", ")) };
    writeln!(w, "{} attempt(s): {}{errnos}", s.attempts, outcomes.join(", "))?;
    for (name, stats) in [("handshake rtt", s.rtt_ms), ("connect() latency", s.connect_ms)] {
        if let Some(st) = stats {
            writeln!(w, "{name} min/avg/max/stddev = {:.3}/{:.3}/{:.3}/{:.3} ms", st.min, st.avg, st.max, st.stddev)?;
        }
    }
    if let Some(d) = s.dropped.filter(|d| *d > 0) {
        writeln!(w, "{}", style.paint(&format!("the capture dropped {d} packet(s)"), Color::Red))?;
    }
    Ok(())
}

/// Writes the heading of one section: a lab scenario, or one address of `--all-addresses`.
pub fn section_heading(w: &mut dyn Write, title: &str, summary: &str, style: Style) -> io::Result<()> {
    writeln!(w, "{} {}", style.bold(&format!("━━ {title}")), style.dim(&format!("— {summary}")))
}

/// Writes the lab's closing table.
pub fn lab_table(w: &mut dyn Write, rows: &[[String; 5]], style: Style) -> io::Result<()> {
    let width = rows.iter().map(|[label, ..]| label.chars().count()).max().unwrap_or(0).max(22);
    let heading = format!("{:<width$} {:<14} {:>10} {:>5}  {}", "scenario", "errno", "time", "SYNs", "");
    writeln!(w, "{}", style.bold(&heading))?;
    for [label, errno, time, syns, check] in rows {
        let check = if check.starts_with("expected") { style.paint(check, Color::Red) } else { style.dim(check) };
        writeln!(w, "{label:<width$} {errno:<14} {time:>10} {syns:>5}  {check}")?;
    }
    Ok(())
}

/// Writes the heading that separates files when several are replayed.
pub fn file_heading(w: &mut dyn Write, file: &str, continues: Option<&str>, style: Style) -> io::Result<()> {
    match continues {
        Some(before) => writeln!(w, "{}", style.bold(&format!("══ {file} (continues the capture of {before})"))),
        None => writeln!(w, "{}", style.bold(&format!("══ {file}"))),
    }
}

/// Writes the summary table: attempts per outcome and per errno.
pub fn summary(w: &mut dyn Write, s: &Summary, source: &str, style: Style) -> io::Result<()> {
    writeln!(
        w,
        "{}",
        style.bold(&format!(
            "{source}: {} attempt(s){} in {} packet(s), {} undecodable",
            s.attempts,
            s.attempts_found.map_or(String::new(), |found| format!(" shown of {found}")),
            s.packets,
            s.undecodable
        ))
    )?;
    for outcome in Outcome::ALL {
        if let Some(n) = s.outcomes.get(outcome.name()) {
            writeln!(w, "  {:<14}{n:>6}", style.paint(outcome.name(), outcome_color(outcome)))?;
        }
    }
    for errno in Errno::ALL {
        if let Some(n) = s.errnos.get(errno.name()) {
            writeln!(w, "  {:<14}{n:>6}  {}", errno.name(), errno.strerror())?;
        }
    }
    if let Some(span) = s.span {
        let first = Timestamp((span.first * 1e9) as i64);
        let last = Timestamp((span.last * 1e9) as i64);
        writeln!(w, "  span          {} → {} ({})", utc(first), utc(last), Span((span.seconds * 1e9) as i64))?;
    }
    if let Some(st) = s.rtt_ms {
        writeln!(
            w,
            "  handshake rtt p50/p90/p99 = {:.3}/{:.3}/{:.3} ms over {} established attempt(s)",
            st.p50, st.p90, st.p99, st.count
        )?;
    }
    if !s.top_failing_servers.is_empty() {
        writeln!(w, "  most failures:")?;
        for server in &s.top_failing_servers {
            let errnos: Vec<String> = server.errnos.iter().map(|(e, n)| format!("{e} ×{n}")).collect();
            writeln!(w, "    {:<28} {:>6}  {}", server.server, server.failures, errnos.join(", "))?;
        }
    }
    // Counts that qualify the results, when there are any.
    let notices = [
        (
            "finished early:",
            s.finished_early,
            "attempt(s), on the evidence seen so far: more were open at once than replay --max-open keeps",
        ),
        (
            "cut quotes:",
            s.icmp_quotes_cut,
            "ICMP error(s) cut inside their quote by the capture's snap length: matched to attempts by less than Linux matches them (finding icmp_quote_cut); capture with tcpdump -s 0 to be sure",
        ),
    ];
    for (label, count, what) in notices.into_iter().filter(|&(_, count, _)| count > 0) {
        writeln!(w, "  {} {count} {what}", style.paint(label, Color::Yellow))?;
    }
    if let Some(damage) = &s.damaged {
        writeln!(w, "  {} {damage}; results are partial", style.paint("damaged:", Color::Red))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A label longer than the column (`host-unreachable-far-v4`) widens it: the errno column starts
    /// at the same place on every line.
    #[test]
    fn test_lab_table_columns_line_up() {
        let row = |label: &str| [label, "EHOSTUNREACH", "40.3 ms", "1", "as expected"].map(str::to_string);
        for labels in
            [&["refused-v4"][..], &["refused-v4", "host-unreachable-far-v4", "a-label-longer-than-that-one-v6"]]
        {
            let rows: Vec<[String; 5]> = labels.iter().map(|label| row(label)).collect();
            let mut out = Vec::new();
            lab_table(&mut out, &rows, Style { color: false }).expect("write");
            let text = String::from_utf8(out).expect("utf-8");
            let errno_at: Vec<usize> = text
                .lines()
                .map(|line| line.find(" errno").or_else(|| line.find(" EHOSTUNREACH")).expect("an errno column"))
                .collect();
            assert_eq!(errno_at.len(), labels.len() + 1, "{text}");
            assert!(errno_at.iter().all(|&at| at == errno_at[0]), "{text}");
            assert_eq!(errno_at[0], labels.iter().map(|l| l.len()).max().unwrap_or(0).max(22), "{text}");
        }
    }

    #[test]
    fn test_utc_known_dates() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(utc(Timestamp::from_parts(1_700_000_000, 123_456_000)), "2023-11-14 22:13:20.123456 UTC");
        assert_eq!(utc(Timestamp::from_parts(951_782_400, 0)), "2000-02-29 00:00:00.000000 UTC");
        // The earliest and latest a timestamp holds, and the last microsecond of a year.
        assert_eq!(utc(Timestamp(i64::MIN)), "1677-09-21 00:12:43.145224 UTC");
        assert_eq!(utc(Timestamp(i64::MAX)), "2262-04-11 23:47:16.854775 UTC");
        assert_eq!(utc(Timestamp::from_parts(1_704_067_199, 999_999_999)), "2023-12-31 23:59:59.999999 UTC");
    }

    /// A timeline line written in pieces reads as the format arguments it replaced wrote it: the
    /// offset as `{:.6}` right-aligned in 11 columns (times that are whole microseconds, and
    /// others, negative, tiny or huge, which take the formatter), the label padded to 12.
    #[test]
    fn test_timeline_line_reads_as_its_format() {
        let times =
            [0.0, 0.032613, 1.5, 3.000001, 131.0, 1e-6, 5e-6, 1e-7, 0.0000125, -0.001, -0.0, 12345.678901, 1e10];
        for t in times {
            for (what, ignored, note) in [(What::Syn, false, None), (What::IcmpUnreachable, true, Some("ignored: x"))] {
                let entry = Line { t, dir: Dir::In, what, ignored, summary: "Flags [S.], seq 1", note };
                let mut line = Vec::new();
                timeline_line(&mut line, &entry, Style { color: false });
                let offset = format!("+{t:.6}");
                let label = format!("{:<12}", what.label());
                let note = note.map_or(String::new(), |n| format!("  — {n}"));
                let expected = format!("  {offset:>11} ← {label} Flags [S.], seq 1{note}\n");
                assert_eq!(String::from_utf8(line).expect("UTF-8"), expected, "{t}");
            }
        }
    }
}

//! Text output: an annotated timeline per attempt, its verdict and cause, and a summary table.

use std::io::{self, Write};

use colored::{Color, Colorize};

use crate::event::{Span, Timestamp};
use crate::flow::Family;
use crate::linux::Errno;
use crate::timeline::{Attempt, Entry, Outcome, Summary};

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
    format!("{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}.{micros:06} UTC", tod / 3600, tod / 60 % 60, tod % 60)
}

fn errno_words(errno: Errno) -> String {
    format!("{} ({}: {})", errno.name(), errno.number(), errno.strerror())
}

/// Writes one attempt: header, timeline, verdict and cause. `captured` is false for a trace made
/// with `--no-capture`, whose SYNs were not counted.
pub fn attempt(w: &mut dyn Write, a: &Attempt, captured: bool, style: Style) -> io::Result<()> {
    let family = match a.family {
        Family::Ipv4 => "IPv4",
        Family::Ipv6 => "IPv6",
    };
    writeln!(
        w,
        "{} → {}  {family}  {}",
        style.bold(&a.client.to_string()),
        style.bold(&a.server.to_string()),
        utc(a.start)
    )?;
    for entry in &a.events {
        timeline_line(w, entry, style)?;
    }
    let color = outcome_color(a.outcome);
    let decided = a.decided_after.map_or(String::new(), |t| format!(" after {}", Span((t * 1e9) as i64)));
    let syns = match a.syn_count {
        _ if !captured => "SYNs not captured".to_string(),
        1 => "1 SYN".to_string(),
        n => format!("{n} SYNs"),
    };
    let verdict = match (a.errno, a.outcome) {
        (Some(errno), _) => format!("{}: {}{decided}", a.outcome.name(), errno_words(errno)),
        (None, Outcome::Aborted) => {
            format!("aborted: the application stopped waiting{decided}, before the kernel decided")
        }
        (None, _) => format!("{}: connect() returned 0{decided}", a.outcome.name()),
    };
    let source = match a.errno_source {
        crate::timeline::ErrnoSource::Syscall => "returned by connect()",
        crate::timeline::ErrnoSource::Inferred => "inferred from the packets",
    };
    writeln!(w, "  {} {}  ({syns}; {source})", style.paint("⇒", color), style.paint(&verdict, color))?;
    writeln!(w, "  {} {}", style.bold("why:"), a.cause)?;
    for finding in &a.findings {
        writeln!(w, "  {} {}", style.paint(&format!("[{}]", finding.code), Color::Magenta), finding.summary)?;
    }
    if let Some(path) = &a.path {
        path_report(w, path, style)?;
    }
    writeln!(w)
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

fn timeline_line(w: &mut dyn Write, e: &Entry, style: Style) -> io::Result<()> {
    let offset = format!("+{:.6}", e.t);
    let label = format!("{:<12}", e.what.label());
    let note = match (&e.note, e.ignored) {
        (Some(note), true) => format!("  — {}", style.dim(note)),
        (Some(note), false) => format!("  — {}", style.paint(note, Color::Cyan)),
        (None, _) => String::new(),
    };
    let label = if e.ignored { style.dim(&label) } else { style.bold(&label) };
    writeln!(w, "  {offset:>11} {} {label} {}{note}", e.dir.arrow(), e.summary)
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
    writeln!(w, "{}", style.bold(&format!("{:<22} {:<14} {:>10} {:>5}  {}", "scenario", "errno", "time", "SYNs", "")))?;
    for [label, errno, time, syns, check] in rows {
        let check = if check.starts_with("expected") { style.paint(check, Color::Red) } else { style.dim(check) };
        writeln!(w, "{label:<22} {errno:<14} {time:>10} {syns:>5}  {check}")?;
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
            "{source}: {} attempt(s) in {} packet(s), {} undecodable",
            s.attempts, s.packets, s.undecodable
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

    #[test]
    fn test_utc_known_dates() {
        assert_eq!(utc(Timestamp(0)), "1970-01-01 00:00:00.000000 UTC");
        assert_eq!(utc(Timestamp::from_parts(1_700_000_000, 123_456_000)), "2023-11-14 22:13:20.123456 UTC");
        assert_eq!(utc(Timestamp::from_parts(951_782_400, 0)), "2000-02-29 00:00:00.000000 UTC");
    }
}

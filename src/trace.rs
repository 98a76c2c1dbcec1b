//! Live trace: resolves the target, arms the capture for this attempt's 4-tuple, makes the
//! attempt on a connect thread, drains late packets and correlates everything into one attempt.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::capture::{LiveCapture, LiveResult, LiveTally};
use crate::connect::{self, ConnectPlan, Mode};
use crate::correlate::{correlate, syscall_verdict, SyscallVerdict};
use crate::event::{Event, EventKind};
use crate::flow::{Family, FlowKey};
use crate::linux::SynTiming;
use crate::privilege;
use crate::probe::{self, Route};
use crate::timeline::Attempt;

/// Everything `synscope trace` needs to know.
#[derive(Clone, Debug)]
pub struct TraceConfig {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// Only addresses of this family.
    pub family: Option<Family>,
    /// Source address to bind.
    pub source: Option<IpAddr>,
    /// Capture device (`any` by default).
    pub interface: Option<String>,
    /// How to wait.
    pub mode: Mode,
    /// Give up waiting after this long (non-blocking modes).
    pub timeout: Option<Duration>,
    /// `TCP_SYNCNT`.
    pub syn_retries: Option<u32>,
    /// `TCP_USER_TIMEOUT`.
    pub user_timeout: Option<Duration>,
    /// Save the captured packets here.
    pub write: Option<PathBuf>,
    /// Capture packets (false: `--no-capture`).
    pub capture: bool,
    /// How long to keep capturing after the syscall result (late ICMPs, the final ACK).
    pub grace: Duration,
    /// After a failed attempt, probe hop by hop where the SYN dies (`--path`).
    pub path: bool,
    /// After a successful connect(), keep watching this long for the server's SYN-ACK
    /// retransmits (a full accept queue drops our ACK); `grace` applies when shorter.
    pub linger: Duration,
    /// Give up every privilege once the capture is armed (see [`crate::privilege`]).
    pub drop_privileges: bool,
    /// While `connect()` waits, say on stderr for how long, what the capture has seen and when
    /// it will end (for a terminal: the timeline comes only once the attempt is decided).
    pub show_waiting: bool,
}

/// How long a `connect()` waits before [`Waiting`] says so: most attempts are decided sooner.
const WAITING_SHOWN_AFTER: Duration = Duration::from_millis(700);

/// A line on stderr while `connect()` waits (see [`TraceConfig::show_waiting`]): how long so far,
/// the SYNs and answers the capture has seen, and when the kernel (or the application's timeout)
/// ends the attempt.
struct Waiting<'a> {
    bar: Option<indicatif::ProgressBar>,
    /// Whether the bar is drawn yet (it is from [`WAITING_SHOWN_AFTER`] on).
    drawn: bool,
    started: std::time::Instant,
    tally: Option<&'a LiveTally>,
    /// When the attempt ends at the latest, in words.
    ends: String,
}

impl<'a> Waiting<'a> {
    fn new(config: &TraceConfig, timing: &SynTiming, tally: Option<&'a LiveTally>) -> Waiting<'a> {
        let deadline = timing.schedule().deadline;
        let ends = match config.timeout {
            Some(timeout) if timeout.as_nanos() < u128::from(deadline.0.unsigned_abs()) => {
                format!("--timeout at {:.1} s", timeout.as_secs_f64())
            }
            _ => format!("ETIMEDOUT at {deadline}"),
        };
        let bar = config.show_waiting.then(|| {
            let bar = indicatif::ProgressBar::hidden();
            let style = indicatif::ProgressStyle::with_template("{spinner} {wide_msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
            bar.set_style(style);
            bar
        });
        Waiting { bar, drawn: false, started: std::time::Instant::now(), tally, ends }
    }

    fn update(&mut self) {
        let Some(bar) = &self.bar else { return };
        let waited = self.started.elapsed();
        if waited < WAITING_SHOWN_AFTER {
            return;
        }
        if !std::mem::replace(&mut self.drawn, true) {
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(100));
        }
        let seen = match self.tally {
            Some(tally) => {
                let syns = tally.syns.load(Ordering::Relaxed);
                match tally.answers.load(Ordering::Relaxed) {
                    0 => format!(": {syns} SYN(s), no answer yet"),
                    answers => format!(": {syns} SYN(s), {answers} answer(s) that did not end it"),
                }
            }
            None => String::new(),
        };
        bar.set_message(format!("waiting {:.1} s for connect(){seen}; {}", waited.as_secs_f64(), self.ends));
    }

    fn clear(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// What the trace header shows: the target, the route and the deadline.
#[derive(Clone, Debug)]
pub struct Preflight {
    /// The name as given.
    pub host: String,
    /// Every address it resolved to, in getaddrinfo order.
    pub resolved: Vec<SocketAddr>,
    /// The address traced.
    pub target: SocketAddr,
    /// The route, or the kernel's refusal.
    pub route: Result<Route, String>,
    /// The SYN timing in force (sysctls, or `--syn-retries`).
    pub timing: SynTiming,
    /// `TCP_USER_TIMEOUT`, when set.
    pub user_timeout: Option<Duration>,
    /// The wait mode.
    pub mode: Mode,
    /// The user's timeout.
    pub timeout: Option<Duration>,
    /// The capture device and filter, or `None` without capture.
    pub capture: Option<(String, String)>,
    /// The bound 4-tuple.
    pub flow: FlowKey,
    /// What connect() ran with, and what was given up before it (known once the attempt is made).
    pub privileges: Option<String>,
}

/// The result of one trace.
#[derive(Debug)]
pub struct TraceReport {
    /// The header.
    pub preflight: Preflight,
    /// The attempt, with packets and syscalls on one timeline.
    pub attempt: Attempt,
    /// What the capture saw, if there was one.
    pub capture: Option<LiveResult>,
    /// Ctrl-C or SIGTERM came before connect() returned: the report covers what happened until then.
    pub interrupted: bool,
}

/// Every address `host` resolves to for `port`, in getaddrinfo order, of `family` if given.
pub fn resolve(host: &str, port: u16, family: Option<Family>) -> anyhow::Result<Vec<SocketAddr>> {
    let all: Vec<SocketAddr> =
        (host, port).to_socket_addrs().with_context(|| format!("cannot resolve {host}"))?.collect();
    let mut seen = Vec::new();
    for addr in all {
        if family.is_none_or(|f| Family::of(addr.ip()) == f) && !seen.contains(&addr) {
            seen.push(addr);
        }
    }
    if seen.is_empty() {
        let which = match family {
            Some(Family::Ipv4) => "IPv4 ",
            Some(Family::Ipv6) => "IPv6 ",
            None => "",
        };
        anyhow::bail!("{host} has no {which}address");
    }
    Ok(seen)
}

/// The BPF filter for exactly this attempt: its 4-tuple, ICMP/ICMPv6 errors to the client, ARP and
/// neighbour discovery. `ip6[40]` is the ICMPv6 type when no extension header intervenes.
pub fn filter_for(flow: &FlowKey) -> String {
    let tcp =
        format!("(tcp and host {} and port {} and port {})", flow.server.ip(), flow.server.port(), flow.client.port());
    let client = flow.client.ip();
    let to_client = if client.is_unspecified() { String::new() } else { format!(" and dst host {client}") };
    let icmp =
        format!("(icmp and (icmp[0] = 3 or icmp[0] = 4 or icmp[0] = 5 or icmp[0] = 11 or icmp[0] = 12){to_client})");
    let icmp6 =
        "(icmp6 and (ip6[40] = 1 or ip6[40] = 2 or ip6[40] = 3 or ip6[40] = 4 or ip6[40] = 135 or ip6[40] = 136))";
    format!("{tcp} or {icmp} or {icmp6} or arp")
}

/// Runs one trace.
pub fn run(config: &TraceConfig) -> anyhow::Result<TraceReport> {
    let resolved = resolve(&config.host, config.port, config.family)?;
    let target = resolved[0];
    let route = probe::route_to(target.ip());
    let mut timing = probe::syn_timing();
    if let Some(n) = config.syn_retries {
        timing.syn_retries = n;
    }
    timing.user_timeout =
        config.user_timeout.map(|t| crate::event::Span(i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)));
    let source = config.source.or_else(|| route.as_ref().ok().and_then(|r| r.source));
    let plan = ConnectPlan {
        server: target,
        source,
        mode: config.mode,
        timeout: config.timeout,
        syn_retries: config.syn_retries,
        user_timeout: config.user_timeout,
    };
    let socket = connect::bind(&plan)?;
    let flow = socket.flow;
    let device = config.interface.clone().unwrap_or_else(|| "any".to_string());
    let filter = filter_for(&flow);
    let capture =
        if config.capture { Some(LiveCapture::open(&device, &filter, config.write.as_deref())?) } else { None };
    // Armed: nothing from here on needs privilege. Dropped before any thread starts, so that the
    // capture and connect threads inherit the cleared capabilities.
    let given_up = if config.drop_privileges {
        privilege::drop_after_capture(config.write.as_deref().filter(|_| config.capture))?
    } else {
        None
    };
    let mut preflight = Preflight {
        host: config.host.clone(),
        resolved,
        target,
        route,
        timing,
        user_timeout: config.user_timeout,
        mode: config.mode,
        timeout: config.timeout,
        capture: config.capture.then_some((device, filter)),
        flow,
        privileges: None,
    };

    // The capture is active: only now may the SYN leave.
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(LiveTally::default());
    let reader = capture.map(|c| c.spawn(Arc::clone(&stop), Arc::clone(&tally)));
    let log = connect::EventLog::default();
    let thread_log = Arc::clone(&log);
    let connect_thread = std::thread::Builder::new()
        .name("connect".into())
        .spawn(move || (privilege::Held::now(), connect::run(socket, &plan, thread_log)))?;
    // Ctrl-C or SIGTERM while connect() blocks: stop waiting for it (the process exits with the
    // thread still in the call) and show what happened so far.
    let mut waiting = Waiting::new(config, &timing, config.capture.then_some(&*tally));
    while !connect_thread.is_finished() && !crate::interrupt::requested() {
        std::thread::sleep(Duration::from_millis(10));
        waiting.update();
    }
    waiting.clear();
    // An attempt that is deciding anyway (refused, unreachable) gets a moment to finish.
    for _ in 0..10 {
        if connect_thread.is_finished() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let interrupted = !connect_thread.is_finished();
    let (syscalls, socket) = if interrupted {
        (Ok(connect::snapshot(&log)), None)
    } else {
        match connect_thread.join() {
            Ok((held, result)) => {
                preflight.privileges = Some(match &given_up {
                    Some(what) => format!("connect() ran as {}: {what} once the capture was armed", held.describe()),
                    None => format!("connect() ran as {}", held.describe()),
                });
                match result {
                    Ok(socket) => (Ok(connect::snapshot(&log)), Some(socket)),
                    Err(e) => (Err(e), None),
                }
            }
            Err(_) => (Err(anyhow::anyhow!("the connect thread panicked")), None),
        }
    };
    let calls: Vec<_> = syscalls
        .iter()
        .flatten()
        .filter_map(|e| match &e.kind {
            EventKind::Syscall(call) => Some((e.ts, call.clone())),
            _ => None,
        })
        .collect();
    let drain = match syscall_verdict(&calls).0 {
        SyscallVerdict::Established if config.capture => config.grace.max(config.linger),
        _ => config.grace,
    };
    crate::interrupt::sleep(drain);
    // Closed only now: the connection stays open while the trace watches it.
    drop(socket);
    stop.store(true, Ordering::Release);
    let captured = match reader {
        Some(handle) => Some(handle.join().map_err(|_| anyhow::anyhow!("the capture thread panicked"))??),
        None => None,
    };
    let mut events = syscalls?;
    // Interrupted, the evidence runs until now, not until the last syscall (connect() still blocks).
    let end = if interrupted { Some(connect::now()) } else { events.last().map(|e| e.ts) };
    if let Some(c) = &captured {
        events.extend(c.events.iter().cloned());
        let kind = EventKind::CaptureStats { packets: c.packets, dropped: c.dropped + c.if_dropped };
        events.push(Event { ts: end.unwrap_or_default(), kind });
    }
    let grace = if interrupted { Duration::ZERO } else { config.grace };
    let mut attempts = correlate(events, timing, end.map(|t| t.plus(crate::event::Span(grace.as_nanos() as i64))));
    let index = attempts.iter().position(|a| a.client.port() == flow.client.port() && a.server == flow.server);
    let index = match index {
        Some(index) => index,
        None if interrupted => {
            return Err(crate::interrupt::Interrupted("stopped before connect() was called").into());
        }
        None => anyhow::bail!("the traced attempt is missing from the correlation"),
    };
    let mut attempt = attempts.swap_remove(index);
    if config.path && !interrupted && attempt.outcome != crate::timeline::Outcome::Established {
        attempt.path = Some(crate::path::probe(target, source)?);
    }
    Ok(TraceReport { preflight, attempt, capture: captured, interrupted })
}

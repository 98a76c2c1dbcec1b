//! The command line: what the user typed, parsed by clap, before anything touches the system.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::connect::Mode;

/// synscope: why did this connect() fail? Ties SYNs, RSTs, ICMP errors and ARP on the wire to the errno.
#[derive(Debug, Parser)]
#[command(name = "synscope", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// When to colour the output (NO_COLOR is respected under `auto`).
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch one real connect(): packets and syscalls on one timeline, and why it ended as it did.
    Trace(TraceArgs),
    /// Every TCP connection attempt in pcap/pcapng files: timeline and the errno a Linux client saw.
    Replay(ReplayArgs),
    /// Reproduce every way a connect() fails in isolated network namespaces, and trace each live.
    Lab(LabArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `synscope man > /usr/local/share/man/man1/synscope.1`.
    Man,
}

/// Arguments of `synscope lab`.
#[derive(Debug, clap::Args)]
pub struct LabArgs {
    /// Scenarios to run (all when none is named; see --list).
    #[arg(value_name = "SCENARIO")]
    pub scenarios: Vec<String>,
    /// List the scenarios, one line each.
    #[arg(long)]
    pub list: bool,
    /// Address families to run each scenario in.
    #[arg(long, value_enum, default_value_t = FamilyChoice::Both)]
    pub family: FamilyChoice,
    /// How each traced connect() waits.
    #[arg(long, value_enum, default_value_t = Mode::Blocking)]
    pub mode: Mode,
    /// A timeout for the non-blocking modes: 500ms, 10s, 2m or seconds.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// After each failed attempt, probe hop by hop where the SYN dies.
    #[arg(long)]
    pub path: bool,
    /// Save each scenario's capture as `DIR/<scenario>-v4.pcap` ...
    #[arg(long, short = 'w', value_name = "DIR")]
    pub write: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

/// Which address families the lab uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FamilyChoice {
    /// IPv4 only.
    #[value(name = "4")]
    V4,
    /// IPv6 only.
    #[value(name = "6")]
    V6,
    /// Both.
    Both,
}

/// Arguments of `synscope trace`.
#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    /// Host name or address to connect to.
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Only IPv4 addresses.
    #[arg(short = '4', conflicts_with = "ipv6")]
    pub ipv4: bool,
    /// Only IPv6 addresses.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Bind this source address.
    #[arg(long, value_name = "ADDR")]
    pub source: Option<IpAddr>,
    /// Capture on this interface instead of `any`.
    #[arg(long, short = 'i', value_name = "IFACE")]
    pub interface: Option<String>,
    /// How connect() waits (default: blocking, or epoll when --timeout is given).
    #[arg(long, value_enum)]
    pub mode: Option<Mode>,
    /// Stop waiting after this long (non-blocking modes): 500ms, 10s, 2m or seconds.
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub timeout: Option<Duration>,
    /// SYN retransmits before giving up (sets TCP_SYNCNT).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=255))]
    pub syn_retries: Option<u32>,
    /// Give up when data stays unacknowledged this long (sets TCP_USER_TIMEOUT).
    #[arg(long, value_parser = parse_duration, value_name = "DUR")]
    pub user_timeout: Option<Duration>,
    /// Save the captured packets to this pcap file.
    #[arg(long, short = 'w', value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Trace the syscalls only, without capturing packets (needs no privileges).
    #[arg(long, conflicts_with = "write")]
    pub no_capture: bool,
    /// Make N attempts, one line each, then statistics (like ping); Ctrl-C prints them so far.
    #[arg(long, short = 'c', value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub count: u32,
    /// Time between the starts of two attempts with --count: 500ms, 10s, 2m or seconds.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", default_value = "1s")]
    pub interval: Duration,
    /// After a failed attempt, probe hop by hop (IP TTL 1, 2, 3 ...) where the SYN dies.
    #[arg(long)]
    pub path: bool,
    /// After a successful connect(), keep watching this long for the server's SYN-ACK retransmits
    /// (its accept queue overflowed); 0 turns it off.
    #[arg(long, value_parser = parse_duration, value_name = "DUR", default_value = "1500ms")]
    pub linger: Duration,
    /// Try every address HOST resolves to, in order, until one connects, as well-behaved clients do.
    #[arg(long, conflicts_with_all = ["count", "write"])]
    pub all_addresses: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
}

impl TraceArgs {
    /// The wait mode: as given, else epoll when a timeout is set, else blocking.
    pub fn mode(&self) -> Mode {
        self.mode.unwrap_or(if self.timeout.is_some() { Mode::Epoll } else { Mode::Blocking })
    }

    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if self.count > 1 && self.write.is_some() {
            return Err("--write saves one attempt's capture: use it without --count".into());
        }
        if self.mode() == Mode::Blocking && self.timeout.is_some() {
            return Err(
                "--timeout needs a non-blocking mode: --mode select, poll or epoll (the default with --timeout)".into(),
            );
        }
        Ok(())
    }
}

/// Parses `500ms`, `10s`, `2m`, or a bare number of seconds (`1.5`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, scale) = if let Some(n) = s.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = s.strip_suffix('m') {
        (n, 60.0)
    } else {
        (s, 1.0)
    };
    let value: f64 =
        number.trim().parse().map_err(|_| format!("`{s}` is not a duration: use 500ms, 10s, 2m or seconds"))?;
    if !value.is_finite() || value < 0.0 {
        return Err(format!("`{s}` is not a duration: it must be positive"));
    }
    Duration::try_from_secs_f64(value * scale).map_err(|e| format!("`{s}`: {e}"))
}

/// `--max-open`: a whole number of attempts, at least 64.
fn parse_max_open(s: &str) -> Result<usize, String> {
    let n: usize = s.trim().parse().map_err(|_| format!("`{s}` is not a whole number of attempts"))?;
    if n < 64 {
        return Err(format!("{n} is too few: at least 64 attempts must be held open"));
    }
    Ok(n)
}

/// Arguments of `synscope replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture files (pcap or pcapng, gzip-compressed or not); `-` reads one from standard
    /// input, e.g. `ssh host tcpdump -w - | synscope replay -`. Several are read in the order of
    /// their first packets, and a file that begins where the one before ends (within the 131 s a
    /// SYN can wait) continues its capture: the pieces of a rotated capture (`tcpdump -C`/`-G`)
    /// replay as one.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Read each file as a capture of its own, in the order given, even when one begins where
    /// another ends (captures taken one after another, not pieces of one).
    #[arg(long)]
    pub apart: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Only attempts to this server: ADDR or ADDR:PORT (`[v6]:PORT`).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub server: Option<EndpointFilter>,
    /// Only attempts from this client: ADDR or ADDR:PORT (`[v6]:PORT`).
    #[arg(long, value_name = "ADDR[:PORT]")]
    pub client: Option<EndpointFilter>,
    /// Only attempts that did not establish.
    #[arg(long)]
    pub failed: bool,
    /// Only packets matching this tcpdump-syntax filter (compiled by libpcap), e.g. "port 443".
    #[arg(long, value_name = "EXPR")]
    pub bpf: Option<String>,
    /// Readers, each reading the whole file and holding a share of the flows, with a thread of its
    /// own to word their attempts (default 1; each more adds 2 to 4 MiB and may pay from four
    /// cores; a pipe, standard input or another, is read by one; a compressed file is decompressed
    /// once for all). The output is the same whatever the number, unless a reader holds its share
    /// of --max-open (the Nth part) open at once: it then sweeps early, its attempts may come out in
    /// another order, and those it finishes before their time (`decided_early`) say another time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub threads: Option<u16>,
    /// The most connection attempts held open at once, about 0.8 KiB each (default 25000). A SYN
    /// flood opens one per SYN, and each stays open for seconds; beyond the bound those whose time
    /// is nearest up are finished now, on the evidence so far (with the finding `decided_early`
    /// where the outcome could still change).
    #[arg(long, value_name = "N", value_parser = parse_max_open)]
    pub max_open: Option<usize>,
}

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Annotated timelines for people.
    Text,
    /// JSON Lines: one object per attempt, then a summary.
    Json,
}

/// Colour choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// An address with an optional port, to select attempts by one end.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndpointFilter {
    /// The address.
    pub ip: IpAddr,
    /// The port, if given.
    pub port: Option<u16>,
}

impl EndpointFilter {
    /// Whether `addr` is selected.
    pub fn matches(&self, addr: SocketAddr) -> bool {
        addr.ip() == self.ip && self.port.is_none_or(|p| p == addr.port())
    }
}

impl FromStr for EndpointFilter {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Ok(EndpointFilter { ip: sa.ip(), port: Some(sa.port()) });
        }
        let bare = s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).unwrap_or(s);
        bare.parse::<IpAddr>()
            .map(|ip| EndpointFilter { ip, port: None })
            .map_err(|_| format!("`{s}` is not ADDR or ADDR:PORT (IPv6 with a port: [2001:db8::1]:443)"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_endpoint_filter_forms() {
        type Expected<'a> = Option<(&'a str, Option<u16>)>;
        let table: [(&str, Expected); 6] = [
            ("192.0.2.1", Some(("192.0.2.1", None))),
            ("192.0.2.1:80", Some(("192.0.2.1", Some(80)))),
            ("2001:db8::1", Some(("2001:db8::1", None))),
            ("[2001:db8::1]", Some(("2001:db8::1", None))),
            ("[2001:db8::1]:443", Some(("2001:db8::1", Some(443)))),
            ("example", None),
        ];
        for (input, expected) in table {
            let parsed = input.parse::<EndpointFilter>().ok();
            let expected = expected.map(|(ip, port)| EndpointFilter { ip: ip.parse().unwrap(), port });
            assert_eq!(parsed, expected, "{input}");
        }
    }

    #[test]
    fn test_parse_duration_forms() {
        let table = [
            ("500ms", Some(Duration::from_millis(500))),
            ("10s", Some(Duration::from_secs(10))),
            ("2m", Some(Duration::from_secs(120))),
            ("1.5", Some(Duration::from_millis(1500))),
            ("0", Some(Duration::ZERO)),
            ("-1s", None),
            ("soon", None),
            ("", None),
        ];
        for (input, expected) in table {
            assert_eq!(parse_duration(input).ok(), expected, "{input}");
        }
    }

    #[test]
    fn test_cli_parses_trace() {
        let cli = Cli::try_parse_from(["synscope", "trace", "example.org", "443", "-6", "--timeout", "2s"]).unwrap();
        let Command::Trace(args) = cli.command else { panic!("not trace") };
        assert_eq!((args.host.as_str(), args.port, args.ipv6), ("example.org", 443, true));
        assert_eq!(args.mode(), Mode::Epoll, "--timeout alone means epoll");
        let cli =
            Cli::try_parse_from(["synscope", "trace", "h", "1", "--mode", "blocking", "--timeout", "1s"]).unwrap();
        let Command::Trace(args) = cli.command else { panic!("not trace") };
        assert!(args.validate().is_err());
        assert!(Cli::try_parse_from(["synscope", "trace", "h", "70000"]).is_err(), "port out of range");
        assert!(Cli::try_parse_from(["synscope", "trace", "h", "1", "-4", "-6"]).is_err());
        assert!(Cli::try_parse_from(["synscope", "trace", "h", "1", "--no-capture", "-w", "x.pcap"]).is_err());
    }

    #[test]
    fn test_cli_parses_replay() {
        let cli = Cli::try_parse_from([
            "synscope",
            "replay",
            "x.pcap",
            "--format",
            "json",
            "--failed",
            "--server",
            "192.0.2.1:80",
        ])
        .unwrap();
        let Command::Replay(args) = cli.command else { panic!("not replay") };
        assert_eq!(args.format, Format::Json);
        assert!(args.failed);
        assert_eq!(args.server.unwrap().port, Some(80));
        assert!(Cli::try_parse_from(["synscope", "replay"]).is_err());
        let Command::Replay(two) = Cli::try_parse_from(["synscope", "replay", "a.pcap", "b.pcapng"]).unwrap().command
        else {
            panic!("not replay")
        };
        assert_eq!(two.files.len(), 2);
        assert!(Cli::try_parse_from(["synscope", "replay", "x", "--format", "xml"]).is_err());
    }
}

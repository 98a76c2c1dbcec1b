//! The command line: what the user typed, parsed by clap, before anything touches the system.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;

use clap::{Parser, Subcommand, ValueEnum};

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
    /// Every TCP connection attempt in pcap/pcapng files: timeline and the errno a Linux client saw.
    Replay(ReplayArgs),
}

/// Arguments of `synscope replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    /// The capture files (pcap or pcapng).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
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
        let Command::Replay(args) = cli.command;
        assert_eq!(args.format, Format::Json);
        assert!(args.failed);
        assert_eq!(args.server.unwrap().port, Some(80));
        assert!(Cli::try_parse_from(["synscope", "replay"]).is_err());
        let Command::Replay(two) = Cli::try_parse_from(["synscope", "replay", "a.pcap", "b.pcapng"]).unwrap().command;
        assert_eq!(two.files.len(), 2);
        assert!(Cli::try_parse_from(["synscope", "replay", "x", "--format", "xml"]).is_err());
    }
}

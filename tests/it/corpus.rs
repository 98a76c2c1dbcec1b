//! The public capture corpus (`../shared/corpus`) against its independent oracle (`ORACLE.tsv`).
//!
//! Every file in `MANIFEST.tsv` is replayed; every client flow the oracle decided must get the same
//! verdict from synscope (at least 99%), and every disagreement is listed below with its reason.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use synscope::linux::{icmpv4_effect, icmpv6_effect, Errno, IcmpEffect};
use synscope::timeline::{Attempt, Outcome};

use crate::util;

/// Flows where synscope and the oracle disagree, with the argument from the packets:
/// (file, client port, why).
const KNOWN_DISAGREEMENTS: &[(&str, u16, &str)] = &[];

fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("SYNSCOPE_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| util::root().join("..").join("shared").join("corpus"));
    if dir.join("ORACLE.tsv").is_file() {
        return Some(dir);
    }
    assert!(!util::in_ci(), "CI=true but the corpus is missing at {}", dir.display());
    eprintln!("skipping the corpus test: no corpus at {} (set SYNSCOPE_CORPUS)", dir.display());
    None
}

#[derive(Debug)]
struct OracleRow {
    file: String,
    client: SocketAddr,
    server: SocketAddr,
    first_syn: f64,
    syn_count: u32,
    outcome: String,
    evidence: String,
}

fn read_tsv(path: &std::path::Path) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines().skip(1).filter(|l| !l.is_empty()).map(|l| l.split('\t').map(str::to_string).collect()).collect()
}

fn oracle(dir: &std::path::Path) -> Vec<OracleRow> {
    read_tsv(&dir.join("ORACLE.tsv"))
        .into_iter()
        .map(|c| {
            let ip = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|_| panic!("bad address {s}"));
            let port = |s: &str| s.parse::<u16>().unwrap_or_else(|_| panic!("bad port {s}"));
            OracleRow {
                file: c[0].clone(),
                client: SocketAddr::new(ip(&c[1]), port(&c[2])),
                server: SocketAddr::new(ip(&c[3]), port(&c[4])),
                first_syn: c[5].parse().unwrap_or_else(|_| panic!("bad time {}", c[5])),
                syn_count: c[6].parse().unwrap_or_else(|_| panic!("bad syn_count {}", c[6])),
                outcome: c[7].clone(),
                evidence: c.get(8).cloned().unwrap_or_default(),
            }
        })
        .collect()
}

/// The (outcome, errno) the oracle's verdict means, for the verdicts it decided.
fn expected(row: &OracleRow) -> Option<(Outcome, Option<Errno>)> {
    match row.outcome.as_str() {
        "established" => Some((Outcome::Established, None)),
        "refused_rst" => Some((Outcome::Refused, Some(Errno::Econnrefused))),
        "no_answer" => Some((Outcome::TimedOut, Some(Errno::Etimedout))),
        other => {
            let (t, c) = other.strip_prefix("icmp_unreachable:")?.split_once('/')?;
            let (t, c) = (t.parse().ok()?, c.parse().ok()?);
            let effect = if row.client.is_ipv4() { icmpv4_effect(t, c) } else { icmpv6_effect(t, c) };
            match effect {
                IcmpEffect::Fatal(errno) => Some((Outcome::Unreachable, Some(errno))),
                _ => None,
            }
        }
    }
}

/// Our attempt for an oracle row: same 4-tuple, the start nearest the oracle's first SYN; or the only
/// attempt on that 4-tuple (a record may carry a time past 2262 that our nanosecond clock clamps, as
/// frame 90 of ppp_pcapng-example.pcapng does).
fn find<'a>(attempts: &'a [Attempt], row: &OracleRow) -> Option<&'a Attempt> {
    let same_tuple: Vec<&Attempt> =
        attempts.iter().filter(|a| a.client == row.client && a.server == row.server).collect();
    if let [only] = same_tuple.as_slice() {
        return Some(only);
    }
    let distance = |a: &Attempt| (a.start.as_secs_f64() - row.first_syn).abs();
    same_tuple.into_iter().min_by(|a, b| distance(a).total_cmp(&distance(b))).filter(|a| distance(a) < 0.5)
}

#[test]
fn test_corpus_agrees_with_oracle() {
    let Some(dir) = corpus_dir() else { return };
    let manifest: Vec<Vec<String>> =
        read_tsv(&dir.join("MANIFEST.tsv")).into_iter().filter(|c| !c[0].contains('/')).collect();
    let mut replays: HashMap<String, Vec<Attempt>> = HashMap::new();
    for row in &manifest {
        let (file, packets) = (&row[0], &row[6]);
        let (attempts, capture) = util::replay(&dir.join(file));
        // The reader sees every record tshark saw, including pcapng files that mix link types
        // (libpcap stops at the first change), and stops exactly where the damaged files break.
        let (count, damaged) = match packets.split_once(" (then read error)") {
            Some((count, _)) => (count, true),
            None => (packets.as_str(), false),
        };
        assert_eq!(capture.packets.to_string(), count.trim(), "{file}: packets read");
        assert_eq!(capture.damage.is_some(), damaged, "{file}: {:?}", capture.damage);
        replays.insert(file.clone(), attempts);
    }
    let rows = oracle(&dir);
    // The SYNs synscope counts are the oracle's (tshark's count of the client's SYNs), flow by
    // flow, which copies of a packet the capture holds (ndpi_rtsp.pcap has each four times) do not
    // add to. Where a client sent its SYN again later than Linux would have (a raw-socket prober),
    // synscope reports what follows as an attempt of its own: a 4-tuple's attempts are added up
    // where the oracle has one row for it.
    let mut rows_of_tuple: HashMap<(&str, SocketAddr, SocketAddr), usize> = HashMap::new();
    for row in &rows {
        *rows_of_tuple.entry((row.file.as_str(), row.client, row.server)).or_default() += 1;
    }
    let mut syn_counts_differ = Vec::new();
    for row in &rows {
        let attempts = &replays[&row.file];
        let Some(ours) = find(attempts, row) else { continue };
        let counted = match rows_of_tuple[&(row.file.as_str(), row.client, row.server)] {
            1 => {
                attempts.iter().filter(|a| a.client == row.client && a.server == row.server).map(|a| a.syn_count).sum()
            }
            _ => ours.syn_count,
        };
        if counted != row.syn_count {
            syn_counts_differ.push(format!(
                "{} {} -> {}: oracle {}, ours {counted}",
                row.file, row.client, row.server, row.syn_count
            ));
        }
    }
    assert!(
        syn_counts_differ.is_empty(),
        "SYN counts that differ from the oracle's:\n{}",
        syn_counts_differ.join("\n")
    );
    let (mut decided, mut agreed) = (0usize, 0usize);
    let mut disagreements = Vec::new();
    let mut unexplained_special = Vec::new();
    for row in &rows {
        let attempts =
            replays.get(&row.file).unwrap_or_else(|| panic!("{} is in ORACLE.tsv but not in MANIFEST.tsv", row.file));
        let ours = find(attempts, row);
        let ambiguous = row.evidence.contains("AMBIGUOUS");
        match expected(row) {
            Some(want) if !ambiguous => {
                decided += 1;
                let got = ours.map(|a| (a.outcome, a.errno));
                if got == Some(want) {
                    agreed += 1;
                } else {
                    disagreements.push(format!(
                        "{} {} -> {} oracle {:?} syn_count {}, ours {:?}: {}",
                        row.file,
                        row.client,
                        row.server,
                        want,
                        row.syn_count,
                        got,
                        ours.map_or("no attempt", |a| a.cause.as_str())
                    ));
                }
            }
            _ => {
                // The oracle could not decide: synscope must still report the flow and say why it is special.
                match ours {
                    None => {
                        unexplained_special.push(format!("{} {} -> {}: no attempt", row.file, row.client, row.server))
                    }
                    Some(a) if !explains_special_case(a) => unexplained_special
                        .push(format!("{} {} -> {} ({}): {}", row.file, row.client, row.server, row.outcome, a.cause)),
                    Some(_) => {}
                }
            }
        }
    }
    let unexpected: Vec<&String> = disagreements
        .iter()
        .filter(|d| {
            !KNOWN_DISAGREEMENTS
                .iter()
                .any(|(file, port, _)| d.starts_with(&format!("{file} ")) && d.contains(&format!(":{port} ")))
        })
        .collect();
    eprintln!("corpus: {agreed}/{decided} decided rows agree; {} disagreements", disagreements.len());
    assert!(
        unexpected.is_empty(),
        "disagreements not listed in KNOWN_DISAGREEMENTS:\n{}",
        unexpected.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n")
    );
    assert!(agreed * 100 >= decided * 99, "only {agreed} of {decided} rows agree");
    assert!(
        unexplained_special.is_empty(),
        "flows the oracle could not decide, without an explanation:\n{}",
        unexplained_special.join("\n")
    );
    // And nothing else: every attempt synscope reports is a client SYN flow the oracle has (a reset
    // that answers a scanner's FIN, NULL or Xmas probe is no attempt).
    let oracle_tuples: std::collections::HashSet<_> =
        rows.iter().map(|r| (r.file.as_str(), r.client, r.server)).collect();
    let not_in_oracle: Vec<String> = replays
        .iter()
        .flat_map(|(file, attempts)| attempts.iter().map(move |a| (file, a)))
        .filter(|(file, a)| !oracle_tuples.contains(&(file.as_str(), a.client, a.server)))
        .map(|(file, a)| format!("{file} {} -> {}: {}", a.client, a.server, a.cause))
        .collect();
    assert!(not_in_oracle.is_empty(), "attempts the oracle does not have:\n{}", not_in_oracle.join("\n"));
}

/// Whether the cause says what makes a flow unusual: an answer Linux ignores, a missing direction,
/// a capture that ends early, a TTL that ran out, a SYN absent from the capture ...
fn explains_special_case(a: &Attempt) -> bool {
    const MARKERS: &[&str] = &[
        "capture ends",
        "not in the capture",
        "does not hold",
        "one-sided",
        "ignores",
        "TTL ran out",
        "malformed",
        "gave up",
        "stopped early",
        "only remembered",
    ];
    MARKERS.iter().any(|m| a.cause.contains(m))
}

//! The lab recordings in `fixtures/`: each replays to the errno `connect()` really returned when it
//! was recorded (`fixtures/fixtures.tsv`), and its text and JSON output match the golden files.

use std::path::Path;
use std::process::Command;

use synscope::timeline::Outcome;

use crate::util;

struct Fixture {
    file: String,
    /// What connect() returned in the lab: an errno name, or `OK`.
    errno: String,
}

fn fixtures() -> Vec<Fixture> {
    let table = std::fs::read_to_string(util::root().join("fixtures/fixtures.tsv")).expect("fixtures/fixtures.tsv");
    let rows: Vec<Fixture> = table
        .lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let c: Vec<&str> = l.split('\t').collect();
            Fixture { file: c[0].to_string(), errno: c[5].to_string() }
        })
        .collect();
    assert!(rows.len() >= 20, "fixtures.tsv lists only {} captures", rows.len());
    rows
}

/// Runs the built binary from the repository root.
pub fn synscope(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_synscope"))
        .args(args)
        .current_dir(util::root())
        .env_remove("NO_COLOR")
        .output()
        .expect("run synscope")
}

/// Replaces what differs between two recordings of the same scenario: absolute times and the
/// client's ephemeral port.
fn redact(output: &str, client_ports: &[u16]) -> String {
    let mut s = output.to_string();
    for port in client_ports {
        for sep in [':', '.'] {
            s = s.replace(&format!("{sep}{port} "), &format!("{sep}[port] "));
            s = s.replace(&format!("{sep}{port}\""), &format!("{sep}[port]\""));
        }
    }
    let mut out = String::with_capacity(s.len());
    for line in s.lines() {
        out.push_str(&redact_times(line));
        out.push('\n');
    }
    out
}

/// `"start":1732492331.549075` and `2026-11-24 23:52:11.549075 UTC` become `[start]`; the summary's
/// span keeps only its length.
fn redact_times(line: &str) -> String {
    let mut line = line.to_string();
    if let Some(rest) = line.strip_prefix("  span          ") {
        let length = rest.rfind(" (").map_or("", |i| &rest[i..]);
        return format!("  span          [first] → [last]{length}");
    }
    if let Some(at) = line.find("\"span\":{\"first\":") {
        if let Some(seconds) = line[at..].find("\"seconds\":") {
            line = format!(
                "{}\"span\":{{\"first\":\"[first]\",\"last\":\"[last]\",{}",
                &line[..at],
                &line[at + seconds..]
            );
        }
    }
    if let Some(at) = line.find("\"start\":") {
        let rest = &line[at + 8..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        line = format!("{}\"start\":\"[start]\"{}", &line[..at], &rest[end..]);
    }
    if let Some(utc) = line.find(" UTC") {
        if let Some(date) = line[..utc].rfind("  ") {
            line = format!("{}  [start]{}", &line[..date], &line[utc + 4..]);
        }
    }
    line
}

#[test]
fn test_fixtures_replay_to_the_errno_connect_returned() {
    for fixture in fixtures() {
        let (attempts, capture) = util::replay(&util::root().join("fixtures").join(&fixture.file));
        assert!(capture.damage.is_none(), "{}: {:?}", fixture.file, capture.damage);
        assert_eq!(capture.undecodable, 0, "{}", fixture.file);
        assert_eq!(attempts.len(), 1, "{}: {attempts:#?}", fixture.file);
        let a = &attempts[0];
        let got = a.errno.map_or("OK", |e| e.name());
        assert_eq!(got, fixture.errno, "{}: {}", fixture.file, a.cause);
        assert_eq!(a.outcome == Outcome::Established, fixture.errno == "OK", "{}", fixture.file);
        // The packet that decided it is on the timeline, and is not an ignored one.
        if a.outcome != Outcome::TimedOut {
            assert!(a.decided_after.is_some(), "{}", fixture.file);
        }
        assert!(a.events.iter().all(|e| !e.ignored), "{}", fixture.file);
    }
}

#[test]
fn test_fixtures_cut_by_a_short_snap_length_replay_to_the_same_errno() {
    // What each snap length leaves no trace of: at 66 bytes an IPv6 TCP header (74 bytes on
    // Ethernet) and, after ARP failed, the ISN in the ICMP error's quote, the attempt's only
    // evidence; up to 96 bytes, after ND failed, the quoted ports (the quote starts 68 bytes in).
    let lost = |file: &str, snaplen: usize| match snaplen {
        66 => file.contains("-v6") || file.starts_with("arp-failure"),
        80 | 96 => file.starts_with("nd-failure"),
        _ => false,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for fixture in fixtures().iter().filter(|f| f.file.ends_with(".pcap")) {
        let whole = std::fs::read(util::root().join("fixtures").join(&fixture.file)).expect("read fixture");
        for snaplen in [66, 80, 96, 128] {
            let path = dir.path().join(format!("{snaplen}-{}", fixture.file));
            std::fs::write(&path, util::snapped(&whole, snaplen)).expect("write");
            let (attempts, capture) = util::replay(&path);
            let what = format!("{} at {snaplen} bytes", fixture.file);
            assert!(capture.damage.is_none(), "{what}: {:?}", capture.damage);
            if lost(&fixture.file, snaplen) {
                assert!(attempts.is_empty(), "{what}: {attempts:#?}");
                continue;
            }
            assert_eq!(attempts.len(), 1, "{what}: {attempts:#?}");
            let a = &attempts[0];
            assert_eq!(a.errno.map_or("OK", |e| e.name()), fixture.errno, "{what}: {}", a.cause);
            // An attempt decided by an error the capture cut says so.
            let says_so = a.findings.iter().any(|f| f.code == "icmp_quote_cut");
            assert_eq!(says_so, capture.icmp_quotes_cut > 0, "{what}: {:?}", a.findings);
        }
    }
    // Where nothing is left of the attempt, the summary still says an error was cut.
    let nothing_left = dir.path().join("96-nd-failure-v6.pcap");
    let nothing_left = nothing_left.to_str().expect("a UTF-8 path");
    let json = synscope(&["replay", "--format", "json", nothing_left]);
    let summary = util::json_lines(&json).pop().expect("a summary");
    assert_eq!((summary["attempts"].as_u64(), summary["icmp_quotes_cut"].as_u64()), (Some(0), Some(1)), "{summary}");
    let text = String::from_utf8_lossy(&synscope(&["replay", "--color", "never", nothing_left]).stdout).into_owned();
    assert!(text.contains("cut quotes: 1 ICMP error(s) cut inside their quote"), "{text}");
}

#[test]
fn test_fixtures_captured_twice_replay_as_once() {
    // Every record twice in a row: the copies of a SYN are no retransmits, the copies of the
    // answer that decided the attempt no late answers; they are counted, and nothing else changes.
    let dir = tempfile::tempdir().expect("tempdir");
    for fixture in fixtures().iter().filter(|f| f.file.ends_with(".pcap")) {
        let original = util::root().join("fixtures").join(&fixture.file);
        let twice = dir.path().join(&fixture.file);
        std::fs::write(&twice, util::doubled(&std::fs::read(&original).expect("read fixture"))).expect("write");
        let ((once, _), (doubled, _)) = (util::replay(&original), util::replay(&twice));
        assert_eq!(doubled.len(), 1, "{}: {doubled:#?}", fixture.file);
        let (a, b) = (&once[0], &doubled[0]);
        assert_eq!(
            (b.outcome, b.errno, b.syn_count),
            (a.outcome, a.errno, a.syn_count),
            "{}: {}",
            fixture.file,
            b.cause
        );
        assert_eq!(b.events.len(), a.events.len(), "{}: the copies are not on the timeline", fixture.file);
        assert!(b.findings.iter().any(|f| f.code == "packets_captured_twice"), "{}: {:?}", fixture.file, b.findings);
        // The JSON says so too (a clean handshake is written by a shortcut that has no findings).
        let json = synscope(&["replay", "--format", "json", twice.to_str().expect("a UTF-8 path")]);
        assert!(
            String::from_utf8_lossy(&json.stdout).contains("\"code\":\"packets_captured_twice\""),
            "{}",
            fixture.file
        );
    }
}

/// `payload` in an IPv4 packet of `protocol` from 203.0.113.1 to 203.0.113.2, in an Ethernet
/// frame: a tunnel's outer headers.
fn outer_ipv4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = u16::try_from(20 + payload.len()).expect("short").to_be_bytes();
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
    frame.extend_from_slice(&[0x45, 0, total[0], total[1], 0, 1, 0x40, 0, 64, protocol, 0, 0]);
    frame.extend_from_slice(&[203, 0, 113, 1, 203, 0, 113, 2]);
    frame.extend_from_slice(payload);
    frame
}

#[test]
fn test_fixtures_read_alike_through_tunnels() {
    // Each Ethernet fixture as a cloud's traffic mirroring sends it (VXLAN, to port 4789) and as
    // a switch's mirror port does (ERSPAN type II, in GRE): the same attempts, byte for byte.
    let vxlan = |frame: &[u8]| {
        let len = u16::try_from(16 + frame.len()).expect("short").to_be_bytes();
        outer_ipv4(
            17,
            &[&[0xc0, 0x01, 0x12, 0xb5, len[0], len[1], 0, 0, 0x08, 0, 0, 0, 0, 0, 7, 0][..], frame].concat(),
        )
    };
    let erspan = |frame: &[u8]| {
        outer_ipv4(47, &[&[0x10, 0, 0x88, 0xbe, 0, 0, 0, 1, 0x10, 0x07, 0, 1, 0, 0, 0, 0][..], frame].concat())
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, pcap) in ethernet_fixtures() {
        let plain = attempt_lines(dir.path(), &format!("plain-{file}"), &pcap);
        assert!(!plain.is_empty(), "{file}");
        for (tunnel, wrap) in [("vxlan", &vxlan as &dyn Fn(&[u8]) -> Vec<u8>), ("erspan", &erspan)] {
            let tunneled = util::rewrapped(&pcap, wrap);
            assert_eq!(attempt_lines(dir.path(), &format!("{tunnel}-{file}"), &tunneled), plain, "{file} in {tunnel}");
        }
    }
}

/// The Ethernet fixtures, named, with their bytes: what a tunnel or a PPP link is made to carry.
fn ethernet_fixtures() -> Vec<(String, Vec<u8>)> {
    let ethernet: Vec<(String, Vec<u8>)> = fixtures()
        .into_iter()
        .filter(|f| f.file.ends_with(".pcap"))
        .map(|f| {
            let pcap = std::fs::read(util::root().join("fixtures").join(&f.file)).expect("read fixture");
            (f.file, pcap)
        })
        .filter(|(_, pcap)| pcap[20..24] == 1u32.to_le_bytes())
        .collect();
    assert!(ethernet.len() >= 10, "the Ethernet fixtures ({})", ethernet.len());
    ethernet
}

/// The attempts `synscope replay --format json` writes for `pcap`, a JSON line each (written to
/// `name` in `dir` first).
fn attempt_lines(dir: &Path, name: &str, pcap: &[u8]) -> Vec<String> {
    let path = dir.join(name);
    std::fs::write(&path, pcap).expect("write");
    let json = synscope(&["replay", "--format", "json", path.to_str().expect("a UTF-8 path")]);
    assert!(json.status.success(), "{name}: {}", String::from_utf8_lossy(&json.stderr));
    let json = String::from_utf8_lossy(&json.stdout).into_owned();
    json.lines().filter(|line| line.starts_with(r#"{"kind":"attempt""#)).map(str::to_owned).collect()
}

/// A link layer's header put in front of an IP packet, given the packet's PPP protocol number.
type Framing = fn(u16, &[u8]) -> Vec<u8>;

/// RFC 2516's PPPoE session header (session 1) and PPP's protocol field in front of `packet`.
fn in_pppoe(ppp_protocol: u16, packet: &[u8]) -> Vec<u8> {
    let len = u16::try_from(2 + packet.len()).expect("short").to_be_bytes();
    [&[0x11, 0x00, 0x00, 0x01, len[0], len[1]][..], &ppp_protocol.to_be_bytes(), packet].concat()
}

/// RFC 1662's address and control bytes and PPP's protocol field in front of `packet`.
fn in_ppp(ppp_protocol: u16, packet: &[u8]) -> Vec<u8> {
    [&[0xff, 0x03][..], &ppp_protocol.to_be_bytes(), packet].concat()
}

/// Cisco HDLC's address and control bytes and the EtherType of PPP's protocol in front of `packet`.
fn in_cisco_hdlc(ppp_protocol: u16, packet: &[u8]) -> Vec<u8> {
    let ethertype: u16 = if ppp_protocol == 0x0021 { 0x0800 } else { 0x86dd };
    [&[0x0f, 0x00][..], &ethertype.to_be_bytes(), packet].concat()
}

#[test]
fn test_fixtures_read_alike_over_ppp_and_cisco_hdlc() {
    // Each Ethernet fixture's IP packets as a DSL line carries them (PPPoE, RFC 2516), and as the
    // link types of PPP and of a router's serial line record them: the same attempts, byte for
    // byte. (These links have no ARP: the fixture is compared without its ARP records there.)
    let ip_of = |frame: &[u8]| -> Option<(u16, Vec<u8>)> {
        let ethertype = u16::from_be_bytes([frame[12], frame[13]]);
        let ppp_protocol = match ethertype {
            0x0800 => 0x0021,
            0x86dd => 0x0057,
            _ => return None,
        };
        Some((ppp_protocol, frame[14..].to_vec()))
    };
    let dir = tempfile::tempdir().expect("tempdir");
    for (file, pcap) in ethernet_fixtures() {
        let attempts = |name: &str, pcap: Vec<u8>| attempt_lines(dir.path(), &format!("{name}-{file}"), &pcap);
        let pppoe_in_ethernet = util::rewrapped(&pcap, |frame| match ip_of(frame) {
            Some((protocol, packet)) => [&frame[..12], &[0x88, 0x64], &in_pppoe(protocol, &packet)].concat(),
            None => frame.to_vec(),
        });
        let plain = attempts("plain", pcap.clone());
        assert!(!plain.is_empty(), "{file}");
        assert_eq!(attempts("pppoe", pppoe_in_ethernet), plain, "{file} in PPPoE");
        let without_arp = attempts("ip-only", util::relinked(&pcap, 1, |frame| ip_of(frame).map(|_| frame.to_vec())));
        // LINKTYPE_PPP, LINKTYPE_PPP_HDLC, LINKTYPE_PPP_ETHER, LINKTYPE_C_HDLC.
        let over: [(u32, Framing); 4] = [(9, in_ppp), (50, in_ppp), (51, in_pppoe), (104, in_cisco_hdlc)];
        for (link_type, frame) in over {
            let relinked = util::relinked(&pcap, link_type, |data| ip_of(data).map(|(p, packet)| frame(p, &packet)));
            assert_eq!(attempts(&format!("link{link_type}"), relinked), without_arp, "{file} as link type {link_type}");
        }
    }
}

#[test]
fn test_fixtures_golden_output() {
    let mut settings = insta::Settings::clone_current();
    settings.set_snapshot_path(util::root().join("tests/it/golden"));
    settings.set_prepend_module_to_snapshot(false);
    settings.bind(|| {
        for fixture in fixtures() {
            let path = format!("fixtures/{}", fixture.file);
            let (attempts, _) = util::replay(Path::new(&util::root().join(&path)));
            let ports: Vec<u16> = attempts.iter().map(|a| a.client.port()).collect();
            let text = synscope(&["replay", "--color", "never", &path]);
            let json = synscope(&["replay", "--format", "json", &path]);
            assert!(text.status.success() && json.status.success(), "{path}");
            insta::assert_snapshot!(
                format!("{}.txt", fixture.file),
                redact(&String::from_utf8_lossy(&text.stdout), &ports)
            );
            insta::assert_snapshot!(
                format!("{}.json", fixture.file),
                redact(&String::from_utf8_lossy(&json.stdout), &ports)
            );
        }
    });
}

//! `synscope replay` as a user runs it: filters, formats, exit codes and errors.

use crate::fixtures::synscope;
use crate::util::json_lines;

fn stdout(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn test_json_contract_field_names() {
    let out = synscope(&["replay", "--format", "json", "fixtures/host-unreachable-v6.pcap"]);
    assert_eq!(out.status.code(), Some(0));
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2);
    let attempt = &lines[0];
    for field in [
        "kind",
        "client",
        "server",
        "family",
        "outcome",
        "errno",
        "errno_source",
        "syn_count",
        "start",
        "rtt_ms",
        "cause",
        "events",
    ] {
        assert!(attempt.get(field).is_some(), "missing {field}: {attempt}");
    }
    assert_eq!(attempt["kind"], "attempt");
    assert_eq!(attempt["family"], "ipv6");
    assert_eq!(attempt["errno_source"], "inferred");
    assert!(attempt["server"].as_str().unwrap_or_default().starts_with("[2001:db8:2::10]:"));
    for event in attempt["events"].as_array().expect("events") {
        for field in ["t", "dir", "what", "summary"] {
            assert!(event.get(field).is_some(), "missing {field}: {event}");
        }
    }
    let summary = &lines[1];
    assert_eq!(summary["kind"], "summary");
    assert_eq!(summary["attempts"], 1);
    assert_eq!(summary["outcomes"]["unreachable"], 1);
    assert_eq!(summary["undecodable"], 0);
}

#[test]
fn test_filters_select_attempts() {
    // The pcapng example holds attempts to two servers; the corpus copy is not needed for this.
    let all = json_lines(&synscope(&["replay", "--format", "json", "fixtures/refused-v4.pcap"]));
    assert_eq!(all[0]["outcome"], "refused");
    let cases: [(&[&str], usize); 6] = [
        (&["--server", "198.51.100.10"], 1),
        (&["--server", "198.51.100.10:8080"], 1),
        (&["--server", "198.51.100.10:80"], 0),
        (&["--client", "192.0.2.10"], 1),
        (&["--client", "192.0.2.11"], 0),
        (&["--failed"], 1),
    ];
    for (filter, expected) in cases {
        let mut args = vec!["replay", "--format", "json", "fixtures/refused-v4.pcap"];
        args.extend_from_slice(filter);
        let lines = json_lines(&synscope(&args));
        assert_eq!(lines.len() - 1, expected, "{filter:?}");
        assert_eq!(lines.last().expect("summary")["attempts"], expected, "{filter:?}");
    }
    let established = json_lines(&synscope(&["replay", "--format", "json", "--failed", "fixtures/success-v4.pcap"]));
    assert_eq!(established.len(), 1, "--failed leaves only the summary");
}

#[test]
fn test_missing_file_is_a_tool_error() {
    let out = synscope(&["replay", "fixtures/no-such-file.pcap"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read fixtures/no-such-file.pcap"), "{err}");
}

#[test]
fn test_not_a_capture_is_a_tool_error() {
    let out = synscope(&["replay", "Cargo.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot replay Cargo.toml: it is text (\"[package]\"), not a capture"), "{err}");
}

#[test]
fn test_truncated_file_keeps_attempts_before_the_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whole = std::fs::read(crate::util::root().join("fixtures/host-unreachable-v4.pcap")).expect("fixture");
    // Cut in the middle of the last record (the second ICMP error).
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &whole[..whole.len() - 10]).expect("write");
    let out = synscope(&["replay", "--format", "json", cut.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "partial results exit 1");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 2, "the attempt read before the damage is still reported");
    assert!(lines[1]["damaged"].as_str().unwrap_or_default().contains("truncated"), "{}", lines[1]);
    // Without the last ICMP the first one, followed by a retransmit, is only a remembered error.
    assert_eq!(lines[0]["errno"], "EHOSTUNREACH");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cut.pcap") && err.contains("truncated"), "{err}");
}

#[test]
fn test_text_output_has_timeline_verdict_and_summary() {
    let out = synscope(&["replay", "--color", "never", "fixtures/arp-failure-v4.pcap"]);
    let text = stdout(&out);
    assert!(text.contains("ARP-REQ"), "{text}");
    assert!(text.contains("⇒ unreachable: EHOSTUNREACH (113: No route to host)"), "{text}");
    assert!(text.contains("why: No ARP reply for 192.0.2.99"), "{text}");
    assert!(text.contains("EHOSTUNREACH       1  No route to host"), "{text}");
    assert!(!text.contains('\u{1b}'), "no colour with --color never");
    let coloured = stdout(&synscope(&["replay", "--color", "always", "fixtures/arp-failure-v4.pcap"]));
    assert!(coloured.contains('\u{1b}'), "colour with --color always");
}

#[test]
fn test_several_files_one_summary_and_unreadable_ones_reported() {
    let out = synscope(&[
        "replay",
        "--format",
        "json",
        "fixtures/refused-v4.pcap",
        "fixtures/missing.pcap",
        "fixtures/success-v6.pcap",
    ]);
    assert_eq!(out.status.code(), Some(2), "an unreadable file is a tool error");
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 3, "both readable files are still reported");
    assert_eq!(lines[2]["attempts"], 2);
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read fixtures/missing.pcap"));
    let text =
        stdout(&synscope(&["replay", "--color", "never", "fixtures/refused-v4.pcap", "fixtures/success-v6.pcap"]));
    assert!(text.contains("══ fixtures/refused-v4.pcap") && text.contains("2 files: 2 attempt(s)"), "{text}");
}

#[test]
fn test_bpf_filter_and_replay_overview() {
    let all = json_lines(&synscope(&["replay", "--format", "json", "fixtures/refused-v4.pcap"]));
    let summary = all.last().expect("summary");
    assert!(summary["span"]["seconds"].as_f64().expect("span") > 0.0, "{summary}");
    assert_eq!(summary["top_failing_servers"][0]["server"], "198.51.100.10:8080");
    assert_eq!(summary["top_failing_servers"][0]["failures"], 1);
    assert_eq!(summary["top_failing_servers"][0]["errnos"]["ECONNREFUSED"], 1);
    // Only packets of another port: nothing of the attempt is left.
    let filtered =
        json_lines(&synscope(&["replay", "--format", "json", "--bpf", "port 9", "fixtures/refused-v4.pcap"]));
    assert_eq!(filtered.len(), 1, "only the summary");
    assert_eq!(filtered[0]["packets"], summary["packets"], "every record is still read");
    let kept =
        json_lines(&synscope(&["replay", "--format", "json", "--bpf", "tcp port 8080", "fixtures/refused-v4.pcap"]));
    assert_eq!(kept.len(), 2);
    let established = json_lines(&synscope(&["replay", "--format", "json", "fixtures/success-v6.pcap"]));
    let rtt = &established.last().expect("summary")["rtt_ms"];
    assert_eq!(rtt["count"], 1);
    assert!(rtt["p50"].as_f64().expect("p50") > 0.0);
    let bad = synscope(&["replay", "--bpf", "port eighty", "fixtures/refused-v4.pcap"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("bad --bpf expression `port eighty`"));
    let too_few = synscope(&["replay", "--max-open", "10", "fixtures/refused-v4.pcap"]);
    assert_eq!(too_few.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&too_few.stderr).contains("10 is too few: at least 64"));
}

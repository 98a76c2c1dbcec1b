//! The synthetic capture generator against its own ground truth, and replay at scale: every
//! attempt agrees, in pcap and pcapng, memory does not grow with the capture, and a terminal gets
//! a progress bar.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use synscope::synth::{generate, SynthConfig};

/// Writes a generated capture and its ground truth into `dir`; returns the capture's path, the
/// ground truth's text and the number of records.
fn generated(dir: &Path, config: SynthConfig) -> (PathBuf, String, u64) {
    let pcap = dir.join(if config.pcapng { "synth.pcapng" } else { "synth.pcap" });
    let mut pcap_out = std::io::BufWriter::new(std::fs::File::create(&pcap).expect("create capture"));
    let mut truth = Vec::new();
    let stats = generate(config, &mut pcap_out, &mut truth).expect("generate");
    drop(pcap_out);
    assert_eq!(stats.flows, config.flows);
    (pcap, String::from_utf8(truth).expect("utf-8"), stats.packets)
}

fn agrees_with_ground_truth(config: SynthConfig) {
    agrees_with_ground_truth_snapped(config, None);
}

/// Replays the generated capture, or the capture as a snap length of `snaplen` bytes would have
/// recorded it, and checks every attempt against the ground truth.
fn agrees_with_ground_truth_snapped(config: SynthConfig, snaplen: Option<usize>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut pcap, truth, packets) = generated(dir.path(), config);
    if let Some(snaplen) = snaplen {
        let cut = dir.path().join("snapped.pcap");
        std::fs::write(&cut, crate::util::snapped(&std::fs::read(&pcap).expect("read"), snaplen)).expect("write");
        pcap = cut;
    }
    let (attempts, capture) = crate::util::replay(&pcap);
    assert_eq!(capture.packets, packets);
    assert_eq!(capture.undecodable, 0);
    let ours: HashMap<(String, String), (&str, &str)> = attempts
        .iter()
        .map(|a| ((a.client.to_string(), a.server.to_string()), (a.outcome.name(), a.errno.map_or("-", |e| e.name()))))
        .collect();
    let mut disagreements = Vec::new();
    let mut kinds: HashMap<(&str, &str), usize> = HashMap::new();
    for line in truth.lines().skip(1) {
        let c: Vec<&str> = line.split('\t').collect();
        let want = (c[2], c[3]);
        *kinds.entry(want).or_default() += 1;
        match ours.get(&(c[0].to_string(), c[1].to_string())) {
            Some(got) if *got == want => {}
            got => disagreements.push(format!("{} -> {}: want {want:?}, got {got:?}", c[0], c[1])),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} disagree:\n{}",
        disagreements.len(),
        config.flows,
        disagreements[..disagreements.len().min(10)].join("\n")
    );
    assert_eq!(attempts.len() as u64, config.flows, "no attempt more than the generator made");
    assert!(kinds.len() >= 6, "every kind of attempt is in the mix: {kinds:?}");
}

#[test]
fn test_synthetic_capture_agrees_with_ground_truth() {
    agrees_with_ground_truth(SynthConfig { flows: 20_000, seed: 7, ..SynthConfig::default() });
}

#[test]
fn test_synthetic_capture_with_a_short_snap_length_agrees_with_ground_truth() {
    // 96 bytes, a common choice to keep headers only: every ICMPv6 error is cut before the
    // quoted ports, and is matched to its attempt by the quoted flow label.
    let config = SynthConfig { flows: 20_000, seed: 9, start_interval_us: 1_000, ..SynthConfig::default() };
    agrees_with_ground_truth_snapped(config, Some(96));
}

#[test]
fn test_synthetic_pcapng_agrees_with_ground_truth() {
    agrees_with_ground_truth(SynthConfig { flows: 20_000, seed: 8, pcapng: true, ..SynthConfig::default() });
}

#[test]
fn test_filtered_summary_says_what_it_chose_from() {
    // The summary counts what the filters chose, and says of how many attempts in the capture:
    // `--failed`'s answer is then a failure rate.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SynthConfig { flows: 2_000, seed: 12, ..SynthConfig::default() };
    let (pcap, truth, _) = generated(dir.path(), config);
    let rows: Vec<Vec<&str>> = truth.lines().skip(1).map(|line| line.split('\t').collect()).collect();
    let failed = rows.iter().filter(|row| row[2] != "established").count();
    let server = rows[0][1];
    let to_server = rows.iter().filter(|row| row[1] == server).count();
    assert!(0 < failed && failed < rows.len() && to_server < rows.len(), "{failed} failed, {to_server} to {server}");
    let pcap = pcap.display().to_string();
    for (filter, chosen) in [(&["--failed"][..], failed), (&["--server", server], to_server)] {
        let mut args = vec!["replay", "--format", "json", &pcap];
        args.extend_from_slice(filter);
        let lines = crate::util::json_lines(&crate::fixtures::synscope(&args));
        let summary = lines.last().expect("a summary");
        assert_eq!(summary["attempts"], chosen, "{filter:?}: {summary}");
        assert_eq!(summary["attempts_found"], rows.len(), "{filter:?}: {summary}");
        args[2] = "text";
        let text = crate::fixtures::synscope(&args);
        let text = String::from_utf8_lossy(&text.stdout);
        let said = format!("{chosen} attempt(s) shown of {} in ", rows.len());
        assert!(text.contains(&said), "{filter:?}: {said:?} in {text}");
    }
    // Unfiltered, all were shown: nothing more to say.
    let lines = crate::util::json_lines(&crate::fixtures::synscope(&["replay", "--format", "json", &pcap]));
    let summary = lines.last().expect("a summary");
    assert_eq!(summary["attempts"], rows.len());
    assert!(summary.get("attempts_found").is_none(), "{summary}");
}

#[test]
fn test_crowded_replay_says_when_the_capture_lacks_the_handshakes_acks() {
    // 2,000 attempts in 0.2 s, at most 600 open. A capture filtered to SYN, RST and ICMP (as the
    // README's live pipe is) holds no ACK of the SYN-ACK, so established attempts are kept open for
    // seconds: stderr says so, where a crowd of every kind is told as a possible SYN flood.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SynthConfig { flows: 2_000, seed: 5, start_interval_us: 100, ..SynthConfig::default() };
    let (pcap, _, _) = generated(dir.path(), config);
    let pcap = pcap.display().to_string();
    let stderr = |extra: &[&str]| {
        let mut args = vec!["replay", "--format", "json", "--max-open", "600", &pcap];
        args.extend_from_slice(extra);
        let out = crate::fixtures::synscope(&args);
        assert_eq!(out.status.code(), Some(0), "{extra:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let filtered = stderr(&["--bpf", "tcp[tcpflags] & (tcp-syn|tcp-rst) != 0 or icmp or icmp6"]);
    assert!(filtered.contains("were established and waited only for the client's ACK"), "{filtered}");
    assert!(!filtered.contains("SYN flood"), "{filtered}");
    let whole = stderr(&[]);
    assert!(whole.contains("were open at once (a SYN flood?)"), "{whole}");
    assert!(!whole.contains("client's ACK"), "{whole}");
}

/// Peak resident memory of a `synscope` run in KiB, as `/usr/bin/time` reports it.
fn peak_kib(args: &[&str]) -> Option<u64> {
    if !Path::new("/usr/bin/time").exists() {
        assert!(!crate::util::in_ci(), "/usr/bin/time is missing (the test script installs it)");
        eprintln!("skipped: /usr/bin/time is missing");
        return None;
    }
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", env!("CARGO_BIN_EXE_synscope")])
        .args(args)
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run /usr/bin/time");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    Some(stderr.lines().last().and_then(|l| l.trim().parse().ok()).expect("a peak in KiB"))
}

#[test]
fn test_replay_memory_does_not_grow_with_the_capture() {
    // 1,000 attempts a second: about 10 s into the capture, attempts open and leave at the same
    // rate. A capture twice as long must not take more memory, and neither may pass 32 MiB.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut peaks = Vec::new();
    for (flows, name) in [(20_000, "short"), (40_000, "long")] {
        let sub = dir.path().join(name);
        std::fs::create_dir(&sub).expect("mkdir");
        let config = SynthConfig { flows, seed: 3, start_interval_us: 1_000, ..SynthConfig::default() };
        let (pcap, _, _) = generated(&sub, config);
        let Some(peak) = peak_kib(&["replay", "--format", "json", &pcap.display().to_string()]) else { return };
        peaks.push(peak);
    }
    let (short, long) = (peaks[0], peaks[1]);
    eprintln!("replay peak memory: {short} KiB for 20,000 attempts, {long} KiB for 40,000");
    assert!(long < 32 * 1024, "a replay must stay under 32 MiB: {long} KiB");
    assert!(long < short + 2 * 1024, "twice the capture, not more memory: {short} KiB, then {long} KiB");
}

#[test]
fn test_replay_memory_is_bounded_on_a_syn_flood() {
    // 100,000 lone SYNs in one second: each stays open until its retransmit is overdue (about
    // 5 s), so all of them would be open at the end, some 80 MiB of attempts.
    let dir = tempfile::tempdir().expect("tempdir");
    let config = SynthConfig { flows: 100_000, start_interval_us: 10, syn_flood: true, ..SynthConfig::default() };
    let (pcap, _, _) = generated(dir.path(), config);
    let pcap = pcap.display().to_string();
    let Some(bounded) = peak_kib(&["replay", "--format", "json", &pcap]) else { return };
    let Some(unbounded) = peak_kib(&["replay", "--format", "json", "--max-open", "200000", &pcap]) else { return };
    eprintln!("SYN flood: peak {bounded} KiB within --max-open's default, {unbounded} KiB beyond it");
    assert!(bounded < 32 * 1024, "a replay must stay under 32 MiB: {bounded} KiB");
    assert!(unbounded > 2 * bounded, "the bound is what keeps it small: {bounded} KiB, then {unbounded} KiB");
    // Every SYN is still an attempt; those finished to make room say so, and the summary counts them.
    let out = Command::new(env!("CARGO_BIN_EXE_synscope")).args(["replay", "--format", "json", &pcap]).output();
    let out = out.expect("run");
    assert_eq!(out.status.code(), Some(0));
    let lines = crate::util::json_lines(&out);
    let (summary, attempts) = lines.split_last().expect("a summary");
    assert_eq!(attempts.len(), 100_000);
    assert!(attempts.iter().all(|a| a["errno"] == "ETIMEDOUT"), "lone SYNs time out");
    let early = attempts.iter().filter(|a| a["findings"][0]["code"] == "decided_early").count();
    assert!(early > 50_000, "{early} decided early");
    assert_eq!(summary["finished_early"], early, "{summary}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--max-open raises the bound"));
}

#[test]
fn test_replay_output_does_not_depend_on_the_readers() {
    // Flows split between readers, merged back: the same bytes, attempts and summary, as one
    // reader writes them; in JSON and in text, whole and filtered (each reader compiles --bpf
    // anew); from the capture and from it compressed.
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, _, _) = generated(dir.path(), SynthConfig { flows: 20_000, seed: 11, ..SynthConfig::default() });
    let gzipped = dir.path().join("synth.pcap.gz");
    let compressed = crate::util::gzip(&std::fs::read(&pcap).expect("read"), flate2::Compression::fast());
    std::fs::write(&gzipped, compressed).expect("write");
    let bin = env!("CARGO_BIN_EXE_synscope");
    let variants = [
        &["--format", "json"][..],
        &["--format", "text", "--color", "always"],
        &["--format", "json", "--failed"],
        &["--format", "json", "--bpf", "port 443 or icmp or icmp6"],
    ];
    for extra in variants {
        let run = |capture: &Path, threads: &str| {
            let out = Command::new(bin).arg("replay").args(extra).args(["--threads", threads]).arg(capture).output();
            let out = out.expect("run");
            assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
            out.stdout
        };
        let one = run(&pcap, "1");
        assert!(one.len() > 100_000, "{extra:?}: a replay shows something");
        // (The summary names the file read.)
        let one_compressed = run(&gzipped, "1");
        for threads in ["2", "3"] {
            assert!(run(&pcap, threads) == one, "{extra:?}: {threads} readers write other bytes than one");
            // Decompressed once for all the readers, which read it in step.
            let compressed = run(&gzipped, threads);
            assert!(compressed == one_compressed, "{extra:?}: {threads} readers of the compressed capture");
        }
    }
}

#[test]
fn test_progress_bar_on_a_terminal_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, _, _) = generated(dir.path(), SynthConfig { flows: 20_000, ..SynthConfig::default() });
    let bin = env!("CARGO_BIN_EXE_synscope");
    // Not a terminal: nothing on stderr.
    let piped = Command::new(bin).args(["replay", "--format", "json"]).arg(&pcap).output().expect("run");
    assert_eq!(piped.status.code(), Some(0));
    assert!(piped.stderr.is_empty(), "{}", String::from_utf8_lossy(&piped.stderr));
    // A terminal (script(1) gives it a pty): bytes read, packets and attempts so far.
    let command = format!("{bin} replay --format json {} > /dev/null", pcap.display());
    let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).output();
    let Ok(tty) = tty else {
        assert!(!crate::util::in_ci(), "script(1) is missing (the test script installs it)");
        eprintln!("skipped: script(1) is missing");
        return;
    };
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(tty.status.code(), Some(0), "{shown}");
    assert!(shown.contains("packets,") && shown.contains("attempts"), "no progress bar: {shown:?}");
    assert!(shown.contains("synth.pcap"), "{shown:?}");
    // Output on the same terminal as the bar: every line starts at the left edge, none after the
    // bar's text (a write between two of its draws, unless the bar is cleared first).
    let command = format!("{bin} replay --format json {}", pcap.display());
    let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("script");
    let shown = String::from_utf8_lossy(&tty.stdout).replace("\r\n", "\n");
    assert_eq!(tty.status.code(), Some(0), "{shown}");
    assert!(shown.contains("packets,"), "no progress bar: {shown:?}");
    let attempts = shown.lines().filter(|line| line.contains(r#"{"kind":"attempt""#));
    let (mut lines, mut after_the_bar) = (0, Vec::new());
    for line in attempts {
        lines += 1;
        // What stays on screen: the text after the line's last carriage return, escapes removed.
        let visible = console::strip_ansi_codes(line.rsplit('\r').next().unwrap_or(line));
        if !visible.starts_with(r#"{"kind":"attempt""#) {
            after_the_bar.push(visible);
        }
    }
    assert_eq!(lines, 20_000, "one line per attempt: {shown:?}");
    assert!(after_the_bar.is_empty(), "lines drawn after the bar: {after_the_bar:#?}");
    // Standard input: a file redirected has a size, and the bar a total and the time left; a
    // pipe has none, and the bar says how far it has come.
    for (input, sized) in [(format!("< {}", pcap.display()), true), (format!("cat {} |", pcap.display()), false)] {
        let command = match sized {
            true => format!("{bin} replay --format json - {input} > /dev/null"),
            false => format!("{input} {bin} replay --format json - > /dev/null"),
        };
        let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("script");
        let shown = String::from_utf8_lossy(&tty.stdout);
        assert_eq!(tty.status.code(), Some(0), "{shown}");
        assert!(shown.contains("standard input") && shown.contains("packets,"), "{command}: {shown:?}");
        assert_eq!(shown.contains(" left)"), sized, "{command}: {shown:?}");
    }
    // Several files: each bar says which file of how many (the second, compressed, is a copy).
    let gz = dir.path().join("synth.pcap.gz");
    let bytes = std::fs::read(&pcap).expect("read");
    std::fs::write(&gz, crate::util::gzip(&bytes, flate2::Compression::fast())).expect("write");
    let command = format!("{bin} replay --format json {} {} > /dev/null", pcap.display(), gz.display());
    let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("script");
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert_eq!(tty.status.code(), Some(0), "{shown}");
    assert!(shown.contains("synth.pcap (1/2)") && shown.contains("synth.pcap.gz (2/2)"), "{shown:?}");
    // A compressed file: the bar goes through the file, whose size is known, and has a time left;
    // the capture's bytes are counted beside it. With one reader and with two.
    // Standard input redirected from the compressed file, too; piped from it, the bar has no total.
    let total = format!("/{} compressed", indicatif::HumanBytes(std::fs::metadata(&gz).expect("size").len()));
    let commands = [
        (format!("{bin} replay --threads 1 --format json {} > /dev/null", gz.display()), true),
        (format!("{bin} replay --threads 2 --format json {} > /dev/null", gz.display()), true),
        (format!("{bin} replay --format json - < {} > /dev/null", gz.display()), true),
        (format!("cat {} | {bin} replay --format json - > /dev/null", gz.display()), false),
    ];
    for (command, sized) in commands {
        let tty = Command::new("script").args(["-qec", &command, "/dev/null"]).output().expect("script");
        let shown = String::from_utf8_lossy(&tty.stdout);
        assert_eq!(tty.status.code(), Some(0), "{shown}");
        assert!(shown.contains("packets,"), "{command}: {shown:?}");
        assert_eq!(shown.contains(&total) && shown.contains(" left)"), sized, "{command}: {shown:?}");
        assert_eq!(shown.contains("MiB of capture, "), sized, "{command}: {shown:?}");
    }
}

#[test]
fn test_replay_interrupted_shows_what_was_read_and_the_summary() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    use std::io::Read as _;

    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, _, _) = generated(dir.path(), SynthConfig { flows: 100_000, ..SynthConfig::default() });
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let mut child = crate::util::spawn_replay(&["--format", "json", pcap.to_str().expect("a UTF-8 path")]);
        let mut stdout = child.stdout.take().expect("stdout");
        let (started, first_output) = std::sync::mpsc::channel();
        let reader = std::thread::spawn(move || {
            let mut text = vec![0_u8; 1];
            stdout.read_exact(&mut text).expect("first output");
            let _ = started.send(());
            stdout.read_to_end(&mut text).expect("read stdout");
            String::from_utf8(text).expect("utf-8")
        });
        // Interrupt once attempts are coming out, long before the 100,000th.
        first_output.recv_timeout(std::time::Duration::from_secs(60)).expect("replay starts writing");
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "replay did not stop after {signal}");
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let text = reader.join().expect("reader");
        let mut stderr = String::new();
        child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
        assert_eq!(status.code(), Some(130), "{signal}: {stderr}");
        assert!(stderr.contains("interrupted"), "{signal}: {stderr}");
        let summary: serde_json::Value =
            serde_json::from_str(text.lines().last().expect("a summary line")).expect("JSON summary");
        assert_eq!(summary["kind"], "summary");
        assert!(summary["damaged"].as_str().is_some_and(|d| d.contains("interrupted after")), "{summary}");
        let attempts = summary["attempts"].as_u64().expect("attempts");
        assert!(attempts > 0 && attempts < 100_000, "{signal}: {attempts} attempts before the interruption");
        assert_eq!(text.lines().count() as u64, attempts + 1, "every attempt counted is shown");
    }
}

#[test]
fn test_replay_into_a_closed_pipe_stops_quietly() {
    use std::io::BufRead as _;
    let dir = tempfile::tempdir().expect("tempdir");
    let (pcap, _, _) = generated(dir.path(), SynthConfig { flows: 50_000, ..SynthConfig::default() });
    let mut child = crate::util::spawn_replay(&["--format", "json", pcap.to_str().expect("a UTF-8 path")]);
    // Like `| head -1`: read one line, then close the pipe.
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut first).expect("a line");
    assert!(first.starts_with("{\"kind\":\"attempt\""), "{first}");
    let out = child.wait_with_output().expect("replay ends");
    assert_eq!(out.status.code(), Some(0), "a closed pipe is not an error: {}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

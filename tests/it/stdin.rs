//! Replay from standard input (`synscope replay -`): a capture redirected or piped in reads exactly
//! as the file itself, whatever the readers asked for, and a live capture piped in shows each
//! attempt once it is finished, while the pipe is still open, not when it closes.

use std::io::{BufRead as _, Read as _, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use synscope::synth::{generate, SynthConfig};

/// `synscope replay ARGS...` with `input` as its standard input; its standard output.
fn replay_with_stdin(args: &[&str], input: Stdio) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_synscope"))
        .arg("replay")
        .args(args)
        .stdin(input)
        .stderr(Stdio::piped())
        .output()
        .expect("run synscope");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

/// `synscope replay ARGS... FILE`: its standard output.
fn replay_file(args: &[&str], file: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_synscope")).arg("replay").args(args).arg(file).output().expect("run");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8")
}

#[test]
fn test_standard_input_reads_as_the_file_redirected_or_piped() {
    let dir = tempfile::tempdir().expect("tempdir");
    for pcapng in [false, true] {
        let path = dir.path().join(if pcapng { "synth.pcapng" } else { "synth.pcap" });
        let config = SynthConfig { flows: 3_000, seed: 11, pcapng, ..SynthConfig::default() };
        generate(config, &mut std::fs::File::create(&path).expect("create"), &mut std::io::sink()).expect("generate");
        let want = replay_file(&["--format", "json"], &path);
        assert_eq!(want.lines().count(), 3_001, "every attempt and the summary");
        // Redirected: standard input is the file itself.
        let redirected =
            replay_with_stdin(&["--format", "json", "-"], std::fs::File::open(&path).expect("open").into());
        assert_eq!(redirected, want, "redirected, pcapng {pcapng}");
        // Piped in writes of 4,099 bytes, which split records across reads; two readers asked for,
        // one used.
        let mut child = crate::util::spawn_replay(&["--format", "json", "--threads", "2", "-"]);
        let mut stdin = child.stdin.take().expect("stdin");
        let bytes = std::fs::read(&path).expect("read");
        let writer = std::thread::spawn(move || {
            for piece in bytes.chunks(4_099) {
                stdin.write_all(piece).expect("write to the pipe");
            }
        });
        let out = child.wait_with_output().expect("replay ends");
        writer.join().expect("writer");
        assert!(out.status.success());
        assert_eq!(String::from_utf8(out.stdout).expect("utf-8"), want, "piped, pcapng {pcapng}");
        // Compressed: redirected, and piped in small writes, as `ssh host cat day.pcap.gz |` does.
        let gz = dir.path().join(if pcapng { "synth.pcapng.gz" } else { "synth.pcap.gz" });
        std::fs::write(&gz, crate::util::gzip(&std::fs::read(&path).expect("read"), flate2::Compression::fast()))
            .expect("write");
        let redirected = replay_with_stdin(&["--format", "json", "-"], std::fs::File::open(&gz).expect("open").into());
        assert_eq!(redirected, want, "compressed, redirected, pcapng {pcapng}");
        let mut child = crate::util::spawn_replay(&["--format", "json", "-"]);
        let mut stdin = child.stdin.take().expect("stdin");
        let bytes = std::fs::read(&gz).expect("read");
        let writer =
            std::thread::spawn(move || bytes.chunks(4_099).for_each(|piece| stdin.write_all(piece).expect("write")));
        let out = child.wait_with_output().expect("replay ends");
        writer.join().expect("writer");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(String::from_utf8(out.stdout).expect("utf-8"), want, "compressed, piped, pcapng {pcapng}");
        // A pipe given by its name (`synscope replay <(zcat day.pcap.gz)`, a FIFO), compressed or
        // not, with two readers asked for: read once, as it comes, by one.
        for (source, what) in [(&path, "a FIFO"), (&gz, "a FIFO, compressed")] {
            let fifo = dir.path().join("fifo");
            nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
            let bytes = std::fs::read(source).expect("read");
            let writer_path = fifo.clone();
            let writer = std::thread::spawn(move || std::fs::write(writer_path, bytes).expect("write to the FIFO"));
            let out = replay_file(&["--format", "json", "--threads", "2"], &fifo);
            writer.join().expect("writer");
            std::fs::remove_file(&fifo).expect("rm fifo");
            assert_eq!(out.replace(&fifo.display().to_string(), "-"), want, "{what}, pcapng {pcapng}");
        }
    }
    let text = replay_with_stdin(
        &["-"],
        std::fs::File::open(crate::util::root().join("fixtures/refused-v4.pcap")).expect("open").into(),
    );
    assert!(text.contains("standard input: 1 attempt(s)"), "the summary names its source: {text}");
}

#[test]
fn test_standard_input_given_twice_or_empty_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_synscope"))
        .args(["replay", "-", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("standard input) can be replayed only once"));
    let out =
        Command::new(env!("CARGO_BIN_EXE_synscope")).args(["replay", "-"]).stdin(Stdio::null()).output().expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("cannot replay standard input: the file is empty"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A little-endian classic pcap fixture's file header and its records (each header and data).
fn header_and_records(fixture: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let bytes = std::fs::read(crate::util::root().join("fixtures").join(fixture)).expect("fixture");
    let records = crate::util::pcap_records(&bytes).into_iter().map(<[u8]>::to_vec).collect();
    (bytes[..24].to_vec(), records)
}

/// `record` with its time set to `seconds` since 1970.
fn at_second(record: &[u8], seconds: u32) -> Vec<u8> {
    let mut moved = record.to_vec();
    moved[..4].copy_from_slice(&seconds.to_le_bytes());
    moved
}

/// The first record that is an IPv4 TCP SYN in an Ethernet frame (its 16-byte record header first).
fn first_syn(records: &[Vec<u8>]) -> &[u8] {
    records
        .iter()
        .find(|r| {
            let frame = &r[16..];
            let tcp = frame.get(14 + usize::from(frame.get(14).map_or(0, |v| v & 0x0f)) * 4..);
            frame.get(12..14) == Some(&[0x08, 0x00][..])
                && frame.get(23) == Some(&6)
                && tcp.and_then(|t| t.get(13)) == Some(&0x02)
        })
        .expect("a SYN")
}

/// The second of a record's time.
fn second_of(record: &[u8]) -> u32 {
    u32::from_le_bytes(record[..4].try_into().expect("4 bytes"))
}

/// `record`, an IPv4 TCP segment in an Ethernet frame, made a UDP datagram: the protocol changed
/// and the IP header's checksum computed again.
fn as_udp(record: &[u8]) -> Vec<u8> {
    let ip_at = 16 + 14;
    let (mut header, _) = etherparse::Ipv4Header::from_slice(&record[ip_at..]).expect("an IPv4 header");
    header.protocol = etherparse::IpNumber::UDP;
    header.header_checksum = header.calc_header_checksum();
    let mut udp = record.to_vec();
    udp[ip_at..ip_at + header.header_len()].copy_from_slice(&header.to_bytes());
    udp
}

#[test]
fn test_a_live_capture_piped_in_shows_each_attempt_while_the_pipe_is_open() {
    // A refused attempt, then, 10 s later, another attempt's SYN: the capture's clock passes the
    // first attempt's time (1.5 s after its last packet), which finishes it.
    let (_, other) = header_and_records("success-v4.pcap");
    shows_the_first_attempt_while_open(first_syn(&other), 2, false);
}

#[test]
fn test_a_live_capture_piped_in_through_gzip_shows_each_attempt_while_the_pipe_is_open() {
    // `tcpdump -U -w - | gzip` (with each write flushed, as `pigz --rsyncable` or a compressor
    // told to flush does): decompressed as it comes, not once a chunk of 256 KiB has.
    let (_, other) = header_and_records("success-v4.pcap");
    shows_the_first_attempt_while_open(first_syn(&other), 2, true);
}

#[test]
fn test_a_live_capture_piped_in_moves_its_clock_with_records_no_attempt_needs() {
    // The same with a UDP datagram 10 s later: no attempt takes it, but capture time passes.
    let (_, other) = header_and_records("success-v4.pcap");
    shows_the_first_attempt_while_open(&as_udp(first_syn(&other)), 1, false);
}

/// Pipes a refused attempt into a replay, then `later` 10 s of capture time after it, a few
/// hundred bytes as `tcpdump -U -w -` writes them, and then nothing more for as long as the
/// capture runs: the refused attempt must come out while the pipe is open. Once it closes, the
/// replay shows `attempts` in all. `compressed`: through gzip, each write flushed.
fn shows_the_first_attempt_while_open(later: &[u8], attempts: u64, compressed: bool) {
    let (header, records) = header_and_records("refused-v4.pcap");
    let mut child = crate::util::spawn_replay(&["--format", "json", "-"]);
    let pipe = child.stdin.take().expect("stdin");
    let mut stdin: Box<dyn std::io::Write> = match compressed {
        true => Box::new(flate2::write::GzEncoder::new(pipe, flate2::Compression::fast())),
        false => Box::new(pipe),
    };
    let clock = at_second(later, second_of(&records[0]) + 10);
    // Record by record, as they are captured: each read finds one.
    for piece in std::iter::once(&header).chain(&records).chain([&clock]) {
        stdin.write_all(piece).expect("write");
        stdin.flush().expect("flush");
        std::thread::sleep(Duration::from_millis(100));
    }
    let stdout = child.stdout.take().expect("stdout");
    let (lines_tx, lines) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let _ = lines_tx.send(line.expect("a line"));
        }
    });
    // The pipe stays open: the first attempt must come out anyway.
    let first = lines.recv_timeout(Duration::from_secs(20));
    drop(stdin);
    let status = child.wait().expect("replay ends");
    reader.join().expect("reader");
    let mut stderr = String::new();
    child.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("stderr");
    let first = first.unwrap_or_else(|_| panic!("no attempt shown in 20 s while the pipe was open ({stderr})"));
    let first: serde_json::Value = serde_json::from_str(&first).expect("JSON");
    assert_eq!(first["kind"], "attempt");
    assert_eq!(first["errno"], "ECONNREFUSED");
    let rest: Vec<serde_json::Value> = lines.iter().map(|l| serde_json::from_str(&l).expect("JSON")).collect();
    let (summary, others) = rest.split_last().expect("a summary once the pipe closed");
    assert_eq!(others.len() as u64, attempts - 1, "the other attempts, once the pipe closed: {rest:?}");
    assert_eq!(summary["attempts"], attempts);
    assert!(status.success(), "{stderr}");
}

#[test]
fn test_a_replay_waiting_on_a_quiet_pipe_stops_at_once_when_told() {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;

    let (header, records) = header_and_records("refused-v4.pcap");
    for signal in [Signal::SIGINT, Signal::SIGTERM] {
        let mut child = crate::util::spawn_replay(&["--format", "json", "-"]);
        // The pipe stays open and quiet: the replay waits in its read.
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&header).expect("write");
        records.iter().for_each(|record| stdin.write_all(record).expect("write"));
        std::thread::sleep(Duration::from_millis(300));
        kill(Pid::from_raw(child.id() as i32), signal).expect("signal");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{signal}: the replay still waits on its pipe 10 s later");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(stdin);
        let out = child.wait_with_output().expect("output");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(status.code(), Some(130), "{signal}: {stderr}");
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let summary: serde_json::Value = serde_json::from_str(text.lines().last().expect("a summary")).expect("JSON");
        assert_eq!(summary["kind"], "summary", "{signal}");
        assert_eq!(summary["attempts"], 1, "{signal}: the attempt read before the signal is shown: {text}");
    }
}

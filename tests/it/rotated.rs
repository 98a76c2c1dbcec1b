//! Several files given together: the pieces of one rotated capture (`tcpdump -C`/`-G`, `editcap
//! -c`) replay exactly as the whole capture does, whatever order their names sort in; files that
//! overlap in time, that lie far apart, or that follow a damaged one are captures of their own, and
//! so is every file with `--apart`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use synscope::replay;
use synscope::synth::{generate, SynthConfig};

/// Classic pcap's file header length.
const FILE_HEADER: usize = 24;

/// A generated capture of `flows` attempts (classic pcap, little-endian, microseconds).
fn generated(dir: &Path, flows: u64) -> Vec<u8> {
    let mut pcap = Vec::new();
    generate(SynthConfig { flows, seed: 11, ..SynthConfig::default() }, &mut pcap, &mut Vec::new()).expect("generate");
    assert_eq!(&pcap[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian microsecond pcap");
    std::fs::write(dir.join("whole.pcap"), &pcap).expect("write");
    pcap
}

/// Cuts a classic pcap into pieces of `records` records each, as `editcap -c` does, each with the
/// file header; the records of pieces from `shifted_from` on are moved `shift_secs` later.
fn cut(pcap: &[u8], records: usize, shifted_from: usize, shift_secs: u32) -> Vec<Vec<u8>> {
    let header = &pcap[..FILE_HEADER];
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    for (n, record) in crate::util::pcap_records(pcap).into_iter().enumerate() {
        if n % records == 0 {
            pieces.push(header.to_vec());
        }
        let mut record = record.to_vec();
        if pieces.len() > shifted_from {
            let secs = u32::from_le_bytes(record[..4].try_into().expect("4 bytes")) + shift_secs;
            record[..4].copy_from_slice(&secs.to_le_bytes());
        }
        pieces.last_mut().expect("a piece").extend_from_slice(&record);
    }
    pieces
}

/// Writes `pieces` into `dir` named as `tcpdump -C` names them (`trace`, `trace1`, `trace2` ...),
/// and returns their paths in the order a shell's glob sorts them: `trace10` before `trace2`.
fn written(dir: &Path, pieces: &[Vec<u8>]) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = pieces
        .iter()
        .enumerate()
        .map(|(i, piece)| {
            let path = dir.join(if i == 0 { "trace".to_string() } else { format!("trace{i}") });
            std::fs::write(&path, piece).expect("write piece");
            path
        })
        .collect();
    paths.sort();
    paths
}

/// `synscope replay --format json ARGS...`: its attempt lines, and its summary.
fn replayed(args: &[&Path], extra: &[&str]) -> (Vec<String>, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_synscope"))
        .args(["replay", "--format", "json"])
        .args(extra)
        .args(args)
        .output()
        .expect("run synscope");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut lines: Vec<String> = String::from_utf8(out.stdout).expect("utf-8").lines().map(str::to_string).collect();
    let summary = serde_json::from_str(&lines.pop().expect("a summary")).expect("JSON");
    (lines, summary)
}

#[test]
fn test_pieces_of_a_rotated_capture_replay_as_the_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = generated(dir.path(), 3000);
    let (whole, whole_summary) = replayed(&[&dir.path().join("whole.pcap")], &[]);
    let pieces = written(dir.path(), &cut(&pcap, 2000, usize::MAX, 0));
    assert!(pieces.len() >= 11, "enough pieces that their names sort out of order: {}", pieces.len());
    let pieces: Vec<&Path> = pieces.iter().map(PathBuf::as_path).collect();

    // Each piece on its own ends attempts that the next one finishes: the test has some to join.
    let (apart, summary) = replayed(&pieces, &["--apart"]);
    assert_ne!(apart.len(), whole.len(), "attempts cross the pieces' boundaries");
    let files = summary["files"].as_array().expect("the files read");
    let mut first_frame = 1;
    for (file, piece) in files.iter().zip(&pieces) {
        assert_eq!(file["file"], piece.display().to_string(), "--apart: in the order given");
        assert!(file.get("continues").is_none(), "--apart: each on its own: {file}");
        assert_eq!(file["first_frame"], first_frame, "frames number on across the files: {file}");
        first_frame += file["packets"].as_u64().expect("records");
    }

    for threads in ["1", "2"] {
        let (joined, summary) = replayed(&pieces, &["--threads", threads]);
        assert!(
            joined == whole,
            "{threads} reader(s): the pieces read as one capture show the whole's attempts, frames and all"
        );
        assert_eq!(summary["attempts"], whole_summary["attempts"]);
        assert_eq!(summary["outcomes"], whole_summary["outcomes"]);
        let files = summary["files"].as_array().expect("the files read");
        assert_eq!(files.len(), pieces.len());
        let name = |i: usize| dir.path().join(if i == 0 { "trace".to_string() } else { format!("trace{i}") });
        for (i, file) in files.iter().enumerate() {
            assert_eq!(file["file"], name(i).display().to_string(), "in the order they were written");
            assert_eq!(file["first_frame"], 2000 * i as u64 + 1);
            match i {
                0 => assert!(file.get("continues").is_none(), "{file}"),
                _ => assert_eq!(file["continues"], name(i - 1).display().to_string()),
            }
        }
    }

    // Pieces that `tcpdump -z gzip` compressed as it rotated them out: the same.
    let compressed = dir.path().join("gz");
    std::fs::create_dir(&compressed).expect("mkdir");
    let gzipped: Vec<PathBuf> = pieces
        .iter()
        .map(|piece| {
            let path = compressed.join(format!("{}.gz", piece.file_name().expect("a name").to_string_lossy()));
            let piece = std::fs::read(piece).expect("read piece");
            std::fs::write(&path, crate::util::gzip(&piece, flate2::Compression::fast())).expect("write");
            path
        })
        .collect();
    let gzipped: Vec<&Path> = gzipped.iter().map(PathBuf::as_path).collect();
    for threads in ["1", "2"] {
        let (joined, _) = replayed(&gzipped, &["--threads", threads]);
        assert!(
            joined == whole,
            "{threads} reader(s): compressed pieces read as one capture show the whole's attempts"
        );
    }
    // The whole compressed, decompressed in many chunks whose ends fall inside records.
    let whole_gz = compressed.join("whole.pcap.gz");
    std::fs::write(&whole_gz, crate::util::gzip(&pcap, flate2::Compression::fast())).expect("write");
    assert!(pcap.len() > 8 << 18, "more than eight chunks of 256 KiB: {}", pcap.len());
    assert!(replayed(&[&whole_gz], &[]).0 == whole, "the whole compressed shows the whole's attempts");

    // The text output says where a file takes the capture on.
    let text = Command::new(env!("CARGO_BIN_EXE_synscope"))
        .args(["replay", "--color", "never"])
        .args(&pieces[..2])
        .output()
        .expect("run synscope");
    let text = String::from_utf8_lossy(&text.stdout);
    let (first, second) = (pieces[0].display(), pieces[1].display());
    assert!(text.contains(&format!("══ {second} (continues the capture of {first})")), "{text}");
}

#[test]
fn test_files_that_overlap_or_lie_far_apart_are_captures_of_their_own() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = generated(dir.path(), 2000);
    let whole_path = dir.path().join("whole.pcap");
    let (whole, _) = replayed(&[&whole_path], &[]);

    // The same capture twice: two captures of the same moment, each read on its own, the second's
    // frames numbered on from the first's (so that a frame names one record of the two files).
    let (twice, summary) = replayed(&[&whole_path, &whole_path], &[]);
    let records = crate::util::pcap_records(&pcap).len() as u64;
    let renumbered = |line: &String| -> Value {
        let mut attempt: Value = serde_json::from_str(line).expect("JSON");
        for event in attempt["events"].as_array_mut().expect("events") {
            let frame = event["frame"].as_u64().expect("a frame");
            assert!(frame > records, "a frame of the second file: {frame}");
            event["frame"] = (frame - records).into();
        }
        attempt
    };
    let as_json = |line: &String| -> Value { serde_json::from_str(line).expect("JSON") };
    assert!(twice[..whole.len()] == whole[..], "the first read on its own");
    assert_eq!(
        twice[whole.len()..].iter().map(renumbered).collect::<Vec<_>>(),
        whole.iter().map(as_json).collect::<Vec<_>>()
    );
    assert!(summary["files"][1].get("continues").is_none(), "{summary}");
    assert_eq!(summary["files"][1]["first_frame"], records + 1, "{summary}");

    // The second half begins 200 s after the first ends, past the 131 s a SYN can wait for.
    let count = crate::util::pcap_records(&pcap).len();
    let far = written(dir.path(), &cut(&pcap, count / 2 + 1, 1, 200));
    assert_eq!(far.len(), 2);
    let (apart, summary) = replayed(&[&far[0], &far[1]], &[]);
    assert!(summary["files"][1].get("continues").is_none(), "{summary}");
    assert!(apart.len() > whole.len(), "attempts open at the gap end with the first file");

    // A file cut short mid-record: what follows it cannot be known to continue it.
    let mut pieces = cut(&pcap, count / 2 + 1, usize::MAX, 0);
    let damaged_len = pieces[0].len() - 5;
    pieces[0].truncate(damaged_len);
    let damaged = written(dir.path(), &pieces);
    let out = Command::new(env!("CARGO_BIN_EXE_synscope"))
        .args(["replay", "--format", "json"])
        .args(&damaged)
        .output()
        .expect("run synscope");
    assert_eq!(out.status.code(), Some(1), "a damaged file makes the results partial");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let summary: Value = serde_json::from_str(stdout.lines().last().expect("a summary")).expect("JSON");
    assert!(summary["files"][1].get("continues").is_none(), "{summary}");
}

#[test]
fn test_a_capture_whose_next_file_cannot_be_read_loses_no_attempt() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pcap = generated(dir.path(), 1000);
    let pieces = written(dir.path(), &cut(&pcap, crate::util::pcap_records(&pcap).len() / 2, usize::MAX, 0));
    let words = |attempts: &[synscope::timeline::Attempt]| -> Vec<String> {
        attempts.iter().map(|a| serde_json::to_string(a).expect("an attempt serializes")).collect()
    };
    let (alone, _) = crate::util::replay(&pieces[0]);
    let next_begins = synscope::capture::first_record_time(&pieces[1]).expect("readable").expect("a record");
    for readers in [1, 2] {
        let replaying = replay::Replaying { readers, ..replay::Replaying::default() };
        let piece = replay::Piece { continues: None, next_begins: Some(next_begins), frames_before: 0 };
        let (mut shown, replayed) = crate::util::replay_piece(&pieces[0], replaying, piece);
        let (_, goes_on) = replayed.expect("the first piece reads");
        assert!(goes_on.is_some(), "the second piece continues the first");
        assert!(shown.len() < alone.len(), "some attempts wait for the second piece");
        // The second piece is gone by the time its turn comes.
        let frames_before = crate::util::pcap_records(&std::fs::read(&pieces[0]).expect("read")).len() as u64;
        let piece = replay::Piece { continues: goes_on, next_begins: None, frames_before };
        let (rest, replayed) = crate::util::replay_piece(&dir.path().join("gone"), replaying, piece);
        let err = replayed.expect_err("a missing file is an error");
        assert!(format!("{err:#}").contains("cannot read"), "{err:#}");
        shown.extend(rest);
        assert!(
            words(&shown) == words(&alone),
            "{readers} reader(s): the attempts left open end with the first piece, as if it were alone"
        );
    }
}

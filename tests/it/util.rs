//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use synscope::correlate::Finished;
use synscope::replay;
use synscope::timeline::Attempt;

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// `synscope replay ARGS...`, started with its standard input, output and error piped to the test.
pub fn spawn_replay<S: AsRef<std::ffi::OsStr>>(args: &[S]) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_synscope"))
        .arg("replay")
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn")
}

/// The JSON lines a `synscope --format json` run wrote on its standard output.
pub fn json_lines(output: &std::process::Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&output.stdout).lines().map(|l| serde_json::from_str(l).expect("a JSON line")).collect()
}

/// The records of a little-endian classic pcap, after its 24-byte file header: each its 16-byte
/// record header and its data.
pub fn pcap_records(pcap: &[u8]) -> Vec<&[u8]> {
    let mut rest = &pcap[24..];
    let mut records = Vec::new();
    while rest.len() >= 16 {
        let caplen = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes")) as usize;
        let (record, after) = rest.split_at(16 + caplen);
        records.push(record);
        rest = after;
    }
    records
}

/// A little-endian classic pcap as a capture with a snap length of `snaplen` bytes would have
/// recorded it (`tcpdump -s SNAPLEN`): each record cut to that many bytes, its original length kept.
pub fn snapped(pcap: &[u8], snaplen: usize) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    out[16..20].copy_from_slice(&u32::try_from(snaplen).expect("a snap length").to_le_bytes());
    for record in pcap_records(pcap) {
        let (header, data) = record.split_at(16);
        let kept = &data[..data.len().min(snaplen)];
        out.extend_from_slice(&header[..8]);
        out.extend_from_slice(&u32::try_from(kept.len()).expect("a record length").to_le_bytes());
        out.extend_from_slice(&header[12..16]);
        out.extend_from_slice(kept);
    }
    out
}

/// A little-endian classic pcap with every record twice in a row, as a capture that sees each
/// packet on two interfaces (`tcpdump -i any` on a bridge) or from a mirror port records it.
pub fn doubled(pcap: &[u8]) -> Vec<u8> {
    let mut out = pcap[..24].to_vec();
    for record in pcap_records(pcap) {
        out.extend_from_slice(record);
        out.extend_from_slice(record);
    }
    out
}

/// A little-endian classic pcap with each record's data passed through `wrap` (encapsulated in a
/// tunnel, say), its captured and original lengths grown by as much.
pub fn rewrapped(pcap: &[u8], wrap: impl Fn(&[u8]) -> Vec<u8>) -> Vec<u8> {
    let link_type = u32::from_le_bytes(pcap[20..24].try_into().expect("4 bytes"));
    relinked(pcap, link_type, |data| Some(wrap(data)))
}

/// A little-endian classic pcap of `link_type` made from another: each record's data passed through
/// `relink` (its link-layer header replaced, say), its captured and original lengths changed by
/// as much, and left out where `relink` gives `None`.
pub fn relinked(pcap: &[u8], link_type: u32, relink: impl Fn(&[u8]) -> Option<Vec<u8>>) -> Vec<u8> {
    let mut out = pcap[..20].to_vec();
    out.extend_from_slice(&link_type.to_le_bytes());
    for record in pcap_records(pcap) {
        let (header, data) = record.split_at(16);
        let Some(relinked) = relink(data) else { continue };
        let original = u32::from_le_bytes(header[12..16].try_into().expect("4 bytes")) as usize + relinked.len();
        out.extend_from_slice(&header[..8]);
        out.extend_from_slice(&u32::try_from(relinked.len()).expect("a record length").to_le_bytes());
        out.extend_from_slice(&u32::try_from(original - data.len()).expect("a record length").to_le_bytes());
        out.extend_from_slice(&relinked);
    }
    out
}

/// `bytes` compressed with gzip at `level`, as one member (as `gzip` and `tcpdump -z gzip` write).
pub fn gzip(bytes: &[u8], level: flate2::Compression) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), level);
    encoder.write_all(bytes).expect("compress");
    encoder.finish().expect("compress")
}

/// Whether this run is CI's, where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Replays a capture file through the library's streaming engine, as `synscope replay` does: the
/// attempts in the order it reports them. It replays on one reading thread and on three, and wants
/// the same attempts in the same order, word for word, and the same report.
pub fn replay(path: &Path) -> (Vec<Attempt>, replay::FileReport) {
    let (one, one_report) = replay_on(path, 1);
    let (three, three_report) = replay_on(path, 3);
    let words = |attempts: &[Attempt]| -> Vec<String> {
        attempts.iter().map(|a| serde_json::to_string(a).expect("an attempt serializes")).collect()
    };
    assert!(words(&one) == words(&three), "{}: three reading threads show other attempts than one", path.display());
    assert_eq!(format!("{one_report:?}"), format!("{three_report:?}"), "{}", path.display());
    (three, three_report)
}

/// Replays a capture file on `threads` reading threads.
pub fn replay_on(path: &Path, threads: usize) -> (Vec<Attempt>, replay::FileReport) {
    let replaying = replay::Replaying { readers: threads, ..replay::Replaying::default() };
    let (kept, replayed) = replay_piece(path, replaying, replay::Piece::default());
    let (report, _) = replayed.unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    (kept, report)
}

/// Replays one file of a capture that may go on over several (see [`replay::Piece`]): the attempts
/// it shows, and what [`replay::replay_file`] returns.
pub fn replay_piece(
    path: &Path,
    replaying: replay::Replaying,
    piece: replay::Piece,
) -> (Vec<Attempt>, anyhow::Result<(replay::FileReport, Option<replay::GoesOn>)>) {
    let mut kept = Vec::new();
    let output = replay::Output { sink: &Keep, count: &mut |attempt| kept.push(attempt), out: &mut std::io::sink() };
    let replayed = replay::replay_file(path, replaying, piece, None, &mut |_| {}, output);
    (kept, replayed)
}

/// Keeps every attempt a replay shows, and checks on the way that the hand-written JSON writer gives
/// exactly serde_json's bytes for it.
struct Keep;

impl replay::Sink for Keep {
    type Seen = Attempt;

    fn wants(&self, _: &Finished) -> bool {
        true
    }

    fn show(&self, attempt: &Attempt, _: &mut Vec<u8>) -> anyhow::Result<Attempt> {
        let mut written = Vec::new();
        synscope::render::json::attempt_into(&mut written, attempt)?;
        let mut reference = serde_json::to_vec(attempt)?;
        reference.push(b'\n');
        assert_eq!(String::from_utf8_lossy(&written), String::from_utf8_lossy(&reference));
        Ok(attempt.clone())
    }
}

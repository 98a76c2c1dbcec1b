//! The pure core stays pure: no clock reads, no threads, no I/O, no libpcap, no nix.
//!
//! The correlator must behave the same live and in replay, and be testable from bytes and literal
//! times; a pure module that reached for the clock or a socket would break both.

use std::path::{Path, PathBuf};

use crate::util;

/// The modules of the pure layer (DESIGN.md), as files or directories under `src/`.
const PURE: &[&str] = &["decode", "correlate", "flow.rs", "event.rs", "linux.rs", "timeline.rs", "capfile.rs"];

/// What a pure module may not use, and why.
const FORBIDDEN: &[(&str, &str)] = &[
    ("pcap::", "libpcap belongs in the capture shell"),
    ("nix::", "syscalls belong in the connect shell"),
    ("libc::", "syscalls belong in the shells"),
    ("std::thread", "no threads in the core"),
    ("thread::spawn", "no threads in the core"),
    ("SystemTime", "no clock reads: events carry their time"),
    ("Instant", "no clock reads: events carry their time"),
    ("std::fs", "no file I/O in the core"),
    ("File::open", "no file I/O in the core"),
    ("TcpStream", "no sockets in the core"),
    ("TcpListener", "no sockets in the core"),
    ("UdpSocket", "no sockets in the core"),
    ("std::process", "no processes in the core"),
    ("std::env", "no environment in the core"),
    ("stdout()", "no terminal output in the core"),
    ("stderr()", "no terminal output in the core"),
    ("println!", "no terminal output in the core"),
    ("eprintln!", "no terminal output in the core"),
];

fn rust_files(path: &Path, out: &mut Vec<PathBuf>) {
    if path.is_dir() {
        let mut entries: Vec<_> =
            std::fs::read_dir(path).expect("read src dir").map(|e| e.expect("dir entry").path()).collect();
        entries.sort();
        for entry in entries {
            rust_files(&entry, out);
        }
    } else if path.extension().is_some_and(|e| e == "rs") {
        out.push(path.to_path_buf());
    }
}

/// Every use of a forbidden item in `source`, outside comments: `line: item (why)`. An item is
/// one where a name starts (`pcap::Capture`), not the end of a longer one (`next_pcap::<16>`).
fn violations(source: &str) -> Vec<String> {
    let mut found = Vec::new();
    for (number, line) in source.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        for (item, why) in FORBIDDEN {
            let starts_a_name = |(at, _): (usize, &str)| {
                !code[..at].chars().next_back().is_some_and(|c| c.is_alphanumeric() || c == '_')
            };
            if code.match_indices(item).any(starts_a_name) {
                found.push(format!("{}: {item} ({why})", number + 1));
            }
        }
    }
    found
}

#[test]
fn test_pure_core_has_no_clock_threads_or_io() {
    let src = util::root().join("src");
    let mut files = Vec::new();
    for module in PURE {
        let path = src.join(module);
        assert!(path.exists(), "pure module {} is missing", path.display());
        rust_files(&path, &mut files);
    }
    assert!(files.len() >= 8, "found only {files:?}");
    let mut problems = Vec::new();
    for file in &files {
        let source = std::fs::read_to_string(file).expect("read source");
        for v in violations(&source) {
            problems.push(format!("{}:{v}", file.strip_prefix(&src).unwrap_or(file).display()));
        }
    }
    assert!(problems.is_empty(), "the pure core reaches outside itself:\n{}", problems.join("\n"));
}

#[test]
fn test_purity_check_catches_a_clock_read() {
    let offending = "fn now() -> u64 {\n    std::time::Instant::now();\n    0\n}\n// Instant in a comment is fine\n";
    assert_eq!(violations(offending), ["2: Instant (no clock reads: events carry their time)"]);
    // A name that only ends like a forbidden one is not it; the forbidden one beside it still is.
    let turbofish =
        "let r = self.next_pcap::<16>(w);\nlet c = pcap::Capture::dead(l);\nx.next_pcap::<16>(); pcap::x();\n";
    let libpcap = "pcap:: (libpcap belongs in the capture shell)";
    assert_eq!(violations(turbofish), [format!("2: {libpcap}"), format!("3: {libpcap}")]);
}

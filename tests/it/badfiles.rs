//! Bad capture files, one row each: a clear one-line error naming the file and what is wrong,
//! every attempt read before the damage still reported, and an exit code that says whether the
//! results are partial (1) or nothing could be read (2).

/// A classic pcap record: its 16-byte header and its data.
type RawRecord = (Vec<u8>, Vec<u8>);

/// The records of a little-endian classic pcap fixture, after its 24-byte file header.
fn records(fixture: &str) -> Vec<RawRecord> {
    let bytes = std::fs::read(crate::util::root().join(fixture)).expect("fixture");
    crate::util::pcap_records(&bytes).into_iter().map(|r| (r[..16].to_vec(), r[16..].to_vec())).collect()
}

/// A pcapng block of `kind` with `body`, padded, little-endian.
fn block(kind: u32, body: &[u8]) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let len = (12 + padded) as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

/// One pcapng section with two interfaces, Ethernet (0) and raw IP (1): the refused attempt's frames
/// on the first, the established attempt's, without their Ethernet header, on the second.
fn two_link_types() -> Vec<u8> {
    let mut f =
        block(0x0a0d_0d0a, &[0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    for link in [1_u16, 101] {
        let mut idb = link.to_le_bytes().to_vec();
        idb.extend_from_slice(&[0, 0, 0, 0, 4, 0]);
        f.extend(block(1, &idb));
    }
    for (interface, fixture, strip) in [(0_u32, "fixtures/refused-v4.pcap", 0), (1, "fixtures/success-v4.pcap", 14)] {
        for (header, data) in records(fixture) {
            let secs = u64::from(u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")));
            let micros = u64::from(u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")));
            let units = secs * 1_000_000 + micros;
            let data = &data[strip.min(data.len())..];
            let mut epb = interface.to_le_bytes().to_vec();
            epb.extend_from_slice(&((units >> 32) as u32).to_le_bytes());
            epb.extend_from_slice(&(units as u32).to_le_bytes());
            epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
            epb.extend_from_slice(&(data.len() as u32).to_le_bytes());
            epb.extend_from_slice(data);
            f.extend(block(6, &epb));
        }
    }
    f
}

/// The little-endian classic pcap `pcap` as a "modified" pcap: its magic 0xa1b2cd34, and 8 more
/// bytes in each record's header (interface index, protocol, packet type, padding).
fn modified(pcap: &[u8]) -> Vec<u8> {
    let mut f = vec![0x34, 0xcd, 0xb2, 0xa1];
    f.extend_from_slice(&pcap[4..24]);
    for record in crate::util::pcap_records(pcap) {
        f.extend_from_slice(&record[..16]);
        f.extend_from_slice(&[2, 0, 0, 0, 0x08, 0x00, 4, 0]);
        f.extend_from_slice(&record[16..]);
    }
    f
}

struct Case {
    name: &'static str,
    bytes: Vec<u8>,
    exit: i32,
    /// What the one line on stderr says (besides the file's name), `{path}` standing for the file's path.
    says: &'static str,
    /// The outcomes reported, in order of start.
    outcomes: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    let refused = std::fs::read(crate::util::root().join("fixtures/refused-v4.pcap")).expect("fixture");
    let whole = |mut bytes: Vec<u8>, more: &[u8]| {
        bytes.extend_from_slice(more);
        bytes
    };
    let mut huge_record = [0_u8; 16];
    huge_record[8..12].copy_from_slice(&(1_u32 << 20).to_le_bytes());
    huge_record[12..16].copy_from_slice(&(1_u32 << 20).to_le_bytes());
    let mut other_link = refused.clone();
    other_link[20..24].copy_from_slice(&147_u32.to_le_bytes());
    vec![
        Case { name: "empty", bytes: Vec::new(), exit: 2, says: "the file is empty", outcomes: &[] },
        Case {
            name: "text",
            bytes: b"GET / HTTP/1.1\r\nHost: example\r\n\r\n".to_vec(),
            exit: 2,
            says: "it is text (\"GET / HTTP/1.1\"), not a capture; tcpdump and tshark write a capture with -w FILE",
            outcomes: &[],
        },
        Case {
            name: "binary, not a capture",
            bytes: (0..=255).collect(),
            exit: 2,
            says: "not a pcap or pcapng file: it starts 00 01 02 03, where a pcap file starts a1 b2 c3 d4",
            outcomes: &[],
        },
        Case {
            // (zstd's magic and frame header compressing nothing: only the magic is looked at.)
            name: "compressed with zstd",
            bytes: vec![0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00, 0x01, 0x00, 0x00, 0x99, 0xe9, 0xd8, 0x51],
            exit: 2,
            says: "it is compressed with zstd, and synscope decompresses only gzip; \
                   pipe it in decompressed: zstd -dc {path} | synscope replay -",
            outcomes: &[],
        },
        Case {
            name: "snoop",
            bytes: whole(b"snoop\0\0\0\0\0\0\x02\0\0\0\x04".to_vec(), &refused[24..]),
            exit: 2,
            says: "it is a snoop capture (Solaris, RFC 1761), not pcap or pcapng; \
                   Wireshark's editcap converts it: editcap -F pcap {path} converted.pcap",
            outcomes: &[],
        },
        Case {
            name: "text, compressed with gzip",
            bytes: crate::util::gzip(b"23:55:01.123456 IP 192.0.2.1.43512 > ...\n", flate2::Compression::fast()),
            exit: 2,
            says:
                "what its gzip compression holds is text (\"23:55:01.123456 IP 192.0.2.1.43512 > ...\"), not a capture",
            outcomes: &[],
        },
        Case {
            name: "truncated header",
            bytes: refused[..10].to_vec(),
            exit: 2,
            says: "the pcap file header needs 24 bytes, only 10 left",
            outcomes: &[],
        },
        Case {
            // The RST is cut: the SYN before it is still an attempt (unanswered, as far as the file goes).
            name: "truncated in a packet",
            bytes: refused[..refused.len() - 20].to_vec(),
            exit: 1,
            says: "truncated at byte",
            outcomes: &["timed_out"],
        },
        Case {
            name: "record longer than any snapshot",
            bytes: whole(refused.clone(), &huge_record),
            exit: 1,
            says: "record length 1048576 is larger than the snapshot length",
            outcomes: &["refused"],
        },
        Case {
            name: "garbage after the packets",
            bytes: whole(refused.clone(), &[0xff; 40]),
            exit: 1,
            says: "damaged at byte",
            outcomes: &["refused"],
        },
        Case {
            name: "unsupported link type",
            bytes: other_link,
            exit: 1,
            says: "record(s) of link type 147, which synscope does not decode",
            outcomes: &[],
        },
        Case {
            name: "compressed with gzip",
            bytes: crate::util::gzip(&refused, flate2::Compression::default()),
            exit: 0,
            says: "",
            outcomes: &["refused"],
        },
        Case {
            // As `cat a.gz b.gz` makes, or a compressor writing in pieces: zcat reads both.
            name: "gzip in two members",
            bytes: whole(
                crate::util::gzip(&refused[..50], flate2::Compression::fast()),
                &crate::util::gzip(&refused[50..], flate2::Compression::best()),
            ),
            exit: 0,
            says: "",
            outcomes: &["refused"],
        },
        Case {
            // Stored blocks (no compression) put the capture's bytes at known places: cut 20 bytes
            // before its end, the RST is lost, as in "truncated in a packet".
            name: "gzip cut short",
            bytes: crate::util::gzip(&refused, flate2::Compression::none())[..10 + 5 + refused.len() - 20].to_vec(),
            exit: 1,
            says: "the gzip compression breaks off here",
            outcomes: &["timed_out"],
        },
        Case {
            name: "compressed with gzip twice",
            bytes: crate::util::gzip(
                &crate::util::gzip(&refused, flate2::Compression::fast()),
                flate2::Compression::fast(),
            ),
            exit: 2,
            says: "it is compressed with gzip twice; decompress it once (gunzip)",
            outcomes: &[],
        },
        Case {
            name: "gzip's magic, then no gzip",
            bytes: whole(vec![0x1f, 0x8b, 0, 0], b"GET / HTTP/1.1\r\n"),
            exit: 2,
            says: "its gzip compression breaks off before the capture begins",
            outcomes: &[],
        },
        Case {
            // libpcap's KUZNETZOV_TCPDUMP_MAGIC, as `editcap -F modpcap` writes it: read, as libpcap reads it.
            name: "modified pcap",
            bytes: modified(&refused),
            exit: 0,
            says: "",
            outcomes: &["refused"],
        },
        Case {
            name: "pcapng, two interfaces of different link types",
            bytes: two_link_types(),
            exit: 0,
            says: "",
            outcomes: &["established", "refused"],
        },
    ]
}

#[test]
fn test_bad_files_give_one_clear_line_and_keep_what_was_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, case) in cases().into_iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.pcap"));
        std::fs::write(&path, &case.bytes).expect("write case");
        let out = crate::fixtures::synscope(&["replay", "--format", "json", &path.display().to_string()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let name = case.name;
        assert_eq!(out.status.code(), Some(case.exit), "{name}: {stderr}");
        if case.says.is_empty() {
            assert!(stderr.is_empty(), "{name}: {stderr}");
        } else {
            assert_eq!(stderr.lines().count(), 1, "{name}: one line: {stderr}");
            assert!(stderr.contains(&case.says.replace("{path}", &path.display().to_string())), "{name}: {stderr}");
            assert!(stderr.contains(&path.display().to_string()), "{name} names the file: {stderr}");
        }
        let lines = crate::util::json_lines(&out);
        let outcomes: Vec<&str> =
            lines.iter().filter(|l| l["kind"] == "attempt").map(|l| l["outcome"].as_str().expect("outcome")).collect();
        assert_eq!(outcomes, case.outcomes, "{name}");
        if case.exit != 2 {
            let summary = lines.last().expect("a summary line");
            assert_eq!(summary["kind"], "summary", "{name}");
            assert_eq!(summary.get("damaged").is_some(), case.exit == 1, "{name}: {summary}");
        }
    }
}

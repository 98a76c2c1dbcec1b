//! Capture files: a parser for classic pcap and pcapng over a byte buffer.
//!
//! Pure: it reads bytes it is given and never touches the file system. It yields every record up to
//! the first damage and then reports that damage once, so a truncated or corrupt file still gives
//! everything before it. pcapng files whose interfaces have different link types are read whole
//! (libpcap refuses them after the first change of link type).

use crate::decode::LinkType;
use crate::event::Timestamp;

/// One captured frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When it was captured.
    pub ts: Timestamp,
    /// Link type of the interface it was captured on.
    pub link_type: LinkType,
    /// The captured bytes (possibly fewer than were on the wire).
    pub data: &'a [u8],
    /// The frame's length on the wire.
    pub wire_len: u32,
}

/// What is wrong with a capture file.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FileError {
    /// The file is empty.
    #[error("the file is empty")]
    Empty,
    /// The first bytes are not a pcap or pcapng magic number (they are kept, up to
    /// [`FIRST_BYTES_KEPT`], for [`Lookalike::of`]).
    #[error(
        "not a pcap or pcapng file: it starts {}, where a pcap file starts a1 b2 c3 d4 or a1 b2 3c 4d \
         (in either byte order) and a pcapng file 0a 0d 0d 0a",
        hex(.0)
    )]
    NotACapture(Vec<u8>),
    /// The file ends inside a header or record.
    #[error("truncated at byte {offset}: {what} needs {needed} bytes, only {available} left")]
    Truncated {
        /// Byte offset where the damaged part starts.
        offset: usize,
        /// What was being read.
        what: &'static str,
        /// Bytes needed.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A record claims an impossible length.
    #[error("damaged at byte {offset}: {what}")]
    Corrupt {
        /// Byte offset of the bad header.
        offset: usize,
        /// What is wrong.
        what: String,
    },
}

/// How many of a file's first bytes [`FileError::NotACapture`] keeps: a line of text's worth.
pub const FIRST_BYTES_KEPT: usize = 64;

/// The first four bytes, in hex, as `xxd` and `tcpdump -X` show them.
fn hex(first: &[u8]) -> String {
    first.iter().take(4).map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

/// What a file that is not a capture is, told from its first bytes, so that the error can say
/// how to replay it after all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Lookalike {
    /// Compressed by a tool other than gzip (which synscope decompresses itself).
    Compressed {
        /// The tool's name.
        tool: &'static str,
        /// The command that writes the file decompressed to standard output.
        to_stdout: &'static str,
    },
    /// A capture in a format other than pcap and pcapng (Wireshark's `editcap` converts them).
    OtherCapture(&'static str),
    /// Text: the listing tcpdump or tshark prints, say, rather than the capture they write with
    /// `-w`. Holds its first line, shortened.
    Text(String),
}

/// Magic numbers of compressed files: the tool, and its command that decompresses to standard output.
const COMPRESSED: [(&[u8], &str, &str); 5] = [
    // RFC 8878 3.1.1: 0xFD2FB528, little-endian.
    (&[0x28, 0xb5, 0x2f, 0xfd], "zstd", "zstd -dc"),
    (&[0xfd, b'7', b'z', b'X', b'Z', 0x00], "xz", "xz -dc"),
    (b"BZh", "bzip2", "bzip2 -dc"),
    // The LZ4 frame format's magic, 0x184D2204, little-endian.
    (&[0x04, 0x22, 0x4d, 0x18], "lz4", "lz4 -dc"),
    (b"PK\x03\x04", "zip", "unzip -p"),
];

/// Magic numbers of other capture formats that carry TCP/IP (as Wireshark's wiretap reads them).
const OTHER_CAPTURES: [(&[u8], &str); 3] = [
    // RFC 1761, "Snoop Version 2 Packet Capture File Format".
    (b"snoop\0\0\0", "a snoop capture (Solaris, RFC 1761)"),
    (b"GMBU", "a Microsoft Network Monitor 2 capture"),
    (b"RTSS", "a Microsoft Network Monitor 1 capture"),
];

/// Longest first line [`Lookalike::Text`] keeps, in characters.
const TEXT_SHOWN: usize = 48;

impl Lookalike {
    /// What the file that starts with `first` is, if its bytes say; `None` when they do not.
    pub fn of(first: &[u8]) -> Option<Lookalike> {
        if let Some((_, tool, to_stdout)) = COMPRESSED.iter().find(|(magic, ..)| first.starts_with(magic)) {
            return Some(Lookalike::Compressed { tool, to_stdout });
        }
        if let Some((_, format)) = OTHER_CAPTURES.iter().find(|(magic, _)| first.starts_with(magic)) {
            return Some(Lookalike::OtherCapture(format));
        }
        // Text: UTF-8 (perhaps cut inside a character at the end) without control characters
        // other than tab, CR and LF.
        let text = match std::str::from_utf8(first) {
            Ok(text) => text,
            Err(e) if e.error_len().is_none() => std::str::from_utf8(&first[..e.valid_up_to()]).ok()?,
            Err(_) => return None,
        };
        if text.is_empty() || text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\r' | '\n')) {
            return None;
        }
        let line = text.lines().map(str::trim).find(|line| !line.is_empty())?;
        let mut shown: String = line.chars().take(TEXT_SHOWN).collect();
        if shown.len() < line.len() {
            shown.push('…');
        }
        Some(Lookalike::Text(shown))
    }
}

/// Largest record accepted, as libpcap's `max_snaplen_for_dlt` (256 KiB for most link types).
const MAX_RECORD: u32 = 256 * 1024;

#[derive(Clone, Copy, Debug)]
enum Endian {
    Little,
    Big,
}

impl Endian {
    fn u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }
    /// (One load, then a swap if the file is big-endian: with `from_le_bytes` and `from_be_bytes`
    /// in the two arms, or with [`word`] for each order in them, the compiler assembled every field
    /// of every record header byte by byte.)
    fn u32(self, b: [u8; 4]) -> u32 {
        let little = u32::from_le_bytes(b);
        match self {
            Endian::Little => little,
            Endian::Big => little.swap_bytes(),
        }
    }
}

/// A 32-bit field in a byte order known when the code is compiled (`BIG`: big-endian), where
/// [`Endian::u32`] asks the file's at run time: pcapng's enhanced packet blocks are read by code
/// compiled once per byte order, so that no field of any block asks which order its section is in.
#[inline(always)]
fn word<const BIG: bool>(bytes: [u8; 4]) -> u32 {
    if BIG {
        u32::from_be_bytes(bytes)
    } else {
        u32::from_le_bytes(bytes)
    }
}

/// An interface of a pcapng section.
#[derive(Clone, Copy, Debug)]
struct Interface {
    link_type: LinkType,
    /// Timestamp units per second (`if_tsresol`, default 10^6).
    units_per_sec: u64,
}

#[derive(Clone, Debug)]
enum Format {
    Pcap {
        endian: Endian,
        nanos: bool,
        link_type: LinkType,
        snaplen: u32,
        /// What makes its records read other than the common way, if anything.
        unusual: Option<Unusual>,
    },
    PcapNg {
        endian: Endian,
        interfaces: Vec<Interface>,
    },
}

/// What makes a pcap file's records read other than the common way, out of line (see
/// [`CaptureStream::next_unusual_pcap`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unusual {
    /// A file older than format 2.3, whose captured and wire lengths may be swapped.
    LensMaybeSwapped,
    /// libpcap's "modified" pcap (`KUZNETZOV_TCPDUMP_MAGIC`, sf-pcap.c): microsecond records whose
    /// headers hold 8 bytes more than pcap's (`struct pcap_sf_patched_pkthdr`: interface index,
    /// protocol, packet type), which a replay does not need.
    Modified,
}

/// Bytes of a pcap record's header.
const PCAP_RECORD_HEADER: usize = 16;

/// Bytes of a modified pcap record's header (`struct pcap_sf_patched_pkthdr`, padded).
const MODIFIED_RECORD_HEADER: usize = 24;

fn take<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
    bytes.get(at..at.checked_add(N)?)?.try_into().ok()
}

/// What [`CaptureStream::next`] found at the front of the bytes it was shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A record, and how many bytes it took (its header included).
    Record(Record<'a>, usize),
    /// The bytes shown end inside a header or record: show at least this many from the same place.
    NeedMore(usize),
    /// The end of the file, after the last record.
    End,
    /// The file is damaged here; nothing more is read.
    Damage(FileError),
}

/// Reads a capture file's records from successive windows of its bytes, so that a file of any size
/// streams through a buffer of bounded size. The caller shows the bytes from the first unread one
/// on ([`CaptureStream::position`]), says whether they reach the end of the file, and drops the
/// bytes of each record once it is done with it.
#[derive(Clone, Debug)]
pub struct CaptureStream {
    format: Format,
    /// Absolute offset in the file of the first unread byte.
    position: usize,
    done: bool,
}

/// A shortfall while reading: at the end of the file it is damage, before it a request for more.
struct Short {
    what: &'static str,
    needed: usize,
}

impl CaptureStream {
    /// Bytes the file header needs before [`CaptureStream::new`] can decide (fewer at the end of the file).
    pub const HEADER_BYTES: usize = 24;

    /// Recognizes the format from the first bytes of the file (at least [`Self::HEADER_BYTES`] of them,
    /// or the whole file if it is shorter); returns the stream and how many header bytes it used.
    pub fn new(bytes: &[u8]) -> Result<(CaptureStream, usize), FileError> {
        if bytes.is_empty() {
            return Err(FileError::Empty);
        }
        let first = || bytes[..bytes.len().min(FIRST_BYTES_KEPT)].to_vec();
        let magic = take::<4>(bytes, 0).ok_or_else(|| FileError::NotACapture(first()))?;
        let pcap = |endian, nanos, modified| -> Result<(CaptureStream, usize), FileError> {
            let header = take::<24>(bytes, 0).ok_or(FileError::Truncated {
                offset: 0,
                what: "the pcap file header",
                needed: 24,
                available: bytes.len(),
            })?;
            let snaplen = Endian::u32(endian, [header[16], header[17], header[18], header[19]]);
            let version = (Endian::u16(endian, [header[4], header[5]]), Endian::u16(endian, [header[6], header[7]]));
            // The link type is the low 28 bits (the top bits hold the FCS length, RFC draft pcap 4.1).
            let link = Endian::u32(endian, [header[20], header[21], header[22], header[23]]) & 0x0fff_ffff;
            let unusual = match (modified, version < (2, 3)) {
                (true, _) => Some(Unusual::Modified),
                (false, true) => Some(Unusual::LensMaybeSwapped),
                (false, false) => None,
            };
            let format = Format::Pcap { endian, nanos, link_type: LinkType(link), snaplen, unusual };
            Ok((CaptureStream { format, position: 24, done: false }, 24))
        };
        match magic {
            [0xd4, 0xc3, 0xb2, 0xa1] => pcap(Endian::Little, false, false),
            [0xa1, 0xb2, 0xc3, 0xd4] => pcap(Endian::Big, false, false),
            [0x4d, 0x3c, 0xb2, 0xa1] => pcap(Endian::Little, true, false),
            [0xa1, 0xb2, 0x3c, 0x4d] => pcap(Endian::Big, true, false),
            [0x34, 0xcd, 0xb2, 0xa1] => pcap(Endian::Little, false, true),
            [0xa1, 0xb2, 0xcd, 0x34] => pcap(Endian::Big, false, true),
            [0x0a, 0x0d, 0x0d, 0x0a] => Ok((
                CaptureStream {
                    format: Format::PcapNg { endian: Endian::Little, interfaces: Vec::new() },
                    position: 0,
                    done: false,
                },
                0,
            )),
            _ => Err(FileError::NotACapture(first())),
        }
    }

    /// The link type of a classic pcap file, or of a pcapng file's first interface once read.
    pub fn link_type(&self) -> Option<LinkType> {
        match &self.format {
            Format::Pcap { link_type, .. } => Some(*link_type),
            Format::PcapNg { interfaces, .. } => interfaces.first().map(|i| i.link_type),
        }
    }

    /// Absolute offset in the file of the first byte not read yet.
    pub fn position(&self) -> usize {
        self.position
    }

    /// The next record at the front of `window` (the file's bytes from [`Self::position`] on);
    /// `at_eof` says whether `window` reaches the end of the file. After [`Next::Damage`] or
    /// [`Next::End`], always [`Next::End`].
    ///
    /// Inlined always: a replay's record loop is built around it, and whether the compiler inlines
    /// it otherwise depends on how many callers the binary has (one more kept it out of line, and
    /// the reading thread ran 7% more instructions).
    #[inline(always)]
    pub fn next<'a>(&mut self, window: &'a [u8], at_eof: bool) -> Next<'a> {
        if self.done {
            return Next::End;
        }
        let start = self.position;
        let step = match &self.format {
            Format::Pcap { endian, nanos, link_type, snaplen, unusual } => match unusual {
                None => self.next_pcap::<PCAP_RECORD_HEADER, false>(window, *endian, *nanos, *link_type, *snaplen),
                Some(unusual) => self.next_unusual_pcap(window, *unusual, *endian, *nanos, *link_type, *snaplen),
            },
            Format::PcapNg { endian, interfaces } => {
                let packet = match endian {
                    Endian::Little => next_enhanced_packet::<false>(interfaces, window),
                    Endian::Big => next_enhanced_packet::<true>(interfaces, window),
                };
                match packet {
                    Some(found) => {
                        #[cfg(debug_assertions)]
                        self.check_read_alike(window, found);
                        Ok(Some(found))
                    }
                    None => self.next_pcapng(window),
                }
            }
        };
        match step {
            Ok(Some((record, used))) => {
                self.position += used;
                Next::Record(record, used)
            }
            // The window ends where a record would start; only at the end of the file is that the end.
            Ok(None) if !at_eof => Next::NeedMore(1),
            Ok(None) => {
                self.done = true;
                Next::End
            }
            Err(Ok(short)) if !at_eof => Next::NeedMore(short.needed),
            Err(Ok(short)) => {
                self.done = true;
                Next::Damage(FileError::Truncated {
                    offset: self.position,
                    what: short.what,
                    needed: short.needed,
                    // pcapng blocks skipped before the shortfall were consumed.
                    available: window.len() - (self.position - start).min(window.len()),
                })
            }
            Err(Err(damage)) => {
                self.done = true;
                Next::Damage(damage)
            }
        }
    }

    /// A record from the front of `w` (its header `HEADER` bytes; its lengths perhaps swapped if
    /// `MAYBE_SWAPPED`), `None` at the end, or why not.
    #[allow(clippy::type_complexity)]
    #[inline]
    fn next_pcap<'a, const HEADER: usize, const MAYBE_SWAPPED: bool>(
        &self,
        w: &'a [u8],
        endian: Endian,
        nanos: bool,
        link_type: LinkType,
        snaplen: u32,
    ) -> Result<Option<(Record<'a>, usize)>, Result<Short, FileError>> {
        if w.is_empty() {
            return Ok(None);
        }
        // A header cut inside a modified pcap's 8 more bytes is a cut header, as one cut inside
        // pcap's 16 is. (A test the compiler leaves out of pcap's own reading.)
        if HEADER > PCAP_RECORD_HEADER && w.len() < HEADER {
            return Err(Ok(Short { what: "a record header", needed: HEADER }));
        }
        let h = take::<16>(w, 0).ok_or(Ok(Short { what: "a record header", needed: HEADER }))?;
        let secs = endian.u32([h[0], h[1], h[2], h[3]]);
        let frac = endian.u32([h[4], h[5], h[6], h[7]]);
        let mut caplen = endian.u32([h[8], h[9], h[10], h[11]]);
        let mut wire_len = endian.u32([h[12], h[13], h[14], h[15]]);
        // Writers of format 2.2 and older sometimes stored the two lengths the other way round;
        // libpcap (sf-pcap.c, `MAYBE_SWAPPED`) swaps them back when the captured length is the larger.
        if MAYBE_SWAPPED && caplen > wire_len {
            std::mem::swap(&mut caplen, &mut wire_len);
        }
        if caplen > MAX_RECORD.max(snaplen) {
            return Err(Err(self.too_long(caplen, snaplen)));
        }
        let used = HEADER + caplen as usize;
        let data = w.get(HEADER..used).ok_or(Ok(Short { what: "a record", needed: used }))?;
        let nanos_part = if nanos { frac } else { frac.saturating_mul(1000) };
        Ok(Some((Record { ts: Timestamp::from_parts(i64::from(secs), nanos_part), link_type, data, wire_len }, used)))
    }

    /// A record of an [`Unusual`] pcap file: out of line, so that the common way, inlined into a
    /// replay's record loop, is all it holds.
    #[allow(clippy::type_complexity)]
    #[inline(never)]
    fn next_unusual_pcap<'a>(
        &self,
        w: &'a [u8],
        unusual: Unusual,
        endian: Endian,
        nanos: bool,
        link_type: LinkType,
        snaplen: u32,
    ) -> Result<Option<(Record<'a>, usize)>, Result<Short, FileError>> {
        match unusual {
            Unusual::LensMaybeSwapped => {
                self.next_pcap::<PCAP_RECORD_HEADER, true>(w, endian, nanos, link_type, snaplen)
            }
            Unusual::Modified => self.next_pcap::<MODIFIED_RECORD_HEADER, false>(w, endian, nanos, link_type, snaplen),
        }
    }

    /// A record longer than any snapshot: kept out of line, off the path of every good record.
    #[cold]
    fn too_long(&self, caplen: u32, snaplen: u32) -> FileError {
        FileError::Corrupt {
            offset: self.position,
            what: format!("record length {caplen} is larger than the snapshot length {snaplen}"),
        }
    }

    /// Checks that the general way reads the block [`next_enhanced_packet`] read as it did: every
    /// test that reads pcapng checks the shortcut on every packet it reads.
    #[cfg(debug_assertions)]
    fn check_read_alike(&self, w: &[u8], found: (Record<'_>, usize)) {
        let read = self.clone().next_pcapng(w).ok().flatten();
        assert_eq!(read, Some(found), "an enhanced packet block read the short way reads as the general way");
    }

    /// The next packet record from the front of `w`, reading (and consuming) the blocks before it.
    #[allow(clippy::type_complexity)]
    fn next_pcapng<'a>(&mut self, w: &'a [u8]) -> Result<Option<(Record<'a>, usize)>, Result<Short, FileError>> {
        // Non-packet blocks are consumed here; `skipped` is how far into `w` they reach.
        let mut skipped = 0;
        loop {
            let at = self.position + skipped;
            let rest = &w[skipped..];
            if rest.is_empty() {
                self.position = at;
                return Ok(None);
            }
            let corrupt = |what: String| Err(Err(FileError::Corrupt { offset: at, what }));
            let Some(h) = take::<8>(rest, 0) else {
                self.position = at;
                return Err(Ok(Short { what: "a block header", needed: 8 }));
            };
            let Format::PcapNg { endian, .. } = &mut self.format else { return Ok(None) };
            let block_type_raw = [h[0], h[1], h[2], h[3]];
            if block_type_raw == [0x0a, 0x0d, 0x0d, 0x0a] {
                // Section header block: its byte-order magic decides the endianness of the whole section.
                match take::<4>(rest, 8) {
                    Some([0x4d, 0x3c, 0x2b, 0x1a]) => *endian = Endian::Little,
                    Some([0x1a, 0x2b, 0x3c, 0x4d]) => *endian = Endian::Big,
                    Some(other) => return corrupt(format!("bad byte-order magic {other:02x?}")),
                    None => {
                        self.position = at;
                        return Err(Ok(Short { what: "a section header block", needed: 12 }));
                    }
                }
            }
            let endian = *endian;
            let block_type = endian.u32(block_type_raw);
            let len = endian.u32([h[4], h[5], h[6], h[7]]) as usize;
            if len < 12 || len % 4 != 0 || len > MAX_RECORD as usize + 4096 {
                return corrupt(format!("block length {len} is impossible"));
            }
            let Some(block) = rest.get(..len) else {
                self.position = at;
                return Err(Ok(Short { what: "a block", needed: len }));
            };
            let body = &block[8..len - 4];
            match block_type {
                0x0a0d_0d0a => {
                    if let Format::PcapNg { interfaces, .. } = &mut self.format {
                        interfaces.clear();
                    }
                }
                1 => {
                    let Some(interface) = parse_idb(endian, body) else {
                        return corrupt("interface description block too short".into());
                    };
                    if let Format::PcapNg { interfaces, .. } = &mut self.format {
                        interfaces.push(interface);
                    }
                }
                // Enhanced packet block (6) and the obsolete packet block (2): interface id, timestamp, lengths, data.
                6 | 2 => {
                    self.position = at;
                    return self.packet_block(endian, block_type, body).map(|r| Some((r, len))).map_err(Err);
                }
                3 => {
                    // Simple packet block: interface 0, no timestamp.
                    let Format::PcapNg { interfaces, .. } = &self.format else { return Ok(None) };
                    let Some(interface) = interfaces.first().copied() else {
                        return corrupt("simple packet block before any interface".into());
                    };
                    let wire_len = take::<4>(body, 0).map_or(0, |b| endian.u32(b));
                    let data = body.get(4..4 + (wire_len as usize).min(body.len().saturating_sub(4))).unwrap_or(&[]);
                    self.position = at;
                    return Ok(Some((
                        Record { ts: Timestamp(0), link_type: interface.link_type, data, wire_len },
                        len,
                    )));
                }
                _ => {}
            }
            skipped += len;
        }
    }

    fn packet_block<'a>(&self, endian: Endian, block_type: u32, body: &'a [u8]) -> Result<Record<'a>, FileError> {
        let at = self.position;
        let short = || FileError::Corrupt { offset: at, what: "packet block too short".into() };
        let fields = take::<20>(body, 0).ok_or_else(short)?;
        let interface_id = if block_type == 2 {
            u32::from(endian.u16([fields[0], fields[1]]))
        } else {
            endian.u32([fields[0], fields[1], fields[2], fields[3]])
        };
        let ts_high = u64::from(endian.u32([fields[4], fields[5], fields[6], fields[7]]));
        let ts_low = u64::from(endian.u32([fields[8], fields[9], fields[10], fields[11]]));
        let caplen = endian.u32([fields[12], fields[13], fields[14], fields[15]]);
        let wire_len = endian.u32([fields[16], fields[17], fields[18], fields[19]]);
        let data = body.get(20..20 + caplen as usize).ok_or_else(|| FileError::Corrupt {
            offset: at,
            what: format!("captured length {caplen} overruns its block"),
        })?;
        let Format::PcapNg { interfaces, .. } = &self.format else { return Err(short()) };
        let interface = interfaces.get(interface_id as usize).copied().ok_or_else(|| FileError::Corrupt {
            offset: at,
            what: format!("packet for interface {interface_id}, which was never described"),
        })?;
        let ts = units_to_time((ts_high << 32) | ts_low, interface.units_per_sec);
        Ok(Record { ts, link_type: interface.link_type, data, wire_len })
    }
}

/// The enhanced packet block at the front of `w` when it is whole and sound, of an interface already
/// described: nearly every block of a pcapng file, read here with the few tests a classic pcap
/// record needs. `None` leaves whatever is there to [`CaptureStream::next_pcapng`], which reads any
/// other block, and says what is wrong with a damaged one. (An enhanced packet block is 28 bytes of
/// header (type 6, length, interface, timestamp high and low, captured and wire lengths), the
/// data padded to 32 bits, options, and the length again: pcapng draft, section 4.3.)
#[inline(always)]
fn next_enhanced_packet<'a, const BIG: bool>(interfaces: &[Interface], w: &'a [u8]) -> Option<(Record<'a>, usize)> {
    let h = take::<28>(w, 0)?;
    let field = |at: usize| word::<BIG>([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let (len, caplen) = (field(4) as usize, field(20) as usize);
    // The header, the data and the trailing length must fit in the block (as the general way checks).
    if field(0) != 6 || len % 4 != 0 || len > MAX_RECORD as usize + 4096 || len < 32 || caplen > len - 32 {
        return None;
    }
    let data = w.get(..len)?.get(28..28 + caplen)?;
    let interface = interfaces.get(field(8) as usize)?;
    let ts = units_to_time(u64::from(field(12)) << 32 | u64::from(field(16)), interface.units_per_sec);
    Some((Record { ts, link_type: interface.link_type, data, wire_len: field(24) }, len))
}

/// A pcapng timestamp of `units` at `units_per_sec`, as the time of a record (nanoseconds, truncated
/// and saturated as [`Timestamp::from_parts`] does). Microseconds (the default) and nanoseconds are
/// a multiplication or nothing; the general way divides twice by a number known only at run time,
/// the second time in 128 bits, and then multiplies the seconds back, at every record.
/// (Inlined where packets are read, with the general way out of line: the call at every record
/// cost the pcapng replay's reading thread 19 M of its 638 M instructions on 1 M records.)
#[inline]
fn units_to_time(units: u64, units_per_sec: u64) -> Timestamp {
    let whole = i64::try_from(units).unwrap_or(i64::MAX);
    match units_per_sec {
        1_000_000 => Timestamp(whole.saturating_mul(1_000)),
        1_000_000_000 => Timestamp(whole),
        per => units_to_time_at_any_resolution(units, per),
    }
}

/// [`units_to_time`] at a resolution other than microseconds or nanoseconds.
#[inline(never)]
fn units_to_time_at_any_resolution(units: u64, units_per_sec: u64) -> Timestamp {
    let per = units_per_sec.max(1);
    let nanos = u128::from(units % per) * 1_000_000_000 / u128::from(per);
    Timestamp::from_parts(i64::try_from(units / per).unwrap_or(i64::MAX), u32::try_from(nanos).unwrap_or(0))
}

/// Reads the records of a pcap or pcapng file held whole in `bytes` (a [`CaptureStream`] over one window).
#[derive(Clone, Debug)]
pub struct CaptureReader<'a> {
    bytes: &'a [u8],
    stream: CaptureStream,
}

impl<'a> CaptureReader<'a> {
    /// Recognizes the file format from its first bytes.
    pub fn new(bytes: &'a [u8]) -> Result<CaptureReader<'a>, FileError> {
        let (stream, _) = CaptureStream::new(bytes)?;
        Ok(CaptureReader { bytes, stream })
    }

    /// The link type of a classic pcap file, or of a pcapng file's first interface once read.
    pub fn link_type(&self) -> Option<LinkType> {
        self.stream.link_type()
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> usize {
        self.stream.position()
    }
}

/// Interface description block: link type, then options; `if_tsresol` (9) sets the time unit.
fn parse_idb(endian: Endian, body: &[u8]) -> Option<Interface> {
    let fixed = take::<8>(body, 0)?;
    let link_type = LinkType(u32::from(endian.u16([fixed[0], fixed[1]])));
    let mut units_per_sec = 1_000_000;
    let mut at = 8;
    while let Some(opt) = take::<4>(body, at) {
        let code = endian.u16([opt[0], opt[1]]);
        let len = endian.u16([opt[2], opt[3]]) as usize;
        if code == 0 {
            break;
        }
        if code == 9 && len >= 1 {
            let resol = *body.get(at + 4)?;
            // High bit set: a power of two; clear: a power of ten (pcapng spec, if_tsresol).
            let exp = u32::from(resol & 0x7f);
            units_per_sec = if resol & 0x80 != 0 { 2u64.checked_pow(exp)? } else { 10u64.checked_pow(exp)? };
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    Some(Interface { link_type, units_per_sec })
}

impl<'a> Iterator for CaptureReader<'a> {
    type Item = Result<Record<'a>, FileError>;

    /// The next record; after the first error, nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        let window = self.bytes.get(self.stream.position()..).unwrap_or(&[]);
        match self.stream.next(window, true) {
            Next::Record(record, _) => Some(Ok(record)),
            Next::Damage(damage) => Some(Err(damage)),
            // A whole file cannot need more; `next` only asks for more before the end.
            Next::End | Next::NeedMore(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A classic little-endian microsecond pcap with one 4-byte Ethernet-typed record.
    fn pcap_le() -> Vec<u8> {
        let mut f = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 1, 0, 0, 0];
        f.extend_from_slice(&[100, 0, 0, 0, 7, 0, 0, 0, 4, 0, 0, 0, 60, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
        f
    }

    #[test]
    fn test_pcap_one_record() {
        let f = pcap_le();
        let records: Vec<_> = CaptureReader::new(&f).unwrap().collect();
        assert_eq!(records.len(), 1);
        let r = records[0].clone().unwrap();
        assert_eq!(r.ts, Timestamp::from_parts(100, 7_000));
        assert_eq!(r.link_type, LinkType::ETHERNET);
        assert_eq!(r.data, &[0xde, 0xad, 0xbe, 0xef]);
        assert_eq!(r.wire_len, 60);
    }

    #[test]
    fn test_pcap_truncated_record_keeps_earlier_ones() {
        let mut f = pcap_le();
        f.extend_from_slice(&[101, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 40, 0, 0, 0, 1, 2]);
        let records: Vec<_> = CaptureReader::new(&f).unwrap().collect();
        assert_eq!(records.len(), 2);
        assert!(records[0].is_ok());
        assert!(matches!(records[1], Err(FileError::Truncated { offset: 44, .. })));
    }

    #[test]
    fn test_pcap_every_prefix_is_safe() {
        let f = pcap_le();
        for len in 0..f.len() {
            if let Ok(reader) = CaptureReader::new(&f[..len]) {
                for _ in reader {}
            }
        }
    }

    /// A "modified" pcap (libpcap's `KUZNETZOV_TCPDUMP_MAGIC`) of `records`, each (seconds,
    /// microseconds, data), in either byte order; each record's header has its 8 more bytes
    /// (interface index 2, protocol 0x0800, packet type 4: outgoing) after pcap's 16.
    fn modified_pcap(big: bool, records: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let u32_of = |v: u32| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let u16_of = |v: u16| if big { v.to_be_bytes() } else { v.to_le_bytes() };
        let mut f = u32_of(0xa1b2_cd34).to_vec();
        f.extend(u16_of(2));
        f.extend(u16_of(4));
        f.extend([0; 8]);
        f.extend(u32_of(65535));
        f.extend(u32_of(1));
        for (secs, micros, data) in records {
            for field in [*secs, *micros, data.len() as u32, data.len() as u32 + 10, 2] {
                f.extend(u32_of(field));
            }
            f.extend(u16_of(0x0800));
            f.extend([4, 0]);
            f.extend_from_slice(data);
        }
        f
    }

    #[test]
    fn test_modified_pcap_reads_as_libpcap_reads_it() {
        let records: [(u32, u32, &[u8]); 2] = [(100, 7, &[0xde, 0xad, 0xbe, 0xef]), (101, 999_999, &[1, 2, 3])];
        for big in [false, true] {
            let f = modified_pcap(big, &records);
            let reader = CaptureReader::new(&f).unwrap();
            assert_eq!(reader.link_type(), Some(LinkType::ETHERNET));
            let read: Vec<_> = reader.map(Result::unwrap).collect();
            assert_eq!(read.len(), 2, "big-endian: {big}");
            for (record, (secs, micros, data)) in read.iter().zip(records) {
                assert_eq!(record.ts, Timestamp::from_parts(i64::from(secs), micros * 1000));
                assert_eq!((record.data, record.wire_len), (data, data.len() as u32 + 10));
            }
            // Cut inside the second record's 8 more header bytes: the first is kept, and the
            // damage says a 24-byte header is cut.
            let cut = 24 + 24 + 4 + 20;
            let read: Vec<_> = CaptureReader::new(&f[..cut]).unwrap().collect();
            assert_eq!(read.len(), 2);
            assert_eq!(
                read[1],
                Err(FileError::Truncated { offset: 52, what: "a record header", needed: 24, available: 20 })
            );
            for len in 0..f.len() {
                if let Ok(reader) = CaptureReader::new(&f[..len]) {
                    for _ in reader {}
                }
            }
        }
    }

    #[test]
    fn test_pcap_2_2_swapped_lengths() {
        // Format 2.2 with captured length 60 and wire length 4 stored the other way round.
        let mut f = pcap_le();
        f[6] = 2;
        f[24 + 8..24 + 16].copy_from_slice(&[60, 0, 0, 0, 4, 0, 0, 0]);
        let r = CaptureReader::new(&f).unwrap().next().unwrap().unwrap();
        assert_eq!((r.data.len(), r.wire_len), (4, 60));
        // From 2.3 on the lengths are taken as written: 60 captured bytes are not there.
        f[6] = 4;
        assert!(CaptureReader::new(&f).unwrap().next().unwrap().is_err());
    }

    #[test]
    fn test_not_a_capture() {
        assert!(matches!(CaptureReader::new(b"hello world"), Err(FileError::NotACapture(_))));
        assert_eq!(CaptureReader::new(b"").unwrap_err(), FileError::Empty);
        // It keeps the first bytes for the error to show, a line of text's worth.
        let long = [0u8; 100];
        assert_eq!(CaptureReader::new(&long).unwrap_err(), FileError::NotACapture(vec![0; FIRST_BYTES_KEPT]));
        assert_eq!(CaptureReader::new(b"PK").unwrap_err(), FileError::NotACapture(b"PK".to_vec()));
        assert_eq!(
            CaptureReader::new(b"\x28\xb5\x2f\xfd\x00").unwrap_err().to_string(),
            "not a pcap or pcapng file: it starts 28 b5 2f fd, where a pcap file starts a1 b2 c3 d4 or a1 b2 3c 4d \
             (in either byte order) and a pcapng file 0a 0d 0d 0a"
        );
    }

    #[test]
    fn test_lookalikes() {
        let compressed = |tool, to_stdout| Some(Lookalike::Compressed { tool, to_stdout });
        // The first bytes each tool writes (zstd, xz, bzip2 and lz4 compressing "x\n"; a zip's local header).
        assert_eq!(Lookalike::of(&[0x28, 0xb5, 0x2f, 0xfd, 0x04, 0x58, 0x11]), compressed("zstd", "zstd -dc"));
        assert_eq!(Lookalike::of(&[0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x04]), compressed("xz", "xz -dc"));
        assert_eq!(Lookalike::of(b"BZh91AY&SY"), compressed("bzip2", "bzip2 -dc"));
        assert_eq!(Lookalike::of(&[0x04, 0x22, 0x4d, 0x18, 0x64, 0x40]), compressed("lz4", "lz4 -dc"));
        assert_eq!(Lookalike::of(b"PK\x03\x04\x14\x00"), compressed("zip", "unzip -p"));
        // Other capture formats.
        let other = |bytes: &[u8]| match Lookalike::of(bytes) {
            Some(Lookalike::OtherCapture(format)) => format,
            other => panic!("{bytes:02x?}: {other:?}"),
        };
        assert!(other(b"snoop\0\0\0\0\0\0\x02\0\0\0\x04").contains("snoop"));
        assert!(other(b"GMBU\x00\x02").contains("Network Monitor 2"));
        assert!(other(b"RTSS\x01\x01").contains("Network Monitor 1"));
        // Text: tcpdump's printed listing, its first line shortened; a leading blank line skipped;
        // a character cut by the end of what was read does not make it binary.
        let listing = b"23:55:01.123456 IP 192.0.2.1.43512 > 203.0.113.5.443: Flags [S], seq 1\n";
        assert_eq!(
            Lookalike::of(listing),
            Some(Lookalike::Text("23:55:01.123456 IP 192.0.2.1.43512 > 203.0.113.5…".into()))
        );
        assert_eq!(Lookalike::of(b"\n  hello\tworld\r\n"), Some(Lookalike::Text("hello\tworld".into())));
        assert_eq!(Lookalike::of("café → ".as_bytes()), Some(Lookalike::Text("café →".into())));
        assert_eq!(Lookalike::of(&"café →".as_bytes()[..7]), Some(Lookalike::Text("café".into())));
        // Neither: binary, control characters, invalid UTF-8, blank or empty.
        for bytes in [&[0u8, 1, 2, 3][..], b"hello\x1b[0m", b"\xff\xfehi", b" \n\t", b""] {
            assert_eq!(Lookalike::of(bytes), None, "{bytes:02x?}");
        }
    }

    /// SHB (28 bytes), IDB with if_tsresol=9 (linktype 1), one EPB with 4 bytes of data.
    fn pcapng_ns() -> Vec<u8> {
        let mut f = vec![0x0a, 0x0d, 0x0d, 0x0a, 28, 0, 0, 0, 0x4d, 0x3c, 0x2b, 0x1a, 1, 0, 0, 0];
        f.extend_from_slice(&[0xff; 8]);
        f.extend_from_slice(&[28, 0, 0, 0]);
        f.extend_from_slice(&[1, 0, 0, 0, 28, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 1, 0, 9, 0, 0, 0, 28, 0, 0, 0]);
        let units: u64 = 1_700_000_000_123_456_789;
        let (hi, lo) = ((units >> 32) as u32, units as u32);
        f.extend_from_slice(&[6, 0, 0, 0, 36, 0, 0, 0, 0, 0, 0, 0]);
        f.extend_from_slice(&hi.to_le_bytes());
        f.extend_from_slice(&lo.to_le_bytes());
        f.extend_from_slice(&[4, 0, 0, 0, 4, 0, 0, 0, 1, 2, 3, 4, 36, 0, 0, 0]);
        f
    }

    #[test]
    fn test_units_to_time_fast_paths_agree_with_the_general_way() {
        let general = |units: u64, per: u64| {
            let nanos = u128::from(units % per) * 1_000_000_000 / u128::from(per);
            Timestamp::from_parts(i64::try_from(units / per).unwrap_or(i64::MAX), u32::try_from(nanos).unwrap_or(0))
        };
        let mut units = 0x9e37_79b9_7f4a_7c15_u64;
        for _ in 0..10_000 {
            units = units.rotate_left(7) ^ units.wrapping_mul(0xff51_afd7_ed55_8ccd);
            // (Around 2^63 / 1000 microseconds the time saturates.)
            for value in
                [units, units >> 1, units >> 10, units >> 20, units >> 40, 0, u64::MAX, (i64::MAX / 1000) as u64 + 1]
            {
                for per in [1_000_000, 1_000_000_000] {
                    assert_eq!(units_to_time(value, per), general(value, per), "{value} at {per}/s");
                }
            }
        }
        assert_eq!(units_to_time(1_500, 1_000), Timestamp(1_500_000_000));
        assert_eq!(units_to_time(3, 2), Timestamp(1_500_000_000));
        assert_eq!(units_to_time(7, 0), Timestamp(7_000_000_000), "a resolution of 0 counts as 1");
    }

    /// A pcapng file in either byte order: a section, an interface (microseconds), a packet, a
    /// packet with an option and data that needs padding, a block of an unknown type, a packet, a
    /// packet of an interface never described, then a packet whose captured length overruns its
    /// block. (A packet right after a packet is read the short way; the first after other blocks,
    /// the general way.)
    fn pcapng_in(big: bool) -> Vec<u8> {
        let mut f = Vec::new();
        let mut put = |words: &[u32], halves: &[u16], bytes: &[u8]| {
            for w in words {
                f.extend_from_slice(&if big { w.to_be_bytes() } else { w.to_le_bytes() });
            }
            for h in halves {
                f.extend_from_slice(&if big { h.to_be_bytes() } else { h.to_le_bytes() });
            }
            f.extend_from_slice(bytes);
        };
        put(&[0x0a0d_0d0a, 28, 0x1a2b_3c4d], &[1, 0], &[0xff; 8]);
        put(&[28], &[], &[]);
        // Interface: link type 1 (Ethernet), reserved, snapshot length; no options.
        put(&[1, 20], &[1, 0], &[]);
        put(&[0, 20], &[], &[]);
        put(&[6, 36, 0, 0x0006_0a0b, 0x0c0d_0e0f, 4, 60], &[], &[1, 2, 3, 4]);
        put(&[36], &[], &[]);
        // A comment (option 1) of 4 bytes, then the end of options.
        put(&[6, 52, 0, 0x0006_0a0b, 0x0c0d_0e10, 5, 90], &[], &[5, 6, 7, 8, 9, 0, 0, 0]);
        put(&[], &[1, 4], b"note");
        put(&[0, 52], &[], &[]);
        // A block of a type synscope does not know, shaped like a packet block: skipped.
        put(&[0x0bad, 36, 0, 0, 0, 4, 4], &[], &[1, 2, 3, 4]);
        put(&[36], &[], &[]);
        put(&[6, 36, 0, 0x0006_0a0b, 0x0c0d_0e11, 4, 4], &[], &[9, 9, 9, 9]);
        put(&[36], &[], &[]);
        put(&[6, 32, 1, 0, 0, 0, 0, 32], &[], &[]);
        put(&[6, 36, 0, 0, 0, 5, 5], &[], &[1, 2, 3, 4]);
        put(&[36], &[], &[]);
        f
    }

    #[test]
    fn test_pcapng_reads_alike_in_either_byte_order() {
        let files = [pcapng_in(false), pcapng_in(true)];
        let [little, big] = files.each_ref().map(|f| CaptureReader::new(f).unwrap().collect::<Vec<_>>());
        let record = |ts, data, wire_len| Ok(Record { ts: Timestamp(ts), link_type: LinkType(1), data, wire_len });
        let units = 0x0006_0a0b_0c0d_0e0f_u64;
        assert_eq!(little[0], record(units as i64 * 1_000, &[1, 2, 3, 4], 60));
        assert_eq!(little[1], record((units + 1) as i64 * 1_000, &[5, 6, 7, 8, 9], 90));
        assert_eq!(little[2], record((units + 2) as i64 * 1_000, &[9, 9, 9, 9], 4));
        let Err(FileError::Corrupt { offset, what }) = &little[3] else { panic!("{:?}", little[3]) };
        assert_eq!((*offset, what.as_str()), (208, "packet for interface 1, which was never described"));
        assert_eq!(little.len(), 4, "nothing is read after damage");
        assert_eq!(big, little);
        // Without the block of the undescribed interface, the last block's overrun is the damage.
        let mut f = pcapng_in(false);
        f.drain(208..240);
        let records: Vec<_> = CaptureReader::new(&f).unwrap().collect();
        assert_eq!(
            records.last(),
            Some(&Err(FileError::Corrupt { offset: 208, what: "captured length 5 overruns its block".into() }))
        );
    }

    #[test]
    fn test_pcapng_damaged_anywhere_reads_alike_both_ways() {
        // Every byte of the file in both byte orders set to values that make lengths, types and
        // interfaces wrong: whole or in windows, never a panic, and in debug builds every block
        // read the short way is checked against the general way (`check_read_alike`).
        for big in [false, true] {
            let f = pcapng_in(big);
            for at in 0..f.len() {
                for value in [0x00, 0x01, 0x06, 0x1f, 0x20, 0x25, 0x80, 0xff] {
                    let mut damaged = f.clone();
                    damaged[at] = value;
                    let whole: Vec<_> = CaptureReader::new(&damaged).map(|r| r.collect()).unwrap_or_default();
                    if !whole.is_empty() {
                        let windowed = read_in_windows(&damaged, 40);
                        let whole: Vec<_> = whole.into_iter().map(|r| r.map(|r| (r.ts, r.data.to_vec()))).collect();
                        assert_eq!(windowed, whole, "byte {at} set to {value:#x} (big-endian: {big})");
                    }
                }
            }
        }
    }

    #[test]
    fn test_pcapng_block_longer_than_any_record_is_damage_even_when_all_there() {
        // After two packets, a packet block of 266,244 bytes, longer than any record libpcap
        // accepts, held whole in the bytes given: damage, as the general way says, not a packet.
        let mut f = pcapng_in(false)[..136].to_vec();
        let len = MAX_RECORD as usize + 4096 + 4;
        let mut block = vec![0; len];
        for (at, word) in [(0, 6), (4, len as u32), (20, 4), (24, 4), (len - 4, len as u32)] {
            block[at..at + 4].copy_from_slice(&word.to_le_bytes());
        }
        f.extend_from_slice(&block);
        let records: Vec<_> = CaptureReader::new(&f).unwrap().collect();
        assert_eq!(records.len(), 3);
        assert_eq!(
            records[2],
            Err(FileError::Corrupt { offset: 136, what: format!("block length {len} is impossible") })
        );
    }

    #[test]
    fn test_pcapng_nanosecond_resolution() {
        let f = pcapng_ns();
        let records: Vec<_> = CaptureReader::new(&f).unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ts, Timestamp(1_700_000_000_123_456_789));
        assert_eq!(records[0].data, &[1, 2, 3, 4]);
        for len in 0..f.len() {
            if let Ok(reader) = CaptureReader::new(&f[..len]) {
                for _ in reader {}
            }
        }
    }

    /// Reads `f` through windows of `size` bytes (growing one when a record needs more), as a
    /// streaming reader does, and returns what it read.
    fn read_in_windows(f: &[u8], size: usize) -> Vec<Result<(Timestamp, Vec<u8>), FileError>> {
        let Ok((mut stream, _)) = CaptureStream::new(&f[..f.len().min(size.max(24))]) else { return Vec::new() };
        let mut out = Vec::new();
        let mut want = size;
        loop {
            let at = stream.position();
            let end = (at + want).min(f.len());
            match stream.next(&f[at..end], end == f.len()) {
                Next::Record(r, _) => {
                    out.push(Ok((r.ts, r.data.to_vec())));
                    want = size;
                }
                Next::NeedMore(n) => want = want.max(n).max(end - at + 1),
                Next::End => return out,
                Next::Damage(e) => {
                    out.push(Err(e));
                    return out;
                }
            }
        }
    }

    #[test]
    fn test_streaming_in_windows_reads_what_a_whole_read_does() {
        let mut damaged = pcap_le();
        damaged.extend_from_slice(&[101, 0, 0, 0, 0, 0, 0, 0, 40, 0, 0, 0, 40, 0, 0, 0, 1, 2]);
        let mut two = pcap_le();
        two.extend_from_slice(&[102, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 2, 0, 0, 0, 7, 8]);
        let mut ng_damaged = pcapng_ns();
        ng_damaged.truncate(ng_damaged.len() - 3);
        for f in [pcap_le(), damaged, two, pcapng_ns(), ng_damaged] {
            let whole: Vec<_> = CaptureReader::new(&f).unwrap().map(|r| r.map(|r| (r.ts, r.data.to_vec()))).collect();
            for size in 1..=f.len() + 1 {
                assert_eq!(read_in_windows(&f, size), whole, "window of {size} bytes");
            }
        }
    }
}

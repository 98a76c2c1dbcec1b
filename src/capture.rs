//! Capture input: reads a capture file, or captures live with libpcap, into time-stamped packet
//! events for the correlator.

use std::collections::VecDeque;
use std::io::Read;
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use anyhow::Context as _;

use crate::capfile::{CaptureStream, FileError, Lookalike, Next, Record};
use crate::decode::{self, LinkType};
use crate::event::{Event, EventKind, Timestamp};

/// Everything read from one capture file.
#[derive(Debug, Default)]
pub struct FileCapture {
    /// The decoded packets that matter to connection attempts, in file order.
    pub events: Vec<Event>,
    /// Records read.
    pub packets: u64,
    /// Records that could not be decoded.
    pub undecodable: u64,
    /// Time of the first record read.
    pub first_ts: Option<Timestamp>,
    /// Time of the last record read (where the evidence ends).
    pub last_ts: Option<Timestamp>,
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<FileError>,
}

/// A tcpdump-syntax filter (`--bpf`), compiled by libpcap for each link type a file holds and
/// applied to each record before it is decoded.
pub struct BpfFilter {
    expression: String,
    programs: std::collections::HashMap<u32, pcap::BpfProgram>,
}

impl BpfFilter {
    /// Compiles `expression` (for Ethernet first, so a typo is reported before any file is read).
    pub fn new(expression: &str) -> anyhow::Result<BpfFilter> {
        let mut filter = BpfFilter { expression: expression.to_string(), programs: std::collections::HashMap::new() };
        filter.program(decode::LinkType::ETHERNET)?;
        Ok(filter)
    }

    fn program(&mut self, link: decode::LinkType) -> anyhow::Result<&pcap::BpfProgram> {
        if !self.programs.contains_key(&link.0) {
            let dead = pcap::Capture::dead(pcap::Linktype(i32::try_from(link.0).unwrap_or(i32::MAX)))?;
            let program = dead
                .compile(&self.expression, true)
                .with_context(|| format!("bad --bpf expression `{}` for link type {}", self.expression, link.0))?;
            self.programs.insert(link.0, program);
        }
        self.programs.get(&link.0).context("compiled above")
    }

    /// The tcpdump-syntax expression it was compiled from.
    pub fn expression(&self) -> &str {
        &self.expression
    }

    /// Whether a record passes the filter.
    pub fn matches(&mut self, link: decode::LinkType, data: &[u8]) -> anyhow::Result<bool> {
        Ok(self.program(link)?.filter(data))
    }
}

/// How much of a capture file is read at a time: a reader's memory, whatever the file's size. (A
/// replay may run several readers; windows of 64 KiB to 1 MiB were measured equally fast.)
const READ_SIZE: usize = 1 << 18;

/// How a streamed file ended.
#[derive(Debug, Default)]
pub struct StreamEnd {
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<FileError>,
    /// Bytes read.
    pub bytes: u64,
}

/// What a capture is read from: a file as it is, a pipe (standard input, or one given by its
/// name) with the first bytes read to look at it put back in front, or a gzip-compressed file or
/// pipe (`tcpdump -z gzip` compresses each piece it rotates out), decompressed as it is read.
enum Input {
    Plain(std::fs::File),
    Piped(std::io::Chain<std::io::Cursor<Vec<u8>>, std::fs::File>),
    Gzip(Inflating),
}

/// What is at a path, once looked at (see [`look_at`]).
enum Looked {
    /// A capture as it is.
    Plain(Input),
    /// A compressed capture: what to decompress, the compressed file's size if it is a file, and
    /// whether it is a pipe (whose writer may pause, as a live capture does).
    Compressed { source: Box<dyn Read + Send>, size: Option<u64>, piped: bool },
}

/// Opens the capture at `path` and tells whether it is compressed. A file is looked at in place
/// (`read_at`: standard input redirected from a file keeps its offset); a pipe cannot be looked at
/// and read again, so its first two bytes are read and put back in front of the rest.
fn look_at(path: &Path) -> std::io::Result<Looked> {
    let file = open_source(path)?;
    let meta = file.metadata()?;
    if meta.is_file() {
        return Ok(match is_gzip(&file)? {
            true => Looked::Compressed { source: Box::new(file), size: Some(meta.len()), piped: false },
            false => Looked::Plain(Input::Plain(file)),
        });
    }
    let mut first = Vec::with_capacity(2);
    (&file).take(2).read_to_end(&mut first)?;
    let compressed = first == GZIP_MAGIC;
    let piped = std::io::Cursor::new(first).chain(file);
    Ok(match compressed {
        true => Looked::Compressed { source: Box::new(piped), size: None, piped: true },
        false => Looked::Plain(Input::Piped(piped)),
    })
}

/// The first two bytes of a gzip file (RFC 1952 2.3.1: ID1, ID2).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Whether the regular file `file` starts with gzip's magic, looked at in place (`pread`): standard
/// input redirected from a file keeps its offset.
fn is_gzip(file: &std::fs::File) -> std::io::Result<bool> {
    let mut magic = [0; 2];
    Ok(std::os::unix::fs::FileExt::read_at(file, &mut magic, 0)? == 2 && magic == GZIP_MAGIC)
}

impl Input {
    /// Opens the capture at `path` (see [`open_source`]), decompressing one that starts with
    /// gzip's magic (see [`look_at`]).
    fn open(path: &Path) -> std::io::Result<Input> {
        match look_at(path)? {
            Looked::Plain(input) => Ok(input),
            Looked::Compressed { source, size, piped } => {
                let mut readers = Inflating::start(source, size, 1, piped)?;
                readers.pop().map(Input::Gzip).ok_or_else(|| std::io::Error::other("no reader"))
            }
        }
    }

    /// Why decompression stopped short, if it did: the compressed file is truncated or corrupt.
    fn broken(&self) -> Option<&std::io::Error> {
        match self {
            Input::Plain(_) | Input::Piped(_) => None,
            Input::Gzip(inflating) => inflating.broken.as_deref(),
        }
    }

    /// Whether a read would find bytes (or the end) within `wait`: asked only after a short read,
    /// so a file, which is always readable, is never asked.
    fn readable_within(&mut self, wait: nix::poll::PollTimeout) -> bool {
        let file = match self {
            Input::Plain(file) => file,
            Input::Piped(piped) => {
                let (first, file) = piped.get_ref();
                if first.position() < first.get_ref().len() as u64 {
                    return true;
                }
                file
            }
            // (Not `PollTimeout::duration`: nix 0.30's panics on `NONE`.)
            Input::Gzip(inflating) => {
                let wait = u32::try_from(wait).ok().map(|ms| std::time::Duration::from_millis(ms.into()));
                return inflating.readable_within(wait);
            }
        };
        let mut fds = [nix::poll::PollFd::new(file.as_fd(), nix::poll::PollFlags::POLLIN)];
        match nix::poll::poll(&mut fds, wait) {
            Ok(ready) => ready > 0,
            // A signal (Ctrl-C): not readable yet, so that the consumer hears of the wait and
            // may stop, where a read would be restarted and wait on.
            Err(nix::errno::Errno::EINTR) => false,
            // Any other error says nothing about waiting: read, and let the read report it.
            Err(_) => true,
        }
    }
}

impl Read for Input {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Input::Plain(file) => file.read(buf),
            Input::Piped(piped) => piped.read(buf),
            Input::Gzip(inflating) => inflating.read(buf),
        }
    }
}

/// Bytes of capture a compressed file is decompressed into at a time.
const INFLATED_CHUNK: usize = 1 << 18;
/// Chunks decompressed ahead of each reader: with a reader's channel full, the decompressing
/// thread waits.
const INFLATED_AHEAD: usize = 2;

/// A decompressed chunk, shared by the readers of a file decompressed once for several.
type Chunk = Arc<Vec<u8>>;
/// What the decompressing thread sends: the chunks in order, then, if decompression broke, why.
type Inflated = Result<Chunk, Arc<std::io::Error>>;

/// One reader's end of a gzip file decompressed on a thread of its own, a few chunks ahead of its
/// readers: inflating costs more than all the rest a replay does on its reading thread, and the
/// other core has room (the benchmark's capture compressed: 0.84 of the time inflating on the
/// reading thread took). Several readers of the same file (`replay --threads`) share one
/// decompression, each reading every chunk.
struct Inflating {
    /// The decompressed chunks, in order. The channel closes after the last; an error, if
    /// decompression broke, comes last.
    chunks: mpsc::Receiver<Inflated>,
    /// The chunk being read, and how far.
    chunk: Chunk,
    at: usize,
    /// No chunk will come: the file is read to its end, or decompression broke.
    ended: bool,
    /// Why decompression stopped: the compressed file is truncated or corrupt. Reading then ends
    /// there, as at the end of a file, and this is the capture's damage.
    broken: Option<Arc<std::io::Error>>,
    /// Other readers share the decompression, or it reads a pipe: a read gives what has come
    /// rather than wait for the rest, so that its reader says it waits (see [`Inflating::read`]).
    never_waits: bool,
    /// How far decompression has come through the compressed file.
    progress: CompressedProgress,
}

/// How far the decompression of a compressed capture has come through the file: what a progress
/// bar can measure against a known size, where the capture's own size is known only at its end.
#[derive(Clone, Debug)]
pub struct CompressedProgress {
    /// Bytes of the compressed file read by the decompressing thread (some 32 KiB ahead of what it
    /// has decompressed).
    read: Arc<std::sync::atomic::AtomicU64>,
    /// The compressed file's size.
    size: u64,
}

impl CompressedProgress {
    /// Bytes of the compressed file read so far, and its size.
    pub fn now(&self) -> (u64, u64) {
        (self.read.load(Ordering::Relaxed).min(self.size), self.size)
    }
}

/// A reader that counts the bytes it reads (of a compressed file, see [`CompressedProgress`]).
struct Counted<R> {
    inner: R,
    read: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

impl Inflating {
    /// Starts decompressing `source` (all its members, as `zcat` does: RFC 1952 allows several),
    /// a file of `size` bytes or a pipe, for `readers` readers, and returns their ends. A pipe's
    /// decompressed bytes go to the readers as they come, not once they fill a chunk: a live
    /// capture piped in through gzip shows each attempt as it finishes.
    fn start(
        source: Box<dyn Read + Send>,
        size: Option<u64>,
        readers: usize,
        piped: bool,
    ) -> std::io::Result<Vec<Inflating>> {
        let progress = CompressedProgress { read: Arc::default(), size: size.unwrap_or(0) };
        let (mut to_readers, mut ends) = (Vec::new(), Vec::new());
        for _ in 0..readers {
            let (to_reader, chunks) = mpsc::sync_channel(INFLATED_AHEAD);
            to_readers.push(to_reader);
            ends.push(Inflating {
                chunks,
                chunk: Chunk::default(),
                at: 0,
                ended: false,
                broken: None,
                never_waits: readers > 1 || piped,
                progress: progress.clone(),
            });
        }
        let source = Counted { inner: source, read: progress.read };
        std::thread::Builder::new().name("synscope-inflate".into()).spawn(move || {
            let mut decoder = flate2::read::MultiGzDecoder::new(source);
            // The chunks sent, in order: each is filled again once every reader is done with it
            // (this thread then holds the only reference). At most a few chunks per reader.
            let mut sent: VecDeque<Chunk> = VecDeque::new();
            loop {
                let read = sent.iter().position(|chunk| Arc::strong_count(chunk) == 1);
                let mut chunk = read.and_then(|at| sent.remove(at)).and_then(Arc::into_inner).unwrap_or_default();
                chunk.resize(INFLATED_CHUNK, 0);
                let (mut filled, mut at_end, mut broken) = (0, false, None);
                while filled < INFLATED_CHUNK && !at_end && broken.is_none() {
                    match decoder.read(&mut chunk[filled..]) {
                        Ok(0) => at_end = true,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(e) => broken = Some(Arc::new(e)),
                    }
                    // A pipe's next read may wait for its writer: what came goes out first.
                    if piped && filled > 0 {
                        break;
                    }
                }
                chunk.truncate(filled);
                let chunk = Arc::new(chunk);
                // A send fails once its reader is gone (done, or stopped); this thread ends with
                // the last of them.
                if filled > 0 {
                    to_readers.retain(|to_reader| to_reader.send(Ok(Arc::clone(&chunk))).is_ok());
                }
                if let Some(err) = broken {
                    to_readers.iter().for_each(|to_reader| _ = to_reader.send(Err(Arc::clone(&err))));
                    return;
                }
                if at_end || to_readers.is_empty() {
                    return;
                }
                sent.push_back(chunk);
            }
        })?;
        Ok(ends)
    }

    /// Takes the next chunk, waiting at most `wait` for it (`None`: as long as it takes); `false`
    /// when none came, in time, or ever again ([`Inflating::ended`]; [`Inflating::broken`] then
    /// says whether decompression broke).
    fn next_chunk(&mut self, wait: Option<std::time::Duration>) -> bool {
        // The chunk read is let go before the wait, for the decompressing thread to fill again
        // meanwhile once every reader has.
        self.chunk = Chunk::default();
        self.at = 0;
        let next = match wait {
            None => self.chunks.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(wait) => self.chunks.recv_timeout(wait),
        };
        match next {
            Ok(Ok(chunk)) => {
                self.chunk = chunk;
                return true;
            }
            Ok(Err(err)) => (self.broken, self.ended) = (Some(err), true),
            Err(mpsc::RecvTimeoutError::Disconnected) => self.ended = true,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
        false
    }

    /// Whether a read would find bytes, or the end, within `wait` (`None`: as long as it takes).
    fn readable_within(&mut self, wait: Option<std::time::Duration>) -> bool {
        if self.at < self.chunk.len() || self.ended {
            return true;
        }
        // A chunk came, or word that none will.
        self.next_chunk(wait) || self.ended
    }
}

impl Read for Inflating {
    /// Fills `buf` as a file's read does, short only at the end, so that a short read still means
    /// a pipe emptied (see [`Window::refill`]); ends early where decompression broke.
    ///
    /// Shared with other readers, or of a pipe, a read never waits: it gives what has come, or
    /// fails with [`std::io::ErrorKind::WouldBlock`] when nothing has, as a pipe that was emptied
    /// would, and its reader then says that it waits (see [`Streamed::Waiting`]) before it waits.
    /// A pipe's reader then writes out what it finished, as for a capture piped in as it is. And
    /// that is what keeps a replay with several readers going: the decompressing thread waits for
    /// the reader furthest behind to take a chunk before it gives the others the next, and the
    /// merge writes only as far as every reader has said it finished. A reader that waited for
    /// its input without saying so could hold the merge, so the readers ahead, and so the
    /// decompression that it waits for.
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let wait = self.never_waits.then_some(std::time::Duration::ZERO);
        let mut filled = 0;
        while filled < buf.len() {
            let ahead = &self.chunk[self.at..];
            if ahead.is_empty() {
                if self.ended || !self.next_chunk(wait) {
                    break;
                }
                continue;
            }
            let n = ahead.len().min(buf.len() - filled);
            buf[filled..filled + n].copy_from_slice(&ahead[..n]);
            self.at += n;
            filled += n;
        }
        if filled == 0 && !buf.is_empty() && !self.ended {
            return Err(std::io::ErrorKind::WouldBlock.into());
        }
        Ok(filled)
    }
}

/// One reader's share of a compressed capture's decompression (see [`inflate_for`]): all of it, or,
/// when several readers read the capture (`replay --threads`), the same chunks as every other.
pub struct Shared(Inflating);

impl Shared {
    /// How far the decompression has come through the compressed file.
    pub fn progress(&self) -> CompressedProgress {
        self.0.progress.clone()
    }
}

/// Starts decompressing the capture at `path` once for `readers` readers (one, or more) and
/// returns each one's share, when it is a compressed file (standard input redirected from one
/// too, so that its progress is measured through the file); `None` when it is not (each reader
/// then reads the file itself: the page cache holds it once), and for a pipe (a stream, see
/// [`is_stream`], that is not a file), which its one reader opens and looks at itself.
pub fn inflate_for(path: &Path, readers: usize) -> std::io::Result<Option<Vec<Shared>>> {
    if is_pipe(path) {
        return Ok(None);
    }
    match look_at(path)? {
        Looked::Plain(_) => Ok(None),
        Looked::Compressed { source, size, piped } => {
            Ok(Some(Inflating::start(source, size, readers, piped)?.into_iter().map(Shared).collect()))
        }
    }
}

/// Whether the capture at `path` can be read only once, as it comes: standard input, or a pipe
/// given by its name (`synscope replay <(zcat day.pcap.gz)`, a FIFO). Such a capture has one
/// reader, is not looked at ahead of its turn, and continues no other.
pub fn is_stream(path: &Path) -> bool {
    is_stdin(path) || std::fs::metadata(path).is_ok_and(|meta| !meta.is_file())
}

/// Whether the capture at `path` is a pipe: a stream (see [`is_stream`]) other than standard
/// input redirected from a file (`synscope replay - < day.pcap.gz`), which is read once too, but
/// can be looked at in place (`pread`) and has a size.
fn is_pipe(path: &Path) -> bool {
    is_stream(path)
        && !(is_stdin(path) && open_source(path).and_then(|file| file.metadata()).is_ok_and(|meta| meta.is_file()))
}

/// A window on a file: the bytes from file offset `base` to `base + end` sit in `buf[..end]`.
struct Window {
    /// A file, a compressed file, or standard input, which may be a pipe.
    input: Input,
    buf: Vec<u8>,
    base: usize,
    end: usize,
    eof: bool,
    /// The last read came back with less than it asked for: a pipe was emptied (a file never
    /// does that but at its end).
    drained: bool,
}

impl Window {
    /// The bytes in the window from file offset `from` on.
    fn from(&self, from: usize) -> &[u8] {
        self.buf.get(from.saturating_sub(self.base)..self.end).unwrap_or(&[])
    }

    /// Drops the bytes before file offset `from`, then reads until at least `need` bytes from
    /// there are in the window, the input ends, or a read comes back short (a pipe emptied; the
    /// caller asks again once it has said so, see [`Streamed::Waiting`]). Each read asks for all
    /// the room the window has, which a file fills at once, and takes what came: a pipe's records
    /// are read as they arrive, not once 256 KiB of them have.
    fn refill(&mut self, from: usize, need: usize) -> std::io::Result<()> {
        let keep = from.saturating_sub(self.base).min(self.end);
        self.buf.copy_within(keep..self.end, 0);
        self.end -= keep;
        self.base += keep;
        if self.buf.len() < need {
            self.buf.resize(need, 0);
        }
        while self.end < need && !self.eof {
            let room = self.buf.len() - self.end;
            match self.input.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => {
                    self.end += n;
                    self.drained = n < room;
                    if self.drained {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                // Nothing has come yet (a decompression shared or of a pipe, see [`Inflating::read`]).
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    self.drained = true;
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// How often [`Streamed::Waiting`] is said again while a pipe brings nothing.
pub const WAITING_AGAIN_MS: u16 = 100;

/// The path that names standard input where a capture file is expected (`synscope replay -`), as
/// tcpdump's `-r -` does: a capture piped from `zcat`, `ssh host tcpdump -w -` and the like.
pub const STDIN: &str = "-";

/// Whether `path` names standard input ([`STDIN`]).
pub fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == STDIN
}

/// How messages name the capture at `path`: its path, or "standard input".
pub fn source_name(path: &Path) -> String {
    if is_stdin(path) {
        "standard input".into()
    } else {
        path.display().to_string()
    }
}

/// Opens the capture at `path`, or standard input for [`STDIN`]: as a file of its own (a duplicate
/// of descriptor 0), read in large windows rather than through the standard library's 8 KiB buffer.
pub fn open_source(path: &Path) -> std::io::Result<std::fs::File> {
    if is_stdin(path) {
        std::io::stdin().as_fd().try_clone_to_owned().map(std::fs::File::from)
    } else {
        std::fs::File::open(path)
    }
}

/// How much there is to read at `path`, as far as it is known before reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceSize {
    /// The capture's size: a file's, or standard input's when it is a file (`< capture.pcap`).
    Capture(u64),
    /// A compressed file's size (or standard input's, redirected from one): its capture is larger
    /// by a ratio only reading finds, and a replay measures its way through the file instead (see
    /// [`CompressedProgress`]).
    Compressed(u64),
    /// A pipe, or a file that cannot be read.
    Unknown,
}

/// How much there is to read at `path` (see [`SourceSize`]).
pub fn source_size(path: &Path) -> SourceSize {
    // (A named pipe is not opened here: a second reader that comes and goes could break its
    // writer's pipe. Standard input's descriptor is only duplicated.)
    if is_stream(path) && !is_stdin(path) {
        return SourceSize::Unknown;
    }
    let Ok(file) = open_source(path) else { return SourceSize::Unknown };
    match (file.metadata(), is_gzip(&file).unwrap_or(false)) {
        (Ok(meta), false) if meta.is_file() => SourceSize::Capture(meta.len()),
        // (Standard input redirected from a compressed file is decompressed as a named one is,
        // see [`inflate_for`], which measures how far through the file it has come.)
        (Ok(meta), true) if meta.is_file() => SourceSize::Compressed(meta.len()),
        _ => SourceSize::Unknown,
    }
}

/// Why the input at `path`, which starts with `first` (after gzip's decompression if
/// `decompressed`), cannot be replayed, and how to replay it after all when its first bytes say
/// what it is.
fn not_a_capture(path: &Path, first: &[u8], decompressed: bool) -> String {
    let name = source_name(path);
    // (Standard input has no name for a command line to use.)
    let file = if is_stdin(path) { "FILE".to_string() } else { shell_word(&path.display().to_string()) };
    let it_is = if decompressed { "what its gzip compression holds is" } else { "it is" };
    let not = FileError::NotACapture(first.to_vec());
    match Lookalike::of(first) {
        // (What gzip's magic opened is decompressed before it gets here.)
        _ if first.starts_with(&GZIP_MAGIC) => format!(
            "cannot replay {name}: it is compressed with gzip twice; decompress it once (gunzip) and replay what that gives"
        ),
        Some(Lookalike::Compressed { tool, to_stdout }) if !decompressed => format!(
            "cannot replay {name}: it is compressed with {tool}, and synscope decompresses only gzip; \
             pipe it in decompressed: {to_stdout} {file} | synscope replay -"
        ),
        Some(Lookalike::Compressed { tool, .. }) => {
            format!("cannot replay {name}: {it_is} compressed with {tool}; decompress both and replay what that gives")
        }
        Some(Lookalike::OtherCapture(format)) => format!(
            "cannot replay {name}: {it_is} {format}, not pcap or pcapng; Wireshark's editcap converts it: \
             editcap -F pcap {file} converted.pcap"
        ),
        Some(Lookalike::Text(line)) => format!(
            "cannot replay {name}: {it_is} text (\"{line}\"), not a capture; tcpdump and tshark write a capture \
             with -w FILE, and what they print is not one"
        ),
        None if decompressed => format!("cannot replay {name}: what its gzip compression holds is {not}"),
        None => format!("cannot replay {name}: {not}"),
    }
}

/// `word` as one word of a POSIX shell's command line: as it is when nothing in it is special to
/// the shell, else in single quotes (a single quote in it closed, escaped and opened again).
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "%+,-./:=@_".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

/// What [`stream_source`] hands its consumer.
#[derive(Debug)]
pub enum Streamed<'a> {
    /// A record, and how far into the input it ends.
    Record(Record<'a>, u64),
    /// Everything written so far is read, and the input has not ended: the next read waits for
    /// its writer (a pipe from a live capture; never a file). Whatever is finished should go out
    /// now. Said again every [`WAITING_AGAIN_MS`] while nothing comes, so that the consumer can
    /// stop (on Ctrl-C, say) rather than wait in a read; it holds how far the input is read.
    Waiting(u64),
}

/// Streams the records of the capture at `path` (or standard input, see [`STDIN`]) to `on_record`
/// (the record, and how far into the file it ends) through a window of 256 KiB. Fails when the
/// file cannot be read or is not a capture at all, or when `on_record` fails; damage part-way
/// through ends the stream and is returned in [`StreamEnd::damage`], after every record before it.
pub fn stream_file(
    path: &Path,
    mut on_record: impl FnMut(Record<'_>, u64) -> anyhow::Result<()>,
) -> anyhow::Result<StreamEnd> {
    stream::<false>(path, None, |streamed| match streamed {
        Streamed::Record(record, end) => on_record(record, end),
        Streamed::Waiting(_) => Ok(()),
    })
}

/// [`stream_file`], also saying when the input is a pipe whose writer has nothing more for now
/// ([`Streamed::Waiting`]), before the read that waits for it. With `shared`, the capture is read
/// from this reader's share of its decompression (see [`inflate_for`]); shared with other readers,
/// it says that it waits, as a pipe does, whenever the next chunk has not come.
pub fn stream_source(
    path: &Path,
    shared: Option<Shared>,
    on_streamed: impl FnMut(Streamed<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<StreamEnd> {
    stream::<true>(path, shared, on_streamed)
}

/// [`stream_source`] when `TELL_WAITING`, else [`stream_file`]: a file's readers (the reading
/// floor, [`read_file`]) are compiled without the test for a waiting pipe.
///
/// `on_streamed` is called from one place only, so that the compiler inlines it, a replay's record
/// loop, whole: called from a second place as well (a cold call for [`Streamed::Waiting`]), it was
/// kept out of line, and the replay's reading thread ran 10% more instructions.
fn stream<const TELL_WAITING: bool>(
    path: &Path,
    shared: Option<Shared>,
    mut on_streamed: impl FnMut(Streamed<'_>) -> anyhow::Result<()>,
) -> anyhow::Result<StreamEnd> {
    let cannot_read = || format!("cannot read {}", source_name(path));
    let input = match shared {
        Some(Shared(inflating)) => Input::Gzip(inflating),
        None => Input::open(path).with_context(cannot_read)?,
    };
    let mut window = Window { input, buf: vec![0; READ_SIZE], base: 0, end: 0, eof: false, drained: false };
    // The first bytes, enough for a pcap file header (a pcapng section header block longer than
    // what has come is asked for again below, like any block).
    while window.end < 24 && !window.eof {
        // (After a short read, or one that would have waited: wait here rather than read again at once.)
        if window.drained {
            window.input.readable_within(nix::poll::PollTimeout::NONE);
        }
        window.refill(0, 24).with_context(cannot_read)?;
    }
    if let (Some(err), true) = (window.input.broken(), window.end < 24) {
        anyhow::bail!(
            "cannot replay {}: its gzip compression breaks off before the capture begins ({err})",
            source_name(path)
        );
    }
    let decompressed = matches!(window.input, Input::Gzip(_));
    let (mut stream, _) = CaptureStream::new(window.from(0)).map_err(|err| match err {
        FileError::NotACapture(first) => anyhow::anyhow!(not_a_capture(path, &first, decompressed)),
        err => anyhow::Error::new(err).context(format!("cannot replay {}", source_name(path))),
    })?;
    // Whether the consumer heard that the input waits (then it hears again only after a while).
    let mut told_waiting = false;
    let damage = loop {
        let at = stream.position();
        let streamed = match stream.next(window.from(at), window.eof) {
            Next::Record(record, _) => Streamed::Record(record, stream.position() as u64),
            Next::NeedMore(needed) => {
                let waits = TELL_WAITING
                    && window.drained
                    && !window.input.readable_within(match told_waiting {
                        false => nix::poll::PollTimeout::ZERO,
                        true => nix::poll::PollTimeout::from(WAITING_AGAIN_MS),
                    });
                told_waiting = waits;
                if !waits {
                    window.refill(at, needed).with_context(cannot_read)?;
                    continue;
                }
                Streamed::Waiting(at as u64)
            }
            Next::End => break None,
            Next::Damage(damage) => break Some(damage),
        };
        on_streamed(streamed)?;
    };
    let bytes = window.base + window.end;
    // A compressed file that breaks off ends its capture there, whole record or not: that is the damage.
    let damage = match window.input.broken() {
        Some(err) => Some(FileError::Corrupt {
            offset: bytes,
            what: format!("the gzip compression breaks off here ({err}); the capture is read up to this byte"),
        }),
        None => damage,
    };
    Ok(StreamEnd { damage, bytes: bytes as u64 })
}

/// The time of the first record of the capture file at `path`, read from its first window only;
/// `None` when it holds no record. Fails as [`stream_file`] does.
pub fn first_record_time(path: &Path) -> anyhow::Result<Option<Timestamp>> {
    /// Stops the stream at its first record.
    #[derive(Debug, thiserror::Error)]
    #[error("first record found")]
    struct Found(Timestamp);
    match stream_file(path, |record, _| Err(Found(record.ts).into())) {
        Ok(_) => Ok(None),
        Err(err) => match err.downcast::<Found>() {
            Ok(Found(ts)) => Ok(Some(ts)),
            Err(err) => Err(err),
        },
    }
}

/// Reads and decodes `path` whole, keeping every event (for small files: tests, lab captures).
/// Fails only when the file cannot be read or is not a capture at all; damage part-way through is
/// reported in [`FileCapture::damage`] with everything before it kept.
pub fn read_file(path: &Path) -> anyhow::Result<FileCapture> {
    let mut capture = FileCapture::default();
    let end = stream_file(path, |record, _| {
        capture.packets += 1;
        capture.first_ts = Some(capture.first_ts.map_or(record.ts, |t| t.min(record.ts)));
        capture.last_ts = Some(capture.last_ts.map_or(record.ts, |t| t.max(record.ts)));
        match decode::decode(record.link_type, record.data) {
            Ok(packet) if matches!(packet.body, decode::PacketBody::Other(_)) => {}
            Ok(packet) => {
                capture.events.push(Event { ts: record.ts, kind: EventKind::Packet { frame: capture.packets, packet } })
            }
            Err(_) => capture.undecodable += 1,
        }
        Ok(())
    })?;
    capture.damage = end.damage;
    Ok(capture)
}

/// How long a live capture's read blocks before it looks at the stop flag.
const READ_TIMEOUT_MS: i32 = 20;

/// What a live capture of one attempt has seen so far, for a display while `connect()` waits
/// (the capture's filter keeps only that attempt's segments, ICMP errors, ARP and ND).
#[derive(Debug, Default)]
pub struct LiveTally {
    /// SYNs without ACK: the attempt's SYN and its retransmits.
    pub syns: AtomicU32,
    /// What could answer them: SYN-ACKs, RSTs and ICMP errors.
    pub answers: AtomicU32,
}

impl LiveTally {
    fn count(&self, body: &decode::PacketBody) {
        use decode::{PacketBody, TcpFlags};
        let counter = match body {
            PacketBody::Tcp(segment) if segment.flags.is_syn_only() => &self.syns,
            PacketBody::Tcp(segment) if segment.flags.has(TcpFlags::RST) || segment.flags.has(TcpFlags::SYN) => {
                &self.answers
            }
            PacketBody::IcmpError(_) => &self.answers,
            _ => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Bytes kept of each captured packet (see `LiveCapture::open`).
const SNAPLEN: i32 = 2048;
/// The kernel ring a live capture reads from.
const CAPTURE_BUFFER: i32 = 4 << 20;

/// An activated live capture, armed with its filter, not yet read.
pub struct LiveCapture {
    capture: pcap::Capture<pcap::Active>,
    link_type: LinkType,
    savefile: Option<pcap::Savefile>,
}

/// What a live capture saw.
#[derive(Debug, Default)]
pub struct LiveResult {
    /// The decoded packets that matter to the attempt.
    pub events: Vec<Event>,
    /// Packets captured.
    pub packets: u64,
    /// Packets that could not be decoded.
    pub undecodable: u64,
    /// Packets the kernel dropped because libpcap's buffer was full (`ps_drop`).
    pub dropped: u64,
    /// Packets the interface dropped (`ps_ifdrop`).
    pub if_dropped: u64,
}

fn permission_help() -> String {
    let exe = std::env::current_exe().map_or_else(|_| "synscope".into(), |p| p.display().to_string());
    format!(
        "capturing packets needs root, or the capabilities CAP_NET_RAW and CAP_NET_ADMIN (for the `any` device). \
         Run it with sudo, or grant them once to this binary: `sudo setcap cap_net_raw,cap_net_admin=eip {exe}`. \
         Or add --no-capture to trace the syscalls alone, without the packets"
    )
}

impl LiveCapture {
    /// Opens `device` in immediate mode with nanosecond timestamps, compiles and sets `filter`,
    /// and activates it: from here on no packet of the attempt can be missed.
    pub fn open(device: &str, filter: &str, write: Option<&Path>) -> anyhow::Result<LiveCapture> {
        let inactive = pcap::Capture::from_device(device).with_context(|| format!("no capture device {device}"))?;
        // In immediate mode libpcap uses TPACKET_V2, whose ring has one slot of about snaplen
        // bytes per packet: with the 256 KiB snaplen and 2 MiB buffer of the defaults, eight
        // packets fill it, and a burst of matching packets under load is dropped. A connection
        // attempt needs headers and ICMP quotes (at most 576 bytes in IPv4, 1280 in IPv6), so
        // 2 KiB slots in a 4 MiB buffer hold some 2,000 packets.
        let capture = inactive
            .immediate_mode(true)
            .precision(pcap::Precision::Nano)
            .snaplen(SNAPLEN)
            .buffer_size(CAPTURE_BUFFER)
            .timeout(READ_TIMEOUT_MS)
            .open()
            .map_err(|e| {
                let text = e.to_string();
                if text.contains("ermission") || text.contains("not permitted") {
                    anyhow::anyhow!("{text}: {}", permission_help())
                } else {
                    anyhow::anyhow!("cannot capture on {device}: {text}")
                }
            })?;
        let mut capture = capture;
        capture.filter(filter, true).with_context(|| format!("bad capture filter `{filter}`"))?;
        // Non-blocking: the reader waits with poll() itself, so it can notice the stop flag
        // (a blocking pcap_next_ex keeps looping on its own read timeout).
        let capture = capture.setnonblock().context("cannot make the capture non-blocking")?;
        let link_type = LinkType(u32::try_from(capture.get_datalink().0).unwrap_or(u32::MAX));
        let savefile = match write {
            Some(path) => Some(capture.savefile(path).with_context(|| format!("cannot write {}", path.display()))?),
            None => None,
        };
        Ok(LiveCapture { capture, link_type, savefile })
    }

    /// Reads packets on a thread of its own until `stop` is set, counting in `tally` as it goes.
    pub fn spawn(self, stop: Arc<AtomicBool>, tally: Arc<LiveTally>) -> JoinHandle<anyhow::Result<LiveResult>> {
        std::thread::spawn(move || self.read_until(&stop, &tally))
    }

    fn read_until(mut self, stop: &AtomicBool, tally: &LiveTally) -> anyhow::Result<LiveResult> {
        let mut result = LiveResult::default();
        loop {
            match self.capture.next_packet() {
                Ok(packet) => {
                    result.packets += 1;
                    if let Some(savefile) = self.savefile.as_mut() {
                        savefile.write(&packet);
                    }
                    // With nanosecond precision libpcap puts nanoseconds in tv_usec.
                    let ts = Timestamp::from_parts(
                        packet.header.ts.tv_sec,
                        u32::try_from(packet.header.ts.tv_usec).unwrap_or(0),
                    );
                    match decode::decode(self.link_type, packet.data) {
                        Ok(p) if matches!(p.body, decode::PacketBody::Other(_)) => {}
                        Ok(p) => {
                            tally.count(&p.body);
                            result
                                .events
                                .push(Event { ts, kind: EventKind::Packet { frame: result.packets, packet: p } });
                        }
                        Err(_) => result.undecodable += 1,
                    }
                }
                // Nothing pending: stop once asked to (everything captured so far has been read),
                // else wait for the next packet a little while.
                Err(pcap::Error::TimeoutExpired) => {
                    if stop.load(Ordering::Acquire) {
                        break;
                    }
                    let mut fds = [nix::poll::PollFd::new(self.capture.as_fd(), nix::poll::PollFlags::POLLIN)];
                    let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(READ_TIMEOUT_MS as u16));
                }
                Err(e) => return Err(anyhow::anyhow!("capture failed: {e}")),
            }
        }
        if let Ok(stats) = self.capture.stats() {
            result.dropped = u64::from(stats.dropped);
            result.if_dropped = u64::from(stats.if_dropped);
        }
        if let Some(mut savefile) = self.savefile.take() {
            savefile.flush().context("cannot flush the --write file")?;
        }
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_shell_word_quotes_only_what_the_shell_would_read_otherwise() {
        assert_eq!(shell_word("/var/tmp/dump-2026_12:05+1.pcap.zst"), "/var/tmp/dump-2026_12:05+1.pcap.zst");
        assert_eq!(shell_word("my dump.zst"), "'my dump.zst'");
        assert_eq!(shell_word("it's.zst"), r"'it'\''s.zst'");
        assert_eq!(shell_word("$HOME/*.zst"), "'$HOME/*.zst'");
        assert_eq!(shell_word("~x"), "'~x'");
        assert_eq!(shell_word(""), "''");
    }

    /// A classic pcap of `records` Ethernet records of 1,000 bytes each, the record's number in
    /// its first bytes, compressed with gzip.
    fn gzipped_pcap(records: u32) -> Vec<u8> {
        use std::io::Write as _;
        let mut pcap = vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 1, 0, 0, 0];
        for number in 0..records {
            pcap.extend_from_slice(&number.to_le_bytes()); // seconds
            pcap.extend_from_slice(&[0; 4]);
            pcap.extend_from_slice(&1000u32.to_le_bytes());
            pcap.extend_from_slice(&1000u32.to_le_bytes());
            let mut data = [0u8; 1000];
            data[..4].copy_from_slice(&number.to_le_bytes());
            pcap.extend_from_slice(&data);
        }
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&pcap).expect("compress");
        encoder.finish().expect("compress")
    }

    /// The numbers of the records `shared` streams, in order, and how often it said it waited.
    fn numbers(path: &Path, shared: Shared, mut on_waiting: impl FnMut()) -> (Vec<u32>, usize) {
        let (mut numbers, mut waited) = (Vec::new(), 0);
        stream_source(path, Some(shared), |streamed| {
            match streamed {
                Streamed::Record(record, _) => {
                    numbers.push(u32::from_le_bytes(record.data[..4].try_into().expect("4 bytes")))
                }
                Streamed::Waiting(_) => {
                    waited += 1;
                    on_waiting();
                }
            }
            Ok(())
        })
        .expect("stream");
        (numbers, waited)
    }

    #[test]
    fn test_a_shared_decompression_gives_every_reader_every_record() {
        // 3 MB of capture: a dozen chunks, whose ends fall inside records.
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("capture.pcap.gz");
        std::fs::write(&path, gzipped_pcap(3_000)).expect("write");
        assert!(inflate_for(&dir.path().join("missing.gz"), 2).is_err(), "a file that cannot be opened");
        let plain = dir.path().join("capture.pcap");
        std::fs::write(&plain, b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00").expect("write");
        assert!(inflate_for(&plain, 2).expect("opened").is_none(), "a file that is not compressed is read as it is");

        let shares = inflate_for(&path, 3).expect("opened").expect("compressed");
        assert_eq!(shares.len(), 3);
        let every: Vec<u32> = (0..3_000).collect();
        std::thread::scope(|scope| {
            let readers: Vec<_> =
                shares.into_iter().map(|shared| scope.spawn(|| numbers(&path, shared, || {}).0)).collect();
            for reader in readers {
                assert_eq!(reader.join().expect("a reader"), every, "each reader reads every record, in order");
            }
        });
    }

    #[test]
    fn test_a_reader_of_a_shared_decompression_says_that_it_waits() {
        // One reader holds back until the other says that it waits. The decompression goes no
        // further than a few chunks ahead of the reader that holds back, so the other must say
        // so rather than wait in a read; a replay's merge relies on it (see `Inflating::read`).
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("capture.pcap.gz");
        std::fs::write(&path, gzipped_pcap(3_000)).expect("write");
        let mut shares = inflate_for(&path, 2).expect("opened").expect("compressed");
        let (ahead, behind) = (shares.remove(0), shares.remove(0));
        let (go, wait_for_go) = mpsc::channel::<()>();
        let (done, results) = mpsc::channel();
        let path_behind = path.clone();
        let done_behind = done.clone();
        std::thread::spawn(move || {
            let _ = wait_for_go.recv();
            let _ = done_behind.send(("behind", numbers(&path_behind, behind, || {})));
        });
        std::thread::spawn(move || {
            let _ = done.send(("ahead", numbers(&path, ahead, || _ = go.send(()))));
        });
        // Bounded: a reader that waits in its read never ends.
        for _ in 0..2 {
            let (which, (numbers, waited)) =
                results.recv_timeout(std::time::Duration::from_secs(20)).expect("both readers end");
            assert_eq!(numbers.len(), 3_000, "{which}: every record");
            if which == "ahead" {
                assert!(waited > 0, "the reader ahead said that it waits");
            }
        }
    }
}

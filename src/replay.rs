//! Replay: streams a capture file through the correlator in bounded memory and shows each attempt
//! as soon as it is finished, so a capture of any size is one pass.
//!
//! Most records of a production capture are data segments of established connections. A cheap
//! look at their bytes ([`decode::peek_tcp`], or [`decode::look_beyond_tcp`] through a mirror
//! port's or an overlay's tunnel) and one lookup among the open attempts decide that most need no
//! decoding at all; only SYNs, RSTs, ICMP errors, ARP/ND and segments of open attempts are decoded
//! in full. UDP (QUIC, DNS ...) is known at a look too.
//!
//! The flows may be split between several readers (`--threads`), each with a thread that words its
//! attempts: each reader reads the whole file, correlates the flows it holds, and moves its clock
//! with every record, so that each attempt finishes at the same record as with one reader. A last
//! thread merges what they show into one reader's order.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::mpsc;

use crate::capfile::{FileError, Record};
use crate::capture::{self, BpfFilter};
use crate::correlate::{Correlator, Finished, Offered, Spare};
use crate::decode::{self, Packet, PacketBody};
use crate::event::{Event, EventKind, Timestamp};
use crate::flow::End;
use crate::linux::SynTiming;
use crate::timeline::Attempt;

/// What reading one file found, besides its attempts.
#[derive(Debug, Default)]
pub struct FileReport {
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
    /// Attempts found.
    pub attempts: u64,
    /// Attempts finished before their time: more were open at once than [`Replaying::max_open`]
    /// allows.
    pub finished_early: u64,
    /// Of those, the ones established that waited only for the client's ACK.
    pub finished_early_awaiting_ack: u64,
    /// Records of link types synscope does not decode, by link type (they count as undecodable).
    pub unsupported_link_types: std::collections::BTreeMap<u32, u64>,
    /// Reading stopped at this byte of the file because of Ctrl-C or SIGTERM.
    pub interrupted_at: Option<u64>,
    /// ICMP errors the capture cut inside their quote of a TCP segment (a short snap length).
    pub icmp_quotes_cut: u64,
}

/// How often reading looks for Ctrl-C, in records.
const INTERRUPT_EVERY: u64 = 4096;

/// Ends the stream early when the user interrupts.
#[derive(Debug, thiserror::Error)]
#[error("interrupted")]
struct Stopped(u64);

/// How far a replay has come, for a progress display.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Bytes of the file read.
    pub bytes: u64,
    /// Records read.
    pub packets: u64,
    /// Attempts finished.
    pub attempts: u64,
    /// Of a compressed file: the bytes of the file decompressed so far, and its size. (`bytes`
    /// counts the capture's, whose size is known only at its end.) Filled in by [`replay_file`]
    /// from the decompression, not by its readers.
    pub compressed: Option<(u64, u64)>,
}

/// Records between two calls of the progress callback.
const PROGRESS_EVERY: u64 = 1 << 16;
/// Finished attempts a reader hands to its wording thread at a time.
const BATCH: usize = 256;
/// Records after which a reader hands over what it has, even less than a batch: the merge waits
/// for each reader's word that it has nothing earlier, and must not wait long.
const FLUSH_EVERY: u64 = 1 << 16;
/// Batches in flight from a reader to its wording thread: with the channel full, the reader
/// waits, so memory stays bounded. Several readers share them out, as they share the attempts
/// open at once: two readers with four and two each peaked at 32.6 to 33.4 MiB, over the replay's
/// 32 MiB bound; with two and one, at 31.3 to 31.6 MiB, in 1.03 to 1.05 of the wall time (two sets
/// of 11 pairs; the same CPU). One reader keeps four and two.
const BATCHES_IN_FLIGHT: usize = 4;
/// Worded batches in flight from a wording thread to the merge (each about 256 KiB of words),
/// shared out among the readers as [`BATCHES_IN_FLIGHT`] are.
const WORDED_IN_FLIGHT: usize = 2;

/// What a replay does with each attempt: which to show and how (on the wording threads, so
/// `Sync`), and what of each shown one is handed, in the order shown, to the output's `count`.
pub trait Sink: Sync {
    /// What the output's `count` takes of a shown attempt (a summary's entry, say).
    type Seen: Send + PartialEq + std::fmt::Debug;
    /// Whether to word and show an attempt at all (filters that need no words: `--server`, `--failed` ...).
    fn wants(&self, attempt: &Finished) -> bool;
    /// Shows `attempt` by appending its rendering to `out`.
    fn show(&self, attempt: &Attempt, out: &mut Vec<u8>) -> anyhow::Result<Self::Seen>;
    /// Shows `attempt` straight from its evidence, without wording an [`Attempt`], if the sink can
    /// (a clean handshake as JSON, say): the same bytes [`Sink::show`] appends of its report, and
    /// the same seen. `scratch` is room for words, reused from one attempt to the next. `None`
    /// leaves it to [`Sink::show`].
    fn show_finished(
        &self,
        _attempt: &Finished,
        _out: &mut Vec<u8>,
        _scratch: &mut String,
    ) -> Option<anyhow::Result<Self::Seen>> {
        None
    }
}

/// Where a replay's attempts go.
pub struct Output<'a, S: Sink> {
    /// Which attempts to show, and how.
    pub sink: &'a S,
    /// Takes what the sink saw of each shown attempt, in the order shown.
    pub count: &'a mut (dyn FnMut(S::Seen) + Send),
    /// Where the shown attempts are written.
    pub out: &'a mut (dyn Write + Send),
}

/// The readers a replay uses unless told: one, whatever the machine. Each further reader frames the
/// whole file again and adds about 4 MiB (its read window, its correlator's tables, its wording
/// thread's buffers, its allocator's slack): two readers peak at 31.3 to 31.6 MiB on the
/// benchmark's capture, just under the replay's 32 MiB bound (see `BATCHES_IN_FLIGHT`), three
/// at about 34 MiB, and on two cores two are 1.2 to 1.5 times slower than one. (Worded batches
/// sent to the merge in pieces of 64 KiB took 2 MiB off, and made two readers 1.23 times slower
/// still: 11 pairs.)
pub const DEFAULT_READERS: usize = 1;

/// How a replay correlates: the SYN timing its deadlines follow, how many readers share the flows,
/// and how many attempts they hold open at once.
#[derive(Clone, Copy, Debug)]
pub struct Replaying {
    /// The SYN schedule deadlines are predicted with.
    pub timing: SynTiming,
    /// Readers (at least one; standard input has one): see [`DEFAULT_READERS`].
    pub readers: usize,
    /// The most attempts open at once, shared out among the readers; at it, some are finished
    /// before their time (see [`Correlator::with_max_open`]). See [`DEFAULT_MAX_OPEN`].
    pub max_open: usize,
}

impl Default for Replaying {
    fn default() -> Replaying {
        Replaying { timing: SynTiming::default(), readers: DEFAULT_READERS, max_open: DEFAULT_MAX_OPEN }
    }
}

/// The attempts a replay holds open at once unless told: about 0.8 KiB each, so that a replay
/// stays under 32 MiB whatever the capture holds (27 MiB on a SYN flood, with one reader). An
/// ordinary capture stays below it (the benchmark's, 10,000 attempts a second, has at most 23,000
/// open: a settled attempt stays 1.5 s, an unanswered one until its next retransmit is overdue);
/// a SYN flood reaches it in moments. Beyond it, settled attempts go first, and lose only late
/// evidence (a duplicate SYN-ACK or RST).
pub const DEFAULT_MAX_OPEN: usize = 25_000;

/// A capture that goes on in the next file (see [`continues`]): the attempts its readers hold
/// open, in reader order, and its latest time.
#[derive(Debug)]
pub struct GoesOn {
    correlators: Vec<Correlator>,
    last_ts: Timestamp,
}

/// Where a file stands among the files a replay reads: the capture a file before it left open, and
/// when the file after it begins, if that file may continue it. (Standard input, read as it comes
/// and by one reader, neither continues a capture nor goes on.)
#[derive(Debug, Default)]
pub struct Piece {
    /// The capture this file continues.
    pub continues: Option<GoesOn>,
    /// The time of the next file's first record.
    pub next_begins: Option<Timestamp>,
    /// The records of the files read before it: its frames number on from there, as `mergecap -a`
    /// numbers the files it joins, whether or not it continues their capture, so that a frame
    /// names one record of the replay.
    pub frames_before: u64,
}

/// Whether a file whose first record is at `next_begins` continues a capture whose latest record
/// is at `last`: pieces of one capture that `tcpdump -C`, `-G` or `-W` rotated (or `editcap -c`
/// cut), where an attempt that starts in one piece finishes in the next. It must begin no earlier
/// than `last` (two captures of the same moment, from two hosts say, are two captures), and within
/// the deadline `timing` gives a SYN: past it, nothing the next file holds can change an attempt
/// the capture left open, and a file that far later says nothing of the time between.
pub fn continues(last: Timestamp, next_begins: Timestamp, timing: &SynTiming) -> bool {
    let gap = next_begins.since(last);
    gap.0 >= 0 && gap <= timing.schedule().deadline
}

/// Replays `path` (or standard input, see [`capture::STDIN`], which one reader reads) with
/// `replaying.readers` readers (at least one), writing what the sink shows of each attempt once
/// the attempt is finished (see `correlate::retire`), in the order one correlator finishes them:
/// by the record that finished them; for one record, those whose time was up first, by start,
/// then those the record itself finished. The order, the words and the report do not depend on
/// the readers, unless a reader reaches its share of `replaying.max_open` (each holds its Nth part):
/// it then sweeps at the next record, not at its time, and what that finishes comes out earlier
/// than one reader would write it, even when nothing is finished before its time; what it does
/// finish before its time (crowded out, `decided_early`) says it was finished then. (The
/// benchmark's capture does not reach 25,000 open attempts, but sixteen readers' shares of 1,563:
/// 78,882 of its million lines came out elsewhere, in the same words.)
/// `progress` hears how far the reading has come now and then; `bpf` keeps only the records it
/// passes, as tcpdump would. When a pipe waits for its writer, everything finished so far is
/// written out.
///
/// `piece` joins files into one capture: the file takes on the attempts the capture it continues
/// left open (with as many readers as that capture had); and when the next file [`continues`]
/// this one, the attempts still open are not finished at the end of this file but returned, to go
/// on in the next. Its records are numbered on from `piece.frames_before`.
pub fn replay_file<S: Sink>(
    path: &Path,
    replaying: Replaying,
    piece: Piece,
    bpf: Option<&mut BpfFilter>,
    progress: &mut dyn FnMut(Progress),
    output: Output<'_, S>,
) -> anyhow::Result<(FileReport, Option<GoesOn>)> {
    let Piece { continues: before, next_begins, frames_before } = piece;
    debug_assert!(before.is_none() || !capture::is_stream(path), "a pipe continues no capture");
    // A pipe (standard input or another) can be read only once: one reader. A capture goes on
    // with the readers it had.
    let readers = match &before {
        Some(before) => before.correlators.len(),
        None if capture::is_stream(path) => 1,
        None => replaying.readers.max(1),
    };
    let last_before = before.as_ref().map(|b| b.last_ts);
    let mut correlators = before.map(|b| b.correlators).unwrap_or_default().into_iter();
    let next_begins = next_begins.filter(|_| !capture::is_stream(path));
    // A compressed file is decompressed once, whatever the readers: each would otherwise inflate
    // it all again, and inflating costs more than reading. (A file that cannot be opened is left
    // to the readers, which say so.)
    let shares = capture::inflate_for(path, readers).ok().flatten().unwrap_or_default();
    // How far through a compressed file: added to what the first reader says of its progress
    // here, not in its record loop, where it cost 1.6% more instructions (the loop's closure held
    // one more capture).
    let compressed = shares.first().map(capture::Shared::progress);
    let progress = &mut |progress_so_far: Progress| {
        progress(Progress { compressed: compressed.as_ref().map(capture::CompressedProgress::now), ..progress_so_far })
    };
    let mut shares = shares.into_iter();
    let mut start = move || Start {
        correlator: correlators.next(),
        frames_before,
        last_before,
        next_begins,
        shared: shares.next(),
    };
    // Each reader holds its share of the flows, and of the attempts open at once.
    let each = Replaying { readers, max_open: replaying.max_open.div_ceil(readers), ..replaying };
    let Output { sink, count, out } = output;
    let attempts_found = AtomicU64::new(0);
    let expression = bpf.as_ref().map(|filter| filter.expression().to_string());
    std::thread::scope(|scope| {
        let (mut reader_ends, mut worders, mut merged) = (Vec::new(), Vec::new(), Vec::new());
        // With one reader, its wording thread writes and counts; with several, a merging thread does.
        let mut output = Some((count, out));
        for index in 0..readers {
            let (handed_tx, handed_rx) = mpsc::sync_channel::<Handed>(BATCHES_IN_FLIGHT.div_ceil(readers));
            // The worded attempts' memory goes back to the reader (see `Spare`), and the merged
            // batches' buffers to the wording thread. Unbounded, so neither giver ever waits; each
            // holds at most what the batches in flight held.
            let (spares_tx, spares_rx) = mpsc::channel::<Vec<Spare>>();
            let to = match output.take() {
                Some((count, out)) if readers == 1 => WordsTo::Output { count, out },
                taken => {
                    output = taken;
                    let (batch_tx, batch_rx) = mpsc::sync_channel::<Batch<S::Seen>>(WORDED_IN_FLIGHT.div_ceil(readers));
                    let (bytes_tx, bytes_rx) = mpsc::channel::<Vec<u8>>();
                    merged.push((batch_rx, bytes_tx));
                    WordsTo::Merge { batches: batch_tx, bytes: bytes_rx }
                }
            };
            let words = Words { sink, handed: handed_rx, spares: spares_tx, to };
            let worder = std::thread::Builder::new()
                .name(format!("synscope-words-{index}"))
                .spawn_scoped(scope, move || words.run())?;
            worders.push(worder);
            reader_ends.push(ReaderEnds { handed: handed_tx, spares: spares_rx, attempts_found: &attempts_found });
        }
        let merger = match output {
            Some((count, out)) => Some(
                std::thread::Builder::new()
                    .name("synscope-merge".into())
                    .spawn_scoped(scope, move || merge(merged, count, out))?,
            ),
            None => None,
        };
        let mut reader_ends = reader_ends.into_iter();
        let first_ends = reader_ends.next();
        let first_start = start();
        let mut others = Vec::new();
        for (i, ends) in reader_ends.enumerate() {
            let shard = Shard { index: i + 1, of: readers };
            let expression = expression.clone();
            let start = start();
            let reader = std::thread::Builder::new().name(format!("synscope-read-{}", shard.index)).spawn_scoped(
                scope,
                move || -> anyhow::Result<(FileReport, Option<Correlator>)> {
                    let mut bpf = expression.as_deref().map(BpfFilter::new).transpose()?;
                    read_shard(path, each, start, shard, bpf.as_mut(), &mut |_| {}, ends)
                },
            )?;
            others.push(reader);
        }
        let first = match first_ends {
            Some(ends) => read_shard(path, each, first_start, Shard { index: 0, of: readers }, bpf, progress, ends),
            None => Err(anyhow::anyhow!("no reader")),
        };
        let mut reports = vec![first];
        for reader in others {
            reports.push(reader.join().map_err(|_| anyhow::anyhow!("a thread reading the capture panicked"))?);
        }
        // The merge's error (the output closed, as with `| head`) is what stopped the wording
        // threads, and theirs what stopped the readers: they come first.
        if let Some(merger) = merger {
            merger.join().map_err(|_| anyhow::anyhow!("the thread writing attempts panicked"))??;
        }
        for worder in worders {
            worder.join().map_err(|_| anyhow::anyhow!("a thread wording attempts panicked"))??;
        }
        let mut reports = reports.into_iter();
        let (mut report, going_on) = reports.next().unwrap_or_else(|| Err(anyhow::anyhow!("no reader")))?;
        let mut correlators: Vec<Correlator> = going_on.into_iter().collect();
        for other in reports {
            let (other, going_on) = other?;
            report.attempts += other.attempts;
            report.finished_early += other.finished_early;
            report.finished_early_awaiting_ack += other.finished_early_awaiting_ack;
            correlators.extend(going_on);
        }
        // Every reader decides alike, on the same records: all go on, or none.
        let goes_on = (correlators.len() == readers)
            .then(|| GoesOn { correlators, last_ts: report.last_ts.max(last_before).unwrap_or_default() });
        Ok((report, goes_on))
    })
}

/// How a reader of [`replay_file`] starts: with the correlator of the capture its file continues,
/// if any, whose records came before; when the next file begins, if it may continue this one; and
/// with its share of the file's decompression when the file is compressed.
struct Start {
    correlator: Option<Correlator>,
    frames_before: u64,
    last_before: Option<Timestamp>,
    next_begins: Option<Timestamp>,
    shared: Option<capture::Shared>,
}

/// Which part of the flows a reading thread holds.
#[derive(Clone, Copy, Debug)]
struct Shard {
    index: usize,
    of: usize,
}

impl Shard {
    /// Whether the flow between `a` and `b` (either way round) is this thread's: by the same
    /// commutative hash the correlator's table uses, its high half.
    fn holds(self, a: End, b: End) -> bool {
        self.of == 1 || (a.hash().wrapping_add(b.hash()) >> 32) % self.of as u64 == self.index as u64
    }

    /// Whether a decoded packet is this thread's to push: a segment by its ends, an ICMP error by
    /// the ends of the segment it quotes; ARP/ND and ICMP errors that quote no TCP go to every
    /// thread (attempts of any flow may read them, and they change none).
    fn takes(self, packet: &Packet) -> bool {
        match &packet.body {
            PacketBody::Tcp(seg) => self.holds(End::of(seg.src), End::of(seg.dst)),
            PacketBody::IcmpError(icmp) => match icmp.quoted.as_ref().and_then(|q| q.tcp.map(|t| (q, t))) {
                Some((quoted, tcp)) => self.holds(
                    End::of(SocketAddr::new(quoted.src, tcp.src_port)),
                    End::of(SocketAddr::new(quoted.dst, tcp.dst_port)),
                ),
                None => true,
            },
            _ => true,
        }
    }
}

/// Where an attempt falls in the order one correlator finishes attempts (see [`replay_file`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    /// The record that finished it (`u64::MAX`: the end of the file).
    record: u64,
    /// Finished by the record itself, after those whose time was up.
    by_event: bool,
    /// Whose time was up, and the end of the file: the start, then the opening frame. Finished by
    /// the record: in turn (only one thread holds the record's flow).
    first: i64,
    second: u64,
}

impl Place {
    fn of(finished: &Finished, record: u64, in_turn: &mut i64) -> Place {
        if finished.by_sweep() || record == u64::MAX {
            Place { record, by_event: false, first: finished.start().0, second: finished.opened_frame() }
        } else {
            *in_turn += 1;
            Place { record, by_event: true, first: *in_turn, second: 0 }
        }
    }
}

/// How much of what is finished [`ReaderEnds::hand_over`] hands over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum HandOver {
    /// Whole batches; the rest waits for more.
    WholeBatches,
    /// Everything.
    All,
    /// Everything, and the wording thread writes it out at once (the input waits).
    AllNow,
}

/// Finished attempts a reader hands to its wording thread, each with its place.
struct Handed {
    attempts: Vec<(Place, Finished)>,
    /// The reader finishes nothing more at or before this record.
    done_through: u64,
    /// The reader waits for its input: what is worded goes out now (one reader only: a merge
    /// writes as soon as every reader's word allows).
    flush: bool,
}

/// Attempts one wording thread shows, worded, in its reader's order.
struct Batch<Seen> {
    bytes: Vec<u8>,
    /// Each shown attempt's place, where its words end in `bytes`, and what the sink saw of it.
    shown: Vec<(Place, usize, Seen)>,
    /// The reader finishes nothing more at or before this record.
    done_through: u64,
}

/// The merge's ends of the channels to one wording thread: its batches come in, their buffers go back.
type MergeEnds<Seen> = (mpsc::Receiver<Batch<Seen>>, mpsc::Sender<Vec<u8>>);

/// A reader's ends of the channels to its wording thread.
struct ReaderEnds<'a> {
    handed: mpsc::SyncSender<Handed>,
    spares: mpsc::Receiver<Vec<Spare>>,
    attempts_found: &'a AtomicU64,
}

impl ReaderEnds<'_> {
    /// Hands the attempts in `pending` over in whole batches, or all of them, saying that nothing
    /// more will finish at or before `done_through` (before the last batch of all, attempts of
    /// that record may still follow).
    fn hand_over(&self, pending: &mut Vec<(Place, Finished)>, done_through: u64, how: HandOver) -> anyhow::Result<()> {
        let all = how != HandOver::WholeBatches;
        if pending.len() < BATCH && !all {
            return Ok(());
        }
        // Each attempt moves once, into its batch: a sweep may finish thousands at one record, and
        // handing the first batch over in `pending`'s memory would move all the others once per batch.
        let mut attempts = std::mem::replace(pending, Vec::with_capacity(2 * BATCH)).into_iter();
        while attempts.len() > BATCH || (attempts.len() == BATCH && !all) {
            let batch = attempts.by_ref().take(BATCH).collect();
            let done_through = if all { done_through.saturating_sub(1) } else { done_through };
            self.send(Handed { attempts: batch, done_through, flush: false })?;
        }
        if all {
            self.send(Handed { attempts: attempts.collect(), done_through, flush: how == HandOver::AllNow })?;
        } else {
            pending.extend(attempts);
        }
        Ok(())
    }

    /// Gives `correlator` the memory of the attempts worded since, then hands over `pending` as
    /// [`ReaderEnds::hand_over`] does. Out of line: the record loop stays as small as the compiler
    /// inlines whole.
    #[inline(never)]
    fn take_spares_and_hand_over(
        &self,
        correlator: &mut Correlator,
        pending: &mut Vec<(Place, Finished)>,
        done_through: u64,
        how: HandOver,
    ) -> anyhow::Result<()> {
        correlator.take_spares(self.spares.try_iter().flatten());
        self.hand_over(pending, done_through, how)
    }

    fn send(&self, handed: Handed) -> anyhow::Result<()> {
        // A send fails only when the wording thread stopped on an error (its output closed, as
        // with `| head`): stop reading too; the join reports the wording thread's error.
        self.handed.send(handed).map_err(|_| anyhow::anyhow!("the thread writing attempts stopped"))
    }
}

/// One reader of [`replay_file`]: reads the whole file, correlates the flows `shard` holds, and
/// hands their finished attempts, in order, to its wording thread.
fn read_shard(
    path: &Path,
    replaying: Replaying,
    start: Start,
    shard: Shard,
    mut bpf: Option<&mut BpfFilter>,
    progress: &mut dyn FnMut(Progress),
    ends: ReaderEnds<'_>,
) -> anyhow::Result<(FileReport, Option<Correlator>)> {
    let Start { correlator, frames_before, last_before, next_begins, shared } = start;
    let continuing = correlator.is_some();
    let mut correlator =
        correlator.unwrap_or_else(|| Correlator::streaming(replaying.timing).with_max_open(replaying.max_open));
    let early_before = (correlator.finished_early(), correlator.finished_early_awaiting_ack());
    let mut report = FileReport::default();
    let mut pending = Vec::with_capacity(2 * BATCH);
    let mut since_hand_over = 0;
    // The capture's first and last times so far, as plain times while the records stream by (the
    // report's are options, and a replay updates them at every record).
    let (mut first_ts, mut last_ts) = (Timestamp(i64::MAX), Timestamp(i64::MIN));
    // The record after which everything finished was last written out because a pipe waited.
    let mut written_out_at = 0;
    let streamed = capture::stream_source(path, shared, |streamed| {
        let (record, bytes) = match streamed {
            capture::Streamed::Record(record, bytes) => (record, bytes),
            // A live capture piped in has nothing more for now: what is finished goes out, to
            // the terminal, not when a batch fills.
            capture::Streamed::Waiting(read_through) => {
                if crate::interrupt::requested() {
                    return Err(Stopped(read_through).into());
                }
                if written_out_at == report.packets {
                    return Ok(());
                }
                written_out_at = report.packets;
                since_hand_over = 0;
                let attempts = ends.attempts_found.load(AtomicOrdering::Relaxed);
                progress(Progress { bytes: read_through, packets: report.packets, attempts, compressed: None });
                let done_through = frames_before + report.packets;
                return ends.take_spares_and_hand_over(&mut correlator, &mut pending, done_through, HandOver::AllNow);
            }
        };
        if report.packets % INTERRUPT_EVERY == 0 && crate::interrupt::requested() {
            return Err(Stopped(bytes).into());
        }
        report.packets += 1;
        first_ts = first_ts.min(record.ts);
        last_ts = last_ts.max(record.ts);
        if report.packets % PROGRESS_EVERY == 0 {
            let attempts = ends.attempts_found.load(AtomicOrdering::Relaxed);
            progress(Progress { bytes, packets: report.packets, attempts, compressed: None });
        }
        if let Some(filter) = bpf.as_deref_mut() {
            if !filter.matches(record.link_type, record.data)? {
                return Ok(());
            }
        }
        let number = frames_before + report.packets;
        take_record(&mut correlator, shard, &record, number, &mut report);
        since_hand_over += 1;
        if correlator.has_finished() {
            let mut in_turn = 0;
            let before = pending.len();
            pending.extend(correlator.drain_finished().map(|f| (Place::of(&f, number, &mut in_turn), f)));
            let found = (pending.len() - before) as u64;
            report.attempts += found;
            ends.attempts_found.fetch_add(found, AtomicOrdering::Relaxed);
            if pending.len() >= BATCH {
                // (Attempts of this record may stay behind for the next batch.)
                ends.take_spares_and_hand_over(&mut correlator, &mut pending, number - 1, HandOver::WholeBatches)?;
                since_hand_over = 0;
            }
        }
        // (One reader's words go straight out: only a merge waits for word of how far a reader is.)
        if shard.of > 1 && since_hand_over >= FLUSH_EVERY {
            ends.take_spares_and_hand_over(&mut correlator, &mut pending, number, HandOver::All)?;
            since_hand_over = 0;
        }
        Ok(())
    });
    if report.packets > 0 {
        (report.first_ts, report.last_ts) = (Some(first_ts), Some(last_ts));
    }
    // The capture's latest time, in this file or in those it continues.
    let capture_last = report.last_ts.max(last_before);
    let end = match streamed {
        Err(err) => match err.downcast::<Stopped>() {
            Ok(Stopped(at)) => {
                report.interrupted_at = Some(at);
                capture::StreamEnd { damage: None, bytes: at }
            }
            // The attempts the files before left open are not lost with this one (it could not be
            // read after all): they end where the capture's evidence does. (An error handing them
            // over is the output's, which the join reports.)
            Err(err) if continuing => {
                close_into(correlator, capture_last, &mut pending);
                let _ = ends.hand_over(&mut pending, u64::MAX, HandOver::All);
                return Err(err);
            }
            Err(err) => return Err(err),
        },
        Ok(end) => end,
    };
    report.damage = end.damage;
    report.finished_early = correlator.finished_early() - early_before.0;
    report.finished_early_awaiting_ack = correlator.finished_early_awaiting_ack() - early_before.1;
    // When the next file continues this capture, what is still open goes on there.
    let goes_on = report.damage.is_none()
        && report.interrupted_at.is_none()
        && capture_last.zip(next_begins).is_some_and(|(last, next)| continues(last, next, &replaying.timing));
    let going_on = match goes_on {
        true => Some(correlator),
        false => {
            let closed = close_into(correlator, capture_last, &mut pending);
            report.attempts += closed;
            ends.attempts_found.fetch_add(closed, AtomicOrdering::Relaxed);
            None
        }
    };
    ends.hand_over(&mut pending, u64::MAX, HandOver::All)?;
    let attempts = ends.attempts_found.load(AtomicOrdering::Relaxed);
    progress(Progress { bytes: end.bytes, packets: report.packets, attempts, compressed: None });
    Ok((report, going_on))
}

/// Finishes every attempt `correlator` holds open where the capture ends, `capture_end`, and
/// queues them in `pending` after what is there, in the order one correlator closes them; returns
/// how many.
fn close_into(correlator: Correlator, capture_end: Option<Timestamp>, pending: &mut Vec<(Place, Finished)>) -> u64 {
    let rest = correlator.close(capture_end.unwrap_or_default());
    let closed = rest.len() as u64;
    let mut in_turn = 0;
    pending.extend(rest.into_iter().map(|f| (Place::of(&f, u64::MAX, &mut in_turn), f)));
    closed
}

/// A wording thread of [`replay_file`]: words the attempts its reader hands over and passes them,
/// in batches, to the merge.
struct Words<'a, S: Sink> {
    sink: &'a S,
    handed: mpsc::Receiver<Handed>,
    spares: mpsc::Sender<Vec<Spare>>,
    to: WordsTo<'a, S::Seen>,
}

/// Where a wording thread's words go.
enum WordsTo<'a, Seen> {
    /// Straight to the output, counted on the way: the only reader's are in order already.
    Output { count: &'a mut (dyn FnMut(Seen) + Send), out: &'a mut (dyn Write + Send) },
    /// To the merge, in batches whose buffers come back.
    Merge { batches: mpsc::SyncSender<Batch<Seen>>, bytes: mpsc::Receiver<Vec<u8>> },
}

impl<S: Sink> Words<'_, S> {
    fn run(mut self) -> anyhow::Result<()> {
        let mut written = Vec::new();
        // The attempt worded last, whose memory the next is worded in.
        let mut worded: Option<Attempt> = None;
        let mut scratch = String::new();
        for Handed { attempts, done_through, flush } in self.handed {
            let mut bytes = match &self.to {
                WordsTo::Output { .. } => std::mem::take(&mut written),
                WordsTo::Merge { bytes, .. } => bytes.try_recv().unwrap_or_default(),
            };
            bytes.clear();
            let mut shown = Vec::with_capacity(attempts.len());
            let mut spared = Vec::with_capacity(attempts.len());
            for (place, finished) in attempts {
                if !self.sink.wants(&finished) {
                    spared.push(finished.into_spare());
                    continue;
                }
                #[cfg(debug_assertions)]
                let before = bytes.len();
                if let Some(seen) = self.sink.show_finished(&finished, &mut bytes, &mut scratch) {
                    let seen = seen?;
                    #[cfg(debug_assertions)]
                    check_shown_alike(self.sink, &finished, &bytes[before..], &seen);
                    spared.push(finished.into_spare());
                    shown.push((place, bytes.len(), seen));
                } else {
                    let (attempt, spare) = finished.report_reusing(worded.take());
                    spared.push(spare);
                    let seen = self.sink.show(&attempt, &mut bytes)?;
                    shown.push((place, bytes.len(), seen));
                    worded = Some(attempt);
                }
            }
            // The reader may be done already: then the spares are simply dropped.
            let _ = self.spares.send(spared);
            match &mut self.to {
                WordsTo::Output { count, out } => {
                    out.write_all(&bytes)?;
                    if flush {
                        out.flush()?;
                    }
                    shown.into_iter().for_each(|(_, _, seen)| count(seen));
                    written = bytes;
                }
                WordsTo::Merge { batches, .. } => batches
                    .send(Batch { bytes, shown, done_through })
                    .map_err(|_| anyhow::anyhow!("the thread writing attempts stopped"))?,
            }
        }
        if let WordsTo::Output { out, .. } = &mut self.to {
            out.flush()?;
        }
        Ok(())
    }
}

/// Checks that what `sink` showed and saw of `finished` from its evidence ([`Sink::show_finished`])
/// is what [`Sink::show`] writes and sees of its report: every test that replays checks the
/// shortcut on every attempt it takes.
#[cfg(debug_assertions)]
fn check_shown_alike<S: Sink>(sink: &S, finished: &Finished, shown: &[u8], seen: &S::Seen) {
    let mut reported = Vec::new();
    let seen_again = sink.show(&finished.clone().report(), &mut reported);
    assert_eq!(
        String::from_utf8_lossy(shown),
        String::from_utf8_lossy(&reported),
        "an attempt shown from its evidence reads as its report"
    );
    assert_eq!(seen_again.ok().as_ref(), Some(seen), "an attempt shown from its evidence is counted as its report");
}

/// Takes record number `number` into `correlator` if `shard` holds its flow; otherwise only moves
/// the clock, exactly when one correlator of every flow would have.
fn take_record(correlator: &mut Correlator, shard: Shard, record: &Record<'_>, number: u64, report: &mut FileReport) {
    let peeked = decode::peek_tcp(record.link_type, record.data);
    match peeked {
        Some(peek) if passes_by(correlator, shard, record, peek) => return,
        Some(_) => (),
        None if take_beyond(correlator, shard, record, number) => return,
        None => (),
    }
    // A plain TCP segment is read straight from its bytes; anything else goes the general way.
    let plain = peeked.and_then(|peek| peek.decode());
    let decoded = plain.map_or_else(|| decode::decode(record.link_type, record.data), Ok);
    // Every thread decodes every ICMP error: the first one counts those the capture cut.
    if let (Ok(Packet { body: PacketBody::IcmpError(icmp), .. }), 0) = (&decoded, shard.index) {
        report.icmp_quotes_cut += u64::from(icmp.quote_cut());
    }
    match decoded {
        Ok(packet) if !matches!(packet.body, PacketBody::Other(_)) && (peeked.is_some() || shard.takes(&packet)) => {
            correlator.push(&Event { ts: record.ts, kind: EventKind::Packet { frame: number, packet } });
        }
        // Nothing for this reader's attempts (UDP and other protocols, another reader's flows, a
        // record it cannot decode), but capture time passes: a live feed that is mostly such
        // records must still see its attempts finish.
        decoded => {
            correlator.tick(record.ts);
            // Every thread reads every record: the first one counts what it could not decode.
            if let (Err(err), 0) = (decoded, shard.index) {
                report.undecodable += 1;
                if let decode::DecodeError::Link(decode::link::LinkError::UnsupportedLinkType(link)) = err {
                    *report.unsupported_link_types.entry(link).or_default() += 1;
                }
            }
        }
    }
}

/// Whether the TCP segment `peek` read is done with once its flow and flags are known: it is
/// another reader's (the clock moves), or it has ACK but neither SYN nor RST and no attempt of its
/// 4-tuple needs more of it than a count. (One without ACK is a scanner's probe, whose reset the
/// correlator must not take for an attempt's: see `Correlator::answers_probe`.)
#[inline(always)]
fn passes_by(correlator: &mut Correlator, shard: Shard, record: &Record<'_>, peek: decode::TcpPeek<'_>) -> bool {
    if !shard.holds(peek.src, peek.dst) {
        correlator.tick(record.ts);
        return true;
    }
    peek.flags.is_ack_without_syn_or_rst()
        && correlator.offer_segment(record.ts, peek.src, peek.dst) != Offered::NeedsDecode
}

/// Takes what the cheap look beyond plain TCP reads ([`decode::look_beyond_tcp`]) as
/// [`take_record`] would once it were decoded, and says so: a TCP segment in a tunnel as a plain
/// one, a UDP datagram as the tick of the clock it is to attempts. `false` leaves the record to the
/// full decode. Out of line, where the records of a plain capture that no peek reads (ICMP, ARP
/// ...) do not shape the code that every record runs: merging the two peeks' answers there costs
/// every record 8% more instructions.
#[inline(never)]
fn take_beyond(correlator: &mut Correlator, shard: Shard, record: &Record<'_>, number: u64) -> bool {
    let peek = match decode::look_beyond_tcp(record.link_type, record.data) {
        decode::Beyond::Tunneled(peek) => peek,
        decode::Beyond::Udp => {
            correlator.tick(record.ts);
            return true;
        }
        decode::Beyond::Decode => return false,
    };
    if passes_by(correlator, shard, record, peek) {
        return true;
    }
    // A header cut short goes the general way.
    let Some(packet) = peek.decode() else { return false };
    correlator.push(&Event { ts: record.ts, kind: EventKind::Packet { frame: number, packet } });
    true
}

/// The merging thread of [`replay_file`]: writes the reading threads' attempts in one correlator's
/// order, and counts each. Each thread's batches come in its own order; an attempt is written once
/// every other thread has shown one after it, or said it has nothing more up to its record.
fn merge<Seen>(
    streams: Vec<MergeEnds<Seen>>,
    count: &mut (dyn FnMut(Seen) + Send),
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    struct Stream<Seen> {
        receiver: mpsc::Receiver<Batch<Seen>>,
        returns: mpsc::Sender<Vec<u8>>,
        bytes: Vec<u8>,
        shown: VecDeque<(Place, usize, Seen)>,
        written: usize,
        done_through: u64,
        closed: bool,
    }
    let mut streams: Vec<Stream<Seen>> = streams
        .into_iter()
        .map(|(receiver, returns)| Stream {
            receiver,
            returns,
            bytes: Vec::new(),
            shown: VecDeque::new(),
            written: 0,
            done_through: 0,
            closed: false,
        })
        .collect();
    let mut buf = Vec::with_capacity(1 << 16);
    loop {
        let next = (0..streams.len()).filter(|&i| !streams[i].shown.is_empty()).min_by_key(|&i| streams[i].shown[0].0);
        let next_record = next.map(|i| streams[i].shown[0].0.record);
        // A thread that may still show something before `next` must be heard first: the one furthest
        // behind, which the others (their channels full) may be waiting for.
        let waiting = (0..streams.len())
            .filter(|&i| {
                let s = &streams[i];
                s.shown.is_empty() && !s.closed && next_record.is_none_or(|r| s.done_through < r)
            })
            .min_by_key(|&i| streams[i].done_through);
        if let Some(i) = waiting {
            let stream = &mut streams[i];
            match stream.receiver.recv() {
                Ok(batch) => {
                    let done = std::mem::replace(&mut stream.bytes, batch.bytes);
                    // The thread may be done already: then the buffer is simply dropped.
                    let _ = stream.returns.send(done);
                    stream.shown = batch.shown.into();
                    stream.written = 0;
                    stream.done_through = batch.done_through;
                }
                Err(_) => stream.closed = true,
            }
            continue;
        }
        let Some(i) = next else { break };
        let stream = &mut streams[i];
        if let Some((_, end, seen)) = stream.shown.pop_front() {
            buf.extend_from_slice(&stream.bytes[stream.written..end]);
            stream.written = end;
            count(seen);
        }
        if buf.len() >= 1 << 16 {
            out.write_all(&buf)?;
            buf.clear();
        }
    }
    out.write_all(&buf)?;
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Span;

    #[test]
    fn test_a_file_continues_a_capture_from_its_end_to_the_syn_deadline() {
        let last = Timestamp::from_parts(1_000, 0);
        let default = SynTiming::default();
        assert!(continues(last, last, &default), "at once: the next record of the same capture");
        assert!(!continues(last, Timestamp(last.0 - 1), &default), "overlapping: another capture");
        assert!(continues(last, last.plus(Span::from_secs(131)), &default), "up to Linux 6.5's 131 s deadline");
        assert!(!continues(last, Timestamp(last.0 + 131_000_000_001), &default), "past it");
        // With tcp_syn_retries=2 a SYN waits 7 s at most.
        let short = SynTiming { syn_retries: 2, ..default };
        assert!(continues(last, last.plus(Span::from_secs(7)), &short));
        assert!(!continues(last, last.plus(Span::from_secs(8)), &short));
    }

    fn swept(record: u64, start: i64, frame: u64) -> Place {
        Place { record, by_event: false, first: start, second: frame }
    }

    fn by_event(record: u64, turn: i64) -> Place {
        Place { record, by_event: true, first: turn, second: 0 }
    }

    /// A wording thread's batch: each attempt's words are its id and a newline.
    fn batch(shown: &[(Place, u32)], done_through: u64) -> Batch<u32> {
        let mut bytes = Vec::new();
        let shown = shown
            .iter()
            .map(|&(place, id)| {
                bytes.extend_from_slice(format!("{id}\n").as_bytes());
                (place, bytes.len(), id)
            })
            .collect();
        Batch { bytes, shown, done_through }
    }

    /// Merges `streams` (each a list of batches, sent from a thread of its own through a channel
    /// that holds one batch) and returns the ids counted and the lines written.
    fn merged(streams: Vec<Vec<Batch<u32>>>) -> (Vec<u32>, String) {
        let (mut counted, mut out) = (Vec::new(), Vec::new());
        std::thread::scope(|scope| {
            let mut ends = Vec::new();
            for batches in streams {
                let (tx, rx) = mpsc::sync_channel(1);
                let (back_tx, _back_rx) = mpsc::channel();
                scope.spawn(move || batches.into_iter().for_each(|b| tx.send(b).expect("the merge listens")));
                ends.push((rx, back_tx));
            }
            merge(ends, &mut |id| counted.push(id), &mut out).expect("merge");
        });
        (counted, String::from_utf8(out).expect("utf-8"))
    }

    #[test]
    fn test_merge_writes_one_readers_order() {
        // Reader A finishes attempts 1 (swept at record 10), 4 (record 12, by its event) and 6 (the
        // end); reader B finishes 0 and 2 (swept at record 10: start 5 before A's 7, then frame),
        // 3 (record 11) and 5 (the end, started before 6).
        let a = vec![
            batch(&[(swept(10, 7, 1), 1)], 10),
            batch(&[], 11),
            batch(&[(by_event(12, 1), 4)], 12),
            batch(&[(swept(u64::MAX, 30, 9), 6)], u64::MAX),
        ];
        let b = vec![
            batch(&[(swept(10, 5, 2), 0), (swept(10, 7, 3), 2)], 9),
            batch(&[(by_event(11, 1), 3)], 11),
            batch(&[(swept(u64::MAX, 20, 8), 5)], u64::MAX),
        ];
        let (counted, written) = merged(vec![a, b]);
        assert_eq!(counted, vec![0, 1, 2, 3, 4, 5, 6]);
        assert_eq!(written, "0\n1\n2\n3\n4\n5\n6\n");
    }

    #[test]
    fn test_merge_lets_a_busy_reader_through_as_a_quiet_one_moves_on() {
        // Reader A shows nothing for a long stretch and only says how far it has come; B shows an
        // attempt at every record: its attempts go out as A says it has passed them, in order.
        let quiet = (1..=50).map(|r| batch(&[], r * 4)).chain([batch(&[(by_event(201, 1), 1000)], u64::MAX)]).collect();
        let busy = (1..=200).map(|r| batch(&[(by_event(r, 1), r as u32)], r)).chain([batch(&[], u64::MAX)]).collect();
        let (counted, _) = merged(vec![quiet, busy]);
        let mut expected: Vec<u32> = (1..=200).collect();
        expected.push(1000);
        assert_eq!(counted, expected);
    }

    #[test]
    fn test_merge_waits_for_a_reader_that_may_still_show_an_earlier_attempt() {
        // B shows an attempt swept at record 10; A has only said it is through record 9, and then
        // shows one swept at the same record but started earlier: it goes first.
        let a = vec![batch(&[], 9), batch(&[(swept(10, 5, 1), 0)], u64::MAX)];
        let b = vec![batch(&[(swept(10, 7, 2), 1)], u64::MAX)];
        assert_eq!(merged(vec![a, b]).0, vec![0, 1]);
    }

    #[test]
    fn test_merge_of_readers_that_end_early() {
        // A reader that stops (an error, an interrupt) closes its channel: the others go on.
        let stopped = vec![batch(&[(by_event(3, 1), 3)], 3)];
        let rest = vec![batch(&[(by_event(1, 1), 1), (by_event(5, 1), 5)], 5), batch(&[(by_event(9, 1), 9)], u64::MAX)];
        let (counted, written) = merged(vec![stopped, rest, Vec::new()]);
        assert_eq!(counted, vec![1, 3, 5, 9]);
        assert_eq!(written, "1\n3\n5\n9\n");
    }

    #[test]
    fn test_each_flow_belongs_to_one_reader_either_way_round() {
        let client: SocketAddr = "192.0.2.10:40000".parse().expect("addr");
        let server: SocketAddr = "203.0.113.5:443".parse().expect("addr");
        for of in 1..=5 {
            let holders: Vec<usize> =
                (0..of).filter(|&index| Shard { index, of }.holds(End::of(client), End::of(server))).collect();
            assert_eq!(holders.len(), 1, "one reader of {of} holds the flow");
            let back = Shard { index: holders[0], of };
            assert!(back.holds(End::of(server), End::of(client)), "either way round");
        }
    }
}

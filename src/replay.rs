//! Replay: streams a capture file through the correlator in bounded memory and shows each attempt
//! as soon as it is finished, so a capture of any size is one pass.
//!
//! Most records of a production capture are data segments of established connections. A cheap
//! look at their bytes ([`decode::peek_tcp`]) and one lookup among the open attempts decide that
//! most need no decoding at all; only SYNs, RSTs, ICMP errors, ARP/ND and segments of open attempts
//! are decoded in full.

use std::io::Write;
use std::path::Path;
use std::sync::mpsc;

use crate::capfile::FileError;
use crate::capture::{self, BpfFilter};
use crate::correlate::{Correlator, Finished, Offered, Spare};
use crate::decode::{self, PacketBody, TcpFlags};
use crate::event::{Event, EventKind, Timestamp};
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
    /// Records of link types synscope does not decode, by link type (they count as undecodable).
    pub unsupported_link_types: std::collections::BTreeMap<u32, u64>,
    /// Reading stopped at this byte of the file because of Ctrl-C or SIGTERM.
    pub interrupted_at: Option<u64>,
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
}

/// Records between two calls of the progress callback.
const PROGRESS_EVERY: u64 = 1 << 16;
/// Finished attempts handed to the wording thread at a time.
const BATCH: usize = 256;
/// Batches in flight to the wording thread: with the channel full, reading waits, so memory stays bounded.
const BATCHES_IN_FLIGHT: usize = 4;

/// What a replay does with each attempt, on the thread that words them.
pub trait Sink: Send {
    /// Whether to word and show an attempt at all (filters that need no words: `--server`, `--failed` ...).
    fn wants(&self, attempt: &Finished) -> bool;
    /// Shows `attempt` by appending its rendering to `out`.
    fn show(&mut self, attempt: Attempt, out: &mut Vec<u8>) -> anyhow::Result<()>;
}

/// Replays `path`, writing what `sink` shows of each attempt to `out` once the attempt is finished
/// (see `correlate::retire`), in order of start within each batch. Reading, decoding and correlating
/// run on this thread; wording, rendering and writing on a second one, so two cores share the work.
/// `progress` hears how far the reading has come now and then. `bpf` keeps only the records it
/// passes, as tcpdump would.
pub fn replay_file(
    path: &Path,
    timing: SynTiming,
    bpf: Option<&mut BpfFilter>,
    progress: &mut dyn FnMut(Progress),
    sink: &mut dyn Sink,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<FileReport> {
    let (batches, batches_rx) = mpsc::sync_channel::<Vec<Finished>>(BATCHES_IN_FLIGHT);
    // The worded attempts' memory goes back to the reading thread (see `Spare`). Unbounded, so the
    // worder never waits on it; it holds at most the attempts of the batches in flight.
    let (spares_tx, spares) = mpsc::channel::<Vec<Spare>>();
    std::thread::scope(|scope| {
        let worder = std::thread::Builder::new().name("synscope-words".into()).spawn_scoped(
            scope,
            move || -> anyhow::Result<()> {
                let mut buf = Vec::with_capacity(1 << 16);
                for batch in batches_rx {
                    let mut spared = Vec::with_capacity(batch.len());
                    for finished in batch {
                        if sink.wants(&finished) {
                            let (attempt, spare) = finished.report_and_spare();
                            sink.show(attempt, &mut buf)?;
                            spared.push(spare);
                        } else {
                            spared.push(finished.into_spare());
                        }
                    }
                    out.write_all(&buf)?;
                    buf.clear();
                    // The reader may be done already: then the spares are simply dropped.
                    let _ = spares_tx.send(spared);
                }
                Ok(())
            },
        )?;
        let read = read_and_correlate(path, timing, bpf, progress, &batches, &spares);
        // Closing the channel ends the worder's loop.
        drop(batches);
        worder.join().map_err(|_| anyhow::anyhow!("the thread wording attempts panicked"))??;
        read
    })
}

/// The reading side of [`replay_file`]: reads and correlates, and hands finished attempts in batches to the wording thread.
fn read_and_correlate(
    path: &Path,
    timing: SynTiming,
    mut bpf: Option<&mut BpfFilter>,
    progress: &mut dyn FnMut(Progress),
    batches: &mpsc::SyncSender<Vec<Finished>>,
    spares: &mpsc::Receiver<Vec<Spare>>,
) -> anyhow::Result<FileReport> {
    let mut correlator = Correlator::streaming(timing);
    let mut report = FileReport::default();
    let mut batch = Vec::with_capacity(BATCH);
    let hand_over = |batch: &mut Vec<Finished>| -> anyhow::Result<()> {
        while !batch.is_empty() {
            let chunk: Vec<Finished> = batch.drain(..batch.len().min(BATCH)).collect();
            // A send fails only when the worder stopped on an error (its output closed, as with
            // `| head`): stop reading too; the join reports the worder's error.
            batches.send(chunk).map_err(|_| anyhow::anyhow!("the thread writing attempts stopped"))?;
        }
        Ok(())
    };
    let streamed = capture::stream_file(path, |record, bytes| {
        if report.packets % INTERRUPT_EVERY == 0 && crate::interrupt::requested() {
            return Err(Stopped(bytes).into());
        }
        report.packets += 1;
        report.first_ts = Some(report.first_ts.map_or(record.ts, |t| t.min(record.ts)));
        report.last_ts = Some(report.last_ts.map_or(record.ts, |t| t.max(record.ts)));
        if report.packets % PROGRESS_EVERY == 0 {
            progress(Progress { bytes, packets: report.packets, attempts: report.attempts });
        }
        if let Some(filter) = bpf.as_deref_mut() {
            if !filter.matches(record.link_type, record.data)? {
                return Ok(());
            }
        }
        // A segment without SYN or RST changes nothing unless an attempt of its 4-tuple is open,
        // and most often that attempt only counts it.
        if let Some(peek) = decode::peek_tcp(record.link_type, record.data) {
            if peek.flags.0 & (TcpFlags::SYN | TcpFlags::RST) == 0
                && correlator.offer_segment(record.ts, peek.src, peek.dst) != Offered::NeedsDecode
            {
                return Ok(());
            }
        }
        match decode::decode(record.link_type, record.data) {
            Ok(packet) if matches!(packet.body, PacketBody::Other(_)) => {}
            Ok(packet) => {
                correlator.push(&Event { ts: record.ts, kind: EventKind::Packet { frame: report.packets, packet } });
                let before = batch.len();
                batch.extend(correlator.drain_finished());
                report.attempts += (batch.len() - before) as u64;
                if batch.len() >= BATCH {
                    correlator.take_spares(spares.try_iter().flatten());
                    hand_over(&mut batch)?;
                }
            }
            Err(err) => {
                report.undecodable += 1;
                if let decode::DecodeError::Link(decode::link::LinkError::UnsupportedLinkType(link)) = err {
                    *report.unsupported_link_types.entry(link).or_default() += 1;
                }
            }
        }
        Ok(())
    });
    let end = match streamed {
        Err(err) => match err.downcast::<Stopped>() {
            Ok(Stopped(at)) => {
                report.interrupted_at = Some(at);
                capture::StreamEnd { damage: None, bytes: at }
            }
            Err(err) => return Err(err),
        },
        Ok(end) => end,
    };
    report.damage = end.damage;
    let rest = correlator.close(report.last_ts.unwrap_or_default());
    report.attempts += rest.len() as u64;
    batch.extend(rest);
    hand_over(&mut batch)?;
    progress(Progress { bytes: end.bytes, packets: report.packets, attempts: report.attempts });
    Ok(report)
}

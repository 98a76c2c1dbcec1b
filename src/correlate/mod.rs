//! The correlator: turns time-stamped events into connection attempts, each with an annotated timeline
//! and the errno a Linux client saw, by the inference rules of DESIGN.md.
//!
//! An attempt starts at a client SYN (SYN without ACK) with a new initial sequence number (ISN) on a
//! 4-tuple, or is discovered from an ICMP error quoting such a SYN. Answers are accepted or ignored the
//! way `tcp_rcv_synsent_state_process` and `tcp_v4_err`/`tcp_v6_err` do. The same code serves live
//! traces and replays; it never reads a clock: every event carries its own timestamp.
//!
//! It streams: an attempt leaves memory, worded and reported, once nothing that can still come
//! would change it (see `retire`), so a capture of any length is read in bounded memory.

mod describe;
mod handshake;
mod index;
mod live;
mod retire;
mod verdict;

pub use handshake::{Handshake, HandshakeStep};
pub use live::{syscall_verdict, SyscallVerdict};

use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

use crate::decode::{
    ArpOp, CutQuote, IcmpError, IcmpErrorKind, LinkDirection, NeighborOp, Packet, PacketBody, TcpFlags, TcpSegment,
};
use crate::event::{Event, EventKind, KernelObservation, Span, SyscallEvent, Timestamp};
use crate::flow::{Dir, End, Family, FlowKey};
use crate::linux::{icmpv4_effect, icmpv6_effect, Errno, IcmpEffect, SynTiming};
use crate::timeline::{Attempt, Entry, What};

/// How an attempt was decided, before the cause is worded.
#[derive(Clone, Debug, PartialEq)]
enum Decision {
    /// An acceptable SYN-ACK arrived (`via_ack`: only the client's ACK proves it).
    Established { via_ack: bool },
    /// An acceptable RST arrived (`loopback`: over the loopback device).
    Refused {
        /// The RST crossed a loopback device.
        loopback: bool,
    },
    /// A fatal ICMP error arrived.
    Icmp { errno: Errno, error: Box<IcmpError> },
}

#[derive(Clone, Debug)]
struct Verdict {
    ts: Timestamp,
    decision: Decision,
    /// Index of the entry that decided it.
    entry: usize,
}

/// An ICMP error Linux only remembered (`sk_err_soft`) because the socket was owned by the user.
#[derive(Clone, Debug)]
struct SoftError {
    errno: Errno,
    error: Box<IcmpError>,
}

/// What an entry shows of its packet, kept compact until the attempt is reported.
#[derive(Clone, Debug, PartialEq)]
enum Wire {
    Tcp(describe::TcpWords),
    Icmp(Box<IcmpError>),
    Text(Box<str>),
}

impl Wire {
    fn tcp(seg: &TcpSegment) -> Wire {
        Wire::Tcp(describe::TcpWords::of(seg))
    }

    /// The entry's summary, appended to `out`.
    fn render_into(&self, out: &mut String) {
        match self {
            Wire::Tcp(words) => words.render_into(out),
            Wire::Icmp(icmp) => describe::icmp_into(icmp, out),
            Wire::Text(text) => out.push_str(text),
        }
    }
}

/// What an entry means for its attempt: mostly fixed sentences, worded lazily when they are not.
#[derive(Clone, Debug)]
enum Note {
    Text(Cow<'static, str>),
    /// The note of the SYN that opens an attempt.
    Opens {
        isn: u32,
        data_len: u32,
    },
    /// The note of a retransmitted SYN.
    Retransmit {
        number: usize,
        gap: Span,
    },
}

impl Note {
    fn text(&self) -> Cow<'_, str> {
        match self {
            Note::Text(text) => Cow::Borrowed(text),
            worded => {
                let mut text = String::with_capacity(48);
                worded.write_to(&mut text);
                Cow::Owned(text)
            }
        }
    }

    /// The note's words, appended to `out`. (Built without format arguments: every attempt has
    /// an opening note, and many a retransmit.)
    fn write_to(&self, out: &mut String) {
        match self {
            Note::Text(text) => out.push_str(text),
            Note::Opens { isn, data_len } => {
                out.push_str("opens the attempt, ISN ");
                out.push_str(itoa::Buffer::new().format(*isn));
                if *data_len > 0 {
                    out.push_str("; carries ");
                    out.push_str(itoa::Buffer::new().format(*data_len));
                    out.push_str(" bytes of data (TCP Fast Open)");
                }
            }
            Note::Retransmit { number, gap } => {
                out.push_str("retransmit #");
                out.push_str(itoa::Buffer::new().format(*number));
                out.push_str(", +");
                let _ = gap.write_to(out); // (writing to a String cannot fail)
                out.push_str(" after the previous SYN");
            }
        }
    }

    /// The note's words, moved into `note`, whose memory a worded note reuses.
    fn into_note(self, note: &mut Option<Cow<'static, str>>) {
        match (self, note) {
            (Note::Text(text), note) => *note = Some(text),
            (worded, Some(Cow::Owned(reused))) => {
                reused.clear();
                worded.write_to(reused);
            }
            (worded, note) => *note = Some(worded.text().into_owned().into()),
        }
    }

    /// Appends `more` to the note's words, in one allocation (the notes of retransmits get their
    /// expected backoff this way, several in every attempt that timed out).
    fn push_str(&mut self, more: &str) {
        let mut text = String::with_capacity(128 + more.len());
        self.write_to(&mut text);
        text.push_str(more);
        *self = Note::Text(Cow::Owned(text));
    }
}

impl From<&'static str> for Note {
    fn from(text: &'static str) -> Note {
        Note::Text(Cow::Borrowed(text))
    }
}

impl From<String> for Note {
    fn from(text: String) -> Note {
        Note::Text(Cow::Owned(text))
    }
}

/// A timeline entry while its attempt is open (see [`Entry`] for the reported form).
#[derive(Clone, Debug)]
struct Step {
    ts: Timestamp,
    /// The frame number in the capture (1-based).
    frame: u64,
    dir: Dir,
    what: What,
    wire: Wire,
    note: Option<Note>,
    ignored: bool,
}

impl Step {
    /// The reported entry, in the memory of `entry` (its summary's and note's buffers are reused:
    /// a replay words millions of entries).
    fn into_entry(self, start: Timestamp, entry: &mut Entry) {
        entry.t = verdict::seconds_since(self.ts, start);
        entry.dir = self.dir;
        entry.what = self.what;
        entry.summary.clear();
        self.wire.render_into(&mut entry.summary);
        match self.note {
            Some(note) => note.into_note(&mut entry.note),
            None => entry.note = None,
        }
        entry.ignored = self.ignored;
        entry.frame = Some(self.frame);
        entry.ts = self.ts;
    }
}

/// One attempt while it is being built.
#[derive(Clone, Debug)]
struct AttemptState {
    key: FlowKey,
    isn: u32,
    /// ISN + 1 + bytes of data on the SYN (TCP Fast Open): the end of the window an answer must acknowledge.
    snd_nxt: u32,
    /// (Inline room for two SYNs and a handshake's three entries: most attempts need no buffer of
    /// their own, and each event one cache miss fewer.)
    syn_times: SmallVec<[Timestamp; 2]>,
    entries: SmallVec<[Step; 3]>,
    /// When the first evidence of the attempt came.
    opened_at: Timestamp,
    /// The frame that opened it: with `opened_at`, it orders attempts that finish together the
    /// same way whichever memory they happened to be built in.
    opened_frame: u64,
    /// When the last packet that can change the attempt came (segments after the handshake do not count).
    last_seen: Timestamp,
    verdict: Option<Verdict>,
    soft_error: Option<SoftError>,
    /// The server's ISN, once an acceptable SYN-ACK arrived.
    server_isn: Option<u32>,
    handshake_acked: bool,
    /// When a SYN with another ISN reused this 4-tuple.
    superseded_at: Option<Timestamp>,
    /// Packets after the verdict left out of the timeline (beyond [`MAX_LATE_ENTRIES`]).
    late_not_shown: u32,
    /// Packets left out of the timeline once it held [`MAX_ENTRIES`].
    entries_not_kept: u32,
    /// SYNs among them, past [`MAX_SYNS_KEPT`]: counted in the attempt's SYNs, their times not kept.
    syns_not_kept: u32,
    /// Answers Linux ignores among the packets left out.
    ignored_not_kept: u32,
    /// Where the capture was taken, if the link layer says (Linux cooked captures).
    capture_side: Option<&'static str>,
    /// The TTL (IPv6: hop limit) the last SYN had where the capture saw it: with an ICMP time
    /// exceeded, how many routers it still had to pass when it ran out. (Linux resends a SYN with
    /// the TTL it first had; a TCP traceroute raises it at each.)
    syn_ttl: Option<u8>,
    /// Addresses whose ARP/ND resolution belongs to this attempt.
    resolving: Vec<IpAddr>,
    /// The client retransmitted its SYN after an acceptable SYN-ACK: SYN-ACKs do not reach its TCP.
    synack_unseen_by_client: bool,
    /// Retransmits Linux made at once after an unacceptable ACK, outside its backoff schedule.
    quick_retransmits: u16,
    /// Copies the capture holds of its SYNs and of the packet that decided it, left out of its
    /// timeline and its SYN count (see `Correlator::on_syn_retransmit`).
    copies: u16,
    /// When an answer with an unacceptable ACK (a SYN-ACK or RST+ACK that Linux rejects) last came.
    unacceptable_ack_at: Option<Timestamp>,
}

/// An ICMP error cut by the capture before its quoted ports, offered to an attempt it may be for.
#[derive(Clone, Debug)]
struct CutIcmp {
    ts: Timestamp,
    frame: u64,
    error: Box<IcmpError>,
}

/// The mark of a slot whose attempt has no SYN (it was found from an ICMP error's quote): no IP
/// identification or flow label is this large (they have 16 and 20 bits).
const NO_SYN: u32 = u32::MAX;

/// How soon after a SYN an identical one is a copy the capture made, not a retransmit (see
/// `Correlator::on_syn_retransmit`).
const COPY_WINDOW: Span = Span::from_millis(1);

/// How soon after a neighbour's answer a first SYN that waited for it leaves: Linux queues a packet
/// for a next hop not yet resolved on its neighbour entry and sends it while it takes the answer in
/// (`__neigh_update` flushes `arp_queue`), microseconds later. A millisecond leaves room for a busy
/// host, and is far shorter than the seconds between unrelated resolutions of one address.
const SENT_ON_ANSWER: Span = Span::from_millis(1);

/// Cut ICMP errors kept for an attempt at most: the oldest go first (only those after its last SYN
/// can decide it).
const MAX_CUT_ICMPS: usize = 8;

/// An ARP or neighbour-discovery message, kept to be matched with attempts at the end.
#[derive(Clone, Debug)]
struct NeighborObservation {
    ts: Timestamp,
    frame: u64,
    what: What,
    /// Who asks (requests) or who is asked for (replies: the answering owner).
    asker: Option<IpAddr>,
    /// The address being resolved.
    target: IpAddr,
    summary: Box<str>,
}

/// Neighbour observations kept at most, whatever the capture: an ARP storm cannot grow memory
/// without bound (the oldest go first; attempts rarely look back further than a few seconds).
const MAX_NEIGHBORS: usize = 1 << 16;

/// A segment with neither SYN, ACK nor RST, and the ack of the reset that refuses it.
#[derive(Debug)]
struct Probe {
    ts: Timestamp,
    from: End,
    to: End,
    /// SEG.SEQ+SEG.LEN, what a reset answering it acknowledges (FIN counts in SEG.LEN).
    reset_ack: u32,
}

/// Probes kept at most: a scan sends thousands a second, and the reset answering one comes within
/// a round trip of it.
const MAX_PROBES: usize = 1 << 12;

/// How long after a probe a reset may still answer it: a round trip, with room to spare.
const PROBE_ANSWERED_WITHIN: Span = Span::from_millis(3_000);

/// Builds attempts from events fed in time order; see [`correlate`] for events in any order.
///
/// With [`Correlator::streaming`], attempts that nothing can change any more are finished as the
/// capture's clock passes them and handed out by [`Correlator::drain_finished`].
#[derive(Debug, Default)]
pub struct Correlator {
    timing: SynTiming,
    /// Open attempts; a slot is reused once its attempt is finished.
    /// (Boxed: the slots' vector then grows by pointers, not by whole states.)
    attempts: Vec<Option<Box<AttemptState>>>,
    /// Beside each slot, when its attempt expires and when it opened: kept up to date after every
    /// event, so a sweep reads one dense vector instead of every attempt.
    slot_times: Vec<SlotTimes>,
    /// Beside each slot, the IP identification or flow label of its attempt's last SYN
    /// (`TcpSegment::ip_ident`), or [`NO_SYN`]: what an ICMP error that ends the attempt quotes,
    /// as no SYN follows that error. An error the capture cut before its ports is matched by it
    /// (see `offer_cut_icmp`), in a dense vector that a look at every open attempt reads fast: a
    /// capture with a short snap length holds thousands of such errors. (On the benchmark's
    /// capture cut to 96 bytes, a look through the slots' ends for each took 2.1 times as long as
    /// the replay did without them, and a hash map of slots by mark, kept at every SYN, 1.39
    /// times; this, 1.12 times.)
    slot_marks: Vec<u32>,
    /// Beside each slot, what the lookup of a segment needs, so that finding an attempt does not
    /// touch the attempts themselves.
    slot_ends: Vec<SlotEnds>,
    /// The slot the event at hand reached, whose times need refreshing.
    touched: Option<usize>,
    free_slots: Vec<usize>,
    /// The open attempt of each pair of endpoints, as its slot: a table hashed by the pair (see
    /// [`ends_hash`]) that holds 8 bytes an attempt, marked while it awaits a client segment (see
    /// [`SlotEnds::awaits_client_segments`]); the ends themselves are in `slot_ends`.
    current: index::EndsIndex,
    /// Recent ARP/ND observations, oldest first (pruned to what open attempts can still use).
    neighbors: VecDeque<NeighborObservation>,
    /// Recent segments with neither SYN, ACK nor RST (a scanner's FIN, NULL and Xmas probes),
    /// oldest first: a reset that answers one reveals no attempt (see `answers_probe`).
    probes: VecDeque<Probe>,
    /// Whether attempts are finished as the clock passes them (replay), or only at the end (live).
    streaming: bool,
    /// The latest event time seen: the capture's clock.
    now: Timestamp,
    /// The clock for the event at hand: its time, unless that is a lone jump far ahead (see `clock_for`).
    clock: Timestamp,
    /// A record that jumped far ahead of the clock, waiting for the next one to confirm the jump.
    jump_candidate: Option<Timestamp>,
    /// When the open attempts are next checked for retirement.
    next_sweep: Timestamp,
    /// The most attempts open at once: once an attempt opens to reach it, the next event sweeps
    /// first and finishes some before their time (see [`Correlator::with_max_open`]).
    max_open: Option<usize>,
    /// Attempts finished before their time because more than `max_open` were open.
    finished_early: u64,
    /// Of those, the ones established that waited only for the client's ACK (see
    /// [`retire::awaits_only_the_ack`]).
    finished_early_awaiting_ack: u64,
    /// Attempts finished and not yet taken.
    finished: Vec<Finished>,
    /// The attempts a sweep found expired, as start, opening frame and slot (kept for its capacity).
    expired: Vec<(Timestamp, u64, usize)>,
    /// The order a sweep retires `expired` in, as positions in it (kept for its capacity).
    retiring_order: Vec<u64>,
    /// The memory of attempts already worded, given back (see [`Spare`]).
    spares: Vec<Spare>,
    /// System calls of traced attempts (live only), merged into their attempts at the end.
    syscalls: Vec<(Timestamp, SyscallEvent)>,
    /// The kernel's observations of traced sockets (live only).
    kernel: Vec<(Timestamp, FlowKey, KernelObservation)>,
    /// The live capture's statistics, when one ran.
    capture: Option<live::CaptureSeen>,
    /// ICMP errors cut by the capture before their quoted ports, by the slot of each open attempt
    /// they may be for (see `offer_cut_icmp`), oldest first, at most [`MAX_CUT_ICMPS`] a slot:
    /// beside the attempts rather than in them, as most captures have none.
    cut_icmps: HashMap<usize, Vec<CutIcmp>>,
}

/// When a slot's attempt expires (see `retire::expires_at`) and when it opened.
#[derive(Clone, Copy, Debug)]
struct SlotTimes {
    expires: Timestamp,
    opened: Timestamp,
}

/// The times of an empty slot: it never expires.
const FREE_SLOT: SlotTimes = SlotTimes { expires: Timestamp(i64::MAX), opened: Timestamp(i64::MAX) };

/// The hash of a flow's two ends, whichever is given first, so that one lookup finds its attempt
/// from either direction: a commutative mix of the two ends' hashes.
fn ends_hash(a: End, b: End) -> u64 {
    a.hash().wrapping_add(b.hash())
}

/// A slot's two ends, whether its attempt awaits a client segment, and when it expires: what the
/// lookup of a segment reads, in one cache line (64 bytes, aligned), so that finding an attempt
/// and checking that it is still open wait on one miss, not three (the ends straddled two lines,
/// the expiry sat in `slot_times`).
#[derive(Clone, Copy, Debug)]
#[repr(align(64))]
struct SlotEnds {
    client: End,
    server: End,
    /// What [`SlotEnds::awaits_client_segments`] said of the attempt after its last event (the
    /// mark of its entry in the index).
    awaits_client_segments: bool,
    /// The slot's `SlotTimes::expires`, again.
    expires: Timestamp,
    /// Whether `Correlator::cut_icmps` holds errors offered to the attempt: a retirement, which
    /// reads this slot anyway, looks the map up only then (hashing every retired slot into it
    /// cost more than the cut errors' own handling on a capture that has them).
    offered_cut_icmps: bool,
}

impl SlotEnds {
    fn of(a: &AttemptState) -> SlotEnds {
        let (client, server) = (End::of(a.key.client), End::of(a.key.server));
        let expires = retire::expires_at(a);
        SlotEnds {
            client,
            server,
            awaits_client_segments: Self::awaits_client_segments(a),
            expires,
            offered_cut_icmps: false,
        }
    }

    /// Whether a segment from the client that carries neither SYN nor RST may still change `a`
    /// (`AttemptState::on_client_segment`): before any answer (its ACK may prove a SYN-ACK the
    /// capture lacks, its FIN closes the attempt), and after an acceptable SYN-ACK until the ACK
    /// that completes the handshake. Such a segment from the server never changes an attempt.
    fn awaits_client_segments(a: &AttemptState) -> bool {
        match a.verdict.as_ref().map(|v| &v.decision) {
            None => true,
            Some(Decision::Established { .. }) => !a.handshake_acked && a.server_isn.is_some(),
            Some(_) => false,
        }
    }

    /// Whether `a` and `b` are its two ends, in either order.
    fn joins(&self, a: End, b: End) -> bool {
        (self.client == a && self.server == b) || (self.client == b && self.server == a)
    }

    fn hash(&self) -> u64 {
        ends_hash(self.client, self.server)
    }
}

/// What [`Correlator::offer_segment`] did with a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// No open attempt awaits it: the segment changes nothing (its time moved the clock).
    Skipped,
    /// It may change its attempt: decode it and [`Correlator::push`] it.
    NeedsDecode,
}

/// An attempt the correlator is done with: all its evidence, not yet worded. [`Finished::report`]
/// words it; that is pure and needs nothing else, so a replay does it on another thread.
#[derive(Clone, Debug)]
pub struct Finished {
    state: Box<AttemptState>,
    horizon: verdict::Horizon,
    timing: SynTiming,
    by_sweep: bool,
}

impl Finished {
    /// When its first evidence came.
    pub fn start(&self) -> Timestamp {
        self.state.opened_at
    }

    /// The frame that opened it (the frame of its first SYN, or of what revealed it).
    pub fn opened_frame(&self) -> u64 {
        self.state.opened_frame
    }

    /// Whether a sweep of the open attempts finished it (its time was up), rather than an event of
    /// its own. A sweep comes before the event that moved the clock, and finishes its attempts in
    /// order of start and opening frame; see [`Correlator::drain_finished`].
    pub fn by_sweep(&self) -> bool {
        self.by_sweep
    }

    /// Its client and server.
    pub fn key(&self) -> FlowKey {
        self.state.key
    }

    /// Whether its outcome is `established` (known before it is worded, for `--failed`).
    pub fn established(&self) -> bool {
        matches!(self.state.verdict.as_ref().map(|v| &v.decision), Some(Decision::Established { .. }))
    }

    /// The reported attempt: outcome, errno, cause and timeline in words.
    pub fn report(self) -> Attempt {
        self.report_and_spare().0
    }

    /// Its memory, to give back to the correlator unworded (an attempt a filter leaves out).
    pub fn into_spare(self) -> Spare {
        Spare(self.state)
    }

    /// The reported attempt, and what is left of its state to give back to the correlator (see
    /// [`Correlator::take_spares`]).
    pub fn report_and_spare(self) -> (Attempt, Spare) {
        self.report_reusing(None)
    }

    /// [`Finished::report_and_spare`], worded in the memory of `previous`, an attempt reported
    /// before whose strings and timeline entries are reused (a replay words millions of attempts).
    pub fn report_reusing(mut self, previous: Option<Attempt>) -> (Attempt, Spare) {
        let attempt = verdict::finish(&mut self.state, &self.timing, self.horizon, previous);
        (attempt, Spare(self.state))
    }
}

/// The memory of a finished attempt, worded and emptied, for the correlator to build another in.
/// A replay words attempts on a second thread; handing their memory back, rather than freeing it
/// there, spares the allocator the locking that frees across threads cost (glibc's arenas).
#[derive(Debug)]
pub struct Spare(Box<AttemptState>);

/// Spares a correlator keeps at most: what comes back between two hand-overs, which is about
/// what one sweep finishes (a sweep every 100 ms of a capture that opens 10,000 attempts a second
/// finishes about 1,000). A pool smaller than that frees the rest and allocates as many anew: with
/// 512, half the attempts of the 1 GB benchmark were a `malloc` and a `free`, and the replay took 5%
/// longer (21 paired runs). At most about 2 MiB of states; the replay's peak hardly moved (26.5 MiB,
/// 31.8 with two readers, against 26.4 and 31.5).
const MAX_SPARES: usize = 4096;

/// SYNs whose times and timeline entries an attempt keeps: the first and Linux's most retransmits
/// (`MAX_TCP_SYNCNT`, 127, the ceiling of `tcp_syn_retries` and `TCP_SYNCNT`). More is no stack's
/// schedule but a flood on one 4-tuple, or a capture looping over the same packets: those are
/// counted, and the last one's time kept, so that one attempt cannot grow without bound.
const MAX_SYNS_KEPT: usize = 128;

/// Entries a timeline keeps before more are only counted (the packets a verdict rests on are always
/// kept): room for [`MAX_SYNS_KEPT`] SYNs and as many other packets (answers Linux ignores, say).
const MAX_ENTRIES: usize = 2 * MAX_SYNS_KEPT;

/// Entries shown per attempt after it was decided (retransmitted SYN-ACKs, late RSTs ...), so that a
/// long capture of a misbehaving flow cannot grow one timeline without bound.
const MAX_LATE_ENTRIES: usize = 16;

/// Correlates events given in any order: sorts them by time and frame, then runs the correlator.
/// `capture_end` is when the evidence ends (the last event's time if `None`). Packets alone (a
/// replay) stream through the same retirement as `synscope replay`; with live evidence (system
/// calls, kernel observations) every attempt stays open to the end, where that evidence is merged.
pub fn correlate(mut events: Vec<Event>, timing: SynTiming, capture_end: Option<Timestamp>) -> Vec<Attempt> {
    events.sort_by_key(Event::order_key);
    let end = capture_end.or_else(|| events.last().map(|e| e.ts)).unwrap_or_default();
    let live = events.iter().any(|e| matches!(e.kind, EventKind::Syscall(_) | EventKind::Kernel { .. }));
    let mut correlator = if live { Correlator::new(timing) } else { Correlator::streaming(timing) };
    for event in &events {
        correlator.push(event);
    }
    correlator.finish(end)
}

impl Correlator {
    /// A correlator that predicts deadlines with `timing` and keeps every attempt open to the end.
    pub fn new(timing: SynTiming) -> Correlator {
        Correlator { timing, ..Correlator::default() }
    }

    /// A correlator that finishes attempts as soon as nothing can change them (see `retire`).
    pub fn streaming(timing: SynTiming) -> Correlator {
        // Room for the slots' ends of 65,536 open attempts up front (4 MiB of address space, in
        // memory only as slots are used). A vector of over-aligned elements cannot grow in place
        // (`realloc` keeps only 16-byte alignment): each doubling allocates anew and copies, and
        // old and new then sit in memory together: two readers peaked at 33.5 MiB, against
        // 31.5 MiB with this room.
        Correlator { streaming: true, slot_ends: Vec::with_capacity(1 << 16), ..Correlator::new(timing) }
    }

    /// Keeps at most `max_open` attempts open at once (at least 8). Memory then stays bounded
    /// whatever the capture holds: a SYN flood opens an attempt per SYN, and each stays open for
    /// seconds of capture time, until its next retransmit is overdue. When that many are open,
    /// the next event first finishes the eighth whose time would be up soonest, on the evidence
    /// seen so far; those whose outcome could still change get the finding `decided_early`.
    pub fn with_max_open(self, max_open: usize) -> Correlator {
        Correlator { max_open: Some(max_open.max(8)), ..self }
    }

    /// Takes back the memory of worded attempts, to build new ones in (up to a bound; the rest is freed).
    pub fn take_spares(&mut self, spares: impl IntoIterator<Item = Spare>) {
        for spare in spares {
            if self.spares.len() < MAX_SPARES {
                self.spares.push(spare);
            }
        }
    }

    /// The attempts finished since the last call, each complete, in the order they finished: for
    /// one event, first those a sweep finished (see [`Finished::by_sweep`]), by start and opening
    /// frame, then those the event itself finished.
    pub fn drain_finished(&mut self) -> std::vec::Drain<'_, Finished> {
        self.finished.drain(..)
    }

    /// Whether attempts finished since [`Correlator::drain_finished`] last took them.
    pub fn has_finished(&self) -> bool {
        !self.finished.is_empty()
    }

    /// Moves the clock for a record that changes no attempt of this correlator but that another
    /// one, holding other flows, takes: a replay split by flow across threads moves every part's
    /// clock with every record, so each finishes its attempts at the same record as one correlator would.
    pub fn tick(&mut self, ts: Timestamp) {
        self.advance_clock(ts);
    }

    /// Attempts finished before their time so far, because more were open at once than
    /// [`Correlator::with_max_open`] allows (those whose outcome could still change have the
    /// finding `decided_early`).
    pub fn finished_early(&self) -> u64 {
        self.finished_early
    }

    /// Of [`Correlator::finished_early`], the attempts established that waited only for the
    /// client's ACK: many of them say the capture holds no ACKs (filtered to SYN and RST).
    pub fn finished_early_awaiting_ack(&self) -> u64 {
        self.finished_early_awaiting_ack
    }

    /// Attempts open now: the slots in use. (Not the index's entries: an attempt whose 4-tuple
    /// a newer one took over in the index stays open until its time is up.)
    #[inline]
    pub fn open_attempts(&self) -> usize {
        self.attempts.len() - self.free_slots.len()
    }

    /// The open attempt from `src` to `dst` or back, and whether `src` is its client.
    fn find(&self, src: SocketAddr, dst: SocketAddr) -> Option<(usize, bool)> {
        self.find_ends(End::of(src), End::of(dst))
    }

    /// [`Correlator::find`] by the ends' integer form.
    fn find_ends(&self, src: End, dst: End) -> Option<(usize, bool)> {
        let ends = &self.slot_ends;
        let i = self.current.find(ends_hash(src, dst), |i| ends[i].joins(src, dst))?;
        Some((i, ends[i].client == src))
    }

    /// The open attempt whose client is `src` and server `dst`, if it awaits a client segment:
    /// unmarked entries of the index are passed over without reading their ends.
    #[inline]
    fn find_awaiting(&self, src: End, dst: End) -> Option<usize> {
        let ends = &self.slot_ends;
        let found = self.current.find_marked(ends_hash(src, dst), |i| ends[i].client == src && ends[i].server == dst);
        // The marks are kept up to date after each event (`push`); a state that changed without
        // its mark would lose segments silently, so every test checks them against the states.
        debug_assert_eq!(
            found,
            self.find_ends(src, dst)
                .filter(|&(i, from_client)| {
                    from_client && self.attempts[i].as_deref().is_some_and(SlotEnds::awaits_client_segments)
                })
                .map(|(i, _)| i),
            "the index's mark of an attempt says whether it awaits a client segment"
        );
        found
    }

    /// Offers a TCP segment at `ts` from `src` to `dst` that carries neither SYN nor RST, known by
    /// its endpoints alone: most segments of a capture are data of connections no attempt awaits
    /// (their attempt is settled, or gone), so a reader need not decode them. Skipped means exactly
    /// what decoding and pushing the segment would do: move the clock and nothing else. Inlined
    /// always into a replay's record loop, which runs it for most records: it has a second caller,
    /// for segments in tunnels, and the compiler then kept it out of line, with the peek and the
    /// segment's decode (12% more instructions on the reading thread, the three together).
    #[inline(always)]
    pub fn offer_segment(&mut self, ts: Timestamp, src: End, dst: End) -> Offered {
        if self.find_awaiting(src, dst).is_some() {
            return Offered::NeedsDecode;
        }
        self.advance_clock(ts);
        Offered::Skipped
    }

    /// Moves the capture's clock to an event at `ts`, and sweeps when it is time. (Inlined, with
    /// the sweep and the handling of jumps out of line: a replay moves the clock at every record.)
    #[inline]
    fn advance_clock(&mut self, ts: Timestamp) {
        self.clock = if self.jump_candidate.is_none() && !self.is_jump(ts) { ts } else { self.clock_for(ts) };
        self.now = self.now.max(self.clock);
        // Due every `SWEEP_INTERVAL` of capture time, and at once when `insert` reached the most
        // attempts open at once.
        if self.streaming && self.now >= self.next_sweep {
            self.sweep();
        }
    }

    /// Feeds one event; events must come in time order (small disorder is tolerated).
    pub fn push(&mut self, event: &Event) {
        self.advance_clock(event.ts);
        match &event.kind {
            EventKind::Packet { frame, packet } => self.on_packet(event.ts, *frame, packet),
            EventKind::Syscall(call) => self.syscalls.push((event.ts, call.clone())),
            EventKind::Kernel { flow, observation } => self.kernel.push((event.ts, *flow, observation.clone())),
            EventKind::CaptureStats { packets, dropped } => {
                self.capture = Some(live::CaptureSeen { packets: *packets, dropped: *dropped });
            }
        }
        if let Some(i) = self.touched.take() {
            if let Some(a) = self.attempts.get(i).and_then(Option::as_deref) {
                let expires = retire::expires_at(a);
                self.slot_times[i] = SlotTimes { expires, opened: a.first_seen() };
                let awaits = SlotEnds::awaits_client_segments(a);
                let ends = &mut self.slot_ends[i];
                ends.expires = expires;
                if ends.awaits_client_segments != awaits {
                    ends.awaits_client_segments = awaits;
                    self.current.set_mark(ends.hash(), i, awaits);
                }
            }
        }
    }

    fn on_packet(&mut self, ts: Timestamp, frame: u64, packet: &Packet) {
        match &packet.body {
            PacketBody::Tcp(seg) => self.on_tcp(ts, frame, packet.link_direction, packet.on_loopback, seg),
            PacketBody::IcmpError(icmp) => self.on_icmp(ts, frame, icmp),
            PacketBody::Arp(arp) => {
                let (what, asker, target) = match arp.op {
                    ArpOp::Request => (What::ArpRequest, Some(arp.sender_ip.into()), arp.target_ip.into()),
                    ArpOp::Reply => (What::ArpReply, None, arp.sender_ip.into()),
                };
                let summary = describe::arp(arp).into();
                self.observe_neighbor(NeighborObservation { ts, frame, what, asker, target, summary });
            }
            PacketBody::Neighbor(nd) => {
                let (what, asker) = match nd.op {
                    NeighborOp::Solicitation => (What::Ns, Some(nd.src.into())),
                    NeighborOp::Advertisement => (What::Na, None),
                };
                let summary = describe::neighbor(nd).into();
                self.observe_neighbor(NeighborObservation {
                    ts,
                    frame,
                    what,
                    asker,
                    target: nd.target.into(),
                    summary,
                });
            }
            PacketBody::Other(_) => {}
        }
    }

    fn observe_neighbor(&mut self, observation: NeighborObservation) {
        // Keep them in time order even if the capture is not (merged files, several interfaces).
        let at = self.neighbors.partition_point(|n| n.ts <= observation.ts);
        // A copy of one just before it is the capture seeing it twice (see `on_syn_retransmit`), not
        // another request: counted, it would add to the requests an ARP failure is told by.
        let same = |n: &NeighborObservation| {
            (n.what, n.asker, n.target, &n.summary)
                == (observation.what, observation.asker, observation.target, &observation.summary)
        };
        if self.neighbors.range(..at).rev().take_while(|n| observation.ts.since(n.ts) < COPY_WINDOW).any(same) {
            return;
        }
        let at = match self.neighbors.len() >= MAX_NEIGHBORS {
            // (The oldest goes: what came before the place found moves one down.)
            true => self.neighbors.pop_front().map_or(at, |_| at.saturating_sub(1)),
            false => at,
        };
        self.neighbors.insert(at, observation);
    }

    fn attempt(&mut self, i: usize) -> Option<&mut AttemptState> {
        self.attempts.get_mut(i).and_then(Option::as_mut).map(|a| &mut **a)
    }

    /// The open attempt of `key` (with `key.client` its client), unless its time is up by the
    /// event's clock: then it is finished first, so that what it reports never depends on when the
    /// open attempts were last swept.
    fn open(&mut self, key: &FlowKey) -> Option<usize> {
        self.open_between(key.client, key.server).filter(|&(_, from_client)| from_client).map(|(i, _)| i)
    }

    /// The open attempt between `src` and `dst`, and whether `src` is its client.
    fn open_between(&mut self, src: SocketAddr, dst: SocketAddr) -> Option<(usize, bool)> {
        let (i, from_client) = self.find(src, dst)?;
        self.still_open(i).then_some((i, from_client))
    }

    /// Whether attempt `i`, just found for the event at hand, is still open by its clock; if its
    /// time is up it is finished now.
    fn still_open(&mut self, i: usize) -> bool {
        let expires = self.slot_ends[i].expires;
        debug_assert_eq!(expires, self.slot_times[i].expires, "a slot's two copies of its expiry agree");
        if self.streaming && expires < self.clock {
            self.retire(i, expires, verdict::Cut::CaptureGoesOn);
            return false;
        }
        self.touched = Some(i);
        true
    }

    /// The capture clock for an event at `ts`. A record far ahead of the clock moves it only when
    /// the next record agrees: one garbage timestamp (real captures hold records dated 2262) must
    /// not finish every open attempt, while a real gap in the capture is confirmed at once.
    #[inline(never)]
    fn clock_for(&mut self, ts: Timestamp) -> Timestamp {
        let clock = self.clock_for_peek(ts);
        // A jump not confirmed waits for the next record; anything else clears the candidate.
        let unconfirmed_jump = self.is_jump(ts) && clock == self.now;
        self.jump_candidate = unconfirmed_jump.then_some(ts);
        clock
    }

    /// What [`Correlator::clock_for`] returns for `ts`, without taking it.
    fn clock_for_peek(&self, ts: Timestamp) -> Timestamp {
        match self.jump_candidate {
            _ if !self.is_jump(ts) => ts,
            Some(candidate) if ts.since(candidate).0.abs() <= retire::CLOCK_JUMP.0 => ts,
            _ => self.now,
        }
    }

    /// Whether `ts` lies so far ahead of the clock that the next record must confirm it.
    fn is_jump(&self, ts: Timestamp) -> bool {
        self.now != Timestamp::default() && ts > self.now.plus(retire::CLOCK_JUMP)
    }

    fn on_tcp(&mut self, ts: Timestamp, frame: u64, link: LinkDirection, on_loopback: bool, seg: &TcpSegment) {
        if seg.flags.is_syn_only() {
            let key = FlowKey::from_client(seg.src, seg.dst);
            let previous = self.open(&key);
            match previous {
                Some(i) if self.attempt(i).is_some_and(|a| a.isn == seg.seq) => {
                    self.on_syn_retransmit(i, ts, frame, seg)
                }
                _ => {
                    if let Some(i) = previous {
                        // A new ISN on the 4-tuple: the old attempt can get nothing more (events go
                        // to the newest attempt of a 4-tuple), so it is finished now.
                        if let Some(a) = self.attempt(i) {
                            a.superseded_at.get_or_insert(ts);
                        }
                        if self.streaming {
                            self.retire(i, ts, verdict::Cut::CaptureGoesOn);
                        }
                    }
                    self.open_attempt(key, ts, frame, link, seg);
                }
            }
            return;
        }
        if !seg.flags.has(TcpFlags::RST) && !seg.flags.has(TcpFlags::SYN | TcpFlags::ACK) {
            if seg.flags.0 & (TcpFlags::SYN | TcpFlags::ACK) == 0 {
                self.remember_probe(ts, seg);
            }
            // Only the client's segments can change an attempt, and only while it awaits them
            // (the same lookup as `offer_segment`, so that both take a segment alike).
            let awaiting = self.find_awaiting(End::of(seg.src), End::of(seg.dst));
            if let Some(i) = awaiting.filter(|&i| self.still_open(i)) {
                if let Some(a) = self.attempt(i) {
                    a.on_client_segment(ts, frame, seg);
                }
            }
            return;
        }
        let (from_server, from_client) = match self.open_between(seg.src, seg.dst) {
            Some((i, true)) => (None, Some(i)),
            Some((i, false)) => (Some(i), None),
            None => (None, None),
        };
        if seg.flags.has(TcpFlags::RST) {
            if let Some(a) = from_server.and_then(|i| self.attempt(i)) {
                a.on_server_rst(ts, frame, on_loopback, seg);
            } else if let Some(a) = from_client.and_then(|i| self.attempt(i)) {
                a.on_client_rst(ts, frame, seg);
            } else if seg.flags.has(TcpFlags::ACK) && seg.seq == 0 && !self.answers_probe(ts, seg) {
                // The answer to a SYN at a closed port is <SEQ=0><ACK=ISN+1><CTL=RST,ACK> (RFC 9293
                // 3.10.7.1, tcp_v4_send_reset): it reveals an attempt whose SYN is not in the capture,
                // as when this host's own firewall forges the reset before the SYN reaches the wire.
                let key = FlowKey::from_server(seg.src, seg.dst);
                let i = self.insert(key, seg.ack.wrapping_sub(1), seg.ack, ts, frame);
                if let Some(a) = self.attempt(i) {
                    a.on_server_rst(ts, frame, on_loopback, seg);
                }
            }
        } else if let Some(a) = from_server.and_then(|i| self.attempt(i)) {
            a.on_syn_ack(ts, frame, seg);
        }
    }

    /// Keeps a segment with neither SYN, ACK nor RST (a port scanner's FIN, NULL or Xmas probe; no
    /// TCP sends one otherwise), to tell the reset that refuses it from one that refuses a SYN.
    fn remember_probe(&mut self, ts: Timestamp, seg: &TcpSegment) {
        if self.probes.len() >= MAX_PROBES {
            self.probes.pop_front();
        }
        let fin = u32::from(seg.flags.has(TcpFlags::FIN));
        let reset_ack = seg.seq.wrapping_add(seg.payload_len).wrapping_add(fin);
        self.probes.push_back(Probe { ts, from: End::of(seg.src), to: End::of(seg.dst), reset_ack });
    }

    /// Whether the reset `rst` answers a probe kept by [`Self::remember_probe`]: a closed port
    /// answers a segment without ACK with <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK> (RFC 9293
    /// 3.10.7.1, `tcp_v4_send_reset`), as it answers a SYN.
    fn answers_probe(&self, ts: Timestamp, rst: &TcpSegment) -> bool {
        let (from, to) = (End::of(rst.dst), End::of(rst.src));
        self.probes
            .iter()
            .rev()
            .take_while(|p| ts.since(p.ts) <= PROBE_ANSWERED_WITHIN)
            .any(|p| p.from == from && p.to == to && p.reset_ack == rst.ack)
    }

    fn open_attempt(&mut self, key: FlowKey, ts: Timestamp, frame: u64, link: LinkDirection, seg: &TcpSegment) {
        let note = Note::Opens { isn: seg.seq, data_len: seg.payload_len };
        // A host talking to itself (loopback) is both ends: the link direction says nothing then.
        let same_host = seg.src.ip() == seg.dst.ip() || seg.src.ip().is_loopback();
        let capture_side = match link {
            _ if same_host => None,
            LinkDirection::Outgoing => Some("This capture was taken on the client: the SYN left the capturing host."),
            LinkDirection::ToUs => Some("This capture was taken on the server: the SYN arrived at the capturing host."),
            _ => None,
        };
        let i = self.insert(key, seg.seq, seg.seq.wrapping_add(1).wrapping_add(seg.payload_len), ts, frame);
        self.slot_marks[i] = seg.ip_ident;
        if let Some(a) = self.attempt(i) {
            a.capture_side = capture_side;
            a.push_syn(ts, frame, seg, note);
        }
    }

    /// Opens an attempt as [`AttemptState::new`] describes it, in the memory of a spare if there
    /// is one, and returns its slot; `frame` is the frame that opens it.
    fn insert(&mut self, key: FlowKey, isn: u32, snd_nxt: u32, ts: Timestamp, frame: u64) -> usize {
        let mut state = match self.spares.pop() {
            Some(Spare(mut spare)) => {
                spare.reset(key, isn, snd_nxt, ts);
                spare
            }
            None => Box::new(AttemptState::new(key, isn, snd_nxt, ts)),
        };
        state.opened_frame = frame;
        let ends = SlotEnds::of(&state);
        let times = SlotTimes { expires: ends.expires, opened: state.first_seen() };
        let index = match self.free_slots.pop() {
            Some(free) => {
                self.attempts[free] = Some(state);
                self.slot_times[free] = times;
                self.slot_marks[free] = NO_SYN;
                self.slot_ends[free] = ends;
                free
            }
            None => {
                self.attempts.push(Some(state));
                self.slot_times.push(times);
                self.slot_marks.push(NO_SYN);
                self.slot_ends.push(ends);
                self.attempts.len() - 1
            }
        };
        self.touched = Some(index);
        let slot_ends = &self.slot_ends;
        let (client, server, awaits) = (ends.client, ends.server, ends.awaits_client_segments);
        self.current
            .insert(ends_hash(client, server), index, awaits, |i| i != index && slot_ends[i].joins(client, server));
        // The next event sweeps first, and makes room (see `crowd_out`).
        if self.max_open.is_some_and(|most| self.open_attempts() >= most) {
            self.next_sweep = Timestamp(i64::MIN);
        }
        index
    }

    /// A SYN with the ISN of attempt `i`: a retransmit, or a copy of the last one. A capture holds
    /// copies when it saw the same packet twice (or more): `-i any` on a host with a bridge, a
    /// bond or a VLAN, two interfaces merged, a mirror port. A copy has the same IP identification
    /// or flow label (each retransmit gets a new one from Linux: `ip_select_ident`,
    /// `sk_rethink_txhash`), the same TCP header (the timestamp option moves by the millisecond)
    /// and comes within [`COPY_WINDOW`], well before even the quickest retransmit
    /// (`TCP_TIMEOUT_MIN`, 2 ms). Counted as a retransmit, it made a refused attempt read "it took
    /// 2 SYNs" and a timeout's backoff fit nothing; it is left out, and counted, as are copies of
    /// the answer that decided the attempt (`AttemptState::push_late`), which read as the server
    /// retransmitting its SYN-ACK.
    fn on_syn_retransmit(&mut self, i: usize, ts: Timestamp, frame: u64, seg: &TcpSegment) {
        let same_mark = self.slot_marks[i] == seg.ip_ident;
        self.slot_marks[i] = seg.ip_ident;
        let Some(a) = self.attempt(i) else { return };
        if same_mark && a.is_copy_of_last_syn(ts, seg) {
            a.copies = a.copies.saturating_add(1);
            return;
        }
        let number = a.syn_times.len();
        let previous = a.syn_times.last().copied().unwrap_or(ts);
        // The expected backoff is added at the end, once every SYN is known (see verdict::annotate_retransmits).
        let mut note = Note::Retransmit { number, gap: ts.since(previous) };
        // tcp_rcv_synsent_state_process: on an unacceptable ACK with no retransmit yet, Linux re-arms
        // the timer at TCP_TIMEOUT_MIN ("previous FIN/ACK or RST/ACK might be ignored").
        let after_bad_ack = a.unacceptable_ack_at.is_some_and(|at| at >= previous);
        if number == 1 && after_bad_ack && ts.since(previous) < Span::from_millis(250) {
            a.quick_retransmits += 1;
            note = Note::from(format!(
                "retransmit #{number}, +{}: Linux resends at once (TCP_TIMEOUT_MIN) after an unacceptable ACK, in case its reply was lost (tcp_rcv_synsent_state_process); the rest of the schedule starts from here",
                ts.since(previous)
            ));
        }
        match a.verdict.as_ref().map(|v| &v.decision) {
            None => {}
            Some(Decision::Refused { .. }) => note.push_str(
                "; sent after the RST: Linux would not retransmit (tcp_reset ends the attempt), this client retries on its own, as Windows does",
            ),
            Some(Decision::Established { via_ack: false }) if !a.handshake_acked => {
                // A TCP that had seen the SYN-ACK would have ACKed it and stopped retransmitting.
                a.demote_unseen_syn_ack();
            }
            Some(Decision::Established { .. }) => note.push_str("; a duplicate of the SYN after the handshake"),
            Some(Decision::Icmp { .. }) => a.demote_icmp_to_soft_error(),
        }
        a.push_syn(ts, frame, seg, note);
    }

    fn on_icmp(&mut self, ts: Timestamp, frame: u64, icmp: &IcmpError) {
        if let Some(cut) = icmp.cut_quote {
            self.offer_cut_icmp(ts, frame, icmp, cut);
            return;
        }
        let Some(quoted) = &icmp.quoted else { return };
        let Some(tcp) = quoted.tcp else { return };
        let key =
            FlowKey::from_client(SocketAddr::new(quoted.src, tcp.src_port), SocketAddr::new(quoted.dst, tcp.dst_port));
        let i = match (self.open(&key), tcp.seq) {
            (Some(i), _) => i,
            // The quoted SYN is not in the capture (ARP failed, or capture started late): the ICMP
            // alone reveals the attempt. A quote of a non-SYN segment belongs to a connection, not
            // an attempt. (Nor does a quote the capture cut before the ISN: it is not known.)
            (None, Some(seq)) if tcp.flags.is_none_or(TcpFlags::is_syn_only) => {
                self.insert(key, seq, seq.wrapping_add(1), ts, frame)
            }
            (None, _) => return,
        };
        if let Some(a) = self.attempt(i) {
            a.on_icmp(ts, frame, icmp, tcp.seq);
        }
    }

    /// An ICMP error the capture cut before its quoted ports cannot be matched as Linux matches it,
    /// by the quoted 4-tuple (`tcp_v4_err`/`tcp_v6_err`). It is offered to every open attempt it
    /// may be for: from the client it was sent to (an error goes to the source of the packet it
    /// quotes: RFC 792, RFC 4443 2.4), to a server that the captured bytes of the quoted
    /// destination admit, with a SYN of the quoted IP identification or flow label, if that was
    /// captured. Each keeps it until it is finished, when it decides only an attempt that nothing
    /// else answered (`AttemptState::settle_cut_icmps`). The attempts are found by the quoted mark
    /// in `slot_marks`; every one is looked at only when the capture cut the mark too.
    #[cold]
    fn offer_cut_icmp(&mut self, ts: Timestamp, frame: u64, icmp: &IcmpError, cut: CutQuote) {
        if !cut.src.admits(icmp.dst) {
            return;
        }
        // The slots of the mark quoted, or all of them. (The marks are compared 16 at a time
        // without a branch each, which the compiler does with SIMD compares; a hit is rare.)
        const AT_ONCE: usize = 16;
        let marked: Vec<usize> = match cut.ident {
            Some(ident) => self
                .slot_marks
                .chunks(AT_ONCE)
                .enumerate()
                .filter(|(_, marks)| marks.iter().fold(false, |any, &mark| any | (mark == ident)))
                .flat_map(|(n, marks)| {
                    marks.iter().enumerate().filter(move |&(_, &mark)| mark == ident).map(move |(k, _)| n * AT_ONCE + k)
                })
                .collect(),
            None => (0..self.attempts.len()).collect(),
        };
        for i in marked {
            let (Some(Some(a)), Some(ends)) = (self.attempts.get(i), self.slot_ends.get(i)) else { continue };
            let may_be_its = ends.client.ip() == icmp.dst && cut.dst.admits(ends.server.ip());
            // (An attempt whose time is up by this clock finishes without it, as `open` finishes it.)
            if !may_be_its || (self.streaming && ends.expires < self.clock) || a.verdict.is_some() {
                continue;
            }
            self.slot_ends[i].offered_cut_icmps = true;
            let offered = self.cut_icmps.entry(i).or_default();
            if offered.len() == MAX_CUT_ICMPS {
                offered.remove(0);
            }
            offered.push(CutIcmp { ts, frame, error: Box::new(icmp.clone()) });
        }
    }

    /// Finishes attempt `i`: attaches its neighbour observations, decides its verdict with the
    /// evidence up to `horizon` (the capture's end, or earlier: see `cut`), and queues it. An attempt
    /// whose time is up is finished with its expiry as horizon, not the time the clock passed it:
    /// that depends on which records moved the clock, and a replay skips most without looking.
    fn retire(&mut self, i: usize, horizon: Timestamp, cut: verdict::Cut) {
        let Some(mut a) = self.attempts.get_mut(i).and_then(Option::take) else { return };
        self.slot_times[i] = FREE_SLOT;
        self.free_slots.push(i);
        self.current.remove(self.slot_ends[i].hash(), i);
        if self.slot_ends[i].offered_cut_icmps {
            if let Some(offered) = self.cut_icmps.remove(&i) {
                a.settle_cut_icmps(offered);
            }
        }
        a.attach_neighbors(&self.neighbors);
        let horizon = verdict::Horizon { at: horizon, cut };
        self.finished.push(Finished { state: a, horizon, timing: self.timing, by_sweep: false });
    }

    /// Finishes every open attempt whose time is up, and forgets neighbour observations no open
    /// attempt can use any more. Runs every `retire::SWEEP_INTERVAL` of capture time.
    #[inline(never)]
    fn sweep(&mut self) {
        let now = self.now;
        let first_new = self.finished.len();
        let mut oldest_open = now;
        let mut expired = std::mem::take(&mut self.expired);
        expired.clear();
        // The oldest open attempt only says which neighbour observations to forget: with none
        // (a capture without ARP or ND, as most taken beyond the first router are) it is not sought.
        let seek_oldest = !self.neighbors.is_empty();
        for (i, times) in self.slot_times.iter().enumerate() {
            if times.expires < now {
                expired.push((times.opened, 0, i));
            } else if seek_oldest {
                oldest_open = oldest_open.min(times.opened);
            }
        }
        let still_open = self.open_attempts() - expired.len();
        if let Some(most) = self.max_open.filter(|&most| still_open >= most) {
            self.crowd_out(still_open - (most - most / 8), &mut expired);
        }
        // Most expired attempts were last touched seconds of capture ago and sit in no cache. A
        // pass of independent reads brings in what `retire` reads of each, the misses overlapping;
        // retiring them one by one would wait for every miss alone. It also reads each one's
        // opening frame, so that they are ordered by their keys alone, not by reaching into every
        // attempt at every comparison.
        let mut warm = 0u64;
        for (_, frame, i) in &mut expired {
            warm ^= u64::from(self.slot_ends[*i].awaits_client_segments);
            if let Some(a) = self.attempts[*i].as_deref() {
                warm ^= u64::from(a.late_not_shown) ^ a.syn_times.len() as u64 ^ u64::from(a.key.client.port());
                warm ^= a.entries.iter().fold(0, |w, e| w ^ e.ts.0 as u64);
                warm ^= a.verdict.as_ref().map_or(0, |v| v.ts.0 as u64);
                *frame = a.opened_frame;
            }
        }
        std::hint::black_box(warm);
        // Attempts that finish together come out by start and opening frame (no two share both).
        let mut order = std::mem::take(&mut self.retiring_order);
        retire::retiring_order(&expired, &mut order);
        for &at in &order {
            let i = expired[at as usize].2;
            let expires = self.slot_times[i].expires;
            if expires < now {
                self.retire(i, expires, verdict::Cut::CaptureGoesOn);
                continue;
            }
            self.finished_early += 1;
            let attempt = self.attempts[i].as_deref();
            self.finished_early_awaiting_ack += u64::from(attempt.is_some_and(retire::awaits_only_the_ack));
            if attempt.is_some_and(retire::settled) {
                // Its outcome stands: only late evidence (a duplicate SYN-ACK or RST) is not shown.
                self.retire(i, now, verdict::Cut::CaptureGoesOn);
            } else {
                self.retire(i, now, verdict::Cut::Crowded);
            }
        }
        self.expired = expired;
        self.retiring_order = order;
        let keep_from = retire::neighbors_needed_from(oldest_open);
        while self.neighbors.front().is_some_and(|n| n.ts < keep_from) {
            self.neighbors.pop_front();
        }
        for finished in &mut self.finished[first_new..] {
            finished.by_sweep = true;
        }
        self.next_sweep = now.plus(retire::SWEEP_INTERVAL);
    }

    /// Adds to `expired` the `count` attempts not in it yet whose time would be up soonest, to
    /// finish early: more are open than [`Correlator::with_max_open`] allows. Settled attempts
    /// waiting out their late window go first (only late evidence is lost), then the oldest
    /// undecided ones, such as the SYNs of a flood. (The neighbour observations they could use are
    /// kept a sweep longer: the oldest open attempt was taken before.)
    #[cold]
    fn crowd_out(&self, count: usize, expired: &mut Vec<(Timestamp, u64, usize)>) {
        let now = self.now;
        let mut open: Vec<(Timestamp, usize)> = (self.slot_times.iter().enumerate())
            .filter(|(_, times)| times.expires >= now && times.expires != FREE_SLOT.expires)
            .map(|(i, times)| (times.expires, i))
            .collect();
        if count < open.len() {
            open.select_nth_unstable(count);
            open.truncate(count);
        }
        expired.extend(open.into_iter().map(|(_, i)| (self.slot_times[i].opened, 0, i)));
    }

    /// Ends correlation at `capture_end` and returns every attempt not taken yet, in order of start.
    pub fn finish(mut self, capture_end: Timestamp) -> Vec<Attempt> {
        let (syscalls, kernel, capture, timing) =
            (std::mem::take(&mut self.syscalls), std::mem::take(&mut self.kernel), self.capture, self.timing);
        let mut out: Vec<Attempt> = self.close(capture_end).into_iter().map(Finished::report).collect();
        live::attach_live_evidence(&mut out, &syscalls, &kernel, capture, &timing);
        out.sort_by_key(|a| a.start);
        out
    }

    /// Ends correlation at `capture_end` and returns every attempt not taken yet, not yet worded
    /// (a replay words them on another thread). Live evidence is not merged: see [`Correlator::finish`].
    pub fn close(mut self, capture_end: Timestamp) -> Vec<Finished> {
        for i in 0..self.attempts.len() {
            self.retire(i, capture_end, verdict::Cut::CaptureEnded);
        }
        let mut out = std::mem::take(&mut self.finished);
        out.sort_by_key(|f| (f.start(), f.opened_frame()));
        out
    }
}

/// How the timeline names an ICMP error.
fn icmp_what(icmp: &IcmpError) -> What {
    match icmp.kind {
        IcmpErrorKind::DestinationUnreachable => What::IcmpUnreachable,
        IcmpErrorKind::TimeExceeded => What::IcmpTimeExceeded,
        IcmpErrorKind::ParameterProblem => What::IcmpParameterProblem,
        IcmpErrorKind::PacketTooBig => What::IcmpPacketTooBig,
        IcmpErrorKind::SourceQuench | IcmpErrorKind::Redirect => What::IcmpOther,
    }
}

/// What an ICMP error quoting an attempt's SYN does to it in Linux (`icmp_err_convert`, `icmpv6_err_convert`).
fn icmp_effect(icmp: &IcmpError) -> IcmpEffect {
    match icmp.family {
        Family::Ipv4 => icmpv4_effect(icmp.icmp_type, icmp.code),
        Family::Ipv6 => icmpv6_effect(icmp.icmp_type, icmp.code),
    }
}

/// Whether `seq` lies in `[low, high]` in sequence space (RFC 9293 3.4; the kernel's `between()`).
fn seq_between(seq: u32, low: u32, high: u32) -> bool {
    high.wrapping_sub(low) >= seq.wrapping_sub(low)
}

/// Whether an ACK acknowledges our SYN: `ack` in `(ISN, snd_nxt]`, the test of
/// `tcp_rcv_synsent_state_process` (`!after(ack, snd_una) || after(ack, snd_nxt)` rejects).
fn acks_syn(ack: u32, isn: u32, snd_nxt: u32) -> bool {
    ack != isn && seq_between(ack, isn, snd_nxt)
}

impl AttemptState {
    fn new(key: FlowKey, isn: u32, snd_nxt: u32, ts: Timestamp) -> AttemptState {
        AttemptState {
            key,
            isn,
            snd_nxt,
            syn_times: SmallVec::new(),
            entries: SmallVec::new(),
            opened_at: ts,
            opened_frame: 0,
            last_seen: ts,
            verdict: None,
            soft_error: None,
            server_isn: None,
            handshake_acked: false,
            superseded_at: None,
            late_not_shown: 0,
            entries_not_kept: 0,
            syns_not_kept: 0,
            ignored_not_kept: 0,
            capture_side: None,
            syn_ttl: None,
            resolving: Vec::new(),
            synack_unseen_by_client: false,
            quick_retransmits: 0,
            copies: 0,
            unacceptable_ack_at: None,
        }
    }

    /// Makes a worded attempt's memory a new attempt, as [`AttemptState::new`] builds it. Buffers
    /// its timeline or SYN times spilled to are freed, not kept: a pool of states that each keep
    /// the largest timeline they ever held grows (by 5 MiB in a replay of 1 GB with two readers),
    /// and only a few attempts spill.
    fn reset(&mut self, key: FlowKey, isn: u32, snd_nxt: u32, ts: Timestamp) {
        *self = AttemptState::new(key, isn, snd_nxt, ts);
    }

    /// When the first evidence of the attempt came.
    fn first_seen(&self) -> Timestamp {
        self.opened_at
    }

    /// SYNs sent: those whose times are kept, and those beyond [`MAX_SYNS_KEPT`].
    fn syn_count(&self) -> usize {
        self.syn_times.len() + self.syns_not_kept as usize
    }

    /// Records a SYN sent at `ts`, a retransmit unless it is the first, with its timeline entry.
    /// Past [`MAX_SYNS_KEPT`] only the count and the last SYN's time move.
    #[inline(always)]
    fn push_syn(&mut self, ts: Timestamp, frame: u64, seg: &TcpSegment, note: Note) {
        self.syn_ttl = Some(seg.ttl);
        if self.syn_times.len() < MAX_SYNS_KEPT {
            self.syn_times.push(ts);
            self.push(ts, frame, Dir::Out, What::Syn, Wire::tcp(seg), Some(note), false);
            return;
        }
        if let Some(last) = self.syn_times.last_mut() {
            *last = ts;
        }
        self.syns_not_kept = self.syns_not_kept.saturating_add(1);
        self.not_kept(ts, false);
    }

    /// Whether a SYN at `ts` is a copy of the last SYN: the same TCP header, within [`COPY_WINDOW`]
    /// of it (its IP mark is the caller's to compare).
    fn is_copy_of_last_syn(&self, ts: Timestamp, seg: &TcpSegment) -> bool {
        let Some(&last) = self.syn_times.last() else { return false };
        let soon = ts >= last && ts.since(last) < COPY_WINDOW;
        soon && self.entries.iter().rev().find(|e| e.what == What::Syn).is_some_and(|e| match &e.wire {
            Wire::Tcp(words) => *words == describe::TcpWords::of(seg),
            _ => false,
        })
    }

    /// Records a packet that decides nothing, unless the timeline holds [`MAX_ENTRIES`] already:
    /// then it is only counted.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn push(&mut self, ts: Timestamp, frame: u64, dir: Dir, what: What, wire: Wire, note: Option<Note>, ignored: bool) {
        if self.entries.len() < MAX_ENTRIES {
            self.push_deciding(ts, frame, dir, what, wire, note, ignored);
        } else {
            self.not_kept(ts, ignored);
        }
    }

    /// Counts a packet the timeline has no room for, and whether Linux ignores it.
    #[cold]
    fn not_kept(&mut self, ts: Timestamp, ignored: bool) {
        self.entries_not_kept = self.entries_not_kept.saturating_add(1);
        self.ignored_not_kept = self.ignored_not_kept.saturating_add(u32::from(ignored));
        self.last_seen = self.last_seen.max(ts);
    }

    /// Records the packet a verdict rests on, whatever the timeline holds, and returns its entry.
    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn push_deciding(
        &mut self,
        ts: Timestamp,
        frame: u64,
        dir: Dir,
        what: What,
        wire: Wire,
        note: Option<Note>,
        ignored: bool,
    ) -> usize {
        self.last_seen = self.last_seen.max(ts);
        self.entries.push(Step { ts, frame, dir, what, wire, note, ignored });
        self.entries.len() - 1
    }

    /// Records a packet that arrived after the verdict, up to a bound; a copy of the packet that
    /// decided the attempt (the same words within [`COPY_WINDOW`] of it: the capture saw it twice,
    /// see `Correlator::on_syn_retransmit`) is only counted.
    fn push_late(&mut self, ts: Timestamp, frame: u64, dir: Dir, what: What, wire: Wire, note: Note) {
        if let Some(v) = &self.verdict {
            let copy =
                ts >= v.ts && ts.since(v.ts) < COPY_WINDOW && self.entries.get(v.entry).is_some_and(|e| e.wire == wire);
            if copy {
                self.copies = self.copies.saturating_add(1);
                return;
            }
        }
        let late = self.verdict.as_ref().map_or(0, |v| self.entries.len().saturating_sub(v.entry + 1));
        if late < MAX_LATE_ENTRIES {
            self.push(ts, frame, dir, what, wire, Some(note), false);
        } else {
            self.late_not_shown = self.late_not_shown.saturating_add(1);
        }
    }

    fn decide(&mut self, ts: Timestamp, decision: Decision, entry: usize) {
        self.verdict = Some(Verdict { ts, decision, entry });
    }

    fn on_server_rst(&mut self, ts: Timestamp, frame: u64, on_loopback: bool, seg: &TcpSegment) {
        let summary = Wire::tcp(seg);
        match &self.verdict {
            None => {
                if !seg.flags.has(TcpFlags::ACK) {
                    let note = "ignored: a RST without ACK does not reset a connect in SYN-SENT (tcp_rcv_synsent_state_process; RFC 9293 3.10.7.3)";
                    self.push(ts, frame, Dir::In, What::Rst, summary, Some(note.into()), true);
                } else if !acks_syn(seg.ack, self.isn, self.snd_nxt) {
                    let note = format!(
                        "ignored: ack {} does not acknowledge our SYN (expected {}); Linux drops it (tcp_rcv_synsent_state_process)",
                        seg.ack,
                        self.isn.wrapping_add(1)
                    );
                    self.unacceptable_ack_at = Some(ts);
                    self.push(ts, frame, Dir::In, What::Rst, summary, Some(note.into()), true);
                } else {
                    let note = "acknowledges our SYN (ack = ISN+1): connection refused";
                    let loopback = on_loopback && !self.key.server.ip().is_loopback();
                    let dir = if loopback { Dir::Local } else { Dir::In };
                    let entry = self.push_deciding(ts, frame, dir, What::Rst, summary, Some(note.into()), false);
                    self.decide(ts, Decision::Refused { loopback }, entry);
                }
            }
            Some(v) => {
                let note = match v.decision {
                    Decision::Established { .. } => {
                        "reset after the handshake: later reads and writes fail with ECONNRESET"
                    }
                    _ => "arrives after the attempt was decided",
                };
                self.push_late(ts, frame, Dir::In, What::Rst, summary, note.into());
            }
        }
    }

    fn on_client_rst(&mut self, ts: Timestamp, frame: u64, seg: &TcpSegment) {
        let note = match &self.verdict {
            None => "the client resets: it answers an unacceptable segment, or the socket was closed",
            Some(Verdict { decision: Decision::Established { .. }, .. }) => "the client reset the connection",
            Some(_) => "the client's kernel answers a segment for a connection that no longer exists",
        };
        self.push_late(ts, frame, Dir::Out, What::Rst, Wire::tcp(seg), note.into());
    }

    fn on_syn_ack(&mut self, ts: Timestamp, frame: u64, seg: &TcpSegment) {
        let summary = Wire::tcp(seg);
        match &self.verdict {
            None if self.synack_unseen_by_client && acks_syn(seg.ack, self.isn, self.snd_nxt) => {
                let note = "acknowledges our SYN, but like the earlier ones the client does not acknowledge it: it does not reach the client's TCP";
                self.push(ts, frame, Dir::In, What::SynAck, summary, Some(note.into()), false);
            }
            None if acks_syn(seg.ack, self.isn, self.snd_nxt) => {
                self.server_isn = Some(seg.seq);
                let note = "acknowledges our SYN (ack = ISN+1): connect() returns 0";
                let entry = self.push_deciding(ts, frame, Dir::In, What::SynAck, summary, Some(note.into()), false);
                self.decide(ts, Decision::Established { via_ack: false }, entry);
            }
            None => {
                let note = format!(
                    "ignored: ack {} does not acknowledge our SYN (expected {}); Linux answers with a RST and keeps waiting (tcp_rcv_synsent_state_process)",
                    seg.ack,
                    self.isn.wrapping_add(1)
                );
                self.unacceptable_ack_at = Some(ts);
                self.push(ts, frame, Dir::In, What::SynAck, summary, Some(note.into()), true);
            }
            Some(v) => {
                let note = match v.decision {
                    Decision::Established { .. } => {
                        "SYN-ACK again: the server retransmitted it (it has not seen our ACK)"
                    }
                    _ => "arrives after the attempt failed; the client's kernel answers it with a RST",
                };
                self.push_late(ts, frame, Dir::In, What::SynAck, summary, note.into());
            }
        }
    }

    fn on_client_segment(&mut self, ts: Timestamp, frame: u64, seg: &TcpSegment) {
        let is_ack = seg.flags.has(TcpFlags::ACK);
        match (&self.verdict, self.server_isn) {
            (Some(Verdict { decision: Decision::Established { .. }, .. }), Some(server_isn))
                if !self.handshake_acked && is_ack && seg.ack == server_isn.wrapping_add(1) =>
            {
                self.handshake_acked = true;
                let note = "completes the three-way handshake";
                self.push(ts, frame, Dir::Out, What::Ack, Wire::tcp(seg), Some(note.into()), false);
            }
            (None, _) if is_ack && seg.seq == self.snd_nxt => {
                // The client only sends this after a SYN-ACK it accepted: the capture missed that SYN-ACK.
                self.handshake_acked = true;
                let note = format!(
                    "acknowledges a SYN-ACK (server ISN {}) that the capture does not hold",
                    seg.ack.wrapping_sub(1)
                );
                let entry =
                    self.push_deciding(ts, frame, Dir::Out, What::Ack, Wire::tcp(seg), Some(note.into()), false);
                self.decide(ts, Decision::Established { via_ack: true }, entry);
            }
            (None, _) if seg.flags.has(TcpFlags::FIN) => {
                let note = "the client closes before any answer";
                self.push(ts, frame, Dir::Out, What::Fin, Wire::tcp(seg), Some(note.into()), false);
            }
            // Anything else belongs to the connection, not to its attempt: not shown.
            _ => {}
        }
    }

    /// An ICMP error that quotes the attempt's 4-tuple and, unless the capture cut it there,
    /// `quoted_seq`.
    fn on_icmp(&mut self, ts: Timestamp, frame: u64, icmp: &IcmpError, quoted_seq: Option<u32>) {
        let dir = if icmp.src == self.key.client.ip() { Dir::Local } else { Dir::In };
        let what = icmp_what(icmp);
        let summary = Wire::Icmp(Box::new(icmp.clone()));
        if let Some(v) = &self.verdict {
            let note = match v.decision {
                Decision::Established { .. } => {
                    "arrives after connect() succeeded; the established connection treats it as a soft error"
                }
                _ => "arrives after the attempt was decided",
            };
            self.push_late(ts, frame, dir, what, summary, note.into());
            return;
        }
        // tcp_v4_err/tcp_v6_err: an ICMP whose quoted sequence number is not in [snd_una, snd_nxt]
        // is dropped and counted in OutOfWindowIcmps.
        let quotes = match quoted_seq {
            Some(seq) if !seq_between(seq, self.isn, self.snd_nxt) => {
                let note = format!(
                    "ignored: quotes seq {seq}, not our SYN's {}; Linux drops it (tcp_v4_err, OutOfWindowIcmps)",
                    self.isn
                );
                self.push(ts, frame, dir, what, summary, Some(note.into()), true);
                return;
            }
            Some(_) => "quotes our SYN",
            None => {
                "quotes our 4-tuple, cut by the capture before the sequence number Linux checks, so taken as our SYN's"
            }
        };
        match icmp_effect(icmp) {
            IcmpEffect::Fatal(errno) => {
                let note = format!("{quotes}: a hard error, {errno}");
                let entry = self.push_deciding(ts, frame, dir, what, summary, Some(note.into()), false);
                let error = match &self.entries[entry].wire {
                    Wire::Icmp(error) => error.clone(),
                    _ => Box::new(icmp.clone()),
                };
                self.decide(ts, Decision::Icmp { errno, error }, entry);
            }
            IcmpEffect::PathMtu => {
                let note = match icmp.mtu {
                    Some(mtu) => format!("{quotes}: only lowers the path MTU to {mtu}; the attempt goes on"),
                    None => format!("{quotes}: only lowers the path MTU; the attempt goes on"),
                };
                self.push(ts, frame, dir, what, summary, Some(note.into()), false);
            }
            IcmpEffect::Ignored => {
                let note = "ignored: TCP does not act on this ICMP type (tcp_v4_err)";
                self.push(ts, frame, dir, what, summary, Some(note.into()), true);
            }
        }
    }

    /// Takes the ICMP errors offered to the attempt by `Correlator::offer_cut_icmp` into its
    /// timeline, as it is finished. If nothing else decided it, the first error after its last
    /// SYN of a kind Linux aborts a connect at decides it, as an error quoting the SYN would: no
    /// SYN followed it, and nothing else came back. That is the likeliest reading, not a match
    /// Linux made, and the finding `icmp_quote_cut` says so. An attempt decided otherwise drops
    /// them: they were another attempt's, or changed nothing.
    fn settle_cut_icmps(&mut self, offered: Vec<CutIcmp>) {
        if self.verdict.is_some() || self.soft_error.is_some() {
            return;
        }
        // (Past MAX_SYNS_KEPT only the last SYN's time is kept, which is the one that counts here.)
        let last_syn = self.syn_times.last().copied();
        for cut in offered {
            let dir = if cut.error.src == self.key.client.ip() { Dir::Local } else { Dir::In };
            let what = icmp_what(&cut.error);
            let summary = Wire::Icmp(cut.error.clone());
            let resent_after = last_syn.is_some_and(|syn| syn > cut.ts);
            let note: &'static str = match icmp_effect(&cut.error) {
                _ if self.verdict.is_some() => "cut by the capture before the quoted ports; arrives after the attempt was decided",
                _ if resent_after => "cut by the capture before the quoted ports, so it may be another attempt's; the SYN was sent again after it, so it did not end this one",
                IcmpEffect::Fatal(errno) => {
                    let note = format!("cut by the capture before the quoted ports; taken as quoting our SYN, the last one sent, as nothing else answered it: a hard error, {errno}");
                    let entry = self.push_deciding(cut.ts, cut.frame, dir, what, summary, Some(note.into()), false);
                    self.decide(cut.ts, Decision::Icmp { errno, error: cut.error }, entry);
                    continue;
                }
                _ => "cut by the capture before the quoted ports; of a kind that does not end a connect",
            };
            // (Not `ignored`: that says Linux dropped it, and it may never have been this attempt's.)
            self.push(cut.ts, cut.frame, dir, what, summary, Some(Note::from(note)), false);
        }
    }

    /// An acceptable SYN-ACK was followed by a retransmit of the same SYN and no ACK: the client's TCP
    /// never saw it (dropped on input, between the capture point and TCP).
    fn demote_unseen_syn_ack(&mut self) {
        let Some(verdict) = self.verdict.take() else { return };
        self.synack_unseen_by_client = true;
        self.server_isn = None;
        if let Some(entry) = self.entries.get_mut(verdict.entry) {
            entry.note = Some(
                "acknowledges our SYN, but the client retransmitted its SYN after it instead of acknowledging: this SYN-ACK never reached its TCP".into(),
            );
        }
    }

    /// A fatal ICMP was followed by a retransmit of the same SYN: the kernel did not abort, so it only
    /// remembered the error. This happens when the ICMP arrives while the socket is owned by the user
    /// (`tcp_v4_err`: `sock_owned_by_user` → `sk->sk_err_soft`, counter `LockDroppedIcmps`).
    fn demote_icmp_to_soft_error(&mut self) {
        let Some(verdict) = self.verdict.take() else { return };
        if let Decision::Icmp { errno, error } = verdict.decision {
            if let Some(entry) = self.entries.get_mut(verdict.entry) {
                entry.note = Some(Note::from(format!(
                    "quotes our SYN, but the SYN was retransmitted after it: the socket was owned by the user when it arrived, so Linux only remembered {errno} (sk_err_soft, LockDroppedIcmps)"
                )));
            }
            self.soft_error = Some(SoftError { errno, error });
        }
    }

    fn attach_neighbors(&mut self, neighbors: &VecDeque<NeighborObservation>) {
        let Some(first) = self.entries.iter().map(|e| e.ts).min() else { return };
        let last =
            self.verdict.as_ref().map_or_else(|| self.entries.iter().map(|e| e.ts).max().unwrap_or(first), |v| v.ts);
        // Linux sends up to ucast_solicit + mcast_solicit (3 by default) requests 1 s apart before it
        // gives up (neigh_timer_handler): look back a little further than that from the first evidence.
        let from = first.plus(Span(-Span::from_millis(3_500).0));
        let start = neighbors.partition_point(|n| n.ts < from);
        // (Most captures resolve nothing near most attempts: looking through nothing took 1% of
        // a replay's reading instructions, 630.9 M against 624.3 M per 100,000 attempts.)
        if start == neighbors.len() {
            return;
        }
        let no_syn = self.syn_times.is_empty();
        let client = self.key.client.ip();
        let server = self.key.server.ip();
        // The next hop the first SYN waited for (a gateway, usually): the one whose answer came
        // just before it left (see `SENT_ON_ANSWER`).
        let first_syn = self.syn_times.first().copied();
        let waited_for = first_syn.and_then(|syn| {
            neighbors
                .range(start..)
                .take_while(|n| n.ts <= syn)
                .filter(|n| matches!(n.what, What::ArpReply | What::Na) && syn.since(n.ts) <= SENT_ON_ANSWER)
                .last()
                .map(|n| n.target)
        });
        // A resolution answered before the one the first SYN could have waited for began belongs
        // to an earlier connection: once answered, the entry stays usable for seconds to minutes
        // (REACHABLE for base_reachable_time, then STALE, which still sends), so a later
        // resolution of the same address starts afresh. Each next hop the attempt may show keeps
        // only what came after its last earlier answer.
        let earlier_answer = |target: IpAddr| -> Option<Timestamp> {
            let syn = first_syn?;
            let before = || neighbors.range(start..).take_while(|n| n.ts <= syn).filter(|n| n.target == target);
            let is_answer = |n: &&NeighborObservation| matches!(n.what, What::ArpReply | What::Na);
            if waited_for != Some(target) {
                // The SYN did not wait for it: whatever was answered before the SYN was resolved
                // already.
                return before().filter(is_answer).last().map(|n| n.ts);
            }
            // The SYN waited for it: the resolution that released it began with the requests after
            // the answer before them (one request may draw several answers).
            let released_by = before().filter(is_answer).last()?.ts;
            let asked = before()
                .filter(|n| matches!(n.what, What::ArpRequest | What::Ns) && n.asker == Some(client))
                .filter(|n| n.ts <= released_by)
                .last()
                .map_or(released_by, |n| n.ts);
            before().filter(is_answer).filter(|n| n.ts < asked).last().map(|n| n.ts)
        };
        let server_answered = earlier_answer(server);
        let next_hop_answered = waited_for.filter(|&hop| hop != server).and_then(earlier_answer);
        // With no SYN on the wire a resolution failed, and a next hop that answered is not the one
        // the kernel gave up on (an answered entry sends at once): it was resolved for another
        // connection, as a gateway is.
        let mut answered = Vec::new();
        if no_syn {
            let window = neighbors.range(start..).take_while(|n| n.ts <= last);
            answered.extend(window.filter(|n| matches!(n.what, What::ArpReply | What::Na)).map(|n| n.target));
            answered.sort_unstable();
            answered.dedup();
        }
        let mut resolved = std::mem::take(&mut self.resolving);
        for n in neighbors.range(start..).take_while(|n| n.ts <= last) {
            let earlier = if n.target == server { server_answered } else { next_hop_answered };
            if earlier.is_some_and(|answered| n.ts <= answered) || answered.binary_search(&n.target).is_ok() {
                continue;
            }
            let asked_by_client = n.asker == Some(client);
            let for_server = n.target == server;
            // (`waited_for` is only ever found before a first SYN.)
            let waited_for_this = waited_for == Some(n.target) && first_syn.is_some_and(|syn| n.ts <= syn);
            // With no SYN on the wire the next hop may be a gateway, so any request from the client's
            // address counts; otherwise the resolution of the server itself (an on-link server), or
            // of the next hop the first SYN waited for, up to that SYN.
            let relevant = match n.what {
                What::ArpRequest | What::Ns => for_server || (asked_by_client && (no_syn || waited_for_this)),
                _ => for_server || (resolved.contains(&n.target) && (no_syn || waited_for_this)),
            };
            if relevant {
                if matches!(n.what, What::ArpRequest | What::Ns) && !resolved.contains(&n.target) {
                    resolved.push(n.target);
                }
                let dir = if matches!(n.what, What::ArpRequest | What::Ns) { Dir::Out } else { Dir::In };
                let note = match n.what {
                    What::ArpRequest | What::Ns => format!("resolving {} before the SYN can be sent", n.target),
                    _ => format!("{} answers", n.target),
                };
                self.entries.push(Step {
                    ts: n.ts,
                    frame: n.frame,
                    dir,
                    what: n.what,
                    wire: Wire::Text(n.summary.clone()),
                    note: Some(note.into()),
                    ignored: false,
                });
            }
        }
        self.resolving = resolved;
    }
}

#[cfg(test)]
mod tests;

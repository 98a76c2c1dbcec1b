//! The correlator: turns time-stamped events into connection attempts, each with an annotated timeline
//! and the errno a Linux client saw, by the inference rules of DESIGN.md.
//!
//! An attempt starts at a client SYN (SYN without ACK) with a new initial sequence number (ISN) on a
//! 4-tuple, or is discovered from an ICMP error quoting such a SYN. Answers are accepted or ignored the
//! way `tcp_rcv_synsent_state_process` and `tcp_v4_err`/`tcp_v6_err` do. The same code serves live
//! traces and replays; it never reads a clock: every event carries its own timestamp.

mod describe;
mod live;
mod verdict;

pub use live::{syscall_verdict, SyscallVerdict};

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};

use crate::decode::{
    ArpOp, IcmpError, IcmpErrorKind, LinkDirection, NeighborOp, Packet, PacketBody, TcpFlags, TcpSegment,
};
use crate::event::{Event, EventKind, KernelObservation, Span, SyscallEvent, Timestamp};
use crate::flow::{Dir, Family, FlowKey};
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
    Icmp { errno: Errno, error: IcmpError },
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
    error: IcmpError,
}

/// One attempt while it is being built.
#[derive(Clone, Debug)]
struct AttemptState {
    key: FlowKey,
    isn: u32,
    /// ISN + 1 + bytes of data on the SYN (TCP Fast Open): the end of the window an answer must acknowledge.
    snd_nxt: u32,
    syn_times: Vec<Timestamp>,
    entries: Vec<Entry>,
    verdict: Option<Verdict>,
    soft_error: Option<SoftError>,
    /// The server's ISN, once an acceptable SYN-ACK arrived.
    server_isn: Option<u32>,
    handshake_acked: bool,
    /// When a SYN with another ISN reused this 4-tuple.
    superseded_at: Option<Timestamp>,
    /// Segments after the handshake, counted but not shown.
    later_segments: u64,
    /// Where the capture was taken, if the link layer says (Linux cooked captures).
    capture_side: Option<&'static str>,
    /// Addresses whose ARP/ND resolution belongs to this attempt.
    resolving: Vec<IpAddr>,
    /// The client retransmitted its SYN after an acceptable SYN-ACK: SYN-ACKs do not reach its TCP.
    synack_unseen_by_client: bool,
    /// Retransmits Linux made at once after an unacceptable ACK, outside its backoff schedule.
    quick_retransmits: u32,
    /// When an answer with an unacceptable ACK (a SYN-ACK or RST+ACK that Linux rejects) last came.
    unacceptable_ack_at: Option<Timestamp>,
}

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
    summary: String,
}

/// Builds attempts from events fed in time order; see [`correlate`] for events in any order.
#[derive(Debug, Default)]
pub struct Correlator {
    timing: SynTiming,
    attempts: Vec<AttemptState>,
    current: HashMap<FlowKey, usize>,
    neighbors: Vec<NeighborObservation>,
    /// System calls of traced attempts (live only), merged into their attempts at the end.
    syscalls: Vec<(Timestamp, SyscallEvent)>,
    /// The kernel's observations of traced sockets (live only).
    kernel: Vec<(Timestamp, FlowKey, KernelObservation)>,
    /// The live capture's statistics, when one ran.
    capture: Option<live::CaptureSeen>,
}

/// Entries shown per attempt after it was decided (retransmitted SYN-ACKs, late RSTs ...), so that a
/// long capture of a misbehaving flow cannot grow one timeline without bound.
const MAX_LATE_ENTRIES: usize = 16;

/// Correlates events given in any order: sorts them by time and frame, then runs the correlator.
/// `capture_end` is when the evidence ends (the last event's time if `None`).
pub fn correlate(mut events: Vec<Event>, timing: SynTiming, capture_end: Option<Timestamp>) -> Vec<Attempt> {
    events.sort_by_key(Event::order_key);
    let end = capture_end.or_else(|| events.last().map(|e| e.ts)).unwrap_or_default();
    let mut correlator = Correlator::new(timing);
    for event in &events {
        correlator.push(event);
    }
    correlator.finish(end)
}

impl Correlator {
    /// A correlator that predicts deadlines with `timing`.
    pub fn new(timing: SynTiming) -> Correlator {
        Correlator { timing, ..Correlator::default() }
    }

    /// Feeds one event; events must come in time order.
    pub fn push(&mut self, event: &Event) {
        match &event.kind {
            EventKind::Packet { frame, packet } => self.on_packet(event.ts, *frame, packet),
            EventKind::Syscall(call) => self.syscalls.push((event.ts, call.clone())),
            EventKind::Kernel { flow, observation } => self.kernel.push((event.ts, *flow, observation.clone())),
            EventKind::CaptureStats { packets, dropped } => {
                self.capture = Some(live::CaptureSeen { packets: *packets, dropped: *dropped });
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
                let summary = describe::arp(arp);
                self.neighbors.push(NeighborObservation { ts, frame, what, asker, target, summary });
            }
            PacketBody::Neighbor(nd) => {
                let (what, asker) = match nd.op {
                    NeighborOp::Solicitation => (What::Ns, Some(nd.src.into())),
                    NeighborOp::Advertisement => (What::Na, None),
                };
                let summary = describe::neighbor(nd);
                self.neighbors.push(NeighborObservation { ts, frame, what, asker, target: nd.target.into(), summary });
            }
            PacketBody::Other(_) => {}
        }
    }

    fn on_tcp(&mut self, ts: Timestamp, frame: u64, link: LinkDirection, on_loopback: bool, seg: &TcpSegment) {
        if seg.flags.is_syn_only() {
            let key = FlowKey::from_client(seg.src, seg.dst);
            match self.current.get(&key).copied() {
                Some(i) if self.attempts[i].isn == seg.seq => self.on_syn_retransmit(i, ts, frame, seg),
                previous => {
                    if let Some(i) = previous {
                        self.attempts[i].superseded_at.get_or_insert(ts);
                    }
                    self.open_attempt(key, ts, frame, link, seg);
                }
            }
            return;
        }
        let from_server = self.current.get(&FlowKey::from_server(seg.src, seg.dst)).copied();
        let from_client = self.current.get(&FlowKey::from_client(seg.src, seg.dst)).copied();
        if seg.flags.has(TcpFlags::RST) {
            if let Some(i) = from_server {
                self.attempts[i].on_server_rst(ts, frame, on_loopback, seg);
            } else if let Some(i) = from_client {
                self.attempts[i].on_client_rst(ts, frame, seg);
            } else if seg.flags.has(TcpFlags::ACK) && seg.seq == 0 {
                // The answer to a SYN at a closed port is <SEQ=0><ACK=ISN+1><CTL=RST,ACK> (RFC 9293
                // 3.10.7.1, tcp_v4_send_reset): it reveals an attempt whose SYN is not in the capture,
                // as when this host's own firewall forges the reset before the SYN reaches the wire.
                let key = FlowKey::from_server(seg.src, seg.dst);
                let i = self.insert(key, AttemptState::new(key, seg.ack.wrapping_sub(1), seg.ack));
                self.attempts[i].on_server_rst(ts, frame, on_loopback, seg);
            }
        } else if seg.flags.has(TcpFlags::SYN | TcpFlags::ACK) {
            if let Some(i) = from_server {
                self.attempts[i].on_syn_ack(ts, frame, seg);
            }
        } else if let Some(i) = from_client {
            self.attempts[i].on_client_segment(ts, frame, seg);
        } else if let Some(i) = from_server {
            self.attempts[i].later_segments += 1;
        }
    }

    fn open_attempt(&mut self, key: FlowKey, ts: Timestamp, frame: u64, link: LinkDirection, seg: &TcpSegment) {
        let mut note = format!("opens the attempt, ISN {}", seg.seq);
        if seg.payload_len > 0 {
            note.push_str(&format!("; carries {} bytes of data (TCP Fast Open)", seg.payload_len));
        }
        // A host talking to itself (loopback) is both ends: the link direction says nothing then.
        let same_host = seg.src.ip() == seg.dst.ip() || seg.src.ip().is_loopback();
        let capture_side = match link {
            _ if same_host => None,
            LinkDirection::Outgoing => Some("This capture was taken on the client: the SYN left the capturing host."),
            LinkDirection::ToUs => Some("This capture was taken on the server: the SYN arrived at the capturing host."),
            _ => None,
        };
        let mut state = AttemptState::new(key, seg.seq, seg.seq.wrapping_add(1).wrapping_add(seg.payload_len));
        state.capture_side = capture_side;
        state.syn_times.push(ts);
        state.push(ts, frame, Dir::Out, What::Syn, describe::tcp(seg), Some(note), false);
        self.insert(key, state);
    }

    fn insert(&mut self, key: FlowKey, state: AttemptState) -> usize {
        self.attempts.push(state);
        let index = self.attempts.len() - 1;
        self.current.insert(key, index);
        index
    }

    fn on_syn_retransmit(&mut self, i: usize, ts: Timestamp, frame: u64, seg: &TcpSegment) {
        let a = &mut self.attempts[i];
        let number = a.syn_times.len();
        let previous = a.syn_times.last().copied().unwrap_or(ts);
        // The expected backoff is added at the end, once every SYN is known (see verdict::annotate_retransmits).
        let mut note = format!("retransmit #{number}, +{} after the previous SYN", ts.since(previous));
        // tcp_rcv_synsent_state_process: on an unacceptable ACK with no retransmit yet, Linux re-arms
        // the timer at TCP_TIMEOUT_MIN ("previous FIN/ACK or RST/ACK might be ignored").
        let after_bad_ack = a.unacceptable_ack_at.is_some_and(|at| at >= previous);
        if number == 1 && after_bad_ack && ts.since(previous) < Span::from_millis(250) {
            a.quick_retransmits += 1;
            note = format!(
                "retransmit #{number}, +{}: Linux resends at once (TCP_TIMEOUT_MIN) after an unacceptable ACK, in case its reply was lost (tcp_rcv_synsent_state_process); the rest of the schedule starts from here",
                ts.since(previous)
            );
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
        a.syn_times.push(ts);
        a.push(ts, frame, Dir::Out, What::Syn, describe::tcp(seg), Some(note), false);
    }

    fn on_icmp(&mut self, ts: Timestamp, frame: u64, icmp: &IcmpError) {
        let Some(quoted) = &icmp.quoted else { return };
        let Some(tcp) = quoted.tcp else { return };
        let key =
            FlowKey::from_client(SocketAddr::new(quoted.src, tcp.src_port), SocketAddr::new(quoted.dst, tcp.dst_port));
        let i = match self.current.get(&key).copied() {
            Some(i) => i,
            // The quoted SYN is not in the capture (ARP failed, or capture started late): the ICMP
            // alone reveals the attempt. A quote of a non-SYN segment belongs to a connection, not an attempt.
            None if tcp.flags.is_none_or(TcpFlags::is_syn_only) => {
                let state = AttemptState::new(key, tcp.seq, tcp.seq.wrapping_add(1));
                self.insert(key, state)
            }
            None => return,
        };
        self.attempts[i].on_icmp(ts, frame, icmp, tcp.seq);
    }

    /// Ends correlation at `capture_end` and returns every attempt, in order of start.
    pub fn finish(self, capture_end: Timestamp) -> Vec<Attempt> {
        let Correlator { timing, attempts, neighbors, syscalls, kernel, capture, .. } = self;
        let mut neighbors = neighbors;
        neighbors.sort_by_key(|n| n.ts);
        let mut out: Vec<Attempt> = attempts
            .into_iter()
            .map(|mut a| {
                a.attach_neighbors(&neighbors);
                verdict::finish(a, &timing, capture_end)
            })
            .collect();
        live::attach_live_evidence(&mut out, &syscalls, &kernel, capture, &timing);
        out.sort_by_key(|a| a.start);
        out
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
    fn new(key: FlowKey, isn: u32, snd_nxt: u32) -> AttemptState {
        AttemptState {
            key,
            isn,
            snd_nxt,
            syn_times: Vec::new(),
            entries: Vec::new(),
            verdict: None,
            soft_error: None,
            server_isn: None,
            handshake_acked: false,
            superseded_at: None,
            later_segments: 0,
            capture_side: None,
            resolving: Vec::new(),
            synack_unseen_by_client: false,
            quick_retransmits: 0,
            unacceptable_ack_at: None,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ts: Timestamp,
        frame: u64,
        dir: Dir,
        what: What,
        summary: String,
        note: Option<String>,
        ignored: bool,
    ) -> usize {
        self.entries.push(Entry { t: 0.0, dir, what, summary, note, ignored, frame: Some(frame), ts });
        self.entries.len() - 1
    }

    /// Records a packet that arrived after the verdict, up to a bound.
    fn push_late(&mut self, ts: Timestamp, frame: u64, dir: Dir, what: What, summary: String, note: String) {
        let late = self.verdict.as_ref().map_or(0, |v| self.entries.len().saturating_sub(v.entry + 1));
        if late < MAX_LATE_ENTRIES {
            self.push(ts, frame, dir, what, summary, Some(note), false);
        } else {
            self.later_segments += 1;
        }
    }

    fn decide(&mut self, ts: Timestamp, decision: Decision, entry: usize) {
        self.verdict = Some(Verdict { ts, decision, entry });
    }

    fn on_server_rst(&mut self, ts: Timestamp, frame: u64, on_loopback: bool, seg: &TcpSegment) {
        let summary = describe::tcp(seg);
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
                    self.push(ts, frame, Dir::In, What::Rst, summary, Some(note), true);
                } else {
                    let note = "acknowledges our SYN (ack = ISN+1): connection refused".to_string();
                    let loopback = on_loopback && !self.key.server.ip().is_loopback();
                    let dir = if loopback { Dir::Local } else { Dir::In };
                    let entry = self.push(ts, frame, dir, What::Rst, summary, Some(note), false);
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
        self.push_late(ts, frame, Dir::Out, What::Rst, describe::tcp(seg), note.into());
    }

    fn on_syn_ack(&mut self, ts: Timestamp, frame: u64, seg: &TcpSegment) {
        let summary = describe::tcp(seg);
        match &self.verdict {
            None if self.synack_unseen_by_client && acks_syn(seg.ack, self.isn, self.snd_nxt) => {
                let note = "acknowledges our SYN, but like the earlier ones the client does not acknowledge it: it does not reach the client's TCP".to_string();
                self.push(ts, frame, Dir::In, What::SynAck, summary, Some(note), false);
            }
            None if acks_syn(seg.ack, self.isn, self.snd_nxt) => {
                self.server_isn = Some(seg.seq);
                let note = "acknowledges our SYN (ack = ISN+1): connect() returns 0".to_string();
                let entry = self.push(ts, frame, Dir::In, What::SynAck, summary, Some(note), false);
                self.decide(ts, Decision::Established { via_ack: false }, entry);
            }
            None => {
                let note = format!(
                    "ignored: ack {} does not acknowledge our SYN (expected {}); Linux answers with a RST and keeps waiting (tcp_rcv_synsent_state_process)",
                    seg.ack,
                    self.isn.wrapping_add(1)
                );
                self.unacceptable_ack_at = Some(ts);
                self.push(ts, frame, Dir::In, What::SynAck, summary, Some(note), true);
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
                let note = "completes the three-way handshake".to_string();
                self.push(ts, frame, Dir::Out, What::Ack, describe::tcp(seg), Some(note), false);
            }
            (None, _) if is_ack && seg.seq == self.snd_nxt => {
                // The client only sends this after a SYN-ACK it accepted: the capture missed that SYN-ACK.
                self.handshake_acked = true;
                let note = format!(
                    "acknowledges a SYN-ACK (server ISN {}) that the capture does not hold",
                    seg.ack.wrapping_sub(1)
                );
                let entry = self.push(ts, frame, Dir::Out, What::Ack, describe::tcp(seg), Some(note), false);
                self.decide(ts, Decision::Established { via_ack: true }, entry);
            }
            _ => {
                if seg.flags.has(TcpFlags::FIN) && self.verdict.is_none() {
                    let note = "the client closes before any answer".to_string();
                    self.push(ts, frame, Dir::Out, What::Fin, describe::tcp(seg), Some(note), false);
                } else {
                    self.later_segments += 1;
                }
            }
        }
    }

    fn on_icmp(&mut self, ts: Timestamp, frame: u64, icmp: &IcmpError, quoted_seq: u32) {
        let dir = if icmp.src == self.key.client.ip() { Dir::Local } else { Dir::In };
        let what = match icmp.kind {
            IcmpErrorKind::DestinationUnreachable => What::IcmpUnreachable,
            IcmpErrorKind::TimeExceeded => What::IcmpTimeExceeded,
            IcmpErrorKind::ParameterProblem => What::IcmpParameterProblem,
            IcmpErrorKind::PacketTooBig => What::IcmpPacketTooBig,
            IcmpErrorKind::SourceQuench | IcmpErrorKind::Redirect => What::IcmpOther,
        };
        let summary = describe::icmp(icmp);
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
        if !seq_between(quoted_seq, self.isn, self.snd_nxt) {
            let note = format!(
                "ignored: quotes seq {quoted_seq}, not our SYN's {}; Linux drops it (tcp_v4_err, OutOfWindowIcmps)",
                self.isn
            );
            self.push(ts, frame, dir, what, summary, Some(note), true);
            return;
        }
        let effect = match icmp.family {
            Family::Ipv4 => icmpv4_effect(icmp.icmp_type, icmp.code),
            Family::Ipv6 => icmpv6_effect(icmp.icmp_type, icmp.code),
        };
        match effect {
            IcmpEffect::Fatal(errno) => {
                let note = format!("quotes our SYN: a hard error, {errno}");
                let entry = self.push(ts, frame, dir, what, summary, Some(note), false);
                self.decide(ts, Decision::Icmp { errno, error: icmp.clone() }, entry);
            }
            IcmpEffect::PathMtu => {
                let note = match icmp.mtu {
                    Some(mtu) => format!("quotes our SYN: only lowers the path MTU to {mtu}; the attempt goes on"),
                    None => "quotes our SYN: only lowers the path MTU; the attempt goes on".into(),
                };
                self.push(ts, frame, dir, what, summary, Some(note), false);
            }
            IcmpEffect::Ignored => {
                let note = "ignored: TCP does not act on this ICMP type (tcp_v4_err)".to_string();
                self.push(ts, frame, dir, what, summary, Some(note), true);
            }
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
                "acknowledges our SYN, but the client retransmitted its SYN after it instead of acknowledging: this SYN-ACK never reached its TCP".to_string(),
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
                entry.note = Some(format!(
                    "quotes our SYN, but the SYN was retransmitted after it: the socket was owned by the user when it arrived, so Linux only remembered {errno} (sk_err_soft, LockDroppedIcmps)"
                ));
            }
            self.soft_error = Some(SoftError { errno, error });
        }
    }

    fn attach_neighbors(&mut self, neighbors: &[NeighborObservation]) {
        let Some(first) = self.entries.iter().map(|e| e.ts).min() else { return };
        let last =
            self.verdict.as_ref().map_or_else(|| self.entries.iter().map(|e| e.ts).max().unwrap_or(first), |v| v.ts);
        // Linux sends up to ucast_solicit + mcast_solicit (3 by default) requests 1 s apart before it
        // gives up (neigh_timer_handler): look back a little further than that from the first evidence.
        let from = first.plus(Span(-Span::from_millis(3_500).0));
        let start = neighbors.partition_point(|n| n.ts < from);
        let no_syn = self.syn_times.is_empty();
        let client = self.key.client.ip();
        let server = self.key.server.ip();
        let mut resolved = std::mem::take(&mut self.resolving);
        for n in neighbors[start..].iter().take_while(|n| n.ts <= last) {
            let asked_by_client = n.asker == Some(client);
            let for_server = n.target == server;
            // With no SYN on the wire the next hop may be a gateway, so any request from the client's
            // address counts; otherwise only resolution of the server itself (an on-link server).
            let relevant = match n.what {
                What::ArpRequest | What::Ns => for_server || (no_syn && asked_by_client),
                _ => for_server || resolved.contains(&n.target),
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
                self.entries.push(Entry {
                    t: 0.0,
                    dir,
                    what: n.what,
                    summary: n.summary.clone(),
                    note: Some(note),
                    ignored: false,
                    frame: Some(n.frame),
                    ts: n.ts,
                });
            }
        }
        self.resolving = resolved;
    }
}

#[cfg(test)]
mod tests;

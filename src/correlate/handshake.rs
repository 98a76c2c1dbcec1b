//! The commonest attempt, a clean three-way handshake, read straight from its evidence: a replay
//! writes millions of them, and wording each into an [`Attempt`](crate::timeline::Attempt) first
//! (its strings, its timeline's entries) costs more than writing its line.
//!
//! What [`Handshake`] gives is exactly what `verdict::finish` would report of the same attempt; a
//! renderer that writes from it must write the same bytes as from the report (the replay checks
//! that on every such attempt in debug builds, so every test that replays checks it).

use std::net::SocketAddr;

use super::{verdict, AttemptState, Decision, Finished, Step};
use crate::event::Timestamp;
use crate::flow::{Dir, Family};
use crate::timeline::What;

/// A finished attempt that is a clean three-way handshake: one SYN, the SYN-ACK that acknowledges
/// it, and the client's ACK of that, in time order, nothing ignored and no finding. Its report is
/// `established`, with no errno, one SYN and these three entries.
#[derive(Clone, Copy, Debug)]
pub struct Handshake<'a> {
    state: &'a AttemptState,
    /// The SYN's time: the attempt's start.
    start: Timestamp,
    /// The SYN-ACK's time: when it was decided.
    answered: Timestamp,
}

/// One of a [`Handshake`]'s three entries.
#[derive(Clone, Copy, Debug)]
pub struct HandshakeStep<'a> {
    step: &'a Step,
    start: Timestamp,
}

impl Finished {
    /// The attempt as a clean three-way handshake, if it is one (see [`Handshake`]). Not one
    /// finished early to make room: that carries a finding.
    pub fn handshake(&self) -> Option<Handshake<'_>> {
        match self.horizon.cut {
            verdict::Cut::Crowded => None,
            _ => Handshake::of(&self.state),
        }
    }
}

impl<'a> Handshake<'a> {
    fn of(a: &'a AttemptState) -> Option<Handshake<'a>> {
        let verdict = a.verdict.as_ref()?;
        if verdict.decision != (Decision::Established { via_ack: false }) || verdict.entry != 1 || !a.handshake_acked {
            return None;
        }
        let [syn, syn_ack, ack] = a.entries.as_slice() else { return None };
        let shape = [(syn, What::Syn, Dir::Out), (syn_ack, What::SynAck, Dir::In), (ack, What::Ack, Dir::Out)];
        if shape.iter().any(|(step, what, dir)| step.what != *what || step.dir != *dir || step.ignored) {
            return None;
        }
        // In time order, so that the report's sort leaves them as they are, and the only SYN is
        // the first entry, so that the start is the SYN's (`verdict::finish`).
        if syn.ts > syn_ack.ts || syn_ack.ts > ack.ts || a.syn_times.as_slice() != [syn.ts] {
            return None;
        }
        // (Copies of its packets carry a finding.)
        if a.soft_error.is_some() || a.synack_unseen_by_client || a.copies > 0 {
            return None;
        }
        debug_assert!(verdict::findings(a).is_empty(), "a clean handshake has no finding");
        Some(Handshake { state: a, start: syn.ts, answered: verdict.ts })
    }

    /// The client's address and port.
    pub fn client(&self) -> SocketAddr {
        self.state.key.client
    }

    /// The server's address and port.
    pub fn server(&self) -> SocketAddr {
        self.state.key.server
    }

    /// The address family.
    pub fn family(&self) -> Family {
        self.state.key.family()
    }

    /// The SYN's time.
    pub fn start(&self) -> Timestamp {
        self.start
    }

    /// The client's initial sequence number.
    pub fn isn(&self) -> u32 {
        self.state.isn
    }

    /// The round-trip time from the SYN to the SYN-ACK, in milliseconds, as reported.
    pub fn rtt_ms(&self) -> f64 {
        verdict::rtt_ms(self.answered.since(self.start))
    }

    /// Seconds from the SYN to the SYN-ACK, as reported.
    pub fn decided_after(&self) -> f64 {
        verdict::seconds_since(self.answered, self.start)
    }

    /// Appends the cause to `s`.
    pub fn cause_into(&self, s: &mut String) {
        verdict::established_cause(self.state, false, Some(self.answered.since(self.start)), s);
        verdict::cause_tail(self.state, s);
    }

    /// The SYN, the SYN-ACK and the ACK.
    pub fn steps(&self) -> impl Iterator<Item = HandshakeStep<'a>> {
        let start = self.start;
        self.state.entries.iter().map(move |step| HandshakeStep { step, start })
    }
}

impl HandshakeStep<'_> {
    /// Seconds since the attempt's start, as reported.
    pub fn t(&self) -> f64 {
        verdict::seconds_since(self.step.ts, self.start)
    }

    /// Which way it went.
    pub fn dir(&self) -> Dir {
        self.step.dir
    }

    /// What it is.
    pub fn what(&self) -> What {
        self.step.what
    }

    /// Its frame in the capture.
    pub fn frame(&self) -> u64 {
        self.step.frame
    }

    /// Appends the packet in tcpdump's words to `s`.
    pub fn summary_into(&self, s: &mut String) {
        self.step.wire.render_into(s);
    }

    /// Appends its note to `s`, and says whether it has one.
    pub fn note_into(&self, s: &mut String) -> bool {
        match &self.step.note {
            Some(note) => {
                note.write_to(s);
                true
            }
            None => false,
        }
    }
}

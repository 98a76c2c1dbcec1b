//! When an open attempt may leave memory: once nothing that can still arrive would change what it
//! reports. This is what lets a replay of any length run in bounded memory; the rules only look at
//! the capture's own clock (event timestamps), so the result never depends on how it was read.

use super::{AttemptState, Decision};
use crate::event::{Span, Timestamp};

/// How often open attempts are checked, in capture time.
pub(super) const SWEEP_INTERVAL: Span = Span::from_millis(100);

/// A record this far ahead of the capture's clock is checked against the next one before the
/// clock follows it (`Correlator::clock_for`).
pub(super) const CLOCK_JUMP: Span = Span::from_secs(3_600);

/// How long a settled attempt stays open after its last packet, for late evidence worth showing:
/// a server that never takes our ACK retransmits its SYN-ACK 1 s after the first
/// (`TCP_TIMEOUT_INIT`, `reqsk_timer_handler`; the `listen_queue_overflow` finding), and duplicate
/// RSTs and ICMP errors come within a round trip.
const LATE_WINDOW: Span = Span::from_millis(1_500);

/// The longest first retransmission timeout in use: 3 s, the initial RTO of RFC 1122 that Windows
/// and Linux before 3.1 keep (RFC 6298 lowered it to the 1 s Linux uses now).
const FIRST_GAP_MAX: Span = Span::from_millis(3_000);

/// When the SYN retransmit after the last one is overdue, whatever stack the client runs: a
/// retransmission timeout at most doubles (RFC 6298 5.5), Linux 6.5+ keeps it for a few rounds
/// first (`tcp_syn_linear_timeouts`), and none starts above [`FIRST_GAP_MAX`]. On top, the 30% and
/// 100 ms of jitter `verdict::annotate_retransmits` allows, and a second more.
fn next_syn_overdue(syn_times: &[Timestamp]) -> Option<Timestamp> {
    let last = *syn_times.last()?;
    let last_gap = match syn_times {
        [.., before, last] => last.since(*before),
        _ => Span(0),
    };
    // Saturating throughout: a capture may hold SYNs centuries apart (garbage timestamps).
    let gap = Span(last_gap.0.saturating_mul(2)).max(FIRST_GAP_MAX);
    let allowed = gap.0.saturating_add(gap.0 / 10 * 3).saturating_add(Span::from_millis(1_100).0);
    Some(last.plus(Span(allowed)))
}

/// When `a` may be finished: after this time no packet can change its report.
pub(super) fn expires_at(a: &AttemptState) -> Timestamp {
    let quiet = a.last_seen.plus(LATE_WINDOW);
    // A verdict that one more retransmit of the SYN would overturn (the SYN-ACK or the ICMP error
    // never reached the client's TCP) stays open, like an undecided attempt, until that retransmit
    // is overdue.
    let settled = match a.verdict.as_ref().map(|v| &v.decision) {
        None | Some(Decision::Icmp { .. }) => false,
        Some(Decision::Established { .. }) => a.handshake_acked,
        Some(Decision::Refused { .. }) => true,
    };
    if settled {
        return quiet;
    }
    next_syn_overdue(&a.syn_times).map_or(quiet, |overdue| quiet.max(overdue))
}

/// The earliest neighbour observation an attempt opened at `oldest_open` may still attach: the
/// verdict looks 3.5 s back for ARP/ND (`attach_neighbors`), and a second more covers disorder.
pub(super) fn neighbors_needed_from(oldest_open: Timestamp) -> Timestamp {
    oldest_open.plus(Span(-Span::from_millis(4_500).0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: &[i64]) -> Vec<Timestamp> {
        secs.iter().map(|&s| Timestamp(s * 1_000_000_000)).collect()
    }

    #[test]
    fn test_next_syn_overdue_covers_every_backoff() {
        // One SYN: the next may come 3 s later (Windows, old Linux): overdue 3.9 + 1.1 s after it.
        assert_eq!(next_syn_overdue(&at(&[10])), Some(Timestamp(15_000_000_000)));
        // Linux 6.5+ after five 1 s gaps sends the next 2 s later; 3 s is the floor.
        assert_eq!(next_syn_overdue(&at(&[0, 1, 2, 3, 4])), Some(Timestamp(9_000_000_000)));
        // Windows: 3 s, then 6 s; the next at most 12 s later.
        assert_eq!(next_syn_overdue(&at(&[0, 3, 9])), Some(Timestamp(9_000_000_000 + 16_700_000_000)));
        assert_eq!(next_syn_overdue(&[]), None);
        // SYNs at the two ends of time (a fuzzer's find): saturates, never overflows.
        assert_eq!(next_syn_overdue(&[Timestamp(i64::MIN), Timestamp(i64::MAX)]), Some(Timestamp(i64::MAX)));
    }
}

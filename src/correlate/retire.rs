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

/// Whether nothing that can still arrive would change `a`'s outcome: only late evidence worth
/// showing would. A verdict that one more retransmit of the SYN would overturn (the SYN-ACK or the
/// ICMP error never reached the client's TCP) is not settled, like no verdict at all.
pub(super) fn settled(a: &AttemptState) -> bool {
    match a.verdict.as_ref().map(|v| &v.decision) {
        None | Some(Decision::Icmp { .. }) => false,
        Some(Decision::Established { .. }) => a.handshake_acked,
        Some(Decision::Refused { .. }) => true,
    }
}

/// Whether `a` is established and waits only for the client's ACK of the SYN-ACK to be settled:
/// a capture filtered to SYN and RST (and ICMP) never holds it, so such attempts stay open until a
/// retransmitted SYN could no longer overturn them (see [`expires_at`]).
pub(super) fn awaits_only_the_ack(a: &AttemptState) -> bool {
    matches!(a.verdict.as_ref().map(|v| &v.decision), Some(Decision::Established { .. })) && !a.handshake_acked
}

/// When `a` may be finished: after this time no packet can change its report. One that is not
/// [`settled`] stays open until the SYN retransmit that would settle it is overdue.
pub(super) fn expires_at(a: &AttemptState) -> Timestamp {
    let quiet = a.last_seen.plus(LATE_WINDOW);
    if settled(a) {
        return quiet;
    }
    next_syn_overdue(&a.syn_times).map_or(quiet, |overdue| quiet.max(overdue))
}

/// The earliest neighbour observation an attempt opened at `oldest_open` may still attach: the
/// verdict looks 3.5 s back for ARP/ND (`attach_neighbors`), and a second more covers disorder.
pub(super) fn neighbors_needed_from(oldest_open: Timestamp) -> Timestamp {
    oldest_open.plus(Span(-Span::from_millis(4_500).0))
}

/// Bits of a packed sort key that hold a position in the sweep's list (see [`retiring_order`]).
const POSITION_BITS: u32 = 24;

/// Fills `order` with the positions in `expired`, a sweep's attempts as (start, opening frame,
/// slot), in the order they are finished: by start, then by opening frame (no two share a frame).
///
/// Sorting the triples themselves cost more than retiring the attempts. In a capture written in
/// time order, start rises with the opening frame; so the positions are sorted by frame alone,
/// packed with it into one integer, and the starts are then checked to rise along that order,
/// which makes it the order by (start, frame). Only when they do not (a capture out of time
/// order) are the triples compared.
pub(super) fn retiring_order(expired: &[(Timestamp, u64, usize)], order: &mut Vec<u64>) {
    order.clear();
    let position_mask = (1 << POSITION_BITS) - 1;
    let packs = expired.len() <= position_mask as usize
        && expired.iter().all(|&(_, frame, _)| frame >> (64 - POSITION_BITS) == 0);
    if packs {
        order.extend(expired.iter().enumerate().map(|(at, &(_, frame, _))| frame << POSITION_BITS | at as u64));
        order.sort_unstable();
        order.iter_mut().for_each(|packed| *packed &= position_mask);
        if order.windows(2).all(|pair| expired[pair[0] as usize].0 <= expired[pair[1] as usize].0) {
            return;
        }
        order.clear();
    }
    order.extend(0..expired.len() as u64);
    order.sort_unstable_by_key(|&at| expired[at as usize]);
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

    /// What a sweep must do: sort the triples themselves.
    fn order_by_sorting(expired: &[(Timestamp, u64, usize)]) -> Vec<u64> {
        let mut sorted: Vec<_> = expired.iter().copied().zip(0u64..).collect();
        sorted.sort_unstable();
        sorted.into_iter().map(|(_, at)| at).collect()
    }

    #[test]
    fn test_retiring_order_in_and_out_of_time_order() {
        let t = |ms: i64| Timestamp(ms * 1_000_000);
        let mut order = Vec::new();
        // In time order: by frame, whatever the slots.
        let in_order = [(t(5), 40, 3), (t(1), 7, 9), (t(5), 12, 0), (t(9), 41, 1)];
        retiring_order(&in_order, &mut order);
        assert_eq!(order, [1, 2, 0, 3]);
        // Frame 12 opened after frame 40 in time (a merged capture): start decides, not frame.
        let disordered = [(t(5), 40, 3), (t(1), 7, 9), (t(6), 12, 0)];
        retiring_order(&disordered, &mut order);
        assert_eq!(order, [1, 0, 2]);
        // Frames too large to pack still come out in order.
        let huge = [(t(2), u64::MAX, 0), (t(2), u64::MAX - 1, 1), (t(1), 3, 2)];
        retiring_order(&huge, &mut order);
        assert_eq!(order, [2, 1, 0]);
        retiring_order(&[], &mut order);
        assert!(order.is_empty());
    }

    proptest::proptest! {
        #[test]
        fn test_retiring_order_is_the_order_of_the_triples(
            mut triples in proptest::collection::vec((0i64..50, 0u64..1_000, 0usize..100), 0..200),
            in_time_order: bool,
        ) {
            // Frames are unique within a sweep; a capture in time order opens later frames later.
            triples.sort_by_key(|&(_, frame, _)| frame);
            triples.dedup_by_key(|&mut (_, frame, _)| frame);
            if in_time_order {
                let mut starts: Vec<i64> = triples.iter().map(|&(start, _, _)| start).collect();
                starts.sort_unstable();
                triples.iter_mut().zip(starts).for_each(|(triple, start)| triple.0 = start);
            }
            let expired: Vec<_> = triples.iter().rev().map(|&(start, frame, slot)| (Timestamp(start), frame, slot)).collect();
            let mut order = Vec::new();
            retiring_order(&expired, &mut order);
            proptest::prop_assert_eq!(order, order_by_sorting(&expired));
        }
    }
}

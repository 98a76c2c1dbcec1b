//! Fuzzes whole-file replay: any bytes as a capture file, read both whole and through small
//! windows (which must agree), then streamed through the correlator as `synscope replay` does it,
//! every attempt worded. It must never panic, and (for records in time order) the replay's
//! shortcuts must report what a plain correlator given every decoded packet reports.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::capfile::{CaptureReader, CaptureStream, Next};
use synscope::correlate::{correlate, Correlator, Offered};
use synscope::decode;
use synscope::event::{Event, EventKind};
use synscope::linux::SynTiming;

fuzz_target!(|data: &[u8]| {
    let Ok(reader) = CaptureReader::new(data) else { return };
    let whole: Vec<_> = reader.map(|r| r.map(|r| (r.ts, r.link_type, r.data))).collect();

    // The same file through windows of 64 bytes (grown when a record needs more).
    if let Ok((mut stream, _)) = CaptureStream::new(&data[..data.len().min(64)]) {
        let mut windowed = Vec::new();
        let mut want = 64;
        loop {
            let at = stream.position();
            let end = (at + want).min(data.len());
            match stream.next(&data[at..end], end == data.len()) {
                Next::Record(r, _) => {
                    windowed.push(Ok((r.ts, r.link_type, r.data)));
                    want = 64;
                }
                Next::NeedMore(n) => want = want.max(n).max(end - at + 1),
                Next::End => break,
                Next::Damage(e) => {
                    windowed.push(Err(e));
                    break;
                }
            }
        }
        assert_eq!(windowed, whole);
    }

    // As `synscope replay` reads: segments with ACK and without SYN or RST offered by their peeked
    // ends and decoded only when they may change an attempt, attempts built in worded ones' memory.
    let records: Vec<_> = whole.into_iter().map_while(Result::ok).collect();
    let end = records.iter().map(|r| r.0).max().unwrap_or_default();
    let mut correlator = Correlator::streaming(SynTiming::default());
    let mut streamed = Vec::new();
    let mut worded = None;
    for (frame, &(ts, link, bytes)) in records.iter().enumerate() {
        // (The plain look, or the look through tunnels where it does not answer.)
        if let Some(peek) = decode::peek_tcp(link, bytes).or_else(|| decode::look_beyond_tcp(link, bytes).tunneled()) {
            if peek.flags.is_ack_without_syn_or_rst()
                && correlator.offer_segment(ts, peek.src, peek.dst) != Offered::NeedsDecode
            {
                continue;
            }
        }
        if let Some(packet) = decoded(link, bytes) {
            correlator.push(&Event { ts, kind: EventKind::Packet { frame: frame as u64 + 1, packet } });
        }
        // Each attempt worded in the memory of the one before, as the wording thread does.
        let mut spares = Vec::new();
        for finished in correlator.drain_finished() {
            let (attempt, spare) = finished.report_reusing(worded.take());
            spares.push(spare);
            streamed.push(attempt.clone());
            worded = Some(attempt);
        }
        correlator.take_spares(spares);
    }
    streamed.extend(correlator.finish(end));

    // In time order, the shortcuts must report word for word what the plain correlator reports.
    if records.windows(2).all(|w| w[0].0 <= w[1].0) {
        let events: Vec<Event> = records
            .iter()
            .enumerate()
            .filter_map(|(frame, &(ts, link, bytes))| {
                let packet = decoded(link, bytes)?;
                Some(Event { ts, kind: EventKind::Packet { frame: frame as u64 + 1, packet } })
            })
            .collect();
        let as_json = |attempts: Vec<synscope::timeline::Attempt>| -> Vec<Vec<u8>> {
            let mut lines: Vec<Vec<u8>> = attempts
                .iter()
                .map(|a| {
                    let mut line = Vec::new();
                    let _ = synscope::render::json::attempt_into(&mut line, a);
                    line
                })
                .collect();
            lines.sort();
            lines
        };
        assert_eq!(as_json(streamed), as_json(correlate(events, SynTiming::default(), Some(end))));
    }
});

/// What a replay pushes for a record: its decoded packet, unless it says nothing about attempts.
/// The shortcut for plain TCP segments must decode exactly as the general decoder does.
fn decoded(link: decode::LinkType, bytes: &[u8]) -> Option<decode::Packet> {
    let general = decode::decode(link, bytes).ok();
    if let Some(plain) = decode::decode_plain_tcp(link, bytes) {
        assert_eq!(Some(&plain), general.as_ref(), "the plain-TCP shortcut decodes otherwise");
    }
    if let Some(tunneled) = decode::look_beyond_tcp(link, bytes).tunneled().and_then(|peek| peek.decode()) {
        assert_eq!(Some(&tunneled), general.as_ref(), "the look through tunnels decodes otherwise");
    }
    general.filter(|p| !matches!(p.body, decode::PacketBody::Other(_)))
}

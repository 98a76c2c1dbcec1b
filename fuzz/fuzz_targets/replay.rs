//! Fuzzes whole-file replay: any bytes as a capture file, read both whole and through small
//! windows (which must agree), every record decoded and streamed through the correlator, every
//! attempt worded. It must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use synscope::capfile::{CaptureReader, CaptureStream, Next};
use synscope::correlate::Correlator;
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

    let mut correlator = Correlator::streaming(SynTiming::default());
    let mut last = None;
    for (frame, record) in whole.into_iter().enumerate() {
        let Ok((ts, link, bytes)) = record else { break };
        last = Some(ts);
        if let Ok(packet) = decode::decode(link, bytes) {
            correlator.push(&Event { ts, kind: EventKind::Packet { frame: frame as u64 + 1, packet } });
            for finished in correlator.drain_finished() {
                let _ = finished.report();
            }
        }
    }
    let _ = correlator.finish(last.unwrap_or_default());
});

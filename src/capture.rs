//! Capture input: reads a capture file into time-stamped packet events for the correlator.

use std::path::Path;

use anyhow::Context as _;

use crate::capfile::{CaptureReader, FileError};
use crate::decode;
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
    /// Time of the last record read (where the evidence ends).
    pub last_ts: Option<Timestamp>,
    /// Why reading stopped before the end of the file, if it did.
    pub damage: Option<FileError>,
}

/// Reads and decodes `path`. Fails only when the file cannot be read or is not a capture at all;
/// damage part-way through is reported in [`FileCapture::damage`] with everything before it kept.
pub fn read_file(path: &Path) -> anyhow::Result<FileCapture> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let reader = CaptureReader::new(&bytes).with_context(|| format!("cannot replay {}", path.display()))?;
    let mut capture = FileCapture::default();
    for record in reader {
        let record = match record {
            Ok(record) => record,
            Err(damage) => {
                capture.damage = Some(damage);
                break;
            }
        };
        capture.packets += 1;
        capture.last_ts = Some(capture.last_ts.map_or(record.ts, |t| t.max(record.ts)));
        match decode::decode(record.link_type, record.data) {
            Ok(packet) if matches!(packet.body, decode::PacketBody::Other(_)) => {}
            Ok(packet) => {
                capture.events.push(Event { ts: record.ts, kind: EventKind::Packet { frame: capture.packets, packet } })
            }
            Err(_) => capture.undecodable += 1,
        }
    }
    Ok(capture)
}

//! The reading floor of a replay: `cargo run --release --example handshake_floor -- FILE`.
//!
//! Frames every record of a capture with synscope's reader, takes the same first look at each
//! (`decode::peek_tcp`), and follows only what a clean handshake needs: a SYN opens an entry in a
//! hash map, a SYN-ACK answers it, the client's next segment or the server's RST ends it. Segments
//! are looked up only when a 64 KiB counting filter of the answered entries says they may matter,
//! as the replay's index does. No ICMP, no retransmits, no verdicts, no words, no second thread: it
//! prints how many records it read, how many handshakes it ended and how many were left open.
//!
//! `bench/replay.sh` times it beside libpcap's own read loop. Whatever a reader on one core spends
//! beyond it, classifying, handing attempts to the wording thread, is on top of this floor.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::path::Path;

use synscope::capture;
use synscope::decode::{self, TcpFlags};
use synscope::event::Timestamp;
use synscope::flow::End;

/// Hashes a key that is a hash already ([`End::hash`] of both ends): it passes it through.
#[derive(Default)]
struct AlreadyHashed(u64);

impl Hasher for AlreadyHashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used, by the map's `u64` keys.
        self.0 = bytes.iter().fold(self.0, |h, &b| h.rotate_left(8) ^ u64::from(b));
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = value;
    }
}

/// A handshake under way.
#[derive(Clone, Copy)]
struct Handshake {
    syn_at: Timestamp,
    answered: bool,
}

/// The key of the flow from `client` to `server` (not commutative: the direction is part of it).
fn key(client: End, server: End) -> u64 {
    client.hash() ^ server.hash().rotate_left(17)
}

/// Where a key counts in the filter of answered handshakes.
fn near(key: u64) -> usize {
    (key >> 48) as usize
}

/// Capture time after which an unanswered SYN is dropped: past the kernel's longest SYN schedule.
const GIVE_UP_NS: i64 = 130_000_000_000;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [file] = args.as_slice() else { anyhow::bail!("usage: handshake_floor FILE") };
    let mut open: HashMap<u64, Handshake, BuildHasherDefault<AlreadyHashed>> =
        HashMap::with_capacity_and_hasher(1 << 16, Default::default());
    let mut answered_near = vec![0u32; 1 << 16];
    let (mut records, mut ended) = (0u64, 0u64);
    let mut pruned_at = i64::MIN;
    capture::stream_file(Path::new(file), |record, _| {
        records += 1;
        let Some(peek) = decode::peek_tcp(record.link_type, record.data) else { return Ok(()) };
        let flags = peek.flags.0;
        if flags & TcpFlags::SYN != 0 && flags & TcpFlags::ACK == 0 {
            open.insert(key(peek.src, peek.dst), Handshake { syn_at: record.ts, answered: false });
        } else if flags & TcpFlags::SYN != 0 {
            let k = key(peek.dst, peek.src);
            if let Some(handshake) = open.get_mut(&k).filter(|h| !h.answered) {
                handshake.answered = true;
                answered_near[near(k)] += 1;
            }
        } else if flags & TcpFlags::RST != 0 {
            let k = key(peek.dst, peek.src);
            if let Some(handshake) = open.remove(&k) {
                answered_near[near(k)] -= u32::from(handshake.answered);
                ended += 1;
            }
        } else {
            let k = key(peek.src, peek.dst);
            if answered_near[near(k)] != 0 && open.get(&k).is_some_and(|h| h.answered) {
                open.remove(&k);
                answered_near[near(k)] -= 1;
                ended += 1;
            }
        }
        // Once a second of capture time, forget the SYNs no answer will come for.
        if record.ts.0.saturating_sub(pruned_at) > 1_000_000_000 {
            let cut = record.ts.0 - GIVE_UP_NS;
            open.retain(|&k, h| {
                let keep = h.syn_at.0 > cut;
                if !keep {
                    answered_near[near(k)] -= u32::from(h.answered);
                }
                keep
            });
            pruned_at = record.ts.0;
        }
        Ok(())
    })?;
    println!("{records} records, {ended} handshakes ended, {} left open", open.len());
    Ok(())
}

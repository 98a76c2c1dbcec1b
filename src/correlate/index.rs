//! The index of open attempts by their two ends: a small open-addressing table.
//!
//! A replay looks up every TCP segment of a capture, mostly data of connections no open attempt
//! needs, and on a large capture each lookup waits on memory. A general hash map reads its control
//! bytes, then its bucket, then the slot's ends. Here one flat array of 8-byte entries holds part
//! of the hash and a mark beside the slot, so the first read both filters and names the slot, and
//! for the data segments of connections whose attempt is settled (unmarked) it is the only read.
//! Most of those searches end even earlier, in a small counting filter of the marked entries.
//! It is probed linearly from the hash's low bits, which the entry keeps, so it grows and deletes
//! without the full hash (Knuth, TAOCP vol. 3, 6.4: algorithm L, and algorithm R to delete without
//! tombstones).

/// An entry: the low 31 bits of a hash (bits 33 to 63), the mark (bit 32), the slot (bits 0 to 31).
/// Slots are far fewer than 2^32 - 1, so no entry is ever `EMPTY`.
type Entry = u64;

/// No entry.
const EMPTY: Entry = u64::MAX;

/// The bit of an entry that holds its mark.
const MARK: Entry = 1 << 32;

/// The slots of open attempts by the hash of their two ends (`ends_hash`), each with a mark. It only
/// narrows the search: the caller checks the ends of each slot it is offered. The mark lets a
/// search skip, without reading their ends, the slots that cannot matter to it (see
/// [`EndsIndex::find_marked`]).
#[derive(Debug, Clone)]
pub(super) struct EndsIndex {
    /// A power of two in length (at most 2^31), at most half full, so that probes stay short.
    entries: Vec<Entry>,
    len: usize,
    /// How many marked entries have each value of a hash's top bits ([`MARKED_NEAR_BITS`]), so
    /// that most searches for a marked slot end without a probe: a counting filter 64 KiB small,
    /// read where the table (8 bytes an open attempt, at most half full) would miss the cache.
    /// A count that reaches 255 stays there: it may then only answer "maybe" too often.
    marked_near: Vec<u8>,
}

/// The top bits of a hash that pick its count in `marked_near` (the table's home uses the low ones).
const MARKED_NEAR_BITS: u32 = 16;

/// A count of `marked_near` that no longer moves.
const STUCK: u8 = u8::MAX;

impl Default for EndsIndex {
    fn default() -> Self {
        EndsIndex { entries: vec![EMPTY; 64], len: 0, marked_near: vec![0; 1 << MARKED_NEAR_BITS] }
    }
}

/// Where `hash` counts in `marked_near`.
fn near(hash: u64) -> usize {
    (hash >> (64 - MARKED_NEAR_BITS)) as usize
}

/// What an entry keeps of a hash: its low 31 bits, which are also where its probe starts.
fn kept(hash: u64) -> u64 {
    hash & 0x7fff_ffff
}

/// The kept hash of an entry.
fn kept_of(entry: Entry) -> u64 {
    entry >> 33
}

fn slot_of(entry: Entry) -> usize {
    entry as u32 as usize
}

impl EndsIndex {
    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Where an entry of `kept` hash starts its probe.
    fn home(&self, kept: u64) -> usize {
        kept as usize & self.mask()
    }

    /// The first slot under `hash` for which `is_it` holds.
    pub(super) fn find(&self, hash: u64, mut is_it: impl FnMut(usize) -> bool) -> Option<usize> {
        let at = self.probe(hash, |entry| is_it(slot_of(entry))).ok()?;
        Some(slot_of(self.entries[at]))
    }

    /// The first marked slot under `hash` for which `is_it` holds. Unmarked slots are passed over
    /// without asking `is_it`: the caller reads no ends for them.
    /// (Inlined up to the filter, the probe out of line: a replay asks this of most records, and
    /// the filter answers most.)
    #[inline]
    pub(super) fn find_marked(&self, hash: u64, is_it: impl FnMut(usize) -> bool) -> Option<usize> {
        if self.marked_near[near(hash)] == 0 {
            return None;
        }
        self.probe_marked(hash, is_it)
    }

    #[inline(never)]
    fn probe_marked(&self, hash: u64, mut is_it: impl FnMut(usize) -> bool) -> Option<usize> {
        let at = self.probe(hash, |entry| entry & MARK != 0 && is_it(slot_of(entry))).ok()?;
        Some(slot_of(self.entries[at]))
    }

    /// Probes the run of `hash`: where the first entry that keeps its hash and for which `hit`
    /// holds sits, or else where the run ends (the first empty place).
    fn probe(&self, hash: u64, mut hit: impl FnMut(Entry) -> bool) -> Result<usize, usize> {
        let (mask, kept) = (self.mask(), kept(hash));
        let mut at = self.home(kept);
        loop {
            let entry = self.entries[at];
            if entry == EMPTY {
                return Err(at);
            }
            if kept_of(entry) == kept && hit(entry) {
                return Ok(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// Where the entry of `slot`, indexed under `hash`, sits, if it is there.
    fn position(&self, hash: u64, slot: usize) -> Option<usize> {
        self.probe(hash, |entry| slot_of(entry) == slot).ok()
    }

    /// Indexes `slot` under `hash`, `marked` or not, in place of the first slot under `hash` for
    /// which `is_it` holds if there is one.
    pub(super) fn insert(&mut self, hash: u64, slot: usize, marked: bool, mut is_it: impl FnMut(usize) -> bool) {
        let entry = kept(hash) << 33 | if marked { MARK } else { 0 } | slot as u32 as u64;
        self.count_mark(hash, marked, true);
        match self.probe(hash, |there| is_it(slot_of(there))) {
            Ok(at) => {
                // (The entry replaced has the same ends, so the same hash.)
                self.count_mark(hash, self.entries[at] & MARK != 0, false);
                self.entries[at] = entry;
            }
            Err(at) => {
                self.entries[at] = entry;
                self.len += 1;
                if self.len * 2 > self.entries.len() {
                    self.grow();
                }
            }
        }
    }

    /// Marks, or unmarks, `slot`, indexed under `hash`, if it is there.
    pub(super) fn set_mark(&mut self, hash: u64, slot: usize, marked: bool) {
        if let Some(at) = self.position(hash, slot) {
            self.count_mark(hash, self.entries[at] & MARK != 0, false);
            self.count_mark(hash, marked, true);
            self.entries[at] = self.entries[at] & !MARK | if marked { MARK } else { 0 };
        }
    }

    /// Counts a marked entry of `hash` in, or out, of `marked_near` (nothing if not `marked`).
    fn count_mark(&mut self, hash: u64, marked: bool, counted_in: bool) {
        let count = &mut self.marked_near[near(hash)];
        if marked && *count != STUCK {
            *count = if counted_in { *count + 1 } else { count.saturating_sub(1) };
        }
    }

    /// Takes `slot`, indexed under `hash`, out of the index, if it is there.
    pub(super) fn remove(&mut self, hash: u64, slot: usize) {
        let Some(mut hole) = self.position(hash, slot) else { return };
        self.count_mark(hash, self.entries[hole] & MARK != 0, false);
        let mask = self.mask();
        // Close the hole (algorithm R): each later entry of the run moves into it unless its home
        // lies cyclically after the hole and at or before where it sits (the hole is not on its
        // probe path then).
        let mut next = hole;
        loop {
            next = (next + 1) & mask;
            let there = self.entries[next];
            if there == EMPTY {
                break;
            }
            let home = self.home(kept_of(there));
            let on_path = if hole <= next { home <= hole || home > next } else { home <= hole && home > next };
            if on_path {
                self.entries[hole] = there;
                hole = next;
            }
        }
        self.entries[hole] = EMPTY;
        self.len -= 1;
    }

    /// Doubles the table, placing every entry anew.
    fn grow(&mut self) {
        let doubled = vec![EMPTY; self.entries.len() * 2];
        let old = std::mem::replace(&mut self.entries, doubled);
        let mask = self.mask();
        for entry in old.into_iter().filter(|&e| e != EMPTY) {
            let mut at = self.home(kept_of(entry));
            while self.entries[at] != EMPTY {
                at = (at + 1) & mask;
            }
            self.entries[at] = entry;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What the index should hold: (hash, slot, marked), the latest insert of a hash and key first.
    #[derive(Default)]
    struct Model(Vec<(u64, usize, bool)>);

    proptest! {
        /// Against a list: hashes crowded into few values (so runs collide and wrap), slots that
        /// stand for keys (`is_it` compares slots' keys), inserts, replacements, removals and marks.
        #[test]
        fn test_index_finds_what_a_list_finds(ops in proptest::collection::vec((0u8..4, 0u64..24, 0usize..40, any::<bool>()), 1..600)) {
            let mut index = EndsIndex::default();
            let mut model = Model::default();
            // A slot's key: slots k and k + 20 share one, so an insert may replace.
            let key = |slot: usize| slot % 20;
            // Hashes whose low bits collide in a small table, some near the table's end; each
            // twice, the two differing only above the 31 bits an entry keeps.
            let hash_of = |h: u64| (h % 12).wrapping_mul(0x9e37_79b9_0000_0000) + (h % 12) + 60 * (h % 2) + (1 << 31) * (h / 12);
            for (op, h, slot, marked) in ops {
                let hash = hash_of(h);
                let same = |mh: u64, s: usize| kept(mh) == kept(hash) && key(s) == key(slot);
                match op {
                    0 => {
                        index.insert(hash, slot, marked, |s| key(s) == key(slot));
                        match model.0.iter_mut().find(|(mh, s, _)| same(*mh, *s)) {
                            Some(found) => *found = (hash, slot, marked),
                            None => model.0.push((hash, slot, marked)),
                        }
                    }
                    1 => {
                        index.remove(hash, slot);
                        model.0.retain(|&(mh, s, _)| !(kept(mh) == kept(hash) && s == slot));
                    }
                    2 => {
                        index.set_mark(hash, slot, marked);
                        for entry in model.0.iter_mut().filter(|(mh, s, _)| kept(*mh) == kept(hash) && *s == slot) {
                            entry.2 = marked;
                        }
                    }
                    _ => {}
                }
                prop_assert_eq!(index.len, model.0.len());
                for h in 0..24 {
                    let hash = hash_of(h);
                    let kept_hash = kept(hash);
                    for k in 0..20 {
                        let found = index.find(hash, |s| key(s) == k);
                        let expected = model.0.iter().find(|(mh, s, _)| kept(*mh) == kept_hash && key(*s) == k).map(|&(_, s, _)| s);
                        prop_assert_eq!(found, expected, "hash {:#x} key {}", hash, k);
                        let found = index.find_marked(hash, |s| key(s) == k);
                        let expected = model.0.iter().find(|(mh, s, m)| *m && kept(*mh) == kept_hash && key(*s) == k).map(|&(_, s, _)| s);
                        prop_assert_eq!(found, expected, "marked, hash {:#x} key {}", hash, k);
                    }
                }
            }
        }
    }

    #[test]
    fn test_marked_counts_that_overflow_still_find_every_marked_slot() {
        // 300 marked slots whose hashes share their top bits: their count sticks at 255, and
        // every one is still found, and none once gone.
        let hash = |slot: usize| 0xabcd_u64 << 48 | (slot as u64).wrapping_mul(0x9e37_79b9);
        let mut index = EndsIndex::default();
        for slot in 0..300 {
            index.insert(hash(slot), slot, true, |_| false);
        }
        assert_eq!(index.marked_near[near(hash(0))], STUCK);
        for slot in 0..300 {
            assert_eq!(index.find_marked(hash(slot), |s| s == slot), Some(slot));
            index.set_mark(hash(slot), slot, slot % 2 == 0);
        }
        for slot in 0..300 {
            assert_eq!(index.find_marked(hash(slot), |s| s == slot).is_some(), slot % 2 == 0, "slot {slot}");
            index.remove(hash(slot), slot);
            assert_eq!(index.find_marked(hash(slot), |s| s == slot), None);
        }
        // Counts that did not overflow go back to zero: the filter answers alone again.
        let mut index = EndsIndex::default();
        index.insert(hash(1), 1, true, |_| false);
        index.insert(hash(1), 2, false, |s| s == 1);
        assert_eq!(index.marked_near[near(hash(1))], 0, "a replaced marked entry is counted out");
        index.set_mark(hash(1), 2, true);
        index.remove(hash(1), 2);
        assert_eq!(index.marked_near[near(hash(1))], 0);
    }

    #[test]
    fn test_index_grows_and_keeps_everything() {
        let hash = |slot: usize| (slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut index = EndsIndex::default();
        for slot in 0..10_000 {
            index.insert(hash(slot), slot, slot % 2 == 0, |_| false);
        }
        assert_eq!(index.len, 10_000);
        assert!(index.entries.len() >= 20_000, "at most half full");
        for slot in (0..10_000).step_by(3) {
            index.remove(hash(slot), slot);
        }
        for slot in 0..10_000 {
            let found = index.find(hash(slot), |s| s == slot);
            assert_eq!(found.is_some(), slot % 3 != 0, "slot {slot}");
            let found = index.find_marked(hash(slot), |s| s == slot);
            assert_eq!(found.is_some(), slot % 3 != 0 && slot % 2 == 0, "marked slot {slot}");
        }
    }
}

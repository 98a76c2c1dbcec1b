//! The index of open attempts by their two ends: a small open-addressing table.
//!
//! A replay looks up every TCP segment of a capture, mostly data of connections whose attempt only
//! counts them, and on a large capture each lookup waits on memory. A general hash map reads its
//! control bytes, then its bucket, then the slot's ends. Here one flat array of 8-byte entries
//! holds the low half of the hash beside the slot, so the first read both filters and names the
//! slot. It is probed linearly from the hash's low bits, which the entry keeps, so it grows and
//! deletes without the full hash (Knuth, TAOCP vol. 3, 6.4: algorithm L, and algorithm R to delete
//! without tombstones).

/// The low 32 bits of a hash, above the slot's 32 (slots are far fewer than 2^32 - 1, so no entry
/// is ever `EMPTY`).
type Entry = u64;

/// No entry.
const EMPTY: Entry = u64::MAX;

/// The slots of open attempts by the hash of their two ends (`ends_hash`). It only narrows the
/// search: the caller checks the ends of each slot it is offered.
#[derive(Debug, Clone)]
pub(super) struct EndsIndex {
    /// A power of two in length (at most 2^32), at most half full, so that probes stay short.
    entries: Vec<Entry>,
    len: usize,
}

impl Default for EndsIndex {
    fn default() -> Self {
        EndsIndex { entries: vec![EMPTY; 64], len: 0 }
    }
}

impl EndsIndex {
    /// Slots indexed.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// Where an entry of `hash` (or its low half) starts its probe.
    fn home(&self, hash: u64) -> usize {
        hash as u32 as usize & self.mask()
    }

    /// The first slot under `hash` for which `is_it` holds.
    pub(super) fn find(&self, hash: u64, mut is_it: impl FnMut(usize) -> bool) -> Option<usize> {
        let (mask, low) = (self.mask(), hash as u32 as u64);
        let mut at = self.home(hash);
        loop {
            let entry = self.entries[at];
            if entry == EMPTY {
                return None;
            }
            if entry >> 32 == low && is_it(entry as u32 as usize) {
                return Some(entry as u32 as usize);
            }
            at = (at + 1) & mask;
        }
    }

    /// Indexes `slot` under `hash`, in place of the first slot under `hash` for which `is_it` holds
    /// if there is one.
    pub(super) fn insert(&mut self, hash: u64, slot: usize, mut is_it: impl FnMut(usize) -> bool) {
        let (mask, low) = (self.mask(), hash as u32 as u64);
        let entry = low << 32 | slot as u32 as u64;
        let mut at = self.home(hash);
        loop {
            let there = self.entries[at];
            if there == EMPTY {
                break;
            }
            if there >> 32 == low && is_it(there as u32 as usize) {
                self.entries[at] = entry;
                return;
            }
            at = (at + 1) & mask;
        }
        self.entries[at] = entry;
        self.len += 1;
        if self.len * 2 > self.entries.len() {
            self.grow();
        }
    }

    /// Takes `slot`, indexed under `hash`, out of the index, if it is there.
    pub(super) fn remove(&mut self, hash: u64, slot: usize) {
        let (mask, low) = (self.mask(), hash as u32 as u64);
        let mut hole = self.home(hash);
        loop {
            let there = self.entries[hole];
            if there == EMPTY {
                return;
            }
            if there == low << 32 | slot as u32 as u64 {
                break;
            }
            hole = (hole + 1) & mask;
        }
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
            let home = self.home(there >> 32);
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
            let mut at = self.home(entry >> 32);
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

    /// What the index should hold: (hash, slot) pairs, the latest insert of a hash and key first.
    #[derive(Default)]
    struct Model(Vec<(u64, usize)>);

    proptest! {
        /// Against a list: hashes crowded into few values (so runs collide and wrap), slots that
        /// stand for keys (`is_it` compares slots' keys), inserts, replacements and removals.
        #[test]
        fn test_index_finds_what_a_list_finds(ops in proptest::collection::vec((0u8..3, 0u64..48, 0usize..40), 1..600)) {
            let mut index = EndsIndex::default();
            let mut model = Model::default();
            // A slot's key: slots k and k + 20 share one, so an insert may replace.
            let key = |slot: usize| slot % 20;
            // Hashes whose low bits collide in a small table, some near the table's end.
            let hash_of = |h: u64| (h % 12).wrapping_mul(0x9e37_79b9_0000_0000) + (h % 12) + 60 * (h % 2);
            for (op, h, slot) in ops {
                let hash = hash_of(h);
                match op {
                    0 => {
                        index.insert(hash, slot, |s| key(s) == key(slot));
                        match model.0.iter_mut().find(|(mh, s)| *mh == hash && key(*s) == key(slot)) {
                            Some(found) => found.1 = slot,
                            None => model.0.push((hash, slot)),
                        }
                    }
                    1 => {
                        index.remove(hash, slot);
                        model.0.retain(|&(mh, s)| !(mh == hash && s == slot));
                    }
                    _ => {}
                }
                prop_assert_eq!(index.len(), model.0.len());
                for h in 0..12 {
                    let hash = hash_of(h);
                    for k in 0..20 {
                        let found = index.find(hash, |s| key(s) == k);
                        let expected = model.0.iter().find(|(mh, s)| *mh == hash && key(*s) == k).map(|&(_, s)| s);
                        prop_assert_eq!(found, expected, "hash {:#x} key {}", hash, k);
                    }
                }
            }
        }
    }

    #[test]
    fn test_index_grows_and_keeps_everything() {
        let hash = |slot: usize| (slot as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut index = EndsIndex::default();
        for slot in 0..10_000 {
            index.insert(hash(slot), slot, |_| false);
        }
        assert_eq!(index.len(), 10_000);
        assert!(index.entries.len() >= 20_000, "at most half full");
        for slot in (0..10_000).step_by(3) {
            index.remove(hash(slot), slot);
        }
        for slot in 0..10_000 {
            let found = index.find(hash(slot), |s| s == slot);
            assert_eq!(found.is_some(), slot % 3 != 0, "slot {slot}");
        }
    }
}

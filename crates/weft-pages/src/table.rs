//! The page table: per-page state bitmaps plus a segment tree of free runs.
//!
//! Three bitmaps of `WORDS * 64` bits describe every page:
//!
//! | owned | free | dirty | state        |
//! |-------|------|-------|--------------|
//! | 1     | 1    | 0     | free-zeroed  |
//! | 1     | 1    | 1     | free-dirty   |
//! | 1     | 0    | -     | allocated    |
//! | 0     | 0    | 0     | foreign or not yet grown |
//!
//! The segment tree has one leaf per bitmap word (64 pages). Each node stores
//! the length of the free run at its start, at its end, and the longest free
//! run inside it, which is enough to find the lowest-addressed free run of a
//! given length in `O(log pages)` and stays exact after any range update,
//! whether it splits a run (allocation from the middle, partial unmap) or
//! joins two (welding a grow onto the free tail).

/// Free-run summary of the pages under one tree node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RunSummary {
    /// Free pages at the start of the node.
    prefix: u32,
    /// Free pages at the end of the node.
    suffix: u32,
    /// Longest run of free pages anywhere in the node.
    longest: u32,
}

impl RunSummary {
    const NONE_FREE: RunSummary = RunSummary { prefix: 0, suffix: 0, longest: 0 };

    /// Summary of the 64 pages of one bitmap word (bit `i` = page `base + i`).
    fn of_word(free_bits: u64) -> RunSummary {
        let mut longest = 0;
        let mut rest = free_bits;
        while rest != 0 {
            rest >>= rest.trailing_zeros();
            let ones = rest.trailing_ones();
            longest = longest.max(ones);
            rest = rest.checked_shr(ones).unwrap_or(0);
        }
        RunSummary { prefix: free_bits.trailing_ones(), suffix: free_bits.leading_ones(), longest }
    }

    /// Summary of two adjacent nodes of `child_len` pages each.
    fn join(left: RunSummary, right: RunSummary, child_len: u32) -> RunSummary {
        RunSummary {
            prefix: if left.prefix == child_len { child_len + right.prefix } else { left.prefix },
            suffix: if right.suffix == child_len { child_len + left.suffix } else { right.suffix },
            longest: left.longest.max(right.longest).max(left.suffix + right.prefix),
        }
    }
}

/// Page states of up to `WORDS * 64` pages (see the module docs).
pub(crate) struct PageTable<const WORDS: usize> {
    free: [u64; WORDS],
    dirty: [u64; WORDS],
    owned: [u64; WORDS],
    /// Segment tree, node `i` at `tree[i / 2][i % 2]`; root is node 1, the
    /// leaf of word `w` is node `WORDS + w`. (Stored as pairs because array
    /// lengths like `2 * WORDS` need unstable const-generic expressions.)
    tree: [[RunSummary; 2]; WORDS],
}

/// Largest supported table: 2^20 pages, the 32-bit space in 4 KiB pages.
pub(crate) const MAX_WORDS: usize = 1 << 14;

impl<const WORDS: usize> PageTable<WORDS> {
    /// An empty table: no page owned, nothing free.
    pub(crate) const fn new() -> Self {
        assert!(WORDS.is_power_of_two() && WORDS <= MAX_WORDS, "WORDS must be a power of two no larger than 2^14");
        PageTable { free: [0; WORDS], dirty: [0; WORDS], owned: [0; WORDS], tree: [[RunSummary::NONE_FREE; 2]; WORDS] }
    }

    /// Number of pages the table can describe.
    pub(crate) const fn capacity(&self) -> u32 {
        (WORDS * 64) as u32
    }

    fn bit(bits: &[u64; WORDS], page: u32) -> bool {
        let page = page as usize;
        bits[page / 64] >> (page % 64) & 1 == 1
    }

    pub(crate) fn is_owned(&self, page: u32) -> bool {
        Self::bit(&self.owned, page)
    }

    pub(crate) fn is_free(&self, page: u32) -> bool {
        Self::bit(&self.free, page)
    }

    pub(crate) fn is_dirty(&self, page: u32) -> bool {
        Self::bit(&self.dirty, page)
    }

    /// Calls `visit(word_index, mask)` for each word overlapping `start..start + count`.
    fn for_each_word(start: u32, count: u32, mut visit: impl FnMut(usize, u64)) {
        let end = start + count;
        let mut page = start;
        while page < end {
            let word = (page / 64) as usize;
            let low = page % 64;
            let high = (end - word as u32 * 64).min(64); // exclusive, within the word
            let mask = (u64::MAX >> (64 - (high - low))) << low;
            visit(word, mask);
            page = word as u32 * 64 + high;
        }
    }

    /// Takes ownership of freshly grown pages: owned, free, zeroed.
    pub(crate) fn adopt_fresh(&mut self, start: u32, count: u32) {
        if count == 0 {
            return;
        }
        let (free, dirty, owned) = (&mut self.free, &mut self.dirty, &mut self.owned);
        Self::for_each_word(start, count, |word, mask| {
            debug_assert_eq!(owned[word] & mask, 0, "adopting pages twice");
            owned[word] |= mask;
            free[word] |= mask;
            dirty[word] &= !mask;
        });
        self.refresh(start, count);
    }

    /// Marks free pages as allocated (and therefore dirty once released).
    pub(crate) fn allocate(&mut self, start: u32, count: u32) {
        let (free, dirty) = (&mut self.free, &mut self.dirty);
        Self::for_each_word(start, count, |word, mask| {
            debug_assert_eq!(free[word] & mask, mask, "allocating a page that is not free");
            free[word] &= !mask;
            dirty[word] |= mask;
        });
        self.refresh(start, count);
    }

    /// Frees the allocated pages of a range of owned pages; already free pages
    /// keep their state (a free-zeroed page stays zeroed). Returns how many
    /// pages were allocated before.
    pub(crate) fn release(&mut self, start: u32, count: u32) -> u32 {
        let free = &mut self.free;
        let mut released = 0;
        Self::for_each_word(start, count, |word, mask| {
            released += (mask & !free[word]).count_ones();
            free[word] |= mask;
        });
        self.refresh(start, count);
        released
    }

    /// Whether every page of the range is owned.
    pub(crate) fn all_owned(&self, start: u32, count: u32) -> bool {
        let mut all = true;
        Self::for_each_word(start, count, |word, mask| {
            all &= self.owned[word] & mask == mask;
        });
        all
    }

    /// Number of owned pages.
    pub(crate) fn owned_count(&self) -> u32 {
        self.owned.iter().map(|w| w.count_ones()).sum()
    }

    /// Calls `visit(start, count)` for each maximal run of free-dirty pages
    /// inside `start..start + count`, in address order.
    pub(crate) fn for_each_dirty_run(&self, start: u32, count: u32, mut visit: impl FnMut(u32, u32)) {
        let mut run_start = 0;
        let mut run_len = 0;
        Self::for_each_word(start, count, |word, mask| {
            let dirty = self.dirty[word] & self.free[word] & mask;
            let base = word as u32 * 64;
            if dirty == mask && run_len > 0 && run_start + run_len == base + mask.trailing_zeros() {
                run_len += mask.count_ones(); // common case: the whole word continues a run
                return;
            }
            let mut bit = mask.trailing_zeros();
            let end_bit = 64 - mask.leading_zeros();
            while bit < end_bit {
                if dirty >> bit & 1 == 1 {
                    let page = base + bit;
                    if run_len > 0 && run_start + run_len == page {
                        run_len += 1;
                    } else {
                        if run_len > 0 {
                            visit(run_start, run_len);
                        }
                        run_start = page;
                        run_len = 1;
                    }
                }
                bit += 1;
            }
        });
        if run_len > 0 {
            visit(run_start, run_len);
        }
    }

    /// Length of the free run that ends right before page `end`.
    pub(crate) fn free_run_ending_at(&self, end: u32) -> u32 {
        let mut run = 0;
        let mut page = end.min(self.capacity());
        while page > 0 {
            let word = ((page - 1) / 64) as usize;
            let used_bits = page - word as u32 * 64; // bits 0..used_bits belong below `end`
            let bits = self.free[word] << (64 - used_bits); // drop bits at or above `end`
            let ones = bits.leading_ones();
            run += ones.min(used_bits);
            if ones < used_bits {
                break;
            }
            page = word as u32 * 64;
        }
        run
    }

    /// Longest free run anywhere, in pages.
    pub(crate) fn longest_free_run(&self) -> u32 {
        self.node(1).longest
    }

    fn node(&self, index: usize) -> RunSummary {
        self.tree[index / 2][index % 2]
    }

    fn set_node(&mut self, index: usize, summary: RunSummary) {
        self.tree[index / 2][index % 2] = summary;
    }

    /// Recomputes the tree above the words touched by `start..start + count`.
    fn refresh(&mut self, start: u32, count: u32) {
        if count == 0 {
            return;
        }
        let first_word = (start / 64) as usize;
        let last_word = ((start + count - 1) / 64) as usize;
        for word in first_word..=last_word {
            self.set_node(WORDS + word, RunSummary::of_word(self.free[word]));
        }
        let (mut low, mut high) = (WORDS + first_word, WORDS + last_word);
        let mut child_len = 64;
        while low > 1 {
            low /= 2;
            high /= 2;
            for parent in low..=high {
                let joined = RunSummary::join(self.node(2 * parent), self.node(2 * parent + 1), child_len);
                self.set_node(parent, joined);
            }
            child_len *= 2;
        }
    }

    /// Lowest page `p`, multiple of `align`, such that `p..p + count` is free.
    ///
    /// `count` and `align` must be at least 1.
    pub(crate) fn find_free_run(&self, count: u32, align: u32) -> Option<u32> {
        debug_assert!(count >= 1 && align >= 1);
        let mut from = 0u32;
        loop {
            let start = self.first_run_from(count, from)?;
            // Every aligned start in `from..start` is known not to fit.
            let aligned = align_up(start, align)?;
            if aligned == start {
                return Some(start);
            }
            from = aligned;
        }
    }

    /// Lowest page `p >= from` such that `p..p + count` is free.
    fn first_run_from(&self, count: u32, from: u32) -> Option<u32> {
        if from >= self.capacity() {
            return None;
        }
        self.search(1, 0, self.capacity(), from, count, 0).ok()
    }

    /// Searches node `node` covering `start..start + len` for the first run of
    /// `count` free pages starting at or after `from`, given that the
    /// `run_before` pages right before the node (all `>= from`) are free.
    ///
    /// Returns `Ok(run start)`, or `Err(free pages at the node's end)` so the
    /// caller can carry the run into the next node. A node is only descended
    /// into when it straddles `from` (one path) or when its summary proves the
    /// answer lies inside, so the cost is `O(log pages)` plus one leaf scan.
    fn search(&self, node: usize, start: u32, len: u32, from: u32, count: u32, run_before: u32) -> Result<u32, u32> {
        if start + len <= from {
            return Err(0);
        }
        if start >= from {
            let summary = self.node(node);
            if summary.prefix == len {
                let run = run_before + len;
                return if run >= count { Ok(start - run_before) } else { Err(run) };
            }
            if run_before + summary.prefix >= count {
                return Ok(start - run_before);
            }
            if summary.longest < count {
                return Err(summary.suffix);
            }
        }
        if node >= WORDS {
            return self.scan_word(node - WORDS, from, count, run_before);
        }
        let half = len / 2;
        match self.search(2 * node, start, half, from, count, run_before) {
            Ok(found) => Ok(found),
            Err(run) => self.search(2 * node + 1, start + half, half, from, count, run),
        }
    }

    /// Bit-by-bit search inside one word (see [`Self::search`]).
    fn scan_word(&self, word: usize, from: u32, count: u32, mut run: u32) -> Result<u32, u32> {
        let base = word as u32 * 64;
        let mut bits = self.free[word];
        if from > base {
            bits &= u64::MAX << (from - base); // pages below `from` don't count
        }
        for bit in 0..64 {
            if bits >> bit & 1 == 1 {
                run += 1;
                if run >= count {
                    return Ok(base + bit + 1 - run);
                }
            } else {
                run = 0;
            }
        }
        Err(run)
    }
}

/// Rounds `value` up to a multiple of the power of two `align`.
pub(crate) fn align_up(value: u32, align: u32) -> Option<u32> {
    Some(value.checked_add(align - 1)? & !(align - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn brute_force(table: &PageTable<4>, count: u32, align: u32) -> Option<u32> {
        (0..table.capacity()).step_by(align as usize).find(|&p| p + count <= table.capacity() && (p..p + count).all(|q| table.is_free(q)))
    }

    #[test]
    fn word_summary_counts_runs() {
        let s = RunSummary::of_word(0b0111_0011_1110_0000u64 | (0b11 << 62) | 1);
        assert_eq!(s, RunSummary { prefix: 1, suffix: 2, longest: 5 });
        assert_eq!(RunSummary::of_word(u64::MAX), RunSummary { prefix: 64, suffix: 64, longest: 64 });
        assert_eq!(RunSummary::of_word(0), RunSummary::NONE_FREE);
    }

    #[test]
    fn search_matches_brute_force_on_patterns() {
        let mut table = PageTable::<4>::new();
        table.adopt_fresh(0, 256);
        // Punch holes of varied sizes so runs cross word boundaries.
        for &(start, count) in &[(3, 2), (60, 10), (100, 1), (130, 60), (250, 3)] {
            table.allocate(start, count);
        }
        for count in 1..=70 {
            for &align in &[1, 2, 4, 16, 64] {
                assert_eq!(table.find_free_run(count, align), brute_force(&table, count, align), "count {count} align {align}");
            }
        }
        assert_eq!(table.longest_free_run(), 60);
        assert_eq!(table.free_run_ending_at(250), 60);
        assert_eq!(table.free_run_ending_at(256), 3);
        assert_eq!(table.free_run_ending_at(130), 29);
        assert_eq!(table.free_run_ending_at(60), 55);
    }

    #[test]
    fn dirty_runs_are_coalesced() {
        let mut table = PageTable::<4>::new();
        table.adopt_fresh(0, 256);
        table.allocate(10, 150);
        table.release(10, 150);
        table.allocate(70, 2); // split the dirty run
        let mut runs = Vec::new();
        table.for_each_dirty_run(0, 256, |s, c| runs.push((s, c)));
        assert_eq!(runs, vec![(10, 60), (72, 88)]);
    }
}

//! The pooling allocator: memory slots reserved once, at engine creation, and
//! reused warm.
//!
//! A slot remembers which memory image it holds, how much of it is accessible
//! and how much the last tenant could have touched. Re-instantiating the same
//! module in a slot costs one `madvise(MADV_DONTNEED)` over the touched range
//! (which restores image pages to the image and other pages to zero), and no
//! mmap, munmap or mprotect unless the last tenant grew the memory. Free slots
//! are kept per image so that a module finds a slot that already holds its image
//! (affinity). Optionally the first `keep_resident` bytes are restored with
//! memset/memcpy instead, which avoids the syscall and the page faults after it;
//! or, with `rewrite_written_pages`, just the pages the tenant wrote, found in
//! `/proc/self/pagemap`, are written back, which changes no page table and so
//! needs no TLB shootdown. A slot whose tenant never ran Wasm nor lent its
//! memory to the host needs no restoring at all.
//!
//! Growth ([`MemoryGrowth`]) either changes protection (`mprotect`, which takes
//! the process-wide mapping lock for writing) or, with
//! [`MemoryGrowth::Truncate`], extends a per-slot memfd that is mapped shared
//! over everything past the initial size: `ftruncate` makes the new pages
//! accessible without touching the mapping lock, and accesses past the file's
//! end fault (SIGBUS) like any out-of-bounds access.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::runtime::image::MemoryImage;
use crate::runtime::sys;

/// Limits of the pooling allocator (see [`Config::allocation_strategy`](crate::Config::allocation_strategy)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolingConfig {
    /// Memory slots reserved at engine creation.
    pub total_memories: u32,
    /// Largest memory a slot holds, in bytes, when memories are bounds-checked
    /// (with guard regions every slot covers the whole 32-bit space).
    pub max_memory_size: u64,
    /// Tables that may be live at once.
    pub total_tables: u32,
    /// Largest table, in elements.
    pub max_table_elements: u64,
    /// Instances that may be live at once.
    pub total_core_instances: u32,
    /// Bytes at the start of each memory restored by memset/memcpy instead of
    /// `madvise` on reuse (0: always madvise).
    pub keep_resident: u64,
    /// Up to this many bytes of the pages the last tenant wrote are restored
    /// by writing them back (image bytes or zeros) instead of an `madvise`
    /// (0, the default: off).
    ///
    /// The written pages are found with one read of `/proc/self/pagemap`
    /// over the range the tenant could reach, and only those are rewritten.
    /// Nothing is unmapped, so there is no TLB shootdown (in a process whose
    /// other threads run on other cores, most of what an `madvise` costs), and
    /// the next tenant finds the pages resident instead of faulting them in.
    /// The price: up to this many bytes per slot stay resident between
    /// tenants, and the pagemap read grows with the memory's size (about
    /// 0.6 µs plus 1.3 ns per 4 KiB page here). When the tenant wrote more, or
    /// the pagemap cannot be read, the slot is discarded with `madvise` as
    /// usual. Slots are then restored when taken, never in batches.
    ///
    /// Measured (BENCHMARKS.md, section 10) on the sightglass modules with
    /// tenants that each write a byte, pooled instantiate + drop against
    /// wasmtime 48: 0.37x (one thread) and 0.18x (two threads) with 1 MiB,
    /// against 0.76x and 0.82x with the default `madvise`.
    pub rewrite_written_pages: u64,
    /// Dropped memories whose pages are given back together, in one
    /// `madvise` per run of adjacent slots (default 1: each slot is cleaned
    /// when it is next taken). In a multi-threaded process every `madvise`
    /// that drops pages costs a TLB shootdown on the other cores, which with
    /// two threads instantiating dominates the cost; batching pays it once per
    /// batch. Batched slots are unavailable until the batch is cleaned (or
    /// until no clean slot is left).
    pub decommit_batch_size: usize,
    /// How pooled memories grow (default [`MemoryGrowth::Protect`], measured
    /// faster once the grown pages are used; see BENCHMARKS.md).
    pub growth: MemoryGrowth,
}

/// How a pooled memory makes grown pages accessible.
///
/// Measured (`cargo bench -p weft --bench instantiate -- growth`): the
/// `ftruncate` itself is cheaper than the `mprotect` and does not contend on
/// the process's mapping lock, but shared-memory pages cost more to fault in
/// and to give back than anonymous ones, so growing and then using the pages
/// is slower overall with [`Truncate`](MemoryGrowth::Truncate). It pays off
/// for guests that grow far more than they touch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MemoryGrowth {
    /// `mprotect` the new pages read-write.
    #[default]
    Protect,
    /// `ftruncate` a memfd mapped shared past the initial size.
    Truncate,
}

impl Default for PoolingConfig {
    fn default() -> Self {
        PoolingConfig {
            total_memories: 1000,
            max_memory_size: 4 << 30,
            total_tables: 1000,
            max_table_elements: 20_000,
            total_core_instances: 1000,
            keep_resident: 0,
            rewrite_written_pages: 0,
            decommit_batch_size: 1,
            growth: MemoryGrowth::Protect,
        }
    }
}

/// What a slot holds between tenants.
#[derive(Debug, Default)]
pub struct SlotState {
    pub image: Option<Arc<MemoryImage>>,
    /// Accessible (read-write) bytes from the start of the slot.
    pub accessible: u64,
    /// Bytes the last tenant could have written.
    pub dirty: u64,
    /// The slot's growth memfd ([`MemoryGrowth::Truncate`]).
    pub extension: Extension,
    /// Whether the slot's probe page is readable (see
    /// [`LinearMemory::probe_page`](crate::runtime::memory::LinearMemory::probe_page)).
    pub probe_page_readable: bool,
}

/// A slot's growth memfd: created at the slot's first use, kept for its life.
#[derive(Debug, Default)]
pub struct Extension {
    pub memfd: Option<std::os::fd::OwnedFd>,
    /// Offset in the slot where the memfd is mapped (the memory's initial size).
    pub mapped_at: Option<u64>,
    /// The memfd's length: bytes accessible past `mapped_at`.
    pub len: u64,
}

struct FreeLists {
    states: Vec<Option<SlotState>>,
    /// Free slots by the id of the image they hold (`None`: no image).
    by_image: HashMap<Option<u64>, Vec<usize>>,
    /// Dropped slots waiting for a batched decommit (their states are in `states`).
    pending: Vec<usize>,
}

/// How to find and bound the pages a tenant wrote.
pub struct RewriteWritten {
    pub pagemap: std::fs::File,
    pub max_bytes: u64,
}

/// Reserved memory slots.
///
/// Each slot is a page followed by `slot_size` bytes for the memory: the page
/// is the memory's probe page in MMU page mode (see
/// [`LinearMemory::probe_page`](crate::runtime::memory::LinearMemory::probe_page)),
/// inaccessible otherwise.
pub struct MemoryPool {
    base: *mut u8,
    /// Bytes for the memory in each slot (after its probe page).
    pub slot_size: u64,
    count: usize,
    pub keep_resident: u64,
    /// [`PoolingConfig::rewrite_written_pages`], with the open pagemap.
    pub rewrite: Option<RewriteWritten>,
    pub growth: MemoryGrowth,
    decommit_batch_size: usize,
    free: Mutex<FreeLists>,
}

// SAFETY: the reservation is owned by the pool; slot state is behind a mutex and
// each slot is used by one memory at a time.
unsafe impl Send for MemoryPool {}
// SAFETY: as above.
unsafe impl Sync for MemoryPool {}

impl MemoryPool {
    pub fn new(config: &PoolingConfig, slot_size: u64) -> anyhow::Result<Arc<MemoryPool>> {
        let count = config.total_memories;
        let page = crate::runtime::code::page_size() as u64;
        let slot_size = slot_size.div_ceil(page) * page;
        let total = (slot_size + page).checked_mul(count as u64).ok_or_else(|| anyhow::anyhow!("memory pool too large"))?;
        let base = if total == 0 { std::ptr::null_mut() } else { sys::reserve(total as usize)? };
        let mut by_image = HashMap::new();
        by_image.insert(None, (0..count as usize).rev().collect());
        Ok(Arc::new(MemoryPool {
            base,
            slot_size,
            count: count as usize,
            keep_resident: config.keep_resident,
            rewrite: match config.rewrite_written_pages {
                0 => None,
                max_bytes => match std::fs::File::open("/proc/self/pagemap") {
                    Ok(pagemap) => Some(RewriteWritten { pagemap, max_bytes }),
                    Err(e) => {
                        log::debug!("rewrite_written_pages is off: /proc/self/pagemap: {e}");
                        None
                    }
                },
            },
            growth: config.growth,
            decommit_batch_size: config.decommit_batch_size.max(1),
            free: Mutex::new(FreeLists { states: (0..count).map(|_| Some(SlotState::default())).collect(), by_image, pending: Vec::new() }),
        }))
    }

    /// Takes a free slot, preferring one that holds `image_id`. Returns the slot,
    /// its base address and its state.
    pub fn take(&self, image_id: Option<u64>) -> Option<(usize, *mut u8, SlotState)> {
        let mut free = self.free.lock().unwrap();
        let slot = match free.by_image.get_mut(&image_id).and_then(|v| v.pop()) {
            Some(s) => s,
            None => match free.by_image.get_mut(&None).and_then(|v| v.pop()) {
                Some(s) => s,
                // Last resort: a slot waiting for decommit, cleaned as it is prepared.
                None => match free.by_image.values_mut().find_map(|v| v.pop()) {
                    Some(s) => s,
                    None => free.pending.pop()?,
                },
            },
        };
        let state = free.states[slot].take().expect("free slot has its state");
        // SAFETY: `slot < count`, so the address is inside the reservation.
        let base = unsafe { self.base.add(self.memory_offset(slot) as usize) };
        Some((slot, base, state))
    }

    /// Where slot `slot`'s memory starts, from the start of the pool: past
    /// the slot's probe page.
    fn memory_offset(&self, slot: usize) -> u64 {
        let page = crate::runtime::code::page_size() as u64;
        slot as u64 * (page + self.slot_size) + page
    }

    /// How far a slot's memory can ever be accessible: the 32-bit index space
    /// (the rest of a guarded slot is guard), or the whole slot.
    pub fn accessible_limit(&self) -> u64 {
        self.slot_size.min(1 << 32)
    }

    /// Returns a slot to the pool (or to the decommit batch, which it then
    /// cleans if it is full).
    pub fn give_back(&self, slot: usize, state: SlotState) {
        let mut free = self.free.lock().unwrap();
        if self.decommit_batch_size > 1 && self.rewrite.is_none() && state.dirty > self.keep_resident {
            free.states[slot] = Some(state);
            free.pending.push(slot);
            if free.pending.len() < self.decommit_batch_size {
                return;
            }
            let batch = std::mem::take(&mut free.pending);
            let mut states: Vec<(usize, SlotState)> = batch.iter().map(|s| (*s, free.states[*s].take().expect("pending slot has its state"))).collect();
            // The system calls run without the lock: the batch's slots are
            // neither free nor pending meanwhile.
            drop(free);
            self.decommit(&mut states);
            let mut free = self.free.lock().unwrap();
            for (slot, state) in states {
                let key = state.image.as_ref().map(|i| i.id);
                free.states[slot] = Some(state);
                free.by_image.entry(key).or_default().push(slot);
            }
            return;
        }
        let key = state.image.as_ref().map(|i| i.id);
        free.states[slot] = Some(state);
        free.by_image.entry(key).or_default().push(slot);
    }

    /// Gives back the pages of a batch of dropped slots past `keep_resident`:
    /// one `madvise` per run of adjacent slots (the span between two slots'
    /// dirty ranges holds no pages: a probe page is never written, and reads
    /// of it map the shared zero page, so covering it costs nothing), plus an
    /// `ftruncate` for each slot that grew into its memfd. Afterwards each
    /// slot is dirty only within `keep_resident`, which `prepare_slot` restores
    /// by writing.
    fn decommit(&self, states: &mut [(usize, SlotState)]) {
        states.sort_by_key(|(slot, _)| *slot);
        let keep = self.keep_resident;
        let mut i = 0;
        while i < states.len() {
            let mut j = i;
            while j + 1 < states.len() && states[j + 1].0 == states[j].0 + 1 {
                j += 1;
            }
            let start = self.memory_offset(states[i].0) + keep.min(states[i].1.dirty);
            let end = self.memory_offset(states[j].0) + states[j].1.dirty.max(keep);
            // SAFETY: the range covers only slots of this batch, which no
            // memory uses while they are out of the free lists.
            let discarded = end <= start || unsafe { sys::discard(self.base.add(start as usize), (end - start) as usize) }.is_ok();
            for (_, state) in &mut states[i..=j] {
                let truncated = match (&state.extension.memfd, state.extension.len) {
                    (Some(fd), len) if len > 0 => sys::truncate(fd, 0).is_ok(),
                    _ => true,
                };
                if discarded && truncated {
                    state.extension.len = 0;
                    state.dirty = state.dirty.min(keep);
                }
                // On failure the state is left dirty: `prepare_slot` cleans it.
            }
            i = j + 1;
        }
    }
}

impl Drop for MemoryPool {
    fn drop(&mut self) {
        if !self.base.is_null() {
            // SAFETY: every memory holds an Arc to the pool, so none is alive.
            unsafe { sys::unmap(self.base, self.memory_offset(self.count) as usize - crate::runtime::code::page_size()) };
        }
    }
}

/// Reusable table element buffers and the live-instance and table counts.
pub struct TablePool {
    buffers: Mutex<Vec<Vec<u64>>>,
    pub max_elements: u64,
    pub total_tables: usize,
    pub live_tables: AtomicUsize,
    pub total_instances: usize,
    pub live_instances: AtomicUsize,
}

impl TablePool {
    pub fn new(config: &PoolingConfig) -> Self {
        TablePool {
            buffers: Mutex::new(Vec::new()),
            max_elements: config.max_table_elements,
            total_tables: config.total_tables as usize,
            live_tables: AtomicUsize::new(0),
            total_instances: config.total_core_instances as usize,
            live_instances: AtomicUsize::new(0),
        }
    }

    /// A buffer of `len` elements set to `init`, reusing a previous allocation.
    pub fn take(&self, len: usize, init: u64) -> anyhow::Result<Vec<u64>> {
        if len as u64 > self.max_elements {
            anyhow::bail!("table of {len} elements exceeds the pool's limit of {}", self.max_elements);
        }
        if self.live_tables.fetch_add(1, Ordering::Relaxed) >= self.total_tables {
            self.live_tables.fetch_sub(1, Ordering::Relaxed);
            anyhow::bail!("all {} pooled tables are in use", self.total_tables);
        }
        let mut buf = self.buffers.lock().unwrap().pop().unwrap_or_default();
        buf.clear();
        buf.resize(len, init);
        Ok(buf)
    }

    pub fn give_back(&self, buf: Vec<u64>) {
        self.live_tables.fetch_sub(1, Ordering::Relaxed);
        self.buffers.lock().unwrap().push(buf);
    }

    /// Counts a new instance against the limit.
    pub fn enter_instance(&self) -> anyhow::Result<()> {
        if self.live_instances.fetch_add(1, Ordering::Relaxed) >= self.total_instances {
            self.live_instances.fetch_sub(1, Ordering::Relaxed);
            anyhow::bail!("all {} pooled instances are in use", self.total_instances);
        }
        Ok(())
    }

    pub fn leave_instance(&self) {
        self.live_instances.fetch_sub(1, Ordering::Relaxed);
    }
}

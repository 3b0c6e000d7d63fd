//! Linear memories: an address-space reservation that never moves, with the
//! accessible prefix read-write and the rest inaccessible.
//!
//! A 32-bit memory with guards reserves 4 GiB plus a 4 GiB guard, so any 32-bit
//! index plus 32-bit offset lands inside the reservation and compiled code needs
//! no bounds checks: out-of-bounds accesses fault and become traps. Other memories
//! reserve up to their maximum (capped) and are bounds-checked by compiled code.
//!
//! The reservation is either the memory's own (on-demand allocation) or a slot of
//! the engine's [`MemoryPool`], and is preceded by one page of its own: the
//! memory's probe page in MMU page interruption (see
//! [`LinearMemory::probe_page`]), inaccessible otherwise. Either way the
//! module's copy-on-write [`MemoryImage`] is mapped over the start, and growth
//! only changes protection (or, for pooled slots with
//! [`MemoryGrowth::Truncate`], the length of the slot's memfd mapped past the
//! initial size): the image is never remapped.

use std::cell::Cell;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::image::MemoryImage;
use crate::runtime::pool::{Extension, MemoryGrowth, MemoryPool, RewriteWritten, SlotState};
use crate::runtime::sys;
use crate::vmctx::VMMemoryDefinition;

pub const WASM_PAGE_SIZE: u64 = 65536;
/// Reservation of a guarded 32-bit memory: any u32 index plus u32 offset.
pub const GUARDED_RESERVATION: u64 = (8 << 30) + WASM_PAGE_SIZE;
/// Largest reservation for memories bounds-checked in code (memory64 and
/// guard-less 32-bit memories); growing past it fails.
const MAX_CHECKED_RESERVATION: u64 = 16 << 30;

/// The shape of a memory to create.
#[derive(Debug, Clone, Copy)]
pub struct MemoryPlan {
    pub minimum: u64,
    pub maximum: Option<u64>,
    pub memory64: bool,
    pub guarded: bool,
}

enum Backing {
    Owned,
    Pooled { pool: Arc<MemoryPool>, slot: usize, extension: Extension },
}

/// A linear memory's backing storage.
pub struct LinearMemory {
    /// Read by compiled code through the vmctx; boxed so its address is stable.
    pub def: Box<VMMemoryDefinition>,
    reservation: u64,
    maximum_bytes: u64,
    initial_bytes: u64,
    image: Option<Arc<MemoryImage>>,
    backing: Backing,
    /// Whether a page may differ from the initial state: set when the host is
    /// handed the bytes and (by the store) when Wasm may have run against the
    /// memory. A memory still clean when it is reset or dropped needs no
    /// restoring, so a pooled slot whose tenant never ran costs no `madvise`,
    /// which with several threads is a TLB shootdown.
    written: Cell<bool>,
    /// Whether the probe page is readable (it starts inaccessible); kept with
    /// a pooled slot for its next tenant.
    probe_page_readable: bool,
}

// SAFETY: the memory is owned by one store; raw pointers refer to our mapping.
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Creates a memory, from `pool` when given and suitable, with `image` mapped
    /// over its start.
    pub fn new(plan: MemoryPlan, image: Option<Arc<MemoryImage>>, pool: Option<&Arc<MemoryPool>>) -> anyhow::Result<Self> {
        let index_max_pages = if plan.memory64 { 1u64 << 48 } else { 1u64 << 16 };
        let max_pages = plan.maximum.unwrap_or(index_max_pages).min(index_max_pages);
        let maximum_bytes = max_pages.saturating_mul(WASM_PAGE_SIZE);
        let initial_bytes = plan
            .minimum
            .checked_mul(WASM_PAGE_SIZE)
            .filter(|b| *b <= maximum_bytes)
            .ok_or_else(|| anyhow::anyhow!("memory minimum size of {} pages exceeds its limits", plan.minimum))?;
        if let Some(pool) = pool.filter(|_| !plan.memory64) {
            if plan.guarded && pool.slot_size < GUARDED_RESERVATION {
                anyhow::bail!("pool slots are smaller than a guarded memory");
            }
            if initial_bytes > pool.slot_size {
                anyhow::bail!("memory of {} pages does not fit a pool slot", plan.minimum);
            }
            return Self::from_pool(pool, initial_bytes, maximum_bytes, image);
        }
        let reservation = if !plan.memory64 && plan.guarded {
            GUARDED_RESERVATION
        } else {
            maximum_bytes.min(MAX_CHECKED_RESERVATION).max(initial_bytes).max(WASM_PAGE_SIZE)
        };
        if initial_bytes > reservation {
            anyhow::bail!("memory of {} pages is larger than Weft can reserve", plan.minimum);
        }
        let probe_page = crate::runtime::code::page_size();
        // SAFETY: the probe page is the first page of the fresh reservation.
        let base = unsafe { sys::reserve(probe_page + reservation as usize)?.add(probe_page) };
        let mem = LinearMemory {
            def: Box::new(VMMemoryDefinition { base, current_length: initial_bytes.into() }),
            reservation,
            maximum_bytes,
            initial_bytes,
            image,
            backing: Backing::Owned,
            written: Cell::new(false),
            probe_page_readable: false,
        };
        // SAFETY: both ranges lie inside the fresh reservation.
        unsafe {
            sys::protect(base, initial_bytes as usize, true)?;
            if let Some(img) = mem.image.as_ref().filter(|i| i.len > 0) {
                sys::map_file_private_fixed(base.add(img.offset as usize), img.len as usize, img.fd())?;
            }
        }
        Ok(mem)
    }

    fn from_pool(pool: &Arc<MemoryPool>, initial_bytes: u64, maximum_bytes: u64, image: Option<Arc<MemoryImage>>) -> anyhow::Result<Self> {
        let image_id = image.as_ref().map(|i| i.id);
        let (slot, base, mut state) = pool.take(image_id).ok_or_else(|| anyhow::anyhow!("all pooled memories are in use"))?;
        let prepared = prepare_slot(base, &mut state, image.as_ref(), initial_bytes, pool);
        if let Err(e) = prepared {
            // The slot's state is unknown: make it fully clean before reuse.
            let extension = Extension { mapped_at: Some(0), len: u64::MAX, ..state.extension };
            state =
                SlotState { image: state.image, accessible: pool.slot_size, dirty: pool.slot_size, extension, probe_page_readable: state.probe_page_readable };
            pool.give_back(slot, state);
            return Err(e);
        }
        Ok(LinearMemory {
            def: Box::new(VMMemoryDefinition { base, current_length: initial_bytes.into() }),
            reservation: pool.slot_size,
            maximum_bytes,
            initial_bytes,
            image,
            backing: Backing::Pooled { pool: pool.clone(), slot, extension: state.extension },
            written: Cell::new(false),
            probe_page_readable: state.probe_page_readable,
        })
    }

    /// Current size in bytes.
    pub fn byte_size(&self) -> u64 {
        self.def.current_length.load(Ordering::Relaxed)
    }

    /// Grows by `delta` pages; returns the old size in pages, or `None` if the
    /// memory cannot grow that far.
    pub fn grow(&mut self, delta: u64) -> Option<u64> {
        let old = self.byte_size();
        let new = delta.checked_mul(WASM_PAGE_SIZE).and_then(|d| old.checked_add(d))?;
        if new > self.maximum_bytes || new > self.reservation {
            return None;
        }
        if new > old {
            match &mut self.backing {
                Backing::Pooled { extension: Extension { memfd: Some(fd), mapped_at: Some(at), len }, .. } => {
                    // The memfd is mapped at the initial size, which `old` is at least.
                    sys::truncate(fd, new - *at).ok()?;
                    *len = new - *at;
                }
                // SAFETY: `old..new` lies inside our reservation, beyond anything mapped from the image.
                _ => unsafe { sys::protect(self.def.base.add(old as usize), (new - old) as usize, true).ok()? },
            }
        }
        self.def.current_length.store(new, Ordering::Relaxed);
        Some(old / WASM_PAGE_SIZE)
    }

    /// Restores the memory to its initial state: initial size, image contents,
    /// zeros elsewhere.
    pub fn reset(&mut self) -> anyhow::Result<()> {
        let accessible = self.byte_size();
        let base = self.def.base;
        let mut state = SlotState { image: self.image.clone(), accessible, dirty: self.dirty_bytes(), ..SlotState::default() };
        match &mut self.backing {
            Backing::Pooled { pool, extension, .. } => {
                state.extension = std::mem::take(extension);
                let prepared = prepare_slot(base, &mut state, self.image.as_ref(), self.initial_bytes, pool);
                *extension = state.extension;
                prepared?;
            }
            Backing::Owned => prepare_owned(base, &state, self.initial_bytes)?,
        }
        self.def.current_length.store(self.initial_bytes, Ordering::Relaxed);
        self.written.set(false);
        Ok(())
    }

    /// The page just below the memory's base, where compiled code probes in
    /// MMU page mode (see [`crate::vmctx::MEMORY_PROBE_PAGE_SIZE`]): part of
    /// the memory's reservation, inaccessible until a store in page mode
    /// makes it readable ([`Self::probe_page_readable`]) and revokes it with
    /// its other probe pages.
    pub fn probe_page(&self) -> *mut u8 {
        self.def.base.wrapping_sub(crate::runtime::code::page_size())
    }

    /// Whether [`Self::probe_page`] is readable, for the store to update as
    /// it makes it so.
    pub fn probe_page_readable(&mut self) -> &mut bool {
        &mut self.probe_page_readable
    }

    /// Records that the memory may no longer be in its initial state.
    pub fn mark_written(&self) {
        self.written.set(true);
    }

    /// The bytes a restore must cover: none if nothing can have written them.
    fn dirty_bytes(&self) -> u64 {
        if self.written.get() {
            self.byte_size()
        } else {
            0
        }
    }

    /// The accessible bytes. Reading changes nothing, so this does not count
    /// as a write; a caller that hands the bytes on calls [`mark_written`](Self::mark_written).
    pub fn data(&self) -> &[u8] {
        // SAFETY: the first `byte_size()` bytes are mapped read-write.
        unsafe { std::slice::from_raw_parts(self.def.base, self.byte_size() as usize) }
    }

    /// The accessible bytes, mutably (counted as a write).
    pub fn data_mut(&mut self) -> &mut [u8] {
        self.mark_written();
        // SAFETY: as in `data`, and we hold the memory exclusively.
        unsafe { std::slice::from_raw_parts_mut(self.def.base, self.byte_size() as usize) }
    }
}

/// Brings an owned memory back to its initial state after use. Its image
/// stays mapped: discarding restores the image's pages.
fn prepare_owned(base: *mut u8, state: &SlotState, initial: u64) -> anyhow::Result<()> {
    // SAFETY: the ranges lie inside the memory's own reservation.
    unsafe {
        sys::discard(base, state.dirty as usize)?;
        if state.accessible > initial {
            sys::protect(base.add(initial as usize), (state.accessible - initial) as usize, false)?;
        }
    }
    Ok(())
}

/// Brings a pool slot whose previous use is described by `state` to a fresh
/// memory of `initial` bytes showing `image`, growing as `pool.growth` says.
/// Updates `state` to match.
///
/// Warm path (same image, same layout): one `madvise` over what the last
/// tenant could have touched below the memfd (or memset with keep-resident),
/// plus one `ftruncate` if it grew into the memfd; no mapping changes.
fn prepare_slot(base: *mut u8, state: &mut SlotState, image: Option<&Arc<MemoryImage>>, initial: u64, pool: &MemoryPool) -> anyhow::Result<()> {
    let same_image = state.image.as_ref().map(|i| i.id) == image.map(|i| i.id);
    let limit = pool.accessible_limit();
    let extension_at = Some(initial).filter(|at| pool.growth == MemoryGrowth::Truncate && *at < limit);
    let layout_kept = state.extension.mapped_at == extension_at;
    // SAFETY: every range below lies inside the slot at `base`, which the
    // caller owns exclusively while preparing it.
    unsafe {
        if !(same_image && layout_kept) {
            if let Some(at) = state.extension.mapped_at.take() {
                // Back to an inaccessible reservation past `at`; the memfd is kept, emptied.
                sys::map_anon_fixed(base.add(at as usize), (limit - at) as usize)?;
                state.accessible = state.accessible.min(at);
                state.dirty = state.dirty.min(at);
            }
            if let Some(fd) = &state.extension.memfd {
                if state.extension.len > 0 {
                    sys::truncate(fd, 0)?;
                    state.extension.len = 0;
                }
            }
            if let Some(old) = state.image.as_ref().filter(|i| i.len > 0) {
                sys::map_anon_fixed(base.add(old.offset as usize), old.len as usize)?;
            }
            sys::discard(base, state.dirty as usize)?;
            sys::protect(base, initial as usize, true)?;
            if state.accessible > initial {
                sys::protect(base.add(initial as usize), (state.accessible - initial) as usize, false)?;
            }
            if let Some(img) = image.filter(|i| i.len > 0) {
                sys::map_file_private_fixed(base.add(img.offset as usize), img.len as usize, img.fd())?;
            }
            if let Some(at) = extension_at {
                if state.extension.memfd.is_none() {
                    state.extension.memfd = Some(sys::memfd(c"weft-memory-growth", false)?);
                }
                let fd = state.extension.memfd.as_ref().map(|f| f.as_raw_fd()).unwrap_or(-1);
                sys::map_file_shared_fixed(base.add(at as usize), (limit - at) as usize, fd)?;
                state.extension.mapped_at = Some(at);
            }
        } else {
            // Only the private part below the memfd needs discarding.
            let private_dirty = match state.extension.mapped_at {
                Some(at) => state.dirty.min(at),
                None => state.dirty,
            };
            let resident = pool.keep_resident.min(private_dirty);
            if resident > 0 {
                restore_range(base, 0, resident, image, false);
            }
            if private_dirty > resident {
                let rewritten = pool.rewrite.as_ref().is_some_and(|r| rewrite_written_pages(base, resident, private_dirty, image, r));
                if !rewritten {
                    sys::discard(base.add(resident as usize), (private_dirty - resident) as usize)?;
                }
            }
            if let (Some(fd), true) = (&state.extension.memfd, state.extension.len > 0) {
                sys::truncate(fd, 0)?;
                state.extension.len = 0;
            }
            if state.extension.mapped_at.is_none() {
                if state.accessible < initial {
                    sys::protect(base.add(state.accessible as usize), (initial - state.accessible) as usize, true)?;
                } else if state.accessible > initial {
                    sys::protect(base.add(initial as usize), (state.accessible - initial) as usize, false)?;
                }
            }
        }
    }
    state.image = image.cloned();
    state.accessible = initial;
    state.dirty = 0;
    Ok(())
}

/// Restores `[start, end)` by writing: image bytes where the image is, zeros
/// elsewhere. With `only_if_different`, bytes that already match are left
/// unwritten (a page that only maps the shared zero page stays that way).
///
/// # Safety
/// `base+start..base+end` must be accessible memory owned by the caller.
unsafe fn restore_range(base: *mut u8, start: u64, end: u64, image: Option<&Arc<MemoryImage>>, only_if_different: bool) {
    // SAFETY: the caller guarantees the range is ours and accessible.
    let bytes = unsafe { std::slice::from_raw_parts_mut(base.add(start as usize), (end - start) as usize) };
    let (image_start, image_end, image_bytes) = match image.filter(|i| i.len > 0) {
        Some(img) => (img.offset.clamp(start, end), (img.offset + img.len).clamp(start, end), img.bytes()),
        None => (end, end, &[][..]),
    };
    let (before, rest) = bytes.split_at_mut((image_start - start) as usize);
    let (imaged, after) = rest.split_at_mut((image_end - image_start) as usize);
    for zeros in [before, after] {
        if !(only_if_different && is_zero(zeros)) {
            zeros.fill(0);
        }
    }
    if !imaged.is_empty() {
        let offset = (image_start - image.map_or(0, |i| i.offset)) as usize;
        let pristine = &image_bytes[offset..offset + imaged.len()];
        if !(only_if_different && imaged == pristine) {
            imaged.copy_from_slice(pristine);
        }
    }
}

/// Whether all bytes are zero (compared a page at a time, with `memcmp`).
fn is_zero(bytes: &[u8]) -> bool {
    static ZERO_PAGE: [u8; 4096] = [0; 4096];
    bytes.chunks(ZERO_PAGE.len()).all(|chunk| chunk == &ZERO_PAGE[..chunk.len()])
}

/// Restores `[start, end)` of the memory at `base` by rewriting only the pages
/// that may differ from the initial state, as `/proc/self/pagemap` shows them:
/// private pages (present and not file pages: copies of image pages and
/// written zero pages) and swapped-out ones. Pages that map the image file or
/// nothing at all are pristine. Returns false when those pages add up to more
/// than the budget or the pagemap cannot be read; some may have been rewritten
/// by then, and the caller discards the whole range.
///
/// # Safety
/// `base+start..base+end` must be accessible memory owned by the caller.
unsafe fn rewrite_written_pages(base: *mut u8, start: u64, end: u64, image: Option<&Arc<MemoryImage>>, rewrite: &RewriteWritten) -> bool {
    const CHUNK: usize = 1024;
    let page = crate::runtime::code::page_size() as u64;
    let (start, end) = (start / page * page, end.div_ceil(page) * page);
    let mut entries = [0u64; CHUNK];
    let mut rewritten = 0;
    let mut chunk_start = start;
    while chunk_start < end {
        let n = ((end - chunk_start) / page).min(CHUNK as u64) as usize;
        // SAFETY: the chunk lies inside the caller's range.
        if sys::pagemap_entries(&rewrite.pagemap, unsafe { base.add(chunk_start as usize) }, &mut entries[..n]).is_err() {
            return false;
        }
        for (i, entry) in entries[..n].iter().enumerate() {
            let private = entry & sys::PAGEMAP_PRESENT != 0 && entry & sys::PAGEMAP_FILE == 0;
            if !(private || entry & sys::PAGEMAP_SWAPPED != 0) {
                continue;
            }
            rewritten += page;
            if rewritten > rewrite.max_bytes {
                return false;
            }
            let at = chunk_start + i as u64 * page;
            // A present private page mapped only here was written; otherwise
            // it may be the shared zero page, which writing would replace with
            // a fresh page for nothing.
            let exclusive = private && entry & sys::PAGEMAP_EXCLUSIVE != 0;
            // SAFETY: the page lies inside the caller's range.
            unsafe { restore_range(base, at, at + page, image, !exclusive) };
        }
        chunk_start += n as u64 * page;
    }
    true
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        let accessible = self.byte_size();
        let dirty = self.dirty_bytes();
        match &mut self.backing {
            Backing::Owned => {
                let probe_page = self.probe_page();
                // SAFETY: we own the reservation, which starts at the probe page.
                unsafe { sys::unmap(probe_page, crate::runtime::code::page_size() + self.reservation as usize) };
            }
            Backing::Pooled { pool, slot, extension } => {
                let extension = std::mem::take(extension);
                pool.give_back(*slot, SlotState { image: self.image.clone(), accessible, dirty, extension, probe_page_readable: self.probe_page_readable });
            }
        }
    }
}

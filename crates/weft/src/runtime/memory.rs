//! Linear memories: an address-space reservation that never moves, with the
//! accessible prefix read-write and the rest inaccessible.
//!
//! A 32-bit memory with guards reserves 4 GiB plus a 4 GiB guard, so any 32-bit
//! index plus 32-bit offset lands inside the reservation and compiled code needs
//! no bounds checks: out-of-bounds accesses fault and become traps. Other memories
//! reserve up to their maximum (capped) and are bounds-checked by compiled code.
//!
//! The reservation is either the memory's own (on-demand allocation) or a slot of
//! the engine's [`MemoryPool`]. Either way the module's copy-on-write
//! [`MemoryImage`] is mapped over the start, and growth only changes protection
//! (or, for pooled slots with [`MemoryGrowth::Truncate`], the length of the
//! slot's memfd mapped past the initial size): the image is never remapped.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::image::MemoryImage;
use crate::runtime::pool::{Extension, MemoryGrowth, MemoryPool, SlotState};
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
        let base = sys::reserve(reservation as usize)?;
        let mem = LinearMemory {
            def: Box::new(VMMemoryDefinition { base, current_length: initial_bytes.into() }),
            reservation,
            maximum_bytes,
            initial_bytes,
            image,
            backing: Backing::Owned,
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
            state = SlotState { image: state.image, accessible: pool.slot_size, dirty: pool.slot_size, extension };
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
        })
    }

    /// Current size in bytes.
    pub fn byte_size(&self) -> u64 {
        self.def.current_length.load(Ordering::Relaxed)
    }

    /// Maximum size in bytes.
    pub fn maximum_bytes(&self) -> u64 {
        self.maximum_bytes
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
        let touched = self.byte_size();
        let base = self.def.base;
        let mut state = SlotState { image: self.image.clone(), accessible: touched, dirty: touched, extension: Extension::default() };
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
        Ok(())
    }

    /// The accessible bytes.
    pub fn data(&self) -> &[u8] {
        // SAFETY: the first `byte_size()` bytes are mapped read-write.
        unsafe { std::slice::from_raw_parts(self.def.base, self.byte_size() as usize) }
    }

    /// The accessible bytes, mutably.
    pub fn data_mut(&mut self) -> &mut [u8] {
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
                restore_resident(base, resident, image);
            }
            if private_dirty > resident {
                sys::discard(base.add(resident as usize), (private_dirty - resident) as usize)?;
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

/// Restores `[0, len)` by writing: image bytes where the image is, zeros elsewhere.
///
/// # Safety
/// `base..base+len` must be accessible memory owned by the caller.
unsafe fn restore_resident(base: *mut u8, len: u64, image: Option<&Arc<MemoryImage>>) {
    // SAFETY: the caller guarantees the range is ours and accessible.
    let bytes = unsafe { std::slice::from_raw_parts_mut(base, len as usize) };
    match image.filter(|i| i.len > 0) {
        Some(img) => {
            let start = img.offset.min(len) as usize;
            let end = (img.offset + img.len).min(len) as usize;
            bytes[..start].fill(0);
            if end > start {
                bytes[start..end].copy_from_slice(&img.bytes()[..end - start]);
            }
            bytes[end..].fill(0);
        }
        None => bytes.fill(0),
    }
}

impl Drop for LinearMemory {
    fn drop(&mut self) {
        let touched = self.byte_size();
        match &mut self.backing {
            Backing::Owned => {
                // SAFETY: we own the reservation.
                unsafe { sys::unmap(self.def.base, self.reservation as usize) };
            }
            Backing::Pooled { pool, slot, extension } => {
                let extension = std::mem::take(extension);
                pool.give_back(*slot, SlotState { image: self.image.clone(), accessible: touched, dirty: touched, extension });
            }
        }
    }
}

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
//! [`MemoryImage`] is mapped over the start, and growth only changes protection:
//! the image is never remapped.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::runtime::image::MemoryImage;
use crate::runtime::pool::{MemoryPool, SlotState};
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
    Pooled { pool: Arc<MemoryPool>, slot: usize },
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
        let prepared = prepare_slot(base, &mut state, image.as_ref(), initial_bytes, pool.keep_resident);
        if let Err(e) = prepared {
            // The slot's state is unknown: make it fully clean before reuse.
            state = SlotState { image: state.image, accessible: pool.slot_size, dirty: pool.slot_size };
            pool.give_back(slot, state);
            return Err(e);
        }
        Ok(LinearMemory {
            def: Box::new(VMMemoryDefinition { base, current_length: initial_bytes.into() }),
            reservation: pool.slot_size,
            maximum_bytes,
            initial_bytes,
            image,
            backing: Backing::Pooled { pool: pool.clone(), slot },
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
            // SAFETY: `old..new` lies inside our reservation, beyond anything mapped from the image.
            unsafe { sys::protect(self.def.base.add(old as usize), (new - old) as usize, true).ok()? };
        }
        self.def.current_length.store(new, Ordering::Relaxed);
        Some(old / WASM_PAGE_SIZE)
    }

    /// Restores the memory to its initial state: initial size, image contents,
    /// zeros elsewhere.
    pub fn reset(&mut self) -> anyhow::Result<()> {
        let touched = self.byte_size();
        let mut state = SlotState { image: self.image.clone(), accessible: touched, dirty: touched };
        let keep = match &self.backing {
            Backing::Pooled { pool, .. } => pool.keep_resident,
            Backing::Owned => 0,
        };
        prepare_slot(self.def.base, &mut state, self.image.as_ref(), self.initial_bytes, keep)?;
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

/// Brings a reservation whose previous use is described by `state` to a fresh
/// memory of `initial` bytes showing `image`. Updates `state` to match.
fn prepare_slot(base: *mut u8, state: &mut SlotState, image: Option<&Arc<MemoryImage>>, initial: u64, keep_resident: u64) -> anyhow::Result<()> {
    let same_image = state.image.as_ref().map(|i| i.id) == image.map(|i| i.id);
    // SAFETY: every range below lies inside the reservation at `base`, which the
    // caller owns exclusively while preparing it.
    unsafe {
        if !same_image {
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
        } else {
            let resident = keep_resident.min(state.dirty);
            if resident > 0 {
                restore_resident(base, resident, image);
            }
            if state.dirty > resident {
                sys::discard(base.add(resident as usize), (state.dirty - resident) as usize)?;
            }
            if state.accessible < initial {
                sys::protect(base.add(state.accessible as usize), (initial - state.accessible) as usize, true)?;
            } else if state.accessible > initial {
                sys::protect(base.add(initial as usize), (state.accessible - initial) as usize, false)?;
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
        match &self.backing {
            Backing::Owned => {
                // SAFETY: we own the reservation.
                unsafe { sys::unmap(self.def.base, self.reservation as usize) };
            }
            Backing::Pooled { pool, slot } => {
                let touched = self.byte_size();
                pool.give_back(*slot, SlotState { image: self.image.clone(), accessible: touched, dirty: touched });
            }
        }
    }
}

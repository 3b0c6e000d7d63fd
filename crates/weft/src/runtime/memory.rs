//! Linear memories: an address-space reservation that never moves, with the
//! accessible prefix read-write and the rest inaccessible.
//!
//! A 32-bit memory with guards reserves 4 GiB plus a 4 GiB guard, so any 32-bit
//! index plus 32-bit offset lands inside the reservation and compiled code needs
//! no bounds checks: out-of-bounds accesses fault and become traps. Other memories
//! reserve up to their maximum (capped) and are bounds-checked by compiled code.
//!
//! [`LinearMemory`] is the seam where copy-on-write images and pooled slots plug
//! in: creation takes the initial contents' source, and growth is one method.

use std::ptr;
use std::sync::atomic::Ordering;

use crate::vmctx::VMMemoryDefinition;

pub const WASM_PAGE_SIZE: u64 = 65536;
const GUARDED_RESERVATION: u64 = (8 << 30) + WASM_PAGE_SIZE;
/// Largest reservation for memories bounds-checked in code (memory64 and
/// guard-less 32-bit memories); growing past it fails.
const MAX_CHECKED_RESERVATION: u64 = 16 << 30;

/// A linear memory's backing storage.
pub struct LinearMemory {
    /// Read by compiled code through the vmctx; boxed so its address is stable.
    pub def: Box<VMMemoryDefinition>,
    reservation: u64,
    maximum_bytes: u64,
}

// SAFETY: the memory is owned by one store; raw pointers refer to our mapping.
unsafe impl Send for LinearMemory {}

impl LinearMemory {
    /// Reserves and maps a memory of `minimum` pages with an optional `maximum`.
    pub fn new(minimum: u64, maximum: Option<u64>, memory64: bool, guarded: bool) -> anyhow::Result<Self> {
        let index_max_pages = if memory64 { 1u64 << 48 } else { 1u64 << 16 };
        let max_pages = maximum.unwrap_or(index_max_pages).min(index_max_pages);
        let maximum_bytes = max_pages.saturating_mul(WASM_PAGE_SIZE);
        let initial_bytes = minimum
            .checked_mul(WASM_PAGE_SIZE)
            .filter(|b| *b <= maximum_bytes)
            .ok_or_else(|| anyhow::anyhow!("memory minimum size of {minimum} pages exceeds its limits"))?;
        let reservation = if !memory64 && guarded {
            GUARDED_RESERVATION
        } else {
            maximum_bytes.min(MAX_CHECKED_RESERVATION).max(initial_bytes).max(WASM_PAGE_SIZE)
        };
        if initial_bytes > reservation {
            anyhow::bail!("memory of {minimum} pages is larger than Weft can reserve");
        }
        // SAFETY: an inaccessible anonymous reservation; the result is checked.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                reservation as usize,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            anyhow::bail!("failed to reserve linear memory: {}", std::io::Error::last_os_error());
        }
        let mem = LinearMemory {
            def: Box::new(VMMemoryDefinition { base: base as *mut u8, current_length: 0.into() }),
            reservation,
            maximum_bytes,
        };
        if initial_bytes > 0 {
            mem.make_accessible(0, initial_bytes)?;
        }
        mem.def.current_length.store(initial_bytes, Ordering::Relaxed);
        Ok(mem)
    }

    fn make_accessible(&self, from: u64, to: u64) -> anyhow::Result<()> {
        // SAFETY: the range lies inside our reservation.
        let rc = unsafe {
            libc::mprotect(self.def.base.add(from as usize) as *mut _, (to - from) as usize, libc::PROT_READ | libc::PROT_WRITE)
        };
        if rc != 0 {
            anyhow::bail!("failed to grow linear memory: {}", std::io::Error::last_os_error());
        }
        Ok(())
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
            self.make_accessible(old, new).ok()?;
        }
        self.def.current_length.store(new, Ordering::Relaxed);
        Some(old / WASM_PAGE_SIZE)
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

impl Drop for LinearMemory {
    fn drop(&mut self) {
        // SAFETY: we own the reservation.
        unsafe { libc::munmap(self.def.base as *mut _, self.reservation as usize) };
    }
}

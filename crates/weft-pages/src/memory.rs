//! The "grow" primitive: where fresh, zeroed memory comes from.

/// Size of one WebAssembly page (the unit of `memory.grow`), in bytes.
pub const WASM_PAGE_SIZE: usize = 64 * 1024;

/// A WebAssembly linear memory that can only grow, and whose new pages are zero.
///
/// The page manager relies on two properties that `memory.grow` guarantees:
/// memory never shrinks, and every page returned by a grow reads as zero.
/// Other allocators in the same program may grow the memory too; the manager
/// notices that through [`size_in_wasm_pages`](LinearMemory::size_in_wasm_pages)
/// and never touches pages it did not grow itself.
pub trait LinearMemory {
    /// Current size of the memory, in Wasm pages of [`WASM_PAGE_SIZE`] bytes.
    fn size_in_wasm_pages(&self) -> usize;

    /// Grows the memory by `delta` Wasm pages, which must read as zero.
    ///
    /// Returns the previous size in Wasm pages (so the new pages start at
    /// `previous * WASM_PAGE_SIZE`), or `None` if the memory cannot grow.
    fn grow_wasm_pages(&mut self, delta: usize) -> Option<usize>;

    /// Writes zeros over `len` bytes starting at linear-memory address `addr`.
    ///
    /// # Safety
    ///
    /// `addr..addr + len` must lie inside the current memory and must not be in
    /// use by anybody else (the page manager only calls it on pages it owns and
    /// is about to hand out).
    unsafe fn fill_zero(&mut self, addr: usize, len: usize);
}

/// The real linear memory 0 of the running Wasm module.
///
/// Addresses handed out by the manager are plain pointers on wasm32.
#[cfg(target_arch = "wasm32")]
#[derive(Debug, Default, Clone, Copy)]
pub struct Wasm32Memory;

#[cfg(target_arch = "wasm32")]
impl LinearMemory for Wasm32Memory {
    fn size_in_wasm_pages(&self) -> usize {
        core::arch::wasm32::memory_size(0)
    }

    fn grow_wasm_pages(&mut self, delta: usize) -> Option<usize> {
        let previous = core::arch::wasm32::memory_grow(0, delta);
        if previous == usize::MAX {
            None
        } else {
            Some(previous)
        }
    }

    unsafe fn fill_zero(&mut self, addr: usize, len: usize) {
        // SAFETY: the caller guarantees that the range is inside linear memory
        // (so the pointer is valid for writes) and owned by the page manager,
        // so nobody else holds a reference into it.
        unsafe { core::ptr::write_bytes(addr as *mut u8, 0, len) }
    }
}

/// A simulated linear memory over a caller-provided byte buffer.
///
/// Used for native tests and benchmarks. The buffer is the reservation: the
/// memory starts at `initial_wasm_pages` and can grow until the buffer is full.
/// Tests simulate a *foreign* allocator by calling
/// [`grow_wasm_pages`](LinearMemory::grow_wasm_pages) directly on it.
///
/// The part of the buffer beyond the initial size must be zero (as with a
/// fresh `vec![0u8; n]`, which the OS maps lazily), because grown pages are
/// promised to read as zero; the constructor does not scan it.
///
/// # Example
///
/// ```
/// use weft_pages::{LinearMemory, SliceMemory, WASM_PAGE_SIZE};
///
/// let mut buffer = vec![0u8; 4 * WASM_PAGE_SIZE];
/// let mut memory = SliceMemory::new(&mut buffer, 1);
/// assert_eq!(memory.grow_wasm_pages(2), Some(1));
/// assert_eq!(memory.grow_wasm_pages(2), None); // only 1 page of room left
/// assert_eq!(memory.bytes().len(), 3 * WASM_PAGE_SIZE);
/// ```
#[derive(Debug)]
pub struct SliceMemory<'a> {
    buffer: &'a mut [u8],
    size_in_wasm_pages: usize,
}

impl<'a> SliceMemory<'a> {
    /// Wraps `buffer`, of which the first `initial_wasm_pages` are in use.
    ///
    /// # Panics
    ///
    /// If the buffer is smaller than `initial_wasm_pages` Wasm pages.
    pub fn new(buffer: &'a mut [u8], initial_wasm_pages: usize) -> Self {
        assert!(initial_wasm_pages * WASM_PAGE_SIZE <= buffer.len(), "buffer too small for the initial size");
        SliceMemory { buffer, size_in_wasm_pages: initial_wasm_pages }
    }

    /// The bytes of the memory as grown so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buffer[..self.size_in_wasm_pages * WASM_PAGE_SIZE]
    }

    /// The bytes of the memory as grown so far, writable.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.buffer[..self.size_in_wasm_pages * WASM_PAGE_SIZE]
    }
}

impl LinearMemory for SliceMemory<'_> {
    fn size_in_wasm_pages(&self) -> usize {
        self.size_in_wasm_pages
    }

    fn grow_wasm_pages(&mut self, delta: usize) -> Option<usize> {
        let previous = self.size_in_wasm_pages;
        let new_size = previous.checked_add(delta)?;
        if new_size.checked_mul(WASM_PAGE_SIZE)? > self.buffer.len() {
            return None;
        }
        self.size_in_wasm_pages = new_size;
        Some(previous)
    }

    unsafe fn fill_zero(&mut self, addr: usize, len: usize) {
        // Bounds-checked: a bad range panics instead of corrupting memory.
        self.bytes_mut()[addr..addr + len].fill(0);
    }
}

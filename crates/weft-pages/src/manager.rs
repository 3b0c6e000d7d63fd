//! The page manager: first-fit allocation over the page table, growing the
//! linear memory on demand.

use core::fmt;

use crate::memory::{LinearMemory, WASM_PAGE_SIZE};
use crate::table::PageTable;

/// Default table size in 64-bit words: 1024 words = 65,536 pages, i.e. the
/// whole 4 GiB address space in 64 KiB pages (48 KiB of metadata).
pub const DEFAULT_WORDS: usize = 1024;

/// Tuning of a [`PageManager`].
///
/// # Example
///
/// ```
/// use weft_pages::Config;
///
/// let config = Config::DEFAULT.with_page_size(16 * 1024).with_min_grow_wasm_pages(64);
/// assert_eq!(config.page_size(), 16 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    page_shift: u32,
    min_grow_wasm_pages: usize,
}

impl Config {
    /// 64 KiB pages (one Wasm page each), growing memory by at least 1 MiB at a time.
    pub const DEFAULT: Config = Config { page_shift: 16, min_grow_wasm_pages: 16 };

    /// Sets the page size (the granularity of `mmap`/`munmap`).
    ///
    /// Smaller pages waste less memory on small mappings but need a larger
    /// table (`WORDS * 64` pages) to cover the same address space.
    ///
    /// # Panics
    ///
    /// If `bytes` is not a power of two between 1 KiB and 64 KiB.
    pub const fn with_page_size(self, bytes: usize) -> Config {
        assert!(bytes.is_power_of_two() && bytes >= 1024 && bytes <= WASM_PAGE_SIZE, "page size must be a power of two between 1 KiB and 64 KiB");
        Config { page_shift: bytes.trailing_zeros(), ..self }
    }

    /// Sets the smallest `memory.grow` the manager issues, in Wasm pages.
    ///
    /// Growing in large chunks keeps the number of (slow) grows low and
    /// leaves a free-zeroed tail that later grows weld onto.
    pub const fn with_min_grow_wasm_pages(self, wasm_pages: usize) -> Config {
        Config { min_grow_wasm_pages: wasm_pages, ..self }
    }

    /// The page size in bytes.
    pub const fn page_size(&self) -> usize {
        1 << self.page_shift
    }
}

/// What the manager knows about one page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageState {
    /// Owned, free, and known to read as zero (never handed out since `memory.grow`).
    FreeZeroed,
    /// Owned and free, but handed out before: must be cleared for a zeroed request.
    FreeDirty,
    /// Owned and handed out by `mmap`.
    Allocated,
    /// Inside the memory but grown by somebody else; never touched.
    Foreign,
    /// Beyond the memory size the manager last saw.
    Unmapped,
}

/// Why `mmap` or `munmap` failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The length was zero.
    ZeroLength,
    /// The alignment was not a power of two.
    BadAlignment,
    /// The address given to `munmap` was not page-aligned.
    UnalignedAddress,
    /// `munmap` covered pages that the manager does not own (foreign or unmapped).
    NotOwned,
    /// No free run fits and the memory cannot grow (or grew past the table).
    OutOfMemory,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let message = match self {
            Error::ZeroLength => "length is zero",
            Error::BadAlignment => "alignment is not a power of two",
            Error::UnalignedAddress => "address is not page-aligned",
            Error::NotOwned => "range contains pages not owned by the page manager",
            Error::OutOfMemory => "out of memory",
        };
        f.write_str(message)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for Error {}

/// Counters reported by [`PageManager::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Page size in bytes.
    pub page_size: usize,
    /// Pages currently handed out.
    pub pages_in_use: usize,
    /// Pages owned by the manager (in use or free).
    pub pages_owned: usize,
    /// Bytes cleared with `memset` for zeroed requests (free-dirty pages only).
    pub bytes_memset: u64,
    /// Bytes handed out for zeroed requests without `memset`, because they
    /// were free-zeroed.
    pub bytes_avoided: u64,
    /// Longest run of free owned pages, in bytes.
    pub largest_free_run_bytes: u64,
}

/// A zero-aware page allocator over a [`LinearMemory`].
///
/// `WORDS` sizes the page table: it covers `WORDS * 64` pages from address 0
/// (a power of two, at most 2^14). The default covers 4 GiB of 64 KiB pages;
/// with smaller pages, pick a larger `WORDS` or accept a smaller range
/// (memory beyond it is never used, and `mmap` fails with
/// [`Error::OutOfMemory`] once the memory outgrows the table).
///
/// All addresses are linear-memory addresses (plain pointers on wasm32).
/// The manager never returns address 0: if it ever grows the memory from
/// size 0, it leaves the first page unused.
///
/// Not thread-safe by itself (methods take `&mut self`); wrap it in a
/// `SpinLock` (feature `threads`) to share it.
pub struct PageManager<M: LinearMemory, const WORDS: usize = DEFAULT_WORDS> {
    memory: M,
    config: Config,
    table: PageTable<WORDS>,
    /// End (in pages) of the memory accounted for: owned or known foreign.
    known_end: u64,
    pages_in_use: usize,
    bytes_memset: u64,
    bytes_avoided: u64,
}

impl<M: LinearMemory, const WORDS: usize> PageManager<M, WORDS> {
    /// Creates a manager that owns nothing yet; the first `mmap` grows the memory.
    ///
    /// `const` so that a global manager can live in a `static`.
    ///
    /// # Panics
    ///
    /// If `WORDS` is not a power of two no larger than 2^14.
    pub const fn new(memory: M, config: Config) -> Self {
        PageManager { memory, config, table: PageTable::new(), known_end: 0, pages_in_use: 0, bytes_memset: 0, bytes_avoided: 0 }
    }

    /// The page size in bytes.
    pub fn page_size(&self) -> usize {
        self.config.page_size()
    }

    /// The underlying memory.
    pub fn memory(&self) -> &M {
        &self.memory
    }

    /// The underlying memory, e.g. for a test to grow it as a foreign allocator would.
    pub fn memory_mut(&mut self) -> &mut M {
        &mut self.memory
    }

    /// Allocates `len` bytes (rounded up to whole pages) at a page-aligned
    /// address that is also a multiple of `align`.
    ///
    /// Picks the lowest address that fits (first-fit), growing the memory if
    /// nothing does. With `zeroed`, the returned memory reads as zero; only
    /// pages that were handed out before are cleared, fresh pages from
    /// `memory.grow` are not. Without `zeroed`, nothing is cleared.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroLength`], [`Error::BadAlignment`] if `align` is not a power
    /// of two (use 1 for page alignment), [`Error::OutOfMemory`].
    pub fn mmap(&mut self, len: usize, align: usize, zeroed: bool) -> Result<usize, Error> {
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if !align.is_power_of_two() {
            return Err(Error::BadAlignment);
        }
        let shift = self.config.page_shift;
        let page_count = len.checked_add(self.page_size() - 1).map(|rounded| rounded >> shift).ok_or(Error::OutOfMemory)?;
        let align_pages = (align >> shift).max(1);
        if page_count > self.table.capacity() as usize || align_pages > self.table.capacity() as usize {
            return Err(Error::OutOfMemory);
        }
        let (page_count, align_pages) = (page_count as u32, align_pages as u32);

        let start = match self.table.find_free_run(page_count, align_pages) {
            Some(start) => start,
            None => self.grow_for(page_count, align_pages)?,
        };

        if zeroed {
            let page_size = self.page_size() as u64;
            let mut cleared_pages = 0u64;
            let memory = &mut self.memory;
            self.table.for_each_dirty_run(start, page_count, |run_start, run_len| {
                // SAFETY: the run consists of free pages owned by the manager,
                // so it lies inside the memory and nobody else uses it.
                unsafe { memory.fill_zero((run_start as usize) << shift, (run_len as usize) << shift) };
                cleared_pages += u64::from(run_len);
            });
            self.bytes_memset += cleared_pages * page_size;
            self.bytes_avoided += (u64::from(page_count) - cleared_pages) * page_size;
        }
        self.table.allocate(start, page_count);
        self.pages_in_use += page_count as usize;
        Ok((start as usize) << shift)
    }

    /// Frees the pages overlapping `addr..addr + len`.
    ///
    /// Any page range may be freed: a whole allocation, part of one (its
    /// middle too), or a range spanning several; pages in it that are already
    /// free keep their state. Freed pages become free-dirty; nothing is cleared.
    ///
    /// # Errors
    ///
    /// [`Error::ZeroLength`], [`Error::UnalignedAddress`], and
    /// [`Error::NotOwned`] if any page in the range is foreign or beyond the
    /// memory (then nothing is freed).
    pub fn munmap(&mut self, addr: usize, len: usize) -> Result<(), Error> {
        if len == 0 {
            return Err(Error::ZeroLength);
        }
        if addr % self.page_size() != 0 {
            return Err(Error::UnalignedAddress);
        }
        let shift = self.config.page_shift;
        let start = (addr >> shift) as u64;
        let end = addr.checked_add(len).and_then(|end| end.checked_add(self.page_size() - 1)).map(|end| (end >> shift) as u64).ok_or(Error::NotOwned)?;
        if end > u64::from(self.table.capacity()) || end > self.known_end {
            return Err(Error::NotOwned);
        }
        let (start, count) = (start as u32, (end - start) as u32);
        if !self.table.all_owned(start, count) {
            return Err(Error::NotOwned);
        }
        self.pages_in_use -= self.table.release(start, count) as usize;
        Ok(())
    }

    /// Current counters.
    pub fn stats(&self) -> Stats {
        let page_size = self.page_size();
        Stats {
            page_size,
            pages_in_use: self.pages_in_use,
            pages_owned: self.table.owned_count() as usize,
            bytes_memset: self.bytes_memset,
            bytes_avoided: self.bytes_avoided,
            largest_free_run_bytes: u64::from(self.table.longest_free_run()) * page_size as u64,
        }
    }

    /// State of page number `page` (address `page * page_size`).
    pub fn page_state(&self, page: usize) -> PageState {
        if page >= self.table.capacity() as usize || page as u64 >= self.known_end {
            if (page as u64) < self.memory_end_pages() {
                return PageState::Foreign; // grown by somebody else since we last looked
            }
            return PageState::Unmapped;
        }
        let page = page as u32;
        match (self.table.is_owned(page), self.table.is_free(page), self.table.is_dirty(page)) {
            (false, _, _) => PageState::Foreign,
            (true, false, _) => PageState::Allocated,
            (true, true, false) => PageState::FreeZeroed,
            (true, true, true) => PageState::FreeDirty,
        }
    }

    /// Lowest page index `p`, a multiple of `align_pages`, such that pages
    /// `p..p + page_count` are all free; what `mmap` would use without growing.
    ///
    /// Exposed for diagnostics and for checking the search against a scan.
    /// Returns `None` if nothing fits, or if either argument is zero.
    pub fn find_free_run(&self, page_count: usize, align_pages: usize) -> Option<usize> {
        if page_count == 0 || !align_pages.is_power_of_two() {
            return None;
        }
        let capacity = self.table.capacity() as usize;
        if page_count > capacity || align_pages > capacity {
            return None;
        }
        self.table.find_free_run(page_count as u32, align_pages as u32).map(|page| page as usize)
    }

    fn memory_end_pages(&self) -> u64 {
        (self.memory.size_in_wasm_pages() as u64 * WASM_PAGE_SIZE as u64) >> self.config.page_shift
    }

    /// Grows the memory so that `page_count` pages aligned to `align_pages`
    /// fit, and returns where. Welds onto the free tail when nobody else grew
    /// the memory since our last grow.
    fn grow_for(&mut self, page_count: u32, align_pages: u32) -> Result<u32, Error> {
        let pages_per_wasm_page = (WASM_PAGE_SIZE >> self.config.page_shift) as u64;
        let capacity = u64::from(self.table.capacity());
        // A foreign grow racing ours (other threads) can make a grow land
        // elsewhere; retry a few times before giving up.
        for _ in 0..4 {
            // Whatever appeared since our last look was grown by somebody else.
            self.known_end = self.known_end.max(self.memory_end_pages());
            let end = self.known_end;
            let tail = if end <= capacity { u64::from(self.table.free_run_ending_at(end as u32)) } else { 0 };
            let start = align_up_u64(end - tail, u64::from(align_pages));
            let needed_end = start + u64::from(page_count);
            if needed_end > capacity {
                return Err(Error::OutOfMemory);
            }
            let needed_wasm_pages = (needed_end - end + pages_per_wasm_page - 1) / pages_per_wasm_page;
            let room_wasm_pages = (capacity - end) / pages_per_wasm_page;
            let mut delta = needed_wasm_pages.max(self.config.min_grow_wasm_pages as u64).min(room_wasm_pages);

            let previous = match self.memory.grow_wasm_pages(delta as usize) {
                Some(previous) => previous,
                // The big chunk did not fit: settle for exactly what is needed.
                None if delta > needed_wasm_pages => {
                    delta = needed_wasm_pages;
                    self.memory.grow_wasm_pages(delta as usize).ok_or(Error::OutOfMemory)?
                }
                None => return Err(Error::OutOfMemory),
            } as u64;
            let grown_start = previous * pages_per_wasm_page;
            let grown_end = (grown_start + delta * pages_per_wasm_page).min(capacity);
            self.known_end = self.known_end.max(grown_start + delta * pages_per_wasm_page);
            // Never hand out address 0 (it would read as a null pointer).
            let adopt_start = grown_start.max(1);
            if grown_end > adopt_start {
                self.table.adopt_fresh(adopt_start as u32, (grown_end - adopt_start) as u32);
            }
            if let Some(found) = self.table.find_free_run(page_count, align_pages) {
                return Ok(found);
            }
        }
        Err(Error::OutOfMemory)
    }
}

fn align_up_u64(value: u64, align: u64) -> u64 {
    (value + align - 1) & !(align - 1)
}

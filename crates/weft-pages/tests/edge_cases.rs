//! Unit tests for the interesting edge cases of the page manager.

use weft_pages::{Config, Error, LinearMemory, PageManager, PageState, SliceMemory, WASM_PAGE_SIZE};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A manager with 64 KiB pages over a 32 MiB buffer, 1 Wasm page already used.
fn manager(buffer: &mut [u8], min_grow_wasm_pages: usize) -> PageManager<SliceMemory<'_>, 16> {
    let config = Config::DEFAULT.with_min_grow_wasm_pages(min_grow_wasm_pages);
    PageManager::new(SliceMemory::new(buffer, 1), config)
}

#[test]
fn fresh_pages_are_handed_out_without_memset() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 16);
    let a = pages.mmap(3 * MIB, 1, true).unwrap();
    let b = pages.mmap(MIB, 1, true).unwrap();
    assert_eq!(a, WASM_PAGE_SIZE, "first fit right after the program's page");
    assert_eq!(b, a + 3 * MIB);
    let stats = pages.stats();
    assert_eq!(stats.bytes_memset, 0);
    assert_eq!(stats.bytes_avoided, 4 * MIB as u64);
    assert_eq!(stats.pages_in_use, 64);
}

#[test]
fn consecutive_grows_weld_into_one_run() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 4);
    // Grows 4 Wasm pages, uses 1: a 3-page free tail remains.
    let small = pages.mmap(WASM_PAGE_SIZE, 1, false).unwrap();
    assert_eq!(pages.memory().size_in_wasm_pages(), 5);
    // 10 pages don't fit in the tail; the grow is welded onto it, so the
    // allocation starts in the old tail right after `small`, and the memory
    // only grows by the 7 missing pages.
    let big = pages.mmap(10 * WASM_PAGE_SIZE, 1, true).unwrap();
    assert_eq!(big, small + WASM_PAGE_SIZE);
    assert_eq!(pages.memory().size_in_wasm_pages(), 12);
    assert_eq!(pages.stats().bytes_memset, 0);
    assert_eq!(pages.stats().largest_free_run_bytes, 0);
}

#[test]
fn foreign_grow_in_between_is_never_touched() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 2);
    let first = pages.mmap(WASM_PAGE_SIZE, 1, true).unwrap(); // 1-page free tail remains
                                                              // Another allocator grows memory right after ours and fills it.
    let foreign_start = pages.memory_mut().grow_wasm_pages(3).unwrap() * WASM_PAGE_SIZE;
    pages.memory_mut().bytes_mut()[foreign_start..foreign_start + 3 * WASM_PAGE_SIZE].fill(0xAB);

    // Two pages can't use the 1-page tail (the foreign block is in the way).
    let second = pages.mmap(2 * WASM_PAGE_SIZE, 1, true).unwrap();
    assert_eq!(second, foreign_start + 3 * WASM_PAGE_SIZE);
    // The 1-page tail before the foreign block is still used first-fit.
    let third = pages.mmap(WASM_PAGE_SIZE, 1, true).unwrap();
    assert_eq!(third, first + WASM_PAGE_SIZE);

    let foreign_page = foreign_start / WASM_PAGE_SIZE;
    assert_eq!(pages.page_state(foreign_page), PageState::Foreign);
    assert_eq!(pages.munmap(foreign_start, WASM_PAGE_SIZE), Err(Error::NotOwned));
    // A range straddling our pages and foreign ones frees nothing.
    assert_eq!(pages.munmap(third, 2 * WASM_PAGE_SIZE), Err(Error::NotOwned));
    assert_eq!(pages.page_state(third / WASM_PAGE_SIZE), PageState::Allocated);
    let foreign = &pages.memory().bytes()[foreign_start..foreign_start + 3 * WASM_PAGE_SIZE];
    assert!(foreign.iter().all(|b| *b == 0xAB));
}

#[test]
fn munmap_of_the_middle_of_an_allocation() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 16);
    let base = pages.mmap(8 * WASM_PAGE_SIZE, 1, true).unwrap();
    pages.memory_mut().bytes_mut()[base..base + 8 * WASM_PAGE_SIZE].fill(0x77);
    let first_page = base / WASM_PAGE_SIZE;

    pages.munmap(base + 3 * WASM_PAGE_SIZE, 2 * WASM_PAGE_SIZE).unwrap();
    let states: Vec<_> = (first_page..first_page + 8).map(|p| pages.page_state(p)).collect();
    use PageState::*;
    assert_eq!(states, [Allocated, Allocated, Allocated, FreeDirty, FreeDirty, Allocated, Allocated, Allocated]);
    assert_eq!(pages.stats().pages_in_use, 6);

    // The hole is the lowest fit: it is reused and cleared (and only it).
    let reused = pages.mmap(2 * WASM_PAGE_SIZE, 1, true).unwrap();
    assert_eq!(reused, base + 3 * WASM_PAGE_SIZE);
    assert_eq!(pages.stats().bytes_memset, 2 * WASM_PAGE_SIZE as u64);
    let bytes = pages.memory().bytes();
    assert!(bytes[reused..reused + 2 * WASM_PAGE_SIZE].iter().all(|b| *b == 0));
    assert!(bytes[base..reused].iter().all(|b| *b == 0x77));
    assert!(bytes[reused + 2 * WASM_PAGE_SIZE..base + 8 * WASM_PAGE_SIZE].iter().all(|b| *b == 0x77));
}

#[test]
fn unzeroed_requests_skip_memset_and_free_never_clears() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 16);
    let a = pages.mmap(2 * WASM_PAGE_SIZE, 1, false).unwrap();
    pages.memory_mut().bytes_mut()[a..a + 2 * WASM_PAGE_SIZE].fill(1);
    pages.munmap(a, 2 * WASM_PAGE_SIZE).unwrap();
    assert!(pages.memory().bytes()[a..a + 2 * WASM_PAGE_SIZE].iter().all(|b| *b == 1));
    let b = pages.mmap(2 * WASM_PAGE_SIZE, 1, false).unwrap();
    assert_eq!(b, a);
    assert_eq!(pages.stats().bytes_memset, 0);
    assert_eq!(pages.stats().bytes_avoided, 0);
}

#[test]
fn munmap_keeps_free_zeroed_pages_zeroed() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 16);
    let a = pages.mmap(WASM_PAGE_SIZE, 1, true).unwrap();
    // Unmapping a range that also covers never-used free pages leaves them zeroed.
    pages.munmap(a, 4 * WASM_PAGE_SIZE).unwrap();
    let page = a / WASM_PAGE_SIZE;
    assert_eq!(pages.page_state(page), PageState::FreeDirty);
    assert_eq!(pages.page_state(page + 1), PageState::FreeZeroed);
    assert_eq!(pages.page_state(page + 3), PageState::FreeZeroed);
}

#[test]
fn alignment_larger_than_a_page() {
    let mut buffer = vec![0u8; 32 * MIB];
    let mut pages = manager(&mut buffer, 1);
    let align = MIB;
    let a = pages.mmap(WASM_PAGE_SIZE, align, true).unwrap();
    assert_eq!(a % align, 0);
    assert_eq!(a, MIB, "lowest 1 MiB boundary above the program's page");
    // The pages skipped for alignment stay free and are used first-fit.
    let filler = pages.mmap(WASM_PAGE_SIZE, 1, true).unwrap();
    assert_eq!(filler, WASM_PAGE_SIZE);
    let b = pages.mmap(3 * WASM_PAGE_SIZE, 4 * WASM_PAGE_SIZE, true).unwrap();
    assert_eq!(b, 4 * WASM_PAGE_SIZE);
    assert_eq!(pages.mmap(WASM_PAGE_SIZE, 3 * WASM_PAGE_SIZE, true), Err(Error::BadAlignment));
}

#[test]
fn smaller_pages_split_wasm_pages() {
    let mut buffer = vec![0u8; 32 * MIB];
    let config = Config::DEFAULT.with_page_size(4 * KIB).with_min_grow_wasm_pages(1);
    let mut pages: PageManager<_, 64> = PageManager::new(SliceMemory::new(&mut buffer, 1), config);
    let a = pages.mmap(5000, 1, true).unwrap(); // two 4 KiB pages
    let b = pages.mmap(1, 1, true).unwrap();
    assert_eq!(b, a + 8 * KIB);
    assert_eq!(pages.memory().size_in_wasm_pages(), 2);
    pages.munmap(a + 4 * KIB, 4 * KIB).unwrap();
    assert_eq!(pages.page_state(a / (4 * KIB) + 1), PageState::FreeDirty);
    assert_eq!(pages.munmap(a + 100, 4 * KIB), Err(Error::UnalignedAddress));
}

#[test]
fn address_zero_is_never_returned() {
    let mut buffer = vec![0u8; 4 * MIB];
    let mut pages: PageManager<_, 16> = PageManager::new(SliceMemory::new(&mut buffer, 0), Config::DEFAULT);
    let a = pages.mmap(WASM_PAGE_SIZE, 1, true).unwrap();
    assert_eq!(a, WASM_PAGE_SIZE);
    assert_eq!(pages.page_state(0), PageState::Foreign);
}

#[test]
fn errors_and_exhaustion() {
    let mut buffer = vec![0u8; 2 * MIB];
    let mut pages = manager(&mut buffer, 16);
    assert_eq!(pages.mmap(0, 1, true), Err(Error::ZeroLength));
    assert_eq!(pages.munmap(WASM_PAGE_SIZE, 0), Err(Error::ZeroLength));
    assert_eq!(pages.munmap(WASM_PAGE_SIZE, 1), Err(Error::NotOwned), "nothing owned yet");
    // 31 Wasm pages of room: 30 of them in one go, then the 1 MiB minimum
    // grow no longer fits and is cut down to the one page needed.
    let most = pages.mmap(30 * WASM_PAGE_SIZE, 1, true).unwrap();
    let last = pages.mmap(1, 1, true).unwrap();
    assert_eq!(last, most + 30 * WASM_PAGE_SIZE);
    assert_eq!(pages.mmap(1, 1, true), Err(Error::OutOfMemory));
    pages.munmap(last, 1).unwrap();
    let all = most;
    pages.munmap(all, 30 * WASM_PAGE_SIZE).unwrap();
    assert_eq!(pages.mmap(31 * WASM_PAGE_SIZE, 1, true).unwrap(), all);
    assert_eq!(pages.stats().bytes_memset, 31 * WASM_PAGE_SIZE as u64);
}

#[test]
fn table_capacity_limits_growth() {
    // 1 word = 64 pages of 64 KiB = 4 MiB covered, buffer is larger.
    let mut buffer = vec![0u8; 16 * MIB];
    let mut pages: PageManager<_, 1> = PageManager::new(SliceMemory::new(&mut buffer, 1), Config::DEFAULT);
    assert!(pages.mmap(63 * WASM_PAGE_SIZE, 1, false).is_ok());
    assert_eq!(pages.mmap(WASM_PAGE_SIZE, 1, false), Err(Error::OutOfMemory));
    assert_eq!(pages.memory().size_in_wasm_pages(), 64);
}

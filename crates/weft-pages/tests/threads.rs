//! Several threads sharing one manager through `SpinLock` (feature `threads`):
//! `cargo test -p weft-pages --features threads`.
#![cfg(feature = "threads")]

use std::thread;

use weft_pages::{Config, PageManager, SliceMemory, SpinLock};

const PAGE: usize = 4096;
const THREADS: usize = 4;
const ROUNDS: usize = 2000;

#[test]
fn threads_never_get_overlapping_pages() {
    let buffer: &'static mut [u8] = Box::leak(vec![0u8; 64 << 20].into_boxed_slice());
    let config = Config::DEFAULT.with_page_size(PAGE).with_min_grow_wasm_pages(4);
    let shared: &'static SpinLock<PageManager<SliceMemory<'static>, 256>> =
        Box::leak(Box::new(SpinLock::new(PageManager::new(SliceMemory::new(buffer, 1), config))));

    let workers: Vec<_> = (0..THREADS)
        .map(|thread_index| {
            thread::spawn(move || {
                let tag = thread_index as u8 + 1;
                let mut mine: Vec<(usize, usize)> = Vec::new();
                let mut seed = 0x9E37_79B9_7F4A_7C15u64 ^ thread_index as u64;
                for _ in 0..ROUNDS {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    if mine.len() < 8 && !seed.is_multiple_of(3) {
                        let len = (1 + (seed >> 8) as usize % 16) * PAGE;
                        let mut pages = shared.lock();
                        let addr = pages.mmap(len, PAGE, true).expect("mmap");
                        let bytes = &mut pages.memory_mut().bytes_mut()[addr..addr + len];
                        assert!(bytes.iter().all(|b| *b == 0), "zeroed mapping not zero");
                        bytes.fill(tag);
                        mine.push((addr, len));
                    } else if let Some((addr, len)) = mine.pop() {
                        let mut pages = shared.lock();
                        let bytes = &pages.memory().bytes()[addr..addr + len];
                        assert!(bytes.iter().all(|b| *b == tag), "another thread wrote into my pages");
                        // Free the second half first, then the rest: partial unmaps.
                        let half = (len / PAGE / 2) * PAGE;
                        pages.munmap(addr + half, len - half).expect("munmap tail");
                        if half > 0 {
                            pages.munmap(addr, half).expect("munmap head");
                        }
                    }
                    thread::yield_now();
                }
                for (addr, len) in mine {
                    let mut pages = shared.lock();
                    assert!(pages.memory().bytes()[addr..addr + len].iter().all(|b| *b == tag));
                    pages.munmap(addr, len).expect("final munmap");
                }
            })
        })
        .collect();
    for worker in workers {
        worker.join().expect("worker panicked");
    }
    let stats = shared.lock().stats();
    assert_eq!(stats.pages_in_use, 0);
    assert!(stats.bytes_memset > 0, "pages were reused and cleared");
}

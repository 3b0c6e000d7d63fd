//! Property tests: random mmap/munmap/foreign-grow sequences checked against a
//! simple page-by-page model: no overlap, zeroed requests read as zero,
//! memset bytes equal the dirty pages handed out, first-fit addresses and
//! `find_free_run` agree with a brute-force scan, foreign pages untouched.

use proptest::prelude::*;
use weft_pages::{Config, Error, LinearMemory, PageManager, PageState, SliceMemory, WASM_PAGE_SIZE};

/// 64 words * 64 = 4096 pages: the whole 16 MiB buffer in 4 KiB pages.
const WORDS: usize = 64;
/// Small enough that 64 KiB-page runs also hit out-of-memory.
const BUFFER: usize = 16 << 20;
const FOREIGN_BYTE: u8 = 0xEE;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Model {
    FreeZeroed,
    FreeDirty,
    /// Allocated to the allocation with this id (its pages hold `id as u8`).
    Allocated(u32),
    Foreign,
}

#[derive(Debug, Clone)]
enum Op {
    Map {
        pages: usize,
        align_log2: u32,
        zeroed: bool,
    },
    /// Unmap part of the `pick`-th live allocation: pages `skip..skip + count` of it (clamped).
    Unmap {
        pick: usize,
        skip: usize,
        count: usize,
    },
    ForeignGrow {
        wasm_pages: usize,
    },
    Probe {
        pages: usize,
        align_log2: u32,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (1usize..48, 0u32..5, any::<bool>()).prop_map(|(pages, align_log2, zeroed)| Op::Map { pages, align_log2, zeroed }),
        4 => (any::<usize>(), 0usize..48, 1usize..48).prop_map(|(pick, skip, count)| Op::Unmap { pick, skip, count }),
        1 => (1usize..3).prop_map(|wasm_pages| Op::ForeignGrow { wasm_pages }),
        2 => (1usize..64, 0u32..6).prop_map(|(pages, align_log2)| Op::Probe { pages, align_log2 }),
    ]
}

fn brute_force_first_fit(model: &[Model], pages: usize, align: usize) -> Option<usize> {
    (0..model.len())
        .step_by(align)
        .find(|&start| start + pages <= model.len() && model[start..start + pages].iter().all(|s| matches!(s, Model::FreeZeroed | Model::FreeDirty)))
}

fn longest_free_run(model: &[Model]) -> usize {
    let (mut longest, mut run) = (0, 0);
    for state in model {
        run = if matches!(state, Model::FreeZeroed | Model::FreeDirty) { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    longest
}

/// Runs `ops` on a manager with `page_size`-byte pages, checking every step.
fn run_ops(ops: Vec<Op>, page_size: usize) -> Result<(), TestCaseError> {
    let pages_per_wasm_page = WASM_PAGE_SIZE / page_size;
    let mut buffer = vec![0u8; BUFFER];
    buffer[..WASM_PAGE_SIZE].fill(FOREIGN_BYTE); // the program's own data
    let memory = SliceMemory::new(&mut buffer, 1);
    let config = Config::DEFAULT.with_page_size(page_size).with_min_grow_wasm_pages(2);
    let mut manager: PageManager<_, WORDS> = PageManager::new(memory, config);

    let mut model = vec![Model::Foreign; pages_per_wasm_page];
    let mut live: Vec<(u32, usize, usize)> = Vec::new(); // (id, first page, page count) of mapped pieces
    let mut next_id = 1u32;

    for op in ops {
        match op {
            Op::Map { pages, align_log2, zeroed } => {
                let align_pages = 1usize << align_log2;
                let memset_before = manager.stats().bytes_memset;
                let avoided_before = manager.stats().bytes_avoided;
                let result = manager.mmap(pages * page_size - 7, align_pages * page_size, zeroed);
                // Whatever the manager grew during the call is fresh and its own.
                let end = manager.memory().size_in_wasm_pages() * pages_per_wasm_page;
                model.resize(end, Model::FreeZeroed);
                let addr = match result {
                    Ok(addr) => addr,
                    Err(error) => {
                        prop_assert_eq!(error, Error::OutOfMemory);
                        prop_assert!(brute_force_first_fit(&model, pages, align_pages).is_none());
                        continue;
                    }
                };
                prop_assert_eq!(addr % (align_pages * page_size), 0);
                let start = addr / page_size;
                prop_assert_eq!(Some(start), brute_force_first_fit(&model, pages, align_pages), "not first fit");
                let dirty = model[start..start + pages].iter().filter(|s| **s == Model::FreeDirty).count();
                let stats = manager.stats();
                if zeroed {
                    prop_assert_eq!(stats.bytes_memset - memset_before, (dirty * page_size) as u64);
                    prop_assert_eq!(stats.bytes_avoided - avoided_before, ((pages - dirty) * page_size) as u64);
                    prop_assert!(manager.memory().bytes()[addr..addr + pages * page_size].iter().all(|b| *b == 0), "zeroed request not zero");
                } else {
                    prop_assert_eq!(stats.bytes_memset, memset_before);
                }
                let id = next_id;
                next_id += 1;
                manager.memory_mut().bytes_mut()[addr..addr + pages * page_size].fill(id as u8);
                for state in &mut model[start..start + pages] {
                    *state = Model::Allocated(id);
                }
                live.push((id, start, pages));
            }
            Op::Unmap { pick, skip, count } => {
                if live.is_empty() {
                    continue;
                }
                let index = pick % live.len();
                let (id, first, pages) = live[index];
                let skip = skip % pages;
                let count = count.min(pages - skip);
                manager.munmap((first + skip) * page_size, count * page_size).map_err(|e| TestCaseError::fail(format!("munmap failed: {e}")))?;
                for state in &mut model[first + skip..first + skip + count] {
                    *state = Model::FreeDirty;
                }
                // Split the live piece around the hole.
                live.swap_remove(index);
                if skip > 0 {
                    live.push((id, first, skip));
                }
                if skip + count < pages {
                    live.push((id, first + skip + count, pages - skip - count));
                }
            }
            Op::ForeignGrow { wasm_pages } => {
                let memory = manager.memory_mut();
                if let Some(previous) = memory.grow_wasm_pages(wasm_pages) {
                    let start = previous * WASM_PAGE_SIZE;
                    memory.bytes_mut()[start..start + wasm_pages * WASM_PAGE_SIZE].fill(FOREIGN_BYTE);
                    model.resize((previous + wasm_pages) * pages_per_wasm_page, Model::Foreign);
                    // The manager must refuse to free foreign memory.
                    prop_assert_eq!(manager.munmap(start, page_size), Err(Error::NotOwned));
                }
            }
            Op::Probe { pages, align_log2 } => {
                let align = 1usize << align_log2;
                prop_assert_eq!(manager.find_free_run(pages, align), brute_force_first_fit(&model, pages, align));
            }
        }

        // Invariants after every step.
        let stats = manager.stats();
        let allocated = model.iter().filter(|s| matches!(s, Model::Allocated(_))).count();
        prop_assert_eq!(stats.pages_in_use, allocated);
        prop_assert_eq!(stats.largest_free_run_bytes, (longest_free_run(&model) * page_size) as u64);
    }

    // Page states, contents of live pages and foreign pages are all intact.
    let bytes = manager.memory().bytes();
    for (page, state) in model.iter().enumerate() {
        let content = &bytes[page * page_size..(page + 1) * page_size];
        match *state {
            Model::FreeZeroed => {
                prop_assert_eq!(manager.page_state(page), PageState::FreeZeroed);
                prop_assert!(content.iter().all(|b| *b == 0), "free-zeroed page {} not zero", page);
            }
            Model::FreeDirty => prop_assert_eq!(manager.page_state(page), PageState::FreeDirty),
            Model::Allocated(id) => {
                prop_assert_eq!(manager.page_state(page), PageState::Allocated);
                prop_assert!(content.iter().all(|b| *b == id as u8), "page {} of allocation {} overwritten", page, id);
            }
            Model::Foreign => {
                prop_assert_eq!(manager.page_state(page), PageState::Foreign);
                prop_assert!(content.iter().all(|b| *b == FOREIGN_BYTE), "foreign page {} touched", page);
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_sequences_match_the_model_4k_pages(ops in proptest::collection::vec(op(), 1..120)) {
        run_ops(ops, 4096)?;
    }

    #[test]
    fn random_sequences_match_the_model_64k_pages(ops in proptest::collection::vec(op(), 1..120)) {
        run_ops(ops, WASM_PAGE_SIZE)?;
    }
}

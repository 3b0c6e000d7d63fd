//! `weft-pages`: a zero-aware page manager for code running *inside* WebAssembly.
//!
//! Language runtimes compiled to Wasm ask for anonymous, zeroed memory with
//! `mmap`. wasi-libc emulates `mmap` with `malloc` + `memset`, so every fresh
//! allocation pays for clearing memory that `memory.grow` already returned
//! zeroed. This crate owns the part of the guest's linear memory that it grew
//! itself and hands it out in pages, remembering for every page whether it is
//! still zero:
//!
//! * [`PageManager`] keeps a page table over the 32-bit address space with the
//!   states of [`PageState`]: free-zeroed, free-dirty, allocated, and foreign
//!   (memory that some other allocator got from `memory.grow`; never touched).
//! * Fresh memory comes from `memory.grow` in large chunks and is known to be
//!   zero. Grows that nobody else interleaved are adjacent to the previous free
//!   tail and weld into one free run.
//! * [`PageManager::mmap`] is first-fit (lowest address that fits, honouring an
//!   alignment) and `memset`s only the free-dirty pages it hands out, and only
//!   when zeroed memory was asked for. [`PageManager::munmap`] frees any page
//!   range, including the middle of an allocation, and never `memset`s.
//! * Free runs are found through a segment tree that stores, per node, the
//!   free prefix, free suffix and longest free run of its pages, so a search
//!   costs `O(log pages)` instead of a scan over every page.
//! * The "grow" primitive is abstracted by [`LinearMemory`]: `Wasm32Memory` (wasm32 only)
//!   uses `memory.grow`/`memory.size` on wasm32, [`SliceMemory`] simulates a
//!   linear memory over a caller-provided buffer for native tests.
//!
//! Cargo features: `threads` adds `SpinLock` and makes the C ABI global
//! thread-safe; `c-abi` exports POSIX `mmap`/`munmap` and `weft_pages_stats`
//! on wasm32 (see `include/weft_pages.h`); `panic-handler` lets the crate be
//! built alone as a `no_std` staticlib; `std` adds `std::error::Error`.
//!
//! The crate is `no_std` and compiles with Rust 1.63 (the Debian toolchain
//! used for the wasm32 build).
//!
//! # Example
//!
//! ```
//! use weft_pages::{Config, PageManager, PageState, SliceMemory};
//!
//! let mut buffer = vec![0u8; 8 << 20]; // must start out zeroed
//! let memory = SliceMemory::new(&mut buffer, 1); // 1 Wasm page already used by "the program"
//! let mut pages: PageManager<_, 64> = PageManager::new(memory, Config::DEFAULT.with_page_size(4096));
//!
//! let addr = pages.mmap(100_000, 4096, true).unwrap();
//! assert_eq!(addr % 4096, 0);
//! assert_eq!(pages.stats().bytes_memset, 0); // fresh pages: no memset needed
//!
//! pages.munmap(addr + 4096, 4096).unwrap(); // free one page in the middle
//! assert_eq!(pages.page_state(addr / 4096 + 1), PageState::FreeDirty);
//! ```

#![cfg_attr(not(any(test, feature = "std")), no_std)]
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]
// `div_ceil` and `is_multiple_of` are newer than Rust 1.63, which must build this crate.
#![allow(clippy::manual_div_ceil, clippy::manual_is_multiple_of)]

mod manager;
mod memory;
pub mod posix;
mod table;

#[cfg(feature = "threads")]
mod lock;

#[cfg(all(feature = "c-abi", target_arch = "wasm32"))]
mod c_abi;

pub use manager::{Config, Error, PageManager, PageState, Stats, DEFAULT_WORDS};
pub use memory::{LinearMemory, SliceMemory, WASM_PAGE_SIZE};

#[cfg(target_arch = "wasm32")]
pub use memory::Wasm32Memory;

#[cfg(feature = "threads")]
pub use lock::{SpinLock, SpinLockGuard};

#[cfg(all(feature = "c-abi", target_arch = "wasm32"))]
pub use c_abi::WeftPagesStats;

/// Lets the crate be linked alone as a `no_std` staticlib (see `build-wasm.sh`).
///
/// A panic inside the page manager means a broken invariant; trapping is the
/// only safe reaction inside a Wasm guest. Only on wasm32, so that native
/// builds with all features still link against std's handler.
#[cfg(all(feature = "panic-handler", target_arch = "wasm32", not(test), not(feature = "std")))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo<'_>) -> ! {
    core::arch::wasm32::unreachable()
}

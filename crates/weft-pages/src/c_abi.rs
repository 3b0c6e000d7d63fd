//! POSIX `mmap`/`munmap` and `weft_pages_stats` for C code (wasm32, feature `c-abi`).
//!
//! Declared in `include/weft_pages.h`. One global [`PageManager`] over the
//! module's memory 0 backs the symbols.

use core::ffi::c_void;

use crate::manager::{Config, PageManager};
use crate::memory::Wasm32Memory;
use crate::posix::{check_mmap_request, Errno};

const MAP_FAILED: *mut c_void = usize::MAX as *mut c_void;

#[cfg(feature = "threads")]
static GLOBAL: crate::lock::SpinLock<PageManager<Wasm32Memory>> = crate::lock::SpinLock::new(PageManager::new(Wasm32Memory, Config::DEFAULT));

#[cfg(feature = "threads")]
fn with_global<R>(f: impl FnOnce(&mut PageManager<Wasm32Memory>) -> R) -> R {
    f(&mut GLOBAL.lock())
}

#[cfg(not(feature = "threads"))]
struct SingleThreaded(core::cell::UnsafeCell<PageManager<Wasm32Memory>>);

// SAFETY: without the `threads` feature the C ABI is documented as
// single-threaded (as a wasm32 module without the threads proposal is), so
// the global is never accessed from two threads.
#[cfg(not(feature = "threads"))]
unsafe impl Sync for SingleThreaded {}

#[cfg(not(feature = "threads"))]
static GLOBAL: SingleThreaded = SingleThreaded(core::cell::UnsafeCell::new(PageManager::new(Wasm32Memory, Config::DEFAULT)));

#[cfg(not(feature = "threads"))]
fn with_global<R>(f: impl FnOnce(&mut PageManager<Wasm32Memory>) -> R) -> R {
    // SAFETY: single-threaded (see the `Sync` impl), and the manager never
    // calls back into C code that could re-enter, so this is the only
    // reference for the duration of `f`.
    f(unsafe { &mut *GLOBAL.0.get() })
}

/// Makes wasi-libc's `malloc` claim its initial heap before we grow memory.
///
/// When the linker does not define `__heap_end` (LLVM < 15, e.g. Debian's
/// clang 14), wasi-libc's dlmalloc, on its *first* call, takes everything from
/// `__heap_base` up to the current `memory.size` as its heap, which would
/// include pages we grew if `mmap` ran before the first `malloc`.
#[cfg(target_os = "wasi")]
fn let_libc_claim_its_heap_first() {
    use core::sync::atomic::{AtomicBool, Ordering};
    static CLAIMED: AtomicBool = AtomicBool::new(false);
    if CLAIMED.load(Ordering::Acquire) {
        return;
    }
    extern "C" {
        fn malloc(size: usize) -> *mut c_void;
        fn free(ptr: *mut c_void);
    }
    // SAFETY: plain libc calls on a block we own until `free`. The volatile
    // write keeps LLVM from deleting the malloc/free pair as dead code.
    unsafe {
        let block = malloc(1) as *mut u8;
        if !block.is_null() {
            block.write_volatile(0);
        }
        free(block as *mut c_void);
    }
    CLAIMED.store(true, Ordering::Release);
}

#[cfg(not(target_os = "wasi"))]
fn let_libc_claim_its_heap_first() {}

#[cfg(target_os = "wasi")]
fn set_errno(code: Errno) {
    extern "C" {
        // wasi-libc's `errno` is a plain global without the threads proposal.
        static mut errno: i32;
    }
    // SAFETY: `errno` is a valid `int` owned by libc; single writer per thread.
    unsafe { errno = code.wasi_value() }
}

#[cfg(not(target_os = "wasi"))]
fn set_errno(_errno: Errno) {}

/// POSIX `mmap`, for `MAP_PRIVATE | MAP_ANONYMOUS` only; always zeroed.
///
/// Returns `MAP_FAILED` and sets `errno` (`EINVAL`, `ENOTSUP`, `ENOMEM`) on failure.
///
/// # Safety
///
/// Callable from C like libc's `mmap`; the caller owns the returned pages
/// until it unmaps them.
#[no_mangle]
pub unsafe extern "C" fn mmap(_addr: *mut c_void, len: usize, prot: i32, flags: i32, fd: i32, offset: i64) -> *mut c_void {
    let_libc_claim_its_heap_first();
    let result = check_mmap_request(len, prot, flags, fd, offset).and_then(|()| with_global(|pages| pages.mmap(len, 1, true)).map_err(Errno::from));
    match result {
        Ok(addr) => addr as *mut c_void,
        Err(errno) => {
            set_errno(errno);
            MAP_FAILED
        }
    }
}

/// POSIX `munmap`: frees whole or partial mappings made by [`mmap`].
///
/// Returns 0, or -1 with `errno = EINVAL` for an unaligned address, a zero
/// length, or a range containing memory `mmap` did not hand out.
///
/// # Safety
///
/// The caller must not use the unmapped pages afterwards.
#[no_mangle]
pub unsafe extern "C" fn munmap(addr: *mut c_void, len: usize) -> i32 {
    match with_global(|pages| pages.munmap(addr as usize, len)) {
        Ok(()) => 0,
        Err(error) => {
            set_errno(Errno::from(error));
            -1
        }
    }
}

/// `struct weft_pages_stats` of `include/weft_pages.h`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WeftPagesStats {
    /// Page size in bytes.
    pub page_size: u64,
    /// Pages currently mapped.
    pub pages_in_use: u64,
    /// Pages owned by the page manager (mapped or free).
    pub pages_owned: u64,
    /// Bytes cleared by `memset` (free-dirty pages handed out).
    pub bytes_memset: u64,
    /// Bytes handed out zeroed without `memset` (fresh pages).
    pub bytes_avoided: u64,
    /// Longest run of free pages, in bytes.
    pub largest_free_run_bytes: u64,
}

/// Fills `*out` with the global page manager's counters; does nothing if `out` is null.
///
/// # Safety
///
/// `out` must be null or point to a writable `struct weft_pages_stats`.
#[no_mangle]
pub unsafe extern "C" fn weft_pages_stats(out: *mut WeftPagesStats) {
    if out.is_null() {
        return;
    }
    let stats = with_global(|pages| pages.stats());
    let c_stats = WeftPagesStats {
        page_size: stats.page_size as u64,
        pages_in_use: stats.pages_in_use as u64,
        pages_owned: stats.pages_owned as u64,
        bytes_memset: stats.bytes_memset,
        bytes_avoided: stats.bytes_avoided,
        largest_free_run_bytes: stats.largest_free_run_bytes,
    };
    // SAFETY: non-null and, per the contract, valid for writes.
    unsafe { out.write(c_stats) }
}

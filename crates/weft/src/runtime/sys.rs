//! The memory-mapping system calls the runtime makes, each counted per thread so
//! tests and benchmarks can check exactly what instantiation costs; and the
//! thread's GS segment base, which segment probes read through.

use std::cell::Cell;
use std::io;
use std::ptr;

/// How many mapping system calls this thread has made through the runtime.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyscallCounts {
    /// `mmap` calls.
    pub mmap: u64,
    /// `munmap` calls.
    pub munmap: u64,
    /// `mprotect` calls.
    pub mprotect: u64,
    /// `madvise` calls.
    pub madvise: u64,
    /// `ftruncate` calls.
    pub ftruncate: u64,
    /// Reads of `/proc/self/pagemap`.
    pub pagemap_reads: u64,
}

thread_local! {
    static COUNTS: Cell<SyscallCounts> = const { Cell::new(SyscallCounts { mmap: 0, munmap: 0, mprotect: 0, madvise: 0, ftruncate: 0, pagemap_reads: 0 }) };
}

/// The counts of the calling thread so far.
pub fn syscall_counts() -> SyscallCounts {
    COUNTS.with(|c| c.get())
}

fn count(f: impl FnOnce(&mut SyscallCounts)) {
    COUNTS.with(|c| {
        let mut v = c.get();
        f(&mut v);
        c.set(v);
    });
}

/// Reserves `len` bytes of inaccessible address space.
pub fn reserve(len: usize) -> io::Result<*mut u8> {
    count(|c| c.mmap += 1);
    // SAFETY: a fresh anonymous mapping; the result is checked.
    let p = unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as *mut u8)
}

/// Maps `len` bytes of `fd` copy-on-write at `addr`, replacing what was there.
///
/// # Safety
/// `addr..addr+len` must be inside a reservation owned by the caller.
pub unsafe fn map_file_private_fixed(addr: *mut u8, len: usize, fd: i32) -> io::Result<()> {
    count(|c| c.mmap += 1);
    // SAFETY: the caller owns the range.
    let p = unsafe { libc::mmap(addr as *mut _, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_FIXED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces `addr..addr+len` with fresh inaccessible anonymous memory.
///
/// # Safety
/// The range must be inside a reservation owned by the caller.
pub unsafe fn map_anon_fixed(addr: *mut u8, len: usize) -> io::Result<()> {
    count(|c| c.mmap += 1);
    // SAFETY: the caller owns the range.
    let p = unsafe { libc::mmap(addr as *mut _, len, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED | libc::MAP_NORESERVE, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Maps `len` bytes of `fd` shared and read-write at `addr`, replacing what was
/// there. Pages past the file's end fault with SIGBUS.
///
/// # Safety
/// `addr..addr+len` must be inside a reservation owned by the caller.
pub unsafe fn map_file_shared_fixed(addr: *mut u8, len: usize, fd: i32) -> io::Result<()> {
    count(|c| c.mmap += 1);
    // SAFETY: the caller owns the range.
    let p = unsafe { libc::mmap(addr as *mut _, len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_FIXED, fd, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A new empty memfd, which can be sealed if `sealable`.
pub fn memfd(name: &std::ffi::CStr, sealable: bool) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    let flags = libc::MFD_CLOEXEC | if sealable { libc::MFD_ALLOW_SEALING } else { 0 };
    // SAFETY: plain system call; the result is checked.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor we own.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
}

/// Sets a file's length: growing adds zero pages, shrinking drops the pages
/// past the new end from every mapping (without the process's mapping lock).
pub fn truncate(fd: &std::os::fd::OwnedFd, len: u64) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    count(|c| c.ftruncate += 1);
    // SAFETY: plain system call on a descriptor we own.
    if unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A fresh shared anonymous read-write mapping of `len` bytes.
pub fn map_shared_anon(len: usize) -> io::Result<*mut u8> {
    count(|c| c.mmap += 1);
    // SAFETY: a fresh mapping; the result is checked.
    let p = unsafe { libc::mmap(ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_SHARED | libc::MAP_ANONYMOUS, -1, 0) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as *mut u8)
}

/// A second view of the shared mapping at `addr` (same pages, own protection).
///
/// # Safety
/// `addr..addr+len` must be a shared mapping owned by the caller.
pub unsafe fn alias(addr: *mut u8, len: usize) -> io::Result<*mut u8> {
    count(|c| c.mmap += 1);
    // SAFETY: with an old size of 0, mremap leaves the original mapping alone
    // and maps its pages again elsewhere.
    let p = unsafe { libc::mremap(addr as *mut _, 0, len, libc::MREMAP_MAYMOVE) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(p as *mut u8)
}

/// Another view of the shared mapping at `addr`, placed at `at` and replacing
/// what was mapped there (same pages, the original's protection).
///
/// # Safety
/// `addr..addr+len` must be a shared mapping owned by the caller, and
/// `at..at+len` a range of the caller's that nothing else relies on.
pub unsafe fn alias_at(addr: *mut u8, len: usize, at: *mut u8) -> io::Result<()> {
    count(|c| c.mmap += 1);
    // SAFETY: as for `alias`; MREMAP_FIXED puts the new view at `at`, which
    // the caller owns.
    let p = unsafe { libc::mremap(addr as *mut _, 0, len, libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED, at as *mut libc::c_void) };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Makes a range read-only (`readable`) or inaccessible.
///
/// # Safety
/// As for [`protect`].
pub unsafe fn protect_read_only(addr: *mut u8, len: usize, readable: bool) -> io::Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { mprotect(addr, len, if readable { libc::PROT_READ } else { libc::PROT_NONE }) }
}

/// Sets the protection of a range.
///
/// # Safety
/// The range must be inside a mapping owned by the caller, with nothing else
/// relying on its current protection.
pub unsafe fn protect(addr: *mut u8, len: usize, read_write: bool) -> io::Result<()> {
    // SAFETY: forwarded from the caller.
    unsafe { mprotect(addr, len, if read_write { libc::PROT_READ | libc::PROT_WRITE } else { libc::PROT_NONE }) }
}

/// The counted `mprotect` behind [`protect`] and [`protect_read_only`].
///
/// # Safety
/// As for [`protect`].
unsafe fn mprotect(addr: *mut u8, len: usize, prot: libc::c_int) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    count(|c| c.mprotect += 1);
    // SAFETY: the caller owns the range.
    if unsafe { libc::mprotect(addr as *mut _, len, prot) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Discards the contents of a range: anonymous pages read as zero again and
/// private file pages as the file's contents.
///
/// # Safety
/// The range must be inside a mapping owned by the caller whose contents may be lost.
pub unsafe fn discard(addr: *mut u8, len: usize) -> io::Result<()> {
    if len == 0 {
        return Ok(());
    }
    count(|c| c.madvise += 1);
    // SAFETY: the caller owns the range.
    if unsafe { libc::madvise(addr as *mut _, len, libc::MADV_DONTNEED) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A page's `/proc/self/pagemap` entry: the page is mapped.
pub const PAGEMAP_PRESENT: u64 = 1 << 63;
/// The page is swapped out (or migrating).
pub const PAGEMAP_SWAPPED: u64 = 1 << 62;
/// The page is a page of a file (or of shared memory), not a private copy.
pub const PAGEMAP_FILE: u64 = 1 << 61;
/// The page is mapped only here (a private page, not the shared zero page).
pub const PAGEMAP_EXCLUSIVE: u64 = 1 << 56;

/// Reads the `/proc/self/pagemap` entries of the `out.len()` pages from `addr`
/// (page-aligned): a `pread`, which walks page tables without changing them.
pub fn pagemap_entries(pagemap: &std::fs::File, addr: *const u8, out: &mut [u64]) -> io::Result<()> {
    use std::os::unix::fs::FileExt;
    count(|c| c.pagemap_reads += 1);
    let page = crate::runtime::code::page_size();
    let offset = (addr as usize / page * 8) as u64;
    // SAFETY: the entries' bytes, any of which is a valid u64 bit pattern.
    let bytes = unsafe { std::slice::from_raw_parts_mut(out.as_mut_ptr() as *mut u8, std::mem::size_of_val(out)) };
    pagemap.read_exact_at(bytes, offset)
}

/// Unmaps a range.
///
/// # Safety
/// The range must be a mapping owned by the caller that nothing uses any more.
pub unsafe fn unmap(addr: *mut u8, len: usize) {
    count(|c| c.munmap += 1);
    // SAFETY: the caller owns the mapping.
    unsafe { libc::munmap(addr as *mut _, len) };
}

/// Whether user code may read and write the GS segment base directly
/// (`rdgsbase`/`wrgsbase`): the CPU has FSGSBASE and the kernel enabled it
/// (Linux 5.9 and later report it in `AT_HWCAP2`). Checked once.
pub fn fsgsbase_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        const HWCAP2_FSGSBASE: libc::c_ulong = 1 << 1;
        // SAFETY: getauxval only reads the process's auxiliary vector.
        let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
        hwcap2 & HWCAP2_FSGSBASE != 0
    })
}

thread_local! {
    /// The GS base Weft last gave this thread, if any.
    static GS_BASE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The GS base Weft last gave the calling thread, if it gave it one, for
/// [`restore_gs_base`]. Reading the register itself (`rdgsbase`) is not
/// needed: with segment probes Weft owns the GS base of the threads that run
/// Wasm, and keeping its value here spares the instruction.
pub fn weft_gs_base() -> Option<usize> {
    GS_BASE.with(|b| b.get())
}

/// Points the calling thread's GS base at `base`, unless Weft already has.
/// The instructions are dear in a KVM guest: reading the base and writing
/// it twice around every call into Wasm made a call of an empty function
/// take 34.2 ns instead of 11.6 ns; this way, 14.9 ns. Nothing in a Rust
/// program on Linux x86-64 addresses through GS (thread-locals use FS), so
/// only code that reads GS on purpose (segment probes) sees it.
///
/// # Safety
/// [`fsgsbase_available`] must have returned true (the instruction faults
/// otherwise).
#[inline]
pub unsafe fn set_gs_base(base: usize) {
    GS_BASE.with(|b| {
        if b.get() != Some(base) {
            // SAFETY: the caller checked that the kernel allows the
            // instruction; the base only affects GS-relative accesses.
            unsafe { std::arch::asm!("wrgsbase {}", in(reg) base, options(nomem, nostack, preserves_flags)) };
            b.set(Some(base));
        }
    });
}

/// [`restore_gs_base`] right after a stack switch, which may have moved the
/// caller to another thread (a fiber resumed elsewhere). Never inlined: LLVM
/// takes a thread-local's address to be constant within a function, so
/// inlined, the cache's address computed before the switch (on the old
/// thread) would be reused after it, and the new thread's GS base left
/// unset whenever the old thread's cache already held the value. Called in
/// its own frame, the address is taken on the thread that runs it.
#[inline(never)]
pub fn restore_gs_base_after_switch(saved: Option<usize>) {
    restore_gs_base(saved);
}

/// Puts back a base [`weft_gs_base`] returned earlier (nothing if Weft had
/// set none then): around a nested call into another store's Wasm, or a
/// switch to and from a fiber that may run on another thread.
#[inline]
pub fn restore_gs_base(saved: Option<usize>) {
    if let Some(base) = saved {
        // SAFETY: Weft set this base before, which it does only where
        // `fsgsbase_available` holds.
        unsafe { set_gs_base(base) };
    }
}

//! Stacks for continuations: mmap'd, with a guard page, pooled per engine.
//!
//! A stack is one anonymous mapping: a guard page at the bottom, then a
//! reserve for the runtime code that may run on the stack (builtins, the
//! unwinder, interrupt hooks), then the part Wasm may use, whose lowest
//! address is the stack limit compiled code checks in its prologues. The
//! guard is installed with `MADV_GUARD_INSTALL` where the kernel has it
//! (Linux 6.13), which does not split the mapping: adjacent stacks then
//! merge into one kernel mapping, and a store can hold far more of them than
//! `vm.max_map_count` would allow with `mprotect`ed guards. Pages are only
//! resident once touched, so a small suspended continuation costs a page or
//! two whatever the stack's size.
//!
//! [`StackPool`] keeps stacks that continuations gave back, so that
//! `cont.new` takes a warm one without a system call; each store keeps a few
//! of its own in front of it (see `runtime::continuation`).

use std::sync::Mutex;

/// Bytes below the Wasm part of every stack for runtime code.
pub const RUNTIME_RESERVE: usize = 64 * 1024;

/// `madvise` advice that makes pages guard pages without a new mapping
/// (Linux 6.13 and later).
const MADV_GUARD_INSTALL: libc::c_int = 102;

/// One continuation stack.
#[derive(Debug)]
pub struct Stack {
    base: *mut u8,
    len: usize,
}

// SAFETY: a stack is memory owned by whoever holds the value; it holds no
// thread-bound state.
unsafe impl Send for Stack {}

impl Stack {
    /// A stack whose Wasm part is `wasm_size` bytes (rounded up to pages).
    pub fn new(wasm_size: usize) -> anyhow::Result<Stack> {
        let page = crate::runtime::code::page_size();
        let len = page + RUNTIME_RESERVE + wasm_size.div_ceil(page) * page;
        // SAFETY: a fresh private mapping; nothing else refers to it.
        let base = unsafe {
            libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE, -1, 0)
        };
        if base == libc::MAP_FAILED {
            anyhow::bail!("cannot map a continuation stack: {}", std::io::Error::last_os_error());
        }
        // SAFETY: the first page of our own mapping.
        let guarded = unsafe { libc::madvise(base, page, MADV_GUARD_INSTALL) == 0 || libc::mprotect(base, page, libc::PROT_NONE) == 0 };
        let stack = Stack { base: base as *mut u8, len };
        if !guarded {
            anyhow::bail!("cannot install a continuation stack's guard page: {}", std::io::Error::last_os_error());
        }
        Ok(stack)
    }

    /// One past the highest address of the stack (page-aligned).
    pub fn top(&self) -> usize {
        self.base as usize + self.len
    }

    /// The lowest address Wasm code may use.
    pub fn wasm_limit(&self) -> usize {
        self.base as usize + crate::runtime::code::page_size() + RUNTIME_RESERVE
    }

    /// The lowest usable address (above the guard page).
    #[cfg(test)]
    pub fn bottom(&self) -> usize {
        self.base as usize + crate::runtime::code::page_size()
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SAFETY: our own mapping, which nothing runs on any more.
        unsafe { libc::munmap(self.base as *mut libc::c_void, self.len) };
    }
}

/// Stacks of one size, kept for reuse by every store of an engine.
#[derive(Debug)]
pub struct StackPool {
    wasm_size: usize,
    /// Kept at most this many; more are unmapped when given back.
    max_kept: usize,
    free: Mutex<Vec<Stack>>,
}

impl StackPool {
    /// A pool of stacks with `wasm_size` bytes for Wasm each, keeping at most `max_kept`.
    pub fn new(wasm_size: usize, max_kept: usize) -> Self {
        StackPool { wasm_size, max_kept, free: Mutex::new(Vec::new()) }
    }

    /// A stack: a kept one if there is one, else a fresh mapping.
    pub fn take(&self) -> anyhow::Result<Stack> {
        if let Some(s) = self.free.lock().unwrap().pop() {
            return Ok(s);
        }
        Stack::new(self.wasm_size)
    }

    /// Gives stacks back (they must be this pool's size and unused).
    pub fn give(&self, stacks: impl IntoIterator<Item = Stack>) {
        let mut free = self.free.lock().unwrap();
        for s in stacks {
            if free.len() < self.max_kept {
                free.push(s);
            }
        }
    }

    /// How many stacks the pool keeps now.
    #[cfg(test)]
    pub fn kept(&self) -> usize {
        self.free.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stack_is_writable_down_to_its_reserve_and_guarded_below() {
        let s = Stack::new(64 * 1024).unwrap();
        let page = crate::runtime::code::page_size();
        assert_eq!(s.top() - s.wasm_limit(), 64 * 1024);
        assert_eq!(s.wasm_limit() - s.bottom(), RUNTIME_RESERVE);
        // SAFETY: both addresses are inside the usable part of our stack.
        unsafe {
            *((s.top() - 8) as *mut u64) = 1;
            *(s.bottom() as *mut u64) = 2;
        }
        assert!(s.bottom() - page == s.base as usize);
    }

    #[test]
    fn the_pool_reuses_stacks_and_keeps_a_bounded_number() {
        let pool = StackPool::new(16 * 1024, 2);
        let a = pool.take().unwrap();
        let top = a.top();
        pool.give([a]);
        assert_eq!(pool.take().unwrap().top(), top);
        let stacks: Vec<Stack> = (0..3).map(|_| pool.take().unwrap()).collect();
        pool.give(stacks);
        assert_eq!(pool.kept(), 2);
    }
}

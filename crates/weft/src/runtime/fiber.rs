//! Fibers: Wasm calls that run on their own stack, so that an interrupted guest
//! can be suspended (its stack kept) and resumed later, on the same thread or
//! another one.
//!
//! A fiber is an mmap'd stack with a guard page. `weft_fiber_switch` saves the
//! callee-saved registers and stack pointer of one side and restores the
//! other's. The thread-local activation chain (see `signals`) is swapped on
//! every switch, so traps and interruptions on the fiber find the fiber's own
//! activation, and the host's chain is back in place whenever the host runs.

use std::cell::Cell;

use crate::runtime::signals::{self, Activation};
use crate::runtime::sys;

std::arch::global_asm!(
    ".text",
    ".globl weft_fiber_switch",
    ".type weft_fiber_switch,@function",
    // rdi = where to save our stack pointer, rsi = stack pointer to switch to,
    // rdx = value handed to the other side (returned in rax there).
    "weft_fiber_switch:",
    "push rbp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "mov [rdi], rsp",
    "mov rsp, rsi",
    "mov rax, rdx",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size weft_fiber_switch, .-weft_fiber_switch",
    "",
    // First entry into a fiber: rax holds the fiber's data pointer.
    ".globl weft_fiber_start",
    ".type weft_fiber_start,@function",
    "weft_fiber_start:",
    "mov rdi, rax",
    "call weft_fiber_main",
    "ud2",
    ".size weft_fiber_start, .-weft_fiber_start",
);

extern "C" {
    fn weft_fiber_switch(save_sp: *mut usize, load_sp: usize, value: usize) -> usize;
    fn weft_fiber_start();
}

/// Why a fiber handed control back to the host.
pub const FIBER_DONE: usize = 1;
pub const FIBER_YIELDED: usize = 2;

/// The work a fiber runs: called once, on the fiber's stack.
pub type FiberBody = Box<dyn FnOnce() + Send>;

/// A stack and the saved state of a computation on it.
pub struct Fiber {
    stack: *mut u8,
    stack_len: usize,
    /// The fiber's saved stack pointer while it is not running.
    fiber_sp: usize,
    /// The host's saved stack pointer while the fiber runs.
    host_sp: usize,
    /// The thread's activation chain when the host switched in.
    host_activation: *mut Activation,
    /// The fiber's innermost activation while it is suspended.
    fiber_activation: *mut Activation,
    body: Option<FiberBody>,
    finished: bool,
}

// SAFETY: a fiber is only ever run by one thread at a time (it is moved, not
// shared); its stack holds Wasm and runtime frames that do not depend on the
// thread they run on.
unsafe impl Send for Fiber {}

thread_local! {
    static CURRENT: Cell<*mut Fiber> = const { Cell::new(std::ptr::null_mut()) };
}

#[no_mangle]
unsafe extern "C" fn weft_fiber_main(fiber: *mut Fiber) {
    // SAFETY: the fiber is alive while it runs.
    let body = unsafe { (*fiber).body.take() };
    if let Some(body) = body {
        body();
    }
    // SAFETY: as above; we never come back here.
    unsafe {
        (*fiber).finished = true;
        let f = &mut *fiber;
        weft_fiber_switch(&mut f.fiber_sp, f.host_sp, FIBER_DONE);
    }
}

impl Fiber {
    /// A fiber of `stack_len` bytes (plus a guard page) that will run `body`.
    pub fn new(stack_len: usize, body: FiberBody) -> anyhow::Result<Box<Fiber>> {
        let page = crate::runtime::code::page_size();
        let stack_len = stack_len.div_ceil(page) * page;
        let base = sys::reserve(stack_len + page)?;
        // SAFETY: the range above the guard page is ours.
        unsafe { sys::protect(base.add(page), stack_len, true)? };
        let top = base as usize + page + stack_len;
        // Initial frame: six callee-saved registers for `weft_fiber_switch` to
        // pop, then its return address, `weft_fiber_start`, entered with rsp
        // 16-byte aligned so its `call` is ABI-aligned.
        let sp = top - 72;
        // SAFETY: writing the initial frame into our fresh stack.
        unsafe {
            for i in 0..6 {
                *((sp + i * 8) as *mut usize) = 0;
            }
            *((sp + 48) as *mut usize) = weft_fiber_start as *const () as usize;
        }
        Ok(Box::new(Fiber {
            stack: base,
            stack_len: stack_len + page,
            fiber_sp: sp,
            host_sp: 0,
            host_activation: std::ptr::null_mut(),
            fiber_activation: std::ptr::null_mut(),
            body: Some(body),
            finished: false,
        }))
    }

    /// Runs the fiber until it finishes or yields. Returns `true` when finished.
    pub fn resume(self: &mut Box<Fiber>) -> bool {
        assert!(!self.finished, "resuming a finished fiber");
        signals::init_thread();
        let fiber: *mut Fiber = &mut **self;
        let prev_current = CURRENT.with(|c| c.replace(fiber));
        self.host_activation = signals::current_activation();
        if !self.fiber_activation.is_null() {
            signals::set_current_activation(self.fiber_activation);
        }
        // The GS base is kept like a callee-saved register (see `yield_now`).
        let gs = sys::weft_gs_base();
        // The fiber's data pointer goes in rax for `weft_fiber_start`.
        // SAFETY: switching to our own stack, which holds a valid frame.
        let why = unsafe { weft_fiber_switch(&mut self.host_sp, self.fiber_sp, fiber as usize) };
        sys::restore_gs_base(gs);
        // Back on the host: put the host's activation chain back.
        signals::set_current_activation(self.host_activation);
        CURRENT.with(|c| c.set(prev_current));
        why == FIBER_DONE
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }
}

/// The activation a running fiber was entered from (where its chain of
/// activations continues on the host's stack), or null when this thread is
/// not running a fiber or the fiber was entered from outside Wasm.
pub fn current_host_activation() -> *mut Activation {
    let fiber = CURRENT.with(|c| c.get());
    if fiber.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: the current fiber is alive while it runs on this thread.
    unsafe { (*fiber).host_activation }
}

/// Suspends the fiber running on this thread and returns to its host. Returns
/// when the fiber is resumed (possibly on another thread).
///
/// # Errors
/// Fails if this thread is not running a fiber.
pub fn yield_now() -> anyhow::Result<()> {
    let fiber = CURRENT.with(|c| c.get());
    if fiber.is_null() {
        anyhow::bail!("yield requested outside a resumable call");
    }
    // SAFETY: the current fiber is alive and running on this thread.
    unsafe {
        let f = &mut *fiber;
        f.fiber_activation = signals::current_activation();
        // Each side of a switch puts its GS base back when it runs again,
        // like a callee-saved register: the Wasm on the fiber reads its
        // store's probe page through GS (segment probes) and may be resumed
        // on another thread, and the host that resumed it may itself be a
        // host function returning to Wasm of another store.
        let gs = sys::weft_gs_base();
        weft_fiber_switch(&mut f.fiber_sp, f.host_sp, FIBER_YIELDED);
        // Possibly on another thread now.
        sys::restore_gs_base_after_switch(gs);
    }
    Ok(())
}

impl Drop for Fiber {
    fn drop(&mut self) {
        // A suspended fiber's frames are abandoned without unwinding: Wasm
        // frames, the runtime's call shims (whose activation record lives on
        // this stack) and the yielding builtin, none of which owns anything
        // that needs dropping at the yield point. The stack goes.
        // SAFETY: the fiber is not running (it is being dropped by its owner).
        unsafe { sys::unmap(self.stack, self.stack_len) };
    }
}

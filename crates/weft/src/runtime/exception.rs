//! Exceptions: exception objects and their heap, throwing (the throw stub and
//! the unwinder that finds the innermost handler in the handler tables that
//! travel with the compiled code), and the collector that frees exception
//! objects nothing refers to any more.
//!
//! **Throwing.** Compiled code throws by calling the throw stub
//! ([`Builtin::Throw`](crate::vmctx::Builtin::Throw)) with the Wasm calling
//! convention. Inside a `try_table` (or a legacy `try`) that call, like every
//! call there, is a Cranelift `try_call` whose exception table names one
//! handler block: the region's dispatch code, which compares the exception's
//! tag with each catch clause in turn and passes what matches on by branching
//! (what does not goes to the enclosing region's dispatch, or is thrown on).
//! The stub's Rust half walks the frame-pointer chain from its caller; the
//! first return address with a handler in its code object's table is where
//! the exception lands: the unwinder restores that frame's stack and frame
//! pointers (the table gives the frame's size at the call) and jumps to the
//! handler with the exception in `rax`, Cranelift's exception payload
//! register. With the tail calling convention that Wasm functions use, every
//! register is clobbered along the exceptional edge, so nothing else needs
//! restoring. Calls that are not in a `try` region cost nothing: they are
//! ordinary calls, and the table simply has no entry for them.
//!
//! An exception that reaches the host end of the activation becomes the
//! store's *pending exception* and the call fails with [`ThrownException`];
//! a host function that returns that error throws the pending exception on
//! into its Wasm caller, so an exception crosses host frames both ways.
//!
//! **Lifetime.** An exception object is allocated by `throw` (or the host)
//! and freed by a handler that consumes it (`catch`, `catch_all`) unless it
//! was ever *exposed*: handed to Wasm as an `exnref` value or to the host.
//! Exposed objects are freed by a mark-and-sweep collection that runs when
//! the count of live objects doubles: its roots are the pending exception,
//! objects the host holds, every global and table element of the store, and
//! the Wasm stacks of the calls in progress on this thread, scanned
//! conservatively (any word that is the address of a live object keeps it;
//! a false match only keeps an object longer). Payloads are traced. No
//! collection runs while a resumable call of the store is suspended (its
//! stack is not scanned), nor where the chain of calls crosses stacks in a
//! way the scanner cannot bound; the objects then wait for the next one.

use std::collections::HashSet;

use crate::runtime::code;
use crate::runtime::signals::{self, TrapCause};
use crate::store::StoreOpaque;
use crate::values::ValRaw;
use crate::vmctx::{EXN_EXPOSED_OFFSET, EXN_LEN_OFFSET, EXN_PAYLOAD_OFFSET, EXN_SLOT_SIZE, EXN_TAG_OFFSET};

/// The error a call fails with when a Wasm exception escapes it, and the one
/// a host function returns to throw the store's pending exception (see
/// [`Store::throw`](crate::Store::throw)). The exception itself is on the
/// store: [`Store::take_pending_exception`](crate::Store::take_pending_exception).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrownException;

impl std::fmt::Display for ThrownException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("thrown Wasm exception")
    }
}

impl std::error::Error for ThrownException {}

/// Collections start once this many objects are live.
const MIN_COLLECTION_THRESHOLD: usize = 1024;

/// A store's exception objects.
pub(crate) struct ExnHeap {
    /// Addresses of the live objects.
    live: HashSet<usize>,
    /// Objects the host holds handles to: roots until thrown by the host.
    /// (Handles are made where the store is only shared.)
    pinned: std::cell::RefCell<HashSet<usize>>,
    /// The exception escaping (or thrown by the host into) a call, if any.
    pub pending: usize,
    /// A collection runs when this many objects are live.
    threshold: usize,
}

impl Default for ExnHeap {
    fn default() -> Self {
        ExnHeap { live: HashSet::new(), pinned: Default::default(), pending: 0, threshold: MIN_COLLECTION_THRESHOLD }
    }
}

impl Drop for ExnHeap {
    fn drop(&mut self) {
        for p in self.live.drain() {
            // SAFETY: every live address came from `alloc` and is freed once.
            unsafe { free_object(p) };
        }
    }
}

/// Allocates an object of `len` payload slots (zeroed) for the tag of store
/// index `tag`.
fn alloc_object(tag: u32, len: u32) -> usize {
    let slots = 1 + len as usize;
    let mut mem = vec![0u128; slots].into_boxed_slice();
    let header = mem.as_mut_ptr() as *mut u32;
    // SAFETY: the header is the first 16 bytes of the allocation.
    unsafe {
        header.add(EXN_TAG_OFFSET as usize / 4).write(tag);
        header.add(EXN_LEN_OFFSET as usize / 4).write(len);
    }
    Box::into_raw(mem) as *mut u128 as usize
}

/// # Safety
/// `p` must come from `alloc_object` and not have been freed.
unsafe fn free_object(p: usize) {
    // SAFETY: the length is in the header the allocation wrote.
    unsafe {
        let len = *((p + EXN_LEN_OFFSET as usize) as *const u32) as usize;
        drop(Box::from_raw(std::ptr::slice_from_raw_parts_mut(p as *mut u128, 1 + len)));
    }
}

impl ExnHeap {
    /// Number of live exception objects.
    pub fn live_count(&self) -> usize {
        self.live.len()
    }

    /// Whether `p` is the address of a live object.
    pub fn is_live(&self, p: usize) -> bool {
        self.live.contains(&p)
    }

    /// Keeps `p` alive for the host and marks it exposed.
    pub fn pin(&self, p: usize) {
        assert!(self.is_live(p), "not an exception object of this store");
        // SAFETY: a live object's header.
        unsafe { ((p + EXN_EXPOSED_OFFSET as usize) as *mut u32).write(1) };
        self.pinned.borrow_mut().insert(p);
    }

    /// The host gives its hold on `p` up (it throws it).
    pub fn unpin(&mut self, p: usize) {
        self.pinned.get_mut().remove(&p);
    }

    /// The store index of the tag of live object `p`.
    pub fn tag(&self, p: usize) -> u32 {
        assert!(self.is_live(p), "exception object no longer alive");
        // SAFETY: a live object's header.
        unsafe { *((p + EXN_TAG_OFFSET as usize) as *const u32) }
    }

    /// The payload of live object `p`.
    pub fn payload(&self, p: usize) -> &[ValRaw] {
        assert!(self.is_live(p), "exception object no longer alive");
        // SAFETY: a live object holds `len` slots after its header, in the
        // raw slot format.
        unsafe {
            let len = *((p + EXN_LEN_OFFSET as usize) as *const u32) as usize;
            std::slice::from_raw_parts((p + EXN_PAYLOAD_OFFSET as usize) as *const ValRaw, len)
        }
    }

    /// Frees `p` if it was never exposed (a handler consumed it).
    pub fn drop_unexposed(&mut self, p: usize) {
        // SAFETY: compiled code passes a live object it caught.
        let exposed = unsafe { *((p + EXN_EXPOSED_OFFSET as usize) as *const u32) } != 0;
        if !exposed && p != self.pending && self.live.remove(&p) {
            // SAFETY: it was live and now is not: freed once.
            unsafe { free_object(p) };
        }
    }
}

/// Allocates an exception object of store tag `tag` with `len` zeroed
/// payload slots (compiled code or the host writes them), collecting first
/// if enough objects have accumulated.
pub(crate) fn allocate(store: &mut StoreOpaque, tag: u32, len: u32) -> usize {
    if store.exceptions.live.len() >= store.exceptions.threshold {
        collect(store);
    }
    let p = alloc_object(tag, len);
    store.exceptions.live.insert(p);
    p
}

/// Allocates an exception object of store tag `tag` holding `payload`.
pub(crate) fn allocate_with_payload(store: &mut StoreOpaque, tag: u32, payload: &[ValRaw]) -> usize {
    let p = allocate(store, tag, payload.len() as u32);
    // SAFETY: a fresh object of `payload.len()` slots that nothing else has seen.
    unsafe { std::ptr::copy_nonoverlapping(payload.as_ptr(), (p + EXN_PAYLOAD_OFFSET as usize) as *mut ValRaw, payload.len()) };
    p
}

/// Frees every exception object that nothing can reach (see the module's
/// documentation for the roots). Does nothing where the stacks cannot all be
/// scanned.
pub(crate) fn collect(store: &mut StoreOpaque) {
    let heap_len = store.exceptions.live.len();
    let mut marked: HashSet<usize> = HashSet::with_capacity(heap_len);
    let mut work: Vec<usize> = Vec::new();
    let consider = |word: u64, marked: &mut HashSet<usize>, work: &mut Vec<usize>, live: &HashSet<usize>| {
        let w = word as usize;
        if w != 0 && live.contains(&w) && marked.insert(w) {
            work.push(w);
        }
    };
    let live = &store.exceptions.live;
    if store.suspension.suspended.load(std::sync::atomic::Ordering::SeqCst) {
        return;
    }
    // The stacks first: the scan can give up. Suspended continuations'
    // stacks are scanned from where they wait, the running chain's with the
    // thread's; continuations running under a host call are not found from
    // here.
    let mut stack_words: Vec<u64> = Vec::new();
    if !crate::runtime::continuation::scan_suspended(store, &mut |w| stack_words.push(w)) || !scan_stacks(&mut |w| stack_words.push(w)) {
        store.exceptions.threshold = store.exceptions.threshold.saturating_mul(2);
        return;
    }
    for w in stack_words {
        consider(w, &mut marked, &mut work, live);
    }
    consider(store.exceptions.pending as u64, &mut marked, &mut work, live);
    for &p in store.exceptions.pinned.borrow().iter() {
        consider(p as u64, &mut marked, &mut work, live);
    }
    for g in &store.globals {
        // SAFETY: a global's storage lives as long as the store.
        let bits = unsafe { (*g.ptr).bits };
        consider(bits[0], &mut marked, &mut work, live);
    }
    for t in &store.tables {
        for &e in t.elements() {
            consider(e, &mut marked, &mut work, live);
        }
    }
    // Payloads refer to other objects.
    while let Some(p) = work.pop() {
        // SAFETY: a live object.
        let len = unsafe { *((p + EXN_LEN_OFFSET as usize) as *const u32) } as usize;
        for i in 0..len {
            // SAFETY: slot `i` of a live object.
            let word = unsafe { *((p + EXN_PAYLOAD_OFFSET as usize + i * EXN_SLOT_SIZE as usize) as *const u64) };
            consider(word, &mut marked, &mut work, live);
        }
    }
    let heap = &mut store.exceptions;
    heap.live.retain(|&p| {
        if marked.contains(&p) {
            return true;
        }
        // SAFETY: unreachable from every root: nothing can use it again.
        unsafe { free_object(p) };
        false
    });
    heap.threshold = (heap.live.len() * 2).max(MIN_COLLECTION_THRESHOLD);
}

std::arch::global_asm!(
    ".text",
    // The throw stub: called by compiled code with the Wasm calling
    // convention, (rdi = vmctx, rsi = exn). It makes a frame, so that its
    // caller's return address and frame pointer sit at [rbp + 8] and [rbp],
    // and hands that frame to the Rust half, which never returns.
    ".globl weft_throw_stub",
    ".type weft_throw_stub,@function",
    "weft_throw_stub:",
    "push rbp",
    "mov rbp, rsp",
    "mov rdx, rbp",
    "call {throw}",
    "ud2",
    ".size weft_throw_stub, .-weft_throw_stub",
    "",
    // Lands in a handler: rdi = stack pointer, rsi = frame pointer, rdx =
    // handler, rcx = the exception (payload register rax).
    ".globl weft_resume_at_handler",
    ".type weft_resume_at_handler,@function",
    "weft_resume_at_handler:",
    "mov rsp, rdi",
    "mov rbp, rsi",
    "mov rax, rcx",
    "jmp rdx",
    ".size weft_resume_at_handler, .-weft_resume_at_handler",
    "",
    // Calls rdi(rsi, rsp) with the callee-saved registers pushed, so that a
    // scan of the stack from rsp sees every value they held.
    ".globl weft_with_registers_spilled",
    ".type weft_with_registers_spilled,@function",
    "weft_with_registers_spilled:",
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "mov rax, rdi",
    "mov rdi, rsi",
    "mov rsi, rsp",
    "call rax",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size weft_with_registers_spilled, .-weft_with_registers_spilled",
    throw = sym throw_from_wasm,
);

extern "C" {
    /// See the assembly above; its address is the `Throw` builtin.
    pub(crate) fn weft_throw_stub();
    fn weft_resume_at_handler(sp: usize, fp: usize, pc: usize, exn: usize) -> !;
    fn weft_with_registers_spilled(f: unsafe extern "C" fn(*mut u8, usize), data: *mut u8);
}

/// The throw stub's Rust half: `stub_fp` is the stub's frame.
unsafe extern "C" fn throw_from_wasm(_vmctx: *mut u8, exn: usize, stub_fp: usize) -> ! {
    // SAFETY: the stub's frame holds its caller's return address and frame pointer.
    let (pc, fp) = unsafe { (*((stub_fp + 8) as *const usize), *(stub_fp as *const usize)) };
    // SAFETY: called from compiled code through the stub, inside an activation.
    unsafe { unwind(exn, pc, fp) }
}

/// Throws the store's pending exception into the Wasm caller of a host
/// function that failed with [`ThrownException`]; `fp` is the frame of the
/// Wasm-to-host trampoline.
///
/// # Safety
/// As for [`signals::raise`].
pub(crate) unsafe fn throw_from_host(store: &mut StoreOpaque, fp: usize) -> ! {
    let exn = std::mem::take(&mut store.exceptions.pending);
    // SAFETY: the trampoline's frame holds its caller's return address and frame pointer.
    let (pc, caller_fp) = unsafe { (*((fp + 8) as *const usize), *(fp as *const usize)) };
    // SAFETY: forwarded from the caller.
    unsafe { unwind(exn, pc, caller_fp) }
}

/// Unwinds from the frame `fp` whose return address is `pc` to the innermost
/// handler of the current activation, or, if there is none, out of the
/// activation with the exception pending on the store.
///
/// # Safety
/// Must be called from code invoked by compiled code (through the throw stub
/// or a host-call trampoline), with no live values that need dropping in the
/// frames between here and the handler.
unsafe fn unwind(exn: usize, pc: usize, fp: usize) -> ! {
    let act = signals::current_activation();
    assert!(!act.is_null(), "throw outside of Wasm");
    // SAFETY: the activation is live while its call is in progress.
    let mut cursor = unsafe { signals::FrameCursor::new(&*act) };
    let (throw_pc, throw_fp) = (pc, fp);
    let (mut pc, mut fp) = (pc, fp);
    loop {
        let found = code::with_code_at(pc, |c| c.map(|(mem, offset)| mem.handler_at(offset).map(|(h, size)| (mem.base() as usize + h as usize, size))));
        match found {
            None if !cursor.in_continuation() => break,
            Some(Some((handler, frame_size))) => {
                // SAFETY: the handler belongs to the live frame `fp`, whose
                // stack pointer at the call was `fp - frame_size`; every
                // frame below it is compiled code or a runtime shim holding
                // nothing to drop.
                unsafe { weft_resume_at_handler(fp - frame_size as usize, fp, handler, exn) }
            }
            _ => {}
        }
        // SAFETY: `fp` is a frame of compiled code on the cursor's stack.
        if unsafe { cursor.is_continuation_entry(fp) } {
            // No handler in the running continuation: the exception leaves
            // it for the resume that resumed it, which throws it on.
            // SAFETY: we are on the running continuation's stack, called from its code.
            unsafe { crate::runtime::continuation::leave_with_exception((*act).store_ctx, exn) }
        }
        // SAFETY: as above.
        match unsafe { cursor.caller(fp) } {
            Some((caller_pc, caller_fp)) => (pc, fp) = (caller_pc, caller_fp),
            None => break,
        }
    }
    // Uncaught here: the exception leaves the activation.
    // SAFETY: the activation's store context points at its live store.
    unsafe {
        let store = &mut *((*(*act).store_ctx).store as *mut StoreOpaque);
        store.exceptions.pending = exn;
        // The throwing call, not the instruction after it, for the backtrace.
        signals::raise_at(TrapCause::Host, Some(anyhow::Error::new(ThrownException)), None, throw_pc - 1, throw_fp)
    }
}

/// Calls `visit` with every word of the Wasm stacks of the calls in progress
/// on this thread (and of the runtime frames between them), callee-saved
/// registers included. Returns false, having visited only part, if the chain
/// of calls leaves the current stack (a resumable call made from a host
/// function: the frames below the fiber's entry on the host's stack are not
/// found from here).
fn scan_stacks(visit: &mut dyn FnMut(u64)) -> bool {
    struct Scan<'a> {
        visit: &'a mut dyn FnMut(u64),
        complete: bool,
    }
    unsafe extern "C" fn scan_from(data: *mut u8, sp: usize) {
        // SAFETY: `data` is the `Scan` below, alive for the call.
        let scan = unsafe { &mut *(data as *mut Scan<'_>) };
        // No stack of Wasm calls is larger than this (a sanity bound: stack
        // switches are found through the fiber's record).
        const MAX_RANGE: usize = 1 << 30;
        let mut low = sp;
        let mut act = signals::current_activation();
        // On a continuation's stack: the chain's stacks first, then the
        // host's from where the chain's outermost resumer waits.
        // SAFETY: an activation's store context is live while it runs.
        let active = if act.is_null() { std::ptr::null_mut() } else { unsafe { (*(*act).store_ctx).active_stack } };
        if !active.is_null() {
            // SAFETY: the store's code runs on this thread, on that continuation's stack.
            low = unsafe { crate::runtime::continuation::scan_running_chain(active, sp, scan.visit) };
        }
        // Where the chain leaves this fiber's stack for the host's.
        let stack_boundary = crate::runtime::fiber::current_host_activation();
        while !act.is_null() {
            if act == stack_boundary {
                scan.complete = false;
                return;
            }
            // SAFETY: activations in the chain are live.
            let (entry, prev) = unsafe { ((*act).entry_sp(), (*act).prev()) };
            if entry < low || entry - low > MAX_RANGE {
                scan.complete = false;
                return;
            }
            let mut p = low & !7;
            while p < entry {
                // SAFETY: `low..entry` is part of this thread's live stack.
                (scan.visit)(unsafe { *(p as *const u64) });
                p += 8;
            }
            low = entry;
            act = prev;
        }
    }
    let mut scan = Scan { visit, complete: true };
    // SAFETY: the callback only reads this thread's stack.
    unsafe { weft_with_registers_spilled(scan_from, &mut scan as *mut Scan<'_> as *mut u8) };
    scan.complete
}

/// `ExnNew` builtin: a fresh object for module tag `tag` of the caller.
pub(crate) unsafe extern "C" fn exn_new(vmctx: *mut u8, tag: u32) -> usize {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { crate::runtime::instance::instance_of(vmctx) };
    let store_tag = inst.tags[tag as usize];
    let ty = store.engine.func_type(store.tags[store_tag].type_id);
    let len = ty.params().len() as u32;
    allocate(store, store_tag as u32, len)
}

/// `ExnDrop` builtin: a handler is done with `exn`.
pub(crate) unsafe extern "C" fn exn_drop(vmctx: *mut u8, exn: usize) {
    // SAFETY: called by compiled code with its own vmctx.
    let (_, store) = unsafe { crate::runtime::instance::instance_of(vmctx) };
    store.exceptions.drop_unexposed(exn);
}

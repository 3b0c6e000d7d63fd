//! Entering Wasm, and leaving it abnormally: trap handling.
//!
//! Every call from the host into Wasm goes through [`call_wasm`], which records
//! an [`Activation`] (a jump buffer and room for a trap record) in a thread-local
//! chain and enters compiled code through `weft_enter`, a small assembly routine
//! that saves the callee-saved registers so the activation can be resumed from
//! anywhere below it.
//!
//! A trap unwinds to the innermost activation:
//! - hardware faults (SIGSEGV, SIGBUS on guard pages; SIGILL on `ud2` trap
//!   instructions; SIGFPE) reach `trap_handler`, which runs on an alternate
//!   signal stack, checks that the faulting PC is in compiled code and has a trap
//!   table entry, records the trap and a backtrace, and rewrites the signal
//!   context so that returning from the handler lands in the activation's resume
//!   point. Faults that are not ours go to the handler installed before ours.
//! - host functions that fail record the error and call [`raise`], which jumps to
//!   the same resume point.
//!
//! Only Cranelift-generated frames (which hold no destructors) and the thin
//! `extern "C"` host-call shims (which hold none at the point of raising) are
//! skipped by such a jump.

use std::cell::Cell;
use std::mem::MaybeUninit;
use std::ptr;
use std::sync::Once;

use crate::runtime::code;
use crate::runtime::sys;
use crate::trap::{codes, Trap};
use crate::vmctx::VMStoreContext;

/// Saved state to resume an activation: stack pointer, frame pointer, resume PC.
#[repr(C)]
#[derive(Default)]
pub struct JmpBuf {
    sp: usize,
    fp: usize,
    pc: usize,
}

std::arch::global_asm!(
    ".text",
    ".globl weft_enter",
    ".type weft_enter,@function",
    "weft_enter:",
    // rdi = jmpbuf, rsi = trampoline, rdx = callee vmctx, rcx = caller vmctx,
    // r8 = code, r9 = values
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "mov [rdi], rsp",
    "mov [rdi + 8], rbp",
    "lea rax, [rip + 2f]",
    "mov [rdi + 16], rax",
    "mov rax, rsi",
    "mov rdi, rdx",
    "mov rsi, rcx",
    "mov rdx, r8",
    "mov rcx, r9",
    "call rax",
    "mov eax, 1",
    "jmp 3f",
    "2:",
    "xor eax, eax",
    "3:",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size weft_enter, .-weft_enter",
    "",
    ".globl weft_longjmp",
    ".type weft_longjmp,@function",
    "weft_longjmp:",
    "mov rsp, [rdi]",
    "mov rbp, [rdi + 8]",
    "jmp qword ptr [rdi + 16]",
    ".size weft_longjmp, .-weft_longjmp",
);

extern "C" {
    fn weft_enter(buf: *mut JmpBuf, trampoline: *const u8, callee_vmctx: *mut u8, caller_vmctx: *mut u8, code: *const u8, values: *mut u8) -> u32;
    fn weft_longjmp(buf: *const JmpBuf) -> !;
}

/// Frames recorded per trap; deeper backtraces are truncated.
pub const MAX_BACKTRACE: usize = 128;

/// How a trap was raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrapCause {
    None,
    /// A fault in compiled code with this kind.
    Wasm(Trap),
    /// A host function returned an error (stored in `host_error`).
    Host,
    /// A host function panicked (payload in `panic`).
    Panic,
}

/// One host-to-Wasm call in progress on this thread.
pub struct Activation {
    jmp: JmpBuf,
    prev: *mut Activation,
    /// Stack pointer at entry: frame pointers above it belong to the host.
    entry_sp: usize,
    /// The store context of the store running this call.
    pub store_ctx: *mut VMStoreContext,
    pub cause: TrapCause,
    /// PC of the trap and the frame return addresses above it (the first
    /// `backtrace_len` entries are initialised).
    pub backtrace: [std::mem::MaybeUninit<usize>; MAX_BACKTRACE],
    pub backtrace_len: usize,
    pub host_error: Option<anyhow::Error>,
    pub panic: Option<Box<dyn std::any::Any + Send>>,
}

impl Activation {
    /// The stack pointer at entry: frames at or above it belong to the host.
    pub fn entry_sp(&self) -> usize {
        self.entry_sp
    }
    /// The activation this one is nested in (null for the outermost).
    pub fn prev(&self) -> *mut Activation {
        self.prev
    }
}

thread_local! {
    static ACTIVATION: Cell<*mut Activation> = const { Cell::new(ptr::null_mut()) };
    static ALT_STACK_READY: Cell<bool> = const { Cell::new(false) };
}

/// The innermost activation of this thread (null when not in Wasm).
pub fn current_activation() -> *mut Activation {
    ACTIVATION.with(|a| a.get())
}

/// Replaces this thread's activation chain (fibers switch chains).
pub fn set_current_activation(a: *mut Activation) {
    ACTIVATION.with(|c| c.set(a));
}

/// The result of a call into Wasm that trapped.
pub struct TrapRecord {
    pub cause: TrapCause,
    pub backtrace: Vec<usize>,
    pub host_error: Option<anyhow::Error>,
    pub panic: Option<Box<dyn std::any::Any + Send>>,
}

/// Calls `code` (Wasm calling convention) through the host-to-Wasm `trampoline`,
/// with arguments and results in `values`.
///
/// # Safety
/// `store_ctx` must be the live store context of the callee's store, the
/// trampoline must match the callee's type, and `values` must hold enough slots.
pub unsafe fn call_wasm(
    store_ctx: *mut VMStoreContext,
    max_wasm_stack: usize,
    trampoline: *const u8,
    callee_vmctx: *mut u8,
    caller_vmctx: *mut u8,
    code: *const u8,
    values: *mut u8,
) -> Result<(), Box<TrapRecord>> {
    init_thread();
    let here = 0u8;
    let sp = &here as *const u8 as usize;
    // SAFETY: the caller guarantees `store_ctx` is live.
    let ctx = unsafe { &mut *store_ctx };
    let old_limit = ctx.stack_limit;
    // The running continuation, if the host called from one: a trap leaves
    // the continuations resumed since.
    let entry_active = ctx.active_stack;
    if old_limit == usize::MAX || old_limit > sp {
        // Outermost entry for this store on this stack: Wasm gets `max_wasm_stack` below here.
        ctx.set_stack_limit(sp.saturating_sub(max_wasm_stack));
    }
    // On this frame, which outlives the call (a trap jumps back into
    // `weft_enter`, below it); no allocation on the call path.
    let mut activation = Activation {
        jmp: JmpBuf::default(),
        prev: current_activation(),
        entry_sp: sp,
        store_ctx,
        cause: TrapCause::None,
        backtrace: [const { std::mem::MaybeUninit::uninit() }; MAX_BACKTRACE],
        backtrace_len: 0,
        host_error: None,
        panic: None,
    };
    let act_ptr: *mut Activation = &mut activation;
    ACTIVATION.with(|a| a.set(act_ptr));
    // Segment probes read the store's probe page through GS. The caller's
    // base comes back afterwards, if Weft had set one: it may be another
    // store's, one level out.
    let probe_page = ctx.segment_probe_page;
    let saved_gs = (probe_page != 0).then(|| {
        let saved = sys::weft_gs_base();
        // SAFETY: the page is set only where the engine checked FSGSBASE.
        unsafe { sys::set_gs_base(probe_page) };
        saved
    });
    // SAFETY: the jump buffer lives in `activation`, which outlives the call;
    // the caller guarantees the other arguments.
    let ok = unsafe { weft_enter(&mut (*act_ptr).jmp, trampoline, callee_vmctx, caller_vmctx, code, values) };
    sys::restore_gs_base(saved_gs.flatten());
    ACTIVATION.with(|a| a.set(activation.prev));
    if ok == 1 {
        ctx.set_stack_limit(old_limit);
        return Ok(());
    }
    if ctx.active_stack != entry_active {
        // SAFETY: the trap left the continuations' stacks.
        unsafe { crate::runtime::continuation::abandon(store_ctx, entry_active) };
    }
    ctx.set_stack_limit(old_limit);
    // SAFETY: the first `backtrace_len` entries were written by `record_backtrace`.
    let backtrace = activation.backtrace[..activation.backtrace_len].iter().map(|v| unsafe { v.assume_init() }).collect();
    Err(Box::new(TrapRecord { cause: activation.cause, backtrace, host_error: activation.host_error.take(), panic: activation.panic.take() }))
}

/// Unwinds to the innermost activation after a host function failed.
/// `fp` is the frame pointer of the Wasm-to-host trampoline, where the backtrace starts.
///
/// # Safety
/// Must be called from a host function invoked by compiled code, with no live
/// values that need dropping in the frames between here and the activation.
pub unsafe fn raise(cause: TrapCause, error: Option<anyhow::Error>, panic: Option<Box<dyn std::any::Any + Send>>, fp: usize) -> ! {
    // SAFETY: `fp` is the trampoline's frame pointer: [fp + 8] is the return
    // address into the calling Wasm function, [fp] its frame pointer.
    let (pc, caller_fp) = unsafe { (*((fp + 8) as *const usize), *(fp as *const usize)) };
    // SAFETY: forwarded from the caller.
    unsafe { raise_at(cause, error, panic, pc, caller_fp) }
}

/// Like [`raise`], for a trap at `pc` (not a return address) in the frame `fp`.
///
/// # Safety
/// As for [`raise`].
pub unsafe fn raise_at(cause: TrapCause, error: Option<anyhow::Error>, panic: Option<Box<dyn std::any::Any + Send>>, pc: usize, fp: usize) -> ! {
    let act = current_activation();
    assert!(!act.is_null(), "raise outside of Wasm");
    // SAFETY: the activation is live while its call is in progress.
    let a = unsafe { &mut *act };
    a.cause = cause;
    a.host_error = error;
    a.panic = panic;
    // SAFETY: `fp` is a frame pointer of compiled code below the activation.
    unsafe {
        record_backtrace(a, pc, fp);
        weft_longjmp(&a.jmp)
    }
}

/// Walks the frame-pointer chain from (pc, fp) while it stays in compiled code
/// (and across the boundaries of running continuations). Async-signal-safe.
unsafe fn record_backtrace(a: &mut Activation, mut pc: usize, mut fp: usize) {
    let mut n = 0;
    // SAFETY: the activation's store context is live while it runs.
    let mut cursor = unsafe { FrameCursor::new(a) };
    loop {
        if n == MAX_BACKTRACE {
            break;
        }
        if code::with_code_at(pc, |c| c.is_some()) {
            a.backtrace[n] = std::mem::MaybeUninit::new(pc);
            n += 1;
        } else if !cursor.in_continuation() {
            break;
        }
        // SAFETY: `fp` is a frame of compiled code on the cursor's stack.
        match unsafe { cursor.caller(fp) } {
            Some((caller_pc, caller_fp)) => (pc, fp) = (caller_pc, caller_fp),
            None => break,
        }
    }
    a.backtrace_len = n;
}

/// Where a walk of compiled-code frames is: on the stack of a running
/// continuation (whose first frame leads to its resumer's, see
/// `runtime::continuation`), or on the stack the activation entered Wasm on,
/// below its entry. Async-signal-safe.
pub struct FrameCursor {
    entry_sp: usize,
    /// The continuation whose stack the walk is on (null: the entry stack).
    cont: *mut u8,
}

impl FrameCursor {
    /// A walk starting in the innermost frames of activation `a`: on the
    /// stack of its store's running continuation, if there is one.
    ///
    /// # Safety
    /// The activation's store context must be live.
    pub unsafe fn new(a: &Activation) -> Self {
        // SAFETY: as the caller guarantees.
        let cont = if a.store_ctx.is_null() { ptr::null_mut() } else { unsafe { (*a.store_ctx).active_stack } };
        FrameCursor { entry_sp: a.entry_sp, cont }
    }

    /// Whether the walk is on a continuation's stack.
    pub fn in_continuation(&self) -> bool {
        !self.cont.is_null()
    }

    /// Whether `fp` is the first frame of the continuation the walk is on,
    /// whose caller is that continuation's resumer.
    ///
    /// # Safety
    /// As for [`Self::caller`].
    pub unsafe fn is_continuation_entry(&self, fp: usize) -> bool {
        // SAFETY: as the caller guarantees.
        !self.cont.is_null() && fp.is_multiple_of(8) && fp != 0 && unsafe { *(fp as *const usize) } == crate::runtime::continuation::link_of(self.cont)
    }

    /// The caller of the frame `fp`: its return address into the caller and
    /// the caller's frame pointer, unless the chain ends (a null or
    /// misaligned pointer, or one outside the stack the walk is on: above
    /// the activation's entry, where the host's frames begin, or above a
    /// continuation's stack). The caller of a continuation's first frame is
    /// the resume that resumed it, on the resumer's stack.
    ///
    /// # Safety
    /// `fp` must be the frame pointer of a live compiled-code frame on the
    /// cursor's stack: compiled code keeps `[fp]` = caller's frame pointer
    /// and `[fp + 8]` = return address.
    pub unsafe fn caller(&mut self, fp: usize) -> Option<(usize, usize)> {
        if self.cont.is_null() {
            // SAFETY: forwarded.
            return unsafe { caller_frame(fp, self.entry_sp) };
        }
        let top = crate::runtime::continuation::stack_top_of(self.cont);
        if fp == 0 || fp >= top || !fp.is_multiple_of(8) {
            return None;
        }
        // SAFETY: as the caller guarantees, below the top of the stack.
        let (pc, next) = unsafe { (*((fp + 8) as *const usize), *(fp as *const usize)) };
        let link = crate::runtime::continuation::link_of(self.cont);
        if next == link {
            self.cont = crate::runtime::continuation::parent_of(self.cont);
            // SAFETY: the link is the resumer record's frame-pointer word,
            // followed by the resumer's resume address.
            return Some(unsafe { (*((link + 8) as *const usize), *(link as *const usize)) });
        }
        (next > fp && next < top).then_some((pc, next))
    }
}

/// The caller of the compiled-code frame `fp`: its return address into the
/// caller and the caller's frame pointer, unless the chain ends (a null or
/// misaligned pointer, or one at or above the activation's entry `entry_sp`,
/// where the host's frames begin). Async-signal-safe.
///
/// # Safety
/// `fp` must be the frame pointer of a live compiled-code frame on this
/// thread's stack: compiled code keeps `[fp]` = caller's frame pointer and
/// `[fp + 8]` = return address.
pub unsafe fn caller_frame(fp: usize, entry_sp: usize) -> Option<(usize, usize)> {
    if fp == 0 || fp >= entry_sp || !fp.is_multiple_of(8) {
        return None;
    }
    // SAFETY: as the caller guarantees, below the activation's entry.
    let (pc, next) = unsafe { (*((fp + 8) as *const usize), *(fp as *const usize)) };
    (next > fp).then_some((pc, next))
}

static mut PREV_SIGSEGV: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_SIGBUS: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_SIGILL: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static mut PREV_SIGFPE: MaybeUninit<libc::sigaction> = MaybeUninit::uninit();
static INSTALL: Once = Once::new();

/// Installs Weft's signal handlers (once per process).
pub fn install_handlers() {
    INSTALL.call_once(|| {
        for (sig, prev) in [
            (libc::SIGSEGV, &raw mut PREV_SIGSEGV),
            (libc::SIGBUS, &raw mut PREV_SIGBUS),
            (libc::SIGILL, &raw mut PREV_SIGILL),
            (libc::SIGFPE, &raw mut PREV_SIGFPE),
        ] {
            // SAFETY: a zeroed sigaction is a valid starting point; we fill in
            // the handler, flags and mask, and `prev` is written once, here,
            // before any handler can read it.
            unsafe {
                let mut action: libc::sigaction = std::mem::zeroed();
                action.sa_sigaction = trap_handler as *const () as usize;
                action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK | libc::SA_NODEFER;
                libc::sigemptyset(&mut action.sa_mask);
                if libc::sigaction(sig, &action, (*prev).as_mut_ptr()) != 0 {
                    panic!("failed to install signal handler: {}", std::io::Error::last_os_error());
                }
            }
        }
    });
}

const ALT_STACK_SIZE: usize = 64 * 1024;

/// Makes sure this thread has an alternate signal stack big enough for our handler.
pub fn init_thread() {
    if ALT_STACK_READY.with(|r| r.get()) {
        return;
    }
    // SAFETY: querying and setting the alternate stack of the current thread.
    unsafe {
        let mut old: libc::stack_t = std::mem::zeroed();
        libc::sigaltstack(ptr::null(), &mut old);
        if old.ss_flags & libc::SS_DISABLE != 0 || old.ss_size < ALT_STACK_SIZE {
            let page = code::page_size();
            let size = ALT_STACK_SIZE + page;
            let mem = libc::mmap(ptr::null_mut(), size, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
            assert!(mem != libc::MAP_FAILED, "failed to allocate a signal stack");
            // The lowest page is a guard.
            libc::mprotect(mem, page, libc::PROT_NONE);
            let stack = libc::stack_t { ss_sp: (mem as usize + page) as *mut _, ss_flags: 0, ss_size: ALT_STACK_SIZE };
            assert_eq!(libc::sigaltstack(&stack, ptr::null_mut()), 0, "sigaltstack failed");
            // The stack is leaked with the thread: a handler may still be using
            // it while the thread exits.
        }
    }
    ALT_STACK_READY.with(|r| r.set(true));
}

unsafe extern "C" fn trap_handler(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid ucontext for SA_SIGINFO handlers.
    let uc = unsafe { &mut *(ctx as *mut libc::ucontext_t) };
    let act = current_activation();
    if !act.is_null() {
        let pc = uc.uc_mcontext.gregs[libc::REG_RIP as usize] as usize;
        let fp = uc.uc_mcontext.gregs[libc::REG_RBP as usize] as usize;
        let sp = uc.uc_mcontext.gregs[libc::REG_RSP as usize] as usize;
        // SAFETY: reading si_addr of a fault signal.
        let addr = if sig == libc::SIGSEGV || sig == libc::SIGBUS { (unsafe { (*info).si_addr() }) as usize } else { 0 };
        let code = code::with_code_at(pc, |found| found.map(|(mem, offset)| mem.trap_at(offset)));
        // SAFETY: the activation is live and belongs to this thread; its store
        // context and store are alive while it runs.
        let on_interrupt_page = addr != 0
            && unsafe {
                let store = (*(*act).store_ctx).store as *const crate::store::StoreOpaque;
                crate::runtime::interrupt::is_interruption_fault(&*store, addr)
            };
        // A fuel check's slow path, which loads from the forbidden page
        // with the counter in r15: to the runtime through the same stub.
        let fuel_check = code == Some(Some(codes::FUEL_CHECK)) && crate::runtime::interrupt::is_forbidden_page(addr);
        if fuel_check || (code == Some(Some(codes::INTERRUPTION_POINT)) && on_interrupt_page) {
            // An interruption (MMU, or an epoch check's slow path): run the hook
            // on the guest's stack, then resume at the same load. See `interrupt.rs` for the stub's frame.
            // In pointer mode and in an epoch check's slow path the faulting
            // load's base register holds the forbidden page: point it at a
            // readable page so that re-executing the load succeeds. (The
            // register is found by value; it holds nothing but that pointer.)
            // SAFETY: as above.
            let readable = unsafe {
                let store = (*(*act).store_ctx).store as *const crate::store::StoreOpaque;
                if fuel_check {
                    // Any readable byte will do: the load is dead.
                    Some((*act).store_ctx as i64)
                } else {
                    crate::runtime::interrupt::repair_target(&*store).map(|p| p as i64)
                }
            };
            let forbidden = (addr & !(code::page_size() - 1)) as i64;
            if let Some(readable) = readable.filter(|r| *r != forbidden) {
                for reg in [
                    libc::REG_RAX,
                    libc::REG_RBX,
                    libc::REG_RCX,
                    libc::REG_RDX,
                    libc::REG_RSI,
                    libc::REG_RDI,
                    libc::REG_R8,
                    libc::REG_R9,
                    libc::REG_R10,
                    libc::REG_R11,
                    libc::REG_R12,
                    libc::REG_R13,
                    libc::REG_R14,
                    libc::REG_R15,
                ] {
                    if uc.uc_mcontext.gregs[reg as usize] == forbidden {
                        uc.uc_mcontext.gregs[reg as usize] = readable;
                    }
                }
            }
            let new_sp = (sp - 128 - 16) & !15;
            // SAFETY: below the red zone of the interrupted thread's own stack.
            unsafe {
                *(new_sp as *mut usize) = pc;
                *((new_sp + 8) as *mut usize) = sp;
            }
            uc.uc_mcontext.gregs[libc::REG_RSP as usize] = new_sp as i64;
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] = crate::runtime::interrupt::stub_address() as i64;
            return;
        }
        if on_interrupt_page {
            // Only interruption points may touch the interrupt page.
            let msg = b"weft: fault on the interrupt page outside an interruption point\n";
            // SAFETY: write and abort are async-signal-safe.
            unsafe {
                libc::write(2, msg.as_ptr() as *const _, msg.len());
                libc::abort();
            }
        }
        let kind = match code {
            Some(Some(code)) => Trap::from_code(code),
            // Only the stack guard can fault at an instruction without a
            // trap entry (a call or push past the end of the stack).
            Some(None) if addr != 0 && addr.abs_diff(sp) < 1 << 16 => Some(Trap::StackOverflow),
            _ => None,
        };
        if let Some(kind) = kind {
            // SAFETY: the activation is live while its call is in progress, and
            // this handler runs on the thread that owns it.
            let a = unsafe { &mut *act };
            a.cause = TrapCause::Wasm(kind);
            if !a.store_ctx.is_null() {
                // SAFETY: the activation's store context is live while it runs.
                let store_ctx = unsafe { &mut *a.store_ctx };
                if store_ctx.fuel_in_pinned_reg {
                    // Compiled code counts fuel in r15 (see `translate::fuel`).
                    store_ctx.fuel_consumed = uc.uc_mcontext.gregs[libc::REG_R15 as usize];
                }
            }
            // SAFETY: walking the faulting thread's frames, which are intact.
            unsafe { record_backtrace(a, pc, fp) };
            uc.uc_mcontext.gregs[libc::REG_RSP as usize] = a.jmp.sp as i64;
            uc.uc_mcontext.gregs[libc::REG_RBP as usize] = a.jmp.fp as i64;
            uc.uc_mcontext.gregs[libc::REG_RIP as usize] = a.jmp.pc as i64;
            return;
        }
    }
    // Not ours: hand it to whoever was installed before.
    let prev = match sig {
        libc::SIGSEGV => &raw const PREV_SIGSEGV,
        libc::SIGBUS => &raw const PREV_SIGBUS,
        libc::SIGILL => &raw const PREV_SIGILL,
        _ => &raw const PREV_SIGFPE,
    };
    // SAFETY: PREV_* were written before our handler was installed.
    unsafe { forward(sig, info, ctx, (*prev).assume_init_ref()) };
}

/// Delivers a signal to a previously installed handler, or restores the default
/// disposition so that the faulting instruction re-faults with it.
unsafe fn forward(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void, prev: &libc::sigaction) {
    let handler = prev.sa_sigaction;
    if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
        // SAFETY: resetting the disposition; returning re-executes the fault.
        unsafe { libc::sigaction(sig, prev, ptr::null_mut()) };
    } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
        // SAFETY: the previous handler expects exactly these arguments.
        unsafe {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) = std::mem::transmute(handler);
            f(sig, info, ctx);
        }
    } else {
        // SAFETY: a plain handler takes only the signal number.
        unsafe {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
            f(sig);
        }
    }
}

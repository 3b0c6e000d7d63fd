//! Continuations (the stack-switching proposal): continuation objects, the
//! builtins that prepare each switch, and what happens at a continuation's
//! boundaries: its start, its return, an exception or a trap leaving it, and
//! a host call made from it.
//!
//! A continuation is a [`ContObj`] with a [`Stack`] of its own. The
//! continuations that run form a chain, innermost first, through their
//! `parent`s, the continuations that resumed them (null: the stack the host
//! entered Wasm on); the store context's `active_stack` is the innermost, and
//! each continuation of the chain keeps the handler list of the `resume`
//! that resumed it. Switches are made by compiled code, inline, with
//! Cranelift's `stack_switch`, whose context records (stack pointer, frame
//! pointer, resume address) live in two places: a suspended continuation's
//! own in its object ([`ContObj::ctx`]), and the one of whoever resumed a
//! continuation in the top three words of the continuation's stack. The
//! latter doubles as the link that frame walks follow from a continuation's
//! first frame to its resumer's: the continuation's entry frame has the
//! record's frame-pointer word as its frame pointer, so `[link]` is the
//! resumer's frame pointer and `[link + 8]` where the resumer continues (see
//! `signals::FrameCursor`).
//!
//! Before each switch a builtin checks the continuation and finds the
//! handler, moves continuations in and out of the chain, sets the stack
//! limit of the stack about to run, and writes the switch (which contexts,
//! and the payload) into the store context; values travel in the store's
//! switch-value slots. A continuation reference is a fat pointer in one
//! word: the object's address in the low 48 bits and a revision in the high
//! 16. Consuming a continuation (resuming, binding or switching to it) bumps
//! its revision, so every older reference is refused; an object whose
//! revision would wrap is retired for good (never reused) and its state
//! moves to a fresh object.
//!
//! A continuation that returns gives its stack back at once (to the store's
//! cache, and from there to the engine's [`StackPool`]) and its object to
//! the store for reuse. So do the continuations a trap abandons. Suspended
//! continuations that are never resumed again are freed with their store.

use std::collections::HashMap;
use std::sync::Arc;

use crate::compile::Trampolines;
use crate::runtime::signals;
use crate::runtime::stacks::{Stack, StackPool};
use crate::store::StoreOpaque;
use crate::values::ValRaw;
use crate::vmctx::{
    self, VMFuncRef, VMStoreContext, CONT_HANDLER_SWITCH, CONT_RESUMED, CONT_RESUMED_THROWING, CONT_RETURNED, CONT_STATUS_CONSUMED, CONT_STATUS_OK,
    CONT_STATUS_UNHANDLED, CONT_SUSPENDED, CONT_THREW,
};

/// A `stack_switch` context record.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct SwitchCtx {
    pub sp: usize,
    pub fp: usize,
    pub ip: usize,
}

/// Bytes at the top of every continuation stack for its resumer's context record.
const RESUMER_RECORD: usize = 24;
/// Where a fresh continuation's stack pointer starts, below the top (16-byte aligned).
const START_SP: usize = 32;
/// Continuation references keep the revision above this bit.
const REVISION_SHIFT: u32 = 48;
/// The largest revision a reference can hold.
const MAX_REVISION: u64 = 0xffff;
/// A handler list of a resume made by the host, which handles every suspension.
pub const HOST_HANDLERS: u32 = u32::MAX;
/// Stacks a store keeps for itself before giving them to the engine's pool.
const STORE_STACK_CACHE: usize = 16;

/// What a continuation object holds; compiled code reads and writes the
/// states as `u32`s (see [`vmctx::CONT_STATE_OFFSET`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
enum State {
    /// Created, not yet started.
    Fresh = vmctx::CONT_STATE_FRESH,
    /// Suspended (by `suspend` or `switch`), waiting to be resumed.
    Suspended = vmctx::CONT_STATE_SUSPENDED,
    /// In the chain of running continuations.
    Running = vmctx::CONT_STATE_RUNNING,
    /// Returned, or abandoned by a trap; the object is free for reuse.
    Done = 3,
    /// Never to be used again (its revisions ran out).
    Retired = 4,
}

/// A continuation. Compiled code reads and writes some of its fields, at
/// the offsets `vmctx` gives (checked below).
#[repr(C)]
pub struct ContObj {
    /// Where it continues, while suspended (or fresh).
    ctx: SwitchCtx,
    revision: u64,
    /// While running: the continuation that resumed it (null: the host's stack).
    parent: *mut ContObj,
    /// While suspended: the outermost continuation of the chain it
    /// suspended with (itself if it suspended alone); resuming it puts that
    /// one under the resumer.
    last_ancestor: *mut ContObj,
    /// While running: the handler list of the resume that resumed it (see
    /// [`vmctx::CONT_HANDLER_SWITCH`]), in the resumer's frame.
    handlers: *const u32,
    stack_top: usize,
    stack_limit: usize,
    store_ctx: *mut VMStoreContext,
    /// What a fresh continuation calls, through `trampoline`.
    func_vmctx: *mut u8,
    func_code: *const u8,
    caller_vmctx: *mut u8,
    trampoline: *const u8,
    state: State,
    /// The reference under which a resume may take compiled code's inline
    /// path, or zero (see [`vmctx::CONT_FAST_KEY_OFFSET`]); kept by
    /// [`ContObj::set_state`].
    fast_key: u64,
    /// While running: the stack limit of its resumer's stack, which a
    /// suspension to that resumer restores.
    resumer_limit: usize,
    stack: Option<Stack>,
    /// Values bound by `cont.bind`, which come before the resume's.
    bound: Vec<ValRaw>,
}

const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(ContObj, ctx) == vmctx::CONT_CTX_OFFSET as usize);
    assert!(offset_of!(ContObj, revision) == vmctx::CONT_REVISION_OFFSET as usize);
    assert!(offset_of!(ContObj, parent) == vmctx::CONT_PARENT_OFFSET as usize);
    assert!(offset_of!(ContObj, last_ancestor) == vmctx::CONT_LAST_ANCESTOR_OFFSET as usize);
    assert!(offset_of!(ContObj, handlers) == vmctx::CONT_HANDLERS_OFFSET as usize);
    assert!(offset_of!(ContObj, stack_top) == vmctx::CONT_STACK_TOP_OFFSET as usize);
    assert!(offset_of!(ContObj, stack_limit) == vmctx::CONT_STACK_LIMIT_OFFSET as usize);
    assert!(offset_of!(ContObj, state) == vmctx::CONT_STATE_OFFSET as usize);
    assert!(offset_of!(ContObj, fast_key) == vmctx::CONT_FAST_KEY_OFFSET as usize);
    assert!(offset_of!(ContObj, resumer_limit) == vmctx::CONT_RESUMER_LIMIT_OFFSET as usize);
    assert!(RESUMER_RECORD == vmctx::CONT_RESUMER_RECORD_SIZE as usize);
    assert!(REVISION_SHIFT == vmctx::CONT_REF_REVISION_SHIFT);
    assert!(MAX_REVISION == vmctx::CONT_MAX_REVISION);
};

impl ContObj {
    /// Sets the state, and whether a resume may take the inline path (call
    /// it after setting `last_ancestor`, `bound` and `revision`).
    fn set_state(&mut self, state: State) {
        self.state = state;
        let this: *mut ContObj = self;
        let fast = state == State::Suspended && self.last_ancestor == this && self.bound.is_empty() && self.revision + 1 < MAX_REVISION;
        self.fast_key = if fast { this as u64 | self.revision << REVISION_SHIFT } else { 0 };
    }

    fn empty(store_ctx: *mut VMStoreContext) -> ContObj {
        ContObj {
            ctx: SwitchCtx::default(),
            revision: 0,
            parent: std::ptr::null_mut(),
            last_ancestor: std::ptr::null_mut(),
            handlers: std::ptr::null(),
            stack_top: 0,
            stack_limit: 0,
            store_ctx,
            func_vmctx: std::ptr::null_mut(),
            func_code: std::ptr::null(),
            caller_vmctx: std::ptr::null_mut(),
            trampoline: std::ptr::null(),
            state: State::Done,
            fast_key: 0,
            resumer_limit: 0,
            stack: None,
            bound: Vec::new(),
        }
    }
}

/// A store's continuations.
pub struct ContStore {
    /// Every object ever allocated (freed with the store).
    all: Vec<*mut ContObj>,
    free: Vec<*mut ContObj>,
    stacks: Vec<Stack>,
    pool: Option<Arc<StackPool>>,
    /// Continuations created and not yet done.
    live: usize,
    max_live: usize,
    /// The switch values (see `VMStoreContext::cont_values`).
    values: Vec<ValRaw>,
    /// Host-to-Wasm trampolines of the types continuations started with.
    trampolines: HashMap<u32, Arc<Trampolines>>,
    /// The tag identity of the last suspension a host resume received.
    pub(crate) host_tag: u32,
    /// The number of values a host resume passes.
    host_nargs: usize,
}

// SAFETY: the raw pointers are objects owned by this store, used only by
// the thread running the store.
unsafe impl Send for ContStore {}

impl Default for ContStore {
    fn default() -> Self {
        ContStore {
            all: Vec::new(),
            free: Vec::new(),
            stacks: Vec::new(),
            pool: None,
            live: 0,
            max_live: usize::MAX,
            values: Vec::new(),
            trampolines: HashMap::new(),
            host_tag: 0,
            host_nargs: 0,
        }
    }
}

impl Drop for ContStore {
    fn drop(&mut self) {
        let mut stacks = std::mem::take(&mut self.stacks);
        for &obj in &self.all {
            // SAFETY: allocated by `alloc` with `Box::into_raw`; the store is
            // going away, so nothing can reach the object any more.
            let mut obj = unsafe { Box::from_raw(obj) };
            stacks.extend(obj.stack.take());
        }
        if let Some(pool) = &self.pool {
            pool.give(stacks);
        }
    }
}

impl ContStore {
    /// Sets up the store's continuations: stacks from `pool`, at most
    /// `max_live` continuations at a time.
    pub(crate) fn configure(&mut self, pool: Arc<StackPool>, max_live: usize) {
        self.pool = Some(pool);
        self.max_live = max_live;
    }

    /// Continuations created and not yet done (fresh, suspended or running).
    pub fn live(&self) -> usize {
        self.live
    }

    /// Frees every running continuation, after the call they ran in was
    /// dropped while suspended (their chain's frames went with it).
    pub(crate) fn abandon_running(&mut self, vm: &mut VMStoreContext) {
        let mut c = vm.active_stack as *mut ContObj;
        while !c.is_null() {
            // SAFETY: the chain's continuations are live; nothing runs on
            // the stacks of a dropped call.
            unsafe {
                let parent = (*c).parent;
                self.recycle(c);
                c = parent;
            }
        }
        vm.active_stack = std::ptr::null_mut();
    }

    /// Makes room for `slots` switch values, and points the store context at them.
    pub(crate) fn reserve_values(&mut self, vm: &mut VMStoreContext, slots: usize) {
        if self.values.len() < slots {
            self.values.resize(slots, ValRaw::default());
        }
        vm.cont_values = self.values.as_mut_ptr() as *mut u8;
    }

    fn alloc(&mut self, store_ctx: *mut VMStoreContext) -> *mut ContObj {
        if let Some(obj) = self.free.pop() {
            return obj;
        }
        let obj = Box::into_raw(Box::new(ContObj::empty(store_ctx)));
        assert!((obj as u64) >> REVISION_SHIFT == 0, "a continuation object above 2^48");
        self.all.push(obj);
        obj
    }

    fn take_stack(&mut self) -> Option<Stack> {
        if self.stacks.len() > STORE_STACK_CACHE {
            // Not running on any of them: the engine's pool may unmap them.
            let extra = self.stacks.split_off(STORE_STACK_CACHE);
            if let Some(pool) = &self.pool {
                pool.give(extra);
            }
        }
        if let Some(s) = self.stacks.pop() {
            return Some(s);
        }
        self.pool.as_ref()?.take().ok()
    }

    /// Keeps a stack for reuse. Never unmaps it: its continuation may still
    /// be running on it, about to switch away (see [`Self::take_stack`]).
    fn give_stack(&mut self, stack: Stack) {
        self.stacks.push(stack);
    }

    /// Frees a continuation that returned or was abandoned: its stack and
    /// its object go back for reuse.
    ///
    /// # Safety
    /// `obj` must be this store's, and nothing may run on its stack any more
    /// (a caller still on it must leave it before anything else allocates).
    unsafe fn recycle(&mut self, obj: *mut ContObj) {
        // SAFETY: the caller guarantees a live object of this store.
        let o = unsafe { &mut *obj };
        if let Some(stack) = o.stack.take() {
            self.give_stack(stack);
        }
        o.bound.clear();
        o.parent = std::ptr::null_mut();
        o.handlers = std::ptr::null();
        self.live -= 1;
        if o.revision >= MAX_REVISION {
            o.set_state(State::Retired);
            o.revision = MAX_REVISION + 1;
        } else {
            o.set_state(State::Done);
            self.free.push(obj);
        }
    }

    /// Consumes `obj` (bumps its revision); returns the object that holds
    /// the continuation from now on, a fresh one if the revisions ran out.
    ///
    /// # Safety
    /// `obj` must be this store's, suspended or fresh.
    unsafe fn consume(&mut self, obj: *mut ContObj) -> *mut ContObj {
        // SAFETY: as the caller guarantees.
        let o = unsafe { &mut *obj };
        if o.revision + 1 < MAX_REVISION {
            o.revision += 1;
            return obj;
        }
        let moved = self.alloc(o.store_ctx);
        // SAFETY: a free object of this store, distinct from `obj`.
        let m = unsafe { &mut *moved };
        m.ctx = o.ctx;
        m.parent = o.parent;
        m.last_ancestor = if o.last_ancestor == obj { moved } else { o.last_ancestor };
        m.handlers = o.handlers;
        m.stack_top = o.stack_top;
        m.stack_limit = o.stack_limit;
        m.func_vmctx = o.func_vmctx;
        m.func_code = o.func_code;
        m.caller_vmctx = o.caller_vmctx;
        m.trampoline = o.trampoline;
        m.set_state(o.state);
        m.stack = o.stack.take();
        std::mem::swap(&mut m.bound, &mut o.bound);
        m.revision += 1;
        o.set_state(State::Retired);
        o.revision = MAX_REVISION + 1;
        moved
    }

    /// Puts the values `cont.bind` bound to `obj` before the `nargs` values
    /// in the switch slots.
    ///
    /// # Safety
    /// `obj` must be this store's.
    unsafe fn prepend_bound(&mut self, vm: &mut VMStoreContext, obj: *mut ContObj, nargs: usize) {
        // SAFETY: as the caller guarantees.
        let o = unsafe { &mut *obj };
        if o.bound.is_empty() {
            return;
        }
        let nb = o.bound.len();
        self.reserve_values(vm, nb + nargs);
        self.values.copy_within(0..nargs, nb);
        self.values[..nb].copy_from_slice(&o.bound);
        o.bound.clear();
    }
}

/// The reference to `obj` at its current revision.
pub(crate) fn reference(obj: *mut ContObj) -> u64 {
    contref(obj)
}

/// Whether `r`, a reference made by this module, is still current.
pub(crate) fn is_current(r: u64) -> bool {
    check_ref(r).is_some()
}

fn contref(obj: *mut ContObj) -> u64 {
    // SAFETY: called with live objects only.
    obj as u64 | unsafe { (*obj).revision } << REVISION_SHIFT
}

fn decode(r: u64) -> (*mut ContObj, u64) {
    ((r & ((1 << REVISION_SHIFT) - 1)) as *mut ContObj, r >> REVISION_SHIFT)
}

/// Makes `obj` the running continuation (null: the host's stack), whose
/// stack's limit is `limit`: its own for a continuation that starts or
/// resumes, its child's `resumer_limit` for one a child leaves.
fn set_active(store: &mut StoreOpaque, obj: *mut ContObj, limit: usize) {
    store.vm.active_stack = obj as *mut u8;
    store.vm.set_stack_limit(limit);
}

/// The resumer's context record at the top of `obj`'s stack.
fn resumer_record(obj: *mut ContObj) -> *mut SwitchCtx {
    // SAFETY: a live object with a stack.
    (unsafe { (*obj).stack_top } - RESUMER_RECORD) as *mut SwitchCtx
}

/// The frame-pointer word of `obj`'s resumer record: the frame pointer of
/// the continuation's entry frame (see the module documentation).
pub(crate) fn link_of(obj: *const u8) -> usize {
    // SAFETY: a live object with a stack.
    unsafe { (*(obj as *const ContObj)).stack_top - RESUMER_RECORD + 8 }
}

/// The top of `obj`'s stack.
pub(crate) fn stack_top_of(obj: *const u8) -> usize {
    // SAFETY: a live object with a stack.
    unsafe { (*(obj as *const ContObj)).stack_top }
}

/// The continuation that resumed `obj` (null: the host's stack).
pub(crate) fn parent_of(obj: *const u8) -> *mut u8 {
    // SAFETY: a live object.
    unsafe { (*(obj as *const ContObj)).parent as *mut u8 }
}

/// Finds, from `start` outwards, the continuation whose resume handles
/// `tag` (with an `(on $tag switch)` clause if `switch`, a label clause
/// otherwise); returns it and the clause's kind.
fn find_handler(start: *mut ContObj, tag: u32, switch: bool) -> Option<(*mut ContObj, u32)> {
    let mut c = start;
    while !c.is_null() {
        // SAFETY: continuations of the chain are live; a handler list lives
        // in the frame of its resume, which waits while the chain runs.
        unsafe {
            let list = (*c).handlers;
            if !list.is_null() {
                let count = *list;
                if count == HOST_HANDLERS {
                    if !switch {
                        return Some((c, HOST_HANDLERS));
                    }
                } else {
                    for i in 0..count as usize {
                        let (id, kind) = (*list.add(1 + 2 * i), *list.add(2 + 2 * i));
                        if id & !vmctx::CONT_HANDLER_SWITCH_ID_BIT == tag && (kind == CONT_HANDLER_SWITCH) == switch {
                            return Some((c, kind));
                        }
                    }
                }
            }
            c = (*c).parent;
        }
    }
    None
}

/// The store of compiled code's `vmctx`.
///
/// # Safety
/// `vmctx` must be a live instance's.
unsafe fn store_of<'a>(vmctx: *mut u8) -> (&'a mut crate::runtime::instance::InstanceData, &'a mut StoreOpaque) {
    // SAFETY: forwarded.
    unsafe { crate::runtime::instance::instance_of(vmctx) }
}

/// `ContNew` builtin.
pub(crate) unsafe extern "C" fn cont_new(vmctx: *mut u8, funcref: *const VMFuncRef) -> u64 {
    // SAFETY: called by compiled code with its own vmctx and a non-null funcref.
    let (_, store) = unsafe { store_of(vmctx) };
    // SAFETY: as above.
    let f = unsafe { *funcref };
    match new_continuation(store, f, vmctx) {
        Some(obj) => contref(obj),
        None => 0,
    }
}

/// A fresh continuation that will call `f` (with `caller_vmctx` as its
/// caller's), or `None` if the store may not have another or no stack is
/// to be had.
pub(crate) fn new_continuation(store: &mut StoreOpaque, f: VMFuncRef, caller_vmctx: *mut u8) -> Option<*mut ContObj> {
    if store.conts.live >= store.conts.max_live {
        return None;
    }
    let trampoline = match store.conts.trampolines.get(&f.type_id) {
        Some(t) => t.host_to_wasm,
        None => {
            // Compiling one takes far more stack than a continuation's
            // runtime reserve.
            let engine = store.engine.clone();
            let store_ctx: *mut VMStoreContext = &mut *store.vm;
            // SAFETY: the store context of the running code; the closure does not unwind.
            let t = unsafe { on_native_stack(store_ctx, || engine.trampolines(crate::types::TypeId(f.type_id))) }.ok()?;
            let p = t.host_to_wasm;
            store.conts.trampolines.insert(f.type_id, t);
            p
        }
    };
    let stack = store.conts.take_stack()?;
    let store_ctx: *mut VMStoreContext = &mut *store.vm;
    let obj = store.conts.alloc(store_ctx);
    store.conts.live += 1;
    // SAFETY: a free object of this store.
    let o = unsafe { &mut *obj };
    let top = stack.top();
    o.stack_top = top;
    o.stack_limit = stack.wasm_limit();
    o.stack = Some(stack);
    o.ctx = SwitchCtx { sp: top - START_SP, fp: top - RESUMER_RECORD + 8, ip: weft_cont_start as *const () as usize };
    o.parent = std::ptr::null_mut();
    o.last_ancestor = obj;
    o.handlers = std::ptr::null();
    o.store_ctx = store_ctx;
    o.func_vmctx = f.vmctx;
    o.func_code = f.code;
    o.caller_vmctx = caller_vmctx;
    o.trampoline = trampoline;
    o.set_state(State::Fresh);
    Some(obj)
}

/// Checks a reference from compiled code or the host: the object it names
/// if it is still current.
fn check_ref(r: u64) -> Option<*mut ContObj> {
    let (obj, revision) = decode(r);
    // SAFETY: references are only made by this module from live objects,
    // which stay allocated as long as their store.
    let current = unsafe { (*obj).revision };
    (current == revision).then_some(obj)
}

/// `ContBind` builtin.
pub(crate) unsafe extern "C" fn cont_bind(vmctx: *mut u8, r: u64, nargs: u32) -> u64 {
    // SAFETY: called by compiled code with its own vmctx.
    let (_, store) = unsafe { store_of(vmctx) };
    let Some(obj) = check_ref(r) else { return 0 };
    // SAFETY: a current reference names a fresh or suspended continuation.
    let obj = unsafe { store.conts.consume(obj) };
    let n = nargs as usize;
    let values = &store.conts.values[..n];
    // SAFETY: as above.
    unsafe {
        (*obj).bound.extend_from_slice(values);
        let state = (*obj).state;
        (*obj).set_state(state);
    }
    contref(obj)
}

/// `ContResume` builtin.
pub(crate) unsafe extern "C" fn cont_resume(vmctx: *mut u8, r: u64, handlers: *const u32, nargs: u32, throw: u32) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (_, store) = unsafe { store_of(vmctx) };
    let Some(obj) = check_ref(r) else { return CONT_STATUS_CONSUMED as u32 };
    // SAFETY: a current reference names a fresh or suspended continuation.
    unsafe { prepare_resume(store, obj, handlers, nargs as usize, throw != 0) };
    CONT_STATUS_OK as u32
}

/// Prepares the switch into `obj` (current), resumed with `nargs` values,
/// or with the exception in value 0 if `throw`.
///
/// # Safety
/// `obj` must be a current (fresh or suspended) continuation of the store,
/// and `handlers` a handler list that lives while it runs.
pub(crate) unsafe fn prepare_resume(store: &mut StoreOpaque, obj: *mut ContObj, handlers: *const u32, nargs: usize, throw: bool) {
    // SAFETY: as the caller guarantees.
    unsafe {
        let obj = store.conts.consume(obj);
        let root = (*obj).last_ancestor;
        let parent = store.vm.active_stack as *mut ContObj;
        (*root).parent = parent;
        (*root).handlers = handlers;
        (*root).resumer_limit = store.vm.stack_limit;
        let fresh = (*obj).state == State::Fresh;
        if throw {
            (*obj).bound.clear();
        } else {
            store.conts.prepend_bound(&mut store.vm, obj, nargs);
        }
        mark_running(obj);
        set_active(store, obj, (*obj).stack_limit);
        store.vm.switch_store = resumer_record(root) as usize;
        store.vm.switch_load = &raw mut (*obj).ctx as usize;
        let throwing = if throw { CONT_RESUMED_THROWING } else { CONT_RESUMED };
        store.vm.switch_payload = if fresh { obj as u64 | throwing } else { throwing };
    }
}

/// Marks the continuations from `obj` (a current one) to its outermost as
/// running, as a resume puts them back in the chain.
///
/// # Safety
/// `obj` must be a live continuation of a suspended chain (or fresh).
unsafe fn mark_running(obj: *mut ContObj) {
    // SAFETY: as the caller guarantees; the chain's parents are live.
    unsafe {
        let root = (*obj).last_ancestor;
        let mut c = obj;
        loop {
            (*c).set_state(State::Running);
            if c == root {
                break;
            }
            c = (*c).parent;
        }
    }
}

/// Takes the running chain from `cur` out to `outermost` out as one
/// suspended continuation, `cur`. Every member is marked suspended, with
/// the stack pointer it waits at (an inner one waits in its resume of the
/// next, whose resumer record holds it) for the collector's scan.
///
/// # Safety
/// `cur` and `outermost` must be in the chain of running continuations,
/// `cur` innermost, with `cur`'s context about to be saved in its `ctx`.
unsafe fn mark_suspended(cur: *mut ContObj, outermost: *mut ContObj) {
    // SAFETY: as the caller guarantees.
    unsafe {
        (*cur).last_ancestor = outermost;
        (*cur).set_state(State::Suspended);
        let mut child = cur;
        while child != outermost {
            let m = (*child).parent;
            (*m).ctx.sp = (*resumer_record(child)).sp;
            (*m).set_state(State::Suspended);
            // Only the innermost may be resumed (it alone has a current reference).
            (*m).fast_key = 0;
            child = m;
        }
    }
}

/// `ContSuspend` builtin.
pub(crate) unsafe extern "C" fn cont_suspend(vmctx: *mut u8, tag: u32, nargs: u32) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { store_of(vmctx) };
    let id = inst.tags[tag as usize] as u32;
    let cur = store.vm.active_stack as *mut ContObj;
    let Some((c, kind)) = find_handler(cur, id, false) else { return CONT_STATUS_UNHANDLED as u32 };
    let n = nargs as usize;
    store.conts.reserve_values(&mut store.vm, n + 1);
    store.conts.values[n] = ValRaw::anyref(contref(cur));
    // SAFETY: `cur` and `c` are in the chain of running continuations.
    unsafe {
        let handler = (*c).parent;
        mark_suspended(cur, c);
        (*c).parent = std::ptr::null_mut();
        (*c).handlers = std::ptr::null();
        set_active(store, handler, (*c).resumer_limit);
        store.vm.switch_store = &raw mut (*cur).ctx as usize;
        store.vm.switch_load = resumer_record(c) as usize;
    }
    store.vm.switch_payload = if kind == HOST_HANDLERS {
        store.conts.host_tag = id;
        CONT_SUSPENDED
    } else {
        CONT_SUSPENDED + kind as u64
    };
    CONT_STATUS_OK as u32
}

/// `ContSwitch` builtin.
pub(crate) unsafe extern "C" fn cont_switch(vmctx: *mut u8, r: u64, tag: u32, nargs: u32) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { store_of(vmctx) };
    let id = inst.tags[tag as usize] as u32;
    let Some(target) = check_ref(r) else { return CONT_STATUS_CONSUMED as u32 };
    let cur = store.vm.active_stack as *mut ContObj;
    let Some((c, _)) = find_handler(cur, id, true) else { return CONT_STATUS_UNHANDLED as u32 };
    let n = nargs as usize;
    store.conts.reserve_values(&mut store.vm, n + 1);
    store.conts.values[n] = ValRaw::anyref(contref(cur));
    // SAFETY: `cur` and `c` are in the chain of running continuations,
    // `target` is a current continuation, so not in it.
    unsafe {
        let target = store.conts.consume(target);
        let root = (*target).last_ancestor;
        // The target takes the place of the chain from `cur` to `c` under
        // `c`'s resumer.
        *resumer_record(root) = *resumer_record(c);
        (*root).parent = (*c).parent;
        (*root).handlers = (*c).handlers;
        (*root).resumer_limit = (*c).resumer_limit;
        mark_suspended(cur, c);
        (*c).parent = std::ptr::null_mut();
        (*c).handlers = std::ptr::null();
        let fresh = (*target).state == State::Fresh;
        store.conts.prepend_bound(&mut store.vm, target, n + 1);
        mark_running(target);
        set_active(store, target, (*target).stack_limit);
        store.vm.switch_store = &raw mut (*cur).ctx as usize;
        store.vm.switch_load = &raw mut (*target).ctx as usize;
        store.vm.switch_payload = if fresh { target as u64 } else { CONT_RESUMED };
    }
    CONT_STATUS_OK as u32
}

/// Takes the running continuation `obj` out of the chain for good (it
/// returned, or an exception left it): its parent runs next. Returns where
/// the parent waits.
///
/// # Safety
/// `obj` must be the store's running continuation; the caller must leave
/// its stack for the returned context before anything else allocates.
unsafe fn finish(store: &mut StoreOpaque, obj: *mut ContObj) -> SwitchCtx {
    // SAFETY: as the caller guarantees.
    unsafe {
        let resumer = *resumer_record(obj);
        let parent = (*obj).parent;
        set_active(store, parent, (*obj).resumer_limit);
        store.conts.recycle(obj);
        resumer
    }
}

/// The store of a store context.
///
/// # Safety
/// `store_ctx` must be a live store's.
unsafe fn store_of_ctx<'a>(store_ctx: *mut VMStoreContext) -> &'a mut StoreOpaque {
    // SAFETY: the store context points at its store.
    unsafe { &mut *((*store_ctx).store as *mut StoreOpaque) }
}

/// A fresh continuation starts (from `weft_cont_start`): returns the object
/// to run, or, if it was resumed with an exception, passes the exception
/// straight back to its resumer.
unsafe extern "C" fn weft_cont_enter(obj: *mut ContObj, throw: u64) -> *mut ContObj {
    if throw == 0 {
        return obj;
    }
    // SAFETY: a running continuation of a live store, on its own stack.
    unsafe {
        let store = store_of_ctx((*obj).store_ctx);
        let to = finish(store, obj);
        weft_switch_to(to.sp, to.fp, to.ip, CONT_THREW)
    }
}

/// A continuation's function returned, its results in the switch values:
/// back to its resumer.
unsafe extern "C" fn weft_cont_returned(store_ctx: *mut VMStoreContext) -> ! {
    // SAFETY: called on the running continuation's stack; its store is live.
    unsafe {
        let store = store_of_ctx(store_ctx);
        let obj = store.vm.active_stack as *mut ContObj;
        let to = finish(store, obj);
        weft_switch_to(to.sp, to.fp, to.ip, CONT_RETURNED)
    }
}

/// An exception thrown in the running continuation found no handler in it:
/// it leaves the continuation for its resumer, whose resume rethrows it.
///
/// # Safety
/// Must be called by the unwinder on the running continuation's stack.
pub(crate) unsafe fn leave_with_exception(store_ctx: *mut VMStoreContext, exn: usize) -> ! {
    // SAFETY: as the caller guarantees.
    unsafe {
        let store = store_of_ctx(store_ctx);
        store.conts.reserve_values(&mut store.vm, 1);
        store.conts.values[0] = ValRaw::anyref(exn as u64);
        let obj = store.vm.active_stack as *mut ContObj;
        let to = finish(store, obj);
        weft_switch_to(to.sp, to.fp, to.ip, CONT_THREW)
    }
}

/// After a trap left the running continuations for the activation that
/// entered Wasm with `entry_active` running: frees them.
///
/// # Safety
/// `store_ctx` must be a live store's, and nothing may run on the stacks of
/// the continuations between its running one and `entry_active`.
pub(crate) unsafe fn abandon(store_ctx: *mut VMStoreContext, entry_active: *mut u8) {
    // SAFETY: as the caller guarantees.
    let store = unsafe { store_of_ctx(store_ctx) };
    let mut c = store.vm.active_stack as *mut ContObj;
    while !c.is_null() && c as *mut u8 != entry_active {
        // SAFETY: continuations of the chain are live; their stacks are left.
        unsafe {
            let parent = (*c).parent;
            store.conts.recycle(c);
            c = parent;
        }
    }
    store.vm.active_stack = entry_active;
}

/// Runs `f` on the stack the host entered Wasm on, if a continuation is
/// running (a host function may need far more stack than a continuation
/// has, and must not suspend through the host), else right here.
///
/// # Safety
/// `store_ctx` must be the live store context of the Wasm code calling the
/// host; `f` must not leave by unwinding (catch panics inside it).
pub(crate) unsafe fn on_native_stack<F: FnOnce() -> R, R>(store_ctx: *mut VMStoreContext, f: F) -> R {
    // SAFETY: as the caller guarantees.
    let vm = unsafe { &mut *store_ctx };
    let active = vm.active_stack as *mut ContObj;
    if active.is_null() {
        return f();
    }
    // The outermost continuation's resumer waits on the host's stack.
    let mut root = active;
    // SAFETY: continuations of the chain are live.
    unsafe {
        while !(*root).parent.is_null() {
            root = (*root).parent;
        }
    }
    // SAFETY: the resumer record of a running continuation holds its
    // resumer's context; the object, its resumer's stack limit.
    let (native_sp, native_limit) = unsafe { ((*resumer_record(root)).sp, (*root).resumer_limit) };
    let limit = vm.stack_limit;
    vm.active_stack = std::ptr::null_mut();
    vm.set_stack_limit(native_limit);
    struct Call<F, R> {
        f: Option<F>,
        result: Option<R>,
    }
    unsafe extern "C" fn run<F: FnOnce() -> R, R>(data: *mut u8) {
        // SAFETY: `data` is the `Call` below, alive for the call.
        let call = unsafe { &mut *(data as *mut Call<F, R>) };
        let f = call.f.take().expect("called once");
        call.result = Some(f());
    }
    let mut call = Call { f: Some(f), result: None };
    // Below the resumer's stack pointer (and a red zone), the host's stack is free.
    let sp = (native_sp - 256) & !15;
    // SAFETY: `sp` is free stack of this thread; `run` does not unwind.
    unsafe { weft_call_on_stack(sp, run::<F, R>, &mut call as *mut Call<F, R> as *mut u8) };
    // SAFETY: as above.
    let vm = unsafe { &mut *store_ctx };
    vm.active_stack = active as *mut u8;
    vm.set_stack_limit(limit);
    call.result.expect("the call ran")
}

/// How a continuation the host resumed came back.
pub(crate) enum HostResumed {
    /// It returned: the first switch values hold its results.
    Returned(Vec<ValRaw>),
    /// An exception left it, now pending on the store.
    Threw,
    /// It suspended with store tag `tag`: its values, then the continuation.
    Suspended { tag: usize, values: Vec<ValRaw> },
}

/// The handler list of a resume made by the host.
/// (Its pair matches nothing: see [`vmctx::CONT_HANDLER_SWITCH`].)
static HOST_HANDLER_LIST: [u32; 3] = [HOST_HANDLERS, u32::MAX, CONT_HANDLER_SWITCH];

/// Resumes the current continuation `r` from the host with `args`, until
/// it returns, suspends or throws; a trap comes back as its record.
pub(crate) fn resume_from_host(store: &mut StoreOpaque, r: u64, args: &[ValRaw]) -> Result<HostResumed, Box<signals::TrapRecord>> {
    let obj = check_ref(r).expect("checked by the caller");
    // Room for the arguments, and for what comes back: the store's modules
    // reserved room for their own types' values.
    store.conts.reserve_values(&mut store.vm, args.len().max(16) + 1);
    store.conts.values[..args.len()].copy_from_slice(args);
    store.conts.host_nargs = args.len();
    store.wasm_calls = store.wasm_calls.wrapping_add(1);
    let max_stack = store.engine.config().tunables.max_wasm_stack;
    let store_ctx: *mut VMStoreContext = &mut *store.vm;
    let caller = store.host_vmctx();
    let values = store.vm.cont_values;
    // SAFETY: the entry point takes the object as its "callee vmctx" and
    // ignores the code; `obj` is a current continuation of this store.
    unsafe { signals::call_wasm(store_ctx, max_stack, weft_host_resume as *const u8, obj as *mut u8, caller, std::ptr::null(), values) }?;
    let conts = &store.conts;
    Ok(match store.vm.switch_payload {
        CONT_RETURNED => HostResumed::Returned(conts.values.clone()),
        CONT_THREW => {
            store.exceptions.pending = conts.values[0].get_ref() as usize;
            HostResumed::Threw
        }
        _ => HostResumed::Suspended { tag: conts.host_tag as usize, values: conts.values.clone() },
    })
}

/// The Rust half of `weft_host_resume`: prepares the switch into `obj`.
unsafe extern "C" fn host_resume_prepare(obj: *mut ContObj) -> *mut VMStoreContext {
    // SAFETY: `obj` is a current continuation of a live store (see `resume_from_host`).
    unsafe {
        let store_ctx = (*obj).store_ctx;
        let store = store_of_ctx(store_ctx);
        let n = store.conts.host_nargs;
        prepare_resume(store, obj, HOST_HANDLER_LIST.as_ptr(), n, false);
        store_ctx
    }
}

/// Frees the suspended (or fresh) continuation `r`, if current, and the
/// continuations it suspended with.
pub(crate) fn discard(store: &mut StoreOpaque, r: u64) {
    let Some(obj) = check_ref(r) else { return };
    // SAFETY: a current continuation is fresh or suspended; consuming it
    // makes every reference stale, and nothing runs on its chain's stacks.
    unsafe {
        let obj = store.conts.consume(obj);
        let last = (*obj).last_ancestor;
        let mut c = obj;
        loop {
            let parent = (*c).parent;
            store.conts.recycle(c);
            if c == last || parent.is_null() {
                break;
            }
            c = parent;
        }
    }
}

/// Runs an embedder's callback (an interruption's, or fuel's) from code
/// interrupted in Wasm: on the stack the host entered Wasm on if a
/// continuation is running (see [`on_native_stack`]). A panic in it
/// resumes past the switch back.
pub(crate) fn run_callback<R>(store: &mut StoreOpaque, f: impl FnOnce() -> R) -> R {
    let store_ctx: *mut VMStoreContext = &mut *store.vm;
    let run = || std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    // SAFETY: the store's code is running on this thread; `run` catches panics.
    match unsafe { on_native_stack(store_ctx, run) } {
        Ok(r) => r,
        Err(p) => std::panic::resume_unwind(p),
    }
}

/// Calls `visit` with every word of the stacks and bound values of the
/// store's suspended continuations. Returns false if a continuation runs
/// outside the chain of the running one (under a host call, whose frames
/// are not found from here); the running chain's own stacks are scanned
/// with the thread's (see [`scan_running_chain`]).
pub(crate) fn scan_suspended(store: &StoreOpaque, visit: &mut dyn FnMut(u64)) -> bool {
    let conts = &store.conts;
    if conts.live == 0 {
        return true;
    }
    let mut chain = Vec::new();
    let mut c = store.vm.active_stack as *mut ContObj;
    while !c.is_null() {
        chain.push(c);
        // SAFETY: continuations of the chain are live.
        c = unsafe { (*c).parent };
    }
    for &obj in &conts.all {
        // SAFETY: objects live as long as the store.
        let o = unsafe { &*obj };
        match o.state {
            State::Running if !chain.contains(&obj) => return false,
            State::Suspended => {
                let mut p = o.ctx.sp & !7;
                while p < o.stack_top {
                    // SAFETY: the live part of a suspended continuation's stack.
                    visit(unsafe { *(p as *const u64) });
                    p += 8;
                }
            }
            _ => {}
        }
        if matches!(o.state, State::Fresh | State::Suspended) {
            for v in &o.bound {
                visit(v.get_ref());
            }
        }
    }
    true
}

/// Calls `visit` with every word of the running chain's stacks: the
/// running continuation `active`'s from `sp` (on its stack) to its top, then
/// each resumer's from where it waits; returns where the outermost's
/// resumer waits on the host's stack, where the scan goes on.
///
/// # Safety
/// `active` must be the running continuation of the store whose code runs
/// on this thread, and `sp` a stack pointer on its stack.
pub(crate) unsafe fn scan_running_chain(active: *mut u8, sp: usize, visit: &mut dyn FnMut(u64)) -> usize {
    let mut c = active as *mut ContObj;
    let mut low = sp;
    loop {
        // SAFETY: as the caller guarantees; each parent is live and parked
        // at the stack pointer its child's resumer record holds.
        unsafe {
            let top = (*c).stack_top;
            let mut p = low & !7;
            while p < top {
                visit(*(p as *const u64));
                p += 8;
            }
            let parked = (*resumer_record(c)).sp;
            let parent = (*c).parent;
            if parent.is_null() {
                return parked;
            }
            low = parked;
            c = parent;
        }
    }
}

std::arch::global_asm!(
    ".text",
    // Where a fresh continuation's stack starts, entered by a stack switch:
    // rdi = the object, with bit 0 set if resumed with an exception; rsp =
    // top - 32; rbp = the link to the resumer (see the module documentation).
    ".globl weft_cont_start",
    ".type weft_cont_start,@function",
    "weft_cont_start:",
    "mov rsi, rdi",
    "and rdi, -2",
    "and esi, 1",
    "call {enter}",
    "mov rbx, rax",
    "mov r12, [rbx + {store_ctx}]",
    "mov rdi, [rbx + {func_vmctx}]",
    "mov rsi, [rbx + {caller_vmctx}]",
    "mov rdx, [rbx + {func_code}]",
    "mov rcx, [r12 + {values}]",
    "call qword ptr [rbx + {trampoline}]",
    // The object may have moved (see `consume`): the store context finds it.
    "mov rdi, r12",
    "call {returned}",
    "ud2",
    ".size weft_cont_start, .-weft_cont_start",
    "",
    // Switches to a context: rdi = sp, rsi = fp, rdx = ip, rcx = payload.
    ".globl weft_switch_to",
    ".type weft_switch_to,@function",
    "weft_switch_to:",
    "mov rsp, rdi",
    "mov rbp, rsi",
    "mov rdi, rcx",
    "jmp rdx",
    ".size weft_switch_to, .-weft_switch_to",
    "",
    // Calls rsi(rdx) with the stack pointer rdi.
    ".globl weft_call_on_stack",
    ".type weft_call_on_stack,@function",
    "weft_call_on_stack:",
    "push rbp",
    "mov rbp, rsp",
    "mov rsp, rdi",
    "mov rdi, rdx",
    "call rsi",
    "mov rsp, rbp",
    "pop rbp",
    "ret",
    ".size weft_call_on_stack, .-weft_call_on_stack",
    "",
    // A resume made by the host, called like a host-to-Wasm trampoline
    // (rdi = the continuation object): switches into it as compiled code's
    // `stack_switch` does, and returns when it comes back, with the payload
    // in the store context's `switch_payload`.
    ".globl weft_host_resume",
    ".type weft_host_resume,@function",
    "weft_host_resume:",
    "push rbp",
    "mov rbp, rsp",
    "push rbx",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    "sub rsp, 8",
    "call {prepare}",
    "mov [rsp], rax",
    "mov rcx, [rax + {switch_store}]",
    "mov rdx, [rax + {switch_load}]",
    "mov rdi, [rax + {switch_payload}]",
    "mov [rcx], rsp",
    "mov [rcx + 8], rbp",
    "lea r8, [rip + 2f]",
    "mov [rcx + 16], r8",
    "mov rsp, [rdx]",
    "mov rbp, [rdx + 8]",
    "jmp qword ptr [rdx + 16]",
    "2:",
    "mov rax, [rsp]",
    "mov [rax + {switch_payload}], rdi",
    "add rsp, 8",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop rbx",
    "pop rbp",
    "ret",
    ".size weft_host_resume, .-weft_host_resume",
    prepare = sym host_resume_prepare,
    switch_store = const vmctx::STORE_CTX_SWITCH_STORE_OFFSET,
    switch_load = const vmctx::STORE_CTX_SWITCH_LOAD_OFFSET,
    switch_payload = const vmctx::STORE_CTX_SWITCH_PAYLOAD_OFFSET,
    enter = sym weft_cont_enter,
    returned = sym weft_cont_returned,
    store_ctx = const std::mem::offset_of!(ContObj, store_ctx),
    func_vmctx = const std::mem::offset_of!(ContObj, func_vmctx),
    caller_vmctx = const std::mem::offset_of!(ContObj, caller_vmctx),
    func_code = const std::mem::offset_of!(ContObj, func_code),
    trampoline = const std::mem::offset_of!(ContObj, trampoline),
    values = const vmctx::STORE_CTX_CONT_VALUES_OFFSET,
);

extern "C" {
    fn weft_cont_start();
    fn weft_switch_to(sp: usize, fp: usize, ip: usize, payload: u64) -> !;
    fn weft_call_on_stack(sp: usize, f: unsafe extern "C" fn(*mut u8), data: *mut u8);
    fn weft_host_resume();
}

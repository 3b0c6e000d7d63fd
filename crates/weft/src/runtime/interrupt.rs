//! Interrupting running guests: epoch deadlines and MMU interruption.
//!
//! **Epochs.** Compiled code compares the engine's epoch counter (at an address
//! compiled in as a constant) with the store's deadline (copied into every
//! vmctx) once per loop iteration (on back edges, or at the header of a loop
//! whose body calls) and before a call on any path that has not passed a
//! check, which bounds recursion (see [`Interruption`]);
//! when the deadline is reached its slow path loads from a forbidden page (no
//! call, which would cost registers across every loop), and the signal handler
//! sends the thread
//! through the same stub as an MMU interruption to `weft_interrupt_hook`,
//! which asks the store's callback whether to continue with a new deadline,
//! yield or trap.
//!
//! **MMU interruption.** At the same points compiled code makes one dead load
//! from a page the store can revoke. In page mode the checks before calls are
//! replaced by one at the entry of every function that calls, which is the
//! prologue's own stack-limit load: the store's interrupt page's first word
//! holds the stack limit (written through an always-writable view of the page),
//! and the read-only probe page that precedes every vmctx in page mode is
//! another view of it, so the prologue reads the limit in one load, `[vmctx -
//! 4096]`, and the compiler records that load's offset in the trap table
//! instead of adding a probe. Loops load from a probe page too: in functions
//! that access memory 0, from the page of its own below the memory's base,
//! `[base - 1 - k]`, through the register that holds the base; elsewhere
//! `[vmctx - 4096 + k]`, through the register that holds the vmctx. With
//! segment probes (an option, where the CPU and kernel let user code set the GS
//! base), functions with a loop that calls, where keeping the vmctx in a
//! register costs a callee-saved register, do `cmp qword ptr gs:[0], 0`
//! instead, which needs no register: every entry into Wasm then points the
//! thread's GS base at one of the store's probe pages, and fibers and nested
//! calls save and restore it like a callee-saved register. The store keeps a
//! list of its instances' and memories' probe pages and revokes them
//! together.
//! [`InterruptHandle::interrupt`] makes these loads fault, either by revoking
//! the pages (`mprotect`) or, in pointer mode, by pointing the store context at
//! a forbidden page (a plain store). Pages and probe regions are pooled per
//! engine (a store's page goes back when its last handle is dropped, its probe
//! regions when it is dropped). The signal handler recognises the interruption
//! point by its trap code and redirects the thread to `weft_interrupt_stub`,
//! which saves every register (general purpose, flags, x87/SSE state), calls
//! `weft_interrupt_hook` with the store recovered from the thread's activation,
//! and on continue restores everything and re-executes the load, the page
//! having been made readable again first. Both operations are
//! async-signal-safe: an atomic store, or `mprotect`s over a list that is only
//! ever pushed to while the store lives.
//!
//! **Fuel checks** take the same road when the counter runs out: their slow
//! path loads from the forbidden page with the counter in r15, and the hook
//! hands the r15 the stub saved to `runtime::fuel`, which refuels it (and
//! the stub restores it) or traps.

use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::config::Interruption;
use crate::runtime::signals::{self, TrapCause};
use crate::runtime::sys;
use crate::trap::Trap;
use crate::vmctx::{self, VMStoreContext};

/// What the epoch callback decides when the deadline is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateDeadline {
    /// Keep running; the new deadline is this many ticks after the current epoch.
    Continue(u64),
    /// Stop the guest with [`Trap::Interrupt`].
    Trap,
    /// Suspend the guest (only in a resumable call, see
    /// [`TypedFunc::call_resumable`](crate::TypedFunc::call_resumable)); when it
    /// is resumed, the new deadline is this many ticks after the then-current epoch.
    Yield(u64),
}

/// What the MMU interrupt hook decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptAction {
    /// Resume the guest where it was interrupted.
    Continue,
    /// Stop the guest with [`Trap::Interrupt`].
    Trap,
    /// Suspend the guest (only in a resumable call); it continues when resumed.
    Yield,
}

/// The page compiled code loads from at interruption points.
///
/// Views of one shared page: `guest`, read-only, which compiled code reads in
/// pointer mode (the store context points at it until an interrupt swaps in
/// the forbidden page; the forbidden page itself is a `guest` view made
/// inaccessible), and `host`, always writable, through which the runtime
/// keeps the store's stack limit in the page's first word. In page mode every
/// probe region of the store maps the page once more as its probe page (see
/// [`ProbedRegion::bind`]), and only those views are revoked: function
/// prologues read the limit from there, so their stack check doubles as the
/// function-entry interruption point.
struct Page {
    guest: *mut u8,
    host: *mut u8,
    /// Unique for the process's life (a new page may reuse a dropped one's
    /// addresses): which page a probe region maps.
    id: u64,
}
// SAFETY: the host view is written only by the thread running the store; the
// guest view is only read or re-protected.
unsafe impl Send for Page {}
// SAFETY: as above.
unsafe impl Sync for Page {}

static NEXT_PAGE_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Page {
    fn new(readable: bool) -> Page {
        let size = crate::runtime::code::page_size();
        let host = sys::map_shared_anon(size).expect("failed to map an interrupt page");
        // SAFETY: `host` is our fresh shared mapping of `size` bytes.
        let guest = unsafe { sys::alias(host, size) }.expect("failed to map an interrupt page twice");
        // SAFETY: our fresh mapping.
        unsafe { sys::protect_read_only(guest, size, readable).expect("failed to protect an interrupt page") };
        Page { guest, host, id: NEXT_PAGE_ID.fetch_add(1, Ordering::Relaxed) }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        // SAFETY: our mappings, no longer referenced by any store context.
        unsafe {
            sys::unmap(self.guest, crate::runtime::code::page_size());
            sys::unmap(self.host, crate::runtime::code::page_size());
        }
    }
}

/// A vmctx with the probe page before it (MMU page mode): one page-aligned
/// range, `[probe page, read-only][vmctx, read-write]`. The probe page is a
/// view of the store's interrupt page, so that it holds the store's stack
/// limit at `vmctx - VMCTX_PROBE_PAGE_SIZE`: a prologue's stack check is one
/// load, which faults when the probe page is revoked.
struct ProbedRegion {
    base: *mut u8,
    len: usize,
    /// The [`Page::id`] of the interrupt page the probe page shows (0: none
    /// yet, inaccessible). Kept in the pool: a store that gets back the page
    /// and region of an earlier store rebinds nothing.
    bound_page: u64,
}
// SAFETY: the region is owned by one store at a time (or by the pool).
unsafe impl Send for ProbedRegion {}

const PROBE_PAGE: usize = vmctx::VMCTX_PROBE_PAGE_SIZE as usize;

impl ProbedRegion {
    /// A region whose probe page stays inaccessible until it is bound.
    fn new(len: usize) -> std::io::Result<ProbedRegion> {
        let base = sys::reserve(len)?;
        let region = ProbedRegion { base, len, bound_page: 0 };
        // SAFETY: the range lies inside the fresh reservation.
        unsafe { sys::protect(base.add(PROBE_PAGE), len - PROBE_PAGE, true)? };
        Ok(region)
    }

    /// Makes the probe page a read-only view of `page` (two system calls,
    /// none if it already is).
    fn bind(&mut self, page: &Page) -> std::io::Result<()> {
        if self.bound_page != page.id {
            self.bound_page = 0;
            // SAFETY: `page.host` is the page's shared mapping, and the probe
            // page is ours, used by no store while it is being bound.
            unsafe {
                sys::alias_at(page.host, PROBE_PAGE, self.base)?;
                sys::protect_read_only(self.base, PROBE_PAGE, true)?;
            }
            self.bound_page = page.id;
        }
        Ok(())
    }
}

impl Drop for ProbedRegion {
    fn drop(&mut self) {
        // SAFETY: our mapping, used by no store any more.
        unsafe { sys::unmap(self.base, self.len) };
    }
}

/// One of a store's probe pages, in the list its interrupts walk: a vmctx's,
/// whose region the node owns, or a linear memory's, which the memory owns
/// (memories live as long as their store, and the list goes first).
struct ProbeNode {
    page: *mut u8,
    region: Option<ProbedRegion>,
    next: *mut ProbeNode,
}

static FORBIDDEN: OnceLock<Page> = OnceLock::new();

/// The page that faults in pointer mode and in epoch checks' slow paths
/// (shared by every store).
pub(crate) fn forbidden_page() -> *mut u8 {
    FORBIDDEN.get_or_init(|| Page::new(false)).guest
}

/// Whether `addr` is in the forbidden page. Async-signal-safe.
pub(crate) fn is_forbidden_page(addr: usize) -> bool {
    FORBIDDEN.get().is_some_and(|p| (p.guest as usize..p.guest as usize + crate::runtime::code::page_size()).contains(&addr))
}

/// Whether a fault on `addr` at an interruption point interrupts `store`.
/// Async-signal-safe.
pub(crate) fn is_interruption_fault(store: &crate::store::StoreOpaque, addr: usize) -> bool {
    match &store.interrupts {
        Some(shared) => shared.owns_fault(addr),
        None => store.engine.config().tunables.interruption == Interruption::Epoch && is_forbidden_page(addr),
    }
}

/// Where the faulting load's base register must point for the load to pass
/// when it is re-executed, when that is how the store resumes: pointer mode
/// and epoch slow paths (a readable page); `None` in page mode, whose pages
/// are made readable again instead.
pub(crate) fn repair_target(store: &crate::store::StoreOpaque) -> Option<*const u8> {
    match &store.interrupts {
        Some(shared) => shared.pointer_mode_readable_page(),
        // Any readable byte will do: the load is dead.
        None => Some(&*store.vm as *const VMStoreContext as *const u8),
    }
}

/// Interrupt pages and probe regions of dropped stores, kept by the engine for
/// its next stores: a new page costs three system calls and freeing it two
/// (measured: a pooled instantiation with MMU interruption went from 1.3 µs to
/// 17 µs without this), a new probe region four (two to reserve it, two to
/// bind its probe page), and binding it to another store's page two.
#[derive(Default)]
pub(crate) struct PagePool {
    pages: std::sync::Mutex<Vec<Page>>,
    /// Probe regions of dropped stores by length, readable.
    regions: std::sync::Mutex<std::collections::HashMap<usize, Vec<ProbedRegion>>>,
}

/// Pages kept at most, and probe regions of each length; more are unmapped.
const MAX_POOLED_PAGES: usize = 1024;

impl PagePool {
    fn take(&self) -> Page {
        self.pages.lock().unwrap_or_else(|e| e.into_inner()).pop().unwrap_or_else(|| Page::new(true))
    }

    fn give_back(&self, page: Page) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.len() < MAX_POOLED_PAGES {
            pages.push(page);
        }
    }

    fn take_region(&self, len: usize) -> std::io::Result<ProbedRegion> {
        let pooled = self.regions.lock().unwrap_or_else(|e| e.into_inner()).get_mut(&len).and_then(Vec::pop);
        pooled.map_or_else(|| ProbedRegion::new(len), Ok)
    }

    /// Takes back a region whose probe page is readable.
    fn give_back_region(&self, region: ProbedRegion) {
        let mut regions = self.regions.lock().unwrap_or_else(|e| e.into_inner());
        let same_length = regions.entry(region.len).or_default();
        if same_length.len() < MAX_POOLED_PAGES {
            same_length.push(region);
        }
    }
}

/// State shared by a store and its interrupt handles.
pub(crate) struct InterruptShared {
    mode: Interruption,
    /// Taken from `pool` and given back when the last handle is gone.
    page: std::mem::ManuallyDrop<Page>,
    pool: Arc<PagePool>,
    /// Page mode: an interrupt is pending. Set before the probe pages are
    /// walked and revoked, cleared before they are restored, so that a probe
    /// page added meanwhile starts revoked (see `alloc_probed_vmctx`).
    revoked: std::sync::atomic::AtomicBool,
    /// The store context, or null once the store is gone.
    ctx: AtomicPtr<VMStoreContext>,
    /// Handles currently writing to `ctx` or walking `probes` (the store
    /// waits for them on drop).
    writers: AtomicUsize,
    /// The store's probe regions (page mode): pushed by the store's thread,
    /// walked by interrupting threads and signal handlers, emptied by `detach`.
    probes: AtomicPtr<ProbeNode>,
    /// An interrupt may have revoked a probe page since the store was
    /// created: `detach` then makes them all readable before pooling them.
    probes_revoked: std::sync::atomic::AtomicBool,
}

impl InterruptShared {
    pub fn new(mode: Interruption, ctx: *mut VMStoreContext, pool: &Arc<PagePool>) -> Arc<Self> {
        Arc::new(InterruptShared {
            mode,
            page: std::mem::ManuallyDrop::new(pool.take()),
            pool: pool.clone(),
            revoked: std::sync::atomic::AtomicBool::new(false),
            ctx: AtomicPtr::new(ctx),
            writers: AtomicUsize::new(0),
            probes: AtomicPtr::new(std::ptr::null_mut()),
            probes_revoked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Whether the store's instances get a probe page before their vmctx,
    /// and its memories one before their base (MMU page mode).
    pub fn has_probe_pages(&self) -> bool {
        self.mode == Interruption::MmuPage
    }

    /// Allocates `size` bytes for a vmctx, after a probe page that this
    /// store's interrupts revoke. The memory belongs to the store until it is
    /// dropped (instances never outlive their store).
    pub fn alloc_probed_vmctx(&self, size: usize) -> std::io::Result<*mut u8> {
        if crate::runtime::code::page_size() != PROBE_PAGE {
            return Err(std::io::Error::other("MMU page interruption needs 4 KiB host pages"));
        }
        let len = PROBE_PAGE + size.div_ceil(PROBE_PAGE).next_power_of_two() * PROBE_PAGE;
        let mut region = self.pool.take_region(len)?;
        region.bind(&self.page)?;
        let (page, vmctx) = (region.base, region.base.wrapping_add(PROBE_PAGE));
        self.add_probe_page(page, Some(region));
        Ok(vmctx)
    }

    /// Adds a linear memory's probe page (the page below its base, see
    /// [`vmctx::MEMORY_PROBE_PAGE_SIZE`]) to the pages this store's
    /// interrupts revoke, readable until then. Unlike a vmctx's, it need not
    /// show the interrupt page (no prologue reads the stack limit there), so
    /// it stays the memory's own page: `readable` says whether it already is
    /// (a pooled slot keeps it so between tenants, and then costs no system
    /// call).
    ///
    /// # Safety
    /// `probe_page` must be the probe page of a memory of this store, which
    /// lives as long as the store.
    pub unsafe fn add_memory_probe_page(&self, probe_page: *mut u8, readable: &mut bool) -> std::io::Result<()> {
        // Any page size serves: probes read the page's last bytes, at most
        // `MEMORY_PROBE_PAGE_SIZE` below the base, and `mprotect` rounds the
        // length up to a whole page.
        if !*readable {
            // SAFETY: the memory's own page, which no code reads before the
            // memory is handed to an instance.
            unsafe { sys::protect_read_only(probe_page, PROBE_PAGE, true)? };
            *readable = true;
        }
        self.add_probe_page(probe_page, None);
        Ok(())
    }

    /// Adds a readable probe page to the list that interrupts walk.
    fn add_probe_page(&self, page: *mut u8, region: Option<ProbedRegion>) {
        let node = Box::into_raw(Box::new(ProbeNode { page, region, next: self.probes.load(Ordering::SeqCst) }));
        self.probes.store(node, Ordering::SeqCst);
        // An interrupt that walked the list before this page was on it has
        // set `revoked` first: the page starts revoked like the others.
        if self.revoked.load(Ordering::SeqCst) {
            self.probes_revoked.store(true, Ordering::SeqCst);
            // SAFETY: a probe page of this store; mprotect is async-signal-safe.
            unsafe { libc::mprotect(page as *mut _, PROBE_PAGE, libc::PROT_NONE) };
        }
    }

    /// Calls `f` with each probe page of the store. Only while the store lives
    /// (its thread, or a walker counted in `writers` that saw `ctx` set).
    fn for_each_probe_page(&self, mut f: impl FnMut(*mut u8)) {
        let mut node = self.probes.load(Ordering::SeqCst);
        while !node.is_null() {
            // SAFETY: nodes are freed only by `detach`, after walkers are done.
            unsafe {
                f((*node).page);
                node = (*node).next;
            }
        }
    }

    /// The page the store context should point at while not interrupted.
    pub fn readable_page(&self) -> *const u8 {
        self.page.guest
    }

    /// The writable view of the page's first word, where page mode keeps the
    /// store's stack limit for function prologues to read.
    pub fn stack_limit_mirror(&self) -> *mut usize {
        // SAFETY: the offset is inside the page.
        unsafe { self.page.host.add(vmctx::INTERRUPT_PAGE_STACK_LIMIT_OFFSET as usize) as *mut usize }
    }

    fn interrupt(&self) {
        match self.mode {
            // Compiled code reads the interrupt page only through the probe
            // pages (its own read-only view is for pointer mode), so those are
            // all that is revoked.
            Interruption::MmuPage => {
                self.revoked.store(true, Ordering::SeqCst);
                self.writers.fetch_add(1, Ordering::SeqCst);
                if !self.ctx.load(Ordering::SeqCst).is_null() {
                    self.probes_revoked.store(true, Ordering::SeqCst);
                    // SAFETY: the store's probe pages, alive while `ctx` is set
                    // and we are counted in `writers`.
                    self.for_each_probe_page(|page| unsafe {
                        libc::mprotect(page as *mut _, PROBE_PAGE, libc::PROT_NONE);
                    });
                }
                self.writers.fetch_sub(1, Ordering::SeqCst);
            }
            Interruption::MmuPointer => {
                self.writers.fetch_add(1, Ordering::SeqCst);
                let ctx = self.ctx.load(Ordering::SeqCst);
                if !ctx.is_null() {
                    // SAFETY: the store waits for `writers` to drain before freeing `ctx`.
                    unsafe { (*(std::ptr::addr_of_mut!((*ctx).interrupt_page) as *const AtomicPtr<u8>)).store(forbidden_page(), Ordering::SeqCst) };
                }
                self.writers.fetch_sub(1, Ordering::SeqCst);
            }
            Interruption::Epoch | Interruption::None => {}
        }
    }

    /// Withdraws a pending interruption from any thread: the same as
    /// `restore`, with `interrupt`'s protocol for reaching the store's
    /// context and probe pages from outside its thread.
    fn cancel(&self) {
        self.writers.fetch_add(1, Ordering::SeqCst);
        let ctx = self.ctx.load(Ordering::SeqCst);
        if !ctx.is_null() {
            self.restore(ctx);
        }
        self.writers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Makes interruption points pass again.
    fn restore(&self, ctx: *mut VMStoreContext) {
        match self.mode {
            Interruption::MmuPage => {
                self.revoked.store(false, Ordering::SeqCst);
                // SAFETY: the running store's probe pages.
                self.for_each_probe_page(|page| unsafe {
                    libc::mprotect(page as *mut _, PROBE_PAGE, libc::PROT_READ);
                });
            }
            Interruption::MmuPointer => {
                // SAFETY: `ctx` is the running store's context.
                unsafe { (*(std::ptr::addr_of_mut!((*ctx).interrupt_page) as *const AtomicPtr<u8>)).store(self.page.guest, Ordering::SeqCst) };
            }
            _ => {}
        }
    }

    /// Called by the store as it is dropped: no handle writes to its context after this.
    pub fn detach(&self) {
        self.ctx.store(std::ptr::null_mut(), Ordering::SeqCst);
        while self.writers.load(Ordering::SeqCst) != 0 {
            std::hint::spin_loop();
        }
        // No walker is left: the probe regions go back to the pool, readable,
        // and memories' probe pages are left readable for their slots' next
        // tenants.
        let revoked = self.probes_revoked.swap(false, Ordering::SeqCst);
        let mut node = self.probes.swap(std::ptr::null_mut(), Ordering::SeqCst);
        while !node.is_null() {
            // SAFETY: pushed by `add_probe_page` with `Box::into_raw`, and
            // unreachable from `probes` now.
            let ProbeNode { page, region, next } = *unsafe { Box::from_raw(node) };
            node = next;
            // SAFETY: a probe page of this store, whose memories are still alive.
            let readable = !revoked || unsafe { sys::protect_read_only(page, PROBE_PAGE, true) }.is_ok();
            match region {
                Some(region) if readable => self.pool.give_back_region(region),
                // A memory's page that stays revoked (mprotect failed, which
                // takes running out of mappings) only makes its slot's next
                // tenant stop once at a probe, which its interrupt hook sees
                // as an interruption.
                _ => {}
            }
        }
    }

    /// Whether `addr` is on a page an interruption point may fault on.
    pub fn owns_fault(&self, addr: usize) -> bool {
        let size = crate::runtime::code::page_size();
        let on = |p: *mut u8| addr >= p as usize && addr < p as usize + size;
        let mut on_probe_page = false;
        self.for_each_probe_page(|page| on_probe_page |= on(page));
        (self.mode == Interruption::MmuPointer && on(forbidden_page())) || on_probe_page
    }

    /// In pointer mode, the readable page whose address a faulting probe's
    /// base register must be given back (see the signal handler).
    pub fn pointer_mode_readable_page(&self) -> Option<*const u8> {
        (self.mode == Interruption::MmuPointer).then_some(self.page.guest as *const u8)
    }
}

impl Drop for InterruptShared {
    fn drop(&mut self) {
        // SAFETY: the page is not used again: this is the last reference.
        // Its views are never revoked (probe pages are, and go back to the
        // pool with the store), so it goes back as it is.
        let page = unsafe { std::mem::ManuallyDrop::take(&mut self.page) };
        self.pool.give_back(page);
    }
}

/// Interrupts a store's guest from any thread (or a signal handler).
///
/// Obtained from [`Store::interrupt_handle`](crate::Store::interrupt_handle).
/// The guest stops at its next interruption point (a loop iteration, a call
/// or a function entry: see [`Interruption`]) and the store's
/// interrupt hook decides whether it continues or traps.
///
/// An interrupt stays pending until an interruption point takes it: one sent
/// to a store that is not running stops the next call into Wasm, whichever
/// it is (unlike an epoch deadline, it is not tied to time). A watchdog that
/// may fire after the call it guards has returned should stop its timer, then
/// [`cancel`](Self::cancel) before the store's next call.
#[derive(Clone)]
pub struct InterruptHandle {
    pub(crate) shared: Arc<InterruptShared>,
}

impl InterruptHandle {
    /// Requests an interruption. Async-signal-safe.
    pub fn interrupt(&self) {
        self.shared.interrupt();
    }

    /// Withdraws a pending interruption that no interruption point has taken
    /// yet, so that it stops no later call. Async-signal-safe.
    ///
    /// One that a running guest has already taken is not undone: the store's
    /// hook runs for it as usual. Cancelling with nothing pending does nothing.
    ///
    /// # Example
    ///
    /// ```
    /// let mut config = weft::Config::new();
    /// config.mmu_interruption(true);
    /// let engine = weft::Engine::new(&config)?;
    /// let module = weft::Module::new(&engine, r#"(module (func $g) (func (export "f") (call $g)))"#)?;
    /// let mut store = weft::Store::new(&engine, ());
    /// let f = weft::Instance::new(&mut store, &module, &[])?.get_typed_func::<(), ()>(&mut store, "f")?;
    /// let handle = store.interrupt_handle()?;
    /// // A watchdog fired after the call it guarded returned...
    /// handle.interrupt();
    /// // ...and is withdrawn before the next call, which runs undisturbed.
    /// handle.cancel();
    /// f.call(&mut store, ())?;
    /// # Ok::<(), anyhow::Error>(())
    /// ```
    pub fn cancel(&self) {
        self.shared.cancel();
    }
}

impl std::fmt::Debug for InterruptHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InterruptHandle").field("mode", &self.shared.mode).finish()
    }
}

/// The store behind a store context.
///
/// # Safety
/// `ctx` must be a live store context.
unsafe fn store_of(ctx: *mut VMStoreContext) -> *mut crate::store::StoreOpaque {
    // SAFETY: guaranteed by the caller.
    unsafe { (*ctx).store as *mut crate::store::StoreOpaque }
}

/// The epoch deadline was reached: asks the store's callback (none: trap).
/// `Ok` to continue, the deadline moved (after a suspension, if the callback
/// asked for a yield); `Err` with the trap to raise.
fn epoch_deadline_reached(store: &mut crate::store::StoreOpaque) -> Result<(), (TrapCause, Option<anyhow::Error>)> {
    let Some(mut callback) = store.epoch_callback.take() else { return Err((TrapCause::Wasm(Trap::Interrupt), None)) };
    let store_ptr = store as *mut _ as *mut u8;
    let decision = crate::runtime::continuation::run_callback(store, || callback(store_ptr));
    store.epoch_callback = Some(callback);
    let delta = match decision {
        Ok(UpdateDeadline::Continue(delta)) => delta,
        Ok(UpdateDeadline::Yield(delta)) => {
            // Nothing borrowed from the store is used after the switch: the host
            // may use the store while the guest is suspended.
            crate::runtime::fiber::yield_now().map_err(|e| (TrapCause::Host, Some(e)))?;
            delta
        }
        Ok(UpdateDeadline::Trap) => return Err((TrapCause::Wasm(Trap::Interrupt), None)),
        Err(e) => return Err((TrapCause::Host, Some(e))),
    };
    let now = store.engine.epoch_counter().load(Ordering::Relaxed);
    store.set_epoch_deadline_at(now.saturating_add(delta));
    Ok(())
}

/// Called by `weft_interrupt_stub` on an interrupted thread, with the faulting
/// PC, frame pointer, and where the stub saved r15 (which it restores).
/// Returns to resume the guest, or raises a trap.
#[no_mangle]
unsafe extern "C" fn weft_interrupt_hook(fault_pc: usize, fp: usize, saved_r15: *mut i64) {
    let act = signals::current_activation();
    // SAFETY: the stub only runs for a fault inside an activation.
    let ctx = unsafe { (*act).store_ctx };
    // SAFETY: the activation's store is running.
    let store = unsafe { &mut *store_of(ctx) };
    let fuel_check =
        crate::runtime::code::with_code_at(fault_pc, |found| found.map(|(mem, offset)| mem.trap_at(offset))) == Some(Some(crate::trap::codes::FUEL_CHECK));
    if fuel_check {
        // SAFETY: the stub saved the thread's r15 there, the fuel counter at
        // a fuel check; the frame is the check's.
        unsafe { crate::runtime::fuel::out_of_fuel_at_check(store, &mut *saved_r15, fault_pc, fp) };
        return;
    }
    if store.interrupts.is_none() {
        // An epoch check's slow path: the deadline was reached.
        if let Err((cause, error)) = epoch_deadline_reached(store) {
            // SAFETY: called from compiled code's interrupted frame; nothing to drop here.
            unsafe { signals::raise_at(cause, error, None, fault_pc, fp) }
        }
        return;
    }
    if let Some(shared) = &store.interrupts {
        shared.restore(ctx);
    }
    let decision = match store.interrupt_callback.take() {
        Some(mut cb) => {
            let store_ptr = store as *mut _ as *mut u8;
            let d = crate::runtime::continuation::run_callback(store, || cb(store_ptr));
            store.interrupt_callback = Some(cb);
            d
        }
        None => Ok(InterruptAction::Trap),
    };
    match decision {
        Ok(InterruptAction::Continue) => {}
        Ok(InterruptAction::Yield) => {
            if let Err(e) = crate::runtime::fiber::yield_now() {
                // SAFETY: as below.
                unsafe { signals::raise_at(TrapCause::Host, Some(e), None, fault_pc, fp) }
            }
        }
        Ok(InterruptAction::Trap) => {
            // SAFETY: called from compiled code's interrupted frame; nothing to drop here.
            unsafe { signals::raise_at(TrapCause::Wasm(Trap::Interrupt), None, None, fault_pc, fp) }
        }
        // SAFETY: as above.
        Err(e) => unsafe { signals::raise_at(TrapCause::Host, Some(e), None, fault_pc, fp) },
    }
}

// The stub the signal handler redirects an interrupted thread to. On entry:
// rsp is 16-byte aligned, [rsp] = faulting PC, [rsp + 8] = the guest's rsp.
std::arch::global_asm!(
    ".text",
    ".globl weft_interrupt_stub",
    ".type weft_interrupt_stub,@function",
    "weft_interrupt_stub:",
    "pushfq",
    "push rax",
    "push rbx",
    "push rcx",
    "push rdx",
    "push rsi",
    "push rdi",
    "push rbp",
    "push r8",
    "push r9",
    "push r10",
    "push r11",
    "push r12",
    "push r13",
    "push r14",
    "push r15",
    // 16 pushes keep 16-byte alignment; fxsave needs it.
    "sub rsp, 512",
    "fxsave [rsp]",
    "mov rdi, [rsp + 640]",
    "mov rsi, rbp",
    "lea rdx, [rsp + 512]",
    "call weft_interrupt_hook",
    // Resume: put the faulting PC just below the guest's rsp, restore
    // everything, switch back to the guest's rsp and jump to the PC.
    "mov rax, [rsp + 640]",
    "mov rcx, [rsp + 648]",
    "mov [rcx - 8], rax",
    "fxrstor [rsp]",
    "add rsp, 512",
    "pop r15",
    "pop r14",
    "pop r13",
    "pop r12",
    "pop r11",
    "pop r10",
    "pop r9",
    "pop r8",
    "pop rbp",
    "pop rdi",
    "pop rsi",
    "pop rdx",
    "pop rcx",
    "pop rbx",
    "pop rax",
    "popfq",
    "mov rsp, [rsp + 8]",
    "jmp qword ptr [rsp - 8]",
    ".size weft_interrupt_stub, .-weft_interrupt_stub",
);

extern "C" {
    fn weft_interrupt_stub();
}

/// Address of the stub, for the signal handler.
pub(crate) fn stub_address() -> usize {
    weft_interrupt_stub as *const () as usize
}

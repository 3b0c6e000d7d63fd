//! The store: owner of every instance, memory, table, global and host function
//! created in it, plus the embedder's data `T`.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};

use std::sync::Arc;

use crate::config::Interruption;
use crate::engine::Engine;
use crate::runtime::instance::InstanceData;
use crate::runtime::interrupt::{InterruptAction, InterruptHandle, InterruptShared, UpdateDeadline};
use crate::runtime::memory::LinearMemory;
use crate::runtime::table::TableData;
use crate::types::{GlobalType, MemoryType};
use crate::vmctx::{VMGlobal, VMStoreContext};

static NEXT_STORE_ID: AtomicU64 = AtomicU64::new(1);

pub(crate) struct MemoryEntry {
    pub mem: LinearMemory,
    pub ty: MemoryType,
    /// The store's [`wasm_calls`](StoreOpaque::wasm_calls) when the memory was
    /// last in its initial state (created or reset): if the count has not
    /// moved since, no Wasm code can have written it.
    pub wasm_calls_when_clean: u64,
}

pub(crate) struct TagEntry {
    pub type_id: crate::types::TypeId,
}

pub(crate) struct GlobalEntry {
    pub ty: GlobalType,
    /// Storage: inside an instance's vmctx, or `owned`.
    pub ptr: *mut VMGlobal,
    pub _owned: Option<Box<VMGlobal>>,
}

/// The part of a store that does not depend on `T`.
pub struct StoreOpaque {
    pub(crate) engine: Engine,
    pub(crate) id: u64,
    pub(crate) vm: Box<VMStoreContext>,
    // Boxed: compiled code and vmctx fields point into them, so they must
    // not move when the vector grows.
    #[allow(clippy::vec_box)]
    pub(crate) instances: Vec<Box<InstanceData>>,
    pub(crate) memories: Vec<MemoryEntry>,
    /// Each table's definition, which vmctx fields point at, is boxed.
    pub(crate) tables: Vec<TableData>,
    pub(crate) globals: Vec<GlobalEntry>,
    pub(crate) tags: Vec<TagEntry>,
    /// Keeps alive the host functions this store can call.
    pub(crate) host_funcs: Vec<Arc<dyn Any + Send + Sync>>,
    /// A vmctx header for calls from the host: host functions find their store
    /// through the caller's vmctx, and this is the caller when the host calls.
    pub(crate) host_vmctx: Box<[u64; 5]>,
    pub(crate) externrefs: Vec<Box<dyn Any + Send + Sync>>,
    /// Decides how much the guests may take (see [`crate::ResourceLimiter`]).
    pub(crate) limiter: Option<crate::limits::ErasedLimiter>,
    /// Fuel beyond the counter compiled code uses (see `runtime::fuel`).
    pub(crate) fuel: crate::runtime::fuel::FuelState,
    /// Decides what happens when the fuel runs out (None: trap).
    pub(crate) out_of_fuel_callback: Option<ErasedCallback<crate::runtime::fuel::UpdateFuel>>,
    /// Exception objects, and the pending exception.
    pub(crate) exceptions: crate::runtime::exception::ExnHeap,
    /// Continuations (stack switching).
    pub(crate) conts: crate::runtime::continuation::ContStore,
    /// Decides what happens when the epoch deadline is reached (None: trap).
    pub(crate) epoch_callback: Option<ErasedCallback<UpdateDeadline>>,
    /// Decides what happens on an MMU interruption (None: trap).
    pub(crate) interrupt_callback: Option<ErasedCallback<InterruptAction>>,
    /// The interrupt page and handles' shared state, in MMU modes.
    pub(crate) interrupts: Option<Arc<InterruptShared>>,
    /// Whether a resumable call is suspended (the store refuses other calls),
    /// shared with the suspended call so that dropping it frees the store.
    pub(crate) suspension: Arc<SuspensionState>,
    /// Calls from the host into Wasm (and resumptions of suspended calls) so
    /// far. Together with
    /// [`MemoryEntry::wasm_calls_when_clean`] it tells which memories no Wasm
    /// code has run against, which then need no restoring (a pooled slot whose
    /// tenant never ran is reused without an `madvise`).
    pub(crate) wasm_calls: u64,
    /// The epoch at which the running guest is interrupted (epoch
    /// interruption); see [`Self::set_epoch_deadline_at`].
    pub(crate) epoch_deadline: u64,
}

/// Shared between a store and its suspended call.
#[derive(Default)]
pub(crate) struct SuspensionState {
    pub suspended: std::sync::atomic::AtomicBool,
    /// A suspended call was dropped: its stack limit must be forgotten.
    pub abandoned: std::sync::atomic::AtomicBool,
}

impl StoreOpaque {
    /// Refuses to start a call while another is suspended; cleans up after an
    /// abandoned one.
    pub(crate) fn check_not_suspended(&mut self) -> anyhow::Result<()> {
        use std::sync::atomic::Ordering;
        if self.suspension.suspended.load(Ordering::SeqCst) {
            anyhow::bail!("the store has a suspended call: resume or drop it first");
        }
        // A plain load first: the swap is a locked instruction, which on the
        // call path of every host -> Wasm call cost about half of its time.
        if self.suspension.abandoned.load(Ordering::Acquire) && self.suspension.abandoned.swap(false, Ordering::SeqCst) {
            self.vm.set_stack_limit(usize::MAX);
            // Continuations that were running in the dropped call are gone with it.
            self.conts.abandon_running(&mut self.vm);
        }
        Ok(())
    }
}

impl StoreOpaque {
    /// Sets the epoch at which the guest is interrupted, here and in the copy
    /// that every instance's vmctx holds for compiled code.
    pub(crate) fn set_epoch_deadline_at(&mut self, deadline: u64) {
        self.epoch_deadline = deadline;
        for inst in &self.instances {
            inst.set_epoch_deadline(deadline);
        }
    }

    /// Adds a memory that is in its initial state; returns its index. In MMU
    /// page mode the memory's probe page joins the pages the store's
    /// interrupts revoke first, so that loops probing through the memory's
    /// base stop when the store is interrupted.
    ///
    /// # Errors
    /// If the probe page cannot be made readable (the memory is then dropped).
    pub(crate) fn push_memory(&mut self, mut mem: LinearMemory, ty: MemoryType) -> anyhow::Result<usize> {
        if let Some(interrupts) = self.interrupts.as_ref().filter(|i| i.has_probe_pages()) {
            let probe_page = mem.probe_page();
            // SAFETY: the memory's own probe page; the memory joins the store
            // below, for the store's life.
            unsafe { interrupts.add_memory_probe_page(probe_page, mem.probe_page_readable()) }
                .map_err(|e| anyhow::Error::new(e).context("preparing the memory's probe page"))?;
        }
        self.memories.push(MemoryEntry { mem, ty, wasm_calls_when_clean: self.wasm_calls });
        Ok(self.memories.len() - 1)
    }

    /// Marks memory `index` as possibly written if Wasm has run since it was
    /// last clean. Called before the memory is restored (reset or dropped).
    pub(crate) fn note_wasm_writes(&mut self, index: usize) {
        let entry = &mut self.memories[index];
        if entry.wasm_calls_when_clean != self.wasm_calls {
            entry.mem.mark_written();
        }
        entry.wasm_calls_when_clean = self.wasm_calls;
    }
}

impl Drop for StoreOpaque {
    fn drop(&mut self) {
        for index in 0..self.memories.len() {
            self.note_wasm_writes(index);
        }
        if let Some(i) = &self.interrupts {
            i.detach();
        }
    }
}

/// Magic of the host pseudo-vmctx (differs from an instance's, so it is never
/// mistaken for one).
const HOST_VMCTX_MAGIC: u64 = u64::from_le_bytes(*b"WEFTHOST");

impl StoreOpaque {
    /// The caller vmctx for calls made by the host.
    pub(crate) fn host_vmctx(&mut self) -> *mut u8 {
        self.host_vmctx.as_mut_ptr() as *mut u8
    }

    /// Panics unless `id`, a handle's store, is this store.
    pub(crate) fn check(&self, id: u64) {
        check_store(self.id, id);
    }
}

/// Panics unless `id`, a handle's store, is the store `store_id` (for paths
/// that hold only the store's id).
pub(crate) fn check_store(store_id: u64, id: u64) {
    assert!(store_id == id, "object used with the wrong store");
}

#[repr(C)]
pub(crate) struct StoreInner<T> {
    pub opaque: StoreOpaque,
    pub data: T,
}

/// A collection of Wasm objects and host state, the unit of isolation.
///
/// Every instance, function, memory, table and global belongs to one store and
/// lives as long as it does. A store is used by one thread at a time.
///
/// # Example
///
/// ```
/// let engine = weft::Engine::default();
/// let mut store = weft::Store::new(&engine, 42u32);
/// assert_eq!(*store.data(), 42);
/// ```
pub struct Store<T> {
    pub(crate) inner: Box<StoreInner<T>>,
}

impl<T: Default> Default for Store<T> {
    /// A store in a new default [`Engine`] holding `T::default()`.
    fn default() -> Self {
        Store::new(&Engine::default(), T::default())
    }
}

// SAFETY: raw pointers inside refer to memory owned by the store itself.
unsafe impl<T: Send> Send for Store<T> {}

impl<T> Store<T> {
    /// A new store in `engine` holding `data`.
    ///
    /// Its epoch deadline is never (see [`Store::set_epoch_deadline`]), and
    /// no interrupt is pending.
    pub fn new(engine: &Engine, data: T) -> Self {
        let vm = Box::new(VMStoreContext {
            stack_limit: usize::MAX,
            interrupt_page: std::ptr::null(),
            active_stack: std::ptr::null_mut(),
            store: std::ptr::null_mut(),
            stack_limit_mirror: std::ptr::null_mut(),
            segment_probe_page: 0,
            fuel_consumed: 0,
            fuel_in_pinned_reg: engine.config().tunables.consume_fuel,
            cont_values: std::ptr::null_mut(),
            switch_store: 0,
            switch_load: 0,
            switch_payload: 0,
        });
        let mut inner = Box::new(StoreInner {
            opaque: StoreOpaque {
                engine: engine.clone(),
                id: NEXT_STORE_ID.fetch_add(1, Ordering::Relaxed),
                vm,
                instances: Vec::new(),
                memories: Vec::new(),
                tables: Vec::new(),
                globals: Vec::new(),
                tags: Vec::new(),
                exceptions: Default::default(),
                conts: Default::default(),
                limiter: None,
                fuel: Default::default(),
                out_of_fuel_callback: None,
                host_funcs: Vec::new(),
                host_vmctx: Box::new([HOST_VMCTX_MAGIC, 0, 0, 0, 0]),
                externrefs: Vec::new(),
                epoch_callback: None,
                interrupt_callback: None,
                interrupts: None,
                suspension: Arc::default(),
                wasm_calls: 0,
                epoch_deadline: u64::MAX,
            },
            data,
        });
        let opaque: *mut StoreOpaque = &mut inner.opaque;
        inner.opaque.vm.store = opaque as *mut u8;
        let ctx: *mut VMStoreContext = &mut *inner.opaque.vm;
        inner.opaque.host_vmctx[(crate::vmctx::VMCTX_STORE_CTX_OFFSET / 8) as usize] = ctx as u64;
        inner.opaque.conts.configure(engine.inner.stacks.clone(), engine.config().max_continuations);
        let mode = engine.config().tunables.interruption;
        if matches!(mode, Interruption::MmuPage | Interruption::MmuPointer) {
            let ctx: *mut VMStoreContext = &mut *inner.opaque.vm;
            let shared = InterruptShared::new(mode, ctx, &engine.inner.interrupt_pages);
            engine.register_interruptible(&shared);
            inner.opaque.vm.interrupt_page = shared.readable_page();
            if mode == Interruption::MmuPage {
                inner.opaque.vm.stack_limit_mirror = shared.stack_limit_mirror();
                inner.opaque.vm.set_stack_limit(usize::MAX);
            }
            inner.opaque.interrupts = Some(shared);
        } else if mode == Interruption::Epoch {
            // Epoch checks' slow paths load from it: reaching the deadline faults.
            inner.opaque.vm.interrupt_page = crate::runtime::interrupt::forbidden_page();
        }
        Store { inner }
    }

    /// The engine this store belongs to.
    pub fn engine(&self) -> &Engine {
        &self.inner.opaque.engine
    }
    /// The host data.
    pub fn data(&self) -> &T {
        &self.inner.data
    }
    /// The host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data
    }
    /// Sets the fuel the store's guests may still use (with
    /// [`Config::consume_fuel`](crate::Config::consume_fuel)).
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> anyhow::Result<()> {
        self.inner.opaque.set_fuel(fuel)
    }
    /// The fuel left.
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn get_fuel(&self) -> anyhow::Result<u64> {
        self.inner.opaque.get_fuel()
    }
    /// Makes a resumable call ([`TypedFunc::call_resumable`](crate::TypedFunc::call_resumable))
    /// yield every `interval` units of fuel (`None`: never), until its fuel
    /// runs out; other calls go on without yielding.
    ///
    /// # Errors
    /// If the engine does not consume fuel, or `interval` is zero.
    pub fn fuel_async_yield_interval(&mut self, interval: Option<u64>) -> anyhow::Result<()> {
        if interval == Some(0) {
            anyhow::bail!("a fuel yield interval must be at least 1");
        }
        let fuel = self.inner.opaque.get_fuel()?;
        self.inner.opaque.fuel.yield_interval = interval;
        self.inner.opaque.set_fuel(fuel)
    }
    /// Decides what happens when the guest runs out of fuel (by default it
    /// traps with [`Trap::OutOfFuel`](crate::Trap::OutOfFuel)): add fuel and
    /// go on, add fuel and yield a resumable call, or trap.
    pub fn out_of_fuel_callback(&mut self, callback: impl FnMut(StoreContextMut<'_, T>) -> anyhow::Result<crate::UpdateFuel> + Send + 'static)
    where
        T: 'static,
    {
        self.inner.opaque.out_of_fuel_callback = Some(erase_callback(callback));
    }
    /// Installs a [`ResourceLimiter`](crate::ResourceLimiter), found in the
    /// store's data by `limiter`: it is asked before every memory or table
    /// grows (from Wasm or the host) and when instances, memories and
    /// tables are created. See [`StoreLimits`](crate::StoreLimits) for a
    /// ready-made one.
    pub fn limiter(&mut self, mut limiter: impl (FnMut(&mut T) -> &mut dyn crate::ResourceLimiter) + Send + Sync + 'static)
    where
        T: 'static,
    {
        self.inner.opaque.limiter = Some(Box::new(move |store: *mut u8| {
            // SAFETY: `store` is this store's `StoreOpaque`, the first field
            // of the `#[repr(C)]` `StoreInner<T>`; only the data field is
            // borrowed, which is disjoint from the `StoreOpaque` its caller holds.
            let data = unsafe { &mut (*(store as *mut StoreInner<T>)).data };
            limiter(data) as *mut dyn crate::ResourceLimiter
        }));
    }
    /// Collects garbage: frees the exception objects nothing refers to any
    /// more (they are collected as they accumulate anyway). Weft's other
    /// references need no collector: functions and externrefs live as long
    /// as the store. Takes wasmtime's argument, for code that calls
    /// `store.gc(None)`.
    pub fn gc(&mut self, _why: Option<&std::convert::Infallible>) {
        crate::runtime::exception::collect(&mut self.inner.opaque);
    }

    /// Makes `exception` the store's pending exception and returns the error
    /// that throws it: returned from a host function, it is thrown into the
    /// function's Wasm caller, where handlers can catch it; from a call the
    /// host made, it reaches the host like an exception escaping Wasm. The
    /// host gives its hold on the exception up.
    ///
    /// # Panics
    /// If the exception belongs to another store.
    pub fn throw<R>(&mut self, exception: crate::ExnRef) -> Result<R, crate::ThrownException> {
        self.as_context_mut().throw(exception)
    }
    /// Takes the pending exception: the one that made the last call fail
    /// with [`ThrownException`](crate::ThrownException), if nothing took it yet.
    pub fn take_pending_exception(&mut self) -> Option<crate::ExnRef> {
        self.as_context_mut().take_pending_exception()
    }
    /// Whether an exception is pending (see [`Self::take_pending_exception`]).
    pub fn has_pending_exception(&self) -> bool {
        self.inner.opaque.exceptions.pending != 0
    }
    /// How many exception objects the store holds now (thrown or made and
    /// not freed yet): for diagnostics and tests of their lifetime.
    pub fn live_exceptions(&self) -> usize {
        self.inner.opaque.exceptions.live_count()
    }
    /// How many continuations the store holds now (created and not yet
    /// returned, discarded or abandoned by a trap; see
    /// [`Config::max_continuations`](crate::Config::max_continuations)).
    pub fn live_continuations(&self) -> usize {
        self.inner.opaque.conts.live()
    }

    /// Sets the epoch deadline to `ticks` increments of the engine's epoch from now
    /// (with [`Config::epoch_interruption`](crate::Config::epoch_interruption)).
    ///
    /// A new store's deadline is *never*: its guests run until the host sets
    /// one. This differs from wasmtime, whose new stores have a deadline of
    /// zero ticks and trap at their first check until the host sets one;
    /// `set_epoch_deadline(0)` gives that behaviour.
    ///
    /// Every instance of the store keeps a copy of the deadline for compiled
    /// code to compare with, so this writes one word per instance.
    pub fn set_epoch_deadline(&mut self, ticks: u64) {
        let now = self.inner.opaque.engine.epoch_counter().load(std::sync::atomic::Ordering::Relaxed);
        self.inner.opaque.set_epoch_deadline_at(now.saturating_add(ticks));
    }

    /// Makes reaching the epoch deadline trap with
    /// [`Trap::Interrupt`](crate::Trap::Interrupt) (the default).
    pub fn epoch_deadline_trap(&mut self) {
        self.inner.opaque.epoch_callback = None;
    }

    /// Calls `callback` when the epoch deadline is reached; it decides whether the
    /// guest continues (with a new deadline), yields (in a resumable call) or
    /// traps. An error traps too, and the call returns it as the trap's
    /// source, as for an MMU interrupt hook.
    pub fn epoch_deadline_callback(&mut self, callback: impl FnMut(StoreContextMut<'_, T>) -> anyhow::Result<UpdateDeadline> + Send + 'static)
    where
        T: 'static,
    {
        self.inner.opaque.epoch_callback = Some(erase_callback(callback));
    }

    /// A handle that interrupts this store's guest from any thread
    /// (with [`Config::mmu_interruption`](crate::Config::mmu_interruption)).
    ///
    /// # Errors
    /// Fails if the engine was not configured for MMU interruption.
    pub fn interrupt_handle(&self) -> anyhow::Result<InterruptHandle> {
        let shared = self.inner.opaque.interrupts.clone().ok_or_else(|| anyhow::anyhow!("MMU interruption is not enabled in this engine's Config"))?;
        Ok(InterruptHandle { shared })
    }

    /// Calls `callback` when the guest is interrupted through an
    /// [`InterruptHandle`]; it decides whether the guest continues or traps
    /// (the default without a callback). An error traps too.
    pub fn interrupt_callback(&mut self, callback: impl FnMut(StoreContextMut<'_, T>) -> anyhow::Result<InterruptAction> + Send + 'static)
    where
        T: 'static,
    {
        self.inner.opaque.interrupt_callback = Some(erase_callback(callback));
    }

    /// Consumes the store and returns its host data.
    pub fn into_data(self) -> T {
        let inner = *self.inner;
        inner.data
    }
}

impl StoreOpaque {
    /// The store's limiter, if one is installed (see [`Store::limiter`]).
    pub(crate) fn limiter(&mut self) -> Option<&mut dyn crate::ResourceLimiter> {
        let mut get = self.limiter.take()?;
        let limiter = get(self as *mut Self as *mut u8);
        self.limiter = Some(get);
        // SAFETY: the closure returns a limiter inside the store's data,
        // which is disjoint from the `StoreOpaque` and lives as long as the
        // store; nothing else borrows the data while the store runs this.
        Some(unsafe { &mut *limiter })
    }
}

/// A store callback as the runtime keeps it: called with the store's
/// `StoreOpaque` pointer, it recovers the typed store.
type ErasedCallback<R> = Box<dyn FnMut(*mut u8) -> anyhow::Result<R> + Send>;

fn erase_callback<T: 'static, R>(mut callback: impl FnMut(StoreContextMut<'_, T>) -> anyhow::Result<R> + Send + 'static) -> ErasedCallback<R> {
    Box::new(move |store: *mut u8| {
        // SAFETY: `store` is this store's `StoreOpaque`, the first field of the
        // `#[repr(C)]` `StoreInner<T>`; the store is running the call that
        // invokes the callback.
        let inner = unsafe { &mut *(store as *mut StoreInner<T>) };
        callback(StoreContextMut { inner })
    })
}

/// A borrowed store, as host functions and API calls see it.
pub struct StoreContextMut<'a, T> {
    pub(crate) inner: &'a mut StoreInner<T>,
}

/// A shared borrow of a store.
pub struct StoreContext<'a, T> {
    pub(crate) inner: &'a StoreInner<T>,
}

impl<T> StoreContextMut<'_, T> {
    /// See [`Store::throw`].
    ///
    /// # Panics
    /// If the exception belongs to another store.
    pub fn throw<R>(&mut self, exception: crate::ExnRef) -> Result<R, crate::ThrownException> {
        Err(self.inner.opaque.throw_exn(exception))
    }
    /// See [`Store::take_pending_exception`].
    pub fn take_pending_exception(&mut self) -> Option<crate::ExnRef> {
        self.inner.opaque.take_pending()
    }
    /// See [`Store::has_pending_exception`].
    pub fn has_pending_exception(&self) -> bool {
        self.inner.opaque.exceptions.pending != 0
    }
    /// The store's host data.
    pub fn data(&self) -> &T {
        &self.inner.data
    }
    /// The store's host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.inner.data
    }
    /// The store's engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.opaque.engine
    }
}

/// Types that can be read as a store: [`Store`], [`StoreContextMut`], [`Caller`](crate::Caller), and references to them.
pub trait AsContext {
    /// The type of the store's host data.
    type Data;
    /// A shared view of the store.
    fn as_context(&self) -> StoreContext<'_, Self::Data>;
}

/// Types that can be used as a mutable store.
pub trait AsContextMut: AsContext {
    /// An exclusive view of the store.
    fn as_context_mut(&mut self) -> StoreContextMut<'_, Self::Data>;
}

impl<T> AsContext for Store<T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext { inner: &self.inner }
    }
}
impl<T> AsContextMut for Store<T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut { inner: &mut self.inner }
    }
}
impl<T> AsContext for StoreContextMut<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext { inner: self.inner }
    }
}
impl<T> AsContextMut for StoreContextMut<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut { inner: self.inner }
    }
}
impl<T> AsContext for StoreContext<'_, T> {
    type Data = T;
    fn as_context(&self) -> StoreContext<'_, T> {
        StoreContext { inner: self.inner }
    }
}
impl<S: AsContext + ?Sized> AsContext for &S {
    type Data = S::Data;
    fn as_context(&self) -> StoreContext<'_, S::Data> {
        (**self).as_context()
    }
}
impl<S: AsContext + ?Sized> AsContext for &mut S {
    type Data = S::Data;
    fn as_context(&self) -> StoreContext<'_, S::Data> {
        (**self).as_context()
    }
}
impl<S: AsContextMut + ?Sized> AsContextMut for &mut S {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, S::Data> {
        (**self).as_context_mut()
    }
}

//! Functions: Wasm functions and host functions behind one handle ([`Func`]),
//! calls from the host with dynamic ([`Func::call`]) or static
//! ([`TypedFunc::call`]) types, and the [`Caller`] host functions receive.

use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use crate::compile::Trampolines;
use crate::externals::Extern;
use crate::runtime::code;
use crate::runtime::instance::InstanceData;
use crate::runtime::signals::{self, TrapCause, TrapRecord};
use crate::store::{AsContext, AsContextMut, StoreContextMut, StoreInner, StoreOpaque};
use crate::trap::{FrameInfo, WasmBacktrace};
use crate::types::{FuncType, TypeId, ValType};
use crate::values::{Val, ValRaw};
use crate::vmctx::{self, VMFuncRef};

/// A Wasm or host function in a store.
///
/// # Example
///
/// ```
/// use weft::{Engine, Func, FuncType, Store, Val, ValType};
///
/// let engine = Engine::default();
/// let mut store = Store::new(&engine, ());
/// let ty = FuncType::new(&engine, [ValType::I32, ValType::I32], [ValType::I32]);
/// let add = Func::new(&mut store, ty, |_caller, params, results| {
///     results[0] = Val::I32(params[0].unwrap_i32() + params[1].unwrap_i32());
///     Ok(())
/// });
/// let mut results = [Val::I32(0)];
/// add.call(&mut store, &[Val::I32(2), Val::I32(40)], &mut results)?;
/// assert_eq!(results[0].unwrap_i32(), 42);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Func {
    pub(crate) store_id: u64,
    pub(crate) func_ref: *const VMFuncRef,
}

// SAFETY: a handle; every use goes through the owning store.
unsafe impl Send for Func {}
// SAFETY: as above.
unsafe impl Sync for Func {}

type HostFn<T> = dyn Fn(Caller<'_, T>, &mut [ValRaw]) -> anyhow::Result<()> + Send + Sync;

/// The context of a host function: its funcref's `vmctx` points here, and the
/// Wasm-to-host trampoline calls `callback` (which must stay the first field).
///
/// It holds no store: the store is found through the caller's vmctx (an
/// instance's, or the store's host pseudo-vmctx for calls from the host), so one
/// context serves every store (the [`Linker`](crate::Linker) creates it once).
#[repr(C)]
pub(crate) struct HostFuncContext<T: 'static> {
    callback: unsafe extern "C" fn(*mut HostFuncContext<T>, *mut u8, *mut ValRaw, usize),
    pub(crate) func_ref: VMFuncRef,
    /// Value slots the trampoline passes: max(params, results), kept here so
    /// that a call does not reach into the type for it.
    slots: usize,
    ty: Arc<FuncType>,
    func: Arc<HostFn<T>>,
    _trampolines: Arc<Trampolines>,
}

impl<T: 'static> HostFuncContext<T> {
    /// A shared context (its final address goes into its own funcref).
    pub(crate) fn new(ty: Arc<FuncType>, type_id: TypeId, trampolines: Arc<Trampolines>, func: Arc<HostFn<T>>) -> Arc<Self> {
        let mut shared = Arc::new(HostFuncContext {
            callback: host_callback::<T>,
            func_ref: VMFuncRef { code: trampolines.wasm_to_host, vmctx: std::ptr::null_mut(), type_id: type_id.0, _pad: 0 },
            slots: ty.params().len().max(ty.results().len()),
            ty,
            func,
            _trampolines: trampolines,
        });
        let ctx_ptr = Arc::as_ptr(&shared) as *mut u8;
        Arc::get_mut(&mut shared).expect("not shared yet").func_ref.vmctx = ctx_ptr;
        shared
    }
}

// SAFETY: the context is immutable after creation; the closure is Send + Sync.
unsafe impl<T> Send for HostFuncContext<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for HostFuncContext<T> {}

unsafe extern "C" fn host_callback<T: 'static>(ctx: *mut HostFuncContext<T>, caller_vmctx: *mut u8, values: *mut ValRaw, fp: usize) {
    // SAFETY: every caller vmctx points to its store context.
    let store_ctx = unsafe { *(caller_vmctx.add(vmctx::VMCTX_STORE_CTX_OFFSET as usize) as *const *mut vmctx::VMStoreContext) };
    let call = || {
        // SAFETY: `ctx` is the context this callback was registered with; the
        // store (or linker) keeps it alive while it can be called.
        let ctx = unsafe { &*ctx };
        // SAFETY: the trampoline passes an array of at least `slots` slots.
        let values = unsafe { std::slice::from_raw_parts_mut(values, ctx.slots) };
        // SAFETY: every caller vmctx (an instance's or the store's host
        // pseudo-vmctx) points to its store context, which points to the store:
        // a `StoreInner<T>` whose first field is the `StoreOpaque`. The store
        // outlives the call; the embedder's borrow of it is suspended while Wasm runs.
        let store = unsafe {
            let store_ctx = *(caller_vmctx.add(vmctx::VMCTX_STORE_CTX_OFFSET as usize) as *const *mut vmctx::VMStoreContext);
            &mut *((*store_ctx).store as *mut StoreInner<T>)
        };
        let caller = Caller { store: StoreContextMut { inner: store }, caller_vmctx };
        std::panic::catch_unwind(AssertUnwindSafe(|| (ctx.func)(caller, values)))
    };
    // SAFETY: called from compiled code of that store; the call catches panics.
    let result = unsafe { crate::runtime::continuation::on_native_stack(store_ctx, call) };
    // Nothing that needs dropping is live past this point: `raise` does not return.
    match result {
        Ok(Ok(())) => {}
        // A thrown exception goes on to the Wasm caller's handlers.
        Ok(Err(e)) if e.is::<crate::ThrownException>() => {
            drop(e);
            // SAFETY: every caller vmctx points to its store context, which
            // points to the live store; we are called from compiled code.
            unsafe {
                let store_ctx = *(caller_vmctx.add(vmctx::VMCTX_STORE_CTX_OFFSET as usize) as *const *mut vmctx::VMStoreContext);
                let store = &mut *((*store_ctx).store as *mut StoreOpaque);
                if store.exceptions.pending != 0 {
                    crate::runtime::exception::throw_from_host(store, fp)
                }
                signals::raise(TrapCause::Host, Some(anyhow::anyhow!("a host function threw, but no exception is pending")), None, fp)
            }
        }
        // SAFETY: called from a host function invoked by compiled code.
        Ok(Err(e)) => unsafe { signals::raise(TrapCause::Host, Some(e), None, fp) },
        // SAFETY: as above.
        Err(p) => unsafe { signals::raise(TrapCause::Panic, None, Some(p), fp) },
    }
}

/// Adapts a host closure over `Val` slices ([`Func::new`],
/// [`Linker::func_new`](crate::Linker::func_new)) to raw slots: converts the
/// arguments, and checks every result against `ty` before compiled code sees
/// it, since a value of the wrong type (an `i32` for an `i64`, an externref
/// for a funcref) would be misread by the caller.
///
/// A result of the wrong type is an error of the call; a handle of another
/// store panics (see [`Val::to_raw`]).
pub(crate) fn host_fn_over_vals<T: 'static>(
    ty: &FuncType,
    func: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> anyhow::Result<()> + Send + Sync + 'static,
) -> Arc<HostFn<T>> {
    let params: Vec<ValType> = ty.params().to_vec();
    let results: Vec<ValType> = ty.results().to_vec();
    Arc::new(move |mut caller: Caller<'_, T>, values: &mut [ValRaw]| -> anyhow::Result<()> {
        let store = &caller.store.inner.opaque;
        let args: Vec<Val> = params.iter().zip(values.iter()).map(|(t, v)| Val::from_raw(store, *v, t)).collect();
        let mut rets: Vec<Val> = results.iter().map(|t| Val::default_for(t).unwrap_or(Val::I32(0))).collect();
        func(caller.reborrow(), &args, &mut rets)?;
        let store = &caller.store.inner.opaque;
        for (i, (r, t)) in rets.iter().zip(results.iter()).enumerate() {
            if !r.matches(store, t) {
                anyhow::bail!("host function returned a value of the wrong type for result {i}: expected {t}, got {r:?}");
            }
            values[i] = r.to_raw(store);
        }
        Ok(())
    })
}

/// The calling store and instance, handed to host functions.
///
/// # Example
///
/// ```
/// use weft::{Caller, Engine, Linker, Module, Store};
///
/// let engine = Engine::default();
/// let mut linker = Linker::<Vec<String>>::new(&engine);
/// // Reads a string from the caller's exported memory into the store's data.
/// linker.func_wrap("host", "log", |mut caller: Caller<'_, Vec<String>>, ptr: u32, len: u32| -> weft::Result<()> {
///     let memory = caller.get_export("memory").and_then(|e| e.into_memory()).expect("an exported memory");
///     let bytes = memory.data(&caller)[ptr as usize..][..len as usize].to_vec();
///     caller.data_mut().push(String::from_utf8(bytes)?);
///     Ok(())
/// })?;
/// let module = Module::new(&engine, r#"(module
///     (import "host" "log" (func $log (param i32 i32)))
///     (memory (export "memory") 1)
///     (data (i32.const 8) "hello")
///     (func (export "run") (call $log (i32.const 8) (i32.const 5))))"#)?;
/// let mut store = Store::new(&engine, Vec::new());
/// let instance = linker.instantiate(&mut store, &module)?;
/// instance.get_typed_func::<(), ()>(&mut store, "run")?.call(&mut store, ())?;
/// assert_eq!(store.data(), &["hello"]);
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Caller<'a, T> {
    pub(crate) store: StoreContextMut<'a, T>,
    caller_vmctx: *mut u8,
}

impl<T> Caller<'_, T> {
    /// The store's host data.
    pub fn data(&self) -> &T {
        &self.store.inner.data
    }
    /// The store's host data, mutably.
    pub fn data_mut(&mut self) -> &mut T {
        &mut self.store.inner.data
    }
    /// An export of the calling instance (e.g. its `memory`), if the caller is Wasm.
    pub fn get_export(&mut self, name: &str) -> Option<Extern> {
        // SAFETY: the caller vmctx is a live instance's vmctx or the store's
        // host pseudo-vmctx, which has a different magic.
        let inst = unsafe {
            if *(self.caller_vmctx as *const u64) != vmctx::VMCTX_MAGIC {
                return None;
            }
            &*(*(self.caller_vmctx.add(vmctx::VMCTX_INSTANCE_OFFSET as usize) as *const *const InstanceData))
        };
        let index = *inst.module.inner.info.export_map.get(name)?;
        Some(crate::instance::export_of(&self.store.inner.opaque, inst, index))
    }
    /// The engine.
    pub fn engine(&self) -> &crate::Engine {
        &self.store.inner.opaque.engine
    }
    /// The fuel the store has left, counting what the calling guest ran
    /// until this call (see [`Store::get_fuel`](crate::Store::get_fuel)).
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn get_fuel(&self) -> anyhow::Result<u64> {
        self.store.inner.opaque.get_fuel()
    }
    /// Sets the fuel the store's guests may still use, from this call on
    /// (see [`Store::set_fuel`](crate::Store::set_fuel)).
    ///
    /// # Errors
    /// If the engine does not consume fuel.
    pub fn set_fuel(&mut self, fuel: u64) -> anyhow::Result<()> {
        self.store.inner.opaque.set_fuel(fuel)
    }
}

impl<T> AsContext for Caller<'_, T> {
    type Data = T;
    fn as_context(&self) -> crate::store::StoreContext<'_, T> {
        crate::store::StoreContext { inner: self.store.inner }
    }
}
impl<T> AsContextMut for Caller<'_, T> {
    fn as_context_mut(&mut self) -> StoreContextMut<'_, T> {
        StoreContextMut { inner: self.store.inner }
    }
}

impl Func {
    /// Creates a host function of type `ty` that reads its arguments from and
    /// writes its results to `Val` slices.
    pub fn new<T: 'static>(
        mut store: impl AsContextMut<Data = T>,
        ty: FuncType,
        func: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> anyhow::Result<()> + Send + Sync + 'static,
    ) -> Func {
        let raw = host_fn_over_vals(&ty, func);
        let mut ctx = store.as_context_mut();
        Func::new_raw(&mut ctx, ty, raw)
    }

    /// Creates a host function from a Rust closure whose parameter and result
    /// types determine the Wasm type.
    ///
    /// # Example
    ///
    /// ```
    /// let engine = weft::Engine::default();
    /// let mut store = weft::Store::new(&engine, ());
    /// let add = weft::Func::wrap(&mut store, |a: i32, b: i32| a + b);
    /// let typed = add.typed::<(i32, i32), i32>(&store).unwrap();
    /// assert_eq!(typed.call(&mut store, (2, 3)).unwrap(), 5);
    /// ```
    pub fn wrap<T: 'static, Params, Results>(mut store: impl AsContextMut<Data = T>, func: impl IntoFunc<T, Params, Results>) -> Func {
        let (ty, raw) = func.into_func();
        let mut ctx = store.as_context_mut();
        Func::new_raw(&mut ctx, ty, raw)
    }

    pub(crate) fn new_raw<T: 'static>(ctx: &mut StoreContextMut<'_, T>, ty: FuncType, func: Arc<HostFn<T>>) -> Func {
        let engine = ctx.inner.opaque.engine.clone();
        let type_id = engine.register_type(&ty);
        let trampolines = engine.trampolines(type_id).expect("trampoline compilation failed");
        Func::new_registered(ctx, engine.func_type(type_id), type_id, trampolines, func)
    }

    /// Creates a host function whose type is already registered and whose
    /// trampolines are compiled (the linker resolves both once, not per store).
    pub(crate) fn new_registered<T: 'static>(
        ctx: &mut StoreContextMut<'_, T>,
        ty: Arc<FuncType>,
        type_id: TypeId,
        trampolines: Arc<Trampolines>,
        func: Arc<HostFn<T>>,
    ) -> Func {
        let shared = HostFuncContext::new(ty, type_id, trampolines, func);
        Func::from_shared_host(ctx, shared)
    }

    /// A handle in this store to a host function whose context may be shared
    /// with other stores; the store keeps the context alive.
    pub(crate) fn from_shared_host<T: 'static>(ctx: &mut StoreContextMut<'_, T>, shared: Arc<HostFuncContext<T>>) -> Func {
        let func_ref: *const VMFuncRef = &shared.func_ref;
        let opaque = &mut ctx.inner.opaque;
        opaque.host_funcs.push(shared);
        Func { store_id: opaque.id, func_ref }
    }

    pub(crate) fn type_id(&self) -> TypeId {
        // SAFETY: the funcref lives as long as its store.
        TypeId(unsafe { (*self.func_ref).type_id })
    }

    /// The function's type.
    pub fn ty(&self, store: impl AsContext) -> FuncType {
        let ctx = store.as_context();
        ctx.inner.opaque.check(self.store_id);
        (*ctx.inner.opaque.engine.func_type(self.type_id())).clone()
    }

    /// Calls the function with `params`, writing its results into `results`.
    ///
    /// # Errors
    /// Fails if the arguments do not match the function's type, or with a
    /// [`Trap`](crate::Trap) (downcast the error) if the guest traps.
    ///
    /// # Panics
    /// Resumes a panic raised by a host function during the call.
    pub fn call(&self, mut store: impl AsContextMut, params: &[Val], results: &mut [Val]) -> anyhow::Result<()> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        opaque.check(self.store_id);
        let ty = opaque.engine.func_type(self.type_id());
        if params.len() != ty.params().len() {
            anyhow::bail!("expected {} arguments, got {}", ty.params().len(), params.len());
        }
        if results.len() != ty.results().len() {
            anyhow::bail!("expected {} results, got room for {}", ty.results().len(), results.len());
        }
        for (i, (p, t)) in params.iter().zip(ty.params()).enumerate() {
            if !p.matches(opaque, t) {
                anyhow::bail!("argument {i} does not match the parameter type {t}");
            }
        }
        let mut values = vec![ValRaw::default(); ty.params().len().max(ty.results().len())];
        for (slot, p) in values.iter_mut().zip(params) {
            *slot = p.to_raw(opaque);
        }
        // SAFETY: the values array holds enough slots for the function's type.
        unsafe { self.call_raw(opaque, &mut values)? };
        for (i, (r, t)) in results.iter_mut().zip(ty.results()).enumerate() {
            *r = Val::from_raw(opaque, values[i], t);
        }
        Ok(())
    }

    /// Calls with arguments and results in raw slots.
    ///
    /// # Safety
    /// `values` must hold correctly typed arguments and enough slots for the results.
    pub(crate) unsafe fn call_raw(&self, store: &mut StoreOpaque, values: &mut [ValRaw]) -> anyhow::Result<()> {
        store.check_not_suspended()?;
        // SAFETY: forwarded from the caller.
        unsafe { self.call_raw_record(store, values, None) }.map_err(|record| trap_from_record(*record))
    }

    /// Like `call_raw`, but returns the raw trap record (no panic is resumed).
    ///
    /// # Safety
    /// As for `call_raw`.
    unsafe fn call_raw_record(&self, store: &mut StoreOpaque, values: &mut [ValRaw], trampoline: Option<*const u8>) -> Result<(), Box<TrapRecord>> {
        let trampoline = match trampoline {
            Some(t) => t,
            None => match store.engine.trampolines(self.type_id()) {
                Ok(t) => t.host_to_wasm,
                Err(e) => {
                    return Err(Box::new(TrapRecord { cause: TrapCause::Host, backtrace: Vec::new(), host_error: Some(e), panic: None }));
                }
            },
        };
        let max_stack = store.engine.config().tunables.max_wasm_stack;
        store.wasm_calls = store.wasm_calls.wrapping_add(1);
        // SAFETY: the funcref belongs to this store (checked by callers).
        let f = unsafe { *self.func_ref };
        let store_ctx: *mut vmctx::VMStoreContext = &mut *store.vm;
        // SAFETY: the trampoline matches the callee's type and `values` is large enough.
        unsafe { signals::call_wasm(store_ctx, max_stack, trampoline, f.vmctx, store.host_vmctx(), f.code, values.as_mut_ptr() as *mut u8) }
    }

    /// A statically typed view of this function.
    ///
    /// # Errors
    /// Fails if `Params` and `Results` do not match the function's type.
    pub fn typed<Params: WasmParams, Results: WasmResults>(&self, store: impl AsContext) -> anyhow::Result<TypedFunc<Params, Results>> {
        let ty = self.ty(&store);
        let expected = FuncType::from_parts(Params::types(), Results::types());
        if ty != expected {
            anyhow::bail!("function type mismatch: the function is {ty}, but {expected} was requested");
        }
        let trampoline = store.as_context().inner.opaque.engine.trampolines(self.type_id())?.host_to_wasm;
        Ok(TypedFunc { func: *self, trampoline, _marker: PhantomData })
    }
}

/// Converts a trap record into the error a call returns (or resumes a host panic).
pub(crate) fn trap_from_record(record: TrapRecord) -> anyhow::Error {
    if let Some(p) = record.panic {
        std::panic::resume_unwind(p);
    }
    let backtrace = symbolize(&record.backtrace);
    match record.cause {
        TrapCause::Wasm(trap) => backtrace.attach_to(anyhow::Error::new(trap)),
        _ => backtrace.attach_to(record.host_error.unwrap_or_else(|| anyhow::anyhow!("unknown host error"))),
    }
}

fn symbolize(pcs: &[usize]) -> WasmBacktrace {
    let mut frames = Vec::new();
    for (i, &pc) in pcs.iter().enumerate() {
        // Entries after the first are return addresses: look up the call itself.
        let lookup = if i == 0 { pc } else { pc - 1 };
        code::with_code_at(lookup, |found| {
            if let Some((mem, offset)) = found {
                if let Some(func_index) = mem.function_at(offset).and_then(|f| f.func_index) {
                    frames.push(FrameInfo {
                        func_index,
                        func_name: mem.symbols.funcs.get(&func_index).cloned(),
                        module_name: mem.symbols.module.clone(),
                        module_offset: mem.wasm_offset_at(offset),
                    });
                }
            }
        });
    }
    WasmBacktrace { frames }
}

/// A function with statically known parameter and result types: the fastest
/// way to call Wasm from the host (no `Val` conversion, types checked once).
///
/// # Example
///
/// ```
/// use weft::{Engine, Instance, Module, Store};
///
/// let engine = Engine::default();
/// let module = Module::new(&engine, r#"(module
///     (func (export "swap") (param i32 i64) (result i64 i32) local.get 1 local.get 0))"#)?;
/// let mut store = Store::new(&engine, ());
/// let instance = Instance::new(&mut store, &module, &[])?;
/// let swap = instance.get_typed_func::<(i32, i64), (i64, i32)>(&mut store, "swap")?;
/// assert_eq!(swap.call(&mut store, (1, 2))?, (2, 1));
/// // The wrong signature is refused when the view is made.
/// assert!(instance.get_typed_func::<(i32, i32), i32>(&mut store, "swap").is_err());
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct TypedFunc<Params, Results> {
    func: Func,
    /// The host-to-Wasm trampoline of the function's type, looked up once
    /// (the engine keeps trampolines for its whole life).
    trampoline: *const u8,
    _marker: PhantomData<fn(Params) -> Results>,
}

// SAFETY: a handle plus a pointer to immutable engine-owned code.
unsafe impl<Params, Results> Send for TypedFunc<Params, Results> {}
// SAFETY: as above.
unsafe impl<Params, Results> Sync for TypedFunc<Params, Results> {}

impl<Params, Results> Clone for TypedFunc<Params, Results> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<Params, Results> Copy for TypedFunc<Params, Results> {}

impl<Params: WasmParams, Results: WasmResults> TypedFunc<Params, Results> {
    /// Calls the function.
    ///
    /// # Errors
    /// A [`Trap`](crate::Trap) if the guest traps.
    pub fn call(&self, mut store: impl AsContextMut, params: Params) -> anyhow::Result<Results> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        opaque.check(self.func.store_id);
        let mut values = [ValRaw::default(); 16];
        let n = Params::count().max(Results::count());
        let mut heap;
        let slots: &mut [ValRaw] = if n <= values.len() {
            &mut values[..n.max(1)]
        } else {
            heap = vec![ValRaw::default(); n];
            &mut heap
        };
        params.store(opaque.id, slots);
        // SAFETY: the types were checked when this TypedFunc was made.
        opaque.check_not_suspended()?;
        // SAFETY: as above; the trampoline matches the checked type.
        unsafe { self.func.call_raw_record(opaque, slots, Some(self.trampoline)) }.map_err(|record| trap_from_record(*record))?;
        Ok(Results::load(opaque, slots))
    }

    /// The underlying function.
    pub fn func(&self) -> &Func {
        &self.func
    }

    /// Calls the function on its own stack, so that an epoch callback or
    /// interrupt hook can suspend it ([`UpdateDeadline::Yield`](crate::UpdateDeadline::Yield),
    /// [`InterruptAction::Yield`](crate::InterruptAction::Yield)). A suspended
    /// call is returned as [`CallState::Suspended`], to be resumed later, on
    /// this thread or another; meanwhile the store refuses other calls.
    ///
    /// # Errors
    /// As for [`call`](Self::call).
    pub fn call_resumable(&self, mut store: impl AsContextMut, params: Params) -> anyhow::Result<CallState<Results>>
    where
        Results: 'static,
    {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        opaque.check(self.func.store_id);
        opaque.check_not_suspended()?;
        let n = Params::count().max(Results::count()).max(1);
        let shared = Arc::new(std::sync::Mutex::new(FiberCall { values: vec![ValRaw::default(); n], outcome: None }));
        params.store(opaque.id, &mut shared.lock().unwrap().values);
        let func = self.func;
        let trampoline = self.trampoline as usize;
        let store_ptr = opaque as *mut StoreOpaque as usize;
        let result = shared.clone();
        let body = Box::new(move || {
            let mut values = std::mem::take(&mut result.lock().unwrap().values);
            // SAFETY: the store outlives the call (the suspended call is resumed
            // with the same store, checked by id); the types were checked when
            // this TypedFunc was made.
            let outcome = unsafe { func.call_raw_record(&mut *(store_ptr as *mut StoreOpaque), &mut values, Some(trampoline as *const u8)) };
            let mut r = result.lock().unwrap();
            r.values = values;
            r.outcome = Some(outcome);
        });
        let stack = opaque.engine.config().tunables.max_wasm_stack * 2 + (1 << 20);
        let fiber = crate::runtime::fiber::Fiber::new(stack, body)?;
        let suspension = opaque.suspension.clone();
        SuspendedCall { fiber, shared, store_id: opaque.id, suspension, _results: PhantomData }.drive(opaque)
    }
}

struct FiberCall {
    values: Vec<ValRaw>,
    outcome: Option<Result<(), Box<TrapRecord>>>,
}

/// The state of a resumable call (see [`TypedFunc::call_resumable`]).
pub enum CallState<R> {
    /// The call returned.
    Done(R),
    /// The call was suspended by a yield.
    Suspended(SuspendedCall<R>),
}

/// A suspended Wasm call, with its stack. `Send`: it may be resumed on another thread.
pub struct SuspendedCall<R> {
    fiber: Box<crate::runtime::fiber::Fiber>,
    shared: Arc<std::sync::Mutex<FiberCall>>,
    store_id: u64,
    suspension: Arc<crate::store::SuspensionState>,
    _results: PhantomData<fn() -> R>,
}

impl<R: WasmResults + 'static> SuspendedCall<R> {
    /// Continues the call until it returns or yields again.
    ///
    /// # Errors
    /// As for [`TypedFunc::call`]; also if `store` is not the call's store.
    pub fn resume(self, mut store: impl AsContextMut) -> anyhow::Result<CallState<R>> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        if opaque.id != self.store_id {
            anyhow::bail!("a suspended call must be resumed with its own store");
        }
        self.suspension.suspended.store(false, std::sync::atomic::Ordering::SeqCst);
        // Wasm runs again: memories made while it was suspended (which it may
        // reach through a table the host filled) count as possibly written.
        opaque.wasm_calls = opaque.wasm_calls.wrapping_add(1);
        self.drive(opaque)
    }

    fn drive(mut self, store: &mut StoreOpaque) -> anyhow::Result<CallState<R>> {
        if !self.fiber.resume() {
            self.suspension.suspended.store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(CallState::Suspended(self));
        }
        let mut r = self.shared.lock().unwrap();
        match r.outcome.take().expect("a finished call has an outcome") {
            Ok(()) => Ok(CallState::Done(R::load(store, &r.values))),
            Err(record) => Err(trap_from_record(*record)),
        }
    }
}

impl<R> Drop for SuspendedCall<R> {
    fn drop(&mut self) {
        // Dropping a suspended call abandons it: its stack goes with the fiber,
        // and the store accepts calls again.
        if !self.fiber.is_finished() {
            use std::sync::atomic::Ordering;
            self.suspension.abandoned.store(true, Ordering::SeqCst);
            self.suspension.suspended.store(false, Ordering::SeqCst);
        }
    }
}

/// A Rust type that maps to one Wasm value type.
pub trait WasmTy: Sized {
    #[doc(hidden)]
    fn valtype() -> ValType;
    /// The value in a raw slot for compiled code of the store `store_id`.
    ///
    /// # Panics
    /// If the value is a handle of another store.
    #[doc(hidden)]
    fn to_raw(self, store_id: u64) -> ValRaw;
    #[doc(hidden)]
    fn from_raw(store: &StoreOpaque, raw: ValRaw) -> Self;
}

macro_rules! wasm_ty {
    ($t:ty, $vt:expr, |$s:ident| $to:expr, |$r:ident| $from:expr) => {
        impl WasmTy for $t {
            fn valtype() -> ValType {
                $vt
            }
            fn to_raw(self, _store_id: u64) -> ValRaw {
                let $s = self;
                $to
            }
            fn from_raw(_store: &StoreOpaque, $r: ValRaw) -> Self {
                $from
            }
        }
    };
}
wasm_ty!(i32, ValType::I32, |v| ValRaw::i32(v), |r| r.get_i32());
wasm_ty!(u32, ValType::I32, |v| ValRaw::i32(v as i32), |r| r.get_i32() as u32);
wasm_ty!(i64, ValType::I64, |v| ValRaw::i64(v), |r| r.get_i64());
wasm_ty!(u64, ValType::I64, |v| ValRaw::i64(v as i64), |r| r.get_i64() as u64);
wasm_ty!(f32, ValType::F32, |v| ValRaw::f32(v.to_bits()), |r| f32::from_bits(r.get_f32()));
wasm_ty!(f64, ValType::F64, |v| ValRaw::f64(v.to_bits()), |r| f64::from_bits(r.get_f64()));
wasm_ty!(crate::V128, ValType::V128, |v| ValRaw::v128(v.as_u128()), |r| crate::V128::from(r.get_v128()));

impl WasmTy for Option<Func> {
    fn valtype() -> ValType {
        ValType::FUNCREF
    }
    fn to_raw(self, store_id: u64) -> ValRaw {
        ValRaw::anyref(self.map_or(0, |f| {
            crate::store::check_store(store_id, f.store_id);
            f.func_ref as u64
        }))
    }
    fn from_raw(store: &StoreOpaque, raw: ValRaw) -> Self {
        let r = raw.get_ref();
        (r != 0).then_some(Func { store_id: store.id, func_ref: r as *const VMFuncRef })
    }
}

impl WasmTy for Option<crate::ExternRef> {
    fn valtype() -> ValType {
        ValType::EXTERNREF
    }
    fn to_raw(self, store_id: u64) -> ValRaw {
        ValRaw::anyref(self.map_or(0, |e| {
            crate::store::check_store(store_id, e.store_id);
            e.to_raw()
        }))
    }
    fn from_raw(store: &StoreOpaque, raw: ValRaw) -> Self {
        crate::ExternRef::from_raw(store, raw.get_ref())
    }
}

/// Parameter lists of typed functions: `()`, a single [`WasmTy`], or tuples.
pub trait WasmParams {
    #[doc(hidden)]
    fn types() -> Vec<ValType>;
    #[doc(hidden)]
    fn count() -> usize;
    /// Writes the values into raw slots for compiled code of the store
    /// `store_id`.
    ///
    /// # Panics
    /// If a value is a handle of another store.
    #[doc(hidden)]
    fn store(self, store_id: u64, slots: &mut [ValRaw]);
    #[doc(hidden)]
    fn load(store: &StoreOpaque, slots: &[ValRaw]) -> Self;
}

/// Result lists of typed functions (same shapes as [`WasmParams`]).
pub trait WasmResults: WasmParams {}
impl<T: WasmParams> WasmResults for T {}

impl<T: WasmTy> WasmParams for T {
    fn types() -> Vec<ValType> {
        vec![T::valtype()]
    }
    fn count() -> usize {
        1
    }
    fn store(self, store_id: u64, slots: &mut [ValRaw]) {
        slots[0] = self.to_raw(store_id);
    }
    fn load(store: &StoreOpaque, slots: &[ValRaw]) -> Self {
        T::from_raw(store, slots[0])
    }
}

macro_rules! tuple_params {
    ($($t:ident $i:tt),*) => {
        impl<$($t: WasmTy),*> WasmParams for ($($t,)*) {
            fn types() -> Vec<ValType> {
                vec![$($t::valtype()),*]
            }
            fn count() -> usize {
                0 $(+ { let _ = $i; 1 })*
            }
            #[allow(unused_variables)]
            fn store(self, store_id: u64, slots: &mut [ValRaw]) {
                $(slots[$i] = self.$i.to_raw(store_id);)*
            }
            // For the empty tuple the body is `()`.
            #[allow(unused_variables, clippy::unused_unit)]
            fn load(store: &StoreOpaque, slots: &[ValRaw]) -> Self {
                ($($t::from_raw(store, slots[$i]),)*)
            }
        }
    };
}
tuple_params!();
tuple_params!(A 0);
tuple_params!(A 0, B 1);
tuple_params!(A 0, B 1, C 2);
tuple_params!(A 0, B 1, C 2, D 3);
tuple_params!(A 0, B 1, C 2, D 3, E 4);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_params!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

/// What a wrapped host closure may return: results, or `anyhow::Result` of them.
pub trait HostResult {
    /// The results the closure produces.
    type Results: WasmResults;
    /// The results, or the error the host function fails with.
    fn into_result(self) -> anyhow::Result<Self::Results>;
}
impl<R: WasmResults> HostResult for R {
    type Results = R;
    fn into_result(self) -> anyhow::Result<R> {
        Ok(self)
    }
}
impl<R: WasmResults> HostResult for anyhow::Result<R> {
    type Results = R;
    fn into_result(self) -> anyhow::Result<R> {
        self
    }
}

/// Closures that can become host functions (see [`Func::wrap`]).
pub trait IntoFunc<T, Params, Results>: Send + Sync + 'static {
    #[doc(hidden)]
    fn into_func(self) -> (FuncType, Arc<HostFn<T>>);
}

macro_rules! into_func {
    ($($a:ident $i:tt),*) => {
        #[allow(non_snake_case)]
        impl<T: 'static, Closure, Ret, $($a: WasmTy + 'static),*> IntoFunc<T, ($($a,)*), Ret> for Closure
        where
            Closure: Fn($($a),*) -> Ret + Send + Sync + 'static,
            Ret: HostResult + 'static,
        {
            fn into_func(self) -> (FuncType, Arc<HostFn<T>>) {
                let ty = FuncType::from_parts(<($($a,)*) as WasmParams>::types(), Ret::Results::types());
                let f = move |caller: Caller<'_, T>, values: &mut [ValRaw]| -> anyhow::Result<()> {
                    let store = &caller.store.inner.opaque;
                    let r = (self)($($a::from_raw(store, values[$i])),*).into_result()?;
                    r.store(store.id, values);
                    Ok(())
                };
                (ty, Arc::new(f))
            }
        }

        #[allow(non_snake_case)]
        impl<T: 'static, Closure, Ret, $($a: WasmTy + 'static),*> IntoFunc<T, (Caller<'static, T>, $($a,)*), Ret> for Closure
        where
            Closure: Fn(Caller<'_, T>, $($a),*) -> Ret + Send + Sync + 'static,
            Ret: HostResult + 'static,
        {
            fn into_func(self) -> (FuncType, Arc<HostFn<T>>) {
                let ty = FuncType::from_parts(<($($a,)*) as WasmParams>::types(), Ret::Results::types());
                let f = move |caller: Caller<'_, T>, values: &mut [ValRaw]| -> anyhow::Result<()> {
                    let store_id = caller.store.inner.opaque.id;
                    $(let $a = { let store = &caller.store.inner.opaque; $a::from_raw(store, values[$i]) };)*
                    let r = (self)(caller, $($a),*).into_result()?;
                    r.store(store_id, values);
                    Ok(())
                };
                (ty, Arc::new(f))
            }
        }
    };
}
into_func!();
into_func!(A 0);
into_func!(A 0, B 1);
into_func!(A 0, B 1, C 2);
into_func!(A 0, B 1, C 2, D 3);
into_func!(A 0, B 1, C 2, D 3, E 4);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
into_func!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);

impl<T> Caller<'_, T> {
    /// Throws `exception` into this host function's Wasm caller: return the
    /// error (see [`Store::throw`](crate::Store::throw)).
    ///
    /// # Panics
    /// If the exception belongs to another store.
    pub fn throw<R>(&mut self, exception: crate::ExnRef) -> Result<R, crate::ThrownException> {
        self.store.throw(exception)
    }
    /// Takes the store's pending exception (see
    /// [`Store::take_pending_exception`](crate::Store::take_pending_exception)).
    pub fn take_pending_exception(&mut self) -> Option<crate::ExnRef> {
        self.store.take_pending_exception()
    }

    fn reborrow(&mut self) -> Caller<'_, T> {
        Caller { store: StoreContextMut { inner: self.store.inner }, caller_vmctx: self.caller_vmctx }
    }
}

//! Continuations as the host sees them (stack switching): [`Continuation`],
//! a computation on a stack of its own that the host can create from a
//! function, resume with arguments, and receive back either suspended (with
//! the tag and payload of its `suspend`) or finished (with its results).
//!
//! A continuation is one-shot: resuming it consumes it, and a suspension
//! hands out a new one to resume the rest. Resuming a consumed one fails
//! with [`Trap::ContinuationAlreadyConsumed`](crate::Trap::ContinuationAlreadyConsumed).
//! A resume made by the host handles every tag its continuation suspends
//! with; a `switch` needs a handler in Wasm. Continuations pass between the
//! host and Wasm as [`Val::ContRef`].
//!
//! # Example
//!
//! A generator: Wasm suspends with each value, the host collects them.
//!
//! ```
//! use weft::{Continuation, Engine, Instance, Module, Resumed, Store, Val};
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"(module
//!     (tag $yield (export "yield") (param i32))
//!     (func (export "count") (param $n i32)
//!       (loop $l
//!         (suspend $yield (local.get $n))
//!         (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#)?;
//! let mut store = Store::new(&engine, ());
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let count = instance.get_func(&mut store, "count").unwrap();
//! let yield_tag = instance.get_export(&mut store, "yield").and_then(|e| e.into_tag()).unwrap();
//!
//! let mut k = Continuation::new(&mut store, &count)?;
//! let mut args = vec![Val::I32(3)];
//! let mut seen = Vec::new();
//! loop {
//!     match k.resume(&mut store, &args)? {
//!         Resumed::Suspended { tag, payload, continuation } => {
//!             assert_eq!(tag, yield_tag);
//!             seen.push(payload[0].unwrap_i32());
//!             k = continuation;
//!             args = vec![];
//!         }
//!         Resumed::Returned(results) => {
//!             assert!(results.is_empty());
//!             break;
//!         }
//!     }
//! }
//! assert_eq!(seen, [3, 2, 1]);
//! # Ok::<(), weft::Error>(())
//! ```

use crate::func::Func;
use crate::runtime::continuation as rt;
use crate::store::{AsContext, AsContextMut, StoreOpaque};
use crate::types::{FuncType, TypeId};
use crate::values::{Val, ValRaw};
use crate::{Tag, Trap};

/// A continuation: a suspended (or not yet started) computation.
///
/// A handle: copying it does not copy the continuation, and only one copy
/// can resume it (see the [module documentation](self)).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Continuation {
    pub(crate) store_id: u64,
    /// The reference as compiled code holds it (object and revision).
    pub(crate) raw: u64,
    /// Its continuation type, if known: what resuming it takes and what
    /// it returns. A reference the host received as an abstract `contref`
    /// has none, and cannot be resumed from the host.
    pub(crate) ty: Option<TypeId>,
}

/// What a resumed [`Continuation`] came back with.
#[derive(Debug)]
pub enum Resumed {
    /// Its function returned these results.
    Returned(Vec<Val>),
    /// It suspended with `tag` and `payload`; `continuation` resumes it
    /// with the tag's result types.
    Suspended {
        /// The tag of the `suspend`.
        tag: Tag,
        /// The values of the `suspend` (the tag's parameters).
        payload: Vec<Val>,
        /// The rest of the computation.
        continuation: Continuation,
    },
}

impl Continuation {
    /// A continuation that will call `func` when first resumed (with the
    /// function's parameters), returning its results at the end.
    ///
    /// # Errors
    /// If the store may not have another continuation or no stack can be
    /// had ([`Trap::ContinuationsExhausted`]).
    ///
    /// # Panics
    /// If `func` belongs to another store.
    pub fn new(mut store: impl AsContextMut, func: &Func) -> anyhow::Result<Continuation> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        opaque.check(func.store_id);
        // SAFETY: the funcref belongs to this store (checked above).
        let f = unsafe { *func.func_ref };
        let ty = opaque.engine.func_type(TypeId(f.type_id));
        let cont_ty = opaque.engine.inner.types.register_host_cont(&ty);
        let caller = opaque.host_vmctx();
        let obj = rt::new_continuation(opaque, f, caller).ok_or(Trap::ContinuationsExhausted)?;
        Ok(Continuation { store_id: opaque.id, raw: rt::reference(obj), ty: Some(cont_ty) })
    }

    /// What resuming the continuation takes (its parameters) and what it
    /// returns at the end (its results), if known (see [`Val::ContRef`]).
    ///
    /// # Panics
    /// If the continuation belongs to another store.
    pub fn ty(&self, store: impl AsContext) -> Option<FuncType> {
        let ctx = store.as_context();
        ctx.inner.opaque.check(self.store_id);
        self.ty.map(|t| (*ctx.inner.opaque.engine.func_type(t)).clone())
    }

    /// Whether the continuation was consumed (resumed, or finished).
    ///
    /// # Panics
    /// If the continuation belongs to another store.
    pub fn is_consumed(&self, store: impl AsContext) -> bool {
        let ctx = store.as_context();
        ctx.inner.opaque.check(self.store_id);
        !rt::is_current(self.raw)
    }

    /// Resumes the continuation with `args` until it suspends or returns.
    ///
    /// # Errors
    /// - [`Trap::ContinuationAlreadyConsumed`] if it was consumed;
    /// - an error if `args` do not match its parameters, or its type is not
    ///   known (see [`Val::ContRef`]), or the store has a suspended call;
    /// - the trap, with its backtrace, if the continuation traps;
    /// - [`ThrownException`](crate::ThrownException) if an exception leaves
    ///   it (then pending on the store).
    ///
    /// # Panics
    /// If the continuation or a value belongs to another store; resumes a
    /// panic raised by a host function the continuation called.
    pub fn resume(&self, mut store: impl AsContextMut, args: &[Val]) -> anyhow::Result<Resumed> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        opaque.check(self.store_id);
        let ty_id = self.ty.ok_or_else(|| anyhow::anyhow!("the continuation's type is not known to the host: it came as an abstract contref"))?;
        let ty = opaque.engine.func_type(ty_id);
        if args.len() != ty.params().len() {
            anyhow::bail!("expected {} arguments, got {}", ty.params().len(), args.len());
        }
        for (i, (a, t)) in args.iter().zip(ty.params()).enumerate() {
            if !a.matches(opaque, t) {
                anyhow::bail!("argument {i} does not match the parameter type {t}");
            }
        }
        opaque.check_not_suspended()?;
        if !rt::is_current(self.raw) {
            return Err(Trap::ContinuationAlreadyConsumed.into());
        }
        let raw_args: Vec<ValRaw> = args.iter().map(|a| a.to_raw(opaque)).collect();
        let outcome = rt::resume_from_host(opaque, self.raw, &raw_args).map_err(|record| crate::func::trap_from_record(*record))?;
        Ok(match outcome {
            rt::HostResumed::Returned(values) => Resumed::Returned(ty.results().iter().zip(values).map(|(t, v)| Val::from_raw(opaque, v, t)).collect()),
            rt::HostResumed::Threw => return Err(crate::ThrownException.into()),
            rt::HostResumed::Suspended { tag, values } => {
                let tag_ty = opaque.engine.func_type(opaque.tags[tag].type_id);
                let payload: Vec<Val> = tag_ty.params().iter().zip(&values).map(|(t, v)| Val::from_raw(opaque, *v, t)).collect();
                let rest = FuncType::from_parts(tag_ty.results().iter().copied(), ty.results().iter().copied());
                let rest_ty = opaque.engine.inner.types.register_host_cont(&rest);
                let raw = values[tag_ty.params().len()].get_ref();
                Resumed::Suspended {
                    tag: Tag { store_id: opaque.id, index: tag },
                    payload,
                    continuation: Continuation { store_id: opaque.id, raw, ty: Some(rest_ty) },
                }
            }
        })
    }

    /// Frees a continuation that will not be resumed: its stack (and those
    /// of the continuations it suspended with) goes back for reuse at once,
    /// instead of when the store is dropped. Does nothing if it was consumed.
    ///
    /// # Panics
    /// If the continuation belongs to another store.
    pub fn discard(self, mut store: impl AsContextMut) {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        opaque.check(self.store_id);
        rt::discard(opaque, self.raw);
    }

    pub(crate) fn to_raw(self, store: &StoreOpaque) -> u64 {
        store.check(self.store_id);
        self.raw
    }

    pub(crate) fn from_raw(store: &StoreOpaque, raw: u64, ty: Option<TypeId>) -> Option<Continuation> {
        (raw != 0).then_some(Continuation { store_id: store.id, raw, ty })
    }
}

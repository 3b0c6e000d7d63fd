//! Wasm values as the host sees them ([`Val`]), their raw form in the slots
//! trampolines read and write ([`ValRaw`]), and host references ([`ExternRef`]).

use std::any::Any;

use crate::func::Func;
use crate::store::{AsContext, AsContextMut, StoreOpaque};
use crate::types::{HeapType, RefType, ValType};
use crate::vmctx::VMFuncRef;

/// A value in the raw 16-byte slot format trampolines use.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ValRaw {
    bits: [u64; 2],
}

impl ValRaw {
    /// A slot holding an `i32`.
    pub fn i32(v: i32) -> Self {
        ValRaw { bits: [v as u32 as u64, 0] }
    }
    /// A slot holding an `i64`.
    pub fn i64(v: i64) -> Self {
        ValRaw { bits: [v as u64, 0] }
    }
    /// A slot holding an `f32`, by its bits.
    pub fn f32(bits: u32) -> Self {
        ValRaw { bits: [bits as u64, 0] }
    }
    /// A slot holding an `f64`, by its bits.
    pub fn f64(bits: u64) -> Self {
        ValRaw { bits: [bits, 0] }
    }
    /// A slot holding a `v128`.
    pub fn v128(v: u128) -> Self {
        ValRaw { bits: [v as u64, (v >> 64) as u64] }
    }
    /// A reference: a funcref pointer or externref handle, 0 for null.
    pub fn anyref(raw: u64) -> Self {
        ValRaw { bits: [raw, 0] }
    }
    /// The slot read as an `i32`.
    pub fn get_i32(&self) -> i32 {
        self.bits[0] as u32 as i32
    }
    /// The slot read as an `i64`.
    pub fn get_i64(&self) -> i64 {
        self.bits[0] as i64
    }
    /// The slot read as an `f32`'s bits.
    pub fn get_f32(&self) -> u32 {
        self.bits[0] as u32
    }
    /// The slot read as an `f64`'s bits.
    pub fn get_f64(&self) -> u64 {
        self.bits[0]
    }
    /// The slot read as a `v128`.
    pub fn get_v128(&self) -> u128 {
        self.bits[0] as u128 | ((self.bits[1] as u128) << 64)
    }
    /// The slot read as a reference's raw bits.
    pub fn get_ref(&self) -> u64 {
        self.bits[0]
    }
}

/// A reference to a host value, owned by a store.
///
/// # Example
///
/// ```
/// let engine = weft::Engine::default();
/// let mut store = weft::Store::new(&engine, ());
/// let r = weft::ExternRef::new(&mut store, 42u32)?;
/// assert_eq!(r.data(&store)?.unwrap().downcast_ref::<u32>(), Some(&42));
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExternRef {
    pub(crate) store_id: u64,
    pub(crate) index: u32,
}

impl ExternRef {
    /// Wraps `value` in a new reference owned by `store`.
    ///
    /// # Errors
    /// Never in Weft, whose externrefs need no collector; the `Result` is
    /// wasmtime's signature, where allocation in the GC heap can fail.
    pub fn new<T>(mut store: impl AsContextMut<Data = T>, value: impl Any + Send + Sync) -> anyhow::Result<ExternRef> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.externrefs.push(Box::new(value));
        Ok(ExternRef { store_id: s.id, index: s.externrefs.len() as u32 - 1 })
    }

    /// The host value behind the reference (always `Some` in Weft: every
    /// externref is made by the host with a value).
    ///
    /// # Errors
    /// Never in Weft (wasmtime's signature).
    ///
    /// # Panics
    /// Panics if `store` is not the store that owns the reference.
    pub fn data<'a, S: AsContext>(&self, store: &'a S) -> anyhow::Result<Option<&'a (dyn Any + Send + Sync)>> {
        let ctx = store.as_context();
        ctx.inner.opaque.check(self.store_id);
        Ok(Some(&*ctx.inner.opaque.externrefs[self.index as usize]))
    }

    pub(crate) fn to_raw(self) -> u64 {
        self.index as u64 + 1
    }

    pub(crate) fn from_raw(store: &StoreOpaque, raw: u64) -> Option<ExternRef> {
        (raw != 0).then(|| ExternRef { store_id: store.id, index: (raw - 1) as u32 })
    }
}

/// A Wasm value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Val {
    /// An `i32`.
    I32(i32),
    /// An `i64`.
    I64(i64),
    /// An `f32`, by its bits (so NaN payloads survive).
    F32(u32),
    /// An `f64`, by its bits.
    F64(u64),
    /// A `v128`.
    V128(V128),
    /// A `funcref` (`None` for null).
    FuncRef(Option<Func>),
    /// An `externref` (`None` for null).
    ExternRef(Option<ExternRef>),
    /// An `exnref` (`None` for null).
    ExnRef(Option<crate::ExnRef>),
    /// A continuation reference (`None` for null). One that Wasm passes to
    /// the host with a concrete continuation type carries it, and can be
    /// resumed by the host or passed back where that type is expected; one
    /// passed as an abstract `contref` can only be passed back as one.
    ContRef(Option<crate::Continuation>),
}

impl Val {
    /// The default (zero or null) value of a type, if it has one.
    pub fn default_for(ty: &ValType) -> Option<Val> {
        Some(match ty {
            ValType::I32 => Val::I32(0),
            ValType::I64 => Val::I64(0),
            ValType::F32 => Val::F32(0),
            ValType::F64 => Val::F64(0),
            ValType::V128 => Val::V128(V128(0)),
            ValType::Ref(r) if !r.nullable => return None,
            ValType::Ref(r) if r.is_func() => Val::FuncRef(None),
            ValType::Ref(r) if r.is_exn() => Val::ExnRef(None),
            ValType::Ref(r) if r.is_cont() => Val::ContRef(None),
            ValType::Ref(_) => Val::ExternRef(None),
        })
    }

    /// A null `funcref`.
    pub fn null_func_ref() -> Val {
        Val::FuncRef(None)
    }
    /// A null `externref`.
    pub fn null_extern_ref() -> Val {
        Val::ExternRef(None)
    }

    /// The `i32`.
    ///
    /// # Panics
    /// If the value is not an `i32`.
    #[track_caller]
    pub fn unwrap_i32(&self) -> i32 {
        self.i32().expect("expected an i32 value")
    }
    /// The `i64`.
    ///
    /// # Panics
    /// If the value is not an `i64`.
    #[track_caller]
    pub fn unwrap_i64(&self) -> i64 {
        self.i64().expect("expected an i64 value")
    }
    /// The `f32`.
    ///
    /// # Panics
    /// If the value is not an `f32`.
    #[track_caller]
    pub fn unwrap_f32(&self) -> f32 {
        self.f32().expect("expected an f32 value")
    }
    /// The `f64`.
    ///
    /// # Panics
    /// If the value is not an `f64`.
    #[track_caller]
    pub fn unwrap_f64(&self) -> f64 {
        self.f64().expect("expected an f64 value")
    }
    /// The `v128`.
    ///
    /// # Panics
    /// If the value is not a `v128`.
    #[track_caller]
    pub fn unwrap_v128(&self) -> V128 {
        self.v128().expect("expected a v128 value")
    }
    /// The `funcref` (`None` for null).
    ///
    /// # Panics
    /// If the value is not a `funcref`.
    #[track_caller]
    pub fn unwrap_funcref(&self) -> Option<&Func> {
        self.funcref().expect("expected a funcref value")
    }
    /// The `externref` (`None` for null).
    ///
    /// # Panics
    /// If the value is not an `externref`.
    #[track_caller]
    pub fn unwrap_externref(&self) -> Option<&ExternRef> {
        self.externref().expect("expected an externref value")
    }
    /// The `v128`, if the value is one.
    pub fn v128(&self) -> Option<V128> {
        if let Val::V128(v) = self {
            Some(*v)
        } else {
            None
        }
    }
    /// The `funcref` (`Some(None)` for null), if the value is one.
    pub fn funcref(&self) -> Option<Option<&Func>> {
        if let Val::FuncRef(f) = self {
            Some(f.as_ref())
        } else {
            None
        }
    }
    /// The `externref` (`Some(None)` for null), if the value is one.
    pub fn externref(&self) -> Option<Option<&ExternRef>> {
        if let Val::ExternRef(e) = self {
            Some(e.as_ref())
        } else {
            None
        }
    }

    /// The `i32`, if the value is one.
    pub fn i32(&self) -> Option<i32> {
        if let Val::I32(v) = self {
            Some(*v)
        } else {
            None
        }
    }
    /// The `i64`, if the value is one.
    pub fn i64(&self) -> Option<i64> {
        if let Val::I64(v) = self {
            Some(*v)
        } else {
            None
        }
    }
    /// The `f32`, if the value is one.
    pub fn f32(&self) -> Option<f32> {
        if let Val::F32(v) = self {
            Some(f32::from_bits(*v))
        } else {
            None
        }
    }
    /// The `f64`, if the value is one.
    pub fn f64(&self) -> Option<f64> {
        if let Val::F64(v) = self {
            Some(f64::from_bits(*v))
        } else {
            None
        }
    }

    /// Whether this value may be used where `ty` is expected.
    ///
    /// # Panics
    /// If the value holds a handle (a function or an externref) of another
    /// store: that is a misuse of handles, not a type error.
    pub(crate) fn matches(&self, store: &StoreOpaque, ty: &ValType) -> bool {
        match (self, ty) {
            (Val::I32(_), ValType::I32) | (Val::I64(_), ValType::I64) => true,
            (Val::F32(_), ValType::F32) | (Val::F64(_), ValType::F64) | (Val::V128(_), ValType::V128) => true,
            (Val::FuncRef(None), ValType::Ref(r)) => r.nullable && r.is_func(),
            (Val::ExnRef(None), ValType::Ref(r)) => r.nullable && r.is_exn(),
            (Val::ExternRef(None), ValType::Ref(r)) => r.nullable && !r.is_func() && !r.is_exn() && !r.is_cont(),
            (Val::ContRef(None), ValType::Ref(r)) => r.nullable && r.is_cont(),
            (Val::ContRef(Some(c)), ValType::Ref(r)) => {
                store.check(c.store_id);
                match r.heap {
                    HeapType::Cont => true,
                    HeapType::Concrete(id) => c.ty == Some(id),
                    _ => false,
                }
            }
            (Val::ExnRef(Some(e)), ValType::Ref(r)) => {
                store.check(e.store_id);
                r.heap == HeapType::Exn
            }
            (Val::FuncRef(Some(f)), ValType::Ref(r)) => {
                store.check(f.store_id);
                match r.heap {
                    HeapType::Func => true,
                    HeapType::Concrete(id) => f.type_id() == id,
                    _ => false,
                }
            }
            (Val::ExternRef(Some(e)), ValType::Ref(r)) => {
                store.check(e.store_id);
                r.heap == HeapType::Extern
            }
            _ => false,
        }
    }

    /// The value in a raw slot, to be read by compiled code of `store`.
    ///
    /// # Panics
    /// If the value holds a handle of another store.
    pub(crate) fn to_raw(self, store: &StoreOpaque) -> ValRaw {
        match self {
            Val::I32(v) => ValRaw::i32(v),
            Val::I64(v) => ValRaw::i64(v),
            Val::F32(v) => ValRaw::f32(v),
            Val::F64(v) => ValRaw::f64(v),
            Val::V128(v) => ValRaw::v128(v.0),
            Val::FuncRef(f) => ValRaw::anyref(f.map_or(0, |f| {
                store.check(f.store_id);
                f.func_ref as u64
            })),
            Val::ExternRef(e) => ValRaw::anyref(e.map_or(0, |e| {
                store.check(e.store_id);
                e.to_raw()
            })),
            Val::ExnRef(e) => ValRaw::anyref(e.map_or(0, |e| e.to_raw(store) as u64)),
            Val::ContRef(c) => ValRaw::anyref(c.map_or(0, |c| c.to_raw(store))),
        }
    }

    pub(crate) fn from_raw(store: &StoreOpaque, raw: ValRaw, ty: &ValType) -> Val {
        match ty {
            ValType::I32 => Val::I32(raw.get_i32()),
            ValType::I64 => Val::I64(raw.get_i64()),
            ValType::F32 => Val::F32(raw.get_f32()),
            ValType::F64 => Val::F64(raw.get_f64()),
            ValType::V128 => Val::V128(V128(raw.get_v128())),
            ValType::Ref(r) => Val::from_raw_ref(store, raw.get_ref(), r),
        }
    }

    pub(crate) fn from_raw_ref(store: &StoreOpaque, raw: u64, r: &RefType) -> Val {
        if r.is_func() {
            Val::FuncRef((raw != 0).then_some(Func { store_id: store.id, func_ref: raw as *const VMFuncRef }))
        } else if r.is_exn() {
            Val::ExnRef(crate::ExnRef::from_raw(store, raw as usize))
        } else if r.is_cont() {
            let ty = match r.heap {
                HeapType::Concrete(id) => Some(id),
                _ => None,
            };
            Val::ContRef(crate::Continuation::from_raw(store, raw, ty))
        } else {
            Val::ExternRef(ExternRef::from_raw(store, raw))
        }
    }
}

/// A reference: what a table holds. A [`Val`] narrowed to the reference
/// types, as wasmtime's `Ref` (Weft's references need no rooting: see
/// [`Rooted`]).
///
/// # Example
///
/// ```
/// use weft::{Engine, Func, Ref, Store};
///
/// let mut store = Store::new(&Engine::default(), ());
/// let f = Func::wrap(&mut store, || {});
/// let r: Ref = f.into();
/// assert!(r.unwrap_func().is_some());
/// assert!(Ref::Func(None).is_null());
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Ref {
    /// A `funcref` (`None` for null).
    Func(Option<Func>),
    /// An `externref` (`None` for null).
    Extern(Option<ExternRef>),
    /// An `exnref` (`None` for null).
    Exn(Option<crate::ExnRef>),
    /// A continuation reference (`None` for null).
    Cont(Option<crate::Continuation>),
}

impl Ref {
    /// Whether the reference is null.
    pub fn is_null(&self) -> bool {
        matches!(self, Ref::Func(None) | Ref::Extern(None) | Ref::Exn(None) | Ref::Cont(None))
    }
    /// The function (`Some(None)` for null), if this is a `funcref`.
    pub fn as_func(&self) -> Option<Option<&Func>> {
        if let Ref::Func(f) = self {
            Some(f.as_ref())
        } else {
            None
        }
    }
    /// The externref (`Some(None)` for null), if this is an `externref`.
    pub fn as_extern(&self) -> Option<Option<&ExternRef>> {
        if let Ref::Extern(e) = self {
            Some(e.as_ref())
        } else {
            None
        }
    }
    /// The function (`None` for null).
    ///
    /// # Panics
    /// If this is not a `funcref`.
    #[track_caller]
    pub fn unwrap_func(&self) -> Option<&Func> {
        self.as_func().expect("expected a funcref")
    }
    /// The externref (`None` for null).
    ///
    /// # Panics
    /// If this is not an `externref`.
    #[track_caller]
    pub fn unwrap_extern(&self) -> Option<&ExternRef> {
        self.as_extern().expect("expected an externref")
    }
}

impl From<Ref> for Val {
    fn from(r: Ref) -> Val {
        match r {
            Ref::Func(f) => Val::FuncRef(f),
            Ref::Extern(e) => Val::ExternRef(e),
            Ref::Exn(e) => Val::ExnRef(e),
            Ref::Cont(c) => Val::ContRef(c),
        }
    }
}
impl From<Option<Func>> for Ref {
    fn from(f: Option<Func>) -> Ref {
        Ref::Func(f)
    }
}
impl From<Func> for Ref {
    fn from(f: Func) -> Ref {
        Ref::Func(Some(f))
    }
}
impl From<Option<ExternRef>> for Ref {
    fn from(e: Option<ExternRef>) -> Ref {
        Ref::Extern(e)
    }
}
impl From<ExternRef> for Ref {
    fn from(e: ExternRef) -> Ref {
        Ref::Extern(Some(e))
    }
}

/// A GC reference kept alive for the host. Weft's references need no
/// collector (functions and externrefs live as long as their store), so a
/// rooted reference is the reference itself; the alias lets code written for
/// wasmtime's `Rooted<ExternRef>` compile unchanged.
pub type Rooted<T> = T;

impl Val {
    /// The reference, if the value is one.
    pub fn ref_(&self) -> Option<Ref> {
        match *self {
            Val::FuncRef(f) => Some(Ref::Func(f)),
            Val::ExternRef(e) => Some(Ref::Extern(e)),
            Val::ExnRef(e) => Some(Ref::Exn(e)),
            Val::ContRef(c) => Some(Ref::Cont(c)),
            _ => None,
        }
    }
}

impl From<Option<Func>> for Val {
    fn from(f: Option<Func>) -> Val {
        Val::FuncRef(f)
    }
}
impl From<Func> for Val {
    fn from(f: Func) -> Val {
        Val::FuncRef(Some(f))
    }
}
impl From<Option<ExternRef>> for Val {
    fn from(e: Option<ExternRef>) -> Val {
        Val::ExternRef(e)
    }
}
impl From<ExternRef> for Val {
    fn from(e: ExternRef) -> Val {
        Val::ExternRef(Some(e))
    }
}
impl From<V128> for Val {
    fn from(v: V128) -> Val {
        Val::V128(v)
    }
}

/// A `v128` value: 128 bits, lane 0 in the least significant bits (the
/// little-endian order of Wasm memory).
///
/// # Example
///
/// ```
/// use weft::{Engine, Instance, Module, Store, V128};
///
/// let engine = Engine::default();
/// let module = Module::new(&engine, r#"(module (func (export "add") (param v128 v128) (result v128)
///     (i32x4.add (local.get 0) (local.get 1))))"#)?;
/// let mut store = Store::new(&engine, ());
/// let add = Instance::new(&mut store, &module, &[])?.get_typed_func::<(V128, V128), V128>(&mut store, "add")?;
/// let r = add.call(&mut store, (V128::from(0x1_00000002u128), V128::from(0x3_00000004u128)))?;
/// assert_eq!(r.as_u128(), 0x4_00000006);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct V128(u128);

impl V128 {
    /// The bits, as an integer.
    pub fn as_u128(&self) -> u128 {
        self.0
    }
}

impl From<u128> for V128 {
    fn from(v: u128) -> V128 {
        V128(v)
    }
}

impl From<V128> for u128 {
    fn from(v: V128) -> u128 {
        v.0
    }
}
impl From<i32> for Val {
    fn from(v: i32) -> Val {
        Val::I32(v)
    }
}
impl From<i64> for Val {
    fn from(v: i64) -> Val {
        Val::I64(v)
    }
}
impl From<f32> for Val {
    fn from(v: f32) -> Val {
        Val::F32(v.to_bits())
    }
}
impl From<f64> for Val {
    fn from(v: f64) -> Val {
        Val::F64(v.to_bits())
    }
}

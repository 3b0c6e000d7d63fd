//! Exceptions as the host sees them: [`ExnRef`] (an exception object, which
//! the host can create, inspect and throw), its type [`ExnType`], and the
//! error [`ThrownException`] that carries an exception across the boundary
//! between Wasm and the host, in the shape of wasmtime's API.
//!
//! An exception that escapes Wasm makes the call fail with
//! [`ThrownException`] and becomes the store's *pending exception*, which
//! [`Store::take_pending_exception`](crate::Store::take_pending_exception)
//! returns. A host function throws into its Wasm caller by returning the
//! error of [`Store::throw`](crate::Store::throw) (or [`Caller::throw`]):
//! Wasm handlers can then catch it; a host function that passes a
//! [`ThrownException`] from a nested call on (with `?`) passes the exception
//! on to its own caller. Traps are never exceptions: Wasm cannot catch them.
//!
//! # Lifetime
//!
//! An [`ExnRef`] the host holds keeps its exception alive until the host
//! throws it or the store is dropped. Exceptions only Wasm refers to are
//! freed when nothing refers to them any more.
//!
//! # Example
//!
//! ```
//! use weft::{Engine, ExnRef, ExnRefPre, ExnType, FuncType, Instance, Module, Store, Tag, TagType, ThrownException, Val, ValType};
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"(module
//!     (import "host" "tag" (tag $e (param i32)))
//!     (func (export "fail") (param i32) (throw $e (local.get 0))))"#)?;
//! let mut store = Store::new(&engine, ());
//! let ty = TagType::new(FuncType::new(&engine, [ValType::I32], []));
//! let tag = Tag::new(&mut store, &ty)?;
//! let instance = Instance::new(&mut store, &module, &[tag.into()])?;
//! let fail = instance.get_typed_func::<i32, ()>(&mut store, "fail")?;
//! let err = fail.call(&mut store, 42).unwrap_err();
//! assert!(err.is::<ThrownException>());
//! let exn = store.take_pending_exception().expect("the exception is pending");
//! assert_eq!(exn.tag(&store)?, tag);
//! assert_eq!(exn.field(&store, 0)?.unwrap_i32(), 42);
//!
//! // The host can make its own and throw them into Wasm.
//! let pre = ExnRefPre::new(&mut store, ExnType::from_tag_type(&ty)?);
//! let mine = ExnRef::new(&mut store, &pre, &tag, &[Val::I32(7)])?;
//! assert_eq!(mine.fields(&store)?.next().unwrap().unwrap_i32(), 7);
//! # Ok::<(), weft::Error>(())
//! ```
//!
//! [`Caller::throw`]: crate::Caller::throw

pub use crate::runtime::exception::ThrownException;
use crate::store::{AsContext, AsContextMut, StoreOpaque};
use crate::types::{FuncType, TagType};
use crate::values::{Val, ValRaw};
use crate::Tag;

/// An exception object: a tag and the values of its payload.
///
/// A handle: copying it does not copy the exception. See the
/// [module documentation](self) for how long the exception lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExnRef {
    pub(crate) store_id: u64,
    ptr: usize,
}

/// The type of an exception: that of its tag's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExnType {
    ty: FuncType,
}

impl ExnType {
    /// The type of exceptions of tags of type `ty`.
    ///
    /// # Errors
    /// If the tag type has results: such tags are for stack switching.
    pub fn from_tag_type(ty: &TagType) -> crate::Result<ExnType> {
        if !ty.ty().results().is_empty() {
            anyhow::bail!("a tag with results (for stack switching) cannot make exceptions");
        }
        Ok(ExnType { ty: ty.ty().clone() })
    }
    /// The payload's types, as the parameters of a function type.
    pub fn ty(&self) -> &FuncType {
        &self.ty
    }
}

/// What [`ExnRef::new`] allocates with (wasmtime's pre-registered allocator
/// type; Weft needs nothing prepared, but keeps the shape).
#[derive(Debug, Clone)]
pub struct ExnRefPre {
    store_id: u64,
    _ty: ExnType,
}

impl ExnRefPre {
    /// Prepares to allocate exceptions of type `ty` in `store`.
    pub fn new(store: impl AsContextMut, ty: ExnType) -> ExnRefPre {
        ExnRefPre { store_id: store.as_context().inner.opaque.id, _ty: ty }
    }
}

impl ExnRef {
    /// A new exception of `tag` with payload `fields`, which the host holds.
    ///
    /// # Errors
    /// Fails if the fields do not match the tag's payload type.
    ///
    /// # Panics
    /// If `tag`, `allocator` or a reference among the fields belongs to
    /// another store.
    pub fn new(mut store: impl AsContextMut, allocator: &ExnRefPre, tag: &Tag, fields: &[Val]) -> crate::Result<ExnRef> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(allocator.store_id);
        s.check(tag.store_id);
        let ty = s.engine.func_type(s.tags[tag.index].type_id);
        if fields.len() != ty.params().len() {
            anyhow::bail!("the tag's payload has {} values, got {}", ty.params().len(), fields.len());
        }
        for (i, (v, t)) in fields.iter().zip(ty.params()).enumerate() {
            if !v.matches(s, t) {
                anyhow::bail!("field {i} does not match the payload type {t}");
            }
        }
        // Converted (and checked) before the allocation, which may collect.
        let raw: Vec<ValRaw> = fields.iter().map(|v| v.to_raw(s)).collect();
        let ptr = crate::runtime::exception::allocate_with_payload(s, tag.index as u32, &raw);
        s.exceptions.pin(ptr);
        Ok(ExnRef { store_id: s.id, ptr })
    }

    /// A handle on the exception object at `raw` (0 for null), which the
    /// host now holds.
    pub(crate) fn from_raw(store: &StoreOpaque, raw: usize) -> Option<ExnRef> {
        (raw != 0).then(|| {
            store.exceptions.pin(raw);
            ExnRef { store_id: store.id, ptr: raw }
        })
    }

    /// The object's address, for compiled code of `store`.
    ///
    /// # Panics
    /// If the handle belongs to another store, or its exception was freed
    /// (the host threw it, and nothing kept it).
    pub(crate) fn to_raw(self, store: &StoreOpaque) -> usize {
        store.check(self.store_id);
        assert!(store.exceptions.is_live(self.ptr), "exception used after it was thrown and freed");
        self.ptr
    }

    /// The exception's tag.
    ///
    /// # Errors
    /// Never with Weft; the `Result` is wasmtime's shape.
    ///
    /// # Panics
    /// As for the other methods: a handle of another store, or of a freed exception.
    pub fn tag(&self, store: impl AsContext) -> crate::Result<Tag> {
        let s = &store.as_context().inner.opaque;
        let ptr = self.to_raw(s);
        Ok(Tag { store_id: s.id, index: s.exceptions.tag(ptr) as usize })
    }

    /// The exception's type (its tag's payload).
    ///
    /// # Errors
    /// Never with Weft; the `Result` is wasmtime's shape.
    pub fn ty(&self, store: impl AsContext) -> crate::Result<ExnType> {
        let tag = self.tag(&store)?;
        Ok(ExnType { ty: tag.ty(&store).ty().clone() })
    }

    /// The payload's values.
    ///
    /// # Errors
    /// Never with Weft; the `Result` is wasmtime's shape.
    pub fn fields(&self, store: impl AsContext) -> crate::Result<std::vec::IntoIter<Val>> {
        let s = &store.as_context().inner.opaque;
        let ptr = self.to_raw(s);
        let ty = s.engine.func_type(s.tags[s.exceptions.tag(ptr) as usize].type_id);
        let payload = s.exceptions.payload(ptr);
        let vals: Vec<Val> = payload.iter().zip(ty.params()).map(|(raw, t)| Val::from_raw(s, *raw, t)).collect();
        Ok(vals.into_iter())
    }

    /// Payload value `index`.
    ///
    /// # Errors
    /// If the payload has no such value.
    pub fn field(&self, store: impl AsContext, index: usize) -> crate::Result<Val> {
        let n = self.fields(&store)?.len();
        self.fields(&store)?.nth(index).ok_or_else(|| anyhow::anyhow!("field index {index} out of bounds for a payload of {n} values"))
    }
}

impl StoreOpaque {
    /// Makes `exn` the pending exception; the host gives its hold up.
    pub(crate) fn throw_exn(&mut self, exn: ExnRef) -> ThrownException {
        let ptr = exn.to_raw(self);
        self.exceptions.unpin(ptr);
        self.exceptions.pending = ptr;
        ThrownException
    }

    /// Takes the pending exception, which the host then holds.
    pub(crate) fn take_pending(&mut self) -> Option<ExnRef> {
        let ptr = std::mem::take(&mut self.exceptions.pending);
        ExnRef::from_raw(self, ptr)
    }
}

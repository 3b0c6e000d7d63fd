//! Memories, tables and globals as host handles, and [`Extern`], the union of
//! everything a module can import or export.

use crate::func::Func;
use crate::runtime::memory::{LinearMemory, MemoryPlan, WASM_PAGE_SIZE};
use crate::runtime::table::TableData;
use crate::store::{AsContext, AsContextMut, GlobalEntry, MemoryEntry, StoreOpaque};
use crate::types::{ExternType, GlobalType, MemoryType, Mutability, TableType};
use crate::values::{Ref, Val};
use crate::vmctx::VMGlobal;

/// Something that can be imported or exported.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Extern {
    /// A function.
    Func(Func),
    /// A linear memory.
    Memory(Memory),
    /// A table.
    Table(Table),
    /// A global.
    Global(Global),
    /// An exception tag.
    Tag(Tag),
}

impl Extern {
    /// The function, if this is one.
    pub fn into_func(self) -> Option<Func> {
        if let Extern::Func(f) = self {
            Some(f)
        } else {
            None
        }
    }
    /// The memory, if this is one.
    pub fn into_memory(self) -> Option<Memory> {
        if let Extern::Memory(m) = self {
            Some(m)
        } else {
            None
        }
    }
    /// The table, if this is one.
    pub fn into_table(self) -> Option<Table> {
        if let Extern::Table(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The global, if this is one.
    pub fn into_global(self) -> Option<Global> {
        if let Extern::Global(g) = self {
            Some(g)
        } else {
            None
        }
    }
    /// The tag, if this is one.
    pub fn into_tag(self) -> Option<Tag> {
        if let Extern::Tag(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The type of this item.
    pub fn ty(&self, store: impl AsContext) -> ExternType {
        match self {
            Extern::Func(f) => ExternType::Func(f.ty(store)),
            Extern::Memory(m) => ExternType::Memory(m.ty(store)),
            Extern::Table(t) => ExternType::Table(t.ty(store)),
            Extern::Global(g) => ExternType::Global(g.ty(store)),
            Extern::Tag(t) => ExternType::Tag(t.ty(store)),
        }
    }
}

impl From<Func> for Extern {
    fn from(f: Func) -> Extern {
        Extern::Func(f)
    }
}
impl From<Memory> for Extern {
    fn from(m: Memory) -> Extern {
        Extern::Memory(m)
    }
}
impl From<Table> for Extern {
    fn from(t: Table) -> Extern {
        Extern::Table(t)
    }
}
impl From<Tag> for Extern {
    fn from(t: Tag) -> Extern {
        Extern::Tag(t)
    }
}
impl From<Global> for Extern {
    fn from(g: Global) -> Extern {
        Extern::Global(g)
    }
}

/// A linear memory in a store.
///
/// # Example
///
/// ```
/// use weft::{Engine, Memory, MemoryType, Store};
///
/// let mut store = Store::new(&Engine::default(), ());
/// let memory = Memory::new(&mut store, MemoryType::new(1, Some(2)))?;
/// memory.write(&mut store, 16, b"weft")?;
/// assert_eq!(&memory.data(&store)[16..20], b"weft");
/// assert_eq!(memory.grow(&mut store, 1)?, 1);
/// assert!(memory.grow(&mut store, 1).is_err(), "past the maximum");
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    pub(crate) store_id: u64,
    pub(crate) index: usize,
}

impl Memory {
    /// Creates a memory of type `ty` in `store`.
    ///
    /// # Example
    ///
    /// ```
    /// let engine = weft::Engine::default();
    /// let mut store = weft::Store::new(&engine, ());
    /// let mem = weft::Memory::new(&mut store, weft::MemoryType::new(1, Some(2))).unwrap();
    /// mem.write(&mut store, 0, b"hi").unwrap();
    /// assert_eq!(&mem.data(&store)[..2], b"hi");
    /// assert_eq!(mem.grow(&mut store, 1).unwrap(), 1);
    /// ```
    pub fn new(mut store: impl AsContextMut, ty: MemoryType) -> anyhow::Result<Memory> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check_counts(0, 1, 0)?;
        s.check_new_memory(ty.minimum, ty.maximum)?;
        let guarded = s.engine.config().tunables.guarded_memory32;
        let plan = MemoryPlan { minimum: ty.minimum, maximum: ty.maximum, memory64: ty.memory64, guarded };
        let mem = LinearMemory::new(plan, None, None)?;
        let index = s.push_memory(mem, ty)?;
        Ok(Memory { store_id: s.id, index })
    }

    fn entry<'a>(&self, s: &'a StoreOpaque) -> &'a MemoryEntry {
        s.check(self.store_id);
        &s.memories[self.index]
    }

    /// The memory's type as declared (its current size is [`size`](Self::size)).
    pub fn ty(&self, store: impl AsContext) -> MemoryType {
        let ctx = store.as_context();
        self.entry(&ctx.inner.opaque).ty
    }
    /// Size in pages.
    pub fn size(&self, store: impl AsContext) -> u64 {
        self.data_size(store) as u64 / WASM_PAGE_SIZE
    }
    /// Size in bytes.
    pub fn data_size(&self, store: impl AsContext) -> usize {
        let ctx = store.as_context();
        self.entry(&ctx.inner.opaque).mem.byte_size() as usize
    }
    /// The memory's contents, read-only.
    ///
    /// Reading does not count as writing: a pooled slot whose tenant was only
    /// read by the host (and never ran Wasm) is reused without restoring it.
    /// Writing through a pointer taken from this slice is undefined behaviour;
    /// use [`data_mut`](Self::data_mut), [`write`](Self::write) or
    /// [`data_ptr`](Self::data_ptr), which mark the memory written.
    pub fn data<'a, S: AsContext>(&self, store: &'a S) -> &'a [u8] {
        let ctx = store.as_context();
        self.entry(&ctx.inner.opaque).mem.data()
    }
    /// The memory's contents, mutably.
    pub fn data_mut<'a, S: AsContextMut>(&self, store: &'a mut S) -> &'a mut [u8] {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(self.store_id);
        s.memories[self.index].mem.data_mut()
    }
    /// The memory's contents and the store's host data, both mutably (for host
    /// functions that read guest memory while updating their own state).
    pub fn data_and_store_mut<'a, T: 'a, S: AsContextMut<Data = T>>(&self, store: &'a mut S) -> (&'a mut [u8], &'a mut T) {
        let ctx = store.as_context_mut();
        let inner = ctx.inner;
        inner.opaque.check(self.store_id);
        (inner.opaque.memories[self.index].mem.data_mut(), &mut inner.data)
    }
    /// Base address of the memory. It never moves while the store lives.
    pub fn data_ptr(&self, store: impl AsContext) -> *mut u8 {
        let ctx = store.as_context();
        let mem = &self.entry(&ctx.inner.opaque).mem;
        // The host may write through it.
        mem.mark_written();
        mem.def.base
    }
    /// Copies bytes out of the memory at `offset`.
    ///
    /// # Errors
    /// Fails if the range is out of bounds.
    pub fn read(&self, store: impl AsContext, offset: usize, buf: &mut [u8]) -> anyhow::Result<()> {
        let ctx = store.as_context();
        let data = self.entry(&ctx.inner.opaque).mem.data();
        let src = offset.checked_add(buf.len()).and_then(|end| data.get(offset..end));
        buf.copy_from_slice(src.ok_or_else(|| anyhow::anyhow!("out of bounds memory access"))?);
        Ok(())
    }
    /// Copies bytes into the memory at `offset`.
    ///
    /// # Errors
    /// Fails if the range is out of bounds.
    pub fn write(&self, mut store: impl AsContextMut, offset: usize, buf: &[u8]) -> anyhow::Result<()> {
        let data = self.data_mut(&mut store);
        let dst = offset.checked_add(buf.len()).and_then(|end| data.get_mut(offset..end));
        dst.ok_or_else(|| anyhow::anyhow!("out of bounds memory access"))?.copy_from_slice(buf);
        Ok(())
    }
    /// Grows by `delta` pages; returns the previous size in pages.
    ///
    /// # Errors
    /// Fails if the memory would exceed its maximum, or the store's
    /// [`ResourceLimiter`](crate::ResourceLimiter) refuses.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64) -> anyhow::Result<u64> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(self.store_id);
        s.grow_memory(self.index, delta)?.ok_or_else(|| anyhow::anyhow!("failed to grow memory by {delta} pages"))
    }
}

/// A table in a store.
///
/// # Example
///
/// ```
/// use weft::{Engine, Func, Ref, RefType, Store, Table, TableType};
///
/// let mut store = Store::new(&Engine::default(), ());
/// let table = Table::new(&mut store, TableType::new(RefType::FUNCREF, 1, None), Ref::Func(None))?;
/// let answer = Func::wrap(&mut store, || 42i32);
/// table.set(&mut store, 0, answer.into())?;
/// assert_eq!(table.grow(&mut store, 2, Ref::Func(None))?, 1);
/// assert_eq!(table.size(&store), 3);
/// assert!(table.get(&mut store, 0).unwrap().unwrap_func().is_some());
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table {
    pub(crate) store_id: u64,
    pub(crate) index: usize,
}

impl Table {
    /// Creates a table of type `ty` with every element set to `init`.
    ///
    /// # Errors
    /// If `init` does not match the element type, or the table is too large.
    ///
    /// # Panics
    /// If `init` is a reference of another store.
    pub fn new(mut store: impl AsContextMut, ty: TableType, init: Ref) -> anyhow::Result<Table> {
        let init = Val::from(init);
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        if !init.matches(s, &crate::ValType::Ref(ty.element)) {
            anyhow::bail!("table initial value does not match the element type");
        }
        s.check_counts(0, 0, 1)?;
        s.check_new_table(ty.minimum, ty.maximum)?;
        let table = TableData::new(ty, init.to_raw(s).get_ref(), None)?;
        s.tables.push(table);
        Ok(Table { store_id: s.id, index: s.tables.len() - 1 })
    }
    fn data<'a>(&self, s: &'a StoreOpaque) -> &'a TableData {
        s.check(self.store_id);
        &s.tables[self.index]
    }
    /// The table's type as declared (its current size is [`size`](Self::size)).
    pub fn ty(&self, store: impl AsContext) -> TableType {
        let ctx = store.as_context();
        self.data(&ctx.inner.opaque).ty
    }
    /// Number of elements.
    pub fn size(&self, store: impl AsContext) -> u64 {
        let ctx = store.as_context();
        self.data(&ctx.inner.opaque).size()
    }
    /// Element `index`, or `None` if out of bounds.
    pub fn get(&self, mut store: impl AsContextMut, index: u64) -> Option<Ref> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(self.store_id);
        if index >= s.tables[self.index].size() {
            return None;
        }
        let raw = crate::runtime::instance::materialize(s, self.index, index as usize);
        Val::from_raw_ref(s, raw, &s.tables[self.index].ty.element).ref_()
    }
    /// Sets element `index`.
    ///
    /// # Errors
    /// Fails if out of bounds or if `val` has the wrong type.
    ///
    /// # Panics
    /// If `val` is a reference of another store.
    pub fn set(&self, mut store: impl AsContextMut, index: u64, val: Ref) -> anyhow::Result<()> {
        let val = Val::from(val);
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(self.store_id);
        let elem = s.tables[self.index].ty.element;
        if !val.matches(s, &crate::ValType::Ref(elem)) {
            anyhow::bail!("value does not match the table's element type");
        }
        let raw = val.to_raw(s).get_ref();
        let slot = s.tables[self.index].elements_mut().get_mut(index as usize).ok_or_else(|| anyhow::anyhow!("out of bounds table access"))?;
        *slot = raw;
        Ok(())
    }
    /// Grows by `delta` elements set to `init`; returns the previous size.
    ///
    /// # Errors
    /// If `init` does not match the element type, or the table cannot grow
    /// by `delta`.
    ///
    /// # Panics
    /// If `init` is a reference of another store.
    pub fn grow(&self, mut store: impl AsContextMut, delta: u64, init: Ref) -> anyhow::Result<u64> {
        let init = Val::from(init);
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(self.store_id);
        if !init.matches(s, &crate::ValType::Ref(s.tables[self.index].ty.element)) {
            anyhow::bail!("table initial value does not match the element type");
        }
        let raw = init.to_raw(s).get_ref();
        s.grow_table(self.index, delta, raw)?.ok_or_else(|| anyhow::anyhow!("failed to grow table by {delta}"))
    }
}

/// A global in a store.
///
/// # Example
///
/// ```
/// use weft::{Engine, Global, GlobalType, Mutability, Store, Val, ValType};
///
/// let mut store = Store::new(&Engine::default(), ());
/// let global = Global::new(&mut store, GlobalType::new(ValType::I64, Mutability::Var), Val::I64(1))?;
/// global.set(&mut store, Val::I64(2))?;
/// assert_eq!(global.get(&mut store).unwrap_i64(), 2);
/// assert!(global.set(&mut store, Val::I32(3)).is_err(), "a value of the wrong type");
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Global {
    pub(crate) store_id: u64,
    pub(crate) index: usize,
}

impl Global {
    /// Creates a global of type `ty` holding `val`.
    pub fn new(mut store: impl AsContextMut, ty: GlobalType, val: Val) -> anyhow::Result<Global> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        if !val.matches(s, &ty.content) {
            anyhow::bail!("global value does not match its type");
        }
        let raw = val.to_raw(s);
        let mut owned = Box::new(VMGlobal { bits: [raw.get_v128() as u64, (raw.get_v128() >> 64) as u64] });
        let ptr: *mut VMGlobal = &mut *owned;
        s.globals.push(GlobalEntry { ty, ptr, _owned: Some(owned) });
        Ok(Global { store_id: s.id, index: s.globals.len() - 1 })
    }
    fn entry<'a>(&self, s: &'a StoreOpaque) -> &'a GlobalEntry {
        s.check(self.store_id);
        &s.globals[self.index]
    }
    /// The global's type.
    pub fn ty(&self, store: impl AsContext) -> GlobalType {
        let ctx = store.as_context();
        self.entry(&ctx.inner.opaque).ty
    }
    /// The current value.
    pub fn get(&self, mut store: impl AsContextMut) -> Val {
        let ctx = store.as_context_mut();
        let s = &ctx.inner.opaque;
        let e = self.entry(s);
        // SAFETY: the global's storage lives as long as the store.
        let bits = unsafe { (*e.ptr).bits };
        Val::from_raw(s, crate::values::ValRaw::v128(bits[0] as u128 | (bits[1] as u128) << 64), &e.ty.content)
    }
    /// Sets the value.
    ///
    /// # Errors
    /// Fails for immutable globals and values of the wrong type.
    pub fn set(&self, mut store: impl AsContextMut, val: Val) -> anyhow::Result<()> {
        let ctx = store.as_context_mut();
        let s = &ctx.inner.opaque;
        let e = self.entry(s);
        if e.ty.mutability != Mutability::Var {
            anyhow::bail!("cannot set an immutable global");
        }
        if !val.matches(s, &e.ty.content) {
            anyhow::bail!("value does not match the global's type");
        }
        let v = val.to_raw(s).get_v128();
        // SAFETY: as in `get`.
        unsafe { (*e.ptr).bits = [v as u64, (v >> 64) as u64] };
        Ok(())
    }
}

/// An exception tag in a store: an identity with a payload type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tag {
    pub(crate) store_id: u64,
    pub(crate) index: usize,
}

impl Tag {
    /// Creates a new tag (a new identity) of type `ty`.
    ///
    /// A tag with results is for stack switching: it cannot make exceptions.
    ///
    /// # Errors
    /// None at present (the signature is wasmtime's).
    pub fn new(mut store: impl AsContextMut, ty: &crate::TagType) -> anyhow::Result<Tag> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        let type_id = s.engine.register_type(ty.ty());
        s.tags.push(crate::store::TagEntry { type_id });
        Ok(Tag { store_id: s.id, index: s.tags.len() - 1 })
    }
    /// The tag's type.
    pub fn ty(&self, store: impl AsContext) -> crate::TagType {
        let ctx = store.as_context();
        let s = &ctx.inner.opaque;
        s.check(self.store_id);
        crate::TagType::new((*s.engine.func_type(s.tags[self.index].type_id)).clone())
    }
}

//! Instances: a module's functions, memories, tables and globals, linked to
//! imports and living in a store.

use crate::externals::{Extern, Global, Memory, Table, Tag};
use crate::frontend::{EntityIndex, ImportKind};
use crate::func::{Func, TypedFunc, WasmParams, WasmResults};
use crate::module::Module;
use crate::runtime::instance::{self as rt, InstanceData, InstantiateError, ResolvedImport};
use crate::store::{AsContextMut, StoreOpaque};
use crate::types::{is_subtype, Mutability};
use crate::values::ValRaw;

/// An instantiated module: its own memories, tables and globals, and its
/// exports. A handle into the store that owns it.
///
/// # Example
///
/// ```
/// use weft::{Engine, Instance, Module, Store};
///
/// let engine = Engine::default();
/// let module = Module::new(&engine, r#"(module
///     (global $g (export "counter") (mut i32) (i32.const 0))
///     (func (export "bump") (global.set $g (i32.add (global.get $g) (i32.const 1)))))"#)?;
/// let mut store = Store::new(&engine, ());
/// let instance = Instance::new(&mut store, &module, &[])?;
/// instance.get_typed_func::<(), ()>(&mut store, "bump")?.call(&mut store, ())?;
/// let counter = instance.get_global(&mut store, "counter").unwrap();
/// assert_eq!(counter.get(&mut store).unwrap_i32(), 1);
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instance {
    store_id: u64,
    index: usize,
}

/// The handle of export `index` of an instance.
pub(crate) fn export_of(store: &StoreOpaque, inst: &InstanceData, index: EntityIndex) -> Extern {
    match index {
        EntityIndex::Func(f) => Extern::Func(Func { store_id: store.id, func_ref: inst.func_ref(f) }),
        EntityIndex::Memory(m) => Extern::Memory(Memory { store_id: store.id, index: inst.memories[m as usize] }),
        EntityIndex::Table(t) => Extern::Table(Table { store_id: store.id, index: inst.tables[t as usize] }),
        EntityIndex::Global(g) => Extern::Global(Global { store_id: store.id, index: inst.globals[g as usize] }),
        EntityIndex::Tag(t) => Extern::Tag(Tag { store_id: store.id, index: inst.tags[t as usize] }),
    }
}

fn limits_match(min: u64, max: Option<u64>, want_min: u64, want_max: Option<u64>) -> bool {
    min >= want_min
        && match want_max {
            None => true,
            Some(w) => max.is_some_and(|m| m <= w),
        }
}

impl Instance {
    /// Instantiates `module` with `imports` (one per import, in order) and runs
    /// its start function.
    ///
    /// # Errors
    /// Fails if an import is missing or has the wrong type, if a segment does not
    /// fit (a [`Trap`](crate::Trap)), or if the start function traps.
    pub fn new(mut store: impl AsContextMut, module: &Module, imports: &[Extern]) -> anyhow::Result<Instance> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        if !crate::Engine::same(&s.engine, module.engine()) {
            anyhow::bail!("module and store belong to different engines");
        }
        let info = &module.inner.info;
        if imports.len() != info.imports.len() {
            anyhow::bail!("expected {} imports, got {}", info.imports.len(), imports.len());
        }
        let mut resolved = Vec::with_capacity(imports.len());
        for (import, item) in info.imports.iter().zip(imports) {
            let bad = || anyhow::anyhow!("incompatible import type for `{}::{}`", import.module, import.name);
            let r = match (&import.kind, item) {
                (ImportKind::Func(t), Extern::Func(f)) => {
                    s.check(f.store_id);
                    if f.type_id() != module.inner.type_ids[*t as usize] {
                        return Err(bad());
                    }
                    // SAFETY: the funcref lives as long as the store.
                    ResolvedImport::Func(unsafe { *f.func_ref })
                }
                (ImportKind::Memory(want), Extern::Memory(m)) => {
                    s.check(m.store_id);
                    let e = &s.memories[m.index];
                    let pages = e.mem.byte_size() / crate::runtime::memory::WASM_PAGE_SIZE;
                    if e.ty.memory64 != want.memory64 || !limits_match(pages, e.ty.maximum, want.initial, want.maximum) {
                        return Err(bad());
                    }
                    ResolvedImport::Memory(m.index)
                }
                (ImportKind::Table(want), Extern::Table(t)) => {
                    s.check(t.store_id);
                    let data = &s.tables[t.index];
                    let want_ty = module.table_type(want);
                    if data.ty.element != want_ty.element
                        || data.ty.table64 != want_ty.table64
                        || !limits_match(data.size(), data.ty.maximum, want.initial, want.maximum)
                    {
                        return Err(bad());
                    }
                    ResolvedImport::Table(t.index)
                }
                (ImportKind::Global(want), Extern::Global(g)) => {
                    s.check(g.store_id);
                    let have = s.globals[g.index].ty;
                    let want = module.global_type(want);
                    let ok = have.mutability == want.mutability
                        && match want.mutability {
                            Mutability::Const => is_subtype(&have.content, &want.content),
                            Mutability::Var => have.content == want.content,
                        };
                    if !ok {
                        return Err(bad());
                    }
                    ResolvedImport::Global(g.index)
                }
                (ImportKind::Tag(t), Extern::Tag(tag)) => {
                    s.check(tag.store_id);
                    if s.tags[tag.index].type_id != module.inner.type_ids[*t as usize] {
                        return Err(bad());
                    }
                    ResolvedImport::Tag(tag.index)
                }
                _ => return Err(bad()),
            };
            resolved.push(r);
        }
        let index = match rt::instantiate(s, module, &resolved) {
            Ok(i) => i,
            Err(InstantiateError::Error(e)) => return Err(e),
            Err(InstantiateError::Trap(kind)) => return Err(anyhow::Error::new(kind)),
        };
        let instance = Instance { store_id: s.id, index };
        if let Some(start) = info.start {
            let func = Func { store_id: s.id, func_ref: s.instances[index].func_ref(start) };
            let mut values = [ValRaw::default()];
            // SAFETY: the start function takes and returns nothing.
            unsafe { func.call_raw(s, &mut values)? };
        }
        Ok(instance)
    }

    /// Restores this instance's own memories, tables and globals to the state
    /// they had right after instantiation, and runs the start function again.
    /// Imported objects are not touched.
    ///
    /// Cheaper than dropping the store and instantiating again: memories with a
    /// copy-on-write image are reset with one `madvise` each.
    ///
    /// # Errors
    /// As for instantiation: a segment that does not fit, or a trapping start function.
    pub fn reset(&self, mut store: impl AsContextMut) -> anyhow::Result<()> {
        let ctx = store.as_context_mut();
        let s = &mut ctx.inner.opaque;
        s.check(self.store_id);
        match rt::reset(s, self.index) {
            Ok(()) => {}
            Err(InstantiateError::Error(e)) => return Err(e),
            Err(InstantiateError::Trap(kind)) => return Err(anyhow::Error::new(kind)),
        }
        if let Some(start) = s.instances[self.index].module.inner.info.start {
            let func = Func { store_id: s.id, func_ref: s.instances[self.index].func_ref(start) };
            let mut values = [ValRaw::default()];
            // SAFETY: the start function takes and returns nothing.
            unsafe { func.call_raw(s, &mut values)? };
        }
        Ok(())
    }

    fn data<'a>(&self, s: &'a StoreOpaque) -> &'a InstanceData {
        s.check(self.store_id);
        &s.instances[self.index]
    }

    /// The export called `name`.
    pub fn get_export(&self, mut store: impl AsContextMut, name: &str) -> Option<Extern> {
        let ctx = store.as_context_mut();
        let s = &ctx.inner.opaque;
        let inst = self.data(s);
        let index = *inst.module.inner.info.export_map.get(name)?;
        Some(export_of(s, inst, index))
    }

    /// All exports, in order.
    pub fn exports(&self, mut store: impl AsContextMut) -> Vec<(String, Extern)> {
        let ctx = store.as_context_mut();
        let s = &ctx.inner.opaque;
        let inst = self.data(s);
        inst.module.inner.info.exports.iter().map(|(n, i)| (n.clone(), export_of(s, inst, *i))).collect()
    }

    /// The exported function `name`.
    pub fn get_func(&self, store: impl AsContextMut, name: &str) -> Option<Func> {
        self.get_export(store, name)?.into_func()
    }

    /// The exported function `name` with static types.
    ///
    /// # Errors
    /// Fails if there is no such function or its type differs.
    pub fn get_typed_func<P: WasmParams, R: WasmResults>(&self, mut store: impl AsContextMut, name: &str) -> anyhow::Result<TypedFunc<P, R>> {
        let f = self.get_func(&mut store, name).ok_or_else(|| anyhow::anyhow!("no exported function `{name}`"))?;
        f.typed(&store)
    }

    /// The exported memory `name`.
    pub fn get_memory(&self, store: impl AsContextMut, name: &str) -> Option<Memory> {
        self.get_export(store, name)?.into_memory()
    }
    /// The exported table `name`.
    pub fn get_table(&self, store: impl AsContextMut, name: &str) -> Option<Table> {
        self.get_export(store, name)?.into_table()
    }
    /// The exported global `name`.
    pub fn get_global(&self, store: impl AsContextMut, name: &str) -> Option<Global> {
        self.get_export(store, name)?.into_global()
    }
}

//! The linker: resolves a module's imports by name from host functions and
//! other instances' exports.

use std::collections::HashMap;
use std::sync::Arc;

use crate::externals::Extern;
use crate::func::{Caller, Func, HostFuncContext, IntoFunc};
use crate::instance::Instance;
use crate::module::Module;
use crate::store::{AsContext, AsContextMut};
use crate::types::{ExternType, FuncType};
use crate::values::{Val, ValRaw};
use crate::Engine;

type HostFn<T> = dyn Fn(Caller<'_, T>, &mut [ValRaw]) -> anyhow::Result<()> + Send + Sync;

enum Definition<T: 'static> {
    Extern(Extern),
    /// A host function, created once and shared by every store.
    HostFunc(Arc<HostFuncContext<T>>),
}

impl<T: 'static> Clone for Definition<T> {
    fn clone(&self) -> Self {
        match self {
            Definition::Extern(e) => Definition::Extern(*e),
            Definition::HostFunc(d) => Definition::HostFunc(d.clone()),
        }
    }
}

/// Name-based import resolution.
///
/// # Example
///
/// ```
/// let engine = weft::Engine::default();
/// let mut linker = weft::Linker::<u32>::new(&engine);
/// linker.func_wrap("host", "bump", |mut caller: weft::Caller<'_, u32>, by: u32| {
///     *caller.data_mut() += by;
/// }).unwrap();
/// let module = weft::Module::new(&engine, r#"(module
///     (import "host" "bump" (func $bump (param i32)))
///     (func (export "run") (call $bump (i32.const 5))))"#).unwrap();
/// let mut store = weft::Store::new(&engine, 0u32);
/// let instance = linker.instantiate(&mut store, &module).unwrap();
/// instance.get_typed_func::<(), ()>(&mut store, "run").unwrap().call(&mut store, ()).unwrap();
/// assert_eq!(*store.data(), 5);
/// ```
pub struct Linker<T: 'static> {
    engine: Engine,
    /// Definitions by module name, then field name. Shared with the stores that
    /// instantiated through this linker, which keeps its host functions alive
    /// for them with one reference count instead of one per import.
    defs: Arc<Definitions<T>>,
    allow_shadowing: bool,
}

impl<T: 'static> Linker<T> {
    /// An empty linker for `engine`.
    pub fn new(engine: &Engine) -> Self {
        Linker { engine: engine.clone(), defs: Arc::new(Definitions(HashMap::new())), allow_shadowing: false }
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Whether a later definition may replace an earlier one of the same name.
    pub fn allow_shadowing(&mut self, allow: bool) -> &mut Self {
        self.allow_shadowing = allow;
        self
    }

    fn host_func(&self, ty: FuncType, func: Arc<HostFn<T>>) -> anyhow::Result<Definition<T>> {
        let type_id = self.engine.register_type(&ty);
        let trampolines = self.engine.trampolines(type_id)?;
        Ok(Definition::HostFunc(HostFuncContext::new(self.engine.func_type(type_id), type_id, trampolines, func)))
    }

    fn insert(&mut self, module: &str, name: &str, def: Definition<T>) -> anyhow::Result<&mut Self> {
        let fields = Arc::make_mut(&mut self.defs).0.entry(module.to_string()).or_default();
        if !self.allow_shadowing && fields.contains_key(name) {
            anyhow::bail!("`{module}::{name}` is already defined");
        }
        fields.insert(name.to_string(), def);
        Ok(self)
    }

    /// Defines `module::name` as `item`.
    pub fn define(&mut self, _store: impl AsContext<Data = T>, module: &str, name: &str, item: impl Into<Extern>) -> anyhow::Result<&mut Self> {
        self.insert(module, name, Definition::Extern(item.into()))
    }

    /// Defines a host function from a Rust closure (see [`Func::wrap`]).
    pub fn func_wrap<Params, Results>(&mut self, module: &str, name: &str, func: impl IntoFunc<T, Params, Results>) -> anyhow::Result<&mut Self> {
        let (ty, f) = func.into_func();
        let def = self.host_func(ty, f)?;
        self.insert(module, name, def)
    }

    /// Defines a host function of type `ty` working on `Val` slices (see [`Func::new`]).
    pub fn func_new(
        &mut self,
        module: &str,
        name: &str,
        ty: FuncType,
        func: impl Fn(Caller<'_, T>, &[Val], &mut [Val]) -> anyhow::Result<()> + Send + Sync + 'static,
    ) -> anyhow::Result<&mut Self> {
        let def = self.host_func(ty.clone(), crate::func::host_fn_over_vals(&ty, func))?;
        self.insert(module, name, def)
    }

    /// Defines every export of `instance` under the module name `module`.
    pub fn instance(&mut self, mut store: impl AsContextMut<Data = T>, module: &str, instance: Instance) -> anyhow::Result<&mut Self> {
        for (name, item) in instance.exports(&mut store) {
            self.insert(module, &name, Definition::Extern(item))?;
        }
        Ok(self)
    }

    /// Instantiates `module` in `store` and defines its exports under the
    /// name `module_name`, so that later modules can import them.
    ///
    /// The module is instantiated once, with its imports resolved by this
    /// linker, and its `_initialize` export, if any, is called (a WASI
    /// reactor). Weft differs from wasmtime for commands (modules that export
    /// `_start`): wasmtime wraps each of their exports to instantiate the
    /// module afresh per call, Weft defines the exports of the one instance.
    ///
    /// # Errors
    /// As for [`Linker::instantiate`], or if `_initialize` traps, or if an
    /// export's name is already defined under `module_name`.
    pub fn module(&mut self, mut store: impl AsContextMut<Data = T>, module_name: &str, module: &Module) -> anyhow::Result<&mut Self> {
        let instance = self.instantiate(&mut store, module)?;
        if let Some(init) = instance.get_func(&mut store, "_initialize") {
            init.typed::<(), ()>(&store)?.call(&mut store, ())?;
        }
        self.instance(store, module_name, instance)
    }

    /// The default function of the module defined as `module`: its export
    /// named `""` (the convention of WASI commands' linkers), else `_start`,
    /// else a function that does nothing.
    ///
    /// # Errors
    /// If the export found is not a function.
    pub fn get_default(&self, mut store: impl AsContextMut<Data = T>, module: &str) -> anyhow::Result<Func> {
        for name in ["", "_start"] {
            match self.get(&mut store, module, name) {
                Some(Extern::Func(f)) => return Ok(f),
                Some(_) => anyhow::bail!("`{module}::{name}` is not a function"),
                None => {}
            }
        }
        Ok(Func::wrap(store, || {}))
    }

    /// Defines `as_module::as_name` as whatever `module::name` is defined as.
    ///
    /// # Errors
    /// If `module::name` is not defined, or `as_module::as_name` is (without
    /// shadowing).
    pub fn alias(&mut self, module: &str, name: &str, as_module: &str, as_name: &str) -> anyhow::Result<&mut Self> {
        let def =
            self.defs.0.get(module).and_then(|f| f.get(name)).cloned().ok_or_else(|| anyhow::anyhow!("no item named `{module}::{name}` in the linker"))?;
        self.insert(as_module, as_name, def)
    }

    /// Defines every item of `module` under the module name `as_module` too.
    ///
    /// # Errors
    /// If an item is already defined under `as_module` (without shadowing).
    pub fn alias_module(&mut self, module: &str, as_module: &str) -> anyhow::Result<&mut Self> {
        let items: Vec<(String, Definition<T>)> = self.defs.0.get(module).map(|f| f.iter().map(|(n, d)| (n.clone(), d.clone())).collect()).unwrap_or_default();
        for (name, def) in items {
            self.insert(as_module, &name, def)?;
        }
        Ok(self)
    }

    /// Defines every function import of `module` that this linker does not
    /// define as a function that fails when called, with an error naming the
    /// import (for modules whose unused imports should not stop them from
    /// being instantiated). Imports of other kinds are left undefined.
    ///
    /// # Errors
    /// If a host function cannot be created for an import's type.
    pub fn define_unknown_imports_as_traps(&mut self, module: &Module) -> anyhow::Result<()> {
        for (m, n, ty) in self.undefined_func_imports(module) {
            let what = format!("unknown import: `{m}::{n}` has not been defined");
            self.func_new(&m, &n, ty, move |_, _, _| Err(anyhow::anyhow!("{what}")))?;
        }
        Ok(())
    }

    /// Defines every function import of `module` that this linker does not
    /// define as a function that returns the default (zero or null) value of
    /// each result. Imports of other kinds are left undefined (wasmtime also
    /// creates default tables, memories and globals in `store`; Weft does
    /// not yet).
    ///
    /// # Errors
    /// If an import returns a non-nullable reference, which has no default.
    pub fn define_unknown_imports_as_default_values(&mut self, store: impl AsContextMut<Data = T>, module: &Module) -> anyhow::Result<()> {
        let _ = store;
        for (m, n, ty) in self.undefined_func_imports(module) {
            let defaults = ty
                .results()
                .iter()
                .map(|t| Val::default_for(t).ok_or_else(|| anyhow::anyhow!("`{m}::{n}` returns {t}, which has no default value")))
                .collect::<anyhow::Result<Vec<Val>>>()?;
            self.func_new(&m, &n, ty, move |_, _, results| {
                results.copy_from_slice(&defaults);
                Ok(())
            })?;
        }
        Ok(())
    }

    /// The function imports of `module` this linker does not define.
    fn undefined_func_imports(&self, module: &Module) -> Vec<(String, String, FuncType)> {
        module
            .imports()
            .filter(|i| self.defs.0.get(i.module()).and_then(|f| f.get(i.name())).is_none())
            .filter_map(|i| match i.ty() {
                ExternType::Func(ty) => Some((i.module().to_string(), i.name().to_string(), ty)),
                _ => None,
            })
            .collect()
    }

    /// Looks up `module::name`, creating host functions in `store` as needed.
    ///
    /// # Panics
    /// If `store` belongs to another engine than the linker.
    pub fn get(&self, mut store: impl AsContextMut<Data = T>, module: &str, name: &str) -> Option<Extern> {
        let def = self.defs.0.get(module)?.get(name)?;
        Some(match def {
            Definition::Extern(e) => *e,
            Definition::HostFunc(d) => {
                let mut ctx = store.as_context_mut();
                // A host function's type id means something only in the
                // linker's engine.
                assert!(Engine::same(&self.engine, &ctx.inner.opaque.engine), "linker used with a store of another engine");
                Extern::Func(Func::from_shared_host(&mut ctx, d.clone()))
            }
        })
    }

    /// Resolves `module`'s imports by name once, for many instantiations.
    ///
    /// # Errors
    /// Fails if an import is not defined (the error names it), or if the
    /// module was compiled by another engine.
    pub fn instantiate_pre(&self, module: &Module) -> anyhow::Result<InstancePre<T>> {
        // Host functions' type ids are the linker engine's: another engine's
        // module could match them by number alone.
        if !Engine::same(&self.engine, module.engine()) {
            anyhow::bail!("module and linker belong to different engines");
        }
        let mut imports = Vec::with_capacity(module.inner.info.imports.len());
        for import in &module.inner.info.imports {
            let (m, n) = (import.module.as_str(), import.name.as_str());
            match self.defs.0.get(m).and_then(|f| f.get(n)) {
                Some(Definition::Extern(e)) => imports.push(PreImport::Extern(*e)),
                Some(Definition::HostFunc(d)) => imports.push(PreImport::HostFunc(&d.func_ref)),
                None => anyhow::bail!("unknown import: `{m}::{n}` has not been defined"),
            }
        }
        Ok(InstancePre { module: module.clone(), defs: self.defs.clone(), imports })
    }

    /// Instantiates `module`, resolving every import by name.
    ///
    /// # Errors
    /// Fails if an import is not defined (the error names it) or has the wrong
    /// type, or if instantiation traps.
    pub fn instantiate(&self, store: impl AsContextMut<Data = T>, module: &Module) -> anyhow::Result<Instance> {
        self.instantiate_pre(module)?.instantiate(store)
    }
}

/// A linker's definitions (a newtype so that stores can hold them as `Any`).
struct Definitions<T: 'static>(HashMap<String, HashMap<String, Definition<T>>>);

impl<T: 'static> Clone for Definitions<T> {
    fn clone(&self) -> Self {
        Definitions(self.0.clone())
    }
}

enum PreImport {
    Extern(Extern),
    HostFunc(*const crate::vmctx::VMFuncRef),
}

/// A module with its imports resolved by a [`Linker`]: instantiating it skips
/// the name lookups (see [`Linker::instantiate_pre`]).
pub struct InstancePre<T: 'static> {
    module: Module,
    /// Keeps the host functions of `imports` alive.
    defs: Arc<Definitions<T>>,
    imports: Vec<PreImport>,
}

// SAFETY: the raw pointers point into host function contexts kept alive by
// `defs`, which are Send + Sync.
unsafe impl<T: 'static> Send for InstancePre<T> {}
// SAFETY: as above.
unsafe impl<T: 'static> Sync for InstancePre<T> {}

impl<T: 'static> InstancePre<T> {
    /// The module.
    pub fn module(&self) -> &Module {
        &self.module
    }

    /// Instantiates the module in `store`.
    ///
    /// # Errors
    /// As for [`Linker::instantiate`].
    pub fn instantiate(&self, mut store: impl AsContextMut<Data = T>) -> anyhow::Result<Instance> {
        let ctx = store.as_context_mut();
        let opaque = &mut ctx.inner.opaque;
        let store_id = opaque.id;
        let defs: Arc<dyn std::any::Any + Send + Sync> = self.defs.clone();
        if !opaque.host_funcs.last().is_some_and(|last| Arc::ptr_eq(last, &defs)) {
            opaque.host_funcs.push(defs);
        }
        let imports: Vec<Extern> = self
            .imports
            .iter()
            .map(|i| match i {
                PreImport::Extern(e) => *e,
                PreImport::HostFunc(f) => Extern::Func(Func { store_id, func_ref: *f }),
            })
            .collect();
        Instance::new(&mut store, &self.module, &imports)
    }
}

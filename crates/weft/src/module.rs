//! Compiled modules: the result of reading, validating and compiling a Wasm binary.

use std::sync::Arc;

use crate::compile::{self, CompiledModule};
use crate::engine::Engine;
use crate::error::CompileError;
use crate::frontend::{self, EntityIndex, ImportKind, ModuleInfo};
use crate::runtime::image::{self, ModuleImages};
use crate::translate::TranslateEnv;
use crate::types::{convert_ref_type, convert_val_type, ExportType, ExternType, FuncType, GlobalType, ImportType, MemoryType, Mutability, TableType, TypeId};
use crate::vmctx::VMOffsets;

pub(crate) struct ModuleInner {
    pub engine: Engine,
    pub info: ModuleInfo,
    pub offsets: VMOffsets,
    pub compiled: CompiledModule,
    /// Canonical id of each module type index.
    pub type_ids: Vec<TypeId>,
    /// The same ids as compiled code reads them from the vmctx.
    pub type_ids_raw: Box<[u32]>,
    /// The binary (data segments are read from it).
    pub bytes: Box<[u8]>,
    /// Copy-on-write images of the defined memories.
    pub images: ModuleImages,
    /// The funcrefs instantiation writes: (function index, code offset, type id)
    /// of every defined function whose reference escapes other than through an
    /// active segment into one of the module's own tables (those elements are
    /// initialised lazily, their funcrefs on first use).
    pub eager_funcrefs: Vec<(u32, u32, u32)>,
    /// Per element segment: its items as plain function indices, when every
    /// item is a `ref.func` (the common case), for a tight initialisation loop.
    pub elem_funcs: Vec<Option<Vec<u32>>>,
}

/// A compiled WebAssembly module, ready to be instantiated any number of times.
///
/// Cheap to clone (reference-counted).
///
/// # Example
///
/// ```
/// let engine = weft::Engine::default();
/// let module = weft::Module::new(&engine, r#"(module (func (export "f") (result i32) i32.const 7))"#).unwrap();
/// assert!(module.exports().any(|e| e.name() == "f"));
/// ```
#[derive(Clone)]
pub struct Module {
    pub(crate) inner: Arc<ModuleInner>,
}

/// Functions whose funcref must exist right after instantiation: every escaping
/// function except those only placed by plain `ref.func` runs of active
/// segments into the module's own tables (see [`crate::vmctx::LAZY_FUNCREF_TAG`]).
fn eager_funcs(info: &ModuleInfo, elem_funcs: &[Option<Vec<u32>>]) -> Vec<bool> {
    let mut eager = vec![false; info.funcs.len()];
    let mut mark = |f: u32| eager[f as usize] = true;
    for (_, index) in &info.exports {
        if let EntityIndex::Func(f) = index {
            mark(*f);
        }
    }
    if let Some(start) = info.start {
        mark(start);
    }
    let mark_expr = |e: &frontend::ConstExpression, mark: &mut dyn FnMut(u32)| {
        for op in &e.ops {
            if let frontend::ConstOp::RefFunc(f) = op {
                mark(*f);
            }
        }
    };
    for g in &info.global_inits {
        mark_expr(g, &mut mark);
    }
    for e in info.table_inits.iter().flatten() {
        mark_expr(e, &mut mark);
    }
    for (seg, simple) in info.elements.iter().zip(elem_funcs) {
        let lazy = matches!(&seg.mode, frontend::ElementMode::Active { table, .. } if *table >= info.num_imported_tables) && simple.is_some();
        if !lazy {
            for item in &seg.items {
                mark_expr(item, &mut mark);
            }
        }
    }
    eager
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module").field("name", &self.name()).field("functions", &self.inner.info.funcs.len()).finish()
    }
}

impl Module {
    /// Compiles a module from its binary or text (WAT) form.
    ///
    /// # Errors
    /// A [`CompileError`] (downcast the error) whose kind says what went
    /// wrong: an invalid module (the message carries the byte offset of the
    /// problem), one that needs a proposal the engine turns off or Weft does
    /// not implement (named), a limit exceeded, or an internal error.
    pub fn new(engine: &Engine, bytes: impl AsRef<[u8]>) -> anyhow::Result<Module> {
        let bytes = bytes.as_ref();
        let binary = wat::parse_bytes(bytes).map_err(|e| CompileError::classify(e.into(), None, engine.config().proposals))?;
        Module::from_binary(engine, &binary)
    }

    /// Compiles a module from a file holding its binary or text (WAT) form.
    ///
    /// # Errors
    /// As for [`Module::new`], and if the file cannot be read (the error
    /// names it).
    pub fn from_file(engine: &Engine, path: impl AsRef<std::path::Path>) -> anyhow::Result<Module> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| anyhow::Error::new(e).context(format!("failed to read {}", path.display())))?;
        Module::new(engine, bytes)
    }

    /// Compiles a module from its binary form.
    ///
    /// # Errors
    /// As for [`Module::new`].
    pub fn from_binary(engine: &Engine, binary: &[u8]) -> anyhow::Result<Module> {
        Module::compile(engine, binary).map_err(|e| CompileError::classify(e, Some(binary), engine.config().proposals))
    }

    fn compile(engine: &Engine, binary: &[u8]) -> anyhow::Result<Module> {
        let (info, pending) = frontend::parse(binary, engine.config().proposals.wasm_features())?;
        let offsets = VMOffsets::new(&info);
        let compiled = {
            let env = TranslateEnv {
                info: &info,
                offsets: &offsets,
                tunables: &engine.config().tunables,
                epoch_counter: engine.epoch_counter() as *const _ as usize,
                fault_page: crate::runtime::interrupt::forbidden_page() as usize,
            };
            compile::compile_module(&engine.inner.isa, engine.config(), &env, pending)?
        };
        let type_ids = engine.inner.types.register_module(&info);
        let type_ids_raw = type_ids.iter().map(|t| t.0).collect();
        let images = if engine.config().memory_images {
            image::build(&info, binary)
        } else {
            ModuleImages { images: vec![None; info.memories.len() - info.num_imported_memories as usize], segment_in_image: vec![false; info.data.len()] }
        };
        let elem_funcs: Vec<Option<Vec<u32>>> = info
            .elements
            .iter()
            .map(|seg| {
                seg.items
                    .iter()
                    .map(|e| match e.ops.as_slice() {
                        [frontend::ConstOp::RefFunc(f)] => Some(*f),
                        _ => None,
                    })
                    .collect::<Option<Vec<u32>>>()
            })
            .collect();
        let mut eager = eager_funcs(&info, &elem_funcs);
        for f in &compiled.ref_func_targets {
            eager[*f as usize] = true;
        }
        let eager_funcrefs = compiled
            .func_starts
            .iter()
            .enumerate()
            .map(|(i, start)| (info.num_imported_funcs + i as u32, *start))
            .filter(|(f, _)| eager[*f as usize])
            .map(|(f, start)| (f, start, type_ids[info.funcs[f as usize] as usize].0))
            .collect();
        Ok(Module {
            inner: Arc::new(ModuleInner {
                engine: engine.clone(),
                info,
                offsets,
                compiled,
                type_ids,
                type_ids_raw,
                bytes: binary.into(),
                images,
                eager_funcrefs,
                elem_funcs,
            }),
        })
    }

    /// Validates a binary with the engine's proposals, without compiling it.
    ///
    /// # Errors
    /// A [`CompileError`], as for [`Module::new`] (but Weft's own limits and
    /// its partial support of some proposals are found only by compiling).
    pub fn validate(engine: &Engine, binary: &[u8]) -> anyhow::Result<()> {
        let proposals = engine.config().proposals;
        let mut validator = wasmparser::Validator::new_with_features(proposals.wasm_features());
        validator.validate_all(binary).map_err(|e| CompileError::classify(e.into(), Some(binary), proposals))?;
        Ok(())
    }

    /// The engine the module was compiled for.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The module's name from its name section.
    pub fn name(&self) -> Option<&str> {
        self.inner.info.name.as_deref()
    }

    pub(crate) fn entity_type(&self, index: EntityIndex) -> ExternType {
        let info = &self.inner.info;
        match index {
            EntityIndex::Func(f) => ExternType::Func((*self.inner.engine.func_type(self.func_type_id(f))).clone()),
            EntityIndex::Table(t) => ExternType::Table(self.table_type(&info.tables[t as usize])),
            EntityIndex::Memory(m) => ExternType::Memory(MemoryType::from_wasm(&info.memories[m as usize])),
            EntityIndex::Global(g) => ExternType::Global(self.global_type(&info.globals[g as usize])),
            EntityIndex::Tag(t) => ExternType::Tag(crate::types::TagType::new(self.type_of_index(info.tags[t as usize]))),
        }
    }

    /// The function type at module type index `t`.
    pub(crate) fn type_of_index(&self, t: u32) -> FuncType {
        (*self.inner.engine.func_type(self.inner.type_ids[t as usize])).clone()
    }

    pub(crate) fn func_type_id(&self, f: u32) -> TypeId {
        self.inner.type_ids[self.inner.info.funcs[f as usize] as usize]
    }

    pub(crate) fn table_type(&self, t: &wasmparser::TableType) -> TableType {
        TableType { element: convert_ref_type(&t.element_type, &self.inner.type_ids), minimum: t.initial, maximum: t.maximum, table64: t.table64 }
    }

    pub(crate) fn global_type(&self, g: &wasmparser::GlobalType) -> GlobalType {
        GlobalType { content: convert_val_type(&g.content_type, &self.inner.type_ids), mutability: if g.mutable { Mutability::Var } else { Mutability::Const } }
    }

    /// The module's imports, in order.
    pub fn imports(&self) -> impl ExactSizeIterator<Item = ImportType<'_>> + '_ {
        self.inner.info.imports.iter().map(move |i| {
            let ty = match &i.kind {
                ImportKind::Func(t) => ExternType::Func((*self.inner.engine.func_type(self.inner.type_ids[*t as usize])).clone()),
                ImportKind::Table(t) => ExternType::Table(self.table_type(t)),
                ImportKind::Memory(m) => ExternType::Memory(MemoryType::from_wasm(m)),
                ImportKind::Global(g) => ExternType::Global(self.global_type(g)),
                ImportKind::Tag(t) => ExternType::Tag(crate::types::TagType::new(self.type_of_index(*t))),
            };
            ImportType { module: i.module.as_str(), name: i.name.as_str(), ty }
        })
    }

    /// The module's exports, in order.
    pub fn exports(&self) -> impl ExactSizeIterator<Item = ExportType<'_>> + '_ {
        self.inner.info.exports.iter().map(move |(name, index)| ExportType { name: name.as_str(), ty: self.entity_type(*index) })
    }

    /// The type of the export `name`, if the module has one.
    pub fn get_export(&self, name: &str) -> Option<ExternType> {
        self.inner.info.export_map.get(name).map(|index| self.entity_type(*index))
    }
}

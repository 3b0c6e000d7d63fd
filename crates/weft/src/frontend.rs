//! The front end: reads and validates a Wasm binary into a [`ModuleInfo`].
//!
//! This is the only place that walks the module's sections. Everything later in
//! the pipeline (the translator, the runtime, the public API) works from the
//! `ModuleInfo` produced here, plus the function bodies, which stay as byte ranges
//! into the original binary and are validated op by op while they are translated.

use std::collections::HashMap;
use std::ops::Range;

use crate::error::CompileError;
use crate::features::Proposal;

use wasmparser::{
    ConstExpr, DataKind, ElementItems, ElementKind, ExternalKind, FuncType, GlobalType, MemoryType, Name, Operator, Parser, Payload, RefType, TableInit,
    TableType, TypeRef, Validator, WasmFeatures,
};

/// One operation of a constant expression, as the module wrote it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ConstOp {
    I32Const(i32),
    I64Const(i64),
    F32Const(u32),
    F64Const(u64),
    V128Const(u128),
    RefNull,
    RefFunc(u32),
    GlobalGet(u32),
    I32Add,
    I32Sub,
    I32Mul,
    I64Add,
    I64Sub,
    I64Mul,
}

/// A validated constant expression (global initialisers, segment offsets, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct ConstExpression {
    pub ops: Vec<ConstOp>,
}

impl ConstExpression {
    fn parse(expr: &ConstExpr<'_>) -> anyhow::Result<Self> {
        let mut ops = Vec::new();
        let mut reader = expr.get_operators_reader();
        while !reader.eof() {
            let op = match reader.read()? {
                Operator::I32Const { value } => ConstOp::I32Const(value),
                Operator::I64Const { value } => ConstOp::I64Const(value),
                Operator::F32Const { value } => ConstOp::F32Const(value.bits()),
                Operator::F64Const { value } => ConstOp::F64Const(value.bits()),
                Operator::V128Const { value } => ConstOp::V128Const(value.i128() as u128),
                Operator::RefNull { .. } => ConstOp::RefNull,
                Operator::RefFunc { function_index } => ConstOp::RefFunc(function_index),
                Operator::GlobalGet { global_index } => ConstOp::GlobalGet(global_index),
                Operator::I32Add => ConstOp::I32Add,
                Operator::I32Sub => ConstOp::I32Sub,
                Operator::I32Mul => ConstOp::I32Mul,
                Operator::I64Add => ConstOp::I64Add,
                Operator::I64Sub => ConstOp::I64Sub,
                Operator::I64Mul => ConstOp::I64Mul,
                Operator::End => break,
                other => {
                    return Err(CompileError::unsupported(
                        Proposal::of_operator(&other).unwrap_or(Proposal::Gc),
                        format_args!("constant expression operator {other:?}"),
                    ))
                }
            };
            ops.push(op);
        }
        Ok(ConstExpression { ops })
    }

    /// The single constant this expression is, if it is one (used for memory images).
    pub fn as_const_offset(&self) -> Option<u64> {
        match self.ops.as_slice() {
            [ConstOp::I32Const(v)] => Some(*v as u32 as u64),
            [ConstOp::I64Const(v)] => Some(*v as u64),
            _ => None,
        }
    }
}

/// What an import provides.
#[derive(Debug, Clone)]
pub enum ImportKind {
    Func(u32),
    Table(TableType),
    Memory(MemoryType),
    Global(GlobalType),
    /// A tag of the given function type index.
    Tag(u32),
}

#[derive(Debug, Clone)]
pub struct ImportInfo {
    pub module: String,
    pub name: String,
    pub kind: ImportKind,
}

/// An index into one of the module's index spaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityIndex {
    Func(u32),
    Table(u32),
    Memory(u32),
    Global(u32),
    Tag(u32),
}

#[derive(Debug, Clone)]
pub enum ElementMode {
    Active { table: u32, offset: ConstExpression },
    Passive,
    Declared,
}

/// An element segment; items are constant expressions (plain function indices are
/// turned into `ref.func` expressions).
#[derive(Debug, Clone)]
pub struct ElementSegment {
    pub mode: ElementMode,
    pub items: Vec<ConstExpression>,
}

#[derive(Debug, Clone)]
pub enum DataMode {
    Active { memory: u32, offset: ConstExpression },
    Passive,
}

/// A data segment; its bytes are a range in the original binary.
#[derive(Debug, Clone)]
pub struct DataSegment {
    pub mode: DataMode,
    pub range: Range<usize>,
}

/// Everything the rest of Weft needs to know about a module, except function
/// bodies, which are kept as byte ranges into the binary.
#[derive(Debug, Default)]
pub struct ModuleInfo {
    /// Function types by module type index.
    pub types: Vec<FuncType>,
    /// The recursion groups of the type section, as type-index ranges.
    pub rec_groups: Vec<Range<u32>>,
    /// Continuation types (stack switching): `cont $f` maps to `$f`. Their
    /// entries in `types` are copies of their function types' signatures,
    /// which is what resuming one takes and gives.
    pub cont_types: HashMap<u32, u32>,
    /// Types declared open to subtypes (`sub` without `final`). Weft has no
    /// subtyping of declared types yet, but such a type is distinct from a
    /// final one of the same shape.
    pub non_final_types: std::collections::HashSet<u32>,
    /// Type index of each function, imported ones first.
    pub funcs: Vec<u32>,
    pub num_imported_funcs: u32,
    pub tables: Vec<TableType>,
    pub num_imported_tables: u32,
    /// Initialisers of defined tables (None: null).
    pub table_inits: Vec<Option<ConstExpression>>,
    pub memories: Vec<MemoryType>,
    pub num_imported_memories: u32,
    pub globals: Vec<GlobalType>,
    pub num_imported_globals: u32,
    /// Type index of each tag, imported ones first.
    pub tags: Vec<u32>,
    pub num_imported_tags: u32,
    /// Initialisers of defined globals.
    pub global_inits: Vec<ConstExpression>,
    pub imports: Vec<ImportInfo>,
    pub exports: Vec<(String, EntityIndex)>,
    pub export_map: HashMap<String, EntityIndex>,
    pub start: Option<u32>,
    pub elements: Vec<ElementSegment>,
    pub data: Vec<DataSegment>,
    /// Byte range of each defined function's body in the binary.
    pub func_bodies: Vec<Range<usize>>,
    /// Names from the name section.
    pub func_names: HashMap<u32, String>,
    pub name: Option<String>,
}

impl ModuleInfo {
    pub fn func_type(&self, func: u32) -> &FuncType {
        &self.types[self.funcs[func as usize] as usize]
    }
    pub fn is_imported_func(&self, func: u32) -> bool {
        func < self.num_imported_funcs
    }
    pub fn is_imported_global(&self, g: u32) -> bool {
        g < self.num_imported_globals
    }
}

/// A function body waiting for validation and translation.
pub struct PendingFunction<'a> {
    pub index: u32,
    pub validator: wasmparser::FuncToValidate<wasmparser::ValidatorResources>,
    pub body: wasmparser::FunctionBody<'a>,
}

/// Parses and validates everything but function bodies; returns the module info
/// and the bodies to validate and translate (possibly in parallel).
/// Validation uses `features`, the engine's proposals
/// ([`Proposals::wasm_features`](crate::features::Proposals::wasm_features)).
pub fn parse(bytes: &[u8], features: WasmFeatures) -> anyhow::Result<(ModuleInfo, Vec<PendingFunction<'_>>)> {
    let mut validator = Validator::new_with_features(features);
    let mut info = ModuleInfo::default();
    let mut pending = Vec::new();

    for payload in Parser::new(0).parse_all(bytes) {
        let payload = payload?;
        if let wasmparser::ValidPayload::Func(func_validator, body) = validator.payload(&payload)? {
            let index = info.num_imported_funcs + pending.len() as u32;
            let r = body.range();
            info.func_bodies.push(r.start as usize..r.end as usize);
            pending.push(PendingFunction { index, validator: func_validator, body });
            continue;
        }
        match payload {
            Payload::TypeSection(reader) => {
                for group in reader {
                    let group = group?;
                    let start = info.types.len() as u32;
                    let mut conts = Vec::new();
                    for sub in group.into_types() {
                        if !sub.supertype_idxs.is_empty() {
                            return Err(CompileError::unsupported(Proposal::Gc, "type subtyping"));
                        }
                        if !sub.is_final {
                            info.non_final_types.insert(info.types.len() as u32);
                        }
                        match sub.composite_type.inner {
                            wasmparser::CompositeInnerType::Func(f) => info.types.push(f),
                            wasmparser::CompositeInnerType::Cont(c) => {
                                // Validated: the index names a function type,
                                // possibly later in this group.
                                let func = c.0.as_module_index().or_else(|| c.0.as_rec_group_index().map(|i| start + i)).unwrap_or(0);
                                conts.push((info.types.len() as u32, func));
                                info.types.push(FuncType::new([], []));
                            }
                            _ => return Err(CompileError::unsupported(Proposal::Gc, "struct and array types")),
                        }
                    }
                    // A continuation type's entry is its function type's signature.
                    for (cont, func) in conts {
                        info.types[cont as usize] = info.types[func as usize].clone();
                        info.cont_types.insert(cont, func);
                    }
                    info.rec_groups.push(start..info.types.len() as u32);
                }
            }
            Payload::ImportSection(reader) => {
                for imports in reader {
                    for import in imports? {
                        let (_, import) = import?;
                        let kind = match import.ty {
                            TypeRef::Func(t) | TypeRef::FuncExact(t) => {
                                info.funcs.push(t);
                                info.num_imported_funcs += 1;
                                ImportKind::Func(t)
                            }
                            TypeRef::Table(t) => {
                                info.tables.push(t);
                                info.num_imported_tables += 1;
                                ImportKind::Table(t)
                            }
                            TypeRef::Memory(m) => {
                                info.memories.push(m);
                                info.num_imported_memories += 1;
                                ImportKind::Memory(m)
                            }
                            TypeRef::Global(g) => {
                                info.globals.push(g);
                                info.num_imported_globals += 1;
                                ImportKind::Global(g)
                            }
                            TypeRef::Tag(t) => {
                                info.tags.push(t.func_type_idx);
                                info.num_imported_tags += 1;
                                ImportKind::Tag(t.func_type_idx)
                            }
                        };
                        info.imports.push(ImportInfo { module: import.module.to_string(), name: import.name.to_string(), kind });
                    }
                }
            }
            Payload::FunctionSection(reader) => {
                for t in reader {
                    info.funcs.push(t?);
                }
            }
            Payload::TableSection(reader) => {
                for table in reader {
                    let table = table?;
                    info.tables.push(table.ty);
                    info.table_inits.push(match table.init {
                        TableInit::RefNull => None,
                        TableInit::Expr(e) => Some(ConstExpression::parse(&e)?),
                    });
                }
            }
            Payload::MemorySection(reader) => {
                for m in reader {
                    info.memories.push(m?);
                }
            }
            Payload::TagSection(reader) => {
                for t in reader {
                    info.tags.push(t?.func_type_idx);
                }
            }
            Payload::GlobalSection(reader) => {
                for g in reader {
                    let g = g?;
                    info.globals.push(g.ty);
                    info.global_inits.push(ConstExpression::parse(&g.init_expr)?);
                }
            }
            Payload::ExportSection(reader) => {
                for e in reader {
                    let e = e?;
                    let index = match e.kind {
                        ExternalKind::Func | ExternalKind::FuncExact => EntityIndex::Func(e.index),
                        ExternalKind::Table => EntityIndex::Table(e.index),
                        ExternalKind::Memory => EntityIndex::Memory(e.index),
                        ExternalKind::Global => EntityIndex::Global(e.index),
                        ExternalKind::Tag => EntityIndex::Tag(e.index),
                    };
                    info.exports.push((e.name.to_string(), index));
                    info.export_map.insert(e.name.to_string(), index);
                }
            }
            Payload::StartSection { func, .. } => info.start = Some(func),
            Payload::ElementSection(reader) => {
                for elem in reader {
                    let elem = elem?;
                    let mode = match elem.kind {
                        ElementKind::Active { table_index, offset_expr } => {
                            ElementMode::Active { table: table_index.unwrap_or(0), offset: ConstExpression::parse(&offset_expr)? }
                        }
                        ElementKind::Passive => ElementMode::Passive,
                        ElementKind::Declared => ElementMode::Declared,
                    };
                    let items = match elem.items {
                        ElementItems::Functions(funcs) => {
                            let mut items = Vec::new();
                            for f in funcs {
                                let f = f?;
                                items.push(ConstExpression { ops: vec![ConstOp::RefFunc(f)] });
                            }
                            items
                        }
                        ElementItems::Expressions(_, exprs) => {
                            let mut items = Vec::new();
                            for e in exprs {
                                items.push(ConstExpression::parse(&e?)?);
                            }
                            items
                        }
                    };
                    info.elements.push(ElementSegment { mode, items });
                }
            }
            Payload::DataSection(reader) => {
                for data in reader {
                    let data = data?;
                    let mode = match data.kind {
                        DataKind::Active { memory_index, offset_expr } => {
                            DataMode::Active { memory: memory_index, offset: ConstExpression::parse(&offset_expr)? }
                        }
                        DataKind::Passive => DataMode::Passive,
                    };
                    let start = data.data.as_ptr() as usize - bytes.as_ptr() as usize;
                    info.data.push(DataSegment { mode, range: start..start + data.data.len() });
                }
            }
            Payload::CustomSection(reader) => {
                if let wasmparser::KnownCustom::Name(names) = reader.as_known() {
                    // A malformed name section is ignored, as the spec requires.
                    let _ = read_names(names, &mut info);
                }
            }
            _ => {}
        }
    }
    Ok((info, pending))
}

fn read_names(names: wasmparser::NameSectionReader<'_>, info: &mut ModuleInfo) -> anyhow::Result<()> {
    for name in names {
        match name? {
            Name::Module { name, .. } => info.name = Some(name.to_string()),
            Name::Function(map) => {
                for naming in map {
                    let naming = naming?;
                    info.func_names.insert(naming.index, naming.name.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Whether a reference type's values are (possibly null) function references.
pub fn is_func_heap(r: &RefType) -> bool {
    use wasmparser::{AbstractHeapType, HeapType};
    matches!(r.heap_type(), HeapType::Abstract { ty: AbstractHeapType::Func | AbstractHeapType::NoFunc, .. } | HeapType::Concrete(_) | HeapType::Exact(_))
}

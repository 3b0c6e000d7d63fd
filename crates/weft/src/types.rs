//! Wasm types as the public API sees them, and the engine-wide type registry that
//! gives every function type a canonical id.
//!
//! Function types are canonicalised per recursion group (iso-recursive equality):
//! two modules that declare structurally equal rec groups get the same ids, so an
//! indirect call checks its callee's type with one integer compare.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use crate::frontend::ModuleInfo;

/// A canonical function or continuation type id, unique within an [`Engine`](crate::Engine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TypeId(pub(crate) u32);

impl TypeId {
    /// Set in the ids of continuation types, so that a reference type names
    /// its hierarchy (functions or continuations) without the registry.
    const CONT_BIT: u32 = 1 << 31;

    /// Whether this is a continuation type (stack switching).
    pub fn is_cont(self) -> bool {
        self.0 & Self::CONT_BIT != 0
    }

    fn index(self) -> usize {
        (self.0 & !Self::CONT_BIT) as usize
    }
}

/// The type of a heap reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HeapType {
    /// Any function.
    Func,
    /// Any external (host) reference.
    Extern,
    /// The bottom of the function hierarchy: only null.
    NoFunc,
    /// The bottom of the extern hierarchy: only null.
    NoExtern,
    /// Any internal (GC) reference. Without the GC proposal only null exists.
    Any,
    /// Comparable internal references.
    Eq,
    /// Unboxed 31-bit integers.
    I31,
    /// GC structs.
    Struct,
    /// GC arrays.
    Array,
    /// The bottom of the internal hierarchy: only null.
    None,
    /// Exception references. Without exception handling only null exists.
    Exn,
    /// The bottom of the exception hierarchy: only null.
    NoExn,
    /// Any continuation (stack switching).
    Cont,
    /// The bottom of the continuation hierarchy: only null.
    NoCont,
    /// A function or a continuation of one concrete type (see [`TypeId::is_cont`]).
    Concrete(TypeId),
}

/// A reference type: a heap type, nullable or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RefType {
    /// Whether null is a value of the type.
    pub nullable: bool,
    /// What the references point to.
    pub heap: HeapType,
}

impl RefType {
    /// `funcref`, i.e. `(ref null func)`.
    pub const FUNCREF: RefType = RefType { nullable: true, heap: HeapType::Func };
    /// `externref`, i.e. `(ref null extern)`.
    pub const EXTERNREF: RefType = RefType { nullable: true, heap: HeapType::Extern };

    /// `exnref`, i.e. `(ref null exn)`.
    pub const EXNREF: RefType = RefType { nullable: true, heap: HeapType::Exn };

    /// Whether values of this type are functions (or null).
    pub fn is_func(&self) -> bool {
        match self.heap {
            HeapType::Func | HeapType::NoFunc => true,
            HeapType::Concrete(id) => !id.is_cont(),
            _ => false,
        }
    }

    /// Whether values of this type are continuations (or null).
    pub fn is_cont(&self) -> bool {
        match self.heap {
            HeapType::Cont | HeapType::NoCont => true,
            HeapType::Concrete(id) => id.is_cont(),
            _ => false,
        }
    }

    /// Whether values of this type are exceptions (or null).
    pub fn is_exn(&self) -> bool {
        matches!(self.heap, HeapType::Exn | HeapType::NoExn)
    }
}

/// The type of a Wasm value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValType {
    /// 32-bit integer.
    I32,
    /// 64-bit integer.
    I64,
    /// 32-bit float.
    F32,
    /// 64-bit float.
    F64,
    /// 128-bit vector.
    V128,
    /// A reference.
    Ref(RefType),
}

impl ValType {
    /// `funcref`.
    pub const FUNCREF: ValType = ValType::Ref(RefType::FUNCREF);
    /// `externref`.
    pub const EXTERNREF: ValType = ValType::Ref(RefType::EXTERNREF);
}

impl fmt::Display for RefType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        ValType::Ref(*self).fmt(f)
    }
}

impl fmt::Display for ValType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ValType::I32 => write!(f, "i32"),
            ValType::I64 => write!(f, "i64"),
            ValType::F32 => write!(f, "f32"),
            ValType::F64 => write!(f, "f64"),
            ValType::V128 => write!(f, "v128"),
            ValType::Ref(r) => {
                let null = if r.nullable { "null " } else { "" };
                match r.heap {
                    HeapType::Func => write!(f, "(ref {null}func)"),
                    HeapType::Extern => write!(f, "(ref {null}extern)"),
                    HeapType::NoFunc => write!(f, "(ref {null}nofunc)"),
                    HeapType::NoExtern => write!(f, "(ref {null}noextern)"),
                    HeapType::Any => write!(f, "(ref {null}any)"),
                    HeapType::Eq => write!(f, "(ref {null}eq)"),
                    HeapType::I31 => write!(f, "(ref {null}i31)"),
                    HeapType::Struct => write!(f, "(ref {null}struct)"),
                    HeapType::Array => write!(f, "(ref {null}array)"),
                    HeapType::None => write!(f, "(ref {null}none)"),
                    HeapType::Exn => write!(f, "(ref {null}exn)"),
                    HeapType::NoExn => write!(f, "(ref {null}noexn)"),
                    HeapType::Cont => write!(f, "(ref {null}cont)"),
                    HeapType::NoCont => write!(f, "(ref {null}nocont)"),
                    HeapType::Concrete(t) => write!(f, "(ref {null}type#{})", t.0),
                }
            }
        }
    }
}

/// The type of a function: parameters and results.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FuncType {
    params: Box<[ValType]>,
    results: Box<[ValType]>,
}

impl FuncType {
    /// A function type with the given parameters and results, for `engine`.
    ///
    /// Weft's function types are plain values that any engine accepts (an
    /// engine registers a type when a function of it is created); the engine
    /// is taken for the same signature as wasmtime's.
    ///
    /// # Example
    ///
    /// ```
    /// use weft::{Engine, FuncType, ValType};
    ///
    /// let engine = Engine::default();
    /// let ty = FuncType::new(&engine, [ValType::I32, ValType::I64], [ValType::F64]);
    /// assert_eq!(ty.params().len(), 2);
    /// assert_eq!(ty.to_string(), "(func (param i32 i64) (result f64))");
    /// ```
    pub fn new(_engine: &crate::Engine, params: impl IntoIterator<Item = ValType>, results: impl IntoIterator<Item = ValType>) -> Self {
        FuncType::from_parts(params, results)
    }
    pub(crate) fn from_parts(params: impl IntoIterator<Item = ValType>, results: impl IntoIterator<Item = ValType>) -> Self {
        FuncType { params: params.into_iter().collect(), results: results.into_iter().collect() }
    }
    /// The parameter types.
    pub fn params(&self) -> &[ValType] {
        &self.params
    }
    /// The result types.
    pub fn results(&self) -> &[ValType] {
        &self.results
    }
}

impl fmt::Display for FuncType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "(func")?;
        if !self.params.is_empty() {
            write!(f, " (param")?;
            for p in self.params.iter() {
                write!(f, " {p}")?;
            }
            write!(f, ")")?;
        }
        if !self.results.is_empty() {
            write!(f, " (result")?;
            for r in self.results.iter() {
                write!(f, " {r}")?;
            }
            write!(f, ")")?;
        }
        write!(f, ")")
    }
}

/// The type of a linear memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryType {
    /// Initial size in 64 KiB pages.
    pub minimum: u64,
    /// Maximum size in pages, if any.
    pub maximum: Option<u64>,
    /// Whether the memory is indexed with 64-bit addresses.
    pub memory64: bool,
}

impl MemoryType {
    /// A 32-bit memory with the given limits in pages.
    pub fn new(minimum: u32, maximum: Option<u32>) -> Self {
        MemoryType { minimum: minimum.into(), maximum: maximum.map(Into::into), memory64: false }
    }
    /// A 64-bit memory with the given limits in pages.
    pub fn new64(minimum: u64, maximum: Option<u64>) -> Self {
        MemoryType { minimum, maximum, memory64: true }
    }
    /// The declared minimum size, in 64 KiB pages.
    pub fn minimum(&self) -> u64 {
        self.minimum
    }
    /// The declared maximum size in pages, if any.
    pub fn maximum(&self) -> Option<u64> {
        self.maximum
    }
    /// Whether the memory is indexed with 64-bit addresses.
    pub fn is_64(&self) -> bool {
        self.memory64
    }
    /// Whether the memory is shared between threads (never: Weft does not
    /// implement the threads proposal).
    pub fn is_shared(&self) -> bool {
        false
    }
    pub(crate) fn from_wasm(m: &wasmparser::MemoryType) -> Self {
        MemoryType { minimum: m.initial, maximum: m.maximum, memory64: m.memory64 }
    }
}

/// The type of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableType {
    /// The type of the elements.
    pub element: RefType,
    /// The declared minimum number of elements.
    pub minimum: u64,
    /// The declared maximum number of elements, if any.
    pub maximum: Option<u64>,
    /// Whether the table is indexed with 64-bit indices.
    pub table64: bool,
}

impl TableType {
    /// A 32-bit table of `element` with the given limits.
    pub fn new(element: RefType, minimum: u32, maximum: Option<u32>) -> Self {
        TableType { element, minimum: minimum.into(), maximum: maximum.map(Into::into), table64: false }
    }
    /// The type of the elements.
    pub fn element(&self) -> &RefType {
        &self.element
    }
    /// The declared minimum number of elements.
    pub fn minimum(&self) -> u64 {
        self.minimum
    }
    /// The declared maximum number of elements, if any.
    pub fn maximum(&self) -> Option<u64> {
        self.maximum
    }
    /// Whether the table is indexed with 64-bit indices.
    pub fn is_64(&self) -> bool {
        self.table64
    }
}

/// Whether a global can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mutability {
    /// Immutable.
    Const,
    /// Mutable.
    Var,
}

/// The type of a global.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlobalType {
    /// The type of the value.
    pub content: ValType,
    /// Whether the global can be written.
    pub mutability: Mutability,
}

impl GlobalType {
    /// A global holding values of `content`.
    pub fn new(content: ValType, mutability: Mutability) -> Self {
        GlobalType { content, mutability }
    }
    /// The type of the value.
    pub fn content(&self) -> &ValType {
        &self.content
    }
    /// Whether the global can be written.
    pub fn mutability(&self) -> Mutability {
        self.mutability
    }
}

/// The type of an import or export.
#[derive(Debug, Clone, PartialEq)]
pub enum ExternType {
    /// A function.
    Func(FuncType),
    /// A table.
    Table(TableType),
    /// A linear memory.
    Memory(MemoryType),
    /// A global.
    Global(GlobalType),
    /// An exception tag.
    Tag(TagType),
}

/// The type of an exception tag: the parameters of a function type are its
/// payload's types (the results are empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagType {
    ty: FuncType,
}

impl TagType {
    /// The type of tags whose payload has the parameters of `ty`.
    pub fn new(ty: FuncType) -> TagType {
        TagType { ty }
    }
    /// The function type whose parameters are the payload's types.
    pub fn ty(&self) -> &FuncType {
        &self.ty
    }
}

impl ExternType {
    /// The function type, if this is a function.
    pub fn func(&self) -> Option<&FuncType> {
        if let ExternType::Func(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The table type, if this is a table.
    pub fn table(&self) -> Option<&TableType> {
        if let ExternType::Table(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The memory type, if this is a memory.
    pub fn memory(&self) -> Option<&MemoryType> {
        if let ExternType::Memory(t) = self {
            Some(t)
        } else {
            None
        }
    }
    /// The global type, if this is a global.
    pub fn global(&self) -> Option<&GlobalType> {
        if let ExternType::Global(t) = self {
            Some(t)
        } else {
            None
        }
    }
}

/// An import of a [`Module`](crate::Module): where it comes from and its type.
#[derive(Debug, Clone)]
pub struct ImportType<'module> {
    pub(crate) module: &'module str,
    pub(crate) name: &'module str,
    pub(crate) ty: ExternType,
}

impl<'module> ImportType<'module> {
    /// The module name it is imported from.
    pub fn module(&self) -> &'module str {
        self.module
    }
    /// The field name it is imported as.
    pub fn name(&self) -> &'module str {
        self.name
    }
    /// Its type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// An export of a [`Module`](crate::Module): its name and type.
#[derive(Debug, Clone)]
pub struct ExportType<'module> {
    pub(crate) name: &'module str,
    pub(crate) ty: ExternType,
}

impl<'module> ExportType<'module> {
    /// The name it is exported as.
    pub fn name(&self) -> &'module str {
        self.name
    }
    /// Its type.
    pub fn ty(&self) -> ExternType {
        self.ty.clone()
    }
}

/// Structural key of a value type inside a rec group, for canonicalisation.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum KeyValType {
    Plain(ValType),
    RecLocal { nullable: bool, index: u32 },
}

/// What kind of type a rec-group entry is: a function or a continuation
/// type, final or open to subtypes (two types that differ in either are
/// distinct, even with the same signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct TypeShape {
    cont: bool,
    is_final: bool,
}

type RecGroupKey = Vec<(TypeShape, Vec<KeyValType>, Vec<KeyValType>)>;

#[derive(Default)]
struct RegistryInner {
    groups: HashMap<RecGroupKey, Vec<TypeId>>,
    types: Vec<Arc<FuncType>>,
}

/// The engine-wide registry of canonical function types.
#[derive(Default)]
pub(crate) struct TypeRegistry {
    inner: RwLock<RegistryInner>,
}

impl TypeRegistry {
    /// The type with id `id`.
    pub fn get(&self, id: TypeId) -> Arc<FuncType> {
        self.inner.read().unwrap().types[id.index()].clone()
    }

    /// Registers a function type built by the host (no rec-group references).
    pub fn register_host(&self, ty: &FuncType) -> TypeId {
        let key: RecGroupKey = vec![(
            TypeShape { cont: false, is_final: true },
            ty.params().iter().map(|t| KeyValType::Plain(*t)).collect(),
            ty.results().iter().map(|t| KeyValType::Plain(*t)).collect(),
        )];
        self.register_group(key)[0]
    }

    /// Registers a continuation type built by the host: continuations of
    /// functions of type `ty` (the same id as a module's `(cont $ft)` of an
    /// equal final function type alone in its rec group).
    pub fn register_host_cont(&self, ty: &FuncType) -> TypeId {
        let key: RecGroupKey = vec![(
            TypeShape { cont: true, is_final: true },
            ty.params().iter().map(|t| KeyValType::Plain(*t)).collect(),
            ty.results().iter().map(|t| KeyValType::Plain(*t)).collect(),
        )];
        self.register_group(key)[0]
    }

    fn register_group(&self, key: RecGroupKey) -> Vec<TypeId> {
        let mut inner = self.inner.write().unwrap();
        if let Some(ids) = inner.groups.get(&key) {
            return ids.clone();
        }
        let first = inner.types.len() as u32;
        let ids: Vec<TypeId> =
            key.iter().enumerate().map(|(i, (shape, _, _))| TypeId((first + i as u32) | if shape.cont { TypeId::CONT_BIT } else { 0 })).collect();
        for (_, params, results) in key.iter() {
            let resolve = |k: &KeyValType| match k {
                KeyValType::Plain(t) => *t,
                KeyValType::RecLocal { nullable, index } => ValType::Ref(RefType { nullable: *nullable, heap: HeapType::Concrete(ids[*index as usize]) }),
            };
            let ty = FuncType::from_parts(params.iter().map(resolve), results.iter().map(resolve));
            inner.types.push(Arc::new(ty));
        }
        inner.groups.insert(key, ids.clone());
        ids
    }

    /// Canonicalises all of a module's types; returns the id of each type index.
    pub fn register_module(&self, info: &ModuleInfo) -> Vec<TypeId> {
        let mut ids: Vec<TypeId> = Vec::with_capacity(info.types.len());
        for group in &info.rec_groups {
            let key: RecGroupKey = (group.start..group.end)
                .map(|t| {
                    let f = &info.types[t as usize];
                    let conv = |v: &wasmparser::ValType| key_val_type(v, group, &ids);
                    let shape = TypeShape { cont: info.cont_types.contains_key(&t), is_final: !info.non_final_types.contains(&t) };
                    (shape, f.params().iter().map(conv).collect(), f.results().iter().map(conv).collect())
                })
                .collect();
            let group_ids = self.register_group(key);
            ids.extend(group_ids);
        }
        ids
    }
}

fn key_val_type(v: &wasmparser::ValType, group: &std::ops::Range<u32>, ids: &[TypeId]) -> KeyValType {
    use wasmparser::UnpackedIndex;
    if let wasmparser::ValType::Ref(r) = v {
        let index = match r.heap_type() {
            wasmparser::HeapType::Concrete(i) | wasmparser::HeapType::Exact(i) => Some(i),
            _ => None,
        };
        if let Some(index) = index {
            match index {
                UnpackedIndex::RecGroup(i) => {
                    return KeyValType::RecLocal { nullable: r.is_nullable(), index: i };
                }
                UnpackedIndex::Module(i) if group.contains(&i) => {
                    return KeyValType::RecLocal { nullable: r.is_nullable(), index: i - group.start };
                }
                _ => {}
            }
        }
    }
    KeyValType::Plain(convert_val_type(v, ids))
}

/// Converts a wasmparser value type of a module whose types have ids `ids`.
pub(crate) fn convert_val_type(v: &wasmparser::ValType, ids: &[TypeId]) -> ValType {
    match v {
        wasmparser::ValType::I32 => ValType::I32,
        wasmparser::ValType::I64 => ValType::I64,
        wasmparser::ValType::F32 => ValType::F32,
        wasmparser::ValType::F64 => ValType::F64,
        wasmparser::ValType::V128 => ValType::V128,
        wasmparser::ValType::Ref(r) => ValType::Ref(convert_ref_type(r, ids)),
    }
}

pub(crate) fn convert_ref_type(r: &wasmparser::RefType, ids: &[TypeId]) -> RefType {
    use wasmparser::{AbstractHeapType as A, HeapType as H, UnpackedIndex};
    let heap = match r.heap_type() {
        H::Abstract { ty: A::Func, .. } => HeapType::Func,
        H::Abstract { ty: A::NoFunc, .. } => HeapType::NoFunc,
        H::Abstract { ty: A::NoExtern, .. } => HeapType::NoExtern,
        H::Abstract { ty: A::Extern, .. } => HeapType::Extern,
        H::Abstract { ty: A::Eq, .. } => HeapType::Eq,
        H::Abstract { ty: A::I31, .. } => HeapType::I31,
        H::Abstract { ty: A::Struct, .. } => HeapType::Struct,
        H::Abstract { ty: A::Array, .. } => HeapType::Array,
        H::Abstract { ty: A::None, .. } => HeapType::None,
        H::Abstract { ty: A::Exn, .. } => HeapType::Exn,
        H::Abstract { ty: A::NoExn, .. } => HeapType::NoExn,
        H::Abstract { ty: A::Cont, .. } => HeapType::Cont,
        H::Abstract { ty: A::NoCont, .. } => HeapType::NoCont,
        H::Abstract { .. } => HeapType::Any,
        H::Concrete(UnpackedIndex::Module(i)) | H::Exact(UnpackedIndex::Module(i)) => HeapType::Concrete(ids[i as usize]),
        // Only appears inside type definitions, which use `key_val_type`.
        H::Concrete(_) | H::Exact(_) => HeapType::Func,
    };
    RefType { nullable: r.is_nullable(), heap }
}

/// Whether a value of type `a` may be used where `b` is expected.
pub(crate) fn is_subtype(a: &ValType, b: &ValType) -> bool {
    match (a, b) {
        (ValType::Ref(a), ValType::Ref(b)) => is_ref_subtype(a, b),
        _ => a == b,
    }
}

pub(crate) fn is_ref_subtype(a: &RefType, b: &RefType) -> bool {
    if a.nullable && !b.nullable {
        return false;
    }
    use HeapType::*;
    match (a.heap, b.heap) {
        (x, y) if x == y => true,
        (NoFunc, Func) => true,
        (NoFunc, Concrete(id)) | (Concrete(id), Func) => !id.is_cont(),
        (NoCont, Cont) => true,
        (NoCont, Concrete(id)) | (Concrete(id), Cont) => id.is_cont(),
        (NoExtern, Extern) => true,
        (None, Any | Eq | I31 | Struct | Array) => true,
        (I31 | Struct | Array, Eq | Any) => true,
        (Eq, Any) => true,
        (NoExn, Exn) => true,
        _ => false,
    }
}

//! Instances at run time: building a vmctx from a module and its imports,
//! initialising memories, tables and globals, and the builtins compiled code
//! calls for bulk operations.

use std::alloc::Layout;

use crate::frontend::{ConstExpression, ConstOp, DataMode, ElementMode};
use crate::module::Module;
use crate::runtime::memory::{LinearMemory, MemoryPlan};
use crate::runtime::table::TableData;
use crate::store::{GlobalEntry, StoreOpaque, TagEntry};
use crate::trap::Trap;
use crate::types::{convert_ref_type, convert_val_type, GlobalType, MemoryType, Mutability, TableType};
use crate::vmctx::{self, VMFuncRef, VMGlobal, VMOffsets, NUM_BUILTINS};

/// An import resolved to store objects.
#[derive(Clone, Copy)]
pub enum ResolvedImport {
    Func(VMFuncRef),
    Memory(usize),
    Table(usize),
    Global(usize),
    Tag(usize),
}

/// The run-time state of one instance.
pub struct InstanceData {
    pub module: Module,
    vmctx: *mut u8,
    /// How the vmctx was allocated on the heap; `None` when it follows a probe
    /// page in a region the store owns (MMU page mode).
    heap_layout: Option<Layout>,
    pub store: *mut StoreOpaque,
    /// Store indices of the instance's memories, tables and globals (imported and defined).
    pub memories: Vec<usize>,
    pub tables: Vec<usize>,
    pub globals: Vec<usize>,
    pub tags: Vec<usize>,
    pub dropped_data: Vec<bool>,
    /// Element segments' values; `None` once dropped.
    pub elems: Vec<Option<Vec<u64>>>,
}

impl InstanceData {
    pub fn offsets(&self) -> &VMOffsets {
        &self.module.inner.offsets
    }
    /// Pointer to function `f`'s funcref in the vmctx.
    pub fn func_ref(&self, f: u32) -> *mut VMFuncRef {
        // SAFETY: `f` is a valid function index, so the offset is inside the vmctx.
        unsafe { self.vmctx.add(self.offsets().func_ref(f) as usize) as *mut VMFuncRef }
    }
    /// Updates the vmctx's copy of the store's epoch deadline.
    pub fn set_epoch_deadline(&self, deadline: u64) {
        self.write(vmctx::VMCTX_EPOCH_DEADLINE_OFFSET, deadline);
    }
    fn write<V>(&self, offset: u32, value: V) {
        // SAFETY: offsets come from VMOffsets for this module, inside the allocation.
        unsafe { std::ptr::write(self.vmctx.add(offset as usize) as *mut V, value) }
    }
}

impl Drop for InstanceData {
    fn drop(&mut self) {
        if let Some(tp) = &self.module.inner.engine.inner.table_pool {
            tp.leave_instance();
        }
        if let Some(layout) = self.heap_layout {
            // SAFETY: allocated in `instantiate` with this layout.
            unsafe { std::alloc::dealloc(self.vmctx, layout) };
        }
    }
}

struct BuiltinTable([*const u8; NUM_BUILTINS]);
// SAFETY: immutable table of function addresses.
unsafe impl Sync for BuiltinTable {}

static BUILTINS: BuiltinTable = BuiltinTable([
    weft_memory_grow as *const u8,
    memory_fill as *const u8,
    memory_copy as *const u8,
    memory_init as *const u8,
    data_drop as *const u8,
    weft_table_grow as *const u8,
    table_fill as *const u8,
    table_copy as *const u8,
    table_init as *const u8,
    elem_drop as *const u8,
    table_lazy_init as *const u8,
    crate::runtime::exception::exn_new as *const u8,
    crate::runtime::exception::exn_drop as *const u8,
    crate::runtime::exception::weft_throw_stub as *const u8,
    crate::runtime::continuation::cont_new as *const u8,
    crate::runtime::continuation::cont_bind as *const u8,
    crate::runtime::continuation::cont_resume as *const u8,
    crate::runtime::continuation::cont_suspend as *const u8,
    crate::runtime::continuation::cont_switch as *const u8,
]);

unsafe extern "C" fn table_lazy_init(vmctx: *mut u8, table: u32, index: u64) -> u64 {
    // SAFETY: called by compiled code with its own vmctx, after a bounds check.
    let (inst, store) = unsafe { instance_of(vmctx) };
    materialize(store, inst.tables[table as usize], index as usize)
}

/// Evaluates a constant expression in an instance under construction.
fn eval_const(expr: &ConstExpression, inst: &InstanceData, store: &StoreOpaque) -> VMGlobal {
    // Almost every constant expression is a single operation.
    match expr.ops.as_slice() {
        [ConstOp::RefFunc(f)] => return VMGlobal { bits: [inst.func_ref(*f) as u64, 0] },
        [ConstOp::I32Const(v)] => return VMGlobal { bits: [*v as u32 as u64, 0] },
        [ConstOp::I64Const(v)] => return VMGlobal { bits: [*v as u64, 0] },
        [ConstOp::RefNull] => return VMGlobal::default(),
        _ => {}
    }
    // Values of any type, up to a v128's 128 bits.
    let mut stack: Vec<u128> = Vec::with_capacity(4);
    for op in &expr.ops {
        match *op {
            ConstOp::I32Const(v) => stack.push(v as u32 as u128),
            ConstOp::I64Const(v) => stack.push(v as u64 as u128),
            ConstOp::F32Const(v) => stack.push(v as u128),
            ConstOp::F64Const(v) => stack.push(v as u128),
            ConstOp::V128Const(v) => stack.push(v),
            ConstOp::RefNull => stack.push(0),
            ConstOp::RefFunc(f) => stack.push(inst.func_ref(f) as u64 as u128),
            ConstOp::GlobalGet(g) => {
                // SAFETY: the global's storage is alive in the store.
                let [lo, hi] = unsafe { (*store.globals[inst.globals[g as usize]].ptr).bits };
                stack.push(lo as u128 | (hi as u128) << 64);
            }
            ConstOp::I32Add | ConstOp::I32Sub | ConstOp::I32Mul => {
                let b = stack.pop().unwrap() as u32;
                let a = stack.pop().unwrap() as u32;
                let r = match op {
                    ConstOp::I32Add => a.wrapping_add(b),
                    ConstOp::I32Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                };
                stack.push(r as u128);
            }
            ConstOp::I64Add | ConstOp::I64Sub | ConstOp::I64Mul => {
                let b = stack.pop().unwrap() as u64;
                let a = stack.pop().unwrap() as u64;
                let r = match op {
                    ConstOp::I64Add => a.wrapping_add(b),
                    ConstOp::I64Sub => a.wrapping_sub(b),
                    _ => a.wrapping_mul(b),
                };
                stack.push(r as u128);
            }
        }
    }
    let v = stack.pop().unwrap_or(0);
    VMGlobal { bits: [v as u64, (v >> 64) as u64] }
}

/// Writes active element segment `seg` at `offset` of table `table` (bounds
/// already checked). Plain `ref.func` runs into the instance's own tables are
/// written lazily: `(f << 1) | 1` for defined functions, materialised by
/// [`table_lazy_init`] on first use.
fn write_active_segment(store: &mut StoreOpaque, inst: &InstanceData, seg: usize, table: u32, offset: u64) {
    let m = &inst.module.inner;
    let info = &m.info;
    let t = &mut store.tables[inst.tables[table as usize]];
    match &m.elem_funcs[seg] {
        Some(funcs) if table >= info.num_imported_tables => {
            t.lazy_owner = inst.vmctx;
            let dst = &mut t.elements_mut()[offset as usize..][..funcs.len()];
            for (slot, &f) in dst.iter_mut().zip(funcs) {
                *slot = if f < info.num_imported_funcs { inst.func_ref(f) as u64 } else { ((f as u64) << 1) | vmctx::LAZY_FUNCREF_TAG };
            }
        }
        _ => {
            let items = &info.elements[seg].items;
            for (i, item) in items.iter().enumerate() {
                let v = eval_const(item, inst, store).bits[0];
                store.tables[inst.tables[table as usize]].elements_mut()[offset as usize + i] = v;
            }
        }
    }
}

impl InstanceData {
    /// Writes the funcref of defined function `f` and returns it.
    pub fn init_func_ref(&self, f: u32) -> *mut VMFuncRef {
        let m = &self.module.inner;
        let start = m.compiled.func_starts[(f - m.info.num_imported_funcs) as usize];
        let type_id = m.type_ids[m.info.funcs[f as usize] as usize].0;
        // SAFETY: `start` is inside the module's code.
        let code = unsafe { m.compiled.code.base().add(start as usize) };
        self.write(self.offsets().func_ref(f), VMFuncRef { code, vmctx: self.vmctx, type_id, _pad: 0 });
        self.func_ref(f)
    }
}

/// Materialises element `index` of a funcref table if it is lazy; returns it.
pub fn materialize(store: &mut StoreOpaque, table: usize, index: usize) -> u64 {
    let t = &mut store.tables[table];
    let v = t.elements()[index];
    // Externref handles may be odd; only funcref tables hold lazy elements.
    if v & vmctx::LAZY_FUNCREF_TAG == 0 || !t.ty.element.is_func() {
        return v;
    }
    // SAFETY: lazy elements are only written into tables owned by a live
    // instance of this store, whose vmctx header points to its InstanceData.
    let owner = unsafe { &*(*(t.lazy_owner.add(vmctx::VMCTX_INSTANCE_OFFSET as usize) as *const *const InstanceData)) };
    let ptr = owner.init_func_ref((v >> 1) as u32) as u64;
    t.elements_mut()[index] = ptr;
    ptr
}

/// Why instantiation failed after the instance was created.
pub enum InstantiateError {
    /// Setting up failed (resource limits).
    Error(anyhow::Error),
    /// A segment did not fit: the instance exists (and earlier writes stay), but
    /// instantiation traps.
    Trap(Trap),
}

/// Creates an instance of `module` in `store` with resolved `imports` (one per
/// import, in order). Returns the instance's index in the store. Does not run the
/// start function.
pub fn instantiate(store: &mut StoreOpaque, module: &Module, imports: &[ResolvedImport]) -> Result<usize, InstantiateError> {
    let m = &module.inner;
    let info = &m.info;
    let offsets = &m.offsets;
    // The store's limiter first, before anything is allocated.
    if store.limiter.is_some() {
        let defined_memories = &info.memories[info.num_imported_memories as usize..];
        let defined_tables = &info.tables[info.num_imported_tables as usize..];
        store.check_counts(1, defined_memories.len(), defined_tables.len()).map_err(InstantiateError::Error)?;
        for mt in defined_memories {
            store.check_new_memory(mt.initial, mt.maximum).map_err(InstantiateError::Error)?;
        }
        for tt in defined_tables {
            store.check_new_table(tt.initial, tt.maximum).map_err(InstantiateError::Error)?;
        }
    }
    if let Some(tp) = &m.engine.inner.table_pool {
        tp.enter_instance().map_err(InstantiateError::Error)?;
    }
    if !info.cont_types.is_empty() {
        // Room for the values of every switch this module's code can make:
        // a type's values, and a continuation.
        let slots = info.types.iter().map(|t| t.params().len().max(t.results().len())).max().unwrap_or(0) + 1;
        store.conts.reserve_values(&mut store.vm, slots);
    }
    // Not zeroed: every field compiled code or the runtime reads is written
    // below (funcrefs of functions that never escape are never read).
    let (vmctx, heap_layout) = match store.interrupts.as_ref().filter(|i| i.has_probe_pages()) {
        Some(interrupts) => match interrupts.alloc_probed_vmctx(offsets.size as usize) {
            Ok(vmctx) => {
                // Every probe page of the store is revoked with the others,
                // so any of them serves segment probes; the first one stays.
                if m.engine.config().tunables.mmu_segment_probes && store.vm.segment_probe_page == 0 {
                    store.vm.segment_probe_page = vmctx as usize - crate::vmctx::VMCTX_PROBE_PAGE_SIZE as usize;
                }
                (vmctx, None)
            }
            Err(e) => {
                if let Some(tp) = &m.engine.inner.table_pool {
                    tp.leave_instance();
                }
                return Err(InstantiateError::Error(anyhow::Error::new(e).context("allocating the instance's context")));
            }
        },
        None => {
            let layout = Layout::from_size_align(offsets.size as usize, 16).unwrap();
            // SAFETY: the layout has non-zero size (the header alone is 48 bytes).
            let vmctx = unsafe { std::alloc::alloc(layout) };
            if vmctx.is_null() {
                std::alloc::handle_alloc_error(layout);
            }
            (vmctx, Some(layout))
        }
    };
    let store_ptr: *mut StoreOpaque = store;
    let mut inst = Box::new(InstanceData {
        module: module.clone(),
        vmctx,
        heap_layout,
        store: store_ptr,
        memories: Vec::with_capacity(info.memories.len()),
        tables: Vec::with_capacity(info.tables.len()),
        globals: Vec::with_capacity(info.globals.len()),
        tags: Vec::with_capacity(info.tags.len()),
        dropped_data: vec![false; info.data.len()],
        elems: Vec::with_capacity(info.elements.len()),
    });
    let inst_ptr: *mut InstanceData = &mut *inst;
    inst.write(vmctx::VMCTX_MAGIC_OFFSET, vmctx::VMCTX_MAGIC);
    inst.write(vmctx::VMCTX_STORE_CTX_OFFSET, &mut *store.vm as *mut _ as usize);
    inst.write(vmctx::VMCTX_BUILTINS_OFFSET, BUILTINS.0.as_ptr() as usize);
    inst.write(vmctx::VMCTX_INSTANCE_OFFSET, inst_ptr as usize);
    inst.write(vmctx::VMCTX_TYPE_IDS_OFFSET, m.type_ids_raw.as_ptr() as usize);
    // Read by epoch checks' slow paths (the forbidden page); MMU page mode
    // reaches the interrupt page through the probe page, pointer mode
    // through the store context's flipping pointer.
    inst.write(vmctx::VMCTX_INTERRUPT_PAGE_OFFSET, store.vm.interrupt_page as usize);
    inst.set_epoch_deadline(store.epoch_deadline);

    // Imports.
    let mut func_index = 0u32;
    for import in imports {
        match *import {
            ResolvedImport::Func(f) => {
                inst.write(offsets.func_ref(func_index), f);
                func_index += 1;
            }
            ResolvedImport::Memory(i) => inst.memories.push(i),
            ResolvedImport::Table(i) => inst.tables.push(i),
            ResolvedImport::Global(i) => inst.globals.push(i),
            ResolvedImport::Tag(i) => inst.tags.push(i),
        }
    }
    // Defined tags: each instantiation creates fresh tag identities.
    for t in &info.tags[info.num_imported_tags as usize..] {
        store.tags.push(TagEntry { type_id: m.type_ids[*t as usize] });
        inst.tags.push(store.tags.len() - 1);
    }
    for (t, &identity) in inst.tags.clone().iter().enumerate() {
        inst.write(offsets.tag_identity(t as u32), identity as u64);
    }
    // Defined functions: only escaping ones are ever read through a funcref
    // (direct calls do not use them).
    let code_base = m.compiled.code.base();
    for &(f, start, type_id) in &m.eager_funcrefs {
        // SAFETY: `start` is inside the module's code.
        let code = unsafe { code_base.add(start as usize) };
        inst.write(offsets.func_ref(f), VMFuncRef { code, vmctx, type_id, _pad: 0 });
    }
    // Defined memories, with their copy-on-write images.
    let guarded = m.engine.config().tunables.guarded_memory32;
    let pool = m.engine.inner.memory_pool.as_ref();
    for (i, mt) in info.memories[info.num_imported_memories as usize..].iter().enumerate() {
        let plan = MemoryPlan { minimum: mt.initial, maximum: mt.maximum, memory64: mt.memory64, guarded };
        let mem = match LinearMemory::new(plan, m.images.images[i].clone(), pool) {
            Ok(mem) => mem,
            Err(e) => return Err(InstantiateError::Error(e)),
        };
        let index = store.push_memory(mem, MemoryType::from_wasm(mt)).map_err(InstantiateError::Error)?;
        inst.memories.push(index);
    }
    for (i, &idx) in inst.memories.iter().enumerate() {
        let def: &vmctx::VMMemoryDefinition = &store.memories[idx].mem.def;
        inst.write(offsets.memory_ptr(i as u32), def as *const _ as usize);
        inst.write(offsets.memory_base(i as u32), def.base as usize);
    }
    // Globals (defined ones may refer to earlier globals and functions).
    for g in 0..info.globals.len() as u32 {
        if info.is_imported_global(g) {
            continue;
        }
        let gt = &info.globals[g as usize];
        let init = &info.global_inits[(g - info.num_imported_globals) as usize];
        // Point the global at its vmctx slot before evaluating, so later
        // initialisers can read it.
        // SAFETY: the offset is inside the vmctx.
        let ptr = unsafe { vmctx.add(offsets.defined_global(g) as usize) as *mut VMGlobal };
        let value = eval_const(init, &inst, store);
        // SAFETY: as above.
        unsafe { ptr.write(value) };
        let ty =
            GlobalType { content: convert_val_type(&gt.content_type, &m.type_ids), mutability: if gt.mutable { Mutability::Var } else { Mutability::Const } };
        store.globals.push(GlobalEntry { ty, ptr, _owned: None });
        inst.globals.push(store.globals.len() - 1);
    }
    for (i, &idx) in inst.globals.iter().enumerate() {
        inst.write(offsets.global_ptr(i as u32), store.globals[idx].ptr as usize);
    }
    // Defined tables.
    for (i, tt) in info.tables[info.num_imported_tables as usize..].iter().enumerate() {
        let init = match &info.table_inits[i] {
            Some(e) => eval_const(e, &inst, store).bits[0],
            None => 0,
        };
        let ty = TableType { element: convert_ref_type(&tt.element_type, &m.type_ids), minimum: tt.initial, maximum: tt.maximum, table64: tt.table64 };
        let table = match TableData::new(ty, init, Some(&m.engine)) {
            Ok(t) => t,
            Err(e) => return Err(InstantiateError::Error(e)),
        };
        store.tables.push(table);
        inst.tables.push(store.tables.len() - 1);
    }
    for (i, &idx) in inst.tables.iter().enumerate() {
        let def: *const _ = &*store.tables[idx].def;
        inst.write(offsets.table_ptr(i as u32), def as usize);
    }
    // Element segments: active ones are written straight into their table;
    // passive ones are evaluated now, ready for table.init.
    for seg in &info.elements {
        match &seg.mode {
            ElementMode::Active { table, offset } => {
                inst.elems.push(None);
                let offset = eval_const(offset, &inst, store).bits[0];
                let len = seg.items.len() as u64;
                let t = &store.tables[inst.tables[*table as usize]];
                if !range_ok(offset, len, t.size()) {
                    // Keep the instance: earlier segments may have stored references to it.
                    store.instances.push(inst);
                    return Err(InstantiateError::Trap(Trap::TableOutOfBounds));
                }
                let seg_index = inst.elems.len() - 1;
                write_active_segment(store, &inst, seg_index, *table, offset);
            }
            ElementMode::Passive => {
                let values = seg.items.iter().map(|e| eval_const(e, &inst, store).bits[0]).collect();
                inst.elems.push(Some(values));
            }
            ElementMode::Declared => inst.elems.push(None),
        }
    }
    // Data segments.
    for (i, seg) in info.data.iter().enumerate() {
        if let DataMode::Active { memory, offset } = &seg.mode {
            inst.dropped_data[i] = true;
            if m.images.segment_in_image[i] {
                continue;
            }
            let offset = eval_const(offset, &inst, store).bits[0];
            let mem = &mut store.memories[inst.memories[*memory as usize]].mem;
            let bytes = &m.bytes[seg.range.clone()];
            let fits = offset.checked_add(bytes.len() as u64).is_some_and(|end| end <= mem.byte_size());
            if !fits {
                store.instances.push(inst);
                return Err(InstantiateError::Trap(Trap::MemoryOutOfBounds));
            }
            mem.data_mut()[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        }
    }
    store.instances.push(inst);
    Ok(store.instances.len() - 1)
}

/// Restores instance `index`'s own memories, tables and globals (not imported
/// ones) to their state right after instantiation, before the start function.
pub fn reset(store: &mut StoreOpaque, index: usize) -> Result<(), InstantiateError> {
    let inst: *mut InstanceData = &mut *store.instances[index];
    // SAFETY: the instance is boxed, so it does not move, and `reset_instance`
    // never touches `store.instances`: the two borrows are disjoint.
    reset_instance(store, unsafe { &mut *inst })
}

fn reset_instance(store: &mut StoreOpaque, inst: &mut InstanceData) -> Result<(), InstantiateError> {
    let m = &inst.module.inner;
    let info = &m.info;
    for &idx in &inst.memories[info.num_imported_memories as usize..] {
        store.note_wasm_writes(idx);
        store.memories[idx].mem.reset().map_err(InstantiateError::Error)?;
    }
    for g in info.num_imported_globals..info.globals.len() as u32 {
        let value = eval_const(&info.global_inits[(g - info.num_imported_globals) as usize], inst, store);
        // SAFETY: the global's storage is in the live vmctx.
        unsafe { store.globals[inst.globals[g as usize]].ptr.write(value) };
    }
    for (i, t) in (info.num_imported_tables..info.tables.len() as u32).enumerate() {
        let init = match &info.table_inits[i] {
            Some(e) => eval_const(e, inst, store).bits[0],
            None => 0,
        };
        let minimum = info.tables[t as usize].initial as usize;
        store.tables[inst.tables[t as usize]].reset(minimum, init);
    }
    for (i, seg) in info.elements.iter().enumerate() {
        inst.elems[i] = matches!(seg.mode, ElementMode::Passive).then(|| seg.items.iter().map(|e| eval_const(e, inst, store).bits[0]).collect());
        if let ElementMode::Active { table, offset } = &seg.mode {
            if *table < info.num_imported_tables {
                continue;
            }
            let offset = eval_const(offset, inst, store).bits[0];
            if !range_ok(offset, seg.items.len() as u64, store.tables[inst.tables[*table as usize]].size()) {
                return Err(InstantiateError::Trap(Trap::TableOutOfBounds));
            }
            write_active_segment(store, inst, i, *table, offset);
        }
    }
    for (i, seg) in info.data.iter().enumerate() {
        inst.dropped_data[i] = matches!(seg.mode, DataMode::Active { .. });
        if let DataMode::Active { memory, offset } = &seg.mode {
            if *memory < info.num_imported_memories || m.images.segment_in_image[i] {
                continue;
            }
            let offset = eval_const(offset, inst, store).bits[0];
            let mem = &mut store.memories[inst.memories[*memory as usize]].mem;
            let bytes = &m.bytes[seg.range.clone()];
            if !range_ok(offset, bytes.len() as u64, mem.byte_size()) {
                return Err(InstantiateError::Trap(Trap::MemoryOutOfBounds));
            }
            mem.data_mut()[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        }
    }
    Ok(())
}

/// Recovers the instance and its store from a vmctx passed to a builtin.
///
/// # Safety
/// `vmctx` must be the vmctx of a live instance.
pub(crate) unsafe fn instance_of<'a>(vmctx: *mut u8) -> (&'a mut InstanceData, &'a mut StoreOpaque) {
    // SAFETY: the caller guarantees a live vmctx, whose header points to its
    // instance, which points to its store.
    unsafe {
        let inst = &mut *(*(vmctx.add(vmctx::VMCTX_INSTANCE_OFFSET as usize) as *const *mut InstanceData));
        let store = &mut *inst.store;
        (inst, store)
    }
}

fn range_ok(start: u64, len: u64, size: u64) -> bool {
    start.checked_add(len).is_some_and(|end| end <= size)
}

// The growth builtins may trap with the store limiter's error, which needs
// the calling Wasm frame for the backtrace: these entry points add the
// caller's frame pointer and return address to the arguments and jump to
// the Rust function, which returns straight to the caller.
std::arch::global_asm!(
    ".text",
    ".globl weft_memory_grow",
    ".type weft_memory_grow,@function",
    "weft_memory_grow:",
    // rdi = vmctx, rsi = memory, rdx = delta
    "mov rcx, rbp",
    "mov r8, [rsp]",
    "jmp {memory_grow}",
    ".size weft_memory_grow, .-weft_memory_grow",
    ".globl weft_table_grow",
    ".type weft_table_grow,@function",
    "weft_table_grow:",
    // rdi = vmctx, rsi = table, rdx = init, rcx = delta
    "mov r8, rbp",
    "mov r9, [rsp]",
    "jmp {table_grow}",
    ".size weft_table_grow, .-weft_table_grow",
    memory_grow = sym memory_grow,
    table_grow = sym table_grow,
);

extern "C" {
    fn weft_memory_grow();
    fn weft_table_grow();
}

unsafe extern "C" fn memory_grow(vmctx: *mut u8, mem: u32, delta: u64, fp: usize, pc: usize) -> i64 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    match store.grow_memory(inst.memories[mem as usize], delta) {
        Ok(Some(old)) => old as i64,
        Ok(None) => -1,
        // SAFETY: called from compiled code (through `weft_memory_grow`),
        // whose frame is `fp`; nothing here needs dropping.
        Err(e) => unsafe { crate::runtime::signals::raise_at(crate::runtime::signals::TrapCause::Host, Some(e), None, pc - 1, fp) },
    }
}

unsafe extern "C" fn memory_fill(vmctx: *mut u8, mem: u32, dst: u64, val: u32, len: u64) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    let data = store.memories[inst.memories[mem as usize]].mem.data_mut();
    if !range_ok(dst, len, data.len() as u64) {
        return 1;
    }
    data[dst as usize..(dst + len) as usize].fill(val as u8);
    0
}

unsafe extern "C" fn memory_copy(vmctx: *mut u8, dst_mem: u32, src_mem: u32, dst: u64, src: u64, len: u64) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    let d = &store.memories[inst.memories[dst_mem as usize]].mem;
    let s = &store.memories[inst.memories[src_mem as usize]].mem;
    if !range_ok(dst, len, d.byte_size()) || !range_ok(src, len, s.byte_size()) {
        return 1;
    }
    // SAFETY: both ranges were checked against the accessible sizes; `copy`
    // allows overlap within one memory.
    unsafe { std::ptr::copy(s.def.base.add(src as usize), d.def.base.add(dst as usize), len as usize) };
    0
}

unsafe extern "C" fn memory_init(vmctx: *mut u8, mem: u32, data: u32, dst: u64, src: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    let seg = if inst.dropped_data[data as usize] { &[][..] } else { &inst.module.inner.bytes[inst.module.inner.info.data[data as usize].range.clone()] };
    let target = store.memories[inst.memories[mem as usize]].mem.data_mut();
    if !range_ok(src as u64, len as u64, seg.len() as u64) || !range_ok(dst, len as u64, target.len() as u64) {
        return 1;
    }
    target[dst as usize..dst as usize + len as usize].copy_from_slice(&seg[src as usize..(src + len) as usize]);
    0
}

unsafe extern "C" fn data_drop(vmctx: *mut u8, data: u32) {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, _) = unsafe { instance_of(vmctx) };
    inst.dropped_data[data as usize] = true;
}

unsafe extern "C" fn table_grow(vmctx: *mut u8, table: u32, init: u64, delta: u64, fp: usize, pc: usize) -> i64 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    match store.grow_table(inst.tables[table as usize], delta, init) {
        Ok(Some(old)) => old as i64,
        Ok(None) => -1,
        // SAFETY: as in `memory_grow`.
        Err(e) => unsafe { crate::runtime::signals::raise_at(crate::runtime::signals::TrapCause::Host, Some(e), None, pc - 1, fp) },
    }
}

unsafe extern "C" fn table_fill(vmctx: *mut u8, table: u32, dst: u64, val: u64, len: u64) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    let t = &mut store.tables[inst.tables[table as usize]];
    if !range_ok(dst, len, t.size()) {
        return 1;
    }
    t.elements_mut()[dst as usize..(dst + len) as usize].fill(val);
    0
}

unsafe extern "C" fn table_copy(vmctx: *mut u8, dst_table: u32, src_table: u32, dst: u64, src: u64, len: u64) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    let di = inst.tables[dst_table as usize];
    let si = inst.tables[src_table as usize];
    if !range_ok(dst, len, store.tables[di].size()) || !range_ok(src, len, store.tables[si].size()) {
        return 1;
    }
    let (dst, src, len) = (dst as usize, src as usize, len as usize);
    // Lazy elements name functions of the source table's owner: materialise
    // them before they move (possibly into a table with another owner).
    for i in src..src + len {
        materialize(store, si, i);
    }
    if di == si {
        store.tables[di].elements_mut().copy_within(src..src + len, dst);
    } else {
        let values = store.tables[si].elements()[src..src + len].to_vec();
        store.tables[di].elements_mut()[dst..dst + len].copy_from_slice(&values);
    }
    0
}

unsafe extern "C" fn table_init(vmctx: *mut u8, table: u32, elem: u32, dst: u64, src: u32, len: u32) -> u32 {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, store) = unsafe { instance_of(vmctx) };
    let seg: &[u64] = inst.elems[elem as usize].as_deref().unwrap_or(&[]);
    let t = &mut store.tables[inst.tables[table as usize]];
    if !range_ok(src as u64, len as u64, seg.len() as u64) || !range_ok(dst, len as u64, t.size()) {
        return 1;
    }
    t.elements_mut()[dst as usize..dst as usize + len as usize].copy_from_slice(&seg[src as usize..(src + len) as usize]);
    0
}

unsafe extern "C" fn elem_drop(vmctx: *mut u8, elem: u32) {
    // SAFETY: called by compiled code with its own vmctx.
    let (inst, _) = unsafe { instance_of(vmctx) };
    inst.elems[elem as usize] = None;
}

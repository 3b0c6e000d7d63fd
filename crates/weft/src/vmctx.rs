//! The VM context: the one source of truth for the memory layout that compiled
//! code and the runtime share.
//!
//! Every compiled Wasm function receives a pointer to its instance's *VM context*
//! (`vmctx`). [`VMOffsets`] computes, from a module's counts alone, where each
//! field lives; the translator emits loads at those offsets and the runtime fills
//! them in at the same offsets. The store-wide state that all instances of a store
//! share (stack limit, interrupt page, the chain of active stacks) lives in one
//! [`VMStoreContext`] that every vmctx points to. The store's epoch deadline is
//! the exception: each vmctx holds a copy, so that an epoch check compares with
//! it through the vmctx register instead of loading the store context first.
//!
//! Layout of a vmctx (all pointer-sized, 8-byte aligned, 16-byte for globals):
//!
//! | field                | size                 |
//! |----------------------|----------------------|
//! | magic                | 8                    |
//! | store context ptr    | 8                    |
//! | builtins table ptr   | 8                    |
//! | instance ptr         | 8                    |
//! | type ids ptr         | 8                    |
//! | interrupt page ptr   | 8                    |
//! | epoch deadline       | 8                    |
//! | func refs            | 24 × functions       |
//! | memory def ptrs      | 8 × memories         |
//! | memory bases         | 8 × memories         |
//! | table def ptrs       | 8 × tables           |
//! | global ptrs          | 8 × globals          |
//! | tag identities       | 8 × tags             |
//! | defined globals      | 16 × defined globals |

use std::mem::offset_of;
use std::sync::atomic::AtomicU64;

use crate::frontend::ModuleInfo;

/// Value of the vmctx magic field ("WEFTVMCX"), to catch wild pointers in debug checks.
pub const VMCTX_MAGIC: u64 = u64::from_le_bytes(*b"WEFTVMCX");

/// Offsets of the fixed vmctx header fields.
pub const VMCTX_MAGIC_OFFSET: u32 = 0;
pub const VMCTX_STORE_CTX_OFFSET: u32 = 8;
pub const VMCTX_BUILTINS_OFFSET: u32 = 16;
pub const VMCTX_INSTANCE_OFFSET: u32 = 24;
pub const VMCTX_TYPE_IDS_OFFSET: u32 = 32;
/// The store's interrupt page, copied from its [`VMStoreContext`]: in epoch
/// mode the forbidden page that a check's slow path loads from. (MMU page
/// mode reads the interrupt page through the probe page below the vmctx
/// instead, a view of it: see [`VMCTX_PROBE_PAGE_SIZE`].)
pub const VMCTX_INTERRUPT_PAGE_OFFSET: u32 = 40;
/// The store's epoch deadline (epoch interruption), copied into every
/// instance's vmctx by the store whenever it changes
/// (`StoreOpaque::set_epoch_deadline_at`).
pub const VMCTX_EPOCH_DEADLINE_OFFSET: u32 = 48;
const VMCTX_HEADER_SIZE: u32 = 56;
/// In MMU page mode every vmctx is preceded by a read-only probe page of this
/// size, a view of the store's interrupt page, which the store revokes with
/// the page: a loop's interruption point is one dead load from
/// `vmctx - VMCTX_PROBE_PAGE_SIZE` (plus a per-point byte offset), through the
/// register that already holds the vmctx, and a prologue's stack check loads
/// the stack limit from the page's first word
/// ([`INTERRUPT_PAGE_STACK_LIMIT_OFFSET`]), which makes the entry of every
/// function with a stack check an interruption point.
pub const VMCTX_PROBE_PAGE_SIZE: u32 = 4096;

/// In MMU page mode every linear memory is preceded by a read-only probe page
/// (zeros; it need not show the interrupt page, since no stack limit is read
/// from it), revoked with the store's other probe pages: loops in functions
/// that access memory 0 probe `base - 1 - k`, a byte of their own for each
/// probe `k` below this bound, through the register that holds the memory's
/// base, which such loops usually keep anyway, instead of the vmctx (see
/// `Config::mmu_memory_probes`).
pub const MEMORY_PROBE_PAGE_SIZE: u32 = 4096;

/// A function reference: what `ref.func`, tables and imports hold.
///
/// A `funcref` value is a pointer to one of these (null is 0). Calling it means
/// calling `code` with `vmctx` as the callee context.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct VMFuncRef {
    /// Native code, with the Wasm calling convention of its type.
    pub code: *const u8,
    /// The callee's context: an instance vmctx, or a host function's context.
    pub vmctx: *mut u8,
    /// The canonical type id of the function.
    pub type_id: u32,
    pub _pad: u32,
}

pub const FUNCREF_CODE_OFFSET: u32 = 0;
pub const FUNCREF_VMCTX_OFFSET: u32 = 8;
pub const FUNCREF_TYPE_OFFSET: u32 = 16;
pub const FUNCREF_SIZE: u32 = 24;

/// A linear memory as compiled code sees it.
#[repr(C)]
#[derive(Debug)]
pub struct VMMemoryDefinition {
    /// Start of the memory. Never moves during the memory's life.
    pub base: *mut u8,
    /// Accessible bytes.
    pub current_length: AtomicU64,
}

/// Where compiled code reads a memory's accessible length.
pub const MEMORY_LENGTH_OFFSET: u32 = offset_of!(VMMemoryDefinition, current_length) as u32;

/// A table as compiled code sees it: elements are 8 bytes (funcref pointer or
/// externref handle, 0 = null).
#[repr(C)]
#[derive(Debug)]
pub struct VMTableDefinition {
    pub base: *mut u64,
    pub current_elements: u64,
}

pub const TABLE_BASE_OFFSET: u32 = 0;
pub const TABLE_LENGTH_OFFSET: u32 = 8;

/// Storage of one global: 16 bytes so that a v128 fits later.
#[repr(C, align(16))]
#[derive(Debug, Clone, Copy, Default)]
pub struct VMGlobal {
    pub bits: [u64; 2],
}

pub const GLOBAL_SIZE: u32 = 16;

/// State shared by all instances of a store and read by compiled code.
#[repr(C)]
#[derive(Debug)]
pub struct VMStoreContext {
    /// Lowest stack address Wasm code may use; checked in every prologue.
    pub stack_limit: usize,
    /// The interrupt page loaded at every interruption point in MMU mode; in
    /// epoch mode, a forbidden page that a check's slow path loads from, so
    /// that reaching the deadline faults into the store's callback.
    pub interrupt_page: *const u8,
    /// The running continuation (stack switching), the innermost of the
    /// chain of active ones (see `runtime::continuation`); null while Wasm
    /// runs on the stack the host entered it on.
    pub active_stack: *mut u8,
    /// The store that owns this context.
    pub store: *mut u8,
    /// In MMU page mode, the writable view of the interrupt page's first word,
    /// where prologues read the stack limit (see [`VMCTX_INTERRUPT_PAGE_OFFSET`]);
    /// null otherwise.
    pub stack_limit_mirror: *mut usize,
    /// With segment probes (see [`Tunables::mmu_segment_probes`](crate::config::Tunables::mmu_segment_probes)),
    /// a probe page of the store (its first instance's), which every entry
    /// into Wasm makes the thread's GS base; 0 otherwise, or before the store
    /// has an instance.
    pub segment_probe_page: usize,
    /// Fuel (with [`Tunables::consume_fuel`](crate::config::Tunables::consume_fuel)):
    /// minus the fuel the guest may still use before the store's out-of-fuel
    /// handling runs; compiled code adds each operator's cost and checks
    /// for a value of 0 or more at function entries and loop headers.
    pub fuel_consumed: i64,
    /// Whether compiled code keeps `fuel_consumed` in the pinned register
    /// while it runs (fuel is on): a trap handler then writes the register
    /// back, so that what ran before a trap is counted.
    pub fuel_in_pinned_reg: bool,
    /// Stack switching: the values that travel with a switch (arguments of
    /// a resume, payloads of a suspension, results of a continuation), in
    /// 16-byte slots; see `runtime::continuation`.
    pub cont_values: *mut u8,
    /// Stack switching: the switch a continuation builtin prepared, which
    /// compiled code then makes with Cranelift's `stack_switch`: where to
    /// save the current context, where to load the next one from, and the
    /// payload handed to the other side.
    pub switch_store: usize,
    /// See [`Self::switch_store`].
    pub switch_load: usize,
    /// See [`Self::switch_store`].
    pub switch_payload: u64,
}

impl VMStoreContext {
    /// Sets the lowest stack address Wasm code may use, wherever prologues read it.
    pub fn set_stack_limit(&mut self, limit: usize) {
        self.stack_limit = limit;
        if !self.stack_limit_mirror.is_null() {
            // SAFETY: the mirror is the store's interrupt page, mapped writable
            // for the store's life and written only by the thread running it.
            unsafe { self.stack_limit_mirror.write_volatile(limit) };
        }
    }
}

pub const STORE_CTX_STACK_LIMIT_OFFSET: u32 = offset_of!(VMStoreContext, stack_limit) as u32;
/// Where compiled code keeps the fuel counter between calls.
pub const STORE_CTX_FUEL_OFFSET: u32 = offset_of!(VMStoreContext, fuel_consumed) as u32;
/// Where compiled code finds the values of a stack switch.
pub const STORE_CTX_CONT_VALUES_OFFSET: u32 = offset_of!(VMStoreContext, cont_values) as u32;
/// Where compiled code finds the running continuation.
pub const STORE_CTX_ACTIVE_STACK_OFFSET: u32 = offset_of!(VMStoreContext, active_stack) as u32;
/// Where compiled code finds the MMU page mode's stack-limit mirror.
pub const STORE_CTX_STACK_LIMIT_MIRROR_OFFSET: u32 = offset_of!(VMStoreContext, stack_limit_mirror) as u32;
/// Where compiled code finds the switch a continuation builtin prepared.
pub const STORE_CTX_SWITCH_STORE_OFFSET: u32 = offset_of!(VMStoreContext, switch_store) as u32;
/// See [`STORE_CTX_SWITCH_STORE_OFFSET`].
pub const STORE_CTX_SWITCH_LOAD_OFFSET: u32 = offset_of!(VMStoreContext, switch_load) as u32;
/// See [`STORE_CTX_SWITCH_STORE_OFFSET`].
pub const STORE_CTX_SWITCH_PAYLOAD_OFFSET: u32 = offset_of!(VMStoreContext, switch_payload) as u32;
/// Where the stack limit sits in the interrupt page (MMU page mode).
pub const INTERRUPT_PAGE_STACK_LIMIT_OFFSET: u32 = 0;
pub const STORE_CTX_INTERRUPT_PAGE_OFFSET: u32 = offset_of!(VMStoreContext, interrupt_page) as u32;

/// Where each field of a module's vmctx lives.
#[derive(Debug, Clone)]
pub struct VMOffsets {
    pub num_memories: u32,
    pub num_imported_globals: u32,
    pub func_refs: u32,
    pub memories: u32,
    pub memory_bases: u32,
    pub tables: u32,
    pub globals: u32,
    pub tags: u32,
    pub defined_globals: u32,
    pub size: u32,
}

impl VMOffsets {
    pub fn new(info: &ModuleInfo) -> Self {
        let num_funcs = info.funcs.len() as u32;
        let num_memories = info.memories.len() as u32;
        let num_tables = info.tables.len() as u32;
        let num_globals = info.globals.len() as u32;
        let func_refs = VMCTX_HEADER_SIZE;
        let memories = func_refs + FUNCREF_SIZE * num_funcs;
        let memory_bases = memories + 8 * num_memories;
        let tables = memory_bases + 8 * num_memories;
        let globals = tables + 8 * num_tables;
        let tags = globals + 8 * num_globals;
        let defined_globals = (tags + 8 * info.tags.len() as u32 + 15) & !15;
        let size = defined_globals + GLOBAL_SIZE * (num_globals - info.num_imported_globals);
        VMOffsets {
            num_memories,
            num_imported_globals: info.num_imported_globals,
            func_refs,
            memories,
            memory_bases,
            tables,
            globals,
            tags,
            defined_globals,
            size,
        }
    }

    /// Offset of function `f`'s [`VMFuncRef`].
    pub fn func_ref(&self, f: u32) -> u32 {
        self.func_refs + FUNCREF_SIZE * f
    }
    /// Offset of the pointer to memory `m`'s [`VMMemoryDefinition`].
    pub fn memory_ptr(&self, m: u32) -> u32 {
        self.memories + 8 * m
    }
    /// Offset of a copy of memory `m`'s base address. A memory's reservation
    /// never moves (growth only changes protection), so its base is fixed for
    /// its life and compiled code reaches the heap with one load from the
    /// vmctx instead of two (vmctx -> definition -> base).
    pub fn memory_base(&self, m: u32) -> u32 {
        self.memory_bases + 8 * m
    }
    /// Offset of the pointer to table `t`'s [`VMTableDefinition`].
    pub fn table_ptr(&self, t: u32) -> u32 {
        self.tables + 8 * t
    }
    /// Offset of the pointer to global `g`'s storage.
    pub fn global_ptr(&self, g: u32) -> u32 {
        self.globals + 8 * g
    }
    /// Offset of tag `t`'s identity: the index of the tag in its store, which
    /// an exception object records (see [`EXN_TAG_OFFSET`]). Imported tags
    /// share the identity of the tag they import.
    pub fn tag_identity(&self, t: u32) -> u32 {
        self.tags + 8 * t
    }
    /// Offset of defined global `g`'s storage inside the vmctx (`g` is a module
    /// global index, which must not be imported).
    pub fn defined_global(&self, g: u32) -> u32 {
        self.defined_globals + GLOBAL_SIZE * (g - self.num_imported_globals)
    }
}

/// Indices into the builtins table that compiled code calls for work too large to
/// inline. Each is an `extern "C"` function taking the caller's vmctx first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Builtin {
    /// (vmctx, mem, delta: i64) -> i64 old pages or -1
    MemoryGrow,
    /// (vmctx, mem, dst, val: i32, len) -> i32 status
    MemoryFill,
    /// (vmctx, dst_mem, src_mem, dst, src, len) -> i32 status
    MemoryCopy,
    /// (vmctx, mem, data, dst, src: i32, len: i32) -> i32 status
    MemoryInit,
    /// (vmctx, data)
    DataDrop,
    /// (vmctx, table, init: i64, delta: i64) -> i64 old size or -1
    TableGrow,
    /// (vmctx, table, dst, val: i64, len) -> i32 status
    TableFill,
    /// (vmctx, dst_table, src_table, dst, src, len) -> i32 status
    TableCopy,
    /// (vmctx, table, elem, dst, src: i32, len: i32) -> i32 status
    TableInit,
    /// (vmctx, elem)
    ElemDrop,
    /// (vmctx, table, index: i64) -> i64: materialises a lazily initialised
    /// funcref table element (see [`LAZY_FUNCREF_TAG`]) and returns it.
    TableLazyInit,
    /// (vmctx, tag: i32) -> exn: allocates an exception object of module tag
    /// `tag`, whose payload compiled code then writes (see [`EXN_PAYLOAD_OFFSET`]).
    ExnNew,
    /// (vmctx, exn): a handler that does not pass the exception on is done
    /// with it; frees it unless it was ever exposed as a value.
    ExnDrop,
    /// Not an `extern "C"` function but the throw stub, called with the Wasm
    /// (tail) calling convention as `(vmctx, exn) -> !`: it unwinds to the
    /// innermost handler above its caller (see `runtime::exception`).
    Throw,
    /// (vmctx, funcref) -> contref, or 0 if the store may not have another
    /// continuation: `cont.new`.
    ContNew,
    /// (vmctx, contref, nargs: i32) -> contref, or 0 if the continuation
    /// was already consumed: `cont.bind`, binding the first `nargs` switch
    /// values.
    ContBind,
    /// (vmctx, contref, handlers, nargs: i32, throw: i32) -> i32 status
    /// (see [`CONT_STATUS_CONSUMED`]): prepares the switch of `resume`
    /// (`throw` = 0) or `resume_throw` (1, the exception in value 0).
    /// `handlers` is the resume's handler list (see [`CONT_HANDLER_SWITCH`]).
    ContResume,
    /// (vmctx, tag: i32, nargs: i32) -> i32 status: prepares the switch of
    /// `suspend` of module tag `tag` to its handler.
    ContSuspend,
    /// (vmctx, contref, tag: i32, nargs: i32) -> i32 status: prepares the
    /// switch of `switch` to `contref`, through module tag `tag`'s handler.
    ContSwitch,
}

/// The builtins, one past the last.
pub const NUM_BUILTINS: usize = Builtin::ContSwitch as usize + 1;

/// Status of a continuation builtin: the switch is prepared.
pub const CONT_STATUS_OK: i64 = 0;
/// Status of a continuation builtin: the continuation was already consumed.
pub const CONT_STATUS_CONSUMED: i64 = 1;
/// Status of a continuation builtin: no handler of the tag is active.
pub const CONT_STATUS_UNHANDLED: i64 = 2;

/// The payload a resume receives when its continuation returned (the
/// results in the switch values).
pub const CONT_RETURNED: u64 = 0;
/// The payload a resume receives when an exception left its continuation
/// (the exception in switch value 0).
pub const CONT_THREW: u64 = 1;
/// The payload a resume receives for a suspension to its handler `k` is
/// `CONT_SUSPENDED + k` (the tag's values, then the continuation, in the
/// switch values).
pub const CONT_SUSPENDED: u64 = 2;
/// The payload a suspended continuation receives when resumed (its values
/// in the switch values).
pub const CONT_RESUMED: u64 = 0;
/// The payload a suspended continuation receives from `resume_throw` (the
/// exception in switch value 0).
pub const CONT_RESUMED_THROWING: u64 = 1;
/// The fields of a continuation object (`runtime::continuation::ContObj`,
/// which checks these offsets) that compiled code reads and writes on the
/// inline paths of `resume` and `suspend`: its `stack_switch` context
/// (where it continues while suspended)...
pub const CONT_CTX_OFFSET: u32 = 0;
/// ... its revision (`u64`; see [`CONT_REF_REVISION_SHIFT`]) ...
pub const CONT_REVISION_OFFSET: u32 = 24;
/// ... the continuation that resumed it, while running (null: the host's stack) ...
pub const CONT_PARENT_OFFSET: u32 = 32;
/// ... the outermost continuation of the chain it suspended with ...
pub const CONT_LAST_ANCESTOR_OFFSET: u32 = 40;
/// ... the handler list of the resume that resumed it, while running ...
pub const CONT_HANDLERS_OFFSET: u32 = 48;
/// ... the top of its stack, whose top three words hold its resumer's context ...
pub const CONT_STACK_TOP_OFFSET: u32 = 56;
/// ... its stack's limit for Wasm code ...
pub const CONT_STACK_LIMIT_OFFSET: u32 = 64;
/// ... its state (`u32`: [`CONT_STATE_SUSPENDED`], [`CONT_STATE_RUNNING`], ...) ...
pub const CONT_STATE_OFFSET: u32 = 112;
/// ... the reference under which a resume or switch may take the inline
/// path (`u64`; zero, which no reference equals, unless it is suspended
/// alone, has no bound values, and its revision may grow): one comparison
/// with the resumed reference checks all of that and its revision ...
pub const CONT_FAST_KEY_OFFSET: u32 = 120;
/// ... and, while running, the stack limit of its resumer's stack.
pub const CONT_RESUMER_LIMIT_OFFSET: u32 = 128;
/// Continuation states (see [`CONT_STATE_OFFSET`]).
pub const CONT_STATE_FRESH: u32 = 0;
/// See [`CONT_STATE_FRESH`].
pub const CONT_STATE_SUSPENDED: u32 = 1;
/// See [`CONT_STATE_FRESH`].
pub const CONT_STATE_RUNNING: u32 = 2;
/// A continuation reference is the object's address with its revision
/// shifted this far left (the largest revision is [`CONT_MAX_REVISION`]).
pub const CONT_REF_REVISION_SHIFT: u32 = 48;
/// See [`CONT_REF_REVISION_SHIFT`].
pub const CONT_MAX_REVISION: u64 = 0xffff;
/// The size of the resumer's context record at the top of a continuation's stack.
pub const CONT_RESUMER_RECORD_SIZE: u32 = 24;

/// A resume's handler list, which compiled code writes in its frame: a
/// `u32` count, then a `(tag identity, kind)` pair of `u32`s per clause in
/// order; the kind is the index of an `(on $tag $label)` clause among the
/// label clauses, or this value for `(on $tag switch)`. A list has at least
/// one pair (a resume without clauses writes a count of 0 and a pair that
/// matches nothing: identity `u32::MAX`, this kind), which the inline path
/// of `suspend` reads.
pub const CONT_HANDLER_SWITCH: u32 = u32::MAX;
/// Set in the tag identity of an `(on $tag switch)` clause in a handler
/// list, so that a `suspend` (whose inline path compares identities only)
/// never takes it for a label clause. Tag identities are below it.
pub const CONT_HANDLER_SWITCH_ID_BIT: u32 = 1 << 31;

/// An exception object: a 16-byte header (the tag's identity as a `u32` at
/// [`EXN_TAG_OFFSET`], whether it was ever exposed as a Wasm or host value
/// as a `u32` at [`EXN_EXPOSED_OFFSET`], the payload's length), then the
/// payload in 16-byte slots, the tag's parameters in order, each in its raw
/// form (a `ValRaw`). An `exnref` value is the object's address (null is 0).
pub const EXN_TAG_OFFSET: u32 = 0;
/// See [`EXN_TAG_OFFSET`].
pub const EXN_EXPOSED_OFFSET: u32 = 4;
/// See [`EXN_TAG_OFFSET`].
pub const EXN_LEN_OFFSET: u32 = 8;
/// Offset of payload slot 0 in an exception object; slot `i` is 16 bytes further per index.
pub const EXN_PAYLOAD_OFFSET: u32 = 16;
/// Size of one payload slot.
pub const EXN_SLOT_SIZE: u32 = 16;

/// Funcref table elements with this low bit set are not yet materialised: the
/// element is `(function index << 1) | 1`, a function of the table's owning
/// instance, whose funcref is written on first use. Real funcrefs are pointers
/// to 8-byte-aligned [`VMFuncRef`]s, so their low bit is clear.
pub const LAZY_FUNCREF_TAG: u64 = 1;

//! The translator: lowers one validated Wasm function body to Cranelift IR.
//!
//! Locals are Cranelift `Variable`s (SSA construction is left to the
//! `FunctionBuilder`); the Wasm operand stack is a `Vec<Value>` during
//! translation; structured control flow becomes blocks with parameters. Every
//! access to instance state goes through the vmctx at offsets from
//! [`VMOffsets`]. Each operator is validated just before
//! it is translated, so the translator may assume well-typed input.
//!
//! The translation is split by concern: this module holds the driver (the
//! per-function state, the operand stack, signatures) and hands each operator
//! to the module that owns its lowering: [`control`] (structured control
//! flow), [`variables`] (locals and globals), [`numeric`], [`memory`]
//! (linear memory and bulk operations), [`tables`] (tables and references),
//! [`calls`], [`simd`] (SIMD and relaxed SIMD), [`exceptions`] (throwing and
//! `try` regions), [`continuations`] (stack switching), [`interruption`] (where interruption checks go and what
//! they are) and [`fuel`] (counting what runs).

mod calls;
mod continuations;
mod control;
mod exceptions;
mod fuel;
mod interruption;
mod memory;
mod numeric;
mod simd;
mod tables;
mod variables;

use cranelift_codegen::ir::{
    self, condcodes::FloatCC, condcodes::IntCC, types, AbiParam, ArgumentPurpose, Block, BlockArg, ExtFuncData, ExternalName, Function, GlobalValueData,
    InstBuilder, JumpTableData, MemFlagsData, Signature, SourceLoc, TrapCode, Type, UserExternalName, UserFuncName, Value,
};
use cranelift_codegen::isa::CallConv;
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext, Variable};
use wasmparser::{BlockType, FuncValidator, MemArg, Operator, ValidatorResources};

use crate::config::Tunables;
use crate::error::CompileError;
use crate::features::Proposal;
use crate::frontend::ModuleInfo;
use crate::trap::codes;
use crate::vmctx::{self, Builtin, VMOffsets};

/// What the translator needs to know about the module and the engine.
pub struct TranslateEnv<'a> {
    pub info: &'a ModuleInfo,
    pub offsets: &'a VMOffsets,
    pub tunables: &'a Tunables,
    /// Address of the engine's epoch counter, which epoch checks load from.
    pub epoch_counter: usize,
    /// Address of a page that always faults, which fuel checks' slow paths
    /// load from (see `translate::fuel`).
    pub fault_page: usize,
}

/// The Cranelift type that holds values of a Wasm type.
pub fn clif_type(ty: &wasmparser::ValType) -> Type {
    match ty {
        wasmparser::ValType::I32 => types::I32,
        wasmparser::ValType::I64 => types::I64,
        wasmparser::ValType::F32 => types::F32,
        wasmparser::ValType::F64 => types::F64,
        wasmparser::ValType::V128 => types::I8X16,
        wasmparser::ValType::Ref(_) => types::I64,
    }
}

use interruption::{call_sites, verify_interruption_checks};
pub use interruption::{SEGMENT_PROBE_DISPLACEMENT, SEGMENT_PROBE_TAG};

/// The native signature of a Wasm function: callee vmctx, caller vmctx, then the
/// Wasm parameters; Wasm results. Uses the tail calling convention so that
/// `return_call` works everywhere.
pub fn wasm_signature(params: impl IntoIterator<Item = Type>, results: impl IntoIterator<Item = Type>) -> Signature {
    let mut sig = Signature::new(CallConv::Tail);
    sig.params.push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
    sig.params.push(AbiParam::new(types::I64));
    sig.params.extend(params.into_iter().map(AbiParam::new));
    sig.returns.extend(results.into_iter().map(AbiParam::new));
    sig
}

/// The native signature of a Wasm function type of the module.
pub fn func_type_signature(ty: &wasmparser::FuncType) -> Signature {
    wasm_signature(ty.params().iter().map(clif_type), ty.results().iter().map(clif_type))
}

/// The native signature of a builtin (see [`Builtin`]).
pub fn builtin_signature(b: Builtin) -> Signature {
    use types::{I32, I64};
    let (params, returns): (&[Type], &[Type]) = match b {
        Builtin::MemoryGrow => (&[I64, I32, I64], &[I64]),
        Builtin::MemoryFill => (&[I64, I32, I64, I32, I64], &[I32]),
        Builtin::MemoryCopy => (&[I64, I32, I32, I64, I64, I64], &[I32]),
        Builtin::MemoryInit => (&[I64, I32, I32, I64, I32, I32], &[I32]),
        Builtin::DataDrop => (&[I64, I32], &[]),
        Builtin::TableGrow => (&[I64, I32, I64, I64], &[I64]),
        Builtin::TableFill => (&[I64, I32, I64, I64, I64], &[I32]),
        Builtin::TableCopy => (&[I64, I32, I32, I64, I64, I64], &[I32]),
        Builtin::TableInit => (&[I64, I32, I32, I64, I32, I32], &[I32]),
        Builtin::ElemDrop => (&[I64, I32], &[]),
        Builtin::TableLazyInit => (&[I64, I32, I64], &[I64]),
        Builtin::ExnNew => (&[I64, I32], &[I64]),
        Builtin::ExnDrop => (&[I64, I64], &[]),
        Builtin::ContNew => (&[I64, I64], &[I64]),
        Builtin::ContBind => (&[I64, I64, I32], &[I64]),
        Builtin::ContResume => (&[I64, I64, I64, I32, I32], &[I32]),
        Builtin::ContSuspend => (&[I64, I32, I32], &[I32]),
        Builtin::ContSwitch => (&[I64, I64, I32, I32], &[I32]),
        // The throw stub: the Wasm calling convention, so that every
        // register is clobbered on the way to a handler.
        Builtin::Throw => {
            let mut sig = Signature::new(CallConv::Tail);
            sig.params.push(AbiParam::special(types::I64, ArgumentPurpose::VMContext));
            sig.params.push(AbiParam::new(types::I64));
            return sig;
        }
    };
    let mut sig = Signature::new(CallConv::SystemV);
    sig.params.extend(params.iter().map(|t| AbiParam::new(*t)));
    sig.returns.extend(returns.iter().map(|t| AbiParam::new(*t)));
    sig
}

/// Flags for loads of vmctx fields that never change during an instance's life.
fn readonly_flags() -> MemFlagsData {
    MemFlagsData::trusted().with_readonly().with_can_move()
}

/// Flags for accesses to runtime structures that are always valid but may change.
fn trusted_flags() -> MemFlagsData {
    MemFlagsData::trusted()
}

/// Flags for linear-memory accesses: little-endian, trapping as out of bounds.
fn heap_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(ir::Endianness::Little).with_trap_code(Some(TrapCode::HEAP_OUT_OF_BOUNDS))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FrameKind {
    Block,
    Loop,
    If,
    TryTable,
    LegacyTry,
}

/// The exception-handling state of a `try_table` or legacy `try` frame.
struct Region {
    /// Where exceptions thrown in the region land (one `i64` parameter, the exception).
    dispatch: Block,
    /// Whether calls here are in the region: always for a `try_table`; for
    /// a legacy `try`, until its first catch clause.
    in_body: bool,
    /// Legacy `try`: the end of the dispatch code so far, where the next
    /// clause's test goes (with the exception's value there); `None` after
    /// a `catch_all`.
    chain: Option<(Block, Value)>,
    /// Legacy `try`: the exception a catch clause caught, for `rethrow`.
    caught: Option<Variable>,
}

struct ControlFrame {
    kind: FrameKind,
    /// Where `end` (and branches to non-loops) continue.
    destination: Block,
    /// The loop header (branches to a loop go here).
    header: Option<Block>,
    num_params: usize,
    num_results: usize,
    /// Operand stack height below the block's parameters.
    original_stack_size: usize,
    /// Whether any edge into `destination` was emitted.
    destination_reached: bool,
    /// For `if`: the else block, the parameter values to start it with, whether
    /// the `if` itself was reachable, and whether an `else` was seen.
    else_block: Option<Block>,
    else_params: Vec<Value>,
    head_reachable: bool,
    else_seen: bool,
    /// Whether every edge into `destination` so far had passed an
    /// interruption check (true until an edge that had not arrives).
    checked_at_destination: bool,
    /// Whether the frame's entry had, for an `if`'s else path.
    checked_at_head: bool,
    /// `try_table` and legacy `try`: where exceptions land.
    region: Option<Region>,
    /// Legacy `try ... delegate`: the index of the frame the exceptions go to.
    delegate_to: Option<usize>,
}

impl ControlFrame {
    /// A frame entered with `num_params` values on the stack above
    /// `original_stack_size`, on a path that had passed an interruption check
    /// if `checked_at_head`; an `if` adds its else block afterwards.
    fn new(
        kind: FrameKind,
        destination: Block,
        header: Option<Block>,
        num_params: usize,
        num_results: usize,
        original_stack_size: usize,
        checked_at_head: bool,
    ) -> Self {
        ControlFrame {
            kind,
            destination,
            header,
            num_params,
            num_results,
            original_stack_size,
            destination_reached: false,
            else_block: None,
            else_params: Vec::new(),
            head_reachable: true,
            else_seen: false,
            checked_at_destination: true,
            checked_at_head,
            region: None,
            delegate_to: None,
        }
    }

    fn branch_target(&self) -> (Block, usize) {
        match self.kind {
            FrameKind::Loop => (self.header.unwrap(), self.num_params),
            _ => (self.destination, self.num_results),
        }
    }
}

/// Translates one function.
pub struct FuncTranslator<'a, 'b> {
    env: &'a TranslateEnv<'a>,
    builder: FunctionBuilder<'b>,
    validator: &'a mut FuncValidator<ValidatorResources>,
    stack: Vec<Value>,
    control: Vec<ControlFrame>,
    reachable: bool,
    /// Depth of blocks opened inside unreachable code.
    dead_depth: u32,
    locals: Vec<Variable>,
    vmctx: Value,
    memory_defs: Vec<Value>,
    memory_bases: Vec<Value>,
    type_ids: Option<Value>,
    sig_refs: std::collections::HashMap<u32, ir::SigRef>,
    builtin_sigs: std::collections::HashMap<u32, ir::SigRef>,
    func_refs: std::collections::HashMap<u32, ir::FuncRef>,
    /// Loop probes emitted so far (MMU page mode), which gives each its own
    /// byte of the probe page.
    probes: u32,
    /// A zero-sized stack slot that segment probes are emitted against (see
    /// [`SEGMENT_PROBE_DISPLACEMENT`]); created with the first one.
    segment_probe_slot: Option<ir::StackSlot>,
    /// MMU page mode: the loop probes emitted through the vmctx, with their
    /// byte of the page, which go through memory 0's base instead if the
    /// function turns out to access it (see [`Self::retarget_probes`]).
    vmctx_probes: Vec<(ir::Inst, u32)>,
    /// Whether the body accesses memory 0 through its base.
    accesses_memory0: bool,
    /// Whether every path to the current point from the function's entry or
    /// from the innermost loop header passed has gone through an interruption
    /// check. A branch back to a loop header, and in epoch and MMU pointer
    /// modes a call, made when this is false gets a check first (see
    /// [`Self::note_edge`] and [`Self::check_before_call`]).
    interruption_checked: bool,
    /// Offsets of the loops that check at their header (see
    /// [`Self::translate_body`]), sorted.
    loops_checked_at_header: Vec<u64>,
    /// MMU page mode: whether loops probe through the GS segment (where
    /// enabled, in functions with a loop that calls; see
    /// [`SEGMENT_PROBE_DISPLACEMENT`]).
    segment_probes: bool,
    /// Offset of the operator being translated.
    op_offset: u64,
    /// The instruction that makes each interruption check: the compare's
    /// branch (epoch) or the probe load (MMU modes).
    check_insts: Vec<ir::Inst>,
    /// What the rest of compilation needs to know about this body.
    facts: &'a mut FunctionFacts,
    /// The normal-return block of the `try_call` being emitted.
    pending_normal_return: Option<Block>,
    /// The fuel counter, when fuel is on (see [`fuel`]).
    fuel_var: Option<Variable>,
    /// Fuel the operators since the last charge cost.
    pending_fuel: i64,
}

/// Facts about a translated body that compilation needs after code generation.
#[derive(Debug, Default)]
pub struct FunctionFacts {
    /// Targets of `ref.func` in the body: their funcrefs must exist eagerly.
    pub ref_func_targets: Vec<u32>,
    /// The function's entry interruption point is its prologue's stack-limit
    /// load (MMU page mode, a function with calls): compilation must find that
    /// load and record it as an interruption point, unless optimisation
    /// removed every call (then the function needs no entry check).
    pub entry_point_in_prologue: bool,
}

/// Translates the body of defined function `func_index` into a Cranelift function.
pub fn translate_function(
    env: &TranslateEnv<'_>,
    func_index: u32,
    body: &wasmparser::FunctionBody<'_>,
    validator: &mut FuncValidator<ValidatorResources>,
    fctx: &mut FunctionBuilderContext,
    frontend_config: cranelift_codegen::isa::TargetFrontendConfig,
    facts: &mut FunctionFacts,
) -> anyhow::Result<Function> {
    let ty = env.info.func_type(func_index);
    let sig = func_type_signature(ty);
    let mut func = Function::with_name_signature(UserFuncName::user(0, func_index), sig);

    // The stack limit lives in the store context (vmctx -> store ctx -> limit),
    // and in MMU page mode also in the interrupt page, of which the probe page
    // just below every vmctx is a view (one load, vmctx - 4096): there the
    // prologue's limit load faults once the probe page is revoked, which makes
    // it the function-entry interruption point for free.
    let vmctx_gv = func.create_global_value(GlobalValueData::VMContext);
    let trusted = func.dfg.mem_flags.insert(trusted_flags()).unwrap();
    let limit = if env.tunables.interruption == crate::config::Interruption::MmuPage {
        func.create_global_value(GlobalValueData::Load {
            base: vmctx_gv,
            offset: (vmctx::INTERRUPT_PAGE_STACK_LIMIT_OFFSET as i32 - vmctx::VMCTX_PROBE_PAGE_SIZE as i32).into(),
            global_type: types::I64,
            flags: trusted,
        })
    } else {
        let ro = func.dfg.mem_flags.insert(readonly_flags()).unwrap();
        let store_ctx = func.create_global_value(GlobalValueData::Load {
            base: vmctx_gv,
            offset: (vmctx::VMCTX_STORE_CTX_OFFSET as i32).into(),
            global_type: types::I64,
            flags: ro,
        });
        func.create_global_value(GlobalValueData::Load {
            base: store_ctx,
            offset: (vmctx::STORE_CTX_STACK_LIMIT_OFFSET as i32).into(),
            global_type: types::I64,
            flags: trusted,
        })
    };
    func.stack_limit = Some(limit);

    let builder = FunctionBuilder::new(&mut func, fctx);
    let mut t = FuncTranslator {
        env,
        builder,
        validator,
        stack: Vec::new(),
        control: Vec::new(),
        reachable: true,
        dead_depth: 0,
        locals: Vec::new(),
        vmctx: Value::from_u32(0),
        memory_defs: Vec::new(),
        memory_bases: Vec::new(),
        type_ids: None,
        sig_refs: Default::default(),
        builtin_sigs: Default::default(),
        func_refs: Default::default(),
        probes: 0,
        segment_probe_slot: None,
        vmctx_probes: Vec::new(),
        accesses_memory0: false,
        interruption_checked: false,
        loops_checked_at_header: Vec::new(),
        segment_probes: false,
        op_offset: 0,
        check_insts: Vec::new(),
        facts,
        pending_normal_return: None,
        fuel_var: None,
        pending_fuel: 0,
    };
    t.translate_body(ty, body)?;
    t.retarget_probes();
    let checks = std::mem::take(&mut t.check_insts);
    let builtin_sigs: Vec<ir::SigRef> = t.builtin_sigs.values().copied().collect();
    t.builder.finalize(frontend_config);
    let mode = env.tunables.interruption;
    if mode != crate::config::Interruption::None {
        // In MMU page mode the prologue of a function that calls is the check
        // before its calls.
        let calls_need_checks = mode != crate::config::Interruption::MmuPage;
        verify_interruption_checks(&func, &checks, &builtin_sigs, calls_need_checks)
            .map_err(|e| CompileError::internal(format_args!("in function {func_index}: {e}")))?;
    }
    Ok(func)
}

impl<'a, 'b> FuncTranslator<'a, 'b> {
    fn translate_body(&mut self, ty: &wasmparser::FuncType, body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<()> {
        let entry = self.builder.create_block();
        self.builder.append_block_params_for_function_params(entry);
        self.builder.switch_to_block(entry);
        self.builder.seal_block(entry);
        let params = self.builder.block_params(entry).to_vec();
        self.vmctx = params[0];

        // Parameters, then declared locals (zero-initialised).
        for (i, p) in ty.params().iter().enumerate() {
            let var = self.builder.declare_var(clif_type(p));
            self.builder.def_var(var, params[i + 2]);
            self.locals.push(var);
        }
        let mut locals_reader = body.get_locals_reader()?;
        for _ in 0..locals_reader.get_count() {
            let offset = locals_reader.original_position();
            let (count, ty) = locals_reader.read()?;
            self.validator.define_locals(offset, count, ty)?;
            let clif = clif_type(&ty);
            for _ in 0..count {
                let var = self.builder.declare_var(clif);
                let zero = self.zero_value(clif);
                self.builder.def_var(var, zero);
                self.locals.push(var);
            }
        }

        // Memory definitions and bases never move: load them once, up front
        // (the base from its copy in the vmctx, one load).
        let offsets = self.env.offsets;
        for m in 0..offsets.num_memories {
            let def = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, offsets.memory_ptr(m) as i32);
            let base = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, offsets.memory_base(m) as i32);
            self.memory_defs.push(def);
            self.memory_bases.push(base);
        }
        self.fuel_function_entry(body)?;

        let exit = self.builder.create_block();
        for r in ty.results() {
            self.builder.append_block_param(exit, clif_type(r));
        }
        self.control.push(ControlFrame::new(FrameKind::Block, exit, None, 0, ty.results().len(), 0, self.interruption_checked));
        // Every cycle of the control flow graph goes through a back edge,
        // which checks unless a check was passed since the loop header. A
        // function that calls nothing runs a bounded amount of code between
        // those, so only calls need a check before them: that bounds
        // recursion as well. In MMU page mode the prologue's stack check of a
        // function that calls is that check. Otherwise the check is made
        // before a call on each path that has not passed one since the entry
        // or the last loop header, and a loop whose body calls checks at its
        // header instead of on its back edges: one check per iteration then
        // serves the calls and the cycle (a check before the call plus one on
        // the back edge of a path that skips the call would make two per
        // iteration in a recursive function whose recursion was partly turned
        // into a loop).
        match self.env.tunables.interruption {
            crate::config::Interruption::None => self.interruption_checked = true,
            crate::config::Interruption::MmuPage => {
                let sites = call_sites(body)?;
                self.facts.entry_point_in_prologue = sites.any;
                // A probe through the vmctx keeps it in a register at the
                // back edge of every loop: where a loop calls, a
                // callee-saved register or a reload (richards' scheduler
                // loop ran 20-39% slower for it). A segment probe needs no
                // register but is ten bytes long, which costs more than the
                // register in tight loops that do not call. So a function
                // with a loop that calls gets segment probes in all its
                // loops (a vmctx probe in any of them would keep the vmctx
                // live across the others), and other functions keep vmctx
                // probes.
                self.segment_probes = self.env.tunables.mmu_segment_probes && !sites.loops.is_empty();
            }
            crate::config::Interruption::Epoch | crate::config::Interruption::MmuPointer => {
                self.loops_checked_at_header = call_sites(body)?.loops;
            }
        }

        let mut reader = body.get_operators_reader()?;
        while !reader.eof() {
            let (op, offset) = reader.read_with_offset()?;
            self.op_offset = offset;
            self.validator.op(offset, &op)?;
            self.builder.set_srcloc(SourceLoc::new(offset as u32));
            if self.control.is_empty() {
                anyhow::bail!("operators after the end of the function");
            }
            self.translate_op(&op)?;
        }
        reader.finish()?;
        Ok(())
    }

    fn zero_value(&mut self, ty: Type) -> Value {
        match ty {
            types::F32 => self.builder.ins().f32const(0.0),
            types::F64 => self.builder.ins().f64const(0.0),
            types::I8X16 => {
                let c = self.builder.func.dfg.constants.insert(vec![0u8; 16].into());
                self.builder.ins().vconst(types::I8X16, c)
            }
            _ => self.builder.ins().iconst(ty, 0),
        }
    }

    fn pop(&mut self) -> Value {
        self.stack.pop().expect("validated operand stack")
    }
    fn pop2(&mut self) -> (Value, Value) {
        let b = self.pop();
        let a = self.pop();
        (a, b)
    }
    fn pop3(&mut self) -> (Value, Value, Value) {
        let c = self.pop();
        let (a, b) = self.pop2();
        (a, b, c)
    }
    fn push(&mut self, v: Value) {
        self.stack.push(v);
    }
    fn peekn(&self, n: usize) -> &[Value] {
        &self.stack[self.stack.len() - n..]
    }

    fn block_type(&self, bt: BlockType) -> (Vec<Type>, Vec<Type>) {
        match bt {
            BlockType::Empty => (vec![], vec![]),
            BlockType::Type(t) => (vec![], vec![clif_type(&t)]),
            BlockType::FuncType(i) => {
                let f = &self.env.info.types[i as usize];
                (f.params().iter().map(clif_type).collect(), f.results().iter().map(clif_type).collect())
            }
        }
    }

    fn new_block_with_params(&mut self, tys: &[Type]) -> Block {
        let b = self.builder.create_block();
        for t in tys {
            self.builder.append_block_param(b, *t);
        }
        b
    }

    fn jump_args(vals: &[Value]) -> Vec<BlockArg> {
        vals.iter().map(|v| BlockArg::Value(*v)).collect()
    }

    fn translate_op(&mut self, op: &Operator<'_>) -> anyhow::Result<()> {
        if !self.reachable {
            return self.translate_unreachable_op(op);
        }
        self.fuel_before_op(op);
        // Each concern's lowering claims its operators; the order puts the
        // most frequent first.
        let translated = self.translate_variable(op)?
            || self.translate_numeric(op)?
            || self.translate_memory(op)?
            || self.translate_control(op)?
            || self.translate_call_op(op)?
            || self.translate_table(op)?
            || self.translate_simd(op)?
            || self.translate_exception_op(op)?
            || self.translate_continuation_op(op)?;
        if translated {
            self.fuel_after_op(op);
            return Ok(());
        }
        Err(match Proposal::of_operator(op) {
            Some(proposal) => CompileError::unsupported(proposal, format_args!("operator {op:?}")),
            None => CompileError::internal(format_args!("operator {op:?} has no lowering")),
        })
    }

    fn const_u32(&mut self, v: u32) -> Value {
        self.builder.ins().iconst(types::I32, v as i64)
    }

    fn index_to_i64(&mut self, v: Value, is64: bool) -> Value {
        if is64 {
            v
        } else {
            self.builder.ins().uextend(types::I64, v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `block0 -> block1 -> block1`: a loop whose block holds a load (the
    /// check, when it is passed as one), with a call in block0 if `call`.
    fn looping_function(call: bool) -> (Function, ir::Inst) {
        let mut func = Function::with_name_signature(UserFuncName::user(0, 0), ir::Signature::new(CallConv::SystemV));
        let mut fctx = FunctionBuilderContext::new();
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let (entry, body) = (b.create_block(), b.create_block());
        b.switch_to_block(entry);
        if call {
            let signature = b.import_signature(ir::Signature::new(CallConv::SystemV));
            let callee = b.import_function(ExtFuncData { name: ExternalName::testcase("f"), signature, colocated: true, patchable: false });
            b.ins().call(callee, &[]);
        }
        b.ins().jump(body, &[]);
        b.switch_to_block(body);
        let addr = b.ins().iconst(types::I64, 0x1000);
        let v = b.ins().load(types::I8, trusted_flags(), addr, 0);
        let probe = b.func.dfg.value_def(v).unwrap_inst();
        b.ins().jump(body, &[]);
        b.seal_all_blocks();
        b.finalize(crate::compile::build_isa(&crate::Config::new()).unwrap().frontend_config());
        (func, probe)
    }

    #[test]
    fn a_cycle_without_a_check_is_refused() {
        let (func, probe) = looping_function(false);
        verify_interruption_checks(&func, &[probe], &[], true).unwrap();
        let err = verify_interruption_checks(&func, &[], &[], true).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
    }

    #[test]
    fn a_call_before_any_check_is_refused_where_calls_need_one() {
        let (func, probe) = looping_function(true);
        let err = verify_interruption_checks(&func, &[probe], &[], true).unwrap_err();
        assert!(err.to_string().contains("call"), "{err}");
        // MMU page mode: the callee's prologue checks.
        verify_interruption_checks(&func, &[probe], &[], false).unwrap();
        // A builtin is not a Wasm call.
        let call = func.layout.block_insts(func.layout.entry_block().unwrap()).next().unwrap();
        let sig = func.dfg.call_signature(call).unwrap();
        verify_interruption_checks(&func, &[probe], &[sig], true).unwrap();
    }

    /// Translates the last function of `wat` with `tunables`.
    fn translate_wat(wat: &str, tunables: &Tunables) -> Function {
        let binary = wat::parse_str(wat).unwrap();
        let (info, mut pending) = crate::frontend::parse(&binary, crate::features::Proposals::default().wasm_features()).unwrap();
        let offsets = VMOffsets::new(&info);
        let env = TranslateEnv { info: &info, offsets: &offsets, tunables, epoch_counter: 0, fault_page: 0 };
        let last = pending.pop().unwrap();
        let mut validator = last.validator.into_validator(Default::default());
        let frontend_config = crate::compile::build_isa(&crate::Config::new()).unwrap().frontend_config();
        let mut facts = FunctionFacts::default();
        translate_function(&env, last.index, &last.body, &mut validator, &mut FunctionBuilderContext::new(), frontend_config, &mut facts).unwrap()
    }

    /// The loop probes of `func`: (base is the vmctx parameter, offset).
    fn loop_probes(func: &Function) -> Vec<(bool, i32)> {
        let vmctx = func.dfg.block_params(func.layout.entry_block().unwrap())[0];
        let mut probes = Vec::new();
        for block in func.layout.blocks() {
            for inst in func.layout.block_insts(block) {
                if let ir::InstructionData::Load { arg, offset, flags, .. } = func.dfg.insts[inst] {
                    if func.dfg.mem_flags[flags].trap_code() == Some(codes::INTERRUPTION_POINT) {
                        probes.push((arg == vmctx, offset.into()));
                    }
                }
            }
        }
        probes
    }

    #[test]
    fn loops_in_functions_that_access_memory_probe_below_its_base() {
        let mut tunables = Tunables { interruption: crate::config::Interruption::MmuPage, ..Tunables::default() };
        let accesses = r#"(module (memory 1) (func (param i32)
            (loop $a (br_if $a (i32.load (local.get 0))))
            (loop $b (br_if $b (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))"#;
        let no_access = r#"(module (memory 1) (func (param i32)
            (loop $a (br_if $a (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))"#;
        // Every loop of the function that accesses memory, even one that does
        // not itself, reads its own byte from the end of the memory's probe
        // page down.
        assert_eq!(loop_probes(&translate_wat(accesses, &tunables)), [(false, -1), (false, -2)]);
        assert_eq!(loop_probes(&translate_wat(no_access, &tunables)), [(true, -4096)]);
        tunables.mmu_memory_probes = false;
        assert_eq!(loop_probes(&translate_wat(accesses, &tunables)), [(true, -4096), (true, -4095)]);
    }
}

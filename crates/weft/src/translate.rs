//! The translator: lowers one validated Wasm function body to Cranelift IR.
//!
//! Locals are Cranelift `Variable`s (SSA construction is left to the
//! `FunctionBuilder`); the Wasm operand stack is a `Vec<Value>` during
//! translation; structured control flow becomes blocks with parameters. Every
//! access to instance state goes through the vmctx at offsets from
//! [`VMOffsets`]. Each operator is validated just before
//! it is translated, so the translator may assume well-typed input.

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

/// The displacement past a function's zero-sized probe slot at which the
/// translator emits segment probes (MMU page mode with
/// [`Tunables::mmu_segment_probes`]): a store of the constant 0,
/// `store.i16 0, [rsp + slot + D + k]`, which Cranelift encodes as `movw $0,
/// disp32(%rsp)` (ten bytes) and which names no register at all, so the
/// register allocator sees a loop with a probe exactly as one without. The
/// compiler then rewrites each one, before the code can run, into the
/// ten-byte `cmp qword ptr gs:[0], 0`, a read of the probe page that the GS
/// base points at (see `compile::patch_segment_probe`). The store itself
/// never runs. The displacement is large so that no other access looks like
/// a probe; `k` (one per probe) keeps any two probes distinct.
pub const SEGMENT_PROBE_DISPLACEMENT: i32 = 0x4000_0000;

/// The offset from memory 0's base of the byte that loop probe `byte` of a
/// function reads (MMU page mode with memory probes): from the probe page's
/// last byte down, so that a function's first 128 probes take an 8-bit
/// displacement, three bytes shorter than the vmctx probes' (whose page holds
/// the stack limit at its start).
fn memory_probe_offset(byte: u32) -> i32 {
    debug_assert!(byte < vmctx::MEMORY_PROBE_PAGE_SIZE);
    -(byte as i32) - 1
}

/// The debug tag of the sequence point just before each segment probe, for
/// the compiler to find them.
pub const SEGMENT_PROBE_TAG: u32 = 0x5e6_0000;

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
}

impl ControlFrame {
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
    builtins: Option<Value>,
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
        builtins: None,
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

/// Verifies that a translated function's interruption checks bound the code
/// run between two of them, as [`crate::config::Interruption`] promises:
/// every cycle of the control flow graph goes through a check, and (when
/// `calls_need_checks`) so does every path from the entry to a call of a Wasm
/// function. `checks` are the check instructions; calls whose signature is
/// one of `builtin_sigs` are the runtime's builtins, not Wasm calls.
///
/// The placement rules are tracked through every kind of branch by the
/// translator; this makes a mistake there a compile error instead of a
/// guest that cannot be interrupted.
fn verify_interruption_checks(func: &Function, checks: &[ir::Inst], builtin_sigs: &[ir::SigRef], calls_need_checks: bool) -> anyhow::Result<()> {
    use std::collections::{HashMap, HashSet};
    let checks: HashSet<ir::Inst> = checks.iter().copied().collect();
    let cfg = cranelift_codegen::flowgraph::ControlFlowGraph::with_function(func);
    let blocks: Vec<Block> = func.layout.blocks().collect();
    let has_check: HashSet<Block> = blocks.iter().copied().filter(|&b| func.layout.block_insts(b).any(|i| checks.contains(&i))).collect();

    // 1. The blocks without a check form no cycle (iterative depth-first
    // search; a grey successor closes a cycle).
    #[derive(Clone, Copy, PartialEq)]
    enum Colour {
        Grey,
        Black,
    }
    let mut colour: HashMap<Block, Colour> = HashMap::new();
    for &root in blocks.iter().filter(|b| !has_check.contains(b)) {
        if colour.contains_key(&root) {
            continue;
        }
        colour.insert(root, Colour::Grey);
        let mut stack = vec![(root, cfg.succ_iter(root).collect::<Vec<_>>())];
        while let Some((block, succs)) = stack.last_mut() {
            match succs.pop() {
                Some(next) if has_check.contains(&next) => {}
                Some(next) => match colour.get(&next) {
                    Some(Colour::Grey) => anyhow::bail!("a cycle through {next} has no interruption check"),
                    Some(Colour::Black) => {}
                    None => {
                        colour.insert(next, Colour::Grey);
                        let succs = cfg.succ_iter(next).collect();
                        stack.push((next, succs));
                    }
                },
                None => {
                    colour.insert(*block, Colour::Black);
                    stack.pop();
                }
            }
        }
    }

    // 2. No Wasm call is reachable from the entry without passing a check.
    if calls_need_checks {
        let Some(entry) = func.layout.entry_block() else { return Ok(()) };
        let mut seen = HashSet::from([entry]);
        let mut work = vec![entry];
        while let Some(block) = work.pop() {
            for inst in func.layout.block_insts(block) {
                if checks.contains(&inst) {
                    break;
                }
                let data = &func.dfg.insts[inst];
                if data.opcode().is_call() && !func.dfg.call_signature(inst).is_some_and(|s| builtin_sigs.contains(&s)) {
                    anyhow::bail!("a call in {block} is reachable without an interruption check");
                }
            }
            if !has_check.contains(&block) {
                for next in cfg.succ_iter(block) {
                    if seen.insert(next) {
                        work.push(next);
                    }
                }
            }
        }
    }
    Ok(())
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

        let exit = self.builder.create_block();
        for r in ty.results() {
            self.builder.append_block_param(exit, clif_type(r));
        }
        self.control.push(ControlFrame {
            kind: FrameKind::Block,
            destination: exit,
            header: None,
            num_params: 0,
            num_results: ty.results().len(),
            original_stack_size: 0,
            destination_reached: false,
            else_block: None,
            else_params: Vec::new(),
            head_reachable: true,
            else_seen: false,
            checked_at_destination: true,
            checked_at_head: self.interruption_checked,
        });
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

    /// Makes an interruption check before a call unless every path here has
    /// passed one since the function's entry or the last loop header (epoch
    /// and MMU pointer modes; in MMU page mode the prologue of a function that
    /// calls is the check).
    fn check_before_call(&mut self) {
        use crate::config::Interruption;
        if matches!(self.env.tunables.interruption, Interruption::Epoch | Interruption::MmuPointer) {
            self.check_unless_checked();
        }
    }

    /// Makes an interruption check here unless every path here has passed one
    /// since the function's entry or the last loop header.
    fn check_unless_checked(&mut self) {
        if !self.interruption_checked {
            self.interruption_point();
            self.interruption_checked = true;
        }
    }

    /// A point where a guest may be interrupted: back edges and calls that
    /// have not passed one (see [`Self::note_edge`] and
    /// [`Self::check_before_call`]). Epoch and MMU interruption insert their
    /// checks here.
    fn interruption_point(&mut self) {
        use crate::config::Interruption;
        let mode = self.env.tunables.interruption;
        if mode == Interruption::None {
            return;
        }
        // An epoch check loads the engine's counter from its address, a
        // constant (the engine outlives its modules' code), and compares it
        // with the deadline's copy in the vmctx: two loads, and no register
        // held across a loop for it (it used to hold the store context and the
        // counter pointer, and make two more loads). Its slow path makes no call:
        // a call there, cold as it is, made every value live across a loop
        // take a callee-saved register or a stack slot (epoch overhead 1.10x
        // with it, ~1.06x without). Instead it loads from the forbidden page
        // that the vmctx's interrupt page field points at in epoch mode; the
        // signal handler runs the deadline callback as for an MMU
        // interruption, then resumes the load through a readable page. The MMU
        // page probe is one load from the probe page just below the vmctx,
        // through the register that holds the vmctx, or in a function that
        // accesses memory 0 below its base (see `retarget_probes`).
        let store_ctx = |b: &mut FunctionBuilder, vmctx_value| b.ins().load(types::I64, readonly_flags(), vmctx_value, vmctx::VMCTX_STORE_CTX_OFFSET as i32);
        match mode {
            Interruption::None => {}
            Interruption::Epoch => {
                let counter = self.builder.ins().iconst(types::I64, self.env.epoch_counter as i64);
                // Atomic so that the check in a loop without stores is not
                // merged with the one before it by redundant-load elimination.
                let epoch = self.builder.ins().atomic_load(types::I64, trusted_flags(), counter);
                let deadline = self.builder.ins().load(types::I64, trusted_flags(), self.vmctx, vmctx::VMCTX_EPOCH_DEADLINE_OFFSET as i32);
                let reached = self.builder.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, epoch, deadline);
                let slow = self.builder.create_block();
                let cont = self.builder.create_block();
                self.builder.set_cold_block(slow);
                let check = self.builder.ins().brif(reached, slow, &[], cont, &[]);
                self.check_insts.push(check);
                self.builder.seal_block(slow);
                self.builder.switch_to_block(slow);
                let forbidden = self.builder.ins().load(types::I64, trusted_flags(), self.vmctx, vmctx::VMCTX_INTERRUPT_PAGE_OFFSET as i32);
                let probe = MemFlagsData::new().with_aligned().with_trap_code(Some(codes::INTERRUPTION_POINT));
                self.builder.ins().atomic_load(types::I8, probe, forbidden);
                self.builder.ins().jump(cont, &[]);
                self.builder.seal_block(cont);
                self.builder.switch_to_block(cont);
            }
            Interruption::MmuPage => {
                // A dead load, kept because it can trap. Each probe of the
                // function reads its own byte of the page, so redundant-load
                // elimination never merges two probes (a merged probe would
                // leave its loop uninterruptible); past a page's worth of
                // probes, atomic loads, which are never merged, take over.
                let probe = MemFlagsData::new().with_aligned().with_trap_code(Some(codes::INTERRUPTION_POINT));
                let byte = self.probes;
                self.probes += 1;
                if self.segment_probes {
                    let slot = *self
                        .segment_probe_slot
                        .get_or_insert_with(|| self.builder.create_sized_stack_slot(ir::StackSlotData::new(ir::StackSlotKind::ExplicitSlot, 0, 0)));
                    let base = self.builder.ins().stack_addr(types::I64, slot, 0);
                    let zero = self.builder.ins().iconst(types::I16, 0);
                    // Accesses to stack slots carry no trap record, and only
                    // calls and sequence points may carry debug tags: a tagged
                    // sequence point right before the store is how the
                    // compiler finds it (see `compile::patch_segment_probes`).
                    let point = self.builder.ins().sequence_point();
                    self.builder.func.debug_tags.set(point, [ir::DebugTag::User(SEGMENT_PROBE_TAG)]);
                    let inst = self.builder.ins().store(probe, zero, base, SEGMENT_PROBE_DISPLACEMENT + byte as i32);
                    self.check_insts.push(inst);
                } else if byte < vmctx::VMCTX_PROBE_PAGE_SIZE.min(vmctx::MEMORY_PROBE_PAGE_SIZE) {
                    let offset = byte as i32 - vmctx::VMCTX_PROBE_PAGE_SIZE as i32;
                    let v = self.builder.ins().load(types::I8, probe, self.vmctx, offset);
                    let inst = self.builder.func.dfg.value_def(v).unwrap_inst();
                    self.check_insts.push(inst);
                    self.vmctx_probes.push((inst, byte));
                } else {
                    let page = self.builder.ins().iadd_imm_s(self.vmctx, -(vmctx::VMCTX_PROBE_PAGE_SIZE as i64));
                    let v = self.builder.ins().atomic_load(types::I8, probe, page);
                    self.check_insts.push(self.builder.func.dfg.value_def(v).unwrap_inst());
                }
            }
            Interruption::MmuPointer => {
                let store_ctx = store_ctx(&mut self.builder, self.vmctx);
                let page = self.builder.ins().load(types::I64, trusted_flags(), store_ctx, vmctx::STORE_CTX_INTERRUPT_PAGE_OFFSET as i32);
                // A dead load, kept because it carries a trap code; atomic so
                // that it is never merged with an earlier probe.
                let probe = MemFlagsData::new().with_aligned().with_trap_code(Some(codes::INTERRUPTION_POINT));
                let v = self.builder.ins().atomic_load(types::I8, probe, page);
                self.check_insts.push(self.builder.func.dfg.value_def(v).unwrap_inst());
            }
        }
    }

    /// In a function that accesses memory 0, makes its vmctx loop probes
    /// read the probe page below memory 0's base instead (MMU page mode with
    /// [`Tunables::mmu_memory_probes`](crate::config::Tunables)): loops that
    /// access memory keep the base in a register anyway, and one that no
    /// longer needs the vmctx frees a register. Decided once the body is
    /// translated, when whether it accesses the memory is known; the base is
    /// loaded in the entry block, so it dominates every probe. Probes read
    /// the page from its end down (see [`memory_probe_offset`]).
    fn retarget_probes(&mut self) {
        if !self.env.tunables.mmu_memory_probes || !self.accesses_memory0 {
            return;
        }
        let base = self.memory_bases[0];
        for &(inst, byte) in &self.vmctx_probes {
            match &mut self.builder.func.dfg.insts[inst] {
                ir::InstructionData::Load { arg, offset, .. } => {
                    *arg = base;
                    *offset = memory_probe_offset(byte).into();
                }
                other => unreachable!("a vmctx probe is a load, not {other:?}"),
            }
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

    /// Emits an unconditional branch to the frame at `depth` with the top values.
    fn branch_to(&mut self, depth: u32) {
        let idx = self.control.len() - 1 - depth as usize;
        let (target, n) = self.control[idx].branch_target();
        self.note_edge(idx);
        let args = Self::jump_args(self.peekn(n));
        self.builder.ins().jump(target, &args);
    }

    /// Records an edge from the current point to the frame at `idx`, before
    /// the branch is emitted. An edge to a loop is a back edge, to its header:
    /// it gets an interruption check unless one was passed since the header,
    /// so that every cycle has one (an outer loop whose body always runs an
    /// inner loop's back edge needs no check of its own, and a loop that never
    /// branches back none at all). Otherwise the frame's destination is
    /// reached, with this point's interruption-check state.
    fn note_edge(&mut self, idx: usize) {
        if self.control[idx].kind == FrameKind::Loop {
            self.check_unless_checked();
            return;
        }
        let checked = self.interruption_checked;
        let frame = &mut self.control[idx];
        frame.destination_reached = true;
        frame.checked_at_destination &= checked;
    }

    fn translate_op(&mut self, op: &Operator<'_>) -> anyhow::Result<()> {
        if !self.reachable {
            return self.translate_unreachable_op(op);
        }
        use Operator as O;
        let ins_flags = heap_flags();
        match *op {
            O::Unreachable => {
                self.builder.ins().trap(codes::UNREACHABLE);
                self.reachable = false;
            }
            O::Nop => {}
            O::Block { blockty } => {
                let (params, results) = self.block_type(blockty);
                let dest = self.new_block_with_params(&results);
                self.control.push(ControlFrame {
                    kind: FrameKind::Block,
                    destination: dest,
                    header: None,
                    num_params: params.len(),
                    num_results: results.len(),
                    original_stack_size: self.stack.len() - params.len(),
                    destination_reached: false,
                    else_block: None,
                    else_params: Vec::new(),
                    head_reachable: true,
                    else_seen: false,
                    checked_at_destination: true,
                    checked_at_head: self.interruption_checked,
                });
            }
            O::Loop { blockty } => {
                let (params, results) = self.block_type(blockty);
                let header = self.new_block_with_params(&params);
                let dest = self.new_block_with_params(&results);
                let args = Self::jump_args(self.peekn(params.len()));
                self.builder.ins().jump(header, &args);
                let base = self.stack.len() - params.len();
                self.stack.truncate(base);
                self.builder.switch_to_block(header);
                let hp = self.builder.block_params(header).to_vec();
                self.stack.extend(hp);
                self.control.push(ControlFrame {
                    kind: FrameKind::Loop,
                    destination: dest,
                    header: Some(header),
                    num_params: params.len(),
                    num_results: results.len(),
                    original_stack_size: base,
                    destination_reached: false,
                    else_block: None,
                    else_params: Vec::new(),
                    head_reachable: true,
                    else_seen: false,
                    checked_at_destination: true,
                    checked_at_head: self.interruption_checked,
                });
                if self.loops_checked_at_header.binary_search(&self.op_offset).is_ok() {
                    self.interruption_point();
                    self.interruption_checked = true;
                } else if self.env.tunables.interruption != crate::config::Interruption::None {
                    // Checked on the way back, if nothing in the body checks.
                    self.interruption_checked = false;
                }
            }
            O::If { blockty } => {
                let cond = self.pop();
                let (params, results) = self.block_type(blockty);
                let dest = self.new_block_with_params(&results);
                let then_block = self.builder.create_block();
                let else_block = self.builder.create_block();
                self.builder.ins().brif(cond, then_block, &[], else_block, &[]);
                self.builder.seal_block(then_block);
                self.builder.seal_block(else_block);
                self.builder.switch_to_block(then_block);
                let else_params = self.peekn(params.len()).to_vec();
                self.control.push(ControlFrame {
                    kind: FrameKind::If,
                    destination: dest,
                    header: None,
                    num_params: params.len(),
                    num_results: results.len(),
                    original_stack_size: self.stack.len() - params.len(),
                    destination_reached: false,
                    else_block: Some(else_block),
                    else_params,
                    head_reachable: true,
                    else_seen: false,
                    checked_at_destination: true,
                    checked_at_head: self.interruption_checked,
                });
            }
            O::Else => self.translate_else(),
            O::End => self.translate_end(),
            O::Br { relative_depth } => {
                self.branch_to(relative_depth);
                self.reachable = false;
            }
            O::BrIf { relative_depth } => {
                let cond = self.pop();
                let idx = self.control.len() - 1 - relative_depth as usize;
                let (target, n) = self.control[idx].branch_target();
                self.note_edge(idx);
                let args = Self::jump_args(self.peekn(n));
                let next = self.builder.create_block();
                self.builder.ins().brif(cond, target, &args, next, &[]);
                self.builder.seal_block(next);
                self.builder.switch_to_block(next);
            }
            O::BrTable { ref targets } => {
                let index = self.pop();
                let default = targets.default();
                let depths: Vec<u32> = targets.targets().collect::<Result<_, _>>()?;
                let arity = {
                    let idx = self.control.len() - 1 - default as usize;
                    self.control[idx].branch_target().1
                };
                let args = Self::jump_args(self.peekn(arity));
                // Branch through one intermediate block per distinct target when
                // values are passed, so that the jump table itself carries none.
                let mut landing: std::collections::HashMap<u32, Block> = Default::default();
                let mut block_for = |t: &mut Self, depth: u32| -> Block {
                    let idx = t.control.len() - 1 - depth as usize;
                    let (target, _) = t.control[idx].branch_target();
                    t.note_edge(idx);
                    if arity == 0 {
                        return target;
                    }
                    *landing.entry(depth).or_insert_with(|| t.builder.create_block())
                };
                let default_block = block_for(self, default);
                let table_blocks: Vec<Block> = depths.iter().map(|d| block_for(self, *d)).collect();
                let dfg = &mut self.builder.func.dfg;
                let default_call = dfg.block_call(default_block, &[]);
                let calls: Vec<_> = table_blocks.iter().map(|b| dfg.block_call(*b, &[])).collect();
                let jt = self.builder.create_jump_table(JumpTableData::new(default_call, &calls));
                self.builder.ins().br_table(index, jt);
                let mut landings: Vec<(u32, Block)> = landing.into_iter().collect();
                landings.sort_by_key(|(_, b)| *b);
                for (depth, block) in landings {
                    self.builder.seal_block(block);
                    self.builder.switch_to_block(block);
                    let idx = self.control.len() - 1 - depth as usize;
                    let (target, _) = self.control[idx].branch_target();
                    self.builder.ins().jump(target, &args);
                }
                self.reachable = false;
            }
            O::Return => {
                let n = self.control[0].num_results;
                let vals = self.peekn(n).to_vec();
                self.builder.ins().return_(&vals);
                self.reachable = false;
            }
            O::Call { function_index } => self.translate_call(function_index, false)?,
            O::ReturnCall { function_index } => self.translate_call(function_index, true)?,
            O::CallIndirect { type_index, table_index } => self.translate_call_indirect(type_index, table_index, false)?,
            O::ReturnCallIndirect { type_index, table_index } => self.translate_call_indirect(type_index, table_index, true)?,
            O::CallRef { type_index } => self.translate_call_ref(type_index, false)?,
            O::ReturnCallRef { type_index } => self.translate_call_ref(type_index, true)?,
            O::Drop => {
                self.pop();
            }
            O::Select | O::TypedSelect { .. } => {
                let (a, b, c) = self.pop3();
                let v = self.builder.ins().select(c, a, b);
                self.push(v);
            }
            // The validator refuses a select with several types.
            O::TypedSelectMulti { .. } => return Err(CompileError::internal("a multi-value select passed validation")),
            O::LocalGet { local_index } => {
                let v = self.builder.use_var(self.locals[local_index as usize]);
                self.push(v);
            }
            O::LocalSet { local_index } => {
                let v = self.pop();
                self.builder.def_var(self.locals[local_index as usize], v);
            }
            O::LocalTee { local_index } => {
                let v = *self.stack.last().unwrap();
                self.builder.def_var(self.locals[local_index as usize], v);
            }
            O::GlobalGet { global_index } => {
                let (addr, offset, ty, mutable) = self.global_addr(global_index);
                let flags = if mutable { trusted_flags() } else { readonly_flags() };
                let v = self.builder.ins().load(ty, flags, addr, offset);
                self.push(v);
            }
            O::GlobalSet { global_index } => {
                let v = self.pop();
                let (addr, offset, _, _) = self.global_addr(global_index);
                self.builder.ins().store(trusted_flags(), v, addr, offset);
            }

            // Memory.
            O::I32Load { memarg } => self.load(types::I32, 4, &memarg, LoadKind::Plain),
            O::I64Load { memarg } => self.load(types::I64, 8, &memarg, LoadKind::Plain),
            O::F32Load { memarg } => self.load(types::F32, 4, &memarg, LoadKind::Plain),
            O::F64Load { memarg } => self.load(types::F64, 8, &memarg, LoadKind::Plain),
            O::I32Load8S { memarg } => self.load(types::I32, 1, &memarg, LoadKind::S8),
            O::I32Load8U { memarg } => self.load(types::I32, 1, &memarg, LoadKind::U8),
            O::I32Load16S { memarg } => self.load(types::I32, 2, &memarg, LoadKind::S16),
            O::I32Load16U { memarg } => self.load(types::I32, 2, &memarg, LoadKind::U16),
            O::I64Load8S { memarg } => self.load(types::I64, 1, &memarg, LoadKind::S8),
            O::I64Load8U { memarg } => self.load(types::I64, 1, &memarg, LoadKind::U8),
            O::I64Load16S { memarg } => self.load(types::I64, 2, &memarg, LoadKind::S16),
            O::I64Load16U { memarg } => self.load(types::I64, 2, &memarg, LoadKind::U16),
            O::I64Load32S { memarg } => self.load(types::I64, 4, &memarg, LoadKind::S32),
            O::I64Load32U { memarg } => self.load(types::I64, 4, &memarg, LoadKind::U32),
            O::I32Store { memarg } | O::I64Store { memarg } | O::F32Store { memarg } | O::F64Store { memarg } => {
                let v = self.pop();
                let size = self.builder.func.dfg.value_type(v).bytes();
                let (addr, off) = self.mem_addr(&memarg, size);
                self.builder.ins().store(ins_flags, v, addr, off);
            }
            O::I32Store8 { memarg } | O::I64Store8 { memarg } => {
                let v = self.pop();
                let (addr, off) = self.mem_addr(&memarg, 1);
                self.builder.ins().istore8(ins_flags, v, addr, off);
            }
            O::I32Store16 { memarg } | O::I64Store16 { memarg } => {
                let v = self.pop();
                let (addr, off) = self.mem_addr(&memarg, 2);
                self.builder.ins().istore16(ins_flags, v, addr, off);
            }
            O::I64Store32 { memarg } => {
                let v = self.pop();
                let (addr, off) = self.mem_addr(&memarg, 4);
                self.builder.ins().istore32(ins_flags, v, addr, off);
            }
            O::MemorySize { mem } => {
                let def = self.memory_defs[mem as usize];
                let len = self.builder.ins().load(types::I64, trusted_flags(), def, vmctx::MEMORY_LENGTH_OFFSET as i32);
                let pages = self.builder.ins().ushr_imm_u(len, 16);
                let v = if self.is_memory64(mem) { pages } else { self.builder.ins().ireduce(types::I32, pages) };
                self.push(v);
            }
            O::MemoryGrow { mem } => {
                let delta = self.pop();
                let delta = self.index_to_i64(delta, self.is_memory64(mem));
                let m = self.builder.ins().iconst(types::I32, mem as i64);
                let r = self.call_builtin(Builtin::MemoryGrow, &[m, delta])[0];
                let v = if self.is_memory64(mem) { r } else { self.builder.ins().ireduce(types::I32, r) };
                self.push(v);
            }
            O::MemoryFill { mem } => {
                let m64 = self.is_memory64(mem);
                self.bulk_fill(Builtin::MemoryFill, mem, m64, TrapCode::HEAP_OUT_OF_BOUNDS);
            }
            O::MemoryCopy { dst_mem, src_mem } => {
                let (d64, s64) = (self.is_memory64(dst_mem), self.is_memory64(src_mem));
                self.bulk_copy(Builtin::MemoryCopy, dst_mem, d64, src_mem, s64, TrapCode::HEAP_OUT_OF_BOUNDS);
            }
            O::MemoryInit { data_index, mem } => {
                let m64 = self.is_memory64(mem);
                self.bulk_init(Builtin::MemoryInit, mem, m64, data_index, TrapCode::HEAP_OUT_OF_BOUNDS);
            }
            O::DataDrop { data_index } => {
                let d = self.const_u32(data_index);
                self.call_builtin(Builtin::DataDrop, &[d]);
            }

            // Constants.
            O::I32Const { value } => {
                let v = self.builder.ins().iconst(types::I32, value as i64);
                self.push(v);
            }
            O::I64Const { value } => {
                let v = self.builder.ins().iconst(types::I64, value);
                self.push(v);
            }
            O::F32Const { value } => {
                let v = self.builder.ins().f32const(ir::immediates::Ieee32::with_bits(value.bits()));
                self.push(v);
            }
            O::F64Const { value } => {
                let v = self.builder.ins().f64const(ir::immediates::Ieee64::with_bits(value.bits()));
                self.push(v);
            }

            // Integer comparisons.
            O::I32Eqz | O::I64Eqz => {
                let a = self.pop();
                let c = self.builder.ins().icmp_imm_s(IntCC::Equal, a, 0);
                let v = self.builder.ins().uextend(types::I32, c);
                self.push(v);
            }
            O::I32Eq | O::I64Eq => self.icmp(IntCC::Equal),
            O::I32Ne | O::I64Ne => self.icmp(IntCC::NotEqual),
            O::I32LtS | O::I64LtS => self.icmp(IntCC::SignedLessThan),
            O::I32LtU | O::I64LtU => self.icmp(IntCC::UnsignedLessThan),
            O::I32GtS | O::I64GtS => self.icmp(IntCC::SignedGreaterThan),
            O::I32GtU | O::I64GtU => self.icmp(IntCC::UnsignedGreaterThan),
            O::I32LeS | O::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual),
            O::I32LeU | O::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual),
            O::I32GeS | O::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual),
            O::I32GeU | O::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual),
            O::F32Eq | O::F64Eq => self.fcmp(FloatCC::Equal),
            O::F32Ne | O::F64Ne => self.fcmp(FloatCC::NotEqual),
            O::F32Lt | O::F64Lt => self.fcmp(FloatCC::LessThan),
            O::F32Gt | O::F64Gt => self.fcmp(FloatCC::GreaterThan),
            O::F32Le | O::F64Le => self.fcmp(FloatCC::LessThanOrEqual),
            O::F32Ge | O::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual),

            // Integer arithmetic.
            O::I32Clz | O::I64Clz => self.unary(|b, a| b.ins().clz(a)),
            O::I32Ctz | O::I64Ctz => self.unary(|b, a| b.ins().ctz(a)),
            O::I32Popcnt | O::I64Popcnt => self.unary(|b, a| b.ins().popcnt(a)),
            O::I32Add | O::I64Add => self.binary(|b, x, y| b.ins().iadd(x, y)),
            O::I32Sub | O::I64Sub => self.binary(|b, x, y| b.ins().isub(x, y)),
            O::I32Mul | O::I64Mul => self.binary(|b, x, y| b.ins().imul(x, y)),
            O::I32And | O::I64And => self.binary(|b, x, y| b.ins().band(x, y)),
            O::I32Or | O::I64Or => self.binary(|b, x, y| b.ins().bor(x, y)),
            O::I32Xor | O::I64Xor => self.binary(|b, x, y| b.ins().bxor(x, y)),
            O::I32Shl | O::I64Shl => self.binary(|b, x, y| b.ins().ishl(x, y)),
            O::I32ShrS | O::I64ShrS => self.binary(|b, x, y| b.ins().sshr(x, y)),
            O::I32ShrU | O::I64ShrU => self.binary(|b, x, y| b.ins().ushr(x, y)),
            O::I32Rotl | O::I64Rotl => self.binary(|b, x, y| b.ins().rotl(x, y)),
            O::I32Rotr | O::I64Rotr => self.binary(|b, x, y| b.ins().rotr(x, y)),
            O::I32DivU | O::I64DivU => {
                let (x, y) = self.pop2();
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                let v = self.builder.ins().udiv(x, y);
                self.push(v);
            }
            O::I32RemU | O::I64RemU => {
                let (x, y) = self.pop2();
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                let v = self.builder.ins().urem(x, y);
                self.push(v);
            }
            O::I32DivS | O::I64DivS => {
                let (x, y) = self.pop2();
                let ty = self.builder.func.dfg.value_type(x);
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                let min = if ty == types::I32 { i32::MIN as i64 } else { i64::MIN };
                let is_min = self.builder.ins().icmp_imm_s(IntCC::Equal, x, min);
                let is_neg1 = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let ovf = self.builder.ins().band(is_min, is_neg1);
                self.builder.ins().trapnz(ovf, TrapCode::INTEGER_OVERFLOW);
                let v = self.builder.ins().sdiv(x, y);
                self.push(v);
            }
            O::I32RemS | O::I64RemS => {
                let (x, y) = self.pop2();
                let ty = self.builder.func.dfg.value_type(x);
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                // x % -1 is 0 for every x; divide by 1 instead so INT_MIN % -1
                // cannot fault in the hardware divider.
                let is_neg1 = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let one = self.builder.ins().iconst(ty, 1);
                let divisor = self.builder.ins().select(is_neg1, one, y);
                let v = self.builder.ins().srem(x, divisor);
                self.push(v);
            }

            // Float arithmetic.
            O::F32Abs | O::F64Abs => self.unary(|b, a| b.ins().fabs(a)),
            O::F32Neg | O::F64Neg => self.unary(|b, a| b.ins().fneg(a)),
            O::F32Ceil | O::F64Ceil => self.unary(|b, a| b.ins().ceil(a)),
            O::F32Floor | O::F64Floor => self.unary(|b, a| b.ins().floor(a)),
            O::F32Trunc | O::F64Trunc => self.unary(|b, a| b.ins().trunc(a)),
            O::F32Nearest | O::F64Nearest => self.unary(|b, a| b.ins().nearest(a)),
            O::F32Sqrt | O::F64Sqrt => self.unary(|b, a| b.ins().sqrt(a)),
            O::F32Add | O::F64Add => self.binary(|b, x, y| b.ins().fadd(x, y)),
            O::F32Sub | O::F64Sub => self.binary(|b, x, y| b.ins().fsub(x, y)),
            O::F32Mul | O::F64Mul => self.binary(|b, x, y| b.ins().fmul(x, y)),
            O::F32Div | O::F64Div => self.binary(|b, x, y| b.ins().fdiv(x, y)),
            O::F32Min | O::F64Min => self.binary(|b, x, y| b.ins().fmin(x, y)),
            O::F32Max | O::F64Max => self.binary(|b, x, y| b.ins().fmax(x, y)),
            O::F32Copysign | O::F64Copysign => self.binary(|b, x, y| b.ins().fcopysign(x, y)),

            // Conversions.
            O::I32WrapI64 => self.unary(|b, a| b.ins().ireduce(types::I32, a)),
            O::I64ExtendI32S => self.unary(|b, a| b.ins().sextend(types::I64, a)),
            O::I64ExtendI32U => self.unary(|b, a| b.ins().uextend(types::I64, a)),
            O::I32TruncF32S | O::I32TruncF64S => self.unary(|b, a| b.ins().fcvt_to_sint(types::I32, a)),
            O::I32TruncF32U | O::I32TruncF64U => self.unary(|b, a| b.ins().fcvt_to_uint(types::I32, a)),
            O::I64TruncF32S | O::I64TruncF64S => self.unary(|b, a| b.ins().fcvt_to_sint(types::I64, a)),
            O::I64TruncF32U | O::I64TruncF64U => self.unary(|b, a| b.ins().fcvt_to_uint(types::I64, a)),
            O::I32TruncSatF32S | O::I32TruncSatF64S => self.unary(|b, a| b.ins().fcvt_to_sint_sat(types::I32, a)),
            O::I32TruncSatF32U | O::I32TruncSatF64U => self.unary(|b, a| b.ins().fcvt_to_uint_sat(types::I32, a)),
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.unary(|b, a| b.ins().fcvt_to_sint_sat(types::I64, a)),
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.unary(|b, a| b.ins().fcvt_to_uint_sat(types::I64, a)),
            O::F32ConvertI32S | O::F32ConvertI64S => self.unary(|b, a| b.ins().fcvt_from_sint(types::F32, a)),
            O::F32ConvertI32U | O::F32ConvertI64U => self.unary(|b, a| b.ins().fcvt_from_uint(types::F32, a)),
            O::F64ConvertI32S | O::F64ConvertI64S => self.unary(|b, a| b.ins().fcvt_from_sint(types::F64, a)),
            O::F64ConvertI32U | O::F64ConvertI64U => self.unary(|b, a| b.ins().fcvt_from_uint(types::F64, a)),
            O::F32DemoteF64 => self.unary(|b, a| b.ins().fdemote(types::F32, a)),
            O::F64PromoteF32 => self.unary(|b, a| b.ins().fpromote(types::F64, a)),
            O::I32ReinterpretF32 => self.unary(|b, a| b.ins().bitcast(types::I32, MemFlagsData::new(), a)),
            O::I64ReinterpretF64 => self.unary(|b, a| b.ins().bitcast(types::I64, MemFlagsData::new(), a)),
            O::F32ReinterpretI32 => self.unary(|b, a| b.ins().bitcast(types::F32, MemFlagsData::new(), a)),
            O::F64ReinterpretI64 => self.unary(|b, a| b.ins().bitcast(types::F64, MemFlagsData::new(), a)),
            O::I32Extend8S => self.sign_extend_from(types::I8),
            O::I32Extend16S => self.sign_extend_from(types::I16),
            O::I64Extend8S => self.sign_extend_from(types::I8),
            O::I64Extend16S => self.sign_extend_from(types::I16),
            O::I64Extend32S => self.sign_extend_from(types::I32),

            // References.
            O::RefNull { .. } => {
                let v = self.builder.ins().iconst(types::I64, 0);
                self.push(v);
            }
            O::RefIsNull => {
                let a = self.pop();
                let c = self.builder.ins().icmp_imm_s(IntCC::Equal, a, 0);
                let v = self.builder.ins().uextend(types::I32, c);
                self.push(v);
            }
            O::RefFunc { function_index } => {
                self.facts.ref_func_targets.push(function_index);
                let v = self.builder.ins().iadd_imm_u(self.vmctx, self.env.offsets.func_ref(function_index) as i64);
                self.push(v);
            }
            O::RefAsNonNull => {
                let a = *self.stack.last().unwrap();
                self.builder.ins().trapz(a, codes::NULL_REFERENCE);
            }
            O::BrOnNull { relative_depth } => {
                let r = self.pop();
                let idx = self.control.len() - 1 - relative_depth as usize;
                let (target, n) = self.control[idx].branch_target();
                self.note_edge(idx);
                let args = Self::jump_args(self.peekn(n));
                let next = self.builder.create_block();
                self.builder.ins().brif(r, next, &[], target, &args);
                self.builder.seal_block(next);
                self.builder.switch_to_block(next);
                self.push(r);
            }
            O::BrOnNonNull { relative_depth } => {
                let r = *self.stack.last().unwrap();
                let idx = self.control.len() - 1 - relative_depth as usize;
                let (target, n) = self.control[idx].branch_target();
                self.note_edge(idx);
                let args = Self::jump_args(self.peekn(n));
                let next = self.builder.create_block();
                self.builder.ins().brif(r, target, &args, next, &[]);
                self.builder.seal_block(next);
                self.builder.switch_to_block(next);
                self.pop();
            }

            // Tables.
            O::TableGet { table } => {
                let index = self.pop();
                let addr = self.table_elem_addr(table, index, codes::TABLE_OUT_OF_BOUNDS);
                let v = self.load_table_elem(table, index, addr);
                self.push(v);
            }
            O::TableSet { table } => {
                let (index, value) = self.pop2();
                let addr = self.table_elem_addr(table, index, codes::TABLE_OUT_OF_BOUNDS);
                self.builder.ins().store(trusted_flags(), value, addr, 0);
            }
            O::TableSize { table } => {
                let def = self.table_def(table);
                let len = self.builder.ins().load(types::I64, trusted_flags(), def, vmctx::TABLE_LENGTH_OFFSET as i32);
                let v = if self.is_table64(table) { len } else { self.builder.ins().ireduce(types::I32, len) };
                self.push(v);
            }
            O::TableGrow { table } => {
                let (init, delta) = self.pop2();
                let t64 = self.is_table64(table);
                let delta = self.index_to_i64(delta, t64);
                let t = self.builder.ins().iconst(types::I32, table as i64);
                let r = self.call_builtin(Builtin::TableGrow, &[t, init, delta])[0];
                let v = if t64 { r } else { self.builder.ins().ireduce(types::I32, r) };
                self.push(v);
            }
            O::TableFill { table } => {
                let t64 = self.is_table64(table);
                self.bulk_fill(Builtin::TableFill, table, t64, codes::TABLE_OUT_OF_BOUNDS);
            }
            O::TableCopy { dst_table, src_table } => {
                let (d64, s64) = (self.is_table64(dst_table), self.is_table64(src_table));
                self.bulk_copy(Builtin::TableCopy, dst_table, d64, src_table, s64, codes::TABLE_OUT_OF_BOUNDS);
            }
            O::TableInit { elem_index, table } => {
                let t64 = self.is_table64(table);
                self.bulk_init(Builtin::TableInit, table, t64, elem_index, codes::TABLE_OUT_OF_BOUNDS);
            }
            O::ElemDrop { elem_index } => {
                let e = self.const_u32(elem_index);
                self.call_builtin(Builtin::ElemDrop, &[e]);
            }

            ref other => {
                return Err(match Proposal::of_operator(other) {
                    Some(proposal) => CompileError::unsupported(proposal, format_args!("operator {other:?}")),
                    None => CompileError::internal(format_args!("operator {other:?} has no lowering")),
                })
            }
        }
        Ok(())
    }

    fn translate_unreachable_op(&mut self, op: &Operator<'_>) -> anyhow::Result<()> {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } => self.dead_depth += 1,
            Operator::Else if self.dead_depth == 0 => self.translate_else(),
            Operator::End if self.dead_depth == 0 => self.translate_end(),
            Operator::End => self.dead_depth -= 1,
            _ => {}
        }
        Ok(())
    }

    fn translate_else(&mut self) {
        if self.reachable {
            self.note_edge(self.control.len() - 1);
        }
        let frame = self.control.last_mut().unwrap();
        debug_assert_eq!(frame.kind, FrameKind::If);
        if self.reachable {
            let dest = frame.destination;
            let n = frame.num_results;
            let args = Self::jump_args(&self.stack[self.stack.len() - n..]);
            self.builder.ins().jump(dest, &args);
        }
        let frame = self.control.last_mut().unwrap();
        frame.else_seen = true;
        self.stack.truncate(frame.original_stack_size);
        self.stack.extend(frame.else_params.iter().copied());
        self.reachable = frame.head_reachable;
        self.interruption_checked = frame.checked_at_head;
        let else_block = frame.else_block.unwrap();
        self.builder.switch_to_block(else_block);
    }

    fn translate_end(&mut self) {
        let mut frame = self.control.pop().unwrap();
        if self.reachable {
            // The fall-through edge, into the destination even of a loop.
            frame.destination_reached = true;
            frame.checked_at_destination &= self.interruption_checked;
            let args = Self::jump_args(&self.stack[self.stack.len() - frame.num_results..]);
            self.builder.ins().jump(frame.destination, &args);
        }
        if frame.kind == FrameKind::If && !frame.else_seen {
            // No else: the else path passes the parameters straight through.
            self.builder.switch_to_block(frame.else_block.unwrap());
            if frame.head_reachable {
                frame.destination_reached = true;
                frame.checked_at_destination &= frame.checked_at_head;
                let args = Self::jump_args(&frame.else_params);
                self.builder.ins().jump(frame.destination, &args);
            }
        }
        if let Some(header) = frame.header {
            self.builder.seal_block(header);
        }
        self.builder.switch_to_block(frame.destination);
        self.builder.seal_block(frame.destination);
        self.stack.truncate(frame.original_stack_size);
        let params = self.builder.block_params(frame.destination).to_vec();
        self.stack.extend(params);
        self.reachable = frame.destination_reached;
        self.interruption_checked = frame.checked_at_destination;

        if self.control.is_empty() && self.reachable {
            // The end of the function body: return the results.
            let n = frame.num_results;
            let vals = self.stack[self.stack.len() - n..].to_vec();
            self.builder.ins().return_(&vals);
            self.reachable = false;
        }
    }

    fn unary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'b>, Value) -> Value) {
        let a = self.pop();
        let v = f(&mut self.builder, a);
        self.push(v);
    }
    fn binary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'b>, Value, Value) -> Value) {
        let (a, b) = self.pop2();
        let v = f(&mut self.builder, a, b);
        self.push(v);
    }
    fn icmp(&mut self, cc: IntCC) {
        let (a, b) = self.pop2();
        let c = self.builder.ins().icmp(cc, a, b);
        let v = self.builder.ins().uextend(types::I32, c);
        self.push(v);
    }
    fn fcmp(&mut self, cc: FloatCC) {
        let (a, b) = self.pop2();
        let c = self.builder.ins().fcmp(cc, a, b);
        let v = self.builder.ins().uextend(types::I32, c);
        self.push(v);
    }
    fn sign_extend_from(&mut self, narrow: Type) {
        let a = self.pop();
        let ty = self.builder.func.dfg.value_type(a);
        let n = self.builder.ins().ireduce(narrow, a);
        let v = self.builder.ins().sextend(ty, n);
        self.push(v);
    }

    fn const_u32(&mut self, v: u32) -> Value {
        self.builder.ins().iconst(types::I32, v as i64)
    }

    /// `memory.fill` / `table.fill`: (dst, val, len) on the stack.
    fn bulk_fill(&mut self, b: Builtin, index: u32, is64: bool, code: TrapCode) {
        let (dst, val, len) = self.pop3();
        let dst = self.index_to_i64(dst, is64);
        let len = self.index_to_i64(len, is64);
        let i = self.const_u32(index);
        let status = self.call_builtin(b, &[i, dst, val, len])[0];
        self.builder.ins().trapnz(status, code);
    }

    /// `memory.copy` / `table.copy`: (dst, src, len) on the stack; the length is
    /// 64-bit only when both sides are.
    fn bulk_copy(&mut self, b: Builtin, dst_index: u32, dst64: bool, src_index: u32, src64: bool, code: TrapCode) {
        let (dst, src, len) = self.pop3();
        let dst = self.index_to_i64(dst, dst64);
        let src = self.index_to_i64(src, src64);
        let len = self.index_to_i64(len, dst64 && src64);
        let d = self.const_u32(dst_index);
        let s = self.const_u32(src_index);
        let status = self.call_builtin(b, &[d, s, dst, src, len])[0];
        self.builder.ins().trapnz(status, code);
    }

    /// `memory.init` / `table.init`: (dst, src, len) on the stack; src and len
    /// index the segment and are always 32-bit.
    fn bulk_init(&mut self, b: Builtin, index: u32, is64: bool, segment: u32, code: TrapCode) {
        let (dst, src, len) = self.pop3();
        let dst = self.index_to_i64(dst, is64);
        let i = self.const_u32(index);
        let seg = self.const_u32(segment);
        let status = self.call_builtin(b, &[i, seg, dst, src, len])[0];
        self.builder.ins().trapnz(status, code);
    }

    fn is_memory64(&self, mem: u32) -> bool {
        self.env.info.memories[mem as usize].memory64
    }
    fn is_table64(&self, table: u32) -> bool {
        self.env.info.tables[table as usize].table64
    }
    fn index_to_i64(&mut self, v: Value, is64: bool) -> Value {
        if is64 {
            v
        } else {
            self.builder.ins().uextend(types::I64, v)
        }
    }

    /// Address of a global's storage: (base, offset, type, mutable).
    fn global_addr(&mut self, g: u32) -> (Value, i32, Type, bool) {
        let gt = &self.env.info.globals[g as usize];
        let ty = clif_type(&gt.content_type);
        let mutable = gt.mutable;
        if self.env.info.is_imported_global(g) {
            let ptr = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, self.env.offsets.global_ptr(g) as i32);
            (ptr, 0, ty, mutable)
        } else {
            (self.vmctx, self.env.offsets.defined_global(g) as i32, ty, mutable)
        }
    }

    /// Computes the native address of a linear-memory access of `size` bytes,
    /// popping the index. Returns the address and a constant offset to apply.
    fn mem_addr(&mut self, memarg: &MemArg, size: u32) -> (Value, i32) {
        let mem = match memarg.target {
            wasmparser::MemArgTarget::Memory(m) => m,
            wasmparser::MemArgTarget::Array(_) => unreachable!("GC arrays are rejected by validation"),
        };
        let index = self.pop();
        let memory64 = self.is_memory64(mem);
        let base = self.memory_bases[mem as usize];
        self.accesses_memory0 |= mem == 0;
        let offset = memarg.offset;
        if !memory64 && self.env.tunables.guarded_memory32 {
            // The reservation covers every u32 index plus u32 offset: no check needed.
            let idx = self.builder.ins().uextend(types::I64, index);
            let addr = self.builder.ins().iadd(base, idx);
            if offset <= i32::MAX as u64 {
                return (addr, offset as i32);
            }
            let addr = self.builder.ins().iadd_imm_u(addr, offset as i64);
            return (addr, 0);
        }
        let idx = self.index_to_i64(index, memory64);
        let def = self.memory_defs[mem as usize];
        let len = self.builder.ins().load(types::I64, trusted_flags(), def, vmctx::MEMORY_LENGTH_OFFSET as i32);
        match offset.checked_add(size as u64) {
            Some(end_off) if end_off <= i64::MAX as u64 => {
                let end_off = self.builder.ins().iconst(types::I64, end_off as i64);
                let end = self.builder.ins().uadd_overflow_trap(idx, end_off, TrapCode::HEAP_OUT_OF_BOUNDS);
                let oob = self.builder.ins().icmp(IntCC::UnsignedGreaterThan, end, len);
                self.builder.ins().trapnz(oob, TrapCode::HEAP_OUT_OF_BOUNDS);
            }
            _ => {
                self.builder.ins().trap(TrapCode::HEAP_OUT_OF_BOUNDS);
                let next = self.builder.create_block();
                self.builder.seal_block(next);
                self.builder.switch_to_block(next);
            }
        }
        let addr = self.builder.ins().iadd(base, idx);
        if offset <= i32::MAX as u64 {
            (addr, offset as i32)
        } else {
            (self.builder.ins().iadd_imm_u(addr, offset as i64), 0)
        }
    }

    fn load(&mut self, ty: Type, size: u32, memarg: &MemArg, kind: LoadKind) {
        let (addr, off) = self.mem_addr(memarg, size);
        let f = heap_flags();
        let ins = self.builder.ins();
        let v = match kind {
            LoadKind::Plain => ins.load(ty, f, addr, off),
            LoadKind::S8 => ins.sload8(ty, f, addr, off),
            LoadKind::U8 => ins.uload8(ty, f, addr, off),
            LoadKind::S16 => ins.sload16(ty, f, addr, off),
            LoadKind::U16 => ins.uload16(ty, f, addr, off),
            LoadKind::S32 => ins.sload32(f, addr, off),
            LoadKind::U32 => ins.uload32(f, addr, off),
        };
        self.push(v);
    }

    fn table_def(&mut self, table: u32) -> Value {
        self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, self.env.offsets.table_ptr(table) as i32)
    }

    /// Bounds-checks `index` against the table and returns the element's address.
    fn table_elem_addr(&mut self, table: u32, index: Value, code: TrapCode) -> Value {
        let def = self.table_def(table);
        let idx = self.index_to_i64(index, self.is_table64(table));
        let len = self.builder.ins().load(types::I64, trusted_flags(), def, vmctx::TABLE_LENGTH_OFFSET as i32);
        let oob = self.builder.ins().icmp(IntCC::UnsignedGreaterThanOrEqual, idx, len);
        self.builder.ins().trapnz(oob, code);
        let base = self.builder.ins().load(types::I64, trusted_flags(), def, vmctx::TABLE_BASE_OFFSET as i32);
        let scaled = self.builder.ins().ishl_imm_u(idx, 3);
        self.builder.ins().iadd(base, scaled)
    }

    /// Loads a table element; in funcref tables, materialises a lazily
    /// initialised element on a cold path.
    fn load_table_elem(&mut self, table: u32, index: Value, addr: Value) -> Value {
        let v = self.builder.ins().load(types::I64, trusted_flags(), addr, 0);
        if !crate::frontend::is_func_heap(&self.env.info.tables[table as usize].element_type) {
            return v;
        }
        let lazy = self.builder.ins().band_imm_u(v, vmctx::LAZY_FUNCREF_TAG as i64);
        let slow = self.builder.create_block();
        let cont = self.builder.create_block();
        let result = self.builder.append_block_param(cont, types::I64);
        self.builder.set_cold_block(slow);
        self.builder.ins().brif(lazy, slow, &[], cont, &[BlockArg::Value(v)]);
        self.builder.seal_block(slow);
        self.builder.switch_to_block(slow);
        let t = self.const_u32(table);
        let idx = self.index_to_i64(index, self.is_table64(table));
        let r = self.call_builtin(Builtin::TableLazyInit, &[t, idx])[0];
        self.builder.ins().jump(cont, &[BlockArg::Value(r)]);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
        result
    }

    fn sig_ref(&mut self, type_index: u32) -> ir::SigRef {
        if let Some(s) = self.sig_refs.get(&type_index) {
            return *s;
        }
        let sig = func_type_signature(&self.env.info.types[type_index as usize]);
        let s = self.builder.import_signature(sig);
        self.sig_refs.insert(type_index, s);
        s
    }

    fn call_builtin(&mut self, b: Builtin, args: &[Value]) -> Vec<Value> {
        let sig = match self.builtin_sigs.get(&(b as u32)) {
            Some(s) => *s,
            None => {
                let s = self.builder.import_signature(builtin_signature(b));
                self.builtin_sigs.insert(b as u32, s);
                s
            }
        };
        let table = match self.builtins {
            Some(t) => t,
            None => {
                // Loaded where first needed; it is cheap and cannot trap.
                let t = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, vmctx::VMCTX_BUILTINS_OFFSET as i32);
                t
            }
        };
        let f = self.builder.ins().load(types::I64, readonly_flags(), table, (b as u32 * 8) as i32);
        let mut all = vec![self.vmctx];
        all.extend_from_slice(args);
        let call = self.builder.ins().call_indirect(sig, f, &all);
        self.builder.inst_results(call).to_vec()
    }

    fn finish_call(&mut self, call: ir::Inst, num_params: usize) {
        let n = self.stack.len() - num_params;
        self.stack.truncate(n);
        let results = self.builder.inst_results(call).to_vec();
        self.stack.extend(results);
    }

    fn translate_call(&mut self, f: u32, tail: bool) -> anyhow::Result<()> {
        self.check_before_call();
        let type_index = self.env.info.funcs[f as usize];
        let num_params = self.env.info.types[type_index as usize].params().len();
        let params = self.peekn(num_params).to_vec();
        if self.env.info.is_imported_func(f) {
            let off = self.env.offsets.func_ref(f) as i32;
            let code = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, off + vmctx::FUNCREF_CODE_OFFSET as i32);
            let callee_vmctx = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, off + vmctx::FUNCREF_VMCTX_OFFSET as i32);
            self.emit_indirect(type_index, code, callee_vmctx, &params, tail);
        } else {
            let fref = match self.func_refs.get(&f) {
                Some(r) => *r,
                None => {
                    let sig = self.sig_ref(type_index);
                    let name = self.builder.func.declare_imported_user_function(UserExternalName::new(0, f));
                    let r = self.builder.import_function(ExtFuncData { name: ExternalName::user(name), signature: sig, colocated: true, patchable: false });
                    self.func_refs.insert(f, r);
                    r
                }
            };
            let mut args = vec![self.vmctx, self.vmctx];
            args.extend_from_slice(&params);
            if tail {
                self.builder.ins().return_call(fref, &args);
                self.reachable = false;
            } else {
                let call = self.builder.ins().call(fref, &args);
                self.finish_call(call, num_params);
            }
        }
        Ok(())
    }

    fn emit_indirect(&mut self, type_index: u32, code: Value, callee_vmctx: Value, params: &[Value], tail: bool) {
        let sig = self.sig_ref(type_index);
        let mut args = vec![callee_vmctx, self.vmctx];
        args.extend_from_slice(params);
        if tail {
            self.builder.ins().return_call_indirect(sig, code, &args);
            self.reachable = false;
        } else {
            let call = self.builder.ins().call_indirect(sig, code, &args);
            self.finish_call(call, params.len());
        }
    }

    fn translate_call_indirect(&mut self, type_index: u32, table: u32, tail: bool) -> anyhow::Result<()> {
        self.check_before_call();
        let index = self.pop();
        let addr = self.table_elem_addr(table, index, codes::TABLE_OUT_OF_BOUNDS);
        let funcref = self.load_table_elem(table, index, addr);
        self.builder.ins().trapz(funcref, codes::INDIRECT_CALL_TO_NULL);
        let actual = self.builder.ins().load(types::I32, readonly_flags(), funcref, vmctx::FUNCREF_TYPE_OFFSET as i32);
        let type_ids = match self.type_ids {
            Some(t) => t,
            None => self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, vmctx::VMCTX_TYPE_IDS_OFFSET as i32),
        };
        let expected = self.builder.ins().load(types::I32, readonly_flags(), type_ids, (type_index * 4) as i32);
        let mismatch = self.builder.ins().icmp(IntCC::NotEqual, actual, expected);
        self.builder.ins().trapnz(mismatch, codes::BAD_SIGNATURE);
        let code = self.builder.ins().load(types::I64, readonly_flags(), funcref, vmctx::FUNCREF_CODE_OFFSET as i32);
        let callee_vmctx = self.builder.ins().load(types::I64, readonly_flags(), funcref, vmctx::FUNCREF_VMCTX_OFFSET as i32);
        let num_params = self.env.info.types[type_index as usize].params().len();
        let params = self.peekn(num_params).to_vec();
        self.emit_indirect(type_index, code, callee_vmctx, &params, tail);
        Ok(())
    }

    fn translate_call_ref(&mut self, type_index: u32, tail: bool) -> anyhow::Result<()> {
        self.check_before_call();
        let funcref = self.pop();
        self.builder.ins().trapz(funcref, codes::NULL_REFERENCE);
        let code = self.builder.ins().load(types::I64, readonly_flags(), funcref, vmctx::FUNCREF_CODE_OFFSET as i32);
        let callee_vmctx = self.builder.ins().load(types::I64, readonly_flags(), funcref, vmctx::FUNCREF_VMCTX_OFFSET as i32);
        let num_params = self.env.info.types[type_index as usize].params().len();
        let params = self.peekn(num_params).to_vec();
        self.emit_indirect(type_index, code, callee_vmctx, &params, tail);
        Ok(())
    }
}

/// Where a function body makes calls, for placing interruption checks.
#[derive(Default)]
struct CallSites {
    /// Whether the body contains any call.
    any: bool,
    /// Offsets of the `loop` operators whose body contains a call directly
    /// (not only inside a nested loop), sorted.
    loops: Vec<u64>,
}

/// Scans a body, not yet validated, for its calls.
fn call_sites(body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<CallSites> {
    let mut sites = CallSites::default();
    // One entry per open block: the loop's offset for loops.
    let mut open: Vec<Option<u64>> = Vec::new();
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let (op, offset) = reader.read_with_offset()?;
        match op {
            Operator::Block { .. } | Operator::If { .. } | Operator::TryTable { .. } => open.push(None),
            Operator::Loop { .. } => open.push(Some(offset)),
            Operator::End => {
                open.pop();
            }
            Operator::Call { .. }
            | Operator::CallIndirect { .. }
            | Operator::CallRef { .. }
            | Operator::ReturnCall { .. }
            | Operator::ReturnCallIndirect { .. }
            | Operator::ReturnCallRef { .. } => {
                sites.any = true;
                if let Some(innermost_loop) = open.iter().rev().find_map(|o| *o) {
                    sites.loops.push(innermost_loop);
                }
            }
            _ => {}
        }
    }
    sites.loops.sort_unstable();
    sites.loops.dedup();
    Ok(sites)
}

#[derive(Clone, Copy)]
enum LoadKind {
    Plain,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
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
        let env = TranslateEnv { info: &info, offsets: &offsets, tunables, epoch_counter: 0 };
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

//! Interruption points: where checks go (loop back edges, calls on paths
//! that have not passed one, loop headers of loops that call), what a check
//! is in each mode (an epoch compare, a probe load through the vmctx, memory
//! 0's base or the GS segment), and the verification that every cycle and
//! call is covered.

use super::*;

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
pub(super) fn memory_probe_offset(byte: u32) -> i32 {
    debug_assert!(byte < vmctx::MEMORY_PROBE_PAGE_SIZE);
    -(byte as i32) - 1
}

/// The debug tag of the sequence point just before each segment probe, for
/// the compiler to find them.
pub const SEGMENT_PROBE_TAG: u32 = 0x5e6_0000;

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
pub(super) fn verify_interruption_checks(func: &Function, checks: &[ir::Inst], builtin_sigs: &[ir::SigRef], calls_need_checks: bool) -> anyhow::Result<()> {
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
                // A stack switch counts as a call for Cranelift, but runs
                // code that checks on its own (another function's).
                let is_switch = data.opcode() == ir::Opcode::StackSwitch;
                if data.opcode().is_call() && !is_switch && !func.dfg.call_signature(inst).is_some_and(|s| builtin_sigs.contains(&s)) {
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
    /// Makes an interruption check before a call unless every path here has
    /// passed one since the function's entry or the last loop header (epoch
    /// and MMU pointer modes; in MMU page mode the prologue of a function that
    /// calls is the check).
    pub(super) fn check_before_call(&mut self) {
        use crate::config::Interruption;
        if matches!(self.env.tunables.interruption, Interruption::Epoch | Interruption::MmuPointer) {
            self.check_unless_checked();
        }
    }

    /// Makes an interruption check here unless every path here has passed one
    /// since the function's entry or the last loop header.
    pub(super) fn check_unless_checked(&mut self) {
        if !self.interruption_checked {
            self.interruption_point();
            self.interruption_checked = true;
        }
    }

    /// A point where a guest may be interrupted: back edges and calls that
    /// have not passed one (see [`Self::note_edge`] and
    /// [`Self::check_before_call`]). Epoch and MMU interruption insert their
    /// checks here.
    pub(super) fn interruption_point(&mut self) {
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
    pub(super) fn retarget_probes(&mut self) {
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

    /// Records an edge from the current point to the frame at `idx`, before
    /// the branch is emitted. An edge to a loop is a back edge, to its header:
    /// it gets an interruption check unless one was passed since the header,
    /// so that every cycle has one (an outer loop whose body always runs an
    /// inner loop's back edge needs no check of its own, and a loop that never
    /// branches back none at all). Otherwise the frame's destination is
    /// reached, with this point's interruption-check state.
    pub(super) fn note_edge(&mut self, idx: usize) {
        if self.control[idx].kind == FrameKind::Loop {
            self.check_unless_checked();
            return;
        }
        let checked = self.interruption_checked;
        let frame = &mut self.control[idx];
        frame.destination_reached = true;
        frame.checked_at_destination &= checked;
    }
}

/// Where a function body makes calls, for placing interruption checks.
#[derive(Default)]
pub(super) struct CallSites {
    /// Whether the body contains any call.
    pub any: bool,
    /// Offsets of the `loop` operators whose body contains a call directly
    /// (not only inside a nested loop), sorted.
    pub loops: Vec<u64>,
}

/// Scans a body, not yet validated, for its calls.
pub(super) fn call_sites(body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<CallSites> {
    let mut sites = CallSites::default();
    // One entry per open block: the loop's offset for loops.
    let mut open: Vec<Option<u64>> = Vec::new();
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        let (op, offset) = reader.read_with_offset()?;
        match op {
            Operator::Block { .. } | Operator::If { .. } | Operator::TryTable { .. } | Operator::Try { .. } => open.push(None),
            Operator::Loop { .. } => open.push(Some(offset)),
            Operator::End | Operator::Delegate { .. } => {
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

//! Continuations (stack switching): `cont.new`, `cont.bind`, `resume`,
//! `resume_throw`, `resume_throw_ref`, `suspend` and `switch`.
//!
//! Every switch is prepared by a builtin (see `runtime::continuation`):
//! it checks the continuation reference, finds the handler, updates the
//! chain of running continuations and the stack limit, and writes the
//! switch into the store context. The common cases skip the builtin: a
//! `resume` of a suspended continuation without bound values, and a
//! `suspend` whose handler is the first clause of the resume right above,
//! do the same work inline, on the continuation object's fields (see
//! [`vmctx::CONT_CTX_OFFSET`]). Compiled code then makes the switch with
//! Cranelift's `stack_switch` and dispatches on the payload it gets back
//! when control returns: a resume on "returned", "threw" or "suspended to
//! handler k"; a suspension on "resumed" or "resumed throwing". Values
//! travel in the store's switch-value slots, 16 bytes each, written before
//! the switch is prepared and read after it.

use cranelift_codegen::cursor::{Cursor, FuncCursor};

use super::*;

/// What a `resume` instruction passes in.
enum ResumeWith {
    /// The continuation's parameters.
    Values,
    /// A new exception of this module tag (`resume_throw`).
    NewException(u32),
    /// An `exnref` (`resume_throw_ref`).
    Exception,
}

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a stack-switching operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_continuation_op(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
            O::ContNew { .. } => {
                let func = self.pop();
                self.builder.ins().trapz(func, codes::NULL_REFERENCE);
                let k = self.call_builtin(Builtin::ContNew, &[func])[0];
                self.builder.ins().trapz(k, codes::CONTINUATIONS_EXHAUSTED);
                self.push(k);
            }
            O::ContBind { argument_index, result_index } => {
                let types = &self.env.info.types;
                let n = types[argument_index as usize].params().len() - types[result_index as usize].params().len();
                let k = self.pop();
                self.builder.ins().trapz(k, codes::NULL_REFERENCE);
                let values = self.pop_values(n);
                self.store_switch_values(&values);
                let nargs = self.const_u32(n as u32);
                let bound = self.call_builtin(Builtin::ContBind, &[k, nargs])[0];
                self.builder.ins().trapz(bound, codes::CONTINUATION_CONSUMED);
                self.push(bound);
            }
            O::Resume { cont_type_index, ref resume_table } => self.translate_resume(cont_type_index, resume_table, ResumeWith::Values),
            O::ResumeThrow { cont_type_index, tag_index, ref resume_table } => {
                self.translate_resume(cont_type_index, resume_table, ResumeWith::NewException(tag_index))
            }
            O::ResumeThrowRef { cont_type_index, ref resume_table } => self.translate_resume(cont_type_index, resume_table, ResumeWith::Exception),
            O::Suspend { tag_index } => self.translate_suspend(tag_index),
            O::Switch { cont_type_index, tag_index } => self.translate_switch(cont_type_index, tag_index),
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn pop_values(&mut self, n: usize) -> Vec<Value> {
        let values = self.peekn(n).to_vec();
        self.stack.truncate(self.stack.len() - n);
        values
    }

    fn store_context(&mut self) -> Value {
        self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, vmctx::VMCTX_STORE_CTX_OFFSET as i32)
    }

    /// The store's switch-value slots (reloaded at every use: the runtime
    /// may move them between switches).
    fn switch_values(&mut self) -> Value {
        let ctx = self.store_context();
        self.builder.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_CONT_VALUES_OFFSET as i32)
    }

    fn store_switch_values(&mut self, values: &[Value]) {
        if values.is_empty() {
            return;
        }
        let slots = self.switch_values();
        for (i, v) in values.iter().enumerate() {
            self.builder.ins().store(trusted_flags(), *v, slots, i as i32 * crate::compile::VAL_RAW_SIZE);
        }
    }

    /// Loads switch values `first..` of types `tys`.
    fn load_switch_values(&mut self, first: usize, tys: &[Type]) -> Vec<Value> {
        if tys.is_empty() {
            return Vec::new();
        }
        let slots = self.switch_values();
        tys.iter().enumerate().map(|(i, t)| self.builder.ins().load(*t, trusted_flags(), slots, (first + i) as i32 * crate::compile::VAL_RAW_SIZE)).collect()
    }

    /// Traps with `code` if the builtin's `status` is `expected`.
    fn trap_on_status(&mut self, status: Value, expected: i64, code: TrapCode) {
        let is = self.builder.ins().icmp_imm_s(IntCC::Equal, status, expected);
        self.builder.ins().trapnz(is, code);
    }

    /// The switch the last builtin prepared: where to store this context,
    /// where to load the next, the payload.
    fn prepared_switch(&mut self) -> [Value; 3] {
        let ctx = self.store_context();
        let store = self.builder.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_SWITCH_STORE_OFFSET as i32);
        let load = self.builder.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_SWITCH_LOAD_OFFSET as i32);
        let payload = self.builder.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_SWITCH_PAYLOAD_OFFSET as i32);
        [store, load, payload]
    }

    /// Ends the current block with a jump to `switch` (see [`Self::switch_block`]).
    fn jump_to_switch(&mut self, switch: Block, values: [Value; 3]) {
        self.builder.ins().jump(switch, &Self::jump_args(&values));
    }

    /// Makes `switch` (from [`Self::new_switch_block`]) current and has it
    /// make the switch its three parameters describe; returns the payload
    /// the other side sends back when control returns here.
    fn switch_block(&mut self, switch: Block) -> Value {
        self.builder.seal_block(switch);
        self.builder.switch_to_block(switch);
        let p = self.builder.block_params(switch).to_vec();
        let back = self.builder.ins().stack_switch(p[0], p[1], p[2]);
        // The continuations that ran counted their fuel in the store.
        self.fuel_load();
        back
    }

    fn new_switch_block(&mut self) -> Block {
        self.new_block_with_params(&[types::I64, types::I64, types::I64])
    }

    /// Sets the stack limit prologues check (and, in MMU page mode, its
    /// mirror in the interrupt page, where they read it).
    fn set_stack_limit(&mut self, ctx: Value, limit: Value) {
        self.builder.ins().store(trusted_flags(), limit, ctx, vmctx::STORE_CTX_STACK_LIMIT_OFFSET as i32);
        if self.env.tunables.interruption == crate::config::Interruption::MmuPage {
            let mirror = self.builder.ins().load(types::I64, readonly_flags(), ctx, vmctx::STORE_CTX_STACK_LIMIT_MIRROR_OFFSET as i32);
            self.builder.ins().store(trusted_flags(), limit, mirror, 0);
        }
    }

    /// Writes the handler list of a resume into a slot of this frame (see
    /// [`vmctx::CONT_HANDLER_SWITCH`]); returns its address and the label
    /// clauses as (tag, label) in kind order. The list is the same at every
    /// execution of the resume, so the function's entry block writes it,
    /// once a call rather than once a resume (a resume in a loop is the
    /// common case: schedulers, generators' consumers).
    fn handler_list(&mut self, table: &wasmparser::ResumeTable) -> (Value, Vec<(u32, u32)>) {
        let n = table.handlers.len() as u32;
        let slot = self.builder.create_sized_stack_slot(ir::StackSlotData::new(ir::StackSlotKind::ExplicitSlot, 4 + 8 * n.max(1), 3));
        let mut words = vec![(0, None, n)];
        if n == 0 {
            // The pair the inline suspend reads, which matches nothing.
            words.push((4, None, u32::MAX));
            words.push((8, None, u32::MAX));
        }
        let mut labels = Vec::new();
        for (i, h) in table.handlers.iter().enumerate() {
            let (tag, kind, id_bit) = match *h {
                wasmparser::Handle::OnLabel { tag, label } => {
                    labels.push((tag, label));
                    (tag, labels.len() as u32 - 1, 0)
                }
                wasmparser::Handle::OnSwitch { tag } => (tag, vmctx::CONT_HANDLER_SWITCH, vmctx::CONT_HANDLER_SWITCH_ID_BIT),
            };
            // The tag's identity (the instance's), with the switch bit.
            words.push((4 + 8 * i as i32, Some(self.env.offsets.tag_identity(tag) as i32), id_bit));
            words.push((8 + 8 * i as i32, None, kind));
        }
        let entry = self.builder.func.layout.entry_block().expect("the entry block exists");
        let vmctx = self.vmctx;
        let func = &mut *self.builder.func;
        // Before the entry block's terminator if it is finished, else at its
        // end (the resume is in it).
        let last = func.layout.last_inst(entry).filter(|i| func.dfg.insts[*i].opcode().is_terminator());
        let mut pos = FuncCursor::new(func);
        pos = match last {
            Some(terminator) => pos.at_inst(terminator),
            None => pos.at_bottom(entry),
        };
        let list = pos.ins().stack_addr(types::I64, slot, 0);
        for (at, identity, value) in words {
            let v = match identity {
                Some(offset) => {
                    let id = pos.ins().load(types::I32, readonly_flags(), vmctx, offset);
                    if value != 0 {
                        pos.ins().bor_imm_u(id, value as i64)
                    } else {
                        id
                    }
                }
                None => pos.ins().iconst(types::I32, value as i64),
            };
            pos.ins().store(trusted_flags(), v, list, at);
        }
        let list = self.builder.ins().stack_addr(types::I64, slot, 0);
        (list, labels)
    }

    fn translate_resume(&mut self, ct: u32, table: &wasmparser::ResumeTable, with: ResumeWith) {
        let ty = self.env.info.types[ct as usize].clone();
        let k = self.pop();
        self.builder.ins().trapz(k, codes::NULL_REFERENCE);
        let (nargs, throw) = match with {
            ResumeWith::Values => {
                let values = self.pop_values(ty.params().len());
                self.store_switch_values(&values);
                (values.len(), 0)
            }
            ResumeWith::NewException(tag) => {
                let exn = self.new_exception(tag);
                self.store_switch_values(&[exn]);
                (0, 1)
            }
            ResumeWith::Exception => {
                let exn = self.pop();
                self.builder.ins().trapz(exn, codes::NULL_REFERENCE);
                self.store_switch_values(&[exn]);
                (0, 1)
            }
        };
        let (list, labels) = self.handler_list(table);
        self.fuel_save();
        let switch = self.new_switch_block();
        self.inline_resume(k, list, throw, switch);
        let nargs = self.const_u32(nargs as u32);
        let throw = self.const_u32(throw);
        let status = self.call_builtin(Builtin::ContResume, &[k, list, nargs, throw])[0];
        self.trap_on_status(status, vmctx::CONT_STATUS_CONSUMED, codes::CONTINUATION_CONSUMED);
        let prepared = self.prepared_switch();
        self.jump_to_switch(switch, prepared);
        let payload = self.switch_block(switch);

        // Dispatch on what came back.
        let returned = self.builder.create_block();
        let threw = self.builder.create_block();
        let invalid = self.builder.create_block();
        let suspended: Vec<Block> = labels.iter().map(|_| self.builder.create_block()).collect();
        let mut targets = vec![returned, threw];
        targets.extend(&suspended);
        self.dispatch(payload, &targets, invalid);
        for b in [returned, threw, invalid].iter().chain(&suspended) {
            self.builder.seal_block(*b);
        }

        self.builder.switch_to_block(invalid);
        self.builder.ins().trap(codes::UNREACHABLE);

        self.builder.switch_to_block(threw);
        let exn = self.load_switch_values(0, &[types::I64])[0];
        let handler = self.innermost_handler(self.control.len());
        self.throw_exn(exn, handler);

        let checked = self.interruption_checked;
        for ((tag, label), block) in labels.into_iter().zip(suspended) {
            self.builder.switch_to_block(block);
            let mut tys = self.tag_params(tag);
            tys.push(types::I64);
            let mut values = self.load_switch_values(0, &tys);
            self.interruption_checked = false;
            let idx = self.control.len() - 1 - label as usize;
            let (target, _) = self.control[idx].branch_target();
            self.note_edge(idx);
            // Most often the continuation that suspended is `k` itself, at
            // the revision this resume gave it. Branching on that guess lets
            // the handler go on with a reference computed from `k` (a
            // register or a spill slot) while the processor checks it
            // against the one read from the switch values, which comes at
            // the end of a chain of dependent loads (a generator's value:
            // 20.8 ns before, 17.9 ns after, in BENCHMARKS-LOG.md).
            let loaded = values.pop().expect("the continuation comes last");
            let guess = self.builder.ins().iadd_imm_u(k, 1 << vmctx::CONT_REF_REVISION_SHIFT);
            let right = self.builder.ins().icmp(IntCC::Equal, loaded, guess);
            let (guessed, read) = (self.builder.create_block(), self.builder.create_block());
            self.builder.ins().brif(right, guessed, &[], read, &[]);
            for (block, reference) in [(guessed, guess), (read, loaded)] {
                self.builder.seal_block(block);
                self.builder.switch_to_block(block);
                values.push(reference);
                self.builder.ins().jump(target, &Self::jump_args(&values));
                values.pop();
            }
        }
        self.interruption_checked = checked;

        self.builder.switch_to_block(returned);
        self.reachable = true;
        let tys: Vec<Type> = ty.results().iter().map(clif_type).collect();
        let results = self.load_switch_values(0, &tys);
        self.stack.extend(results);
    }

    /// Ends the current block with a jump to `targets[payload]`, or to
    /// `invalid` past the end. A few targets are tried one by one,
    /// suspensions first (the common case of a resume in a loop): a taken
    /// compare-and-branch or two cost less than a jump table's load and
    /// indirect jump.
    fn dispatch(&mut self, payload: Value, targets: &[Block], invalid: Block) {
        const MOST_TRIED_ONE_BY_ONE: usize = 5;
        let b = &mut self.builder;
        if targets.len() > MOST_TRIED_ONE_BY_ONE {
            let index = b.ins().ireduce(types::I32, payload);
            let calls: Vec<_> = targets.iter().map(|t| b.func.dfg.block_call(*t, &[])).collect();
            let default = b.func.dfg.block_call(invalid, &[]);
            let jt = b.create_jump_table(JumpTableData::new(default, &calls));
            b.ins().br_table(index, jt);
            return;
        }
        let order = (vmctx::CONT_SUSPENDED as usize..targets.len()).chain(0..vmctx::CONT_SUSPENDED as usize);
        for i in order {
            let is = b.ins().icmp_imm_u(IntCC::Equal, payload, i as i64);
            let next = b.create_block();
            b.ins().brif(is, targets[i], &[], next, &[]);
            b.seal_block(next);
            b.switch_to_block(next);
        }
        b.ins().jump(invalid, &[]);
    }

    /// For the inline paths of `resume` and `switch`: the object and
    /// revision of continuation `k`, and whether the inline path can take
    /// it: `k` is current, suspended alone (the builtin marks a chain's
    /// members running), and has no bound values, which its fast key (see
    /// [`vmctx::CONT_FAST_KEY_OFFSET`]) tells in one comparison.
    fn inline_target(&mut self, k: Value) -> (Value, Value, Value) {
        let b = &mut self.builder;
        let obj = b.ins().band_imm_s(k, (1i64 << vmctx::CONT_REF_REVISION_SHIFT) - 1);
        let revision = b.ins().ushr_imm_s(k, vmctx::CONT_REF_REVISION_SHIFT as i64);
        let key = b.ins().load(types::I64, trusted_flags(), obj, vmctx::CONT_FAST_KEY_OFFSET as i32);
        let ok = b.ins().icmp(IntCC::Equal, key, k);
        (obj, revision, ok)
    }

    /// Consumes the target of an inline path (see [`Self::inline_target`]):
    /// its next revision, and it runs.
    fn consume_inline_target(&mut self, obj: Value, revision: Value) {
        let b = &mut self.builder;
        let next = b.ins().iadd_imm_u(revision, 1);
        b.ins().store(trusted_flags(), next, obj, vmctx::CONT_REVISION_OFFSET as i32);
        let running = b.ins().iconst(types::I32, vmctx::CONT_STATE_RUNNING as i64);
        b.ins().store(trusted_flags(), running, obj, vmctx::CONT_STATE_OFFSET as i32);
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().store(trusted_flags(), zero, obj, vmctx::CONT_FAST_KEY_OFFSET as i32);
    }

    /// The fast key (see [`vmctx::CONT_FAST_KEY_OFFSET`]) of a continuation
    /// that suspends alone as reference `k` at `revision`: `k`, unless the
    /// revision may not grow on the inline path.
    fn fast_key(&mut self, k: Value, revision: Value) -> Value {
        let b = &mut self.builder;
        let may_grow = b.ins().icmp_imm_u(IntCC::UnsignedLessThan, revision, vmctx::CONT_MAX_REVISION as i64 - 1);
        let zero = b.ins().iconst(types::I64, 0);
        b.ins().select(may_grow, k, zero)
    }

    /// The inline path of a resume of `k` with handler list `list`: if `k`
    /// is current, suspended alone, and has no bound values, does what the
    /// `ContResume` builtin does and jumps to `switch`; otherwise continues
    /// in a fresh block (the builtin's path).
    fn inline_resume(&mut self, k: Value, list: Value, throw: u32, switch: Block) {
        // (Suspended alone, `k` is the root of what it resumes.)
        let (obj, revision, ok) = self.inline_target(k);
        let b = &mut self.builder;
        let (inline, builtin) = (b.create_block(), b.create_block());
        b.ins().brif(ok, inline, &[], builtin, &[]);
        b.seal_block(inline);
        b.seal_block(builtin);
        b.set_cold_block(builtin);
        b.switch_to_block(inline);
        self.consume_inline_target(obj, revision);
        let ctx = self.store_context();
        let b = &mut self.builder;
        let parent = b.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_ACTIVE_STACK_OFFSET as i32);
        // The limit of this stack, which a suspension back here restores.
        let limit = b.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_STACK_LIMIT_OFFSET as i32);
        b.ins().store(trusted_flags(), parent, obj, vmctx::CONT_PARENT_OFFSET as i32);
        b.ins().store(trusted_flags(), list, obj, vmctx::CONT_HANDLERS_OFFSET as i32);
        b.ins().store(trusted_flags(), limit, obj, vmctx::CONT_RESUMER_LIMIT_OFFSET as i32);
        b.ins().store(trusted_flags(), obj, ctx, vmctx::STORE_CTX_ACTIVE_STACK_OFFSET as i32);
        let limit = b.ins().load(types::I64, trusted_flags(), obj, vmctx::CONT_STACK_LIMIT_OFFSET as i32);
        self.set_stack_limit(ctx, limit);
        let b = &mut self.builder;
        let top = b.ins().load(types::I64, trusted_flags(), obj, vmctx::CONT_STACK_TOP_OFFSET as i32);
        let store = b.ins().iadd_imm_s(top, -(vmctx::CONT_RESUMER_RECORD_SIZE as i64));
        let load = b.ins().iadd_imm_u(obj, vmctx::CONT_CTX_OFFSET as i64);
        let payload = b.ins().iconst(types::I64, if throw != 0 { vmctx::CONT_RESUMED_THROWING } else { vmctx::CONT_RESUMED } as i64);
        self.jump_to_switch(switch, [store, load, payload]);
        self.builder.switch_to_block(builtin);
    }

    /// For the inline paths of `suspend` and `switch`: goes on to `builtin`
    /// (made cold) unless a continuation runs, and returns the store
    /// context, the running continuation, its resume's handler list, and
    /// whether the list's first clause handles `tag`, as a suspension or,
    /// with `switch`, as a switch (whose clause identities have
    /// `CONT_HANDLER_SWITCH_ID_BIT` set).
    fn first_clause_handles(&mut self, tag: u32, switch: bool, builtin: Block) -> (Value, Value, Value, Value) {
        let ctx = self.store_context();
        let b = &mut self.builder;
        let cur = b.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_ACTIVE_STACK_OFFSET as i32);
        let check = b.create_block();
        b.set_cold_block(builtin);
        b.ins().brif(cur, check, &[], builtin, &[]);
        b.seal_block(check);
        b.switch_to_block(check);
        let list = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_HANDLERS_OFFSET as i32);
        let id = b.ins().load(types::I32, trusted_flags(), list, 4);
        let mut expected = b.ins().load(types::I32, readonly_flags(), self.vmctx, self.env.offsets.tag_identity(tag) as i32);
        if switch {
            expected = b.ins().bor_imm_u(expected, vmctx::CONT_HANDLER_SWITCH_ID_BIT as i64);
        }
        let handled = b.ins().icmp(IntCC::Equal, id, expected);
        (ctx, cur, list, handled)
    }

    /// The inline path of `suspend` of module tag `tag` with `nargs`
    /// values: if the running continuation's resume handles the tag with
    /// its first clause, does what the `ContSuspend` builtin does and jumps
    /// to `switch`; otherwise continues in a fresh block (the builtin's path).
    fn inline_suspend(&mut self, tag: u32, nargs: usize, switch: Block) {
        let (inline, builtin) = (self.builder.create_block(), self.builder.create_block());
        let (ctx, cur, list, same) = self.first_clause_handles(tag, false, builtin);
        let b = &mut self.builder;
        b.ins().brif(same, inline, &[], builtin, &[]);
        b.seal_block(inline);
        b.seal_block(builtin);
        b.switch_to_block(inline);
        let kind = b.ins().load(types::I32, trusted_flags(), list, 8);
        // The continuation for the handler: this one, at its revision.
        let revision = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_REVISION_OFFSET as i32);
        let shifted = b.ins().ishl_imm_s(revision, vmctx::CONT_REF_REVISION_SHIFT as i64);
        let k = b.ins().bor(cur, shifted);
        let slots = self.switch_values();
        let b = &mut self.builder;
        b.ins().store(trusted_flags(), k, slots, nargs as i32 * crate::compile::VAL_RAW_SIZE);
        let handler = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_PARENT_OFFSET as i32);
        // (Its `parent` and `handlers` are left as they are: nothing reads
        // them before the next resume sets them.)
        b.ins().store(trusted_flags(), cur, cur, vmctx::CONT_LAST_ANCESTOR_OFFSET as i32);
        let suspended = b.ins().iconst(types::I32, vmctx::CONT_STATE_SUSPENDED as i64);
        b.ins().store(trusted_flags(), suspended, cur, vmctx::CONT_STATE_OFFSET as i32);
        let key = self.fast_key(k, revision);
        let b = &mut self.builder;
        b.ins().store(trusted_flags(), key, cur, vmctx::CONT_FAST_KEY_OFFSET as i32);
        b.ins().store(trusted_flags(), handler, ctx, vmctx::STORE_CTX_ACTIVE_STACK_OFFSET as i32);
        let limit = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_RESUMER_LIMIT_OFFSET as i32);
        self.set_stack_limit(ctx, limit);
        let b = &mut self.builder;
        let store = b.ins().iadd_imm_u(cur, vmctx::CONT_CTX_OFFSET as i64);
        let top = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_STACK_TOP_OFFSET as i32);
        let load = b.ins().iadd_imm_s(top, -(vmctx::CONT_RESUMER_RECORD_SIZE as i64));
        let kind = b.ins().uextend(types::I64, kind);
        let payload = b.ins().iadd_imm_u(kind, vmctx::CONT_SUSPENDED as i64);
        self.jump_to_switch(switch, [store, load, payload]);
        self.builder.switch_to_block(builtin);
    }

    /// The inline path of `switch` to `k` with tag `tag` and `nargs`
    /// values: if the running continuation's resume handles the switch
    /// with its first clause and `k` is current, suspended alone, and has
    /// no bound values, does what the `ContSwitch` builtin does and jumps to
    /// `switch`; otherwise continues in a fresh block (the builtin's path).
    fn inline_switch(&mut self, k: Value, tag: u32, nargs: usize, switch: Block) {
        let (inline, builtin) = (self.builder.create_block(), self.builder.create_block());
        let (ctx, cur, list, handled) = self.first_clause_handles(tag, true, builtin);
        let target = self.builder.create_block();
        self.builder.ins().brif(handled, target, &[], builtin, &[]);
        self.builder.seal_block(target);
        self.builder.switch_to_block(target);
        let (obj, revision, resumable) = self.inline_target(k);
        let b = &mut self.builder;
        b.ins().brif(resumable, inline, &[], builtin, &[]);
        b.seal_block(inline);
        b.seal_block(builtin);
        b.switch_to_block(inline);
        // The target, consumed, takes the running one's place under its
        // resumer: the resumer record (which its first frame links to),
        // parent, handler list and the resumer's stack limit.
        self.consume_inline_target(obj, revision);
        let b = &mut self.builder;
        let cur_top = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_STACK_TOP_OFFSET as i32);
        let obj_top = b.ins().load(types::I64, trusted_flags(), obj, vmctx::CONT_STACK_TOP_OFFSET as i32);
        let record = -(vmctx::CONT_RESUMER_RECORD_SIZE as i32);
        for word in 0..vmctx::CONT_RESUMER_RECORD_SIZE as i32 / 8 {
            let w = b.ins().load(types::I64, trusted_flags(), cur_top, record + 8 * word);
            b.ins().store(trusted_flags(), w, obj_top, record + 8 * word);
        }
        let parent = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_PARENT_OFFSET as i32);
        b.ins().store(trusted_flags(), parent, obj, vmctx::CONT_PARENT_OFFSET as i32);
        b.ins().store(trusted_flags(), list, obj, vmctx::CONT_HANDLERS_OFFSET as i32);
        let resumer_limit = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_RESUMER_LIMIT_OFFSET as i32);
        b.ins().store(trusted_flags(), resumer_limit, obj, vmctx::CONT_RESUMER_LIMIT_OFFSET as i32);
        // The running one suspends alone; the target receives it after the
        // values. (Its `parent` and `handlers` are left as they are: nothing
        // reads them before the next resume or switch sets them.)
        b.ins().store(trusted_flags(), cur, cur, vmctx::CONT_LAST_ANCESTOR_OFFSET as i32);
        let suspended = b.ins().iconst(types::I32, vmctx::CONT_STATE_SUSPENDED as i64);
        b.ins().store(trusted_flags(), suspended, cur, vmctx::CONT_STATE_OFFSET as i32);
        let cur_revision = b.ins().load(types::I64, trusted_flags(), cur, vmctx::CONT_REVISION_OFFSET as i32);
        let shifted = b.ins().ishl_imm_s(cur_revision, vmctx::CONT_REF_REVISION_SHIFT as i64);
        let cur_ref = b.ins().bor(cur, shifted);
        let key = self.fast_key(cur_ref, cur_revision);
        self.builder.ins().store(trusted_flags(), key, cur, vmctx::CONT_FAST_KEY_OFFSET as i32);
        let slots = self.switch_values();
        let b = &mut self.builder;
        b.ins().store(trusted_flags(), cur_ref, slots, nargs as i32 * crate::compile::VAL_RAW_SIZE);
        b.ins().store(trusted_flags(), obj, ctx, vmctx::STORE_CTX_ACTIVE_STACK_OFFSET as i32);
        let limit = b.ins().load(types::I64, trusted_flags(), obj, vmctx::CONT_STACK_LIMIT_OFFSET as i32);
        self.set_stack_limit(ctx, limit);
        let b = &mut self.builder;
        let store = b.ins().iadd_imm_u(cur, vmctx::CONT_CTX_OFFSET as i64);
        let load = b.ins().iadd_imm_u(obj, vmctx::CONT_CTX_OFFSET as i64);
        let payload = b.ins().iconst(types::I64, vmctx::CONT_RESUMED as i64);
        self.jump_to_switch(switch, [store, load, payload]);
        self.builder.switch_to_block(builtin);
    }

    /// A new exception of module tag `tag` with its payload from the stack.
    fn new_exception(&mut self, tag: u32) -> Value {
        let params = self.tag_params(tag);
        let tag_value = self.const_u32(tag);
        let exn = self.call_builtin(Builtin::ExnNew, &[tag_value])[0];
        let values = self.pop_values(params.len());
        for (i, v) in values.into_iter().enumerate() {
            self.builder.ins().store(trusted_flags(), v, exn, (vmctx::EXN_PAYLOAD_OFFSET + i as u32 * vmctx::EXN_SLOT_SIZE) as i32);
        }
        exn
    }

    fn translate_suspend(&mut self, tag: u32) {
        let ty = self.env.info.types[self.env.info.tags[tag as usize] as usize].clone();
        let values = self.pop_values(ty.params().len());
        self.store_switch_values(&values);
        self.fuel_save();
        let switch = self.new_switch_block();
        self.inline_suspend(tag, values.len(), switch);
        let tag_value = self.const_u32(tag);
        let nargs = self.const_u32(values.len() as u32);
        let status = self.call_builtin(Builtin::ContSuspend, &[tag_value, nargs])[0];
        self.trap_on_status(status, vmctx::CONT_STATUS_UNHANDLED, codes::UNHANDLED_TAG);
        let prepared = self.prepared_switch();
        self.jump_to_switch(switch, prepared);
        let payload = self.switch_block(switch);
        let results: Vec<Type> = ty.results().iter().map(clif_type).collect();
        self.after_resumed(payload, &results);
    }

    fn translate_switch(&mut self, ct: u32, tag: u32) {
        let ty = self.env.info.types[ct as usize].clone();
        // The target takes our parameters and then the continuation of the
        // switcher, whose type's parameters are what the switch returns.
        let (last, params) = ty.params().split_last().expect("validated: a switch target takes a continuation");
        let back = match last {
            wasmparser::ValType::Ref(r) => match r.heap_type() {
                wasmparser::HeapType::Concrete(i) | wasmparser::HeapType::Exact(i) => i.as_module_index(),
                _ => None,
            },
            _ => None,
        }
        .expect("validated: the last parameter is a continuation of a concrete type");
        let results: Vec<Type> = self.env.info.types[back as usize].params().iter().map(clif_type).collect();
        let k = self.pop();
        self.builder.ins().trapz(k, codes::NULL_REFERENCE);
        let values = self.pop_values(params.len());
        self.store_switch_values(&values);
        self.fuel_save();
        let switch = self.new_switch_block();
        self.inline_switch(k, tag, values.len(), switch);
        let tag_value = self.const_u32(tag);
        let nargs = self.const_u32(values.len() as u32);
        let status = self.call_builtin(Builtin::ContSwitch, &[k, tag_value, nargs])[0];
        self.trap_on_status(status, vmctx::CONT_STATUS_CONSUMED, codes::CONTINUATION_CONSUMED);
        self.trap_on_status(status, vmctx::CONT_STATUS_UNHANDLED, codes::UNHANDLED_TAG);
        let prepared = self.prepared_switch();
        self.jump_to_switch(switch, prepared);
        let payload = self.switch_block(switch);
        self.after_resumed(payload, &results);
    }

    /// After a suspension or switch came back with `payload`: the values
    /// it was resumed with, or the exception it was resumed with, thrown.
    fn after_resumed(&mut self, payload: Value, results: &[Type]) {
        let resumed = self.builder.create_block();
        let threw = self.builder.create_block();
        self.builder.ins().brif(payload, threw, &[], resumed, &[]);
        self.builder.seal_block(resumed);
        self.builder.seal_block(threw);
        self.builder.switch_to_block(threw);
        let exn = self.load_switch_values(0, &[types::I64])[0];
        let handler = self.innermost_handler(self.control.len());
        self.throw_exn(exn, handler);
        self.builder.switch_to_block(resumed);
        self.reachable = true;
        let values = self.load_switch_values(0, results);
        self.stack.extend(values);
    }
}

//! Exceptions: `throw`, `throw_ref`, `try_table` with its catch clauses, and
//! the legacy encoding (`try`, `catch`, `catch_all`, `delegate`, `rethrow`),
//! lowered onto one mechanism.
//!
//! Every `try` region (a `try_table`, or a legacy `try` up to its first
//! catch clause) has a *dispatch block*, which receives the thrown exception.
//! Calls made in the region are `try_call`s whose exception table sends any
//! exception there (see `runtime::exception` for how the unwinder lands
//! in it); calls elsewhere are plain calls and cost nothing. The dispatch
//! code compares the exception's tag with each clause's in order and
//! branches to the first that matches, with the payload loaded from the
//! exception object; without a match the exception goes to the dispatch
//! block of the enclosing region in the same function, or is thrown on to
//! the caller. Throwing calls the throw stub, itself a `try_call` inside a
//! region, so an exception thrown and caught in one function takes the same
//! path as one thrown from a callee.

use super::*;

/// One catch clause of a region, in the common form of both encodings.
#[derive(Debug, Clone, Copy)]
pub(super) struct CatchClause {
    /// The module tag that matches, or `None` for `catch_all`.
    tag: Option<u32>,
    /// Whether the exception itself is passed on as an `exnref`.
    pass_exn: bool,
}

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers an exception-handling operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_exception_op(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
            O::Throw { tag_index } => self.translate_throw(tag_index),
            O::ThrowRef => {
                let exn = self.pop();
                self.builder.ins().trapz(exn, codes::NULL_REFERENCE);
                let handler = self.innermost_handler(self.control.len());
                self.throw_exn(exn, handler);
            }
            O::TryTable { ref try_table } => self.translate_try_table(try_table)?,
            O::Try { blockty } => {
                let (params, results) = self.block_type(blockty);
                let dest = self.new_block_with_params(&results);
                let base = self.stack.len() - params.len();
                let mut frame = ControlFrame::new(FrameKind::LegacyTry, dest, None, params.len(), results.len(), base, self.interruption_checked);
                let dispatch = self.builder.create_block();
                let exn = self.builder.append_block_param(dispatch, types::I64);
                frame.region = Some(Region { dispatch, in_body: true, chain: Some((dispatch, exn)), caught: Some(self.builder.declare_var(types::I64)) });
                self.control.push(frame);
            }
            O::Catch { tag_index } => self.translate_legacy_catch(Some(tag_index)),
            O::CatchAll => self.translate_legacy_catch(None),
            O::Delegate { relative_depth } => self.translate_delegate(relative_depth),
            O::Rethrow { relative_depth } => {
                let idx = self.control.len() - 1 - relative_depth as usize;
                let caught = self.control[idx].region.as_ref().and_then(|r| r.caught).expect("validated: rethrow names a legacy catch");
                let exn = self.builder.use_var(caught);
                let handler = self.innermost_handler(self.control.len());
                self.throw_exn(exn, handler);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The dispatch block of the innermost region among the first `depth`
    /// frames of the control stack that is still catching.
    pub(super) fn innermost_handler(&self, depth: usize) -> Option<Block> {
        self.control[..depth].iter().rev().find_map(|f| f.region.as_ref().filter(|r| r.in_body).map(|r| r.dispatch))
    }

    /// The payload types of module tag `tag`.
    pub(super) fn tag_params(&self, tag: u32) -> Vec<Type> {
        let ty = &self.env.info.types[self.env.info.tags[tag as usize] as usize];
        ty.params().iter().map(clif_type).collect()
    }

    fn translate_throw(&mut self, tag: u32) {
        let params = self.tag_params(tag);
        let tag_value = self.const_u32(tag);
        let exn = self.call_builtin(Builtin::ExnNew, &[tag_value])[0];
        let values = self.peekn(params.len()).to_vec();
        for (i, v) in values.into_iter().enumerate() {
            self.builder.ins().store(trusted_flags(), v, exn, Self::payload_offset(i));
        }
        let n = self.stack.len() - params.len();
        self.stack.truncate(n);
        let handler = self.innermost_handler(self.control.len());
        self.throw_exn(exn, handler);
    }

    /// Throws `exn` (not null) from here: to `handler` in this function if
    /// there is one, to the caller otherwise. Ends the block.
    pub(super) fn throw_exn(&mut self, exn: Value, handler: Option<Block>) {
        let sig = match self.builtin_sigs.get(&(Builtin::Throw as u32)) {
            Some(s) => *s,
            None => {
                let s = self.builder.import_signature(builtin_signature(Builtin::Throw));
                self.builtin_sigs.insert(Builtin::Throw as u32, s);
                s
            }
        };
        let table = self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, vmctx::VMCTX_BUILTINS_OFFSET as i32);
        let stub = self.builder.ins().load(types::I64, readonly_flags(), table, (Builtin::Throw as u32 * 8) as i32);
        let args = [self.vmctx, exn];
        match handler {
            Some(handler) => {
                let never = self.builder.create_block();
                let dfg = &mut self.builder.func.dfg;
                let normal = dfg.block_call(never, &[]);
                let to_handler = dfg.block_call(handler, &[BlockArg::TryCallExn(0)]);
                let et = dfg.exception_tables.push(ir::ExceptionTableData::new(sig, normal, [ir::ExceptionTableItem::Default(to_handler)]));
                self.builder.ins().try_call_indirect(stub, &args, et);
                self.builder.seal_block(never);
                self.builder.switch_to_block(never);
                self.builder.ins().trap(codes::UNREACHABLE);
            }
            None => {
                self.builder.ins().call_indirect(sig, stub, &args);
                self.builder.ins().trap(codes::UNREACHABLE);
            }
        }
        self.reachable = false;
    }

    fn translate_try_table(&mut self, try_table: &wasmparser::TryTable) -> anyhow::Result<()> {
        let (params, results) = self.block_type(try_table.ty);
        let dest = self.new_block_with_params(&results);
        let base = self.stack.len() - params.len();
        // The clauses are known up front: the dispatch code goes first,
        // with the labels and regions of the enclosing frames.
        let dispatch = self.builder.create_block();
        let exn = self.builder.append_block_param(dispatch, types::I64);
        let body = self.builder.create_block();
        self.builder.ins().jump(body, &[]);
        self.builder.seal_block(body);
        let checked = self.interruption_checked;
        let outer = self.innermost_handler(self.control.len());
        self.builder.switch_to_block(dispatch);
        // The thrower stored its count before throwing.
        self.fuel_load();
        let mut tail = Some((dispatch, exn));
        for catch in &try_table.catches {
            let (clause, label) = match *catch {
                wasmparser::Catch::One { tag, label } => (CatchClause { tag: Some(tag), pass_exn: false }, label),
                wasmparser::Catch::OneRef { tag, label } => (CatchClause { tag: Some(tag), pass_exn: true }, label),
                wasmparser::Catch::All { label } => (CatchClause { tag: None, pass_exn: false }, label),
                wasmparser::Catch::AllRef { label } => (CatchClause { tag: None, pass_exn: true }, label),
            };
            let Some((at, exn)) = tail else { break };
            let matched = self.builder.create_block();
            tail = self.dispatch_clause(at, exn, clause, matched);
            self.builder.seal_block(matched);
            self.builder.switch_to_block(matched);
            let values = self.caught_values(exn, clause);
            self.interruption_checked = false;
            let idx = self.control.len() - 1 - label as usize;
            let (target, _) = self.control[idx].branch_target();
            self.note_edge(idx);
            self.builder.ins().jump(target, &Self::jump_args(&values));
        }
        if let Some((at, exn)) = tail {
            self.builder.switch_to_block(at);
            self.pass_on(exn, outer);
        }
        self.interruption_checked = checked;
        self.reachable = true;
        self.builder.switch_to_block(body);
        let mut frame = ControlFrame::new(FrameKind::TryTable, dest, None, params.len(), results.len(), base, checked);
        frame.region = Some(Region { dispatch, in_body: true, chain: None, caught: None });
        self.control.push(frame);
        Ok(())
    }

    /// Emits, in block `at` (the dispatch code so far, holding `exn`), the
    /// test of one clause, which branches to `matched` (sealed by the
    /// caller) when it matches. Returns where the next clause's test goes,
    /// or `None` after a clause that catches everything.
    fn dispatch_clause(&mut self, at: Block, exn: Value, clause: CatchClause, matched: Block) -> Option<(Block, Value)> {
        self.builder.switch_to_block(at);
        let Some(tag) = clause.tag else {
            self.builder.ins().jump(matched, &[]);
            return None;
        };
        let thrown = self.builder.ins().load(types::I32, trusted_flags(), exn, vmctx::EXN_TAG_OFFSET as i32);
        let expected = self.builder.ins().load(types::I32, readonly_flags(), self.vmctx, self.env.offsets.tag_identity(tag) as i32);
        let is = self.builder.ins().icmp(IntCC::Equal, thrown, expected);
        let next = self.builder.create_block();
        self.builder.ins().brif(is, matched, &[], next, &[]);
        self.builder.seal_block(next);
        Some((next, exn))
    }

    /// In a block that caught `exn` with `clause`: the values the clause
    /// passes on (the payload, then the exception for the `_ref` forms).
    /// A clause that does not pass the exception on is done with it.
    fn caught_values(&mut self, exn: Value, clause: CatchClause) -> Vec<Value> {
        let mut values = clause.tag.map(|tag| self.load_payload(exn, tag)).unwrap_or_default();
        if clause.pass_exn {
            self.mark_exposed(exn);
            values.push(exn);
        } else {
            self.call_builtin(Builtin::ExnDrop, &[exn]);
        }
        values
    }

    /// The offset of payload slot `i` in an exception object.
    fn payload_offset(i: usize) -> i32 {
        (vmctx::EXN_PAYLOAD_OFFSET + i as u32 * vmctx::EXN_SLOT_SIZE) as i32
    }

    /// The payload of `exn`, an exception of module tag `tag`.
    fn load_payload(&mut self, exn: Value, tag: u32) -> Vec<Value> {
        let params = self.tag_params(tag);
        params.into_iter().enumerate().map(|(i, ty)| self.builder.ins().load(ty, trusted_flags(), exn, Self::payload_offset(i))).collect()
    }

    /// Records that `exn` becomes a value, which only the collector may free.
    fn mark_exposed(&mut self, exn: Value) {
        let one = self.builder.ins().iconst(types::I32, 1);
        self.builder.ins().store(trusted_flags(), one, exn, vmctx::EXN_EXPOSED_OFFSET as i32);
    }

    /// Ends dispatch code that matched no clause: on to `outer`, or out to the caller.
    fn pass_on(&mut self, exn: Value, outer: Option<Block>) {
        match outer {
            Some(outer) => {
                self.builder.ins().jump(outer, &[BlockArg::Value(exn)]);
            }
            None => self.throw_exn(exn, None),
        }
    }

    fn translate_legacy_catch(&mut self, tag: Option<u32>) {
        let idx = self.control.len() - 1;
        if self.reachable {
            self.note_edge(idx);
            let frame = &self.control[idx];
            let args = Self::jump_args(&self.stack[self.stack.len() - frame.num_results..]);
            self.builder.ins().jump(frame.destination, &args);
        }
        let frame = self.control.last_mut().unwrap();
        let region = frame.region.as_mut().expect("validated: catch follows try");
        if region.in_body {
            // The body is done: every call that lands in the dispatch block is known.
            region.in_body = false;
            let dispatch = region.dispatch;
            self.builder.seal_block(dispatch);
        }
        let frame = self.control.last_mut().unwrap();
        let region = frame.region.as_mut().unwrap();
        let caught = region.caught.expect("a legacy try has a caught variable");
        let tail = region.chain.take();
        let base = frame.original_stack_size;
        let matched = self.builder.create_block();
        let clause = CatchClause { tag, pass_exn: false };
        let (next, exn) = match tail {
            Some((at, exn)) => (self.dispatch_clause(at, exn, clause, matched), Some(exn)),
            // After a catch_all, later clauses can never match.
            None => (None, None),
        };
        self.control.last_mut().unwrap().region.as_mut().unwrap().chain = next;
        self.builder.seal_block(matched);
        self.builder.switch_to_block(matched);
        self.stack.truncate(base);
        match exn {
            Some(exn) => {
                // The thrower stored its count before throwing.
                self.fuel_load();
                // The clause's body may rethrow it: it lives in a variable.
                self.mark_exposed(exn);
                self.builder.def_var(caught, exn);
                if let Some(tag) = tag {
                    let payload = self.load_payload(exn, tag);
                    self.stack.extend(payload);
                }
                self.reachable = true;
            }
            None => {
                // Unreachable clause: translated for validation only.
                for ty in tag.map(|t| self.tag_params(t)).unwrap_or_default() {
                    let zero = self.zero_value(ty);
                    self.stack.push(zero);
                }
                let zero = self.builder.ins().iconst(types::I64, 0);
                self.builder.def_var(caught, zero);
                self.builder.ins().trap(codes::UNREACHABLE);
                self.reachable = false;
            }
        }
        self.interruption_checked = false;
    }

    /// Completes the dispatch code of a legacy `try` region whose frame
    /// was just popped, at its `end` (or `delegate`): what no clause matched
    /// goes to the enclosing region (or the one `delegate` names) or on to
    /// the caller. Leaves the current block alone.
    pub(super) fn finish_legacy_dispatch(&mut self, frame: &mut ControlFrame) {
        let outer = self.innermost_handler(frame.delegate_to.map_or(self.control.len(), |d| d + 1));
        let region = frame.region.as_mut().unwrap();
        if region.in_body {
            region.in_body = false;
            self.builder.seal_block(region.dispatch);
        }
        if let Some((at, exn)) = region.chain.take() {
            let reachable = self.reachable;
            self.builder.switch_to_block(at);
            self.pass_on(exn, outer);
            self.reachable = reachable;
        }
    }

    fn translate_delegate(&mut self, relative_depth: u32) {
        let idx = self.control.len() - 1;
        // The label counts from the frame enclosing the `try`.
        self.control[idx].delegate_to = Some(idx - 1 - relative_depth as usize);
        self.translate_end();
    }
}

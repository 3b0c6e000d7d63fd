//! Structured control flow: `block`, `loop`, `if`/`else`, `end`, branches
//! (`br`, `br_if`, `br_table`, `br_on_null`, `br_on_non_null`), `return`,
//! `unreachable`, `drop` and `select`, and the bookkeeping of operators in
//! unreachable code (the exception-handling blocks' own lowering is in
//! `exceptions`).

use super::*;

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a control-flow operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_control(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
            O::Unreachable => {
                self.builder.ins().trap(codes::UNREACHABLE);
                self.reachable = false;
            }
            O::Nop => {}
            O::Block { blockty } => {
                let (params, results) = self.block_type(blockty);
                let dest = self.new_block_with_params(&results);
                let base = self.stack.len() - params.len();
                self.control.push(ControlFrame::new(FrameKind::Block, dest, None, params.len(), results.len(), base, self.interruption_checked));
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
                self.control.push(ControlFrame::new(FrameKind::Loop, dest, Some(header), params.len(), results.len(), base, self.interruption_checked));
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
                let base = self.stack.len() - params.len();
                let mut frame = ControlFrame::new(FrameKind::If, dest, None, params.len(), results.len(), base, self.interruption_checked);
                frame.else_block = Some(else_block);
                frame.else_params = else_params;
                self.control.push(frame);
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
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Emits an unconditional branch to the frame at `depth` with the top values.
    pub(super) fn branch_to(&mut self, depth: u32) {
        let idx = self.control.len() - 1 - depth as usize;
        let (target, n) = self.control[idx].branch_target();
        self.note_edge(idx);
        let args = Self::jump_args(self.peekn(n));
        self.builder.ins().jump(target, &args);
    }

    pub(super) fn translate_unreachable_op(&mut self, op: &Operator<'_>) -> anyhow::Result<()> {
        match op {
            Operator::Block { .. } | Operator::Loop { .. } | Operator::If { .. } | Operator::TryTable { .. } | Operator::Try { .. } => self.dead_depth += 1,
            Operator::Else if self.dead_depth == 0 => self.translate_else(),
            Operator::End if self.dead_depth == 0 => self.translate_end(),
            Operator::Catch { .. } | Operator::CatchAll | Operator::Delegate { .. } if self.dead_depth == 0 => {
                self.translate_exception_op(op)?;
            }
            Operator::End | Operator::Delegate { .. } => self.dead_depth -= 1,
            _ => {}
        }
        Ok(())
    }

    pub(super) fn translate_else(&mut self) {
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

    pub(super) fn translate_end(&mut self) {
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
        if frame.kind == FrameKind::LegacyTry {
            self.finish_legacy_dispatch(&mut frame);
        }
        if frame.kind == FrameKind::TryTable {
            // Every call that lands in the dispatch block is known.
            self.builder.seal_block(frame.region.as_ref().unwrap().dispatch);
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
            self.fuel_to_register();
            self.builder.ins().return_(&vals);
            self.reachable = false;
        }
    }
}

//! Calls: direct, indirect (through a table, with a signature check) and by
//! reference, their tail-call forms, and calls of the runtime's builtins.
//! Inside a `try` region a call is a `try_call` (see `exceptions`).

use super::*;

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a call operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_call_op(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
            O::Call { function_index } => self.translate_call(function_index, false)?,
            O::ReturnCall { function_index } => self.translate_call(function_index, true)?,
            O::CallIndirect { type_index, table_index } => self.translate_call_indirect(type_index, table_index, false)?,
            O::ReturnCallIndirect { type_index, table_index } => self.translate_call_indirect(type_index, table_index, true)?,
            O::CallRef { type_index } => self.translate_call_ref(type_index, false)?,
            O::ReturnCallRef { type_index } => self.translate_call_ref(type_index, true)?,
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn sig_ref(&mut self, type_index: u32) -> ir::SigRef {
        if let Some(s) = self.sig_refs.get(&type_index) {
            return *s;
        }
        let sig = func_type_signature(&self.env.info.types[type_index as usize]);
        let s = self.builder.import_signature(sig);
        self.sig_refs.insert(type_index, s);
        s
    }

    pub(super) fn call_builtin(&mut self, b: Builtin, args: &[Value]) -> Vec<Value> {
        let sig = match self.builtin_sigs.get(&(b as u32)) {
            Some(s) => *s,
            None => {
                let s = self.builder.import_signature(builtin_signature(b));
                self.builtin_sigs.insert(b as u32, s);
                s
            }
        };
        // Loaded at every call, not with the read-only flags that would let
        // Cranelift hoist and share them: most builtin calls are on cold
        // paths (inline resumes and switches that fall back, slow paths of
        // table accesses), and a hoisted address held a register, or a
        // spill slot rewritten every round, through the loop around them.
        let table = self.builder.ins().load(types::I64, trusted_flags(), self.vmctx, vmctx::VMCTX_BUILTINS_OFFSET as i32);
        let f = self.builder.ins().load(types::I64, trusted_flags(), table, (b as u32 * 8) as i32);
        // A trap in the builtin leaves the count of what ran before it.
        self.fuel_store_unflushed();
        let mut all = vec![self.vmctx];
        all.extend_from_slice(args);
        let call = self.builder.ins().call_indirect(sig, f, &all);
        self.builder.inst_results(call).to_vec()
    }

    /// The exception table of a call of type `type_index` in a `try`
    /// region: the normal return goes to a fresh block (made current by
    /// [`Self::finish_try_call`]), any exception to `handler`.
    fn exception_table(&mut self, sig: ir::SigRef, type_index: u32, handler: Block) -> ir::ExceptionTable {
        let results: Vec<Type> = self.env.info.types[type_index as usize].results().iter().map(clif_type).collect();
        let normal = self.new_block_with_params(&results);
        self.pending_normal_return = Some(normal);
        let returns: Vec<BlockArg> = (0..results.len() as u32).map(BlockArg::TryCallRet).collect();
        let dfg = &mut self.builder.func.dfg;
        let normal = dfg.block_call(normal, &returns);
        let to_handler = dfg.block_call(handler, &[BlockArg::TryCallExn(0)]);
        dfg.exception_tables.push(ir::ExceptionTableData::new(sig, normal, [ir::ExceptionTableItem::Default(to_handler)]))
    }

    /// Continues after a `try_call` in its normal-return block, whose
    /// parameters are the results.
    fn finish_try_call(&mut self, num_params: usize) {
        let normal = self.pending_normal_return.take().expect("an exception table was made for this call");
        self.builder.seal_block(normal);
        self.builder.switch_to_block(normal);
        let n = self.stack.len() - num_params;
        self.stack.truncate(n);
        let results = self.builder.block_params(normal).to_vec();
        self.stack.extend(results);
    }

    pub(super) fn finish_call(&mut self, call: ir::Inst, num_params: usize) {
        let n = self.stack.len() - num_params;
        self.stack.truncate(n);
        let results = self.builder.inst_results(call).to_vec();
        self.stack.extend(results);
    }

    pub(super) fn translate_call(&mut self, f: u32, tail: bool) -> anyhow::Result<()> {
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
            } else if let Some(handler) = self.innermost_handler(self.control.len()) {
                let sig = self.sig_ref(type_index);
                let et = self.exception_table(sig, type_index, handler);
                self.builder.ins().try_call(fref, &args, et);
                self.finish_try_call(num_params);
            } else {
                let call = self.builder.ins().call(fref, &args);
                self.finish_call(call, num_params);
            }
        }
        Ok(())
    }

    pub(super) fn emit_indirect(&mut self, type_index: u32, code: Value, callee_vmctx: Value, params: &[Value], tail: bool) {
        let sig = self.sig_ref(type_index);
        let mut args = vec![callee_vmctx, self.vmctx];
        args.extend_from_slice(params);
        if tail {
            self.builder.ins().return_call_indirect(sig, code, &args);
            self.reachable = false;
        } else if let Some(handler) = self.innermost_handler(self.control.len()) {
            let et = self.exception_table(sig, type_index, handler);
            self.builder.ins().try_call_indirect(code, &args, et);
            self.finish_try_call(params.len());
        } else {
            let call = self.builder.ins().call_indirect(sig, code, &args);
            self.finish_call(call, params.len());
        }
    }

    pub(super) fn translate_call_indirect(&mut self, type_index: u32, table: u32, tail: bool) -> anyhow::Result<()> {
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
        self.call_funcref(funcref, type_index, tail);
        Ok(())
    }

    pub(super) fn translate_call_ref(&mut self, type_index: u32, tail: bool) -> anyhow::Result<()> {
        self.check_before_call();
        let funcref = self.pop();
        self.builder.ins().trapz(funcref, codes::NULL_REFERENCE);
        self.call_funcref(funcref, type_index, tail);
        Ok(())
    }

    /// Calls the (non-null, checked) funcref `funcref` of type `type_index`
    /// with the arguments on the stack.
    fn call_funcref(&mut self, funcref: Value, type_index: u32, tail: bool) {
        let code = self.builder.ins().load(types::I64, readonly_flags(), funcref, vmctx::FUNCREF_CODE_OFFSET as i32);
        let callee_vmctx = self.builder.ins().load(types::I64, readonly_flags(), funcref, vmctx::FUNCREF_VMCTX_OFFSET as i32);
        let num_params = self.env.info.types[type_index as usize].params().len();
        let params = self.peekn(num_params).to_vec();
        self.emit_indirect(type_index, code, callee_vmctx, &params, tail);
    }
}

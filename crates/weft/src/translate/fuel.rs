//! Fuel: counting what a guest runs (see [`Config::consume_fuel`](crate::Config::consume_fuel)).
//!
//! Inside a function the counter is a variable, which the register
//! allocator keeps where it likes (an addition is one instruction). Between
//! Wasm functions it travels in Cranelift's pinned register (r15): the
//! engine's code is compiled with `enable_pinned_reg` when fuel is on, so
//! no compiled function allocates r15, and a call costs two register moves
//! (the variable into r15 before, back after) rather than a store and a
//! load. The counter meets the store context's `fuel_consumed` only where
//! the runtime may read or change it: the trampolines load it on entry
//! from the host and store it on the way back (and store it around every
//! host function), and compiled code stores it before throws, switches
//! and calls of the runtime, and loads it after those that may change it.
//! A trap handler writes r15 back, so a trap counts what ran up to the
//! trapping function's entry, its last call, or the last time it took the
//! counter from the store context.
//!
//! Each operator's cost is added up at translation time and charged as one
//! addition where the straight line it belongs to ends: before any branch,
//! merge, call or return. The counter is negative while fuel remains; loop
//! headers and the entries of functions that call check it, and when it
//! reaches zero a cold path hands it to the runtime in r15 through a load
//! that faults, not a call (see [`FuncTranslator::fuel_check`]). Costs come from the
//! operators alone, so what a call consumes does not depend on how
//! Cranelift optimises it.

use super::*;

/// What an operator costs (wasmtime's costs: structure and no-ops are free).
fn cost(op: &Operator<'_>) -> i64 {
    use Operator as O;
    match op {
        O::Nop | O::Drop | O::Block { .. } | O::Loop { .. } | O::Unreachable | O::Return | O::Else | O::End => 0,
        _ => 1,
    }
}

/// Whether a body makes a call (of a Wasm function or the host).
fn makes_calls(body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<bool> {
    use Operator as O;
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        if let O::Call { .. } | O::CallIndirect { .. } | O::CallRef { .. } | O::ReturnCall { .. } | O::ReturnCallIndirect { .. } | O::ReturnCallRef { .. } =
            reader.read()?
        {
            return Ok(true);
        }
    }
    Ok(false)
}

impl<'a, 'b> FuncTranslator<'a, 'b> {
    fn fuel_address(&mut self) -> Value {
        self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, vmctx::VMCTX_STORE_CTX_OFFSET as i32)
    }

    /// Reads the counter from the store context (after the runtime or other
    /// code may have changed it there), into r15 too: a trap handler takes
    /// the count from there, and a refuel must not be undone by it.
    pub(super) fn fuel_load(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let ctx = self.fuel_address();
        let v = self.builder.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
        self.builder.def_var(var, v);
        self.builder.ins().set_pinned_reg(v);
    }

    /// Writes the counter to the store context, charging what is pending
    /// first (before the runtime may read it).
    pub(super) fn fuel_save(&mut self) {
        if self.fuel_var.is_none() {
            return;
        }
        self.fuel_flush();
        self.fuel_store_unflushed();
    }

    /// Writes the counter to the store context as it is, without charging
    /// what is pending: for calls of the runtime that may trap, on paths
    /// (cold ones too) where charging would split a straight line's charge
    /// between its paths.
    pub(super) fn fuel_store_unflushed(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let v = self.builder.use_var(var);
        let ctx = self.fuel_address();
        self.builder.ins().store(trusted_flags(), v, ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
    }

    /// Charges the costs gathered since the last charge.
    fn fuel_flush(&mut self) {
        let Some(var) = self.fuel_var else { return };
        if self.pending_fuel != 0 {
            let v = self.builder.use_var(var);
            let v = self.builder.ins().iadd_imm_s(v, self.pending_fuel);
            self.builder.def_var(var, v);
            self.pending_fuel = 0;
        }
    }

    /// Before a call of a Wasm function or a return: charges what is
    /// pending and hands the counter over in the pinned register.
    pub(super) fn fuel_to_register(&mut self) {
        let Some(var) = self.fuel_var else { return };
        self.fuel_flush();
        let v = self.builder.use_var(var);
        self.builder.ins().set_pinned_reg(v);
    }

    /// At the entry and after a call: takes the counter from the pinned register.
    fn fuel_from_register(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let v = self.builder.ins().get_pinned_reg(types::I64);
        self.builder.def_var(var, v);
    }

    /// Calls the runtime if the fuel has run out (a cold path).
    fn fuel_check(&mut self) {
        let Some(var) = self.fuel_var else { return };
        self.fuel_flush();
        let v = self.builder.use_var(var);
        let out = self.builder.ins().icmp_imm_s(IntCC::SignedGreaterThanOrEqual, v, 0);
        let slow = self.builder.create_block();
        let cont = self.builder.create_block();
        self.builder.set_cold_block(slow);
        self.builder.ins().brif(out, slow, &[], cont, &[]);
        self.builder.seal_block(slow);
        self.builder.switch_to_block(slow);
        // No call, which would make a leaf function with a loop set up a
        // frame and check the stack limit at every entry: the counter goes
        // to r15, and a load from a page that always faults sends the thread
        // through the interrupt stub (which saves every register) to the
        // runtime, which refuels r15 or traps; the load is then re-executed
        // through a readable page, and the counter taken back from r15.
        // (Nothing is pending after the flush.)
        let v = self.builder.use_var(var);
        self.builder.ins().set_pinned_reg(v);
        let page = self.builder.ins().iconst(types::I64, self.env.fault_page as i64);
        let probe = MemFlagsData::new().with_aligned().with_trap_code(Some(codes::FUEL_CHECK));
        self.builder.ins().atomic_load(types::I8, probe, page);
        let v = self.builder.ins().get_pinned_reg(types::I64);
        self.builder.def_var(var, v);
        self.builder.ins().jump(cont, &[]);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
    }

    /// At the function's entry: the counter, from the register, and the
    /// check, which only a function that calls needs (recursion could go
    /// on without a loop). Without calls, the function's loops check at
    /// their headers, every round the first included, and between them it
    /// runs straight lines of bounded length.
    pub(super) fn fuel_function_entry(&mut self, body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<()> {
        if !self.env.tunables.consume_fuel {
            return Ok(());
        }
        self.fuel_var = Some(self.builder.declare_var(types::I64));
        self.fuel_from_register();
        if makes_calls(body)? {
            self.fuel_check();
        }
        Ok(())
    }

    /// Before an operator is translated (in reachable code): gathers its
    /// cost, and charges where its straight line ends (and stores the
    /// counter before a throw, which the runtime handles).
    pub(super) fn fuel_before_op(&mut self, op: &Operator<'_>) {
        if self.fuel_var.is_none() {
            return;
        }
        use Operator as O;
        self.pending_fuel += cost(op);
        match op {
            O::Throw { .. } | O::ThrowRef | O::Rethrow { .. } => self.fuel_save(),
            // A callee (the host's through its trampoline) and a caller
            // take the counter in the register.
            O::Call { .. }
            | O::CallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::ReturnCallRef { .. }
            | O::Return => self.fuel_to_register(),
            O::Loop { .. }
            | O::If { .. }
            | O::Else
            | O::End
            | O::Br { .. }
            | O::BrIf { .. }
            | O::BrTable { .. }
            | O::BrOnNull { .. }
            | O::BrOnNonNull { .. }
            | O::TryTable { .. }
            | O::Catch { .. }
            | O::CatchAll
            | O::Delegate { .. } => self.fuel_flush(),
            _ => {}
        }
    }

    /// After an operator was translated: the loop header's check, the
    /// counter back from the register after a call, and nothing pending
    /// past the end of reachable code.
    pub(super) fn fuel_after_op(&mut self, op: &Operator<'_>) {
        if self.fuel_var.is_none() {
            return;
        }
        use Operator as O;
        if !self.reachable {
            self.pending_fuel = 0;
            return;
        }
        match op {
            O::Loop { .. } => self.fuel_check(),
            O::Call { .. } | O::CallIndirect { .. } | O::CallRef { .. } => self.fuel_from_register(),
            _ => {}
        }
    }
}

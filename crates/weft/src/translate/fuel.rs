//! Fuel: counting what a guest runs (see [`Config::consume_fuel`](crate::Config::consume_fuel)).
//!
//! The counter lives in a variable for the length of a function (loaded at
//! entry and after every call, stored before every call, return and throw,
//! in the store context's `fuel_consumed`). Each operator's cost is added
//! up at translation time and charged as one addition where the straight
//! line it belongs to ends: before any branch, merge or call. The counter is
//! negative while fuel remains; loop headers and the entries of functions
//! that loop or call check it and call the runtime (a cold path) when it
//! reaches zero. Costs come from
//! the operators alone, so what a call consumes does not depend on how
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

/// Whether a body has a loop or makes a call (of a Wasm function or the host).
fn loops_or_calls(body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<bool> {
    use Operator as O;
    let mut reader = body.get_operators_reader()?;
    while !reader.eof() {
        if let O::Loop { .. }
        | O::Call { .. }
        | O::CallIndirect { .. }
        | O::CallRef { .. }
        | O::ReturnCall { .. }
        | O::ReturnCallIndirect { .. }
        | O::ReturnCallRef { .. } = reader.read()?
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

    /// Reads the counter from the store context into the variable.
    pub(super) fn fuel_load(&mut self) {
        let Some(var) = self.fuel_var else { return };
        let ctx = self.fuel_address();
        let v = self.builder.ins().load(types::I64, trusted_flags(), ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
        self.builder.def_var(var, v);
    }

    /// Writes the variable back to the store context (charging what is pending first).
    pub(super) fn fuel_save(&mut self) {
        let Some(var) = self.fuel_var else { return };
        self.fuel_flush();
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
        self.fuel_save();
        self.call_builtin(Builtin::OutOfFuel, &[]);
        self.fuel_load();
        self.builder.ins().jump(cont, &[]);
        self.builder.seal_block(cont);
        self.builder.switch_to_block(cont);
    }

    /// At the function's entry: the counter, and the entry check, which a
    /// function without loops or calls does without: it runs a bounded
    /// stretch and returns, and its caller checks at its next loop header
    /// or call.
    pub(super) fn fuel_function_entry(&mut self, body: &wasmparser::FunctionBody<'_>) -> anyhow::Result<()> {
        if !self.env.tunables.consume_fuel {
            return Ok(());
        }
        self.fuel_var = Some(self.builder.declare_var(types::I64));
        self.fuel_load();
        if loops_or_calls(body)? {
            self.fuel_check();
        }
        Ok(())
    }

    /// Before an operator is translated (in reachable code): gathers its
    /// cost, and charges (and stores) where its straight line ends.
    pub(super) fn fuel_before_op(&mut self, op: &Operator<'_>) {
        if self.fuel_var.is_none() {
            return;
        }
        use Operator as O;
        self.pending_fuel += cost(op);
        match op {
            O::Call { .. }
            | O::CallIndirect { .. }
            | O::CallRef { .. }
            | O::ReturnCall { .. }
            | O::ReturnCallIndirect { .. }
            | O::ReturnCallRef { .. }
            | O::Return
            | O::Throw { .. }
            | O::ThrowRef
            | O::Rethrow { .. } => self.fuel_save(),
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
    /// counter again after a call, and nothing pending past the end of
    /// reachable code.
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
            O::Call { .. } | O::CallIndirect { .. } | O::CallRef { .. } => self.fuel_load(),
            _ => {}
        }
    }
}

//! Tables and references: `table.get`/`set`/`size`/`grow`/`fill`/`copy`/
//! `init`, `elem.drop`, lazily initialised funcref elements, and
//! `ref.null`, `ref.is_null`, `ref.func`, `ref.as_non_null`.

use super::*;

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a table or reference operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_table(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
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
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn is_table64(&self, table: u32) -> bool {
        self.env.info.tables[table as usize].table64
    }

    pub(super) fn table_def(&mut self, table: u32) -> Value {
        self.builder.ins().load(types::I64, readonly_flags(), self.vmctx, self.env.offsets.table_ptr(table) as i32)
    }

    /// Bounds-checks `index` against the table and returns the element's address.
    pub(super) fn table_elem_addr(&mut self, table: u32, index: Value, code: TrapCode) -> Value {
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
    pub(super) fn load_table_elem(&mut self, table: u32, index: Value, addr: Value) -> Value {
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
}

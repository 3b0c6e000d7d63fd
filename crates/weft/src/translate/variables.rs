//! Locals and globals: `local.get`/`set`/`tee` (Cranelift variables) and
//! `global.get`/`set` (storage in the vmctx or imported through it).

use super::*;

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a local or global access. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_variable(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
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
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Address of a global's storage: (base, offset, type, mutable).
    pub(super) fn global_addr(&mut self, g: u32) -> (Value, i32, Type, bool) {
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
}

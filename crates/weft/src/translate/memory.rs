//! Linear memory: loads and stores with their bounds checks (guard regions or
//! explicit checks, 32- and 64-bit memories), `memory.size`/`grow`, and the
//! bulk operations (`memory.fill`/`copy`/`init`, `data.drop`; the bulk
//! helpers serve tables too).

use super::*;

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a linear-memory operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_memory(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        let ins_flags = heap_flags();
        match *op {
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
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `memory.fill` / `table.fill`: (dst, val, len) on the stack.
    pub(super) fn bulk_fill(&mut self, b: Builtin, index: u32, is64: bool, code: TrapCode) {
        let (dst, val, len) = self.pop3();
        let dst = self.index_to_i64(dst, is64);
        let len = self.index_to_i64(len, is64);
        let i = self.const_u32(index);
        let status = self.call_builtin(b, &[i, dst, val, len])[0];
        self.builder.ins().trapnz(status, code);
    }

    /// `memory.copy` / `table.copy`: (dst, src, len) on the stack; the length is
    /// 64-bit only when both sides are.
    pub(super) fn bulk_copy(&mut self, b: Builtin, dst_index: u32, dst64: bool, src_index: u32, src64: bool, code: TrapCode) {
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
    pub(super) fn bulk_init(&mut self, b: Builtin, index: u32, is64: bool, segment: u32, code: TrapCode) {
        let (dst, src, len) = self.pop3();
        let dst = self.index_to_i64(dst, is64);
        let i = self.const_u32(index);
        let seg = self.const_u32(segment);
        let status = self.call_builtin(b, &[i, seg, dst, src, len])[0];
        self.builder.ins().trapnz(status, code);
    }

    pub(super) fn is_memory64(&self, mem: u32) -> bool {
        self.env.info.memories[mem as usize].memory64
    }

    /// Computes the native address of a linear-memory access of `size` bytes,
    /// popping the index. Returns the address and a constant offset to apply.
    pub(super) fn mem_addr(&mut self, memarg: &MemArg, size: u32) -> (Value, i32) {
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

    pub(super) fn load(&mut self, ty: Type, size: u32, memarg: &MemArg, kind: LoadKind) {
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
}

pub(super) enum LoadKind {
    Plain,
    S8,
    U8,
    S16,
    U16,
    S32,
    U32,
}

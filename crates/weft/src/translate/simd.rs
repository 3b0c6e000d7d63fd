//! 128-bit SIMD and relaxed SIMD: every `v128` operator, lowered to
//! Cranelift's vector IR (whose x86-64 back end picks SSE4.1, AVX, AVX2 or
//! AVX-512 encodings from the host's features, detected by `cranelift-native`
//! when the engine is made).
//!
//! Every `v128` on the operand stack, in locals, block parameters, globals
//! and call signatures is an `i8x16`; an operator bitcasts its operands to
//! the lane shape it works on and its result back. The bitcasts are free on
//! x86-64 (one register class) and Cranelift folds pairs of them away.
//!
//! Relaxed SIMD operators take one deterministic choice each, the same on
//! every host and every run:
//! - `i8x16.relaxed_swizzle` is `i8x16.swizzle` (out-of-range lanes give 0);
//! - `relaxed_trunc` is the saturating `trunc_sat` (NaN gives 0);
//! - `relaxed_madd`/`relaxed_nmadd` round twice, as an unfused multiply
//!   then add (the same result with or without FMA hardware);
//! - `relaxed_laneselect` is `v128.bitselect` (bitwise, not per lane);
//! - `relaxed_min`/`relaxed_max` are `fmin`/`fmax` (NaN and -0 as in `min`/`max`);
//! - `i16x8.relaxed_q15mulr_s` is `q15mulr_sat_s`;
//! - the `relaxed_dot` products treat both operands as signed.

use super::*;

/// The flags of a bitcast between vector shapes (lane order is little-endian).
fn lanes_flags() -> MemFlagsData {
    MemFlagsData::new().with_endianness(ir::Endianness::Little)
}

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// `v` as a vector of shape `ty`: `v` itself if it has that shape, the
    /// value `v` was bitcast from if that one has it (an operator's result
    /// consumed in its own shape by the next: no pair of bitcasts for
    /// Cranelift to see through), else a bitcast.
    fn as_shape(&mut self, v: Value, ty: Type) -> Value {
        let dfg = &self.builder.func.dfg;
        if dfg.value_type(v) == ty {
            return v;
        }
        if let ir::ValueDef::Result(inst, 0) = dfg.value_def(v) {
            if dfg.insts[inst].opcode() == ir::Opcode::Bitcast {
                let source = dfg.inst_args(inst)[0];
                if dfg.value_type(source) == ty {
                    return source;
                }
            }
        }
        self.builder.ins().bitcast(ty, lanes_flags(), v)
    }

    /// Pops a `v128` as a vector of shape `ty`.
    fn pop_vec(&mut self, ty: Type) -> Value {
        let v = self.pop();
        self.as_shape(v, ty)
    }

    /// Pushes a vector of any shape as a `v128` (`i8x16`).
    fn push_vec(&mut self, v: Value) {
        let v = self.as_shape(v, types::I8X16);
        self.push(v);
    }

    fn vec_unary(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'b>, Value) -> Value) {
        let a = self.pop_vec(ty);
        let r = f(&mut self.builder, a);
        self.push_vec(r);
    }

    fn vec_binary(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'b>, Value, Value) -> Value) {
        let b = self.pop_vec(ty);
        let a = self.pop_vec(ty);
        let r = f(&mut self.builder, a, b);
        self.push_vec(r);
    }

    /// A shift of every lane of shape `ty` by the scalar on the stack
    /// (Cranelift masks the amount to the lane width, as Wasm does).
    fn vec_shift(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'b>, Value, Value) -> Value) {
        let amount = self.pop();
        let a = self.pop_vec(ty);
        let r = f(&mut self.builder, a, amount);
        self.push_vec(r);
    }

    fn vec_icmp(&mut self, ty: Type, cc: IntCC) {
        self.vec_binary(ty, |b, x, y| b.ins().icmp(cc, x, y));
    }

    fn vec_fcmp(&mut self, ty: Type, cc: FloatCC) {
        self.vec_binary(ty, |b, x, y| b.ins().fcmp(cc, x, y));
    }

    /// A reduction of shape `ty` to an `i32` (`any_true`, `all_true`).
    fn vec_test(&mut self, ty: Type, f: impl FnOnce(&mut FunctionBuilder<'b>, Value) -> Value) {
        let a = self.pop_vec(ty);
        let t = f(&mut self.builder, a);
        let r = self.builder.ins().uextend(types::I32, t);
        self.push(r);
    }

    /// `splat` of the scalar on the stack to shape `ty`, narrowing an `i32`
    /// to `i8`/`i16` lanes first.
    fn vec_splat(&mut self, ty: Type) {
        let mut x = self.pop();
        let lane = ty.lane_type();
        if lane.bits() < self.builder.func.dfg.value_type(x).bits() {
            x = self.builder.ins().ireduce(lane, x);
        }
        let r = self.builder.ins().splat(ty, x);
        self.push_vec(r);
    }

    /// `extract_lane` of shape `ty`, widening `i8`/`i16` lanes to `i32`.
    fn vec_extract(&mut self, ty: Type, lane: u8, signed: Option<bool>) {
        let a = self.pop_vec(ty);
        let x = self.builder.ins().extractlane(a, lane);
        let x = match signed {
            Some(true) => self.builder.ins().sextend(types::I32, x),
            Some(false) => self.builder.ins().uextend(types::I32, x),
            None => x,
        };
        self.push(x);
    }

    /// `replace_lane` of shape `ty`, narrowing an `i32` to `i8`/`i16` lanes.
    fn vec_replace(&mut self, ty: Type, lane: u8) {
        let mut x = self.pop();
        let a = self.pop_vec(ty);
        if ty.lane_type().bits() < self.builder.func.dfg.value_type(x).bits() {
            x = self.builder.ins().ireduce(ty.lane_type(), x);
        }
        let r = self.builder.ins().insertlane(a, x, lane);
        self.push_vec(r);
    }

    /// Pairwise sums of the widened lanes of shape `ty` (`extadd_pairwise`).
    fn vec_extadd_pairwise(&mut self, ty: Type, signed: bool) {
        self.vec_unary(ty, |b, a| {
            let (lo, hi) = if signed { (b.ins().swiden_low(a), b.ins().swiden_high(a)) } else { (b.ins().uwiden_low(a), b.ins().uwiden_high(a)) };
            b.ins().iadd_pairwise(lo, hi)
        });
    }

    /// Products of the widened low or high halves (`extmul`).
    fn vec_extmul(&mut self, ty: Type, high: bool, signed: bool) {
        self.vec_binary(ty, |b, x, y| {
            let widen = |b: &mut FunctionBuilder<'b>, v: Value| match (high, signed) {
                (false, true) => b.ins().swiden_low(v),
                (true, true) => b.ins().swiden_high(v),
                (false, false) => b.ins().uwiden_low(v),
                (true, false) => b.ins().uwiden_high(v),
            };
            let (x, y) = (widen(b, x), widen(b, y));
            b.ins().imul(x, y)
        });
    }

    /// Widens the low or high half of shape `ty` (`extend_low`/`extend_high`).
    fn vec_extend(&mut self, ty: Type, high: bool, signed: bool) {
        self.vec_unary(ty, |b, a| match (high, signed) {
            (false, true) => b.ins().swiden_low(a),
            (true, true) => b.ins().swiden_high(a),
            (false, false) => b.ins().uwiden_low(a),
            (true, false) => b.ins().uwiden_high(a),
        });
    }

    /// Products of the sign-widened lanes, summed in pairs: `i32x4.dot_i16x8_s`
    /// on `i16x8` operands, the relaxed `i8x16` dot products on `i8x16` ones.
    fn widened_dot(b: &mut FunctionBuilder<'b>, x: Value, y: Value) -> Value {
        let lo = {
            let (x, y) = (b.ins().swiden_low(x), b.ins().swiden_low(y));
            b.ins().imul(x, y)
        };
        let hi = {
            let (x, y) = (b.ins().swiden_high(x), b.ins().swiden_high(y));
            b.ins().imul(x, y)
        };
        b.ins().iadd_pairwise(lo, hi)
    }

    /// `pmin`/`pmax` of shape `ty`: `b < a ? b : a` (or `a < b ? b : a`),
    /// bit for bit, with no NaN handling.
    fn vec_pminmax(&mut self, ty: Type, max: bool) {
        self.vec_binary(ty, |bld, a, b| {
            let mask = if max { bld.ins().fcmp(FloatCC::LessThan, a, b) } else { bld.ins().fcmp(FloatCC::LessThan, b, a) };
            let mask = bld.ins().bitcast(ty, lanes_flags(), mask);
            bld.ins().bitselect(mask, b, a)
        });
    }

    /// `relaxed_madd` (`negate`: `relaxed_nmadd`) of shape `ty`: `a * b + c`
    /// (`-(a * b) + c`), unfused.
    fn vec_madd(&mut self, ty: Type, negate: bool) {
        let c = self.pop_vec(ty);
        let b = self.pop_vec(ty);
        let a = self.pop_vec(ty);
        let mut product = self.builder.ins().fmul(a, b);
        if negate {
            product = self.builder.ins().fneg(product);
        }
        let r = self.builder.ins().fadd(product, c);
        self.push_vec(r);
    }

    /// A `v128` load of `size` bytes whose value `f` makes from the address.
    fn vec_load(&mut self, memarg: &MemArg, size: u32, f: impl FnOnce(&mut FunctionBuilder<'b>, Value, i32) -> Value) {
        let (addr, off) = self.mem_addr(memarg, size);
        let v = f(&mut self.builder, addr, off);
        self.push_vec(v);
    }

    /// `load*_splat` of lane type `lane` into shape `ty`.
    fn vec_load_splat(&mut self, memarg: &MemArg, ty: Type) {
        let lane = ty.lane_type();
        self.vec_load(memarg, lane.bytes(), |b, addr, off| {
            let x = b.ins().load(lane, heap_flags(), addr, off);
            b.ins().splat(ty, x)
        });
    }

    /// `load*_zero`: a scalar into lane 0 of shape `ty`, the rest zero.
    fn vec_load_zero(&mut self, memarg: &MemArg, ty: Type) {
        let lane = ty.lane_type();
        self.vec_load(memarg, lane.bytes(), |b, addr, off| {
            let x = b.ins().load(lane, heap_flags(), addr, off);
            b.ins().scalar_to_vector(ty, x)
        });
    }

    /// `load*_lane`: a scalar into lane `lane` of the vector on the stack.
    fn vec_load_lane(&mut self, memarg: &MemArg, ty: Type, lane: u8) {
        let v = self.pop_vec(ty);
        let lane_ty = ty.lane_type();
        let (addr, off) = self.mem_addr(memarg, lane_ty.bytes());
        let x = self.builder.ins().load(lane_ty, heap_flags(), addr, off);
        let r = self.builder.ins().insertlane(v, x, lane);
        self.push_vec(r);
    }

    /// `store*_lane`: lane `lane` of the vector on the stack to memory.
    fn vec_store_lane(&mut self, memarg: &MemArg, ty: Type, lane: u8) {
        let v = self.pop_vec(ty);
        let x = self.builder.ins().extractlane(v, lane);
        let (addr, off) = self.mem_addr(memarg, ty.lane_type().bytes());
        self.builder.ins().store(heap_flags(), x, addr, off);
    }

    /// Lowers a SIMD or relaxed-SIMD operator. Returns false, translating
    /// nothing, for any other operator.
    pub(super) fn translate_simd(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use types::{F32X4, F64X2, I16X8, I32X4, I64X2, I8X16};
        use Operator as O;
        match *op {
            // Memory.
            O::V128Load { memarg } => self.vec_load(&memarg, 16, |b, addr, off| b.ins().load(I8X16, heap_flags(), addr, off)),
            O::V128Store { memarg } => {
                let v = self.pop_vec(I8X16);
                let (addr, off) = self.mem_addr(&memarg, 16);
                self.builder.ins().store(heap_flags(), v, addr, off);
            }
            O::V128Load8x8S { memarg } => self.vec_load(&memarg, 8, |b, addr, off| b.ins().sload8x8(heap_flags(), addr, off)),
            O::V128Load8x8U { memarg } => self.vec_load(&memarg, 8, |b, addr, off| b.ins().uload8x8(heap_flags(), addr, off)),
            O::V128Load16x4S { memarg } => self.vec_load(&memarg, 8, |b, addr, off| b.ins().sload16x4(heap_flags(), addr, off)),
            O::V128Load16x4U { memarg } => self.vec_load(&memarg, 8, |b, addr, off| b.ins().uload16x4(heap_flags(), addr, off)),
            O::V128Load32x2S { memarg } => self.vec_load(&memarg, 8, |b, addr, off| b.ins().sload32x2(heap_flags(), addr, off)),
            O::V128Load32x2U { memarg } => self.vec_load(&memarg, 8, |b, addr, off| b.ins().uload32x2(heap_flags(), addr, off)),
            O::V128Load8Splat { memarg } => self.vec_load_splat(&memarg, I8X16),
            O::V128Load16Splat { memarg } => self.vec_load_splat(&memarg, I16X8),
            O::V128Load32Splat { memarg } => self.vec_load_splat(&memarg, I32X4),
            O::V128Load64Splat { memarg } => self.vec_load_splat(&memarg, I64X2),
            O::V128Load32Zero { memarg } => self.vec_load_zero(&memarg, I32X4),
            O::V128Load64Zero { memarg } => self.vec_load_zero(&memarg, I64X2),
            O::V128Load8Lane { memarg, lane } => self.vec_load_lane(&memarg, I8X16, lane),
            O::V128Load16Lane { memarg, lane } => self.vec_load_lane(&memarg, I16X8, lane),
            O::V128Load32Lane { memarg, lane } => self.vec_load_lane(&memarg, I32X4, lane),
            O::V128Load64Lane { memarg, lane } => self.vec_load_lane(&memarg, I64X2, lane),
            O::V128Store8Lane { memarg, lane } => self.vec_store_lane(&memarg, I8X16, lane),
            O::V128Store16Lane { memarg, lane } => self.vec_store_lane(&memarg, I16X8, lane),
            O::V128Store32Lane { memarg, lane } => self.vec_store_lane(&memarg, I32X4, lane),
            O::V128Store64Lane { memarg, lane } => self.vec_store_lane(&memarg, I64X2, lane),

            // Constants, shuffles, lanes.
            O::V128Const { value } => {
                let c = self.builder.func.dfg.constants.insert(value.bytes().to_vec().into());
                let v = self.builder.ins().vconst(I8X16, c);
                self.push(v);
            }
            O::I8x16Shuffle { lanes } => {
                let mask = self.builder.func.dfg.immediates.push(lanes.to_vec().into());
                self.vec_binary(I8X16, |b, x, y| b.ins().shuffle(x, y, mask));
            }
            O::I8x16Swizzle | O::I8x16RelaxedSwizzle => self.vec_binary(I8X16, |b, x, y| b.ins().swizzle(x, y)),
            O::I8x16Splat => self.vec_splat(I8X16),
            O::I16x8Splat => self.vec_splat(I16X8),
            O::I32x4Splat => self.vec_splat(I32X4),
            O::I64x2Splat => self.vec_splat(I64X2),
            O::F32x4Splat => self.vec_splat(F32X4),
            O::F64x2Splat => self.vec_splat(F64X2),
            O::I8x16ExtractLaneS { lane } => self.vec_extract(I8X16, lane, Some(true)),
            O::I8x16ExtractLaneU { lane } => self.vec_extract(I8X16, lane, Some(false)),
            O::I16x8ExtractLaneS { lane } => self.vec_extract(I16X8, lane, Some(true)),
            O::I16x8ExtractLaneU { lane } => self.vec_extract(I16X8, lane, Some(false)),
            O::I32x4ExtractLane { lane } => self.vec_extract(I32X4, lane, None),
            O::I64x2ExtractLane { lane } => self.vec_extract(I64X2, lane, None),
            O::F32x4ExtractLane { lane } => self.vec_extract(F32X4, lane, None),
            O::F64x2ExtractLane { lane } => self.vec_extract(F64X2, lane, None),
            O::I8x16ReplaceLane { lane } => self.vec_replace(I8X16, lane),
            O::I16x8ReplaceLane { lane } => self.vec_replace(I16X8, lane),
            O::I32x4ReplaceLane { lane } => self.vec_replace(I32X4, lane),
            O::I64x2ReplaceLane { lane } => self.vec_replace(I64X2, lane),
            O::F32x4ReplaceLane { lane } => self.vec_replace(F32X4, lane),
            O::F64x2ReplaceLane { lane } => self.vec_replace(F64X2, lane),

            // Comparisons.
            O::I8x16Eq => self.vec_icmp(I8X16, IntCC::Equal),
            O::I8x16Ne => self.vec_icmp(I8X16, IntCC::NotEqual),
            O::I8x16LtS => self.vec_icmp(I8X16, IntCC::SignedLessThan),
            O::I8x16LtU => self.vec_icmp(I8X16, IntCC::UnsignedLessThan),
            O::I8x16GtS => self.vec_icmp(I8X16, IntCC::SignedGreaterThan),
            O::I8x16GtU => self.vec_icmp(I8X16, IntCC::UnsignedGreaterThan),
            O::I8x16LeS => self.vec_icmp(I8X16, IntCC::SignedLessThanOrEqual),
            O::I8x16LeU => self.vec_icmp(I8X16, IntCC::UnsignedLessThanOrEqual),
            O::I8x16GeS => self.vec_icmp(I8X16, IntCC::SignedGreaterThanOrEqual),
            O::I8x16GeU => self.vec_icmp(I8X16, IntCC::UnsignedGreaterThanOrEqual),
            O::I16x8Eq => self.vec_icmp(I16X8, IntCC::Equal),
            O::I16x8Ne => self.vec_icmp(I16X8, IntCC::NotEqual),
            O::I16x8LtS => self.vec_icmp(I16X8, IntCC::SignedLessThan),
            O::I16x8LtU => self.vec_icmp(I16X8, IntCC::UnsignedLessThan),
            O::I16x8GtS => self.vec_icmp(I16X8, IntCC::SignedGreaterThan),
            O::I16x8GtU => self.vec_icmp(I16X8, IntCC::UnsignedGreaterThan),
            O::I16x8LeS => self.vec_icmp(I16X8, IntCC::SignedLessThanOrEqual),
            O::I16x8LeU => self.vec_icmp(I16X8, IntCC::UnsignedLessThanOrEqual),
            O::I16x8GeS => self.vec_icmp(I16X8, IntCC::SignedGreaterThanOrEqual),
            O::I16x8GeU => self.vec_icmp(I16X8, IntCC::UnsignedGreaterThanOrEqual),
            O::I32x4Eq => self.vec_icmp(I32X4, IntCC::Equal),
            O::I32x4Ne => self.vec_icmp(I32X4, IntCC::NotEqual),
            O::I32x4LtS => self.vec_icmp(I32X4, IntCC::SignedLessThan),
            O::I32x4LtU => self.vec_icmp(I32X4, IntCC::UnsignedLessThan),
            O::I32x4GtS => self.vec_icmp(I32X4, IntCC::SignedGreaterThan),
            O::I32x4GtU => self.vec_icmp(I32X4, IntCC::UnsignedGreaterThan),
            O::I32x4LeS => self.vec_icmp(I32X4, IntCC::SignedLessThanOrEqual),
            O::I32x4LeU => self.vec_icmp(I32X4, IntCC::UnsignedLessThanOrEqual),
            O::I32x4GeS => self.vec_icmp(I32X4, IntCC::SignedGreaterThanOrEqual),
            O::I32x4GeU => self.vec_icmp(I32X4, IntCC::UnsignedGreaterThanOrEqual),
            O::I64x2Eq => self.vec_icmp(I64X2, IntCC::Equal),
            O::I64x2Ne => self.vec_icmp(I64X2, IntCC::NotEqual),
            O::I64x2LtS => self.vec_icmp(I64X2, IntCC::SignedLessThan),
            O::I64x2GtS => self.vec_icmp(I64X2, IntCC::SignedGreaterThan),
            O::I64x2LeS => self.vec_icmp(I64X2, IntCC::SignedLessThanOrEqual),
            O::I64x2GeS => self.vec_icmp(I64X2, IntCC::SignedGreaterThanOrEqual),
            O::F32x4Eq => self.vec_fcmp(F32X4, FloatCC::Equal),
            O::F32x4Ne => self.vec_fcmp(F32X4, FloatCC::NotEqual),
            O::F32x4Lt => self.vec_fcmp(F32X4, FloatCC::LessThan),
            O::F32x4Gt => self.vec_fcmp(F32X4, FloatCC::GreaterThan),
            O::F32x4Le => self.vec_fcmp(F32X4, FloatCC::LessThanOrEqual),
            O::F32x4Ge => self.vec_fcmp(F32X4, FloatCC::GreaterThanOrEqual),
            O::F64x2Eq => self.vec_fcmp(F64X2, FloatCC::Equal),
            O::F64x2Ne => self.vec_fcmp(F64X2, FloatCC::NotEqual),
            O::F64x2Lt => self.vec_fcmp(F64X2, FloatCC::LessThan),
            O::F64x2Gt => self.vec_fcmp(F64X2, FloatCC::GreaterThan),
            O::F64x2Le => self.vec_fcmp(F64X2, FloatCC::LessThanOrEqual),
            O::F64x2Ge => self.vec_fcmp(F64X2, FloatCC::GreaterThanOrEqual),

            // Bitwise.
            O::V128Not => self.vec_unary(I8X16, |b, a| b.ins().bnot(a)),
            O::V128And => self.vec_binary(I8X16, |b, x, y| b.ins().band(x, y)),
            O::V128AndNot => self.vec_binary(I8X16, |b, x, y| b.ins().band_not(x, y)),
            O::V128Or => self.vec_binary(I8X16, |b, x, y| b.ins().bor(x, y)),
            O::V128Xor => self.vec_binary(I8X16, |b, x, y| b.ins().bxor(x, y)),
            O::V128Bitselect | O::I8x16RelaxedLaneselect | O::I16x8RelaxedLaneselect | O::I32x4RelaxedLaneselect | O::I64x2RelaxedLaneselect => {
                let c = self.pop_vec(I8X16);
                let y = self.pop_vec(I8X16);
                let x = self.pop_vec(I8X16);
                let r = self.builder.ins().bitselect(c, x, y);
                self.push_vec(r);
            }
            O::V128AnyTrue => self.vec_test(I8X16, |b, a| b.ins().vany_true(a)),
            O::I8x16AllTrue => self.vec_test(I8X16, |b, a| b.ins().vall_true(a)),
            O::I16x8AllTrue => self.vec_test(I16X8, |b, a| b.ins().vall_true(a)),
            O::I32x4AllTrue => self.vec_test(I32X4, |b, a| b.ins().vall_true(a)),
            O::I64x2AllTrue => self.vec_test(I64X2, |b, a| b.ins().vall_true(a)),
            O::I8x16Bitmask | O::I16x8Bitmask | O::I32x4Bitmask | O::I64x2Bitmask => {
                let ty = match *op {
                    O::I8x16Bitmask => I8X16,
                    O::I16x8Bitmask => I16X8,
                    O::I32x4Bitmask => I32X4,
                    _ => I64X2,
                };
                let a = self.pop_vec(ty);
                let r = self.builder.ins().vhigh_bits(types::I32, a);
                self.push(r);
            }

            // Integer lanes.
            O::I8x16Abs => self.vec_unary(I8X16, |b, a| b.ins().iabs(a)),
            O::I16x8Abs => self.vec_unary(I16X8, |b, a| b.ins().iabs(a)),
            O::I32x4Abs => self.vec_unary(I32X4, |b, a| b.ins().iabs(a)),
            O::I64x2Abs => self.vec_unary(I64X2, |b, a| b.ins().iabs(a)),
            O::I8x16Neg => self.vec_unary(I8X16, |b, a| b.ins().ineg(a)),
            O::I16x8Neg => self.vec_unary(I16X8, |b, a| b.ins().ineg(a)),
            O::I32x4Neg => self.vec_unary(I32X4, |b, a| b.ins().ineg(a)),
            O::I64x2Neg => self.vec_unary(I64X2, |b, a| b.ins().ineg(a)),
            O::I8x16Popcnt => self.vec_unary(I8X16, |b, a| b.ins().popcnt(a)),
            O::I8x16Shl => self.vec_shift(I8X16, |b, a, n| b.ins().ishl(a, n)),
            O::I16x8Shl => self.vec_shift(I16X8, |b, a, n| b.ins().ishl(a, n)),
            O::I32x4Shl => self.vec_shift(I32X4, |b, a, n| b.ins().ishl(a, n)),
            O::I64x2Shl => self.vec_shift(I64X2, |b, a, n| b.ins().ishl(a, n)),
            O::I8x16ShrS => self.vec_shift(I8X16, |b, a, n| b.ins().sshr(a, n)),
            O::I16x8ShrS => self.vec_shift(I16X8, |b, a, n| b.ins().sshr(a, n)),
            O::I32x4ShrS => self.vec_shift(I32X4, |b, a, n| b.ins().sshr(a, n)),
            O::I64x2ShrS => self.vec_shift(I64X2, |b, a, n| b.ins().sshr(a, n)),
            O::I8x16ShrU => self.vec_shift(I8X16, |b, a, n| b.ins().ushr(a, n)),
            O::I16x8ShrU => self.vec_shift(I16X8, |b, a, n| b.ins().ushr(a, n)),
            O::I32x4ShrU => self.vec_shift(I32X4, |b, a, n| b.ins().ushr(a, n)),
            O::I64x2ShrU => self.vec_shift(I64X2, |b, a, n| b.ins().ushr(a, n)),
            O::I8x16Add => self.vec_binary(I8X16, |b, x, y| b.ins().iadd(x, y)),
            O::I16x8Add => self.vec_binary(I16X8, |b, x, y| b.ins().iadd(x, y)),
            O::I32x4Add => self.vec_binary(I32X4, |b, x, y| b.ins().iadd(x, y)),
            O::I64x2Add => self.vec_binary(I64X2, |b, x, y| b.ins().iadd(x, y)),
            O::I8x16Sub => self.vec_binary(I8X16, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Sub => self.vec_binary(I16X8, |b, x, y| b.ins().isub(x, y)),
            O::I32x4Sub => self.vec_binary(I32X4, |b, x, y| b.ins().isub(x, y)),
            O::I64x2Sub => self.vec_binary(I64X2, |b, x, y| b.ins().isub(x, y)),
            O::I16x8Mul => self.vec_binary(I16X8, |b, x, y| b.ins().imul(x, y)),
            O::I32x4Mul => self.vec_binary(I32X4, |b, x, y| b.ins().imul(x, y)),
            O::I64x2Mul => self.vec_binary(I64X2, |b, x, y| b.ins().imul(x, y)),
            O::I8x16AddSatS => self.vec_binary(I8X16, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I16x8AddSatS => self.vec_binary(I16X8, |b, x, y| b.ins().sadd_sat(x, y)),
            O::I8x16AddSatU => self.vec_binary(I8X16, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I16x8AddSatU => self.vec_binary(I16X8, |b, x, y| b.ins().uadd_sat(x, y)),
            O::I8x16SubSatS => self.vec_binary(I8X16, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I16x8SubSatS => self.vec_binary(I16X8, |b, x, y| b.ins().ssub_sat(x, y)),
            O::I8x16SubSatU => self.vec_binary(I8X16, |b, x, y| b.ins().usub_sat(x, y)),
            O::I16x8SubSatU => self.vec_binary(I16X8, |b, x, y| b.ins().usub_sat(x, y)),
            O::I8x16MinS => self.vec_binary(I8X16, |b, x, y| b.ins().smin(x, y)),
            O::I16x8MinS => self.vec_binary(I16X8, |b, x, y| b.ins().smin(x, y)),
            O::I32x4MinS => self.vec_binary(I32X4, |b, x, y| b.ins().smin(x, y)),
            O::I8x16MinU => self.vec_binary(I8X16, |b, x, y| b.ins().umin(x, y)),
            O::I16x8MinU => self.vec_binary(I16X8, |b, x, y| b.ins().umin(x, y)),
            O::I32x4MinU => self.vec_binary(I32X4, |b, x, y| b.ins().umin(x, y)),
            O::I8x16MaxS => self.vec_binary(I8X16, |b, x, y| b.ins().smax(x, y)),
            O::I16x8MaxS => self.vec_binary(I16X8, |b, x, y| b.ins().smax(x, y)),
            O::I32x4MaxS => self.vec_binary(I32X4, |b, x, y| b.ins().smax(x, y)),
            O::I8x16MaxU => self.vec_binary(I8X16, |b, x, y| b.ins().umax(x, y)),
            O::I16x8MaxU => self.vec_binary(I16X8, |b, x, y| b.ins().umax(x, y)),
            O::I32x4MaxU => self.vec_binary(I32X4, |b, x, y| b.ins().umax(x, y)),
            O::I8x16AvgrU => self.vec_binary(I8X16, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8AvgrU => self.vec_binary(I16X8, |b, x, y| b.ins().avg_round(x, y)),
            O::I16x8Q15MulrSatS | O::I16x8RelaxedQ15mulrS => self.vec_binary(I16X8, |b, x, y| b.ins().sqmul_round_sat(x, y)),
            O::I8x16NarrowI16x8S => self.vec_binary(I16X8, |b, x, y| b.ins().snarrow(x, y)),
            O::I8x16NarrowI16x8U => self.vec_binary(I16X8, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8NarrowI32x4S => self.vec_binary(I32X4, |b, x, y| b.ins().snarrow(x, y)),
            O::I16x8NarrowI32x4U => self.vec_binary(I32X4, |b, x, y| b.ins().unarrow(x, y)),
            O::I16x8ExtendLowI8x16S => self.vec_extend(I8X16, false, true),
            O::I16x8ExtendHighI8x16S => self.vec_extend(I8X16, true, true),
            O::I16x8ExtendLowI8x16U => self.vec_extend(I8X16, false, false),
            O::I16x8ExtendHighI8x16U => self.vec_extend(I8X16, true, false),
            O::I32x4ExtendLowI16x8S => self.vec_extend(I16X8, false, true),
            O::I32x4ExtendHighI16x8S => self.vec_extend(I16X8, true, true),
            O::I32x4ExtendLowI16x8U => self.vec_extend(I16X8, false, false),
            O::I32x4ExtendHighI16x8U => self.vec_extend(I16X8, true, false),
            O::I64x2ExtendLowI32x4S => self.vec_extend(I32X4, false, true),
            O::I64x2ExtendHighI32x4S => self.vec_extend(I32X4, true, true),
            O::I64x2ExtendLowI32x4U => self.vec_extend(I32X4, false, false),
            O::I64x2ExtendHighI32x4U => self.vec_extend(I32X4, true, false),
            O::I16x8ExtAddPairwiseI8x16S => self.vec_extadd_pairwise(I8X16, true),
            O::I16x8ExtAddPairwiseI8x16U => self.vec_extadd_pairwise(I8X16, false),
            O::I32x4ExtAddPairwiseI16x8S => self.vec_extadd_pairwise(I16X8, true),
            O::I32x4ExtAddPairwiseI16x8U => self.vec_extadd_pairwise(I16X8, false),
            O::I16x8ExtMulLowI8x16S => self.vec_extmul(I8X16, false, true),
            O::I16x8ExtMulHighI8x16S => self.vec_extmul(I8X16, true, true),
            O::I16x8ExtMulLowI8x16U => self.vec_extmul(I8X16, false, false),
            O::I16x8ExtMulHighI8x16U => self.vec_extmul(I8X16, true, false),
            O::I32x4ExtMulLowI16x8S => self.vec_extmul(I16X8, false, true),
            O::I32x4ExtMulHighI16x8S => self.vec_extmul(I16X8, true, true),
            O::I32x4ExtMulLowI16x8U => self.vec_extmul(I16X8, false, false),
            O::I32x4ExtMulHighI16x8U => self.vec_extmul(I16X8, true, false),
            O::I64x2ExtMulLowI32x4S => self.vec_extmul(I32X4, false, true),
            O::I64x2ExtMulHighI32x4S => self.vec_extmul(I32X4, true, true),
            O::I64x2ExtMulLowI32x4U => self.vec_extmul(I32X4, false, false),
            O::I64x2ExtMulHighI32x4U => self.vec_extmul(I32X4, true, false),
            O::I32x4DotI16x8S => self.vec_binary(I16X8, Self::widened_dot),
            O::I16x8RelaxedDotI8x16I7x16S => self.vec_binary(I8X16, Self::widened_dot),
            O::I32x4RelaxedDotI8x16I7x16AddS => {
                let acc = self.pop_vec(I32X4);
                let y = self.pop_vec(I8X16);
                let x = self.pop_vec(I8X16);
                let b = &mut self.builder;
                let dot16 = Self::widened_dot(b, x, y);
                let (lo, hi) = (b.ins().swiden_low(dot16), b.ins().swiden_high(dot16));
                let dot32 = b.ins().iadd_pairwise(lo, hi);
                let r = b.ins().iadd(dot32, acc);
                self.push_vec(r);
            }

            // Float lanes.
            O::F32x4Abs => self.vec_unary(F32X4, |b, a| b.ins().fabs(a)),
            O::F64x2Abs => self.vec_unary(F64X2, |b, a| b.ins().fabs(a)),
            O::F32x4Neg => self.vec_unary(F32X4, |b, a| b.ins().fneg(a)),
            O::F64x2Neg => self.vec_unary(F64X2, |b, a| b.ins().fneg(a)),
            O::F32x4Sqrt => self.vec_unary(F32X4, |b, a| b.ins().sqrt(a)),
            O::F64x2Sqrt => self.vec_unary(F64X2, |b, a| b.ins().sqrt(a)),
            O::F32x4Ceil => self.vec_unary(F32X4, |b, a| b.ins().ceil(a)),
            O::F64x2Ceil => self.vec_unary(F64X2, |b, a| b.ins().ceil(a)),
            O::F32x4Floor => self.vec_unary(F32X4, |b, a| b.ins().floor(a)),
            O::F64x2Floor => self.vec_unary(F64X2, |b, a| b.ins().floor(a)),
            O::F32x4Trunc => self.vec_unary(F32X4, |b, a| b.ins().trunc(a)),
            O::F64x2Trunc => self.vec_unary(F64X2, |b, a| b.ins().trunc(a)),
            O::F32x4Nearest => self.vec_unary(F32X4, |b, a| b.ins().nearest(a)),
            O::F64x2Nearest => self.vec_unary(F64X2, |b, a| b.ins().nearest(a)),
            O::F32x4Add => self.vec_binary(F32X4, |b, x, y| b.ins().fadd(x, y)),
            O::F64x2Add => self.vec_binary(F64X2, |b, x, y| b.ins().fadd(x, y)),
            O::F32x4Sub => self.vec_binary(F32X4, |b, x, y| b.ins().fsub(x, y)),
            O::F64x2Sub => self.vec_binary(F64X2, |b, x, y| b.ins().fsub(x, y)),
            O::F32x4Mul => self.vec_binary(F32X4, |b, x, y| b.ins().fmul(x, y)),
            O::F64x2Mul => self.vec_binary(F64X2, |b, x, y| b.ins().fmul(x, y)),
            O::F32x4Div => self.vec_binary(F32X4, |b, x, y| b.ins().fdiv(x, y)),
            O::F64x2Div => self.vec_binary(F64X2, |b, x, y| b.ins().fdiv(x, y)),
            O::F32x4Min | O::F32x4RelaxedMin => self.vec_binary(F32X4, |b, x, y| b.ins().fmin(x, y)),
            O::F64x2Min | O::F64x2RelaxedMin => self.vec_binary(F64X2, |b, x, y| b.ins().fmin(x, y)),
            O::F32x4Max | O::F32x4RelaxedMax => self.vec_binary(F32X4, |b, x, y| b.ins().fmax(x, y)),
            O::F64x2Max | O::F64x2RelaxedMax => self.vec_binary(F64X2, |b, x, y| b.ins().fmax(x, y)),
            O::F32x4PMin => self.vec_pminmax(F32X4, false),
            O::F64x2PMin => self.vec_pminmax(F64X2, false),
            O::F32x4PMax => self.vec_pminmax(F32X4, true),
            O::F64x2PMax => self.vec_pminmax(F64X2, true),
            O::F32x4RelaxedMadd => self.vec_madd(F32X4, false),
            O::F32x4RelaxedNmadd => self.vec_madd(F32X4, true),
            O::F64x2RelaxedMadd => self.vec_madd(F64X2, false),
            O::F64x2RelaxedNmadd => self.vec_madd(F64X2, true),

            // Conversions.
            O::I32x4TruncSatF32x4S | O::I32x4RelaxedTruncF32x4S => self.vec_unary(F32X4, |b, a| b.ins().fcvt_to_sint_sat(I32X4, a)),
            O::I32x4TruncSatF32x4U | O::I32x4RelaxedTruncF32x4U => self.vec_unary(F32X4, |b, a| b.ins().fcvt_to_uint_sat(I32X4, a)),
            O::I32x4TruncSatF64x2SZero | O::I32x4RelaxedTruncF64x2SZero => {
                // A vconst of the result's shape: Cranelift's x86-64 back end
                // lowers this narrowing only in this exact pattern.
                let zero = self.builder.func.dfg.constants.insert(vec![0u8; 16].into());
                let zero = self.builder.ins().vconst(I64X2, zero);
                self.vec_unary(F64X2, |b, a| {
                    let wide = b.ins().fcvt_to_sint_sat(I64X2, a);
                    b.ins().snarrow(wide, zero)
                });
            }
            O::I32x4TruncSatF64x2UZero | O::I32x4RelaxedTruncF64x2UZero => {
                let zero = self.builder.func.dfg.constants.insert(vec![0u8; 16].into());
                let zero = self.builder.ins().vconst(I64X2, zero);
                self.vec_unary(F64X2, |b, a| {
                    let wide = b.ins().fcvt_to_uint_sat(I64X2, a);
                    b.ins().uunarrow(wide, zero)
                });
            }
            O::F32x4ConvertI32x4S => self.vec_unary(I32X4, |b, a| b.ins().fcvt_from_sint(F32X4, a)),
            O::F32x4ConvertI32x4U => self.vec_unary(I32X4, |b, a| b.ins().fcvt_from_uint(F32X4, a)),
            O::F64x2ConvertLowI32x4S => self.vec_unary(I32X4, |b, a| {
                let wide = b.ins().swiden_low(a);
                b.ins().fcvt_from_sint(F64X2, wide)
            }),
            O::F64x2ConvertLowI32x4U => self.vec_unary(I32X4, |b, a| {
                let wide = b.ins().uwiden_low(a);
                b.ins().fcvt_from_uint(F64X2, wide)
            }),
            O::F32x4DemoteF64x2Zero => self.vec_unary(F64X2, |b, a| b.ins().fvdemote(a)),
            O::F64x2PromoteLowF32x4 => self.vec_unary(F32X4, |b, a| b.ins().fvpromote_low(a)),
            _ => return Ok(false),
        }
        Ok(true)
    }
}

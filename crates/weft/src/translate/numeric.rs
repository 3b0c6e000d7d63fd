//! Numeric operators: constants, integer and float comparisons and
//! arithmetic, conversions, reinterpretations and sign extensions.

use super::*;

impl<'a, 'b> FuncTranslator<'a, 'b> {
    /// Lowers a numeric operator. Returns false, translating nothing, for any other operator.
    pub(super) fn translate_numeric(&mut self, op: &Operator<'_>) -> anyhow::Result<bool> {
        use Operator as O;
        match *op {
            // Constants.
            O::I32Const { value } => {
                let v = self.builder.ins().iconst(types::I32, value as i64);
                self.push(v);
            }
            O::I64Const { value } => {
                let v = self.builder.ins().iconst(types::I64, value);
                self.push(v);
            }
            O::F32Const { value } => {
                let v = self.builder.ins().f32const(ir::immediates::Ieee32::with_bits(value.bits()));
                self.push(v);
            }
            O::F64Const { value } => {
                let v = self.builder.ins().f64const(ir::immediates::Ieee64::with_bits(value.bits()));
                self.push(v);
            }
            // Integer comparisons.
            O::I32Eqz | O::I64Eqz => {
                let a = self.pop();
                let c = self.builder.ins().icmp_imm_s(IntCC::Equal, a, 0);
                let v = self.builder.ins().uextend(types::I32, c);
                self.push(v);
            }
            O::I32Eq | O::I64Eq => self.icmp(IntCC::Equal),
            O::I32Ne | O::I64Ne => self.icmp(IntCC::NotEqual),
            O::I32LtS | O::I64LtS => self.icmp(IntCC::SignedLessThan),
            O::I32LtU | O::I64LtU => self.icmp(IntCC::UnsignedLessThan),
            O::I32GtS | O::I64GtS => self.icmp(IntCC::SignedGreaterThan),
            O::I32GtU | O::I64GtU => self.icmp(IntCC::UnsignedGreaterThan),
            O::I32LeS | O::I64LeS => self.icmp(IntCC::SignedLessThanOrEqual),
            O::I32LeU | O::I64LeU => self.icmp(IntCC::UnsignedLessThanOrEqual),
            O::I32GeS | O::I64GeS => self.icmp(IntCC::SignedGreaterThanOrEqual),
            O::I32GeU | O::I64GeU => self.icmp(IntCC::UnsignedGreaterThanOrEqual),
            O::F32Eq | O::F64Eq => self.fcmp(FloatCC::Equal),
            O::F32Ne | O::F64Ne => self.fcmp(FloatCC::NotEqual),
            O::F32Lt | O::F64Lt => self.fcmp(FloatCC::LessThan),
            O::F32Gt | O::F64Gt => self.fcmp(FloatCC::GreaterThan),
            O::F32Le | O::F64Le => self.fcmp(FloatCC::LessThanOrEqual),
            O::F32Ge | O::F64Ge => self.fcmp(FloatCC::GreaterThanOrEqual),
            // Integer arithmetic.
            O::I32Clz | O::I64Clz => self.unary(|b, a| b.ins().clz(a)),
            O::I32Ctz | O::I64Ctz => self.unary(|b, a| b.ins().ctz(a)),
            O::I32Popcnt | O::I64Popcnt => self.unary(|b, a| b.ins().popcnt(a)),
            O::I32Add | O::I64Add => self.binary(|b, x, y| b.ins().iadd(x, y)),
            O::I32Sub | O::I64Sub => self.binary(|b, x, y| b.ins().isub(x, y)),
            O::I32Mul | O::I64Mul => self.binary(|b, x, y| b.ins().imul(x, y)),
            O::I32And | O::I64And => self.binary(|b, x, y| b.ins().band(x, y)),
            O::I32Or | O::I64Or => self.binary(|b, x, y| b.ins().bor(x, y)),
            O::I32Xor | O::I64Xor => self.binary(|b, x, y| b.ins().bxor(x, y)),
            O::I32Shl | O::I64Shl => self.binary(|b, x, y| b.ins().ishl(x, y)),
            O::I32ShrS | O::I64ShrS => self.binary(|b, x, y| b.ins().sshr(x, y)),
            O::I32ShrU | O::I64ShrU => self.binary(|b, x, y| b.ins().ushr(x, y)),
            O::I32Rotl | O::I64Rotl => self.binary(|b, x, y| b.ins().rotl(x, y)),
            O::I32Rotr | O::I64Rotr => self.binary(|b, x, y| b.ins().rotr(x, y)),
            O::I32DivU | O::I64DivU => {
                let (x, y) = self.pop2();
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                let v = self.builder.ins().udiv(x, y);
                self.push(v);
            }
            O::I32RemU | O::I64RemU => {
                let (x, y) = self.pop2();
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                let v = self.builder.ins().urem(x, y);
                self.push(v);
            }
            O::I32DivS | O::I64DivS => {
                let (x, y) = self.pop2();
                let ty = self.builder.func.dfg.value_type(x);
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                let min = if ty == types::I32 { i32::MIN as i64 } else { i64::MIN };
                let is_min = self.builder.ins().icmp_imm_s(IntCC::Equal, x, min);
                let is_neg1 = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let ovf = self.builder.ins().band(is_min, is_neg1);
                self.builder.ins().trapnz(ovf, TrapCode::INTEGER_OVERFLOW);
                let v = self.builder.ins().sdiv(x, y);
                self.push(v);
            }
            O::I32RemS | O::I64RemS => {
                let (x, y) = self.pop2();
                let ty = self.builder.func.dfg.value_type(x);
                self.builder.ins().trapz(y, TrapCode::INTEGER_DIVISION_BY_ZERO);
                // x % -1 is 0 for every x; divide by 1 instead so INT_MIN % -1
                // cannot fault in the hardware divider.
                let is_neg1 = self.builder.ins().icmp_imm_s(IntCC::Equal, y, -1);
                let one = self.builder.ins().iconst(ty, 1);
                let divisor = self.builder.ins().select(is_neg1, one, y);
                let v = self.builder.ins().srem(x, divisor);
                self.push(v);
            }
            // Float arithmetic.
            O::F32Abs | O::F64Abs => self.unary(|b, a| b.ins().fabs(a)),
            O::F32Neg | O::F64Neg => self.unary(|b, a| b.ins().fneg(a)),
            O::F32Ceil | O::F64Ceil => self.unary(|b, a| b.ins().ceil(a)),
            O::F32Floor | O::F64Floor => self.unary(|b, a| b.ins().floor(a)),
            O::F32Trunc | O::F64Trunc => self.unary(|b, a| b.ins().trunc(a)),
            O::F32Nearest | O::F64Nearest => self.unary(|b, a| b.ins().nearest(a)),
            O::F32Sqrt | O::F64Sqrt => self.unary(|b, a| b.ins().sqrt(a)),
            O::F32Add | O::F64Add => self.binary(|b, x, y| b.ins().fadd(x, y)),
            O::F32Sub | O::F64Sub => self.binary(|b, x, y| b.ins().fsub(x, y)),
            O::F32Mul | O::F64Mul => self.binary(|b, x, y| b.ins().fmul(x, y)),
            O::F32Div | O::F64Div => self.binary(|b, x, y| b.ins().fdiv(x, y)),
            O::F32Min | O::F64Min => self.binary(|b, x, y| b.ins().fmin(x, y)),
            O::F32Max | O::F64Max => self.binary(|b, x, y| b.ins().fmax(x, y)),
            O::F32Copysign | O::F64Copysign => self.binary(|b, x, y| b.ins().fcopysign(x, y)),
            // Conversions.
            O::I32WrapI64 => self.unary(|b, a| b.ins().ireduce(types::I32, a)),
            O::I64ExtendI32S => self.unary(|b, a| b.ins().sextend(types::I64, a)),
            O::I64ExtendI32U => self.unary(|b, a| b.ins().uextend(types::I64, a)),
            O::I32TruncF32S | O::I32TruncF64S => self.unary(|b, a| b.ins().fcvt_to_sint(types::I32, a)),
            O::I32TruncF32U | O::I32TruncF64U => self.unary(|b, a| b.ins().fcvt_to_uint(types::I32, a)),
            O::I64TruncF32S | O::I64TruncF64S => self.unary(|b, a| b.ins().fcvt_to_sint(types::I64, a)),
            O::I64TruncF32U | O::I64TruncF64U => self.unary(|b, a| b.ins().fcvt_to_uint(types::I64, a)),
            O::I32TruncSatF32S | O::I32TruncSatF64S => self.unary(|b, a| b.ins().fcvt_to_sint_sat(types::I32, a)),
            O::I32TruncSatF32U | O::I32TruncSatF64U => self.unary(|b, a| b.ins().fcvt_to_uint_sat(types::I32, a)),
            O::I64TruncSatF32S | O::I64TruncSatF64S => self.unary(|b, a| b.ins().fcvt_to_sint_sat(types::I64, a)),
            O::I64TruncSatF32U | O::I64TruncSatF64U => self.unary(|b, a| b.ins().fcvt_to_uint_sat(types::I64, a)),
            O::F32ConvertI32S | O::F32ConvertI64S => self.unary(|b, a| b.ins().fcvt_from_sint(types::F32, a)),
            O::F32ConvertI32U | O::F32ConvertI64U => self.unary(|b, a| b.ins().fcvt_from_uint(types::F32, a)),
            O::F64ConvertI32S | O::F64ConvertI64S => self.unary(|b, a| b.ins().fcvt_from_sint(types::F64, a)),
            O::F64ConvertI32U | O::F64ConvertI64U => self.unary(|b, a| b.ins().fcvt_from_uint(types::F64, a)),
            O::F32DemoteF64 => self.unary(|b, a| b.ins().fdemote(types::F32, a)),
            O::F64PromoteF32 => self.unary(|b, a| b.ins().fpromote(types::F64, a)),
            O::I32ReinterpretF32 => self.unary(|b, a| b.ins().bitcast(types::I32, MemFlagsData::new(), a)),
            O::I64ReinterpretF64 => self.unary(|b, a| b.ins().bitcast(types::I64, MemFlagsData::new(), a)),
            O::F32ReinterpretI32 => self.unary(|b, a| b.ins().bitcast(types::F32, MemFlagsData::new(), a)),
            O::F64ReinterpretI64 => self.unary(|b, a| b.ins().bitcast(types::F64, MemFlagsData::new(), a)),
            O::I32Extend8S => self.sign_extend_from(types::I8),
            O::I32Extend16S => self.sign_extend_from(types::I16),
            O::I64Extend8S => self.sign_extend_from(types::I8),
            O::I64Extend16S => self.sign_extend_from(types::I16),
            O::I64Extend32S => self.sign_extend_from(types::I32),
            _ => return Ok(false),
        }
        Ok(true)
    }

    pub(super) fn unary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'b>, Value) -> Value) {
        let a = self.pop();
        let v = f(&mut self.builder, a);
        self.push(v);
    }
    pub(super) fn binary(&mut self, f: impl FnOnce(&mut FunctionBuilder<'b>, Value, Value) -> Value) {
        let (a, b) = self.pop2();
        let v = f(&mut self.builder, a, b);
        self.push(v);
    }
    pub(super) fn icmp(&mut self, cc: IntCC) {
        let (a, b) = self.pop2();
        let c = self.builder.ins().icmp(cc, a, b);
        let v = self.builder.ins().uextend(types::I32, c);
        self.push(v);
    }
    pub(super) fn fcmp(&mut self, cc: FloatCC) {
        let (a, b) = self.pop2();
        let c = self.builder.ins().fcmp(cc, a, b);
        let v = self.builder.ins().uextend(types::I32, c);
        self.push(v);
    }
    pub(super) fn sign_extend_from(&mut self, narrow: Type) {
        let a = self.pop();
        let ty = self.builder.func.dfg.value_type(a);
        let n = self.builder.ins().ireduce(narrow, a);
        let v = self.builder.ins().sextend(ty, n);
        self.push(v);
    }
}

//! The compiler driver: turns validated function bodies into one executable code
//! object (in parallel when cores allow), and builds the trampolines that move
//! between the host's calling convention and Wasm's.

use std::sync::Arc;

use cranelift_codegen::binemit::Reloc;
use cranelift_codegen::control::ControlPlane;
use cranelift_codegen::ir::{self, types, AbiParam, InstBuilder, MemFlagsData, Signature, UserFuncName};
use cranelift_codegen::isa::{CallConv, OwnedTargetIsa};
use cranelift_codegen::settings::{self, Configurable};
use cranelift_codegen::{CodegenError, Context, FinalizedRelocTarget};
use cranelift_frontend::{FunctionBuilder, FunctionBuilderContext};

use crate::config::{Config, OptLevel};
use crate::error::{CompileError, CompileErrorKind};
use crate::frontend::{ModuleInfo, PendingFunction};
use crate::runtime::code::{CodeMemory, FunctionInfo, Symbols};
use crate::translate::{self, TranslateEnv};
use crate::types::{FuncType, ValType};
use crate::vmctx;

/// Builds the Cranelift ISA for the host with Weft's settings.
pub fn build_isa(config: &Config) -> anyhow::Result<OwnedTargetIsa> {
    let mut flags = settings::builder();
    let opt = match config.opt_level {
        OptLevel::None => "none",
        OptLevel::Speed => "speed",
        OptLevel::SpeedAndSize => "speed_and_size",
    };
    flags.set("opt_level", opt)?;
    // Backtraces walk frame pointers.
    flags.set("preserve_frame_pointers", "true")?;
    // The stack limit check in every prologue covers large frames too.
    flags.set("enable_probestack", "false")?;
    flags.set("enable_multi_ret_implicit_sret", "true")?;
    flags.set("enable_nan_canonicalization", if config.nan_canonicalization { "true" } else { "false" })?;
    flags.set("unwind_info", "false")?;
    // Stack switching: `stack_switch` in continuation instructions.
    flags.set("stack_switch_model", "basic")?;
    // Fuel: the counter lives in r15 (see `translate::fuel`).
    flags.set("enable_pinned_reg", if config.tunables.consume_fuel { "true" } else { "false" })?;
    flags.set("enable_verifier", if cfg!(debug_assertions) { "true" } else { "false" })?;
    let isa_builder = cranelift_native::builder().map_err(|e| anyhow::anyhow!("unsupported host: {e}"))?;
    Ok(isa_builder.finish(settings::Flags::new(flags))?)
}

/// One function's machine code before linking.
struct CompiledFunction {
    index: u32,
    code: Vec<u8>,
    /// (offset, callee function index, addend) of direct calls.
    calls: Vec<(u32, u32, i64)>,
    traps: Vec<(u32, ir::TrapCode)>,
    srclocs: Vec<(u32, u32)>,
    /// Exception handlers: (return address, handler, frame size at the call).
    handlers: Vec<(u32, u32, u32)>,
    /// Targets of `ref.func` in the body.
    ref_funcs: Vec<u32>,
}

fn compile_one(
    isa: &OwnedTargetIsa,
    env: &TranslateEnv<'_>,
    pending: PendingFunction<'_>,
    fctx: &mut FunctionBuilderContext,
    ctx: &mut Context,
    allocs: wasmparser::FuncValidatorAllocations,
) -> (Result<CompiledFunction, (u32, anyhow::Error)>, wasmparser::FuncValidatorAllocations) {
    let mut validator = pending.validator.into_validator(allocs);
    let index = pending.index;
    let mut facts = translate::FunctionFacts::default();
    let func = match translate::translate_function(env, pending.index, &pending.body, &mut validator, fctx, isa.frontend_config(), &mut facts) {
        Ok(f) => f,
        Err(e) => {
            // The builder context was left mid-function: start the next one afresh.
            *fctx = FunctionBuilderContext::new();
            return (Err((pending.index, e)), validator.into_allocations());
        }
    };
    let allocs = validator.into_allocations();
    ctx.clear();
    ctx.func = func;
    let names = ctx.func.params.user_named_funcs().clone();
    // A code generator panic must not take the host down: report it as this
    // function's compilation error.
    let compiled =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ctx.compile(&**isa, &mut ControlPlane::default()).map(|_| ()).map_err(|e| e.inner)));
    let compiled = match compiled {
        Ok(r) => r,
        Err(p) => {
            let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
            ctx.clear();
            return (Err((index, CompileError::internal(format_args!("in function {index}: {msg}")))), allocs);
        }
    };
    let result = match compiled.map(|()| ctx.compiled_code().expect("compiled")) {
        Ok(compiled) => {
            let mut calls = Vec::new();
            let mut error = None;
            for r in compiled.buffer.relocs() {
                match (&r.kind, &r.target) {
                    (Reloc::X86CallPCRel4 | Reloc::X86CallPLTRel4 | Reloc::X86PCRel4, FinalizedRelocTarget::ExternalName(ir::ExternalName::User(name))) => {
                        calls.push((r.offset, names[*name].index, r.addend));
                    }
                    other => error = Some(CompileError::internal(format_args!("unexpected relocation {other:?}"))),
                }
            }
            let mut code = compiled.buffer.data().to_vec();
            let mut traps: Vec<(u32, ir::TrapCode)> = compiled.buffer.traps().iter().map(|t| (t.offset, t.code)).collect();
            if env.tunables.mmu_segment_probes {
                let points: Vec<u32> =
                    compiled.buffer.debug_tags().filter(|t| t.tags.contains(&ir::DebugTag::User(translate::SEGMENT_PROBE_TAG))).map(|t| t.offset).collect();
                match patch_segment_probes(&mut code, &points) {
                    Ok(probes) => traps.extend(probes.into_iter().map(|at| (at, crate::trap::codes::INTERRUPTION_POINT))),
                    Err(at) => error = Some(CompileError::internal(format_args!("no loop probe after offset {at} of function {index}"))),
                }
            }
            if env.tunables.interruption == crate::config::Interruption::MmuPage {
                match prologue_interruption_point(&code) {
                    Some(offset) => traps.push((offset, crate::trap::codes::INTERRUPTION_POINT)),
                    // Cranelift gives every function that still calls after
                    // optimisation a stack check (calls in code it proved
                    // unreachable are gone, and so is the need to check).
                    None if facts.entry_point_in_prologue && has_calls(&ctx.func) => {
                        error = Some(CompileError::internal(format_args!("no stack-limit load in the prologue of function {index}")));
                    }
                    None => {}
                }
                traps.sort_by_key(|(o, _)| *o);
            }
            // Every `try_call` has one handler (its region's dispatch code),
            // and the unwinder needs the frame's size to land in it.
            let mut handlers = Vec::new();
            for site in compiled.buffer.call_sites() {
                let handler = site.exception_handlers.iter().find_map(|h| match h {
                    cranelift_codegen::FinalizedMachExceptionHandler::Default(offset) => Some(*offset),
                    _ => None,
                });
                if let Some(handler) = handler {
                    match site.frame_offset {
                        Some(size) => handlers.push((site.ret_addr, handler, size)),
                        None => error = Some(CompileError::internal(format_args!("a call site of function {index} has a handler but no frame size"))),
                    }
                }
            }
            handlers.sort_by_key(|h| h.0);
            match error {
                Some(e) => Err((pending.index, e)),
                None => Ok(CompiledFunction {
                    ref_funcs: std::mem::take(&mut facts.ref_func_targets),
                    index: pending.index,
                    code,
                    calls,
                    traps,
                    handlers,
                    srclocs: compiled.buffer.get_srclocs_sorted().iter().filter(|s| !s.loc.is_default()).map(|s| (s.start, s.loc.bits())).collect(),
                }),
            }
        }
        Err(e) => Err((pending.index, codegen_error(pending.index, e))),
    };
    (result, allocs)
}

/// In MMU page mode, the offset of the prologue's stack-limit load, which
/// reads the probe page below the vmctx and faults once that page is revoked.
/// `None` if the function has no stack check (Cranelift omits it in leaf
/// functions without a frame).
///
/// The load is found from what the compiler knows, not from where the vmctx
/// happens to arrive: Cranelift's x86-64 prologue is `push rbp; mov rbp,
/// rsp` (four bytes), then the stack-limit global value, lowered as `mov r10,
/// [vmctx + disp32]` with the displacement the translator chose. The vmctx's
/// register depends on the signature (it is the first argument, but a function
/// whose results do not fit in registers receives a hidden return-area pointer
/// before it), so any base register is accepted.
fn prologue_interruption_point(code: &[u8]) -> Option<u32> {
    const FRAME_SETUP: [u8; 4] = [0x55, 0x48, 0x89, 0xe5];
    if code.get(..FRAME_SETUP.len())? != FRAME_SETUP {
        return None;
    }
    let at = FRAME_SETUP.len();
    let offset = crate::vmctx::INTERRUPT_PAGE_STACK_LIMIT_OFFSET as i32 - crate::vmctx::VMCTX_PROBE_PAGE_SIZE as i32;
    is_stack_limit_load(code.get(at..)?, offset).then_some(at as u32)
}

/// Whether `insn` starts with `mov r10, [base + disp32]` for some base
/// register and the displacement `offset`: REX.W+R (+B for r8-r15), MOV r64,
/// r/m64, ModRM mod=10 reg=r10, and a SIB byte when the base is rsp or r12.
fn is_stack_limit_load(insn: &[u8], offset: i32) -> bool {
    let [rex, 0x8b, modrm, rest @ ..] = insn else { return false };
    if rex & !1 != 0x4c || modrm & 0b1111_1000 != 0b1001_0000 {
        return false;
    }
    let disp = match modrm & 0b111 {
        // A SIB byte with no index and the same base register.
        0b100 => match rest {
            [0x24, disp @ ..] => disp,
            _ => return false,
        },
        _ => rest,
    };
    disp.get(..4).is_some_and(|d| d == offset.to_le_bytes())
}

/// Rewrites the segment probe Cranelift emitted at `at` (see
/// [`translate::SEGMENT_PROBE_DISPLACEMENT`]), `movw $0, disp32(%rsp)`, into
/// `cmp qword ptr gs:[0], 0` of the same length: a read of the probe page's
/// first word through the GS base, which writes only the flags (no flags are
/// live across a probe: Cranelift emits each compare together with the
/// branch, select or trap that reads it). Returns false, changing nothing,
/// if the bytes at `at` are not such a probe.
fn patch_segment_probe(code: &mut [u8], at: usize) -> bool {
    // GS; REX.W; CMP r/m64, imm8; ModRM mod=00 reg=7 rm=100 (SIB); SIB no
    // base, no index (disp32 alone); disp32 = 0; imm8 = 0.
    const PROBE: [u8; 10] = [0x65, 0x48, 0x83, 0x3c, 0x25, 0, 0, 0, 0, 0];
    let Some(insn) = code.get_mut(at..at + PROBE.len()) else { return false };
    // Operand-size prefix; MOV r/m16, imm16; ModRM mod=10 reg=0 rm=100 (SIB,
    // disp32); SIB base=rsp, no index; disp32; imm16 = 0.
    let is_probe = insn[0..4] == [0x66, 0xc7, 0x84, 0x24]
        && i32::from_le_bytes([insn[4], insn[5], insn[6], insn[7]]) >= translate::SEGMENT_PROBE_DISPLACEMENT
        && insn[8..10] == [0, 0];
    if is_probe {
        insn.copy_from_slice(&PROBE);
    }
    is_probe
}

/// Rewrites the segment probe after each of `points` (the offsets of the
/// tagged sequence points the translator puts right before each probe) with
/// [`patch_segment_probe`]. The register allocator may put moves between a
/// point and its probe, so each probe is looked for in the few bytes after
/// its point, before the next point: a move never holds the probe's bytes
/// (no access but a probe has such a displacement). Returns the probes'
/// offsets, or the offset of a point with no probe after it.
fn patch_segment_probes(code: &mut [u8], points: &[u32]) -> Result<Vec<u32>, u32> {
    const WINDOW: u32 = 64;
    let mut probes = Vec::with_capacity(points.len());
    for (i, &at) in points.iter().enumerate() {
        let end = points.get(i + 1).map_or(at + WINDOW, |&next| next.min(at + WINDOW));
        match (at..end).find(|&p| patch_segment_probe(code, p as usize)) {
            Some(p) => probes.push(p),
            None => return Err(at),
        }
    }
    Ok(probes)
}

/// The compile error for Cranelift's failure to compile function `index`:
/// its own limits (a function too large for its code buffer or its frame)
/// are limits, anything else is a bug in what Weft gave it.
fn codegen_error(index: u32, e: CodegenError) -> anyhow::Error {
    match e {
        CodegenError::ImplLimitExceeded | CodegenError::CodeTooLarge => {
            anyhow::Error::new(CompileError::new(CompileErrorKind::LimitExceeded, format!("function {index} exceeds a code generator limit: {e}")))
        }
        e => CompileError::internal(format_args!("compilation of function {index} failed: {e:?}")),
    }
}

/// Whether a (compiled, hence optimised) function still makes any call.
fn has_calls(func: &ir::Function) -> bool {
    func.layout.blocks().flat_map(|b| func.layout.block_insts(b)).any(|i| func.dfg.insts[i].opcode().is_call())
}

/// The compiled code of a module.
pub struct CompiledModule {
    pub code: Arc<CodeMemory>,
    /// Start offset of each defined function in `code`.
    pub func_starts: Vec<u32>,
    /// Every function some body takes a `ref.func` of.
    pub ref_func_targets: Vec<u32>,
}

/// Validates and compiles every function of a module and links them.
pub fn compile_module(isa: &OwnedTargetIsa, config: &Config, env: &TranslateEnv<'_>, pending: Vec<PendingFunction<'_>>) -> anyhow::Result<CompiledModule> {
    let threads = if config.parallel_compilation && pending.len() > 1 {
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1).min(pending.len())
    } else {
        1
    };
    let mut results: Vec<Result<CompiledFunction, (u32, anyhow::Error)>> = Vec::with_capacity(pending.len());
    if threads <= 1 {
        let mut fctx = FunctionBuilderContext::new();
        let mut ctx = Context::new();
        let mut allocs = Default::default();
        for p in pending {
            let (r, a) = compile_one(isa, env, p, &mut fctx, &mut ctx, allocs);
            allocs = a;
            let failed = r.is_err();
            results.push(r);
            if failed {
                break;
            }
        }
    } else {
        // Threads take the next function from a shared queue, largest body
        // first, so that no thread waits on another's share: dealt out in
        // advance, one large function made the other threads idle (a module
        // with a few large functions compiled 1.35x slower than wasmtime's
        // work-stealing on two cores, and faster on one).
        let mut pending = pending;
        pending.sort_by_key(|p| std::cmp::Reverse(p.body.range().end - p.body.range().start));
        let queue = std::sync::Mutex::new(pending.into_iter());
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..threads)
                .map(|_| {
                    s.spawn(|| {
                        let mut fctx = FunctionBuilderContext::new();
                        let mut ctx = Context::new();
                        let mut allocs = Default::default();
                        let mut out = Vec::new();
                        loop {
                            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
                            let Some(p) = next else { break };
                            let (r, a) = compile_one(isa, env, p, &mut fctx, &mut ctx, allocs);
                            allocs = a;
                            out.push(r);
                        }
                        out
                    })
                })
                .collect();
            for h in handles {
                results.extend(h.join().expect("compiler thread panicked"));
            }
        });
    }
    let mut funcs = Vec::with_capacity(results.len());
    let mut first_error: Option<(u32, anyhow::Error)> = None;
    for r in results {
        match r {
            Ok(f) => funcs.push(f),
            Err((idx, e)) => {
                // Report the error of the lowest function index, deterministically.
                if first_error.as_ref().is_none_or(|(i, _)| idx < *i) {
                    first_error = Some((idx, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_error {
        return Err(e);
    }
    funcs.sort_by_key(|f| f.index);
    let module = link(funcs, env.info, isa.function_alignment().preferred as usize)?;
    if config.perf_map {
        // A profiling aid: failing to write the map must not fail compilation.
        if let Err(e) = module.code.write_perf_map() {
            log::warn!("cannot write the perf map: {e}");
        }
    }
    Ok(module)
}

/// Lays functions out back to back at the ISA's preferred alignment (32 bytes
/// on x86-64: loop placement relative to fetch blocks matters for hot loops).
fn link(funcs: Vec<CompiledFunction>, info: &ModuleInfo, align: usize) -> anyhow::Result<CompiledModule> {
    let mut image = Vec::new();
    let mut func_starts = Vec::with_capacity(funcs.len());
    let ref_func_targets: Vec<u32> = funcs.iter().flat_map(|f| f.ref_funcs.iter().copied()).collect();
    let mut infos = Vec::with_capacity(funcs.len());
    for f in &funcs {
        while image.len() % align.max(16) != 0 {
            image.push(0xcc); // int3 padding
        }
        let start = image.len() as u32;
        func_starts.push(start);
        image.extend_from_slice(&f.code);
        infos.push(FunctionInfo {
            start,
            len: f.code.len() as u32,
            func_index: Some(f.index),
            traps: f.traps.iter().map(|(o, c)| (start + o, *c)).collect(),
            srclocs: f.srclocs.iter().map(|(o, l)| (start + o, *l)).collect(),
            handlers: f.handlers.iter().map(|(r, h, size)| (start + r, start + h, *size)).collect(),
        });
    }
    let num_imported = info.num_imported_funcs;
    let mut patches = Vec::new();
    for (i, f) in funcs.iter().enumerate() {
        for &(off, callee, addend) in &f.calls {
            let at = func_starts[i] + off;
            let target = func_starts[(callee - num_imported) as usize];
            let value = target as i64 + addend - at as i64;
            patches.push((at, i32::try_from(value)?));
        }
    }
    let symbols = Symbols { module: info.name.clone(), funcs: info.func_names.clone() };
    let code = CodeMemory::new(&image, infos, symbols, |ptr| {
        for (at, value) in patches {
            // SAFETY: `at` is a relocation site inside the copied image.
            unsafe { std::ptr::write_unaligned(ptr.add(at as usize) as *mut i32, value) };
        }
    })?;
    Ok(CompiledModule { code, func_starts, ref_func_targets })
}

fn clif_val_type(t: &ValType) -> ir::Type {
    match t {
        ValType::I32 => types::I32,
        ValType::I64 => types::I64,
        ValType::F32 => types::F32,
        ValType::F64 => types::F64,
        ValType::V128 => types::I8X16,
        ValType::Ref(_) => types::I64,
    }
}

/// Size of one slot of the value arrays trampolines read and write.
pub const VAL_RAW_SIZE: i32 = 16;

/// Trampolines for one function type.
pub struct Trampolines {
    /// Owns the code the two pointers point into.
    _code: Arc<CodeMemory>,
    /// `extern "C" fn(callee_vmctx, caller_vmctx, code, values: *mut ValRaw)`:
    /// calls Wasm-convention `code` with arguments from `values`, writes results back.
    pub host_to_wasm: *const u8,
    /// A Wasm-convention function that spills its arguments to an array and calls
    /// `(*callee_vmctx).callback(callee_vmctx, caller_vmctx, values, fp)`.
    pub wasm_to_host: *const u8,
}

// SAFETY: the pointers refer to immutable code kept alive by `code`.
unsafe impl Send for Trampolines {}
// SAFETY: as above.
unsafe impl Sync for Trampolines {}

/// Compiles the two trampolines for function type `ty`. With `consume_fuel`,
/// they move the fuel counter between the store context and the pinned
/// register compiled code keeps it in (see `translate::fuel`): the first
/// loads it before the call into Wasm and stores it after; the second
/// stores it before the host function runs and loads it after, since the
/// host may read or set the store's fuel.
pub fn compile_trampolines(isa: &OwnedTargetIsa, ty: &FuncType, consume_fuel: bool) -> anyhow::Result<Trampolines> {
    let params: Vec<ir::Type> = ty.params().iter().map(clif_val_type).collect();
    let results: Vec<ir::Type> = ty.results().iter().map(clif_val_type).collect();
    let wasm_sig = translate::wasm_signature(params.iter().copied(), results.iter().copied());
    let mut fctx = FunctionBuilderContext::new();
    let mut ctx = Context::new();
    let flags = MemFlagsData::trusted();

    // Host to Wasm.
    let mut sig = Signature::new(CallConv::SystemV);
    for _ in 0..4 {
        sig.params.push(AbiParam::new(types::I64));
    }
    let mut func = ir::Function::with_name_signature(UserFuncName::user(1, 0), sig);
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let p = b.block_params(block).to_vec();
        let (callee_vmctx, caller_vmctx, code, values) = (p[0], p[1], p[2], p[3]);
        let mut args = vec![callee_vmctx, caller_vmctx];
        for (i, t) in params.iter().enumerate() {
            args.push(b.ins().load(*t, flags, values, i as i32 * VAL_RAW_SIZE));
        }
        // The caller's vmctx leads to the store context (the store's host
        // vmctx when the host calls).
        let store_ctx = consume_fuel.then(|| b.ins().load(types::I64, flags, caller_vmctx, vmctx::VMCTX_STORE_CTX_OFFSET as i32));
        if let Some(ctx) = store_ctx {
            let fuel = b.ins().load(types::I64, flags, ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
            b.ins().set_pinned_reg(fuel);
        }
        let sig_ref = b.import_signature(wasm_sig.clone());
        let call = b.ins().call_indirect(sig_ref, code, &args);
        let rets = b.inst_results(call).to_vec();
        if let Some(ctx) = store_ctx {
            let fuel = b.ins().get_pinned_reg(types::I64);
            b.ins().store(flags, fuel, ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
        }
        for (i, r) in rets.iter().enumerate() {
            b.ins().store(flags, *r, values, i as i32 * VAL_RAW_SIZE);
        }
        b.ins().return_(&[]);
        b.finalize(isa.frontend_config());
    }
    ctx.func = func;
    let host_to_wasm = compile_single(isa, &mut ctx)?;

    // Wasm to host.
    let mut func = ir::Function::with_name_signature(UserFuncName::user(1, 1), wasm_sig);
    {
        let mut b = FunctionBuilder::new(&mut func, &mut fctx);
        let slots = params.len().max(results.len()).max(1) as u32;
        let slot = b.create_sized_stack_slot(ir::StackSlotData::new(ir::StackSlotKind::ExplicitSlot, slots * VAL_RAW_SIZE as u32, 4));
        let block = b.create_block();
        b.append_block_params_for_function_params(block);
        b.switch_to_block(block);
        b.seal_block(block);
        let p = b.block_params(block).to_vec();
        let (callee_vmctx, caller_vmctx) = (p[0], p[1]);
        let values = b.ins().stack_addr(types::I64, slot, 0);
        for (i, v) in p[2..].iter().enumerate() {
            b.ins().store(flags, *v, values, i as i32 * VAL_RAW_SIZE);
        }
        let fp = b.ins().get_frame_pointer(types::I64);
        let callback = b.ins().load(types::I64, flags, callee_vmctx, 0);
        let mut csig = Signature::new(CallConv::SystemV);
        for _ in 0..4 {
            csig.params.push(AbiParam::new(types::I64));
        }
        let csig = b.import_signature(csig);
        let store_ctx = consume_fuel.then(|| b.ins().load(types::I64, flags, caller_vmctx, vmctx::VMCTX_STORE_CTX_OFFSET as i32));
        if let Some(ctx) = store_ctx {
            let fuel = b.ins().get_pinned_reg(types::I64);
            b.ins().store(flags, fuel, ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
        }
        b.ins().call_indirect(csig, callback, &[callee_vmctx, caller_vmctx, values, fp]);
        if let Some(ctx) = store_ctx {
            let fuel = b.ins().load(types::I64, flags, ctx, vmctx::STORE_CTX_FUEL_OFFSET as i32);
            b.ins().set_pinned_reg(fuel);
        }
        let mut rets = Vec::new();
        for (i, t) in results.iter().enumerate() {
            rets.push(b.ins().load(*t, flags, values, i as i32 * VAL_RAW_SIZE));
        }
        b.ins().return_(&rets);
        b.finalize(isa.frontend_config());
    }
    ctx.func = func;
    let wasm_to_host = compile_single(isa, &mut ctx)?;

    let mut image = host_to_wasm.clone();
    while image.len() % 16 != 0 {
        image.push(0xcc);
    }
    let second = image.len() as u32;
    image.extend_from_slice(&wasm_to_host);
    let infos = vec![
        FunctionInfo { start: 0, len: host_to_wasm.len() as u32, func_index: None, traps: vec![], srclocs: vec![], handlers: vec![] },
        FunctionInfo { start: second, len: wasm_to_host.len() as u32, func_index: None, traps: vec![], srclocs: vec![], handlers: vec![] },
    ];
    let code = CodeMemory::new(&image, infos, Symbols::default(), |_| {})?;
    let base = code.base();
    // SAFETY: `second` is inside the code object.
    let wasm_to_host = unsafe { base.add(second as usize) };
    Ok(Trampolines { _code: code, host_to_wasm: base, wasm_to_host })
}

fn compile_single(isa: &OwnedTargetIsa, ctx: &mut Context) -> anyhow::Result<Vec<u8>> {
    let compiled = ctx.compile(&**isa, &mut ControlPlane::default()).map_err(|e| anyhow::anyhow!("trampoline compilation failed: {:?}", e.inner))?;
    if !compiled.buffer.relocs().is_empty() {
        anyhow::bail!("trampoline has relocations");
    }
    let code = compiled.buffer.data().to_vec();
    ctx.clear();
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_prologue_stack_limit_load_is_found_through_any_base_register() {
        let offset = crate::vmctx::INTERRUPT_PAGE_STACK_LIMIT_OFFSET as i32 - crate::vmctx::VMCTX_PROBE_PAGE_SIZE as i32;
        let d = offset.to_le_bytes();
        let setup = [0x55, 0x48, 0x89, 0xe5];
        // mov r10, [rdi + d]; [rsi + d] (a function with a hidden return
        // area); [r12 + d] (SIB); [r9 + d] (REX.B).
        for load in [
            vec![0x4c, 0x8b, 0x97, d[0], d[1], d[2], d[3]],
            vec![0x4c, 0x8b, 0x96, d[0], d[1], d[2], d[3]],
            vec![0x4d, 0x8b, 0x94, 0x24, d[0], d[1], d[2], d[3]],
            vec![0x4d, 0x8b, 0x91, d[0], d[1], d[2], d[3]],
        ] {
            let code = [&setup[..], &load, &[0xc3]].concat();
            assert_eq!(prologue_interruption_point(&code), Some(4), "{load:x?}");
        }
        // Not the load: another displacement, another destination (r11), a
        // 32-bit load, a SIB with an index, no frame set-up before it, cut off.
        let other = (offset + 8).to_le_bytes();
        for code in [
            vec![0x55, 0x48, 0x89, 0xe5, 0x4c, 0x8b, 0x97, other[0], other[1], other[2], other[3]],
            vec![0x55, 0x48, 0x89, 0xe5, 0x4c, 0x8b, 0x9f, d[0], d[1], d[2], d[3]],
            vec![0x55, 0x48, 0x89, 0xe5, 0x44, 0x8b, 0x97, d[0], d[1], d[2], d[3]],
            vec![0x55, 0x48, 0x89, 0xe5, 0x4d, 0x8b, 0x94, 0x04, d[0], d[1], d[2], d[3]],
            vec![0x90, 0x48, 0x89, 0xe5, 0x4c, 0x8b, 0x97, d[0], d[1], d[2], d[3]],
            vec![0x55, 0x48, 0x89, 0xe5, 0x4c, 0x8b, 0x97, d[0], d[1], d[2]],
        ] {
            assert_eq!(prologue_interruption_point(&code), None, "{code:x?}");
        }
    }

    #[test]
    fn segment_probes_are_rewritten_in_place_and_nothing_else_is() {
        let d = (translate::SEGMENT_PROBE_DISPLACEMENT + 0x38).to_le_bytes();
        // movw $0, 0x40000038(%rsp), twice, between a nop and a ret.
        let probe = [0x66, 0xc7, 0x84, 0x24, d[0], d[1], d[2], d[3], 0, 0];
        let mut code = [&[0x90][..], &probe, &probe, &[0xc3]].concat();
        assert!(patch_segment_probe(&mut code, 1));
        assert!(patch_segment_probe(&mut code, 11));
        // cmp qword ptr gs:[0], 0
        let gs_probe = [0x65, 0x48, 0x83, 0x3c, 0x25, 0, 0, 0, 0, 0];
        assert_eq!(&code[1..11], &gs_probe);
        assert_eq!(&code[11..21], &gs_probe);
        assert_eq!((code[0], code[21]), (0x90, 0xc3));

        // Not probes: a small displacement, a base other than rsp, an index
        // register, a store of another value, a 32-bit store, and a probe
        // cut off by the end of the code.
        let small = 0x38i32.to_le_bytes();
        for bytes in [
            vec![0x66, 0xc7, 0x84, 0x24, small[0], small[1], small[2], small[3], 0, 0],
            vec![0x66, 0xc7, 0x83, d[0], d[1], d[2], d[3], 0, 0, 0],
            vec![0x66, 0xc7, 0x84, 0x04, d[0], d[1], d[2], d[3], 0, 0],
            vec![0x66, 0xc7, 0x84, 0x24, d[0], d[1], d[2], d[3], 1, 0],
            vec![0xc7, 0x84, 0x24, d[0], d[1], d[2], d[3], 0, 0, 0, 0],
            vec![0x66, 0xc7, 0x84, 0x24, d[0], d[1], d[2], d[3], 0],
        ] {
            let mut patched = bytes.clone();
            assert!(!patch_segment_probe(&mut patched, 0), "{bytes:x?}");
            assert_eq!(patched, bytes);
        }
    }

    #[test]
    fn segment_probes_are_found_after_their_sequence_points() {
        let d = (translate::SEGMENT_PROBE_DISPLACEMENT + 0x38).to_le_bytes();
        let probe = [0x66, 0xc7, 0x84, 0x24, d[0], d[1], d[2], d[3], 0, 0];
        // mov %rax, 0x30(%rsp): a spill the register allocator put between
        // the second point and its probe.
        let spill = [0x48, 0x89, 0x44, 0x24, 0x30];
        let mut code = [&probe[..], &spill, &probe, &[0xc3]].concat();
        assert_eq!(patch_segment_probes(&mut code, &[0, 10]), Ok(vec![0, 15]));
        assert_eq!(code[0], 0x65);
        assert_eq!(code[15], 0x65);
        // A point with no probe before the next point is an error.
        let mut code = [&spill[..], &probe, &[0xc3]].concat();
        assert_eq!(patch_segment_probes(&mut code.clone(), &[0, 5]), Err(0));
        assert_eq!(patch_segment_probes(&mut code, &[0]), Ok(vec![5]));
    }
}

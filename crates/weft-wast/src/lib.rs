//! Runs WebAssembly spec test scripts (`.wast`) against Weft.
//!
//! [`WastRunner::run_file`] executes every directive of a script and returns a
//! [`WastReport`] with one line per failing directive (`file:line:col: why`);
//! it never stops at the first failure, and a panic inside one directive is
//! caught and reported as that directive's failure.

mod legacy;

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use wast::core::{AbstractHeapType, HeapType, NanPattern, WastArgCore, WastRetCore};
use wast::parser::{self, ParseBuffer};
use wast::{QuoteWat, Wast, WastArg, WastDirective, WastExecute, WastInvoke, WastRet, Wat};
use weft::{Engine, ExternRef, Func, Instance, Linker, Module, Store, Trap, Val};

/// The outcome of running one script.
#[derive(Debug, Default)]
pub struct WastReport {
    pub passed: usize,
    pub failed: usize,
    /// One line per failing directive: `file:line:col: message`.
    pub failures: Vec<String>,
}

/// Runs scripts; each script gets a fresh store and linker.
pub struct WastRunner {
    engine: Engine,
}

struct Context {
    store: Store<()>,
    linker: Linker<()>,
    current: Option<Instance>,
    instances: HashMap<String, Instance>,
    definitions: HashMap<String, Module>,
    last_definition: Option<Module>,
}

impl WastRunner {
    pub fn new(engine: &Engine) -> Self {
        WastRunner { engine: engine.clone() }
    }

    /// Runs the script at `path`.
    ///
    /// # Errors
    /// Fails only if the file cannot be read or parsed as a script; failing
    /// directives are reported in the [`WastReport`].
    pub fn run_file(&self, path: &Path) -> anyhow::Result<WastReport> {
        let text = std::fs::read_to_string(path).with_context(|| format!("failed to read {}", path.display()))?;
        self.run_script(&path.display().to_string(), &text)
    }

    /// Runs a script given as text; `name` is used in failure messages.
    pub fn run_script(&self, name: &str, text: &str) -> anyhow::Result<WastReport> {
        let unfolded = legacy::unfold(text);
        let text = unfolded.as_deref().unwrap_or(text);
        let mut lexer = wast::lexer::Lexer::new(text);
        // The spec's names.wast deliberately uses bidirectional-override characters.
        lexer.allow_confusing_unicode(true);
        let buf = ParseBuffer::new_with_lexer(lexer).map_err(|mut e| {
            e.set_text(text);
            anyhow!("{name}: {e}")
        })?;
        let wast = parser::parse::<Wast>(&buf).map_err(|mut e| {
            e.set_text(text);
            anyhow!("{name}: {e}")
        })?;
        let mut ctx = Context::new(&self.engine)?;
        let mut report = WastReport::default();
        for directive in wast.directives {
            let span = directive.span();
            let (line, col) = span.linecol_in(text);
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| ctx.run_directive(directive)));
            let result = match result {
                Ok(r) => r,
                Err(p) => {
                    let msg = p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
                    Err(anyhow!("panicked: {msg}"))
                }
            };
            match result {
                Ok(()) => report.passed += 1,
                Err(e) => {
                    report.failed += 1;
                    report.failures.push(format!("{name}:{}:{}: {e:#}", line + 1, col + 1));
                }
            }
        }
        Ok(report)
    }
}

impl Context {
    fn new(engine: &Engine) -> anyhow::Result<Self> {
        let mut store = Store::new(engine, ());
        // With fuel on, scripts run with more than they can use (an engine
        // without fuel refuses, which is fine).
        let _ = store.set_fuel(u64::MAX);
        let mut linker = Linker::new(engine);
        linker.func_wrap("spectest", "print", || {})?;
        linker.func_wrap("spectest", "print_i32", |_: i32| {})?;
        linker.func_wrap("spectest", "print_i64", |_: i64| {})?;
        linker.func_wrap("spectest", "print_f32", |_: f32| {})?;
        linker.func_wrap("spectest", "print_f64", |_: f64| {})?;
        linker.func_wrap("spectest", "print_i32_f32", |_: i32, _: f32| {})?;
        linker.func_wrap("spectest", "print_f64_f64", |_: f64, _: f64| {})?;
        use weft::{GlobalType, MemoryType, Mutability, RefType, TableType, ValType};
        let g = |store: &mut Store<()>, ty, v| weft::Global::new(store, GlobalType::new(ty, Mutability::Const), v);
        let gi32 = g(&mut store, ValType::I32, Val::I32(666))?;
        let gi64 = g(&mut store, ValType::I64, Val::I64(666))?;
        let gf32 = g(&mut store, ValType::F32, Val::F32(666.6f32.to_bits()))?;
        let gf64 = g(&mut store, ValType::F64, Val::F64(666.6f64.to_bits()))?;
        linker.define(&store, "spectest", "global_i32", gi32)?;
        linker.define(&store, "spectest", "global_i64", gi64)?;
        linker.define(&store, "spectest", "global_f32", gf32)?;
        linker.define(&store, "spectest", "global_f64", gf64)?;
        let table = weft::Table::new(&mut store, TableType::new(RefType::FUNCREF, 10, Some(20)), weft::Ref::Func(None))?;
        linker.define(&store, "spectest", "table", table)?;
        let table64 =
            weft::Table::new(&mut store, TableType { element: RefType::FUNCREF, minimum: 10, maximum: Some(20), table64: true }, weft::Ref::Func(None))?;
        linker.define(&store, "spectest", "table64", table64)?;
        let memory = weft::Memory::new(&mut store, MemoryType::new(1, Some(2)))?;
        linker.define(&store, "spectest", "memory", memory)?;
        linker.allow_shadowing(true);
        Ok(Context { store, linker, current: None, instances: HashMap::new(), definitions: HashMap::new(), last_definition: None })
    }

    fn compile(&self, module: &mut QuoteWat<'_>) -> anyhow::Result<Module> {
        let bytes = module.encode()?;
        Module::new(self.store.engine(), bytes)
    }

    fn instantiate(&mut self, module: &Module) -> anyhow::Result<Instance> {
        self.linker.instantiate(&mut self.store, module)
    }

    fn instance(&self, id: Option<wast::token::Id<'_>>) -> anyhow::Result<Instance> {
        match id {
            Some(id) => self.instances.get(id.name()).copied().ok_or_else(|| anyhow!("unknown module `{}`", id.name())),
            None => self.current.ok_or_else(|| anyhow!("no current module")),
        }
    }

    fn run_directive(&mut self, directive: WastDirective<'_>) -> anyhow::Result<()> {
        match directive {
            WastDirective::Module(mut module) => {
                let name = module.name().map(|n| n.name().to_string());
                let m = self.compile(&mut module)?;
                let inst = self.instantiate(&m)?;
                self.current = Some(inst);
                if let Some(name) = name {
                    self.instances.insert(name, inst);
                }
            }
            WastDirective::ModuleDefinition(mut module) => {
                let name = module.name().map(|n| n.name().to_string());
                let m = self.compile(&mut module)?;
                if let Some(name) = name {
                    self.definitions.insert(name, m.clone());
                }
                self.last_definition = Some(m);
            }
            WastDirective::ModuleInstance { instance, module, .. } => {
                let m = match module {
                    Some(id) => self.definitions.get(id.name()).cloned().ok_or_else(|| anyhow!("unknown definition"))?,
                    None => self.last_definition.clone().ok_or_else(|| anyhow!("no module definition"))?,
                };
                let inst = self.instantiate(&m)?;
                self.current = Some(inst);
                if let Some(id) = instance {
                    self.instances.insert(id.name().to_string(), inst);
                }
            }
            WastDirective::Register { name, module, .. } => {
                let inst = self.instance(module)?;
                self.linker.instance(&mut self.store, name, inst)?;
            }
            WastDirective::Invoke(invoke) => {
                self.invoke(&invoke)?;
            }
            WastDirective::AssertReturn { exec, results, .. } => {
                let got = self.execute(exec)?;
                self.check_results(&got, &results)?;
            }
            WastDirective::AssertTrap { exec, message, .. } => match self.execute(exec) {
                Ok(vals) => bail!("expected trap `{message}`, got {vals:?}"),
                Err(e) => check_trap(&e, message)?,
            },
            WastDirective::AssertExhaustion { call, message, .. } => match self.invoke(&call) {
                Ok(vals) => bail!("expected exhaustion `{message}`, got {vals:?}"),
                Err(e) => check_trap(&e, message)?,
            },
            WastDirective::AssertMalformed { mut module, message, .. } => {
                if let Ok(bytes) = module.encode() {
                    if Module::new(self.store.engine(), &bytes).is_ok() {
                        bail!("expected a malformed module (`{message}`), but it compiled");
                    }
                }
            }
            WastDirective::AssertInvalid { mut module, message, .. } => {
                let bytes = module.encode().map_err(|e| anyhow!("failed to encode module: {e}"))?;
                if Module::new(self.store.engine(), &bytes).is_ok() {
                    bail!("expected an invalid module (`{message}`), but it compiled");
                }
            }
            WastDirective::AssertUnlinkable { mut module, message, .. } => {
                let bytes = module.encode()?;
                let m = Module::new(self.store.engine(), &bytes)?;
                match self.instantiate(&m) {
                    Ok(_) => bail!("expected an unlinkable module (`{message}`), but it instantiated"),
                    Err(e) if e.downcast_ref::<Trap>().is_some() => bail!("expected a link error (`{message}`), got a trap: {e}"),
                    Err(_) => {}
                }
            }
            // Custom-section checks: Weft does not interpret custom sections,
            // so only well-formedness of the rest of the module is checked.
            WastDirective::AssertMalformedCustom { mut module, .. } | WastDirective::AssertInvalidCustom { mut module, .. } => {
                let _ = module.encode();
            }
            WastDirective::AssertException { exec, .. } => match self.execute(exec) {
                Ok(vals) => bail!("expected an exception, got {vals:?}"),
                Err(e) if e.is::<weft::ThrownException>() => {
                    self.store.take_pending_exception().ok_or_else(|| anyhow!("an exception was thrown but none is pending"))?;
                }
                Err(e) => bail!("expected an exception, got error: {e:#}"),
            },
            // A suspension no handler takes reaches the host as a trap.
            WastDirective::AssertSuspension { exec, message, .. } => match self.execute(exec) {
                Ok(vals) => bail!("expected a suspension `{message}`, got {vals:?}"),
                Err(e) if e.downcast_ref::<Trap>() == Some(&Trap::UnhandledTag) => {}
                Err(e) => bail!("expected a suspension `{message}`, got error: {e:#}"),
            },
            WastDirective::Thread(_) | WastDirective::Wait { .. } => bail!("threads are not supported"),
        }
        Ok(())
    }

    fn execute(&mut self, exec: WastExecute<'_>) -> anyhow::Result<Vec<Val>> {
        match exec {
            WastExecute::Invoke(invoke) => self.invoke(&invoke),
            WastExecute::Wat(mut wat) => {
                let bytes = match &mut wat {
                    Wat::Module(m) => m.encode()?,
                    Wat::Component(_) => bail!("components are not supported"),
                };
                let m = Module::new(self.store.engine(), &bytes)?;
                self.instantiate(&m)?;
                Ok(Vec::new())
            }
            WastExecute::Get { module, global, .. } => {
                let inst = self.instance(module)?;
                let g = inst.get_global(&mut self.store, global).ok_or_else(|| anyhow!("no global `{global}`"))?;
                Ok(vec![g.get(&mut self.store)])
            }
        }
    }

    fn invoke(&mut self, invoke: &WastInvoke<'_>) -> anyhow::Result<Vec<Val>> {
        let inst = self.instance(invoke.module)?;
        let func: Func = inst.get_func(&mut self.store, invoke.name).ok_or_else(|| anyhow!("no function `{}`", invoke.name))?;
        let mut args = Vec::new();
        for a in &invoke.args {
            args.push(self.arg(a)?);
        }
        let ty = func.ty(&self.store);
        let mut results = vec![Val::I32(0); ty.results().len()];
        func.call(&mut self.store, &args, &mut results)?;
        Ok(results)
    }

    fn arg(&mut self, arg: &WastArg<'_>) -> anyhow::Result<Val> {
        let WastArg::Core(arg) = arg else { bail!("component values are not supported") };
        Ok(match arg {
            WastArgCore::I32(v) => Val::I32(*v),
            WastArgCore::I64(v) => Val::I64(*v),
            WastArgCore::F32(v) => Val::F32(v.bits),
            WastArgCore::F64(v) => Val::F64(v.bits),
            WastArgCore::RefNull(ht) => {
                if is_func_heap(ht) {
                    Val::FuncRef(None)
                } else if is_exn_heap(ht) {
                    Val::ExnRef(None)
                } else if is_cont_heap(ht) {
                    Val::ContRef(None)
                } else {
                    Val::ExternRef(None)
                }
            }
            WastArgCore::RefExtern(n) => Val::ExternRef(Some(ExternRef::new(&mut self.store, *n).unwrap())),
            WastArgCore::V128(v) => Val::V128(u128::from_le_bytes(v.to_le_bytes()).into()),
            other => bail!("unsupported argument {other:?}"),
        })
    }

    fn check_results(&self, got: &[Val], expected: &[WastRet<'_>]) -> anyhow::Result<()> {
        if got.len() != expected.len() {
            bail!("expected {} results, got {}", expected.len(), got.len());
        }
        for (i, (g, e)) in got.iter().zip(expected).enumerate() {
            let WastRet::Core(e) = e else { bail!("component results are not supported") };
            if !self.matches(g, e)? {
                bail!("result {i}: expected {e:?}, got {g:?}");
            }
        }
        Ok(())
    }

    fn matches(&self, got: &Val, expected: &WastRetCore<'_>) -> anyhow::Result<bool> {
        Ok(match (got, expected) {
            (Val::I32(g), WastRetCore::I32(e)) => g == e,
            (Val::I64(g), WastRetCore::I64(e)) => g == e,
            (Val::F32(g), WastRetCore::F32(e)) => f32_matches(*g, e),
            (Val::F64(g), WastRetCore::F64(e)) => f64_matches(*g, e),
            (Val::V128(g), WastRetCore::V128(e)) => v128_matches(g.as_u128(), e),
            (Val::FuncRef(f), WastRetCore::RefNull(_)) => f.is_none(),
            (Val::ExternRef(r), WastRetCore::RefNull(_)) => r.is_none(),
            (Val::ExnRef(r), WastRetCore::RefNull(_)) => r.is_none(),
            (Val::ContRef(r), WastRetCore::RefNull(_)) => r.is_none(),
            (Val::FuncRef(f), WastRetCore::RefFunc(_)) => f.is_some(),
            (Val::ExternRef(r), WastRetCore::RefExtern(e)) => match (r, e) {
                (Some(r), Some(n)) => r.data(&self.store).ok().flatten().and_then(|d| d.downcast_ref::<u32>()) == Some(n),
                (Some(_), None) => true,
                (None, _) => false,
            },
            (_, WastRetCore::Either(options)) => {
                for o in options {
                    if self.matches(got, o)? {
                        return Ok(true);
                    }
                }
                false
            }
            _ => false,
        })
    }
}

fn f32_matches(got: u32, expected: &NanPattern<wast::token::F32>) -> bool {
    match expected {
        NanPattern::CanonicalNan => got & 0x7fff_ffff == 0x7fc0_0000,
        NanPattern::ArithmeticNan => got & 0x7f80_0000 == 0x7f80_0000 && got & 0x0040_0000 != 0,
        NanPattern::Value(v) => got == v.bits,
    }
}

fn f64_matches(got: u64, expected: &NanPattern<wast::token::F64>) -> bool {
    match expected {
        NanPattern::CanonicalNan => got & 0x7fff_ffff_ffff_ffff == 0x7ff8_0000_0000_0000,
        NanPattern::ArithmeticNan => got & 0x7ff0_0000_0000_0000 == 0x7ff0_0000_0000_0000 && got & 0x0008_0000_0000_0000 != 0,
        NanPattern::Value(v) => got == v.bits,
    }
}

/// A `v128` result against its pattern, lane by lane (float lanes may be NaN
/// patterns).
fn v128_matches(got: u128, expected: &wast::core::V128Pattern) -> bool {
    use wast::core::V128Pattern as P;
    let bytes = got.to_le_bytes();
    let lane = |i: usize, n: usize| bytes[i * n..(i + 1) * n].iter().rev().fold(0u64, |acc, b| acc << 8 | *b as u64);
    match expected {
        P::I8x16(v) => v.iter().enumerate().all(|(i, e)| lane(i, 1) as u8 == *e as u8),
        P::I16x8(v) => v.iter().enumerate().all(|(i, e)| lane(i, 2) as u16 == *e as u16),
        P::I32x4(v) => v.iter().enumerate().all(|(i, e)| lane(i, 4) as u32 == *e as u32),
        P::I64x2(v) => v.iter().enumerate().all(|(i, e)| lane(i, 8) == *e as u64),
        P::F32x4(v) => v.iter().enumerate().all(|(i, e)| f32_matches(lane(i, 4) as u32, e)),
        P::F64x2(v) => v.iter().enumerate().all(|(i, e)| f64_matches(lane(i, 8), e)),
    }
}

fn is_func_heap(ht: &HeapType<'_>) -> bool {
    match ht {
        HeapType::Abstract { ty, .. } => matches!(ty, AbstractHeapType::Func | AbstractHeapType::NoFunc),
        _ => true,
    }
}

fn is_cont_heap(ht: &HeapType<'_>) -> bool {
    matches!(ht, HeapType::Abstract { ty: AbstractHeapType::Cont | AbstractHeapType::NoCont, .. })
}

fn is_exn_heap(ht: &HeapType<'_>) -> bool {
    matches!(ht, HeapType::Abstract { ty: AbstractHeapType::Exn | AbstractHeapType::NoExn, .. })
}

/// Checks that `error` is a trap of the kind the spec's `message` names.
fn check_trap(error: &anyhow::Error, message: &str) -> anyhow::Result<()> {
    let Some(trap) = error.downcast_ref::<Trap>() else {
        bail!("expected trap `{message}`, got error: {error:#}");
    };
    let expected: &[Trap] = match message {
        m if m.starts_with("unreachable") => &[Trap::UnreachableCodeReached],
        m if m.starts_with("out of bounds memory access") => &[Trap::MemoryOutOfBounds],
        m if m.starts_with("out of bounds table access") || m.starts_with("undefined element") => &[Trap::TableOutOfBounds],
        m if m.starts_with("uninitialized element") => &[Trap::IndirectCallToNull],
        m if m.starts_with("indirect call type mismatch") => &[Trap::BadSignature],
        m if m.starts_with("null") => &[Trap::NullReference],
        m if m.starts_with("integer overflow") => &[Trap::IntegerOverflow],
        m if m.starts_with("integer divide by zero") => &[Trap::IntegerDivisionByZero],
        m if m.starts_with("invalid conversion to integer") => &[Trap::BadConversionToInteger],
        m if m.starts_with("call stack exhausted") => &[Trap::StackOverflow],
        m if m.starts_with("continuation already consumed") => &[Trap::ContinuationAlreadyConsumed],
        m if m.starts_with("unhandled") => &[Trap::UnhandledTag],
        _ => return Ok(()),
    };
    if !expected.contains(trap) {
        bail!("expected trap `{message}`, got `{}`", trap.message());
    }
    Ok(())
}

//! Sightglass's engine interface for Weft.
//!
//! [Sightglass](https://github.com/bytecodealliance/sightglass) measures a
//! WebAssembly engine through a shared library with five C functions; this
//! crate builds that library (`libweft_bench_api.so`) for Weft, with the same
//! configuration struct and callback conventions as wasmtime's `bench-api`, so
//! that the sightglass runner measures both engines the same way:
//!
//! ```text
//! sightglass-cli benchmark --engine target/release/libweft_bench_api.so -- benchmark.wasm
//! ```
//!
//! The calls follow this state machine, all on one thread:
//!
//! ```text
//! wasm_bench_create ─► wasm_bench_compile ─► wasm_bench_instantiate ─► wasm_bench_execute
//!        ▲                                          ▲                          │
//!        └──────── wasm_bench_free ◄────────────────┴──────────────────────────┘
//! ```
//!
//! - `wasm_bench_compile` calls the compilation timer around `Module::new`;
//! - `wasm_bench_instantiate` builds the WASI context (stdout/stderr files
//!   created, stdin opened, the working directory preopened as `.`), then
//!   calls the instantiation timer around `Store::new` plus instantiation;
//! - `wasm_bench_execute` runs `_start`; the guest's `bench.start` and
//!   `bench.end` imports call the execution timer.
//!
//! Functions returning [`ExitCode`] return [`OK`] (0) on success and [`ERR`]
//! (-1) on failure, after printing the error to stderr.
//!
//! # Engine flags
//!
//! `execution_flags` (may be null) is a whitespace-separated list in the shape
//! of `weft run`'s options:
//! - `-W interrupt=none|epoch|mmu|mmu-pointer`: how compiled code checks for
//!   interruption (never fired here; this measures the checks' cost);
//! - `-W pooling=y|n` (or `--pooling`): the pooling instance allocator;
//! - `-W memory-images=y|n`: copy-on-write memory images (default on);
//! - `-O opt-level=none|speed`: Cranelift's optimisation level.

use std::ffi::c_void;
use std::fs::File;
use std::os::raw::c_int;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};

/// The status the `wasm_bench_*` functions return.
pub type ExitCode = c_int;
/// Success.
pub const OK: ExitCode = 0;
/// Failure (the error was printed to stderr).
pub const ERR: ExitCode = -1;

/// A timer or performance counter the benchmark runner owns: `start(timer)`
/// and `end(timer)` bracket one measured phase.
pub type TimerFn = extern "C" fn(*mut u8);

/// Configuration passed to [`wasm_bench_create`], laid out as in wasmtime's
/// `bench-api` (sightglass passes the same struct to every engine).
#[repr(C)]
pub struct WasmBenchConfig {
    /// Directory the guest sees as `.` (UTF-8, not NUL-terminated).
    pub working_dir_ptr: *const u8,
    pub working_dir_len: usize,
    /// File created for the guest's stdout.
    pub stdout_path_ptr: *const u8,
    pub stdout_path_len: usize,
    /// File created for the guest's stderr.
    pub stderr_path_ptr: *const u8,
    pub stderr_path_len: usize,
    /// File opened as the guest's stdin; null for an empty stdin.
    pub stdin_path_ptr: *const u8,
    pub stdin_path_len: usize,
    /// Brackets compilation.
    pub compilation_timer: *mut u8,
    pub compilation_start: TimerFn,
    pub compilation_end: TimerFn,
    /// Brackets instantiation.
    pub instantiation_timer: *mut u8,
    pub instantiation_start: TimerFn,
    pub instantiation_end: TimerFn,
    /// Brackets the guest's `bench.start` .. `bench.end` span.
    pub execution_timer: *mut u8,
    pub execution_start: TimerFn,
    pub execution_end: TimerFn,
    /// Engine flags (see the crate documentation); null for the defaults.
    pub execution_flags_ptr: *const u8,
    pub execution_flags_len: usize,
}

/// One phase's timer as the runner passed it.
#[derive(Clone, Copy)]
struct Timer {
    context: *mut u8,
    start: TimerFn,
    end: TimerFn,
}

impl Timer {
    fn start(&self) {
        (self.start)(self.context)
    }
    fn end(&self) {
        (self.end)(self.context)
    }
}

/// Reads a (pointer, length) string of the config; `None` for a null pointer.
///
/// # Safety
/// A non-null `ptr` must point to `len` readable bytes.
unsafe fn config_str(ptr: *const u8, len: usize, what: &str) -> Result<Option<String>> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: the caller guarantees `len` readable bytes at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) };
    let s = std::str::from_utf8(bytes).with_context(|| format!("the {what} is not valid UTF-8"))?;
    Ok(Some(s.to_owned()))
}

/// Builds a Weft configuration from `execution_flags`.
pub fn parse_engine_flags(flags: &str) -> Result<weft::Config> {
    let mut config = weft::Config::new();
    let mut tokens = flags.split_whitespace();
    while let Some(token) = tokens.next() {
        let option = match token {
            "--pooling" => "pooling=y".to_owned(),
            "-W" | "-O" => tokens.next().ok_or_else(|| anyhow!("`{token}` needs a value"))?.to_owned(),
            t if t.starts_with("-W") || t.starts_with("-O") => t[2..].to_owned(),
            t => bail!("unknown engine flag `{t}`"),
        };
        let (key, value) = option.split_once('=').ok_or_else(|| anyhow!("engine option `{option}` needs `=value`"))?;
        let yes = || match value {
            "y" | "yes" | "true" => Ok(true),
            "n" | "no" | "false" => Ok(false),
            v => Err(anyhow!("`{key}` takes y or n, not `{v}`")),
        };
        match (key, value) {
            ("interrupt", "none") => config.interruption(weft::Interruption::None),
            ("interrupt", "epoch") => config.interruption(weft::Interruption::Epoch),
            ("interrupt", "mmu") => config.interruption(weft::Interruption::MmuPage),
            ("interrupt", "mmu-pointer") => config.interruption(weft::Interruption::MmuPointer),
            ("pooling", _) => config.allocation_strategy(if yes()? {
                weft::InstanceAllocationStrategy::Pooling(weft::PoolingConfig::default())
            } else {
                weft::InstanceAllocationStrategy::OnDemand
            }),
            ("memory-images", _) => config.memory_images(yes()?),
            ("opt-level", "none" | "0") => config.cranelift_opt_level(weft::OptLevel::None),
            ("opt-level", "speed" | "2") => config.cranelift_opt_level(weft::OptLevel::Speed),
            _ => bail!(
                "unknown engine option `{option}` (supported: interrupt=none|epoch|mmu|mmu-pointer, pooling=y|n, memory-images=y|n, opt-level=none|speed)"
            ),
        };
    }
    Ok(config)
}

/// What a benchmark's store holds.
struct HostState {
    wasi: weft_wasi::WasiCtx,
    execution: Timer,
}

/// Where the guest's standard streams go, opened afresh for each instance.
struct GuestIo {
    working_dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    stdin: Option<PathBuf>,
}

impl GuestIo {
    fn wasi(&self) -> Result<weft_wasi::WasiCtx> {
        let stdout = File::create(&self.stdout).with_context(|| format!("cannot create {}", self.stdout.display()))?;
        let stderr = File::create(&self.stderr).with_context(|| format!("cannot create {}", self.stderr.display()))?;
        let stdin = match &self.stdin {
            Some(path) => {
                let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
                weft_wasi::StdinSource::Reader(Box::new(file))
            }
            None => weft_wasi::StdinSource::Null,
        };
        let mut builder = weft_wasi::WasiCtx::builder();
        builder
            .stdin(stdin)
            .stdout(weft_wasi::OutputSink::Writer(Box::new(stdout)))
            .stderr(weft_wasi::OutputSink::Writer(Box::new(stderr)))
            .preopened_dir(&self.working_dir, ".", weft_wasi::FsPerms::ReadWrite)
            .with_context(|| format!("cannot preopen {}", self.working_dir.display()))?;
        // Lets benchmarks that have a small input use it (as wasmtime's bench-api does).
        if let Ok(value) = std::env::var("WASM_BENCH_USE_SMALL_WORKLOAD") {
            builder.env("WASM_BENCH_USE_SMALL_WORKLOAD", value);
        }
        Ok(builder.build())
    }
}

/// The engine state behind the opaque pointer sightglass holds.
struct BenchState {
    engine: weft::Engine,
    linker: weft::Linker<HostState>,
    io: GuestIo,
    compilation: Timer,
    instantiation: Timer,
    execution: Timer,
    module: Option<weft::Module>,
    instance: Option<(weft::Store<HostState>, weft::Instance)>,
}

impl BenchState {
    fn new(config: &WasmBenchConfig) -> Result<BenchState> {
        // SAFETY (all four): sightglass passes valid (pointer, length) pairs;
        // optional ones are null.
        let working_dir =
            unsafe { config_str(config.working_dir_ptr, config.working_dir_len, "working directory") }?.ok_or_else(|| anyhow!("no working directory given"))?;
        let stdout = unsafe { config_str(config.stdout_path_ptr, config.stdout_path_len, "stdout path") }?.ok_or_else(|| anyhow!("no stdout path given"))?;
        let stderr = unsafe { config_str(config.stderr_path_ptr, config.stderr_path_len, "stderr path") }?.ok_or_else(|| anyhow!("no stderr path given"))?;
        let stdin = unsafe { config_str(config.stdin_path_ptr, config.stdin_path_len, "stdin path") }?;
        let flags = unsafe { config_str(config.execution_flags_ptr, config.execution_flags_len, "engine flags") }?;

        let engine = weft::Engine::new(&parse_engine_flags(flags.as_deref().unwrap_or(""))?)?;
        let mut linker = weft::Linker::<HostState>::new(&engine);
        weft_wasi::add_to_linker(&mut linker, |s: &mut HostState| &mut s.wasi)?;
        linker.func_wrap("bench", "start", |c: weft::Caller<'_, HostState>| c.data().execution.start())?;
        linker.func_wrap("bench", "end", |c: weft::Caller<'_, HostState>| c.data().execution.end())?;
        Ok(BenchState {
            engine,
            linker,
            io: GuestIo { working_dir: working_dir.into(), stdout: stdout.into(), stderr: stderr.into(), stdin: stdin.map(PathBuf::from) },
            compilation: Timer { context: config.compilation_timer, start: config.compilation_start, end: config.compilation_end },
            instantiation: Timer { context: config.instantiation_timer, start: config.instantiation_start, end: config.instantiation_end },
            execution: Timer { context: config.execution_timer, start: config.execution_start, end: config.execution_end },
            module: None,
            instance: None,
        })
    }

    fn compile(&mut self, wasm: &[u8]) -> Result<()> {
        if self.module.is_some() {
            bail!("the module is already compiled: create a new engine to compile again");
        }
        self.compilation.start();
        let module = weft::Module::new(&self.engine, wasm);
        self.compilation.end();
        self.module = Some(module?);
        Ok(())
    }

    fn instantiate(&mut self) -> Result<()> {
        let module = self.module.as_ref().ok_or_else(|| anyhow!("compile the module before instantiating it"))?;
        // Opening files is not instantiation: build the context first.
        let state = HostState { wasi: self.io.wasi()?, execution: self.execution };
        self.instantiation.start();
        let mut store = weft::Store::new(&self.engine, state);
        if self.engine.config().interruption_mode() == weft::Interruption::Epoch {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let instance = self.linker.instantiate(&mut store, module);
        self.instantiation.end();
        self.instance = Some((store, instance?));
        Ok(())
    }

    fn execute(&mut self) -> Result<()> {
        let (mut store, instance) = self.instance.take().ok_or_else(|| anyhow!("instantiate the module before executing it"))?;
        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        match start.call(&mut store, ()) {
            Ok(()) => Ok(()),
            Err(e) => match weft_wasi::exit_code(&e) {
                Some(0) => Ok(()),
                Some(code) => Err(anyhow!("_start exited with status {code}")),
                None => Err(e.context("the benchmark trapped")),
            },
        }
    }
}

/// Prints an error the C caller cannot receive and turns the result into a status.
fn exit_code(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("weft-bench-api: {e:?}");
            ERR
        }
    }
}

/// Runs `f` on the state behind `state`, turning a null pointer into an error.
///
/// # Safety
/// `state` is null or a pointer returned by [`wasm_bench_create`] and not yet freed.
unsafe fn with_state(state: *mut c_void, f: impl FnOnce(&mut BenchState) -> Result<()>) -> ExitCode {
    // SAFETY: per the contract, a non-null `state` is a live `BenchState`
    // used by one thread at a time.
    match unsafe { (state as *mut BenchState).as_mut() } {
        Some(state) => exit_code(f(state)),
        None => exit_code(Err(anyhow!("null engine state"))),
    }
}

/// Creates an engine from `config` and stores an opaque pointer to it in
/// `*out_bench_ptr`.
///
/// # Safety
/// The strings in `config` must be valid for their lengths, the timer
/// callbacks callable with their contexts for as long as the engine lives, and
/// `out_bench_ptr` writable.
#[no_mangle]
pub unsafe extern "C" fn wasm_bench_create(config: WasmBenchConfig, out_bench_ptr: *mut *mut c_void) -> ExitCode {
    exit_code((|| {
        if out_bench_ptr.is_null() {
            bail!("null output pointer");
        }
        let state = Box::new(BenchState::new(&config)?);
        // SAFETY: checked non-null above; the caller guarantees it is writable.
        unsafe { *out_bench_ptr = Box::into_raw(state) as *mut c_void };
        Ok(())
    })())
}

/// Frees an engine created by [`wasm_bench_create`] (and any instance it holds).
///
/// # Safety
/// `state` is null or a pointer from [`wasm_bench_create`], freed only once.
#[no_mangle]
pub unsafe extern "C" fn wasm_bench_free(state: *mut c_void) {
    if !state.is_null() {
        // SAFETY: per the contract, `state` came from `Box::into_raw` in
        // `wasm_bench_create` and is freed once.
        drop(unsafe { Box::from_raw(state as *mut BenchState) });
    }
}

/// Compiles the benchmark module, bracketed by the compilation timer.
///
/// # Safety
/// `state` as for [`wasm_bench_free`]; `wasm_bytes` points to
/// `wasm_bytes_length` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn wasm_bench_compile(state: *mut c_void, wasm_bytes: *const u8, wasm_bytes_length: usize) -> ExitCode {
    if wasm_bytes.is_null() {
        return exit_code(Err(anyhow!("null module bytes")));
    }
    // SAFETY: the caller guarantees the byte range.
    let wasm = unsafe { std::slice::from_raw_parts(wasm_bytes, wasm_bytes_length) };
    // SAFETY: the caller guarantees `state`.
    unsafe { with_state(state, |s| s.compile(wasm)) }
}

/// Instantiates the compiled module, bracketed by the instantiation timer.
///
/// # Safety
/// `state` as for [`wasm_bench_free`].
#[no_mangle]
pub unsafe extern "C" fn wasm_bench_instantiate(state: *mut c_void) -> ExitCode {
    // SAFETY: the caller guarantees `state`.
    unsafe { with_state(state, BenchState::instantiate) }
}

/// Runs the instance's `_start`; the guest's `bench.start`/`bench.end` calls
/// drive the execution timer. Consumes the instance: instantiate again to
/// execute again.
///
/// # Safety
/// `state` as for [`wasm_bench_free`].
#[no_mangle]
pub unsafe extern "C" fn wasm_bench_execute(state: *mut c_void) -> ExitCode {
    // SAFETY: the caller guarantees `state`.
    unsafe { with_state(state, BenchState::execute) }
}

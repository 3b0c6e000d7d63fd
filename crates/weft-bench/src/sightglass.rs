//! Sightglass benchmarks: real programs compiled to `wasm32-wasip1` that import
//! `bench.start` and `bench.end` (both `[] -> []`) and mark the measured work
//! between the two calls.
//!
//! Each iteration, for each engine and interruption mode (interleaved: A B A B
//! ...), measures three phases separately:
//! - **compile**: `Module::new` from the bytes (no cache in either runtime);
//! - **instantiate**: `Store::new` plus `Linker::instantiate` with the WASI
//!   context already built (building it is not measured);
//! - **execute**: the span between the guest's `bench.start` and `bench.end`
//!   calls, timed with [`Instant`] in the host functions.
//!
//! The guest runs as sightglass runs it: the module's folder preopened as `.`,
//! no arguments, no environment, no stdin; stdout and stderr are captured in
//! memory and compared line by line with `<stem>.stdout.expected` (or
//! `default.stdout.expected`), the same for stderr; a stream without an
//! expected file is not checked.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::Stats;

/// How compiled code checks for interruption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupt {
    /// No checks.
    None,
    /// Epoch checks at function entries and loop headers; the deadline is set
    /// so that it never fires.
    Epoch,
    /// Weft's MMU interruption (a dead load from the interrupt page); wasmtime
    /// has no such mode.
    Mmu,
    /// Weft's MMU interruption with segment probes in functions with a loop
    /// that calls (see `weft::Config::mmu_segment_probes`).
    MmuSegment,
    /// Weft's MMU interruption with every loop probe through the vmctx (no
    /// `weft::Config::mmu_memory_probes`).
    MmuVmctx,
    /// Fuel, with more than the benchmark can use: what counting costs.
    Fuel,
}

impl Interrupt {
    /// The mode's name on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Interrupt::None => "none",
            Interrupt::Epoch => "epoch",
            Interrupt::Mmu => "mmu",
            Interrupt::MmuSegment => "mmu-segment",
            Interrupt::MmuVmctx => "mmu-vmctx",
            Interrupt::Fuel => "fuel",
        }
    }

    /// Sets Weft's `config` up for this mode (MMU: page revocation).
    pub fn configure_weft(self, config: &mut weft::Config) {
        let mode = match self {
            Interrupt::None | Interrupt::Fuel => weft::Interruption::None,
            Interrupt::Epoch => weft::Interruption::Epoch,
            Interrupt::Mmu | Interrupt::MmuSegment | Interrupt::MmuVmctx => weft::Interruption::MmuPage,
        };
        config.interruption(mode).mmu_segment_probes(self == Interrupt::MmuSegment).mmu_memory_probes(self != Interrupt::MmuVmctx);
        config.consume_fuel(self == Interrupt::Fuel);
    }

    /// Whether the mode is one of Weft's MMU modes, which wasmtime lacks.
    pub fn is_mmu(self) -> bool {
        matches!(self, Interrupt::Mmu | Interrupt::MmuSegment | Interrupt::MmuVmctx)
    }
}

impl std::str::FromStr for Interrupt {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Ok(match s {
            "none" => Interrupt::None,
            "epoch" => Interrupt::Epoch,
            "mmu" => Interrupt::Mmu,
            "mmu-segment" => Interrupt::MmuSegment,
            "mmu-vmctx" => Interrupt::MmuVmctx,
            "fuel" => Interrupt::Fuel,
            _ => anyhow::bail!("unknown interruption mode `{s}` (none, epoch, mmu, mmu-segment, mmu-vmctx, fuel)"),
        })
    }
}

/// One sightglass benchmark: the module and where its inputs and expected
/// outputs are.
#[derive(Debug, Clone)]
pub struct Benchmark {
    /// The folder name for `benchmark.wasm`, else the file stem (`shootout-fib2`).
    pub name: String,
    /// The module's bytes.
    pub wasm: Vec<u8>,
    /// The module's folder (absolute): preopened as `.` and the working directory.
    pub dir: PathBuf,
    /// Expected stdout, if there is an expected file.
    pub stdout_expected: Option<Vec<u8>>,
    /// Expected stderr, if there is an expected file.
    pub stderr_expected: Option<Vec<u8>>,
}

impl Benchmark {
    /// Reads the module at `path` and its expected outputs.
    pub fn load(path: &Path) -> anyhow::Result<Benchmark> {
        use anyhow::Context as _;
        let path = std::fs::canonicalize(path).with_context(|| format!("failed to find {}", path.display()))?;
        let wasm = std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let dir = path.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        let stem = path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
        let name = if stem == "benchmark" { dir.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or(stem.clone()) } else { stem.clone() };
        let expected = |stream: &str| -> Option<Vec<u8>> {
            std::fs::read(dir.join(format!("{stem}.{stream}.expected"))).or_else(|_| std::fs::read(dir.join(format!("default.{stream}.expected")))).ok()
        };
        Ok(Benchmark { name, stdout_expected: expected("stdout"), stderr_expected: expected("stderr"), wasm, dir })
    }
}

/// Whether `actual` matches `expected` line by line (no expected file: not checked).
pub fn output_matches(expected: Option<&[u8]>, actual: &[u8]) -> bool {
    let Some(expected) = expected else { return true };
    let lines = |b: &[u8]| -> Vec<Vec<u8>> {
        let s = String::from_utf8_lossy(b);
        s.lines().map(|l| l.trim_end_matches('\r').as_bytes().to_vec()).collect()
    };
    lines(expected) == lines(actual)
}

/// The measurements of one iteration.
#[derive(Debug, Clone)]
pub struct Sample {
    pub compile_ns: u64,
    pub instantiate_ns: u64,
    pub execute_ns: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

/// The state the guest's `bench.start`/`bench.end` write to.
#[derive(Default)]
struct Span {
    start: Option<Instant>,
    elapsed_ns: Option<u64>,
}

impl Span {
    fn start(&mut self) {
        self.start = Some(Instant::now());
    }
    fn end(&mut self) {
        let now = Instant::now();
        if let Some(s) = self.start {
            self.elapsed_ns = Some(now.duration_since(s).as_nanos() as u64);
        }
    }
    fn get(&self) -> anyhow::Result<u64> {
        self.elapsed_ns.ok_or_else(|| anyhow::anyhow!("the guest did not call bench.start and bench.end"))
    }
}

/// Something that runs one benchmark iteration with one engine and mode.
pub trait Runner {
    /// Compiles, instantiates and runs the benchmark once.
    fn iteration(&mut self, bench: &Benchmark) -> anyhow::Result<Sample>;
}

// ---------------------------------------------------------------- Weft

struct WeftState {
    wasi: weft_wasi::WasiCtx,
    span: Span,
}

/// Runs benchmarks with Weft.
pub struct WeftRunner {
    engine: weft::Engine,
    linker: weft::Linker<WeftState>,
    interrupt: Interrupt,
}

impl WeftRunner {
    /// An engine configured for `interrupt`, with WASI and the bench functions linked.
    pub fn new(interrupt: Interrupt, perf_map: bool) -> anyhow::Result<WeftRunner> {
        let mut config = weft::Config::new();
        config.perf_map(perf_map);
        interrupt.configure_weft(&mut config);
        let engine = weft::Engine::new(&config)?;
        let mut linker = weft::Linker::<WeftState>::new(&engine);
        weft_wasi::add_to_linker(&mut linker, |s: &mut WeftState| &mut s.wasi)?;
        linker.func_wrap("bench", "start", |mut c: weft::Caller<'_, WeftState>| c.data_mut().span.start())?;
        linker.func_wrap("bench", "end", |mut c: weft::Caller<'_, WeftState>| c.data_mut().span.end())?;
        Ok(WeftRunner { engine, linker, interrupt })
    }
}

impl Runner for WeftRunner {
    fn iteration(&mut self, bench: &Benchmark) -> anyhow::Result<Sample> {
        let t = Instant::now();
        let module = weft::Module::new(&self.engine, &bench.wasm)?;
        let compile_ns = t.elapsed().as_nanos() as u64;

        let (out, err) = (weft_wasi::OutputPipe::new(), weft_wasi::OutputPipe::new());
        let wasi = weft_wasi::WasiCtx::builder()
            .stdout(weft_wasi::OutputSink::Pipe(out.clone()))
            .stderr(weft_wasi::OutputSink::Pipe(err.clone()))
            .preopened_dir(&bench.dir, ".", weft_wasi::FsPerms::ReadWrite)?
            .build();
        let state = WeftState { wasi, span: Span::default() };

        let t = Instant::now();
        let mut store = weft::Store::new(&self.engine, state);
        if self.interrupt == Interrupt::Epoch {
            store.set_epoch_deadline(u64::MAX / 2);
        }
        if self.interrupt == Interrupt::Fuel {
            store.set_fuel(u64::MAX)?;
        }
        let instance = self.linker.instantiate(&mut store, &module)?;
        let instantiate_ns = t.elapsed().as_nanos() as u64;

        let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
        match start.call(&mut store, ()) {
            Ok(()) => {}
            Err(e) if weft_wasi::exit_code(&e) == Some(0) => {}
            Err(e) => return Err(e.context(format!("{} failed; stderr: {}", bench.name, tail(&err.contents())))),
        }
        let execute_ns = store.data().span.get()?;
        Ok(Sample { compile_ns, instantiate_ns, execute_ns, stdout: out.contents(), stderr: err.contents() })
    }
}

/// The last few hundred bytes of a guest's output, for error messages.
fn tail(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[b.len().saturating_sub(400)..]).to_string();
    s.trim().to_string()
}

// ---------------------------------------------------------------- wasmtime

#[cfg(feature = "wasmtime")]
struct WasmtimeState {
    wasi: wasmtime_wasi::p1::WasiP1Ctx,
    span: Span,
}

/// Runs benchmarks with wasmtime (epoch or no interruption).
#[cfg(feature = "wasmtime")]
pub struct WasmtimeRunner {
    engine: wasmtime::Engine,
    linker: wasmtime::Linker<WasmtimeState>,
    interrupt: Interrupt,
}

#[cfg(feature = "wasmtime")]
impl WasmtimeRunner {
    /// An engine configured for `interrupt` (not `Mmu`), with WASI and the bench functions linked.
    pub fn new(interrupt: Interrupt, perf_map: bool) -> anyhow::Result<WasmtimeRunner> {
        use crate::wt;
        let mut config = wasmtime::Config::new();
        if perf_map {
            config.profiler(wasmtime::ProfilingStrategy::PerfMap);
        }
        match interrupt {
            Interrupt::None => {}
            Interrupt::Epoch => {
                config.epoch_interruption(true);
            }
            Interrupt::Fuel => {
                config.consume_fuel(true);
            }
            Interrupt::Mmu | Interrupt::MmuSegment | Interrupt::MmuVmctx => anyhow::bail!("wasmtime has no MMU interruption"),
        }
        let engine = wt(wasmtime::Engine::new(&config))?;
        let mut linker = wasmtime::Linker::<WasmtimeState>::new(&engine);
        wt(wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |s: &mut WasmtimeState| &mut s.wasi))?;
        wt(linker.func_wrap("bench", "start", |mut c: wasmtime::Caller<'_, WasmtimeState>| c.data_mut().span.start()))?;
        wt(linker.func_wrap("bench", "end", |mut c: wasmtime::Caller<'_, WasmtimeState>| c.data_mut().span.end()))?;
        Ok(WasmtimeRunner { engine, linker, interrupt })
    }
}

#[cfg(feature = "wasmtime")]
impl Runner for WasmtimeRunner {
    fn iteration(&mut self, bench: &Benchmark) -> anyhow::Result<Sample> {
        use crate::wt;
        use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
        let t = Instant::now();
        let module = wt(wasmtime::Module::new(&self.engine, &bench.wasm))?;
        let compile_ns = t.elapsed().as_nanos() as u64;

        let (out, err) = (MemoryOutputPipe::new(usize::MAX), MemoryOutputPipe::new(usize::MAX));
        let mut b = wasmtime_wasi::WasiCtxBuilder::new();
        b.stdout(out.clone()).stderr(err.clone());
        wt(b.preopened_dir(&bench.dir, ".", wasmtime_wasi::FsPerms::ReadWrite))?;
        let state = WasmtimeState { wasi: b.build_p1(), span: Span::default() };

        let t = Instant::now();
        let mut store = wasmtime::Store::new(&self.engine, state);
        if self.interrupt == Interrupt::Epoch {
            store.set_epoch_deadline(u64::MAX);
        }
        if self.interrupt == Interrupt::Fuel {
            wt(store.set_fuel(u64::MAX))?;
        }
        let instance = wt(self.linker.instantiate(&mut store, &module))?;
        let instantiate_ns = t.elapsed().as_nanos() as u64;

        let start = wt(instance.get_typed_func::<(), ()>(&mut store, "_start"))?;
        if let Err(e) = start.call(&mut store, ()) {
            if e.downcast_ref::<wasmtime_wasi::I32Exit>().map(|e| e.0) != Some(0) {
                return Err(anyhow::anyhow!("wasmtime: {e:?}").context(format!("{} failed; stderr: {}", bench.name, tail(&err.contents()))));
            }
        }
        let execute_ns = store.data().span.get()?;
        Ok(Sample { compile_ns, instantiate_ns, execute_ns, stdout: out.contents().to_vec(), stderr: err.contents().to_vec() })
    }
}

// ---------------------------------------------------------------- driver

/// The measured phases, in report order.
pub const PHASES: [&str; 3] = ["compile", "instantiate", "execute"];

/// The result of one (engine, mode) on one benchmark, per phase.
#[derive(Debug, Clone)]
pub struct SightglassRow {
    pub benchmark: String,
    pub engine: &'static str,
    pub mode: Interrupt,
    /// Indexed like [`PHASES`].
    pub phases: [Stats; 3],
    /// Whether every iteration's stdout and stderr matched the expected files.
    pub output_ok: bool,
}

/// The (engine, mode) combinations to run: wasmtime has no MMU mode, so that
/// combination is left out.
pub fn combinations(engines: &[&str], modes: &[Interrupt]) -> anyhow::Result<Vec<(&'static str, Interrupt)>> {
    let mut out = Vec::new();
    for &mode in modes {
        for &engine in engines {
            let engine: &'static str = match engine {
                "weft" => "weft",
                "wasmtime" if !crate::HAS_WASMTIME => anyhow::bail!("this build has no wasmtime: rebuild with `--features wasmtime`"),
                "wasmtime" => "wasmtime",
                other => anyhow::bail!("unknown engine `{other}`"),
            };
            if engine == "wasmtime" && mode.is_mmu() {
                continue;
            }
            out.push((engine, mode));
        }
    }
    Ok(out)
}

fn runner(engine: &str, mode: Interrupt, perf_map: bool) -> anyhow::Result<Box<dyn Runner>> {
    Ok(match engine {
        "weft" => Box::new(WeftRunner::new(mode, perf_map)?),
        #[cfg(feature = "wasmtime")]
        "wasmtime" => Box::new(WasmtimeRunner::new(mode, perf_map)?),
        other => anyhow::bail!("engine `{other}` is not available in this build"),
    })
}

/// Runs `bench` `iters` times with each (engine, mode) in `combos`,
/// interleaved (iteration 1 of each, then iteration 2 of each, ...). With
/// `perf_map`, both engines list their compiled functions in
/// `/tmp/perf-<pid>.map` for `perf report`.
pub fn run(bench: &Benchmark, combos: &[(&'static str, Interrupt)], iters: usize, perf_map: bool) -> anyhow::Result<Vec<SightglassRow>> {
    let mut runners = combos.iter().map(|&(e, m)| runner(e, m, perf_map)).collect::<anyhow::Result<Vec<_>>>()?;
    let mut samples: Vec<[Vec<u64>; 3]> = vec![Default::default(); combos.len()];
    let mut ok = vec![true; combos.len()];
    for _ in 0..iters.max(1) {
        for (i, r) in runners.iter_mut().enumerate() {
            let s = r.iteration(bench).map_err(|e| e.context(format!("{} with {} ({})", bench.name, combos[i].0, combos[i].1.name())))?;
            samples[i][0].push(s.compile_ns);
            samples[i][1].push(s.instantiate_ns);
            samples[i][2].push(s.execute_ns);
            ok[i] &= output_matches(bench.stdout_expected.as_deref(), &s.stdout) && output_matches(bench.stderr_expected.as_deref(), &s.stderr);
        }
    }
    Ok(combos
        .iter()
        .zip(samples)
        .zip(ok)
        .map(|((&(engine, mode), [c, i, e]), output_ok)| SightglassRow {
            benchmark: bench.name.clone(),
            engine,
            mode,
            phases: [Stats::from(c), Stats::from(i), Stats::from(e)],
            output_ok,
        })
        .collect())
}

/// Combines the rows of the same benchmark measured in several processes
/// (each a `run` with the same combinations, so rows line up by index):
/// per phase, the median of the processes' medians and the mean of their
/// means; the extremes over all of them; output right only if it was right
/// in every process.
///
/// One process draws one placement of the code and data in memory, which
/// moves some modules by several percent and stays for the process's life
/// (richards runs 1.02x or 1.20x with MMU checks depending on the process);
/// medians across processes measure the code rather than the draw, which is
/// why sightglass itself runs several processes.
///
/// # Panics
/// If `per_process` is empty or its processes' rows do not line up.
pub fn combine_processes(per_process: &[Vec<SightglassRow>]) -> Vec<SightglassRow> {
    let first = per_process.first().expect("at least one process");
    (0..first.len())
        .map(|i| {
            let rows: Vec<&SightglassRow> = per_process.iter().map(|p| &p[i]).collect();
            for r in &rows {
                assert!(r.benchmark == first[i].benchmark && r.engine == first[i].engine && r.mode == first[i].mode, "processes' rows differ");
            }
            let phase = |p: usize| {
                let mut medians: Vec<u64> = rows.iter().map(|r| r.phases[p].median_ns).collect();
                medians.sort_unstable();
                Stats {
                    median_ns: medians[medians.len() / 2],
                    mean_ns: rows.iter().map(|r| r.phases[p].mean_ns).sum::<u64>() / rows.len() as u64,
                    min_ns: rows.iter().map(|r| r.phases[p].min_ns).min().unwrap_or(0),
                    max_ns: rows.iter().map(|r| r.phases[p].max_ns).max().unwrap_or(0),
                    iters: rows.iter().map(|r| r.phases[p].iters).sum(),
                }
            };
            SightglassRow { phases: [phase(0), phase(1), phase(2)], output_ok: rows.iter().all(|r| r.output_ok), ..first[i].clone() }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(engine: &'static str, execute_ns: [u64; 3], output_ok: bool) -> SightglassRow {
        let stats = |v: u64| Stats { median_ns: v, mean_ns: v, min_ns: v, max_ns: v, iters: 5 };
        SightglassRow {
            benchmark: "b".into(),
            engine,
            mode: Interrupt::None,
            phases: [stats(execute_ns[0]), stats(execute_ns[1]), stats(execute_ns[2])],
            output_ok,
        }
    }

    #[test]
    fn processes_combine_by_median_per_row_and_phase() {
        let per_process = vec![
            vec![row("weft", [10, 1, 100], true), row("wasmtime", [20, 2, 200], true)],
            vec![row("weft", [30, 3, 120], true), row("wasmtime", [10, 4, 180], false)],
            vec![row("weft", [20, 2, 300], true), row("wasmtime", [30, 3, 190], true)],
        ];
        let combined = combine_processes(&per_process);
        assert_eq!(combined.len(), 2);
        let weft = &combined[0];
        assert_eq!((weft.engine, weft.output_ok), ("weft", true));
        assert_eq!([weft.phases[0].median_ns, weft.phases[1].median_ns, weft.phases[2].median_ns], [20, 2, 120]);
        assert_eq!((weft.phases[2].min_ns, weft.phases[2].max_ns, weft.phases[2].mean_ns, weft.phases[2].iters), (100, 300, 173, 15));
        let wasmtime = &combined[1];
        assert_eq!((wasmtime.engine, wasmtime.output_ok), ("wasmtime", false));
        assert_eq!(wasmtime.phases[2].median_ns, 190);
    }
}

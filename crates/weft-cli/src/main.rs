//! The `weft` command-line tool: run modules (WASI commands, or one export
//! with `--invoke`) and spec test scripts. `weft module.wasm ARGS...` is
//! shorthand for `weft run module.wasm ARGS...`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use weft::{Engine, Instance, Linker, Module, Store, Val, ValType};
use weft_wasi::WasiCtx;

#[derive(Parser)]
#[command(name = "weft", version, about = "A WebAssembly runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs a WebAssembly module.
    Run {
        /// Call this export instead of the module's start: arguments are parsed
        /// by the export's parameter types and results are printed.
        #[arg(long)]
        invoke: Option<String>,
        /// Preopen the host directory HOST for the guest, as GUEST if given
        /// (`--dir HOST::GUEST`), else under the same name. Repeatable.
        #[arg(long = "dir", value_name = "HOST[::GUEST]")]
        dirs: Vec<String>,
        /// Set NAME=VALUE in the guest's environment, or pass the host's NAME
        /// through (`--env NAME`). Repeatable.
        #[arg(long = "env", value_name = "NAME[=VALUE]")]
        envs: Vec<String>,
        /// Give the guest this much fuel (every Wasm operator costs about
        /// one unit): it traps when the fuel runs out.
        #[arg(long, value_name = "N")]
        fuel: Option<u64>,
        /// Stop the guest with a trap after this long (e.g. `500ms`, `10s`, `2m`).
        #[arg(long, value_name = "DURATION")]
        timeout: Option<String>,
        /// Wasm options: `-W interrupt=epoch|mmu|none` chooses how guests are
        /// interrupted (default: epoch when --timeout is given, else none);
        /// `-W NAME=y|n` turns a proposal on or off (`simd`, `tail-call`,
        /// `multi-memory`, `memory64`, `exceptions`, `stack-switching`, ...);
        /// `-W max-memory-size=BYTES` and `-W max-table-elements=N` limit
        /// every memory and table of the guest (growth past them fails).
        #[arg(short = 'W', value_name = "OPT=VALUE")]
        wasm_opts: Vec<String>,
        /// The module (.wasm or .wat).
        module: PathBuf,
        /// Arguments for the program (or for the invoked function).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs WebAssembly spec test scripts.
    Wast {
        /// The .wast files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Benchmarks modules, side by side with other engines.
    ///
    /// By default runs sightglass benchmarks (WASI commands importing
    /// `bench.start`/`bench.end`): compile, instantiate and execute (the span
    /// between the two bench calls) are reported separately, and the guest's
    /// stdout/stderr are checked against the `*.expected` files beside it.
    /// With `--instantiate`, measures instantiate+drop alone.
    Bench {
        /// Time instantiate+drop cycles of each module instead of running it.
        #[arg(long)]
        instantiate: bool,
        /// With --instantiate: use the pooling allocator.
        #[arg(long)]
        pooling: bool,
        /// Both engines list their compiled functions in `/tmp/perf-<pid>.map`,
        /// so that `perf record -g weft bench ...` then `perf report` name them.
        #[arg(long)]
        perf_map: bool,
        /// With --instantiate --pooling: dropped memories cleaned together, in
        /// batches of this many (both engines' `decommit_batch_size`).
        #[arg(long, default_value_t = 1)]
        decommit_batch: usize,
        /// With --instantiate: each tenant writes a byte of its exported
        /// memory before it is dropped, so its slot needs restoring (without
        /// it the tenants never run).
        #[arg(long)]
        write_memory: bool,
        /// With --instantiate --pooling: Weft restores up to this many bytes of
        /// written pages by rewriting them instead of an madvise
        /// (`PoolingConfig::rewrite_written_pages`; wasmtime has no counterpart).
        #[arg(long, default_value_t = 0)]
        rewrite_written_pages: u64,
        /// With --instantiate: threads instantiating concurrently.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Iterations (per thread with --instantiate); default 10, or 1000 with --instantiate.
        #[arg(long)]
        iters: Option<usize>,
        /// Sightglass mode: run each benchmark in this many processes, one
        /// after another, each making `--iters` iterations, and report per
        /// phase the median of the processes' medians (as sightglass's
        /// `--processes` does). One process draws one placement of code and
        /// data in memory, which moves some modules by several percent.
        #[arg(long, default_value_t = 1)]
        processes: usize,
        /// Interruption checks compiled in, comma-separated: none, epoch, mmu,
        /// mmu-segment (MMU with `Config::mmu_segment_probes`), mmu-vmctx (MMU
        /// without `Config::mmu_memory_probes`).
        /// Several run interleaved; wasmtime has no mmu mode (skipped). With
        /// --instantiate, one mode (wasmtime uses epochs for mmu).
        #[arg(long, default_value = "none", value_delimiter = ',')]
        interrupt: Vec<String>,
        /// Engines to compare, comma-separated: weft, wasmtime (needs the
        /// `wasmtime` build feature).
        #[arg(long, default_value = "weft", value_delimiter = ',')]
        engine: Vec<String>,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        /// The modules.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse_from(with_run_shorthand(std::env::args_os().collect()));
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Turns `weft module.wasm ARGS...` into `weft run module.wasm ARGS...`, and
/// makes everything after the module the guest's (`run [OPTIONS] MODULE --
/// ARGS...`), so options after the module are never taken as weft's.
fn with_run_shorthand(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    let Some(first) = args.get(1).and_then(|a| a.to_str()).map(str::to_owned) else {
        return args;
    };
    if matches!(first.as_str(), "wast" | "bench" | "help") || (first.starts_with('-') && first != "run") {
        return args;
    }
    if first != "run" {
        args.insert(1, "run".into());
    }
    let mut i = 2;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a == "--" {
            break;
        }
        if matches!(a.as_ref(), "--invoke" | "--dir" | "--env" | "--timeout" | "--fuel" | "-W") {
            i += 2;
            continue;
        }
        if a.starts_with('-') {
            i += 1;
            continue;
        }
        // `a` is the module.
        if args.get(i + 1).is_some_and(|n| n != "--") {
            args.insert(i + 1, "--".into());
        }
        break;
    }
    args
}

/// Builds the WASI context of `weft run`: the program's arguments, the
/// requested environment and preopens, and the inherited stdio.
fn wasi_ctx(module: &std::path::Path, args: &[String], dirs: &[String], envs: &[String]) -> anyhow::Result<WasiCtx> {
    let mut b = WasiCtx::builder();
    b.inherit_stdio().arg(module.to_string_lossy()).args(args);
    for e in envs {
        match e.split_once('=') {
            Some((k, v)) => {
                b.env(k, v);
            }
            None => {
                if let Ok(v) = std::env::var(e) {
                    b.env(e, v);
                }
            }
        }
    }
    for d in dirs {
        let (host, guest) = d.split_once("::").unwrap_or((d, d));
        b.preopened_dir(host, guest, weft_wasi::FsPerms::ReadWrite).with_context(|| format!("failed to open directory `{host}`"))?;
    }
    Ok(b.build())
}

/// What a store of `weft run` holds: the guest's WASI state and its limits.
struct RunState {
    wasi: WasiCtx,
    limits: weft::StoreLimits,
}

/// A size in bytes or elements: digits, with an optional `K`, `M` or `G`
/// suffix (powers of 1024).
fn parse_size(s: &str) -> anyhow::Result<usize> {
    let (digits, shift) = match s.as_bytes().last() {
        Some(b'k' | b'K') => (&s[..s.len() - 1], 10),
        Some(b'm' | b'M') => (&s[..s.len() - 1], 20),
        Some(b'g' | b'G') => (&s[..s.len() - 1], 30),
        _ => (s, 0),
    };
    let n: usize = digits.replace('_', "").parse().map_err(|_| anyhow!("`{s}` is not a size (digits, with an optional K, M or G)"))?;
    n.checked_mul(1 << shift).ok_or_else(|| anyhow!("`{s}` is too large"))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let engine = Engine::default();
    match cli.command {
        Command::Run { invoke, dirs, envs, fuel, timeout, wasm_opts, module, args } => {
            let timeout = timeout.as_deref().map(parse_duration).transpose()?;
            let mut interrupt = if timeout.is_some() { weft::Interruption::Epoch } else { weft::Interruption::None };
            let mut config = weft::Config::new();
            let mut limits = weft::StoreLimitsBuilder::new();
            for opt in &wasm_opts {
                match opt.split_once('=') {
                    Some(("max-memory-size", v)) => limits = limits.memory_size(parse_size(v)?),
                    Some(("max-table-elements", v)) => limits = limits.table_elements(parse_size(v)?),
                    Some(("interrupt", "epoch")) => interrupt = weft::Interruption::Epoch,
                    Some(("interrupt", "mmu")) => interrupt = weft::Interruption::MmuPage,
                    Some(("interrupt", "none")) => interrupt = weft::Interruption::None,
                    Some((name, value)) if weft::Proposal::from_name(name).is_some() => {
                        let enable = match value {
                            "y" | "yes" | "true" => true,
                            "n" | "no" | "false" => false,
                            _ => bail!("-W {name}= takes y or n, not `{value}`"),
                        };
                        let proposal = weft::Proposal::from_name(name).expect("checked above");
                        config.wasm_proposal(proposal, enable);
                        if !enable {
                            // What builds on it goes too (`-W simd=n` turns off relaxed SIMD).
                            for dependent in weft::Proposal::ALL.iter().filter(|p| p.requires().contains(&proposal)) {
                                config.wasm_proposal(*dependent, false);
                            }
                        }
                    }
                    _ => {
                        let proposals: Vec<&str> = weft::Proposal::ALL.iter().map(|p| p.name()).collect();
                        bail!(
                            "unknown -W option `{opt}` (supported: interrupt=epoch|mmu|none, max-memory-size=BYTES, max-table-elements=N, and NAME=y|n for the proposals {})",
                            proposals.join(", ")
                        )
                    }
                }
            }
            if timeout.is_some() && interrupt == weft::Interruption::None {
                bail!("--timeout needs an interruption mode: -W interrupt=epoch or mmu");
            }
            config.interruption(interrupt);
            config.consume_fuel(fuel.is_some());
            let engine = Engine::new(&config)?;
            let bytes = std::fs::read(&module).with_context(|| format!("failed to read {}", module.display()))?;
            let ctx = wasi_ctx(&module, if invoke.is_some() { &[] } else { &args }, &dirs, &envs)?;
            let module = Module::new(&engine, &bytes)?;
            let mut store = Store::new(&engine, RunState { wasi: ctx, limits: limits.build() });
            store.limiter(|s| &mut s.limits);
            if let Some(fuel) = fuel {
                store.set_fuel(fuel)?;
            }
            if let Some(limit) = timeout {
                arm_timeout(&engine, &mut store, limit)?;
            }
            let mut linker = Linker::new(&engine);
            weft_wasi::add_to_linker(&mut linker, |s: &mut RunState| &mut s.wasi)?;
            let instance: Instance = match linker.instantiate(&mut store, &module) {
                Ok(i) => i,
                Err(e) => return guest_failure(e, &mut store, None),
            };
            let Some(name) = invoke else {
                let start = instance.get_func(&mut store, "_start").or_else(|| instance.get_func(&mut store, "_initialize"));
                let Some(start) = start else {
                    return Ok(ExitCode::SUCCESS);
                };
                return match start.typed::<(), ()>(&store)?.call(&mut store, ()) {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(e) => guest_failure(e, &mut store, Some(&instance)),
                };
            };
            let func = instance.get_func(&mut store, &name).ok_or_else(|| anyhow!("no exported function `{name}`"))?;
            let ty = func.ty(&store);
            if args.len() != ty.params().len() {
                bail!("`{name}` takes {} arguments, {} given", ty.params().len(), args.len());
            }
            let params = ty.params().iter().zip(&args).map(|(t, a)| parse_arg(t, a)).collect::<anyhow::Result<Vec<_>>>()?;
            let mut results = vec![Val::I32(0); ty.results().len()];
            if let Err(e) = func.call(&mut store, &params, &mut results) {
                return guest_failure(e, &mut store, Some(&instance));
            }
            for r in results {
                println!("{}", format_val(&r));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Wast { files } => {
            let runner = weft_wast::WastRunner::new(&engine);
            let (mut passed, mut failed) = (0, 0);
            for file in &files {
                let report = runner.run_file(file)?;
                for f in &report.failures {
                    println!("{f}");
                }
                passed += report.passed;
                failed += report.failed;
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Bench {
            instantiate,
            pooling,
            decommit_batch,
            write_memory,
            rewrite_written_pages,
            threads,
            iters,
            processes,
            interrupt,
            engine: engines,
            json,
            perf_map,
            files,
        } => {
            let engines: Vec<&str> = engines.iter().map(String::as_str).collect();
            if instantiate {
                let interrupt = match interrupt.as_slice() {
                    [] => weft_bench::sightglass::Interrupt::None,
                    [one] => one.parse()?,
                    _ => bail!("--instantiate measures one --interrupt mode at a time"),
                };
                let opts = weft_bench::InstantiateOptions {
                    pooled: pooling,
                    decommit_batch,
                    threads,
                    iters: iters.unwrap_or(1000),
                    interrupt,
                    write_memory,
                    rewrite_written_pages,
                };
                bench_instantiate(&engines, opts, json, &files)
            } else {
                let modes = interrupt.iter().map(|m| m.parse()).collect::<anyhow::Result<Vec<weft_bench::sightglass::Interrupt>>>()?;
                let runs = SightglassRuns { iters: iters.unwrap_or(10), processes: processes.max(1), perf_map };
                bench_sightglass(&engines, &modes, runs, json, &files)
            }
        }
    }
}

/// Geometric mean.
fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|r| r.ln()).sum::<f64>() / v.len() as f64).exp()
}

/// `weft bench --instantiate`.
fn bench_instantiate(engines: &[&str], opts: weft_bench::InstantiateOptions, json: bool, files: &[PathBuf]) -> anyhow::Result<ExitCode> {
    let (mut ratios, mut mean_ratios) = (Vec::new(), Vec::new());
    if !json {
        println!("{:<28} {:<9} {:<9} {:>7} {:>12} {:>12} {:>12} {:>12}", "benchmark", "engine", "mode", "threads", "median_ns", "mean_ns", "min_ns", "max_ns");
    }
    for file in files {
        let bytes = std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
        let name = bench_name(file);
        let rows = match weft_bench::compare_instantiate(&name, &bytes, engines, opts) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{name}: skipped: {e:#}");
                continue;
            }
        };
        for r in &rows {
            if json {
                println!(
                    "{{\"benchmark\":\"{}\",\"engine\":\"{}\",\"phase\":\"instantiate\",\"mode\":\"{}\",\"threads\":{},\"median_ns\":{},\"mean_ns\":{},\"min_ns\":{},\"max_ns\":{},\"iters\":{}}}",
                    r.benchmark, r.engine, r.mode, r.threads, r.stats.median_ns, r.stats.mean_ns, r.stats.min_ns, r.stats.max_ns, r.stats.iters
                );
            } else {
                println!(
                    "{:<28} {:<9} {:<9} {:>7} {:>12} {:>12} {:>12} {:>12}",
                    r.benchmark, r.engine, r.mode, r.threads, r.stats.median_ns, r.stats.mean_ns, r.stats.min_ns, r.stats.max_ns
                );
            }
        }
        if let (Some(w), Some(t)) = (rows.iter().find(|r| r.engine == "weft"), rows.iter().find(|r| r.engine == "wasmtime")) {
            let ratio = w.stats.median_ns as f64 / t.stats.median_ns as f64;
            let mean_ratio = w.stats.mean_ns as f64 / t.stats.mean_ns as f64;
            ratios.push(ratio);
            mean_ratios.push(mean_ratio);
            if !json {
                println!("{:<28} weft/wasmtime = {ratio:.3}x (means: {mean_ratio:.3}x)", name);
            }
        }
    }
    if !ratios.is_empty() && !json {
        println!("geomean weft/wasmtime = {:.3}x over {} modules (of means: {:.3}x)", geomean(&ratios), ratios.len(), geomean(&mean_ratios));
    }
    Ok(ExitCode::SUCCESS)
}

/// The benchmark's name: the folder for `benchmark.wasm`, else the file stem.
fn bench_name(file: &std::path::Path) -> String {
    let stem = file.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
    if stem != "benchmark" {
        return stem;
    }
    file.canonicalize()
        .ok()
        .and_then(|p| p.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()))
        .unwrap_or_else(|| file.display().to_string())
}

/// Spans shorter than this (e.g. `noop`, or `shootout-nestedloop`, whose loop
/// the compiler folded away, both ~50 ns) measure the timer, not the engine:
/// their ratios are printed but left out of the geomeans.
const MIN_MEASURABLE_NS: u64 = 10_000;

/// Measures `bench` (loaded from `file`) in a child process (this program
/// again, `weft bench --json` on the one module) and reads its rows back, in
/// `combos` order.
fn run_in_child(
    file: &std::path::Path,
    bench: &weft_bench::sightglass::Benchmark,
    combos: &[(&'static str, weft_bench::sightglass::Interrupt)],
    runs: &SightglassRuns,
) -> anyhow::Result<Vec<weft_bench::sightglass::SightglassRow>> {
    use weft_bench::sightglass::{SightglassRow, PHASES};
    let mut engines: Vec<&str> = Vec::new();
    let mut modes: Vec<&str> = Vec::new();
    for (engine, mode) in combos {
        if !engines.contains(engine) {
            engines.push(engine);
        }
        if !modes.contains(&mode.name()) {
            modes.push(mode.name());
        }
    }
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.args(["bench", "--json", "--iters", &runs.iters.to_string(), "--engine", &engines.join(","), "--interrupt", &modes.join(",")]);
    if runs.perf_map {
        cmd.arg("--perf-map");
    }
    let out = cmd.arg(file).stderr(std::process::Stdio::inherit()).output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    // One JSON object per line, written by this program: each field is
    // found by its key.
    let field = |line: &str, key: &str| -> Option<String> {
        let rest = &line[line.find(&format!("\"{key}\":"))? + key.len() + 3..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim_matches('"').to_string())
    };
    let number = |line: &str, key: &str| -> anyhow::Result<u64> { Ok(field(line, key).with_context(|| format!("no {key} in {line}"))?.parse()?) };
    combos
        .iter()
        .map(|&(engine, mode)| {
            let mut phases = [weft_bench::Stats::default(); 3];
            let mut output_ok = true;
            for (p, phase) in PHASES.iter().enumerate() {
                let line = stdout
                    .lines()
                    .find(|l| {
                        field(l, "engine").as_deref() == Some(engine)
                            && field(l, "mode").as_deref() == Some(mode.name())
                            && field(l, "phase").as_deref() == Some(phase)
                    })
                    .with_context(|| format!("the child process measured no {phase} of {} with {engine} ({}): {}", bench.name, mode.name(), out.status))?;
                phases[p] = weft_bench::Stats {
                    median_ns: number(line, "median_ns")?,
                    mean_ns: number(line, "mean_ns")?,
                    min_ns: number(line, "min_ns")?,
                    max_ns: number(line, "max_ns")?,
                    iters: number(line, "iters")? as usize,
                };
                output_ok &= field(line, "output_ok").as_deref() == Some("true");
            }
            Ok(SightglassRow { benchmark: bench.name.clone(), engine, mode, phases, output_ok })
        })
        .collect()
}

/// Whether a ratio of these two medians says something about the engines.
fn measurable(a_ns: u64, b_ns: u64) -> bool {
    a_ns.min(b_ns) >= MIN_MEASURABLE_NS
}

/// How `weft bench` measures each sightglass benchmark.
struct SightglassRuns {
    /// Iterations per process.
    iters: usize,
    /// Processes per benchmark: 1 measures in this process; more run this
    /// program again per process and combine the results.
    processes: usize,
    perf_map: bool,
}

/// `weft bench` on sightglass benchmarks: every (engine, mode) interleaved per
/// iteration (in this process, or in each of several child processes whose
/// medians are combined), then per benchmark the weft/wasmtime ratio of each
/// phase and the interruption overhead of each engine, and at the end their
/// geomeans.
fn bench_sightglass(
    engines: &[&str],
    modes: &[weft_bench::sightglass::Interrupt],
    runs: SightglassRuns,
    json: bool,
    files: &[PathBuf],
) -> anyhow::Result<ExitCode> {
    use std::collections::BTreeMap;
    use weft_bench::sightglass::{self, Benchmark, Interrupt, PHASES};
    let combos = sightglass::combinations(engines, modes)?;
    // Canonical paths first: each benchmark runs with its folder as working directory.
    let files = files.iter().map(|f| f.canonicalize().with_context(|| format!("failed to find {}", f.display()))).collect::<anyhow::Result<Vec<_>>>()?;
    // (phase, mode) -> weft/wasmtime ratios; (engine, mode, phase) -> mode/none ratios.
    let mut ratios: BTreeMap<(usize, &str), Vec<f64>> = BTreeMap::new();
    let mut overheads: BTreeMap<(&str, &str, usize), Vec<f64>> = BTreeMap::new();
    let (mut skipped, mut mismatched, mut ran) = (Vec::new(), Vec::new(), 0);
    if !json {
        println!(
            "{:<24} {:<9} {:<6} {:<12} {:>14} {:>14} {:>14} {:>5} {:<6}",
            "benchmark", "engine", "mode", "phase", "median_ns", "min_ns", "max_ns", "iters", "output"
        );
    }
    for file in &files {
        let bench = match Benchmark::load(file) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("{}: skipped: {e:#}", file.display());
                skipped.push(bench_name(file));
                continue;
            }
        };
        std::env::set_current_dir(&bench.dir).with_context(|| format!("failed to enter {}", bench.dir.display()))?;
        let rows = if runs.processes == 1 {
            sightglass::run(&bench, &combos, runs.iters, runs.perf_map)
        } else {
            (0..runs.processes)
                .map(|_| run_in_child(file, &bench, &combos, &runs))
                .collect::<anyhow::Result<Vec<_>>>()
                .map(|p| sightglass::combine_processes(&p))
        };
        let rows = match rows {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{}: skipped: {e:#}", bench.name);
                skipped.push(bench.name.clone());
                continue;
            }
        };
        ran += 1;
        for r in &rows {
            if !r.output_ok {
                mismatched.push(format!("{} ({}, {})", r.benchmark, r.engine, r.mode.name()));
            }
            for (p, phase) in PHASES.iter().enumerate() {
                let s = r.phases[p];
                if json {
                    println!(
                        "{{\"benchmark\":\"{}\",\"engine\":\"{}\",\"phase\":\"{}\",\"mode\":\"{}\",\"median_ns\":{},\"mean_ns\":{},\"min_ns\":{},\"max_ns\":{},\"iters\":{},\"output_ok\":{}}}",
                        r.benchmark, r.engine, phase, r.mode.name(), s.median_ns, s.mean_ns, s.min_ns, s.max_ns, s.iters, r.output_ok
                    );
                } else {
                    let ok = if r.output_ok { "ok" } else { "WRONG" };
                    println!(
                        "{:<24} {:<9} {:<6} {:<12} {:>14} {:>14} {:>14} {:>5} {:<6}",
                        r.benchmark,
                        r.engine,
                        r.mode.name(),
                        phase,
                        s.median_ns,
                        s.min_ns,
                        s.max_ns,
                        s.iters,
                        ok
                    );
                }
            }
        }
        // Ratios only between runs whose output was right.
        let find = |e: &str, m: Interrupt| rows.iter().find(|r| r.engine == e && r.mode == m && r.output_ok);
        for &mode in modes {
            if let (Some(w), Some(t)) = (find("weft", mode), find("wasmtime", mode)) {
                let rs: Vec<f64> = (0..3).map(|p| w.phases[p].median_ns as f64 / t.phases[p].median_ns.max(1) as f64).collect();
                for (p, r) in rs.iter().enumerate() {
                    if measurable(w.phases[p].median_ns, t.phases[p].median_ns) {
                        ratios.entry((p, mode.name())).or_default().push(*r);
                    }
                }
                if !json {
                    let note =
                        if measurable(w.phases[2].median_ns, t.phases[2].median_ns) { "" } else { "  (execute below timer resolution: not in the geomean)" };
                    println!(
                        "{:<24} weft/wasmtime ({}): compile {:.3}x  instantiate {:.3}x  execute {:.3}x{note}",
                        bench.name,
                        mode.name(),
                        rs[0],
                        rs[1],
                        rs[2]
                    );
                }
            }
        }
        for engine in ["weft", "wasmtime"] {
            let Some(base) = find(engine, Interrupt::None) else { continue };
            for &mode in modes.iter().filter(|m| **m != Interrupt::None) {
                if let Some(r) = find(engine, mode) {
                    for p in 0..3 {
                        if measurable(r.phases[p].median_ns, base.phases[p].median_ns) {
                            overheads.entry((engine, mode.name(), p)).or_default().push(r.phases[p].median_ns as f64 / base.phases[p].median_ns.max(1) as f64);
                        }
                    }
                    if !json {
                        let note =
                            if measurable(r.phases[2].median_ns, base.phases[2].median_ns) { "" } else { "  (below timer resolution: not in the geomean)" };
                        println!(
                            "{:<24} {engine} {}/none execute = {:.3}x{note}",
                            bench.name,
                            mode.name(),
                            r.phases[2].median_ns as f64 / base.phases[2].median_ns.max(1) as f64
                        );
                    }
                }
            }
        }
    }
    if json {
        return Ok(if mismatched.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    println!();
    if runs.processes == 1 {
        println!("{ran} benchmarks run, {} iterations each", runs.iters);
    } else {
        println!("{ran} benchmarks run, {} processes of {} iterations each", runs.processes, runs.iters);
    }
    for ((p, mode), v) in &ratios {
        println!("geomean weft/wasmtime {:<11} ({mode}) = {:.3}x over {} benchmarks", PHASES[*p], geomean(v), v.len());
    }
    for ((engine, mode, p), v) in &overheads {
        if *p == 2 {
            println!("geomean {engine} {mode}/none execute = {:.3}x over {} benchmarks", geomean(v), v.len());
        }
    }
    if !skipped.is_empty() {
        println!("skipped: {}", skipped.join(", "));
    }
    if !mismatched.is_empty() {
        println!("wrong output: {}", mismatched.join(", "));
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The exit status for an error from the guest: its `proc_exit` code, or
/// (for a trap, an uncaught exception, or a host function's error while the
/// guest ran) the message and Wasm backtrace on stderr and status 134 (what
/// a host abort gives, as other runtimes do).
fn guest_failure<T>(e: anyhow::Error, store: &mut Store<T>, instance: Option<&Instance>) -> anyhow::Result<ExitCode> {
    if let Some(code) = weft_wasi::exit_code(&e) {
        return Ok(ExitCode::from(code as u8));
    }
    if e.is::<weft::ThrownException>() {
        let backtrace = e.downcast_ref::<weft::WasmBacktrace>().map(|b| b.to_string()).unwrap_or_default();
        let what = match store.take_pending_exception() {
            Some(exn) => describe_exception(store, instance, &exn)?,
            None => "an exception".to_string(),
        };
        eprintln!("error: uncaught Wasm exception: {what}\n{backtrace}");
        return Ok(ExitCode::from(134));
    }
    let backtrace = e.downcast_ref::<weft::WasmBacktrace>();
    let trap = e.downcast_ref::<weft::Trap>();
    if trap.is_none() && backtrace.is_none() {
        return Err(e);
    }
    let backtrace = backtrace.map(|b| b.to_string()).unwrap_or_default();
    // The backtraces are context layers of the error (an inner call's too,
    // when a host function passed its error on): the message is the rest.
    let header = weft::WasmBacktrace::default().to_string();
    let message = e.chain().map(|c| c.to_string()).filter(|m| !m.starts_with(&header)).collect::<Vec<_>>().join(": ");
    if trap == Some(&weft::Trap::Interrupt) {
        // Timed out, like timeout(1).
        eprintln!("error: the guest exceeded its time limit and was stopped\n{message}\n{backtrace}");
        return Ok(ExitCode::from(124));
    }
    eprintln!("error: {message}\n{backtrace}");
    Ok(ExitCode::from(134))
}

/// Parses `500ms`, `10s`, `2m` or a plain number of seconds.
fn parse_duration(s: &str) -> anyhow::Result<std::time::Duration> {
    let (num, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let value: f64 = num.parse().map_err(|_| anyhow!("invalid duration `{s}`"))?;
    let secs = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => bail!("invalid duration unit in `{s}` (use ms, s or m)"),
    };
    Ok(std::time::Duration::from_secs_f64(secs))
}

/// Interrupts the store's guest after `limit` (the default hook traps).
fn arm_timeout<T>(engine: &Engine, store: &mut Store<T>, limit: std::time::Duration) -> anyhow::Result<()> {
    match engine.config().interruption_mode() {
        weft::Interruption::Epoch => {
            store.set_epoch_deadline(1);
            let engine = engine.clone();
            std::thread::spawn(move || {
                std::thread::sleep(limit);
                engine.increment_epoch();
            });
        }
        _ => {
            let handle = store.interrupt_handle()?;
            std::thread::spawn(move || {
                std::thread::sleep(limit);
                handle.interrupt();
            });
        }
    }
    Ok(())
}

fn parse_arg(ty: &ValType, s: &str) -> anyhow::Result<Val> {
    let bad = || anyhow!("cannot parse `{s}` as {ty}");
    Ok(match ty {
        ValType::I32 => Val::I32(s.parse::<i32>().or_else(|_| s.parse::<u32>().map(|v| v as i32)).map_err(|_| bad())?),
        ValType::I64 => Val::I64(s.parse::<i64>().or_else(|_| s.parse::<u64>().map(|v| v as i64)).map_err(|_| bad())?),
        ValType::F32 => Val::F32(s.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(s.parse::<f64>().map_err(|_| bad())?.to_bits()),
        // A v128 as one 128-bit integer, lane 0 in the low bits (as printed).
        ValType::V128 => {
            let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
            let v = match digits {
                Some(hex) => u128::from_str_radix(&hex.replace('_', ""), 16),
                None => s.parse::<u128>(),
            };
            Val::V128(v.map_err(|_| bad())?.into())
        }
        _ => bail!("parameters of type {ty} cannot be given on the command line"),
    })
}

/// An exception's tag (by its export name when the instance exports it)
/// and payload, for an error message.
fn describe_exception<T>(store: &mut Store<T>, instance: Option<&Instance>, exn: &weft::ExnRef) -> anyhow::Result<String> {
    let tag = exn.tag(&*store)?;
    let exports: Vec<(String, weft::Extern)> = match instance {
        Some(i) => i.exports(&mut *store),
        None => Vec::new(),
    };
    let name = exports.iter().find_map(|(n, e)| matches!(e, weft::Extern::Tag(t) if *t == tag).then(|| format!("tag `{n}`")));
    let ty = tag.ty(&*store);
    let name = name.unwrap_or_else(|| format!("a tag of type {}", ty.ty()));
    let payload: Vec<String> = exn.fields(&*store)?.map(|v| format_val(&v)).collect();
    Ok(format!("{name}, payload ({})", payload.join(", ")))
}

fn format_val(v: &Val) -> String {
    match v {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(v) => format!("{:#034x}", v.as_u128()),
        Val::FuncRef(f) => {
            if f.is_some() {
                "funcref".into()
            } else {
                "null".into()
            }
        }
        Val::ExternRef(r) => {
            if r.is_some() {
                "externref".into()
            } else {
                "null".into()
            }
        }
        Val::ExnRef(r) => {
            if r.is_some() {
                "exnref".into()
            } else {
                "null".into()
            }
        }
        Val::ContRef(r) => {
            if r.is_some() {
                "contref".into()
            } else {
                "null".into()
            }
        }
    }
}

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
    Bench {
        /// Time N instantiate+drop cycles of each module (the phase measured today).
        #[arg(long)]
        instantiate: bool,
        /// Use the pooling allocator.
        #[arg(long)]
        pooling: bool,
        /// Threads instantiating concurrently.
        #[arg(long, default_value_t = 1)]
        threads: usize,
        /// Iterations per thread.
        #[arg(long, default_value_t = 1000)]
        iters: usize,
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
        if matches!(a.as_ref(), "--invoke" | "--dir" | "--env") {
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
    let mut b = WasiCtx::builder().inherit_stdio().arg(module.to_string_lossy()).args(args);
    for e in envs {
        match e.split_once('=') {
            Some((k, v)) => b = b.env(k, v),
            None => {
                if let Ok(v) = std::env::var(e) {
                    b = b.env(e, v);
                }
            }
        }
    }
    for d in dirs {
        let (host, guest) = d.split_once("::").unwrap_or((d, d));
        b = b.preopened_dir(host, guest).with_context(|| format!("failed to open directory `{host}`"))?;
    }
    Ok(b.build())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let engine = Engine::default();
    match cli.command {
        Command::Run { invoke, dirs, envs, module, args } => {
            let bytes = std::fs::read(&module).with_context(|| format!("failed to read {}", module.display()))?;
            let ctx = wasi_ctx(&module, if invoke.is_some() { &[] } else { &args }, &dirs, &envs)?;
            let module = Module::new(&engine, &bytes)?;
            let mut store = Store::new(&engine, ctx);
            let mut linker = Linker::new(&engine);
            weft_wasi::add_to_linker(&mut linker, |c: &mut WasiCtx| c)?;
            let instance: Instance = match linker.instantiate(&mut store, &module) {
                Ok(i) => i,
                Err(e) => return guest_failure(e),
            };
            let Some(name) = invoke else {
                let start = instance.get_func(&mut store, "_start").or_else(|| instance.get_func(&mut store, "_initialize"));
                let Some(start) = start else {
                    return Ok(ExitCode::SUCCESS);
                };
                return match start.typed::<(), ()>(&store)?.call(&mut store, ()) {
                    Ok(()) => Ok(ExitCode::SUCCESS),
                    Err(e) => guest_failure(e),
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
                return guest_failure(e);
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
        Command::Bench { instantiate, pooling, threads, iters, engine: engines, json, files } => {
            if !instantiate {
                bail!("only `--instantiate` is implemented so far");
            }
            let engines: Vec<&str> = engines.iter().map(String::as_str).collect();
            let opts = weft_bench::InstantiateOptions { pooled: pooling, threads, iters };
            let mut ratios = Vec::new();
            if !json {
                println!("{:<28} {:<9} {:<9} {:>7} {:>12} {:>12} {:>12}", "benchmark", "engine", "mode", "threads", "median_ns", "min_ns", "max_ns");
            }
            for file in &files {
                let bytes = std::fs::read(file).with_context(|| format!("failed to read {}", file.display()))?;
                let name = file.parent().and_then(|p| p.file_name()).map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| file.display().to_string());
                let rows = match weft_bench::compare_instantiate(&name, &bytes, &engines, opts) {
                    Ok(r) => r,
                    Err(e) => {
                        eprintln!("{name}: skipped: {e:#}");
                        continue;
                    }
                };
                for r in &rows {
                    if json {
                        println!(
                            "{{\"benchmark\":\"{}\",\"engine\":\"{}\",\"phase\":\"instantiate\",\"mode\":\"{}\",\"threads\":{},\"median_ns\":{},\"min_ns\":{},\"max_ns\":{},\"iters\":{}}}",
                            r.benchmark, r.engine, r.mode, r.threads, r.stats.median_ns, r.stats.min_ns, r.stats.max_ns, r.stats.iters
                        );
                    } else {
                        println!("{:<28} {:<9} {:<9} {:>7} {:>12} {:>12} {:>12}", r.benchmark, r.engine, r.mode, r.threads, r.stats.median_ns, r.stats.min_ns, r.stats.max_ns);
                    }
                }
                if let (Some(w), Some(t)) = (rows.iter().find(|r| r.engine == "weft"), rows.iter().find(|r| r.engine == "wasmtime")) {
                    let ratio = w.stats.median_ns as f64 / t.stats.median_ns as f64;
                    ratios.push(ratio);
                    if !json {
                        println!("{:<28} weft/wasmtime = {ratio:.3}x", name);
                    }
                }
            }
            if !ratios.is_empty() {
                let geomean = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
                println!("geomean weft/wasmtime = {geomean:.3}x over {} modules", ratios.len());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The exit status for an error from the guest: its `proc_exit` code, or
/// (for a trap) the trap message and Wasm backtrace on stderr and status 134
/// (what a host abort gives, as other runtimes do).
fn guest_failure(e: anyhow::Error) -> anyhow::Result<ExitCode> {
    if let Some(code) = weft_wasi::exit_code(&e) {
        return Ok(ExitCode::from(code as u8));
    }
    if e.downcast_ref::<weft::Trap>().is_some() {
        eprintln!("error: {e:#}");
        return Ok(ExitCode::from(134));
    }
    Err(e)
}

fn parse_arg(ty: &ValType, s: &str) -> anyhow::Result<Val> {
    let bad = || anyhow!("cannot parse `{s}` as {ty}");
    Ok(match ty {
        ValType::I32 => Val::I32(s.parse::<i32>().or_else(|_| s.parse::<u32>().map(|v| v as i32)).map_err(|_| bad())?),
        ValType::I64 => Val::I64(s.parse::<i64>().or_else(|_| s.parse::<u64>().map(|v| v as i64)).map_err(|_| bad())?),
        ValType::F32 => Val::F32(s.parse::<f32>().map_err(|_| bad())?.to_bits()),
        ValType::F64 => Val::F64(s.parse::<f64>().map_err(|_| bad())?.to_bits()),
        _ => bail!("parameters of type {ty} cannot be given on the command line"),
    })
}

fn format_val(v: &Val) -> String {
    match v {
        Val::I32(v) => v.to_string(),
        Val::I64(v) => v.to_string(),
        Val::F32(b) => f32::from_bits(*b).to_string(),
        Val::F64(b) => f64::from_bits(*b).to_string(),
        Val::V128(v) => format!("{v:#034x}"),
        Val::FuncRef(f) => if f.is_some() { "funcref".into() } else { "null".into() },
        Val::ExternRef(r) => if r.is_some() { "externref".into() } else { "null".into() },
    }
}

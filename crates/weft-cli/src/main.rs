//! The `weft` command-line tool: run modules and spec test scripts.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand};
use weft::{Engine, Instance, Linker, Module, Store, Val, ValType};

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
        /// The module (.wasm or .wat).
        module: PathBuf,
        /// Arguments for the invoked function.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Runs WebAssembly spec test scripts.
    Wast {
        /// The .wast files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let engine = Engine::default();
    match cli.command {
        Command::Run { invoke, module, args } => {
            let bytes = std::fs::read(&module).with_context(|| format!("failed to read {}", module.display()))?;
            let module = Module::new(&engine, &bytes)?;
            let mut store = Store::new(&engine, ());
            let linker = Linker::new(&engine);
            let instance: Instance = linker.instantiate(&mut store, &module)?;
            let Some(name) = invoke else {
                return Ok(ExitCode::SUCCESS);
            };
            let func = instance.get_func(&mut store, &name).ok_or_else(|| anyhow!("no exported function `{name}`"))?;
            let ty = func.ty(&store);
            if args.len() != ty.params().len() {
                bail!("`{name}` takes {} arguments, {} given", ty.params().len(), args.len());
            }
            let params = ty.params().iter().zip(&args).map(|(t, a)| parse_arg(t, a)).collect::<anyhow::Result<Vec<_>>>()?;
            let mut results = vec![Val::I32(0); ty.results().len()];
            func.call(&mut store, &params, &mut results)?;
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
    }
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

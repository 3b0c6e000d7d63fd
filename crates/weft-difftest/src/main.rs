//! Long differential runs: `weft-difftest [--reference wasmi|wasmtime] START..END`
//! checks every seed in the range and prints each disagreement (with the
//! seed, to reproduce it) and a summary; exits 1 if any was found.
//!
//! `cargo run --release -p weft-difftest --features wasmtime -- --reference wasmtime 0..100000`;
//! `--emit DIR` writes the range's modules to `DIR/SEED.wasm` instead.

use std::process::ExitCode;
use weft_difftest::{check_range, Reference};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let mut reference = Reference::Wasmi;
    let mut range = 0..1000u64;
    let mut threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut emit: Option<std::path::PathBuf> = None;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reference" => {
                reference = match args.next().as_deref() {
                    Some("wasmi") => Reference::Wasmi,
                    Some("wasmtime") => Reference::Wasmtime,
                    other => {
                        eprintln!("--reference takes wasmi or wasmtime, not {other:?}");
                        return ExitCode::from(2);
                    }
                }
            }
            "--emit" => emit = args.next().map(Into::into),
            "--threads" => threads = args.next().and_then(|t| t.parse().ok()).unwrap_or(threads),
            r => match r.split_once("..").and_then(|(a, b)| Some(a.parse().ok()?..b.parse().ok()?)) {
                Some(r) => range = r,
                None => {
                    eprintln!("usage: weft-difftest [--reference wasmi|wasmtime] [--threads N] [--emit DIR] START..END");
                    return ExitCode::from(2);
                }
            },
        }
    }
    if let Some(dir) = emit {
        // Writes the seeds' modules instead of running them, to reproduce a disagreement.
        for seed in range {
            match weft_difftest::generate(seed, reference) {
                Ok(wasm) => std::fs::write(dir.join(format!("{seed}.wasm")), wasm).expect("writing the module"),
                Err(e) => eprintln!("seed {seed}: {e}"),
            }
        }
        return ExitCode::SUCCESS;
    }
    let started = std::time::Instant::now();
    let summary = check_range(range.clone(), reference, threads);
    for (seed, config, what) in &summary.disagreements {
        println!("DISAGREE seed {seed} ({config}): {what}");
    }
    let (a, n, d) = (summary.agreed, summary.not_comparable, summary.disagreements.len());
    println!("{reference:?}: seeds {range:?}: {a} agreed, {d} disagreed, {n} not comparable, in {:.1?}", started.elapsed());
    if d == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

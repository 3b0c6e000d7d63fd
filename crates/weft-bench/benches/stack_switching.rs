//! Stack switching: a suspend + resume round trip, `cont.new` + running the
//! continuation to completion, a `switch` between two continuations, and a
//! generator whose values a consumer sums; each measured per operation.
//! Weft alone, or (with the `wasmtime` feature) Weft and wasmtime 48 (its
//! stack switching enabled) side by side in one run, whose ratios
//! BENCHMARKS.md records.
//!
//! `cargo bench -p weft-bench [--features wasmtime] --bench stack_switching`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const GUEST: &str = include_str!("stack_switching.wat");

/// Operations per measured element.
const OPS: i32 = 1000;

// Each benchmark body is written once for both runtimes, whose embedding APIs
// have the same shape: `$rt` is the crate, `$engine` an engine of it.
macro_rules! stack_switching {
    ($c:expr, $rt:ident, $engine:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, GUEST).unwrap();
        let mut store = $rt::Store::new(&engine, ());
        let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
        instance.get_typed_func::<(), ()>(&mut store, "setup").unwrap().call(&mut store, ()).unwrap();
        let round_trips = instance.get_typed_func::<i32, ()>(&mut store, "round_trips").unwrap();
        let new_and_run = instance.get_typed_func::<i32, ()>(&mut store, "new_and_run").unwrap();
        let switches = instance.get_typed_func::<i32, ()>(&mut store, "switches").unwrap();
        let generate = instance.get_typed_func::<i32, i32>(&mut store, "generate").unwrap();
        assert_eq!(generate.call(&mut store, 10).unwrap(), 45);
        switches.call(&mut store, 11).unwrap();
        let mut group = $c.benchmark_group("stack_switching");
        group.throughput(Throughput::Elements(OPS as u64));
        group.bench_function(concat!("suspend_resume/", stringify!($rt)), |b| b.iter(|| round_trips.call(&mut store, OPS).unwrap()));
        // A fresh store for each iteration where continuations are created:
        // wasmtime frees their stacks only with their store (it runs out of
        // memory near 32,000).
        let _ = (new_and_run, switches);
        for (name, export) in [("cont_new_run", "new_and_run"), ("switch", "switches")] {
            group.bench_function(format!("{name}/{}", stringify!($rt)), |b| {
                b.iter_batched(
                    || {
                        let mut store = $rt::Store::new(&engine, ());
                        let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
                        let f = instance.get_typed_func::<i32, ()>(&mut store, export).unwrap();
                        (store, f)
                    },
                    |(mut store, f)| {
                        f.call(&mut store, OPS).unwrap();
                        store
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        group.bench_function(concat!("generator/", stringify!($rt)), |b| b.iter(|| generate.call(&mut store, OPS).unwrap()));
        group.finish();
    }};
}

fn stack_switching(c: &mut Criterion) {
    stack_switching!(c, weft, weft::Engine::default());
    #[cfg(feature = "wasmtime")]
    {
        let mut config = wasmtime::Config::new();
        config.wasm_stack_switching(true).wasm_exceptions(true).wasm_function_references(true);
        stack_switching!(c, wasmtime, wasmtime::Engine::new(&config).unwrap());
    }
}

criterion_group!(benches, stack_switching);
criterion_main!(benches);

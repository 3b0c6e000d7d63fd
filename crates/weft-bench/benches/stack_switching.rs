//! Stack switching: a suspend + resume round trip, `cont.new` + running the
//! continuation to completion, a `switch` between two continuations, and a
//! generator whose values a consumer sums; each measured per operation.
//! Weft alone, or (with the `wasmtime` feature) Weft and wasmtime 48 (its
//! stack switching enabled) side by side in one run, whose ratios
//! BENCHMARKS.md records.
//!
//! `cargo bench -p weft-bench [--features wasmtime] --bench stack_switching`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

include!("common/stack_switching_guest.rs");

/// Operations per measured element.
const OPS: i32 = 1000;

// Each benchmark body is written once for both runtimes, whose embedding APIs
// have the same shape: `$rt` is the crate, `$engine` an engine of it.
macro_rules! stack_switching {
    ($c:expr, $rt:ident, $engine:expr) => {{
        let (engine, module, mut store, round_trips, new_and_run, switches, generate) = stack_switching_guest!($rt, $engine);
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
    stack_switching!(c, wasmtime, wasmtime_engine());
}

criterion_group!(benches, stack_switching);
criterion_main!(benches);

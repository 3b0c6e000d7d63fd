//! Micro-benchmarks: host → Wasm calls, Wasm → host calls, `memory.grow`,
//! instantiate + drop (tenants that run or not, pooled or on demand), and
//! compiling the largest non-SIMD sightglass module. Weft alone, or (with the
//! `wasmtime` feature) Weft and wasmtime 48 side by side in one run: each
//! group then holds a `.../weft` and a `.../wasmtime` line, whose ratio
//! BENCHMARKS.md records.
//!
//! `cargo bench -p weft-bench [--features wasmtime] --bench micro`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

const CALLEES: &str = r#"(module
    (func (export "nop"))
    (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#;

const CALLERS: &str = r#"(module
    (import "host" "nop" (func $nop))
    (import "host" "add" (func $add (param i32 i32) (result i32)))
    (func (export "call_nop") (param $n i32)
        (loop $l (call $nop) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
    (func (export "call_add") (param $n i32) (result i32) (local $acc i32)
        (loop $l
            (local.set $acc (call $add (local.get $acc) (local.get $n)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
        (local.get $acc)))"#;

const GROWER: &str = r#"(module (memory 1)
    (func (export "grow") (param $n i32) (result i32)
        (loop $l
            (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
        (memory.size)))"#;

const TENANT: &str = r#"(module
    (memory (export "memory") 16)
    (data (i32.const 1024) "a data segment, imaged")
    (table 100 funcref)
    (global (mut i32) (i32.const 0))
    (func (export "run") (i32.store8 (i32.const 70000) (i32.const 1))))"#;

/// Wasm → host calls per measured element.
const HOST_CALLS: i32 = 1000;
/// Pages grown per measured element.
const GROWS: i32 = 256;

fn weft_engine(pooled: bool) -> weft::Engine {
    let mut config = weft::Config::new();
    if pooled {
        let pool = weft::PoolingConfig { total_memories: 16, total_tables: 16, total_core_instances: 16, ..Default::default() };
        config.allocation_strategy(weft::InstanceAllocationStrategy::Pooling(pool));
    }
    weft::Engine::new(&config).unwrap()
}

#[cfg(feature = "wasmtime")]
fn wasmtime_engine(pooled: bool) -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    if pooled {
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_memories(16).total_tables(16).total_core_instances(16);
        config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
    }
    wasmtime::Engine::new(&config).unwrap()
}

// Each benchmark body is written once for both runtimes, whose embedding APIs
// have the same shape: `$rt` is the crate, `$engine` an engine of it.

macro_rules! host_to_wasm {
    ($group:expr, $rt:ident, $engine:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, CALLEES).unwrap();
        let mut store = $rt::Store::new(&engine, ());
        let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
        let nop = instance.get_typed_func::<(), ()>(&mut store, "nop").unwrap();
        let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
        $group.bench_function(concat!("nop/", stringify!($rt)), |b| b.iter(|| nop.call(&mut store, ()).unwrap()));
        $group.bench_function(concat!("add/", stringify!($rt)), |b| b.iter(|| add.call(&mut store, (1, 2)).unwrap()));
    }};
}

macro_rules! wasm_to_host {
    ($group:expr, $rt:ident, $engine:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, CALLERS).unwrap();
        let mut store = $rt::Store::new(&engine, ());
        let nop = $rt::Func::wrap(&mut store, || {});
        let add = $rt::Func::wrap(&mut store, |a: i32, b: i32| a.wrapping_add(b));
        let instance = $rt::Instance::new(&mut store, &module, &[nop.into(), add.into()]).unwrap();
        let call_nop = instance.get_typed_func::<i32, ()>(&mut store, "call_nop").unwrap();
        let call_add = instance.get_typed_func::<i32, i32>(&mut store, "call_add").unwrap();
        $group.bench_function(concat!("nop/", stringify!($rt)), |b| b.iter(|| call_nop.call(&mut store, HOST_CALLS).unwrap()));
        $group.bench_function(concat!("add/", stringify!($rt)), |b| b.iter(|| call_add.call(&mut store, HOST_CALLS).unwrap()));
    }};
}

/// `memory.grow` by one page `GROWS` times inside Wasm, on a fresh instance
/// each time (instantiation and drop not measured).
macro_rules! memory_grow {
    ($group:expr, $rt:ident, $engine:expr, $how:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, GROWER).unwrap();
        $group.bench_function(format!("{}/{}", $how, stringify!($rt)), |b| {
            b.iter_batched(
                || {
                    let mut store = $rt::Store::new(&engine, ());
                    let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
                    let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
                    (store, grow)
                },
                |(mut store, grow)| {
                    assert_eq!(grow.call(&mut store, GROWS).unwrap(), GROWS + 1);
                    store
                },
                // One input at a time: a batch would hold more pooled instances than there are slots.
                BatchSize::PerIteration,
            )
        });
    }};
}

/// Instantiate + drop, the tenant calling `run` (one store into its memory)
/// or not.
macro_rules! instantiate {
    ($group:expr, $rt:ident, $engine:expr, $how:expr, $runs:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, TENANT).unwrap();
        let tenant = if $runs { "running" } else { "idle" };
        $group.bench_function(format!("{}/{}/{}", $how, tenant, stringify!($rt)), |b| {
            b.iter(|| {
                let mut store = $rt::Store::new(&engine, ());
                let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
                if $runs {
                    instance.get_typed_func::<(), ()>(&mut store, "run").unwrap().call(&mut store, ()).unwrap();
                }
            })
        });
    }};
}

fn host_to_wasm(c: &mut Criterion) {
    let mut group = c.benchmark_group("host-to-wasm");
    host_to_wasm!(group, weft, weft_engine(false));
    #[cfg(feature = "wasmtime")]
    host_to_wasm!(group, wasmtime, wasmtime_engine(false));
    group.finish();
    // Weft alone, in MMU page mode: what entering Wasm costs with the stack
    // limit mirrored into the interrupt page, and with segment probes also
    // the check that the thread's GS base is the store's probe page.
    let mut group = c.benchmark_group("host-to-wasm-mmu");
    for (label, segment_probes) in [("page", false), ("page-segment-probes", true)] {
        let mut config = weft::Config::new();
        config.interruption(weft::Interruption::MmuPage).mmu_segment_probes(segment_probes);
        let engine = weft::Engine::new(&config).unwrap();
        let module = weft::Module::new(&engine, CALLEES).unwrap();
        let mut store = weft::Store::new(&engine, ());
        let instance = weft::Instance::new(&mut store, &module, &[]).unwrap();
        let nop = instance.get_typed_func::<(), ()>(&mut store, "nop").unwrap();
        group.bench_function(format!("nop/weft/{label}"), |b| b.iter(|| nop.call(&mut store, ()).unwrap()));
    }
    group.finish();
}

fn wasm_to_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("wasm-to-host");
    group.throughput(Throughput::Elements(HOST_CALLS as u64));
    wasm_to_host!(group, weft, weft_engine(false));
    #[cfg(feature = "wasmtime")]
    wasm_to_host!(group, wasmtime, wasmtime_engine(false));
    group.finish();
}

fn memory_grow(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory.grow");
    group.throughput(Throughput::Elements(GROWS as u64));
    for (how, pooled) in [("on-demand", false), ("pooled", true)] {
        memory_grow!(group, weft, weft_engine(pooled), how);
        #[cfg(feature = "wasmtime")]
        memory_grow!(group, wasmtime, wasmtime_engine(pooled), how);
    }
    group.finish();
}

fn instantiate(c: &mut Criterion) {
    let mut group = c.benchmark_group("instantiate");
    for (how, pooled) in [("on-demand", false), ("pooled", true)] {
        for runs in [false, true] {
            instantiate!(group, weft, weft_engine(pooled), how, runs);
            #[cfg(feature = "wasmtime")]
            instantiate!(group, wasmtime, wasmtime_engine(pooled), how, runs);
        }
    }
    group.finish();
}

/// The largest non-SIMD sightglass module (skipped, with a message, without the data).
fn compile(c: &mut Criterion) {
    let data = std::env::var("WEFT_WASM_DATA").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/wasm-data").into());
    let path = std::path::Path::new(&data).join("sightglass/gcc-loops/benchmark.wasm");
    let Ok(bytes) = std::fs::read(&path) else {
        eprintln!("SKIPPED compile: {} not found (set WEFT_WASM_DATA)", path.display());
        return;
    };
    let mut group = c.benchmark_group("compile-gcc-loops");
    group.sample_size(10);
    let weft_engine = weft_engine(false);
    group.bench_function("weft", |b| b.iter(|| weft::Module::new(&weft_engine, &bytes).unwrap()));
    #[cfg(feature = "wasmtime")]
    {
        let wasmtime_engine = wasmtime_engine(false);
        group.bench_function("wasmtime", |b| b.iter(|| wasmtime::Module::new(&wasmtime_engine, &bytes).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, host_to_wasm, wasm_to_host, memory_grow, instantiate, compile);
criterion_main!(benches);

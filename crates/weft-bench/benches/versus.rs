//! Micro-benchmarks of Weft and wasmtime 48 side by side, in one process and
//! one run: host → Wasm calls, Wasm → host calls, `memory.grow`, and compiling
//! the largest non-SIMD sightglass module. Each group holds a `weft` and a
//! `wasmtime` line; BENCHMARKS.md records their ratios.
//!
//! `cargo bench -p weft-bench --features wasmtime --bench versus`

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

/// Wasm → host calls per measured element.
const HOST_CALLS: i32 = 1000;
/// Pages grown per measured element.
const GROWS: i32 = 256;

fn host_to_wasm(c: &mut Criterion) {
    let mut group = c.benchmark_group("host-to-wasm");
    {
        let engine = weft::Engine::default();
        let module = weft::Module::new(&engine, CALLEES).unwrap();
        let mut store = weft::Store::new(&engine, ());
        let instance = weft::Instance::new(&mut store, &module, &[]).unwrap();
        let nop = instance.get_typed_func::<(), ()>(&mut store, "nop").unwrap();
        let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
        group.bench_function("nop/weft", |b| b.iter(|| nop.call(&mut store, ()).unwrap()));
        group.bench_function("add/weft", |b| b.iter(|| add.call(&mut store, (1, 2)).unwrap()));
    }
    {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, CALLEES).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let nop = instance.get_typed_func::<(), ()>(&mut store, "nop").unwrap();
        let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
        group.bench_function("nop/wasmtime", |b| b.iter(|| nop.call(&mut store, ()).unwrap()));
        group.bench_function("add/wasmtime", |b| b.iter(|| add.call(&mut store, (1, 2)).unwrap()));
    }
    group.finish();
}

fn wasm_to_host(c: &mut Criterion) {
    let mut group = c.benchmark_group("wasm-to-host");
    group.throughput(Throughput::Elements(HOST_CALLS as u64));
    {
        let engine = weft::Engine::default();
        let module = weft::Module::new(&engine, CALLERS).unwrap();
        let mut store = weft::Store::new(&engine, ());
        let nop = weft::Func::wrap(&mut store, || {});
        let add = weft::Func::wrap(&mut store, |a: i32, b: i32| a.wrapping_add(b));
        let instance = weft::Instance::new(&mut store, &module, &[nop.into(), add.into()]).unwrap();
        let call_nop = instance.get_typed_func::<i32, ()>(&mut store, "call_nop").unwrap();
        let call_add = instance.get_typed_func::<i32, i32>(&mut store, "call_add").unwrap();
        group.bench_function("nop/weft", |b| b.iter(|| call_nop.call(&mut store, HOST_CALLS).unwrap()));
        group.bench_function("add/weft", |b| b.iter(|| call_add.call(&mut store, HOST_CALLS).unwrap()));
    }
    {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, CALLERS).unwrap();
        let mut store = wasmtime::Store::new(&engine, ());
        let nop = wasmtime::Func::wrap(&mut store, || {});
        let add = wasmtime::Func::wrap(&mut store, |a: i32, b: i32| a.wrapping_add(b));
        let instance = wasmtime::Instance::new(&mut store, &module, &[nop.into(), add.into()]).unwrap();
        let call_nop = instance.get_typed_func::<i32, ()>(&mut store, "call_nop").unwrap();
        let call_add = instance.get_typed_func::<i32, i32>(&mut store, "call_add").unwrap();
        group.bench_function("nop/wasmtime", |b| b.iter(|| call_nop.call(&mut store, HOST_CALLS).unwrap()));
        group.bench_function("add/wasmtime", |b| b.iter(|| call_add.call(&mut store, HOST_CALLS).unwrap()));
    }
    group.finish();
}

/// `memory.grow` by one page `GROWS` times inside Wasm, on a fresh instance
/// each time (instantiation and drop not measured), on demand and pooled.
fn memory_grow(c: &mut Criterion) {
    let mut group = c.benchmark_group("memory.grow");
    group.throughput(Throughput::Elements(GROWS as u64));
    for pooled in [false, true] {
        let how = if pooled { "pooled" } else { "on-demand" };
        {
            let mut config = weft::Config::new();
            if pooled {
                let pool = weft::PoolingConfig { total_memories: 16, total_tables: 16, total_core_instances: 16, ..Default::default() };
                config.allocation_strategy(weft::InstanceAllocationStrategy::Pooling(pool));
            }
            let engine = weft::Engine::new(&config).unwrap();
            let module = weft::Module::new(&engine, GROWER).unwrap();
            group.bench_function(format!("{how}/weft"), |b| {
                b.iter_batched(
                    || {
                        let mut store = weft::Store::new(&engine, ());
                        let instance = weft::Instance::new(&mut store, &module, &[]).unwrap();
                        let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
                        (store, grow)
                    },
                    |(mut store, grow)| {
                        assert_eq!(grow.call(&mut store, GROWS).unwrap(), GROWS + 1);
                        store
                    },
                    BatchSize::PerIteration,
                )
            });
        }
        {
            let mut config = wasmtime::Config::new();
            if pooled {
                let mut pool = wasmtime::PoolingAllocationConfig::default();
                pool.total_memories(16).total_tables(16).total_core_instances(16);
                config.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
            }
            let engine = wasmtime::Engine::new(&config).unwrap();
            let module = wasmtime::Module::new(&engine, GROWER).unwrap();
            group.bench_function(format!("{how}/wasmtime"), |b| {
                b.iter_batched(
                    || {
                        let mut store = wasmtime::Store::new(&engine, ());
                        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
                        let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
                        (store, grow)
                    },
                    |(mut store, grow)| {
                        assert_eq!(grow.call(&mut store, GROWS).unwrap(), GROWS + 1);
                        store
                    },
                    BatchSize::PerIteration,
                )
            });
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
    let weft_engine = weft::Engine::default();
    group.bench_function("weft", |b| b.iter(|| weft::Module::new(&weft_engine, &bytes).unwrap()));
    let wasmtime_engine = wasmtime::Engine::default();
    group.bench_function("wasmtime", |b| b.iter(|| wasmtime::Module::new(&wasmtime_engine, &bytes).unwrap()));
    group.finish();
}

criterion_group!(benches, host_to_wasm, wasm_to_host, memory_grow, compile);
criterion_main!(benches);

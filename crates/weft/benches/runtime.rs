//! Criterion benchmarks (not run in CI): compile time of a large module, the
//! cost of a host → Wasm call of a trivial export and of a Wasm → host call of
//! a trivial host function, and `memory.grow`.
//!
//! `cargo bench -p weft --bench runtime`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use weft::{Engine, Extern, Func, Instance, Module, Store};

/// The largest non-SIMD sightglass module, or a synthetic one without the data.
fn large_module() -> (String, Vec<u8>) {
    let data = std::env::var("WEFT_WASM_DATA").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/wasm-data").into());
    let path = std::path::Path::new(&data).join("sightglass/gcc-loops/benchmark.wasm");
    if let Ok(bytes) = std::fs::read(&path) {
        return ("gcc-loops".into(), bytes);
    }
    let mut wat = String::from("(module (memory 1)");
    for i in 0..2000 {
        wat.push_str(&format!(
            "(func (export \"f{i}\") (param i32) (result i32) (local i32) (loop (local.set 1 (i32.add (local.get 1) (i32.load (local.get 0)))) (br_if 0 (local.tee 0 (i32.sub (local.get 0) (i32.const 4))))) (local.get 1))"
        ));
    }
    wat.push(')');
    ("synthetic-2000-funcs".into(), wat::parse_str(&wat).unwrap())
}

fn compile(c: &mut Criterion) {
    let engine = Engine::default();
    let (name, bytes) = large_module();
    let mut group = c.benchmark_group("compile");
    group.sample_size(10);
    group.bench_function(name, |b| b.iter(|| Module::new(&engine, &bytes).unwrap()));
    group.finish();
}

fn call(c: &mut Criterion) {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (func (export "nop")) (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    let nop = instance.get_typed_func::<(), ()>(&mut store, "nop").unwrap();
    let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add").unwrap();
    c.bench_function("call/host-to-wasm-nop", |b| b.iter(|| nop.call(&mut store, ()).unwrap()));
    c.bench_function("call/host-to-wasm-add", |b| b.iter(|| add.call(&mut store, (1, 2)).unwrap()));
}

/// Wasm → host: an export calls an imported host function `n` times in a loop,
/// so each element is one call into the host and back (plus one loop step).
fn call_host(c: &mut Criterion) {
    const N: i32 = 1000;
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "host" "nop" (func $nop))
            (import "host" "add" (func $add (param i32 i32) (result i32)))
            (func (export "call_nop") (param $n i32)
                (loop $l (call $nop) (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
            (func (export "call_add") (param $n i32) (result i32) (local $acc i32)
                (loop $l
                    (local.set $acc (call $add (local.get $acc) (local.get $n)))
                    (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
                (local.get $acc)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let nop = Func::wrap(&mut store, || {});
    let add = Func::wrap(&mut store, |a: i32, b: i32| a.wrapping_add(b));
    let instance = Instance::new(&mut store, &module, &[Extern::Func(nop), Extern::Func(add)]).unwrap();
    let call_nop = instance.get_typed_func::<i32, ()>(&mut store, "call_nop").unwrap();
    let call_add = instance.get_typed_func::<i32, i32>(&mut store, "call_add").unwrap();
    let mut group = c.benchmark_group("call");
    group.throughput(Throughput::Elements(N as u64));
    group.bench_function("wasm-to-host-nop", |b| b.iter(|| call_nop.call(&mut store, N).unwrap()));
    group.bench_function("wasm-to-host-add", |b| b.iter(|| call_add.call(&mut store, N).unwrap()));
    group.finish();
}

/// `memory.grow` by one page, `n` times in a loop inside Wasm, on a fresh
/// instance each time (instantiation and drop are not measured).
fn memory_grow(c: &mut Criterion) {
    const N: i32 = 256;
    let mut group = c.benchmark_group("memory.grow");
    group.throughput(Throughput::Elements(N as u64));
    for (name, pooled) in [("on-demand", false), ("pooled", true)] {
        let mut config = weft::Config::new();
        if pooled {
            config.allocation_strategy(weft::InstanceAllocationStrategy::Pooling(weft::PoolingConfig {
                total_memories: 16,
                total_tables: 16,
                total_core_instances: 16,
                ..Default::default()
            }));
        }
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(
            &engine,
            r#"(module (memory 1)
                (func (export "grow") (param $n i32) (result i32)
                    (loop $l
                        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
                        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
                    (memory.size)))"#,
        )
        .unwrap();
        group.bench_function(format!("1-page-x{N}/{name}"), |b| {
            b.iter_batched(
                || {
                    let mut store = Store::new(&engine, ());
                    let instance = Instance::new(&mut store, &module, &[]).unwrap();
                    let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow").unwrap();
                    (store, grow)
                },
                |(mut store, grow)| {
                    assert_eq!(grow.call(&mut store, N).unwrap(), N + 1);
                    store
                },
                // One input at a time: a batch would hold more pooled instances than there are slots.
                BatchSize::PerIteration,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, compile, call, call_host, memory_grow);
criterion_main!(benches);

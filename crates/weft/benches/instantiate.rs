//! Instantiation (not run in CI): instantiate + drop of a fresh store, on demand
//! and pooled, pooled with keep-resident, for a sightglass module (or a
//! synthetic one without the data). For side-by-side ratios with wasmtime use
//! `weft bench --instantiate --engine weft,wasmtime` (weft-cli feature `wasmtime`).
//!
//! The `growth` group compares the two ways a pooled memory grows
//! ([`MemoryGrowth`]): instantiate, grow one Wasm page at a time 16 times
//! (touching every 4 KiB of each new page, or not), drop; on one thread and
//! on two threads at once (where `mprotect` contends on the mapping lock).
//!
//! `cargo bench -p weft --bench instantiate`

use criterion::{criterion_group, criterion_main, Criterion};
use std::time::{Duration, Instant};

use weft::{Config, Engine, InstanceAllocationStrategy, Linker, MemoryGrowth, Module, PoolingConfig, Store};

fn module_bytes() -> (String, Vec<u8>) {
    let data = std::env::var("WEFT_WASM_DATA").unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/wasm-data").into());
    let path = std::path::Path::new(&data).join("sightglass/bz2/benchmark.wasm");
    if let Ok(bytes) = std::fs::read(&path) {
        return ("bz2".into(), bytes);
    }
    let wat = r#"(module (memory 17) (table 100 funcref) (elem (i32.const 0) $f $f $f)
        (data (i32.const 1024) "some initial data") (data (i32.const 70000) "more")
        (func $f) (func (export "_start")))"#;
    ("synthetic".into(), wat::parse_str(wat).unwrap())
}

fn bench(c: &mut Criterion) {
    let (name, bytes) = module_bytes();
    let mut group = c.benchmark_group(format!("instantiate/{name}"));
    let strategies: [(&str, InstanceAllocationStrategy); 4] = [
        ("on-demand", InstanceAllocationStrategy::OnDemand),
        ("pooled", InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 8, ..Default::default() })),
        ("pooled-keep-resident-64k", InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 8, keep_resident: 64 << 10, ..Default::default() })),
        ("pooled-keep-resident-1m", InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 8, keep_resident: 1 << 20, ..Default::default() })),
    ];
    for (label, strategy) in strategies {
        let mut config = Config::new();
        config.allocation_strategy(strategy);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, &bytes).unwrap();
        let mut linker = Linker::<()>::new(&engine);
        linker.define_unknown_imports_as_traps(&module).unwrap();
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut store = Store::new(&engine, ());
                linker.instantiate(&mut store, &module).unwrap();
            })
        });
    }
    group.finish();
}

const GROWER: &str = r#"(module (memory 1)
    (func (export "run") (param $pages i32) (param $touch i32) (local $i i32) (local $a i32)
      (loop $grow
        (drop (memory.grow (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (if (local.get $touch) (then
          (local.set $a (i32.mul (local.get $i) (i32.const 65536)))
          (loop $page
            (i32.store8 (local.get $a) (i32.const 1))
            (local.set $a (i32.add (local.get $a) (i32.const 4096)))
            (br_if $page (i32.and (local.get $a) (i32.const 65535))))))
        (br_if $grow (i32.lt_u (local.get $i) (local.get $pages))))))"#;

fn growth(c: &mut Criterion) {
    let mut group = c.benchmark_group("growth");
    for (label, growth) in [("mprotect", MemoryGrowth::Protect), ("ftruncate", MemoryGrowth::Truncate)] {
        let mut config = Config::new();
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 4, growth, ..Default::default() }));
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, GROWER).unwrap();
        let cycle = |touch: i32| {
            let mut store = Store::new(&engine, ());
            let instance = weft::Instance::new(&mut store, &module, &[]).unwrap();
            instance.get_typed_func::<(i32, i32), ()>(&mut store, "run").unwrap().call(&mut store, (16, touch)).unwrap();
        };
        for (touch, what) in [(1, "grow+touch"), (0, "grow-only")] {
            group.bench_function(format!("{what}/{label}/1-thread"), |b| b.iter(|| cycle(touch)));
            // Two threads each running `iters` cycles: time per cycle pair.
            group.bench_function(format!("{what}/{label}/2-threads"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for _ in 0..2 {
                            s.spawn(|| (0..iters).for_each(|_| cycle(touch)));
                        }
                    });
                    start.elapsed()
                })
            });
        }
    }
    group.finish();
}

criterion_group! {
    name = growth_benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = growth
}
criterion_group!(benches, bench);
criterion_main!(benches, growth_benches);

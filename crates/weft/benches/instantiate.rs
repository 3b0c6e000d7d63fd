//! Instantiation (not run in CI): instantiate + drop of a fresh store, on demand
//! and pooled, pooled with keep-resident, for a sightglass module (or a
//! synthetic one without the data). For side-by-side ratios with wasmtime use
//! `weft bench --instantiate --engine weft,wasmtime` (weft-cli feature `wasmtime`).
//!
//! `cargo bench -p weft --bench instantiate`

use criterion::{criterion_group, criterion_main, Criterion};
use weft::{Config, Engine, InstanceAllocationStrategy, Linker, Module, PoolingConfig, Store};

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
        for (m, n, ty) in module.imports() {
            if let weft::ExternType::Func(ty) = ty {
                linker.func_new(m, n, ty, |_, _, _| anyhow::bail!("not called")).unwrap();
            }
        }
        group.bench_function(label, |b| {
            b.iter(|| {
                let mut store = Store::new(&engine, ());
                linker.instantiate(&mut store, &module).unwrap();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

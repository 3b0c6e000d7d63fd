//! Criterion benchmarks (not run in CI): compile time of a large module and the
//! cost of a host → Wasm call of a trivial export.
//!
//! `cargo bench -p weft --bench runtime`

use criterion::{criterion_group, criterion_main, Criterion};
use weft::{Engine, Instance, Module, Store};

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

criterion_group!(benches, compile, call);
criterion_main!(benches);

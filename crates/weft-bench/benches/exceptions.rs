//! Exception handling: throw + catch in the same function, and across 10
//! and 100 frames (a recursion that throws at its bottom, caught at its
//! top), each measured as 1000 throws per element. Weft alone, or (with the
//! `wasmtime` feature) Weft and wasmtime 48 (its exceptions enabled) side by
//! side in one run, whose ratios BENCHMARKS.md records.
//!
//! `cargo bench -p weft-bench [--features wasmtime] --bench exceptions`

use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const THROWER: &str = r#"(module
    (tag $t (param i32))
    (func $down (param $d i32) (result i32)
      (if (i32.eqz (local.get $d)) (then (throw $t (i32.const 1))))
      ;; Not a tail call: every level keeps its frame.
      (i32.add (call $down (i32.sub (local.get $d) (i32.const 1))) (i32.const 1)))
    (func (export "same") (param $n i32) (result i32) (local $s i32)
      (loop $l
        (block $c (result i32)
          (try_table (catch $t $c) (throw $t (local.get $n)))
          (unreachable))
        (local.set $s (i32.add (local.get $s)))
        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
      (local.get $s))
    (func (export "deep") (param $n i32) (param $depth i32) (result i32) (local $s i32)
      (loop $l
        (block $c (result i32)
          (try_table (catch $t $c) (drop (call $down (local.get $depth))))
          (unreachable))
        (local.set $s (i32.add (local.get $s)))
        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
      (local.get $s)))"#;

/// Throws per measured element.
const THROWS: i32 = 1000;

// Each benchmark body is written once for both runtimes, whose embedding APIs
// have the same shape: `$rt` is the crate, `$engine` an engine of it.
macro_rules! throw_catch {
    ($c:expr, $rt:ident, $engine:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, THROWER).unwrap();
        let mut store = $rt::Store::new(&engine, ());
        let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
        let same = instance.get_typed_func::<i32, i32>(&mut store, "same").unwrap();
        let deep = instance.get_typed_func::<(i32, i32), i32>(&mut store, "deep").unwrap();
        assert_eq!(same.call(&mut store, THROWS).unwrap(), THROWS * (THROWS + 1) / 2);
        assert_eq!(deep.call(&mut store, (THROWS, 100)).unwrap(), THROWS);
        let mut group = $c.benchmark_group("throw_catch");
        group.throughput(Throughput::Elements(THROWS as u64));
        group.bench_function(concat!("same_function/", stringify!($rt)), |b| b.iter(|| same.call(&mut store, THROWS).unwrap()));
        for depth in [10, 100] {
            group.bench_function(format!("{depth}_frames/{}", stringify!($rt)), |b| b.iter(|| deep.call(&mut store, (THROWS, depth)).unwrap()));
        }
        group.finish();
    }};
}

fn exceptions(c: &mut Criterion) {
    throw_catch!(c, weft, weft::Engine::default());
    #[cfg(feature = "wasmtime")]
    {
        let mut config = wasmtime::Config::new();
        config.wasm_exceptions(true);
        throw_catch!(c, wasmtime, wasmtime::Engine::new(&config).unwrap());
    }
}

criterion_group!(benches, exceptions);
criterion_main!(benches);

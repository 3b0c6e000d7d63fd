//! Interruption costs (not run in CI): the steady-state overhead of each
//! interruption mode on a hot loop, the cost of one interrupt request
//! (page revocation vs pointer flip), with and without another thread of the
//! process running (page revocation needs a TLB shootdown then), and the cost
//! of reaching an epoch deadline.
//!
//! `cargo bench -p weft --bench interrupt`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use weft::{Config, Engine, Instance, InterruptAction, Interruption, Module, Store};

const LOOP: &str = r#"(module (func (export "run") (param i64) (result i64) (local $acc i64)
    (loop $l
      (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005)) (local.get 0)))
      (br_if $l (i64.ne (local.tee 0 (i64.sub (local.get 0) (i64.const 1))) (i64.const 0))))
    (local.get $acc)))"#;

fn steady_state(c: &mut Criterion) {
    let mut group = c.benchmark_group("loop-overhead");
    group.sample_size(20);
    for mode in [Interruption::None, Interruption::Epoch, Interruption::MmuPage, Interruption::MmuPointer] {
        let mut config = Config::new();
        config.interruption(mode);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, LOOP).unwrap();
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let run = inst.get_typed_func::<i64, i64>(&mut store, "run").unwrap();
        group.bench_function(format!("{mode:?}"), |b| b.iter(|| run.call(&mut store, 1_000_000).unwrap()));
    }
    group.finish();
}

fn request_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("interrupt-request");
    for mode in [Interruption::MmuPage, Interruption::MmuPointer] {
        for busy_thread in [false, true] {
            let mut config = Config::new();
            config.interruption(mode);
            let engine = Engine::new(&config).unwrap();
            let module = Module::new(&engine, LOOP).unwrap();
            let mut store = Store::new(&engine, ());
            store.interrupt_callback(|_| Ok(InterruptAction::Continue));
            let inst = Instance::new(&mut store, &module, &[]).unwrap();
            let run = inst.get_typed_func::<i64, i64>(&mut store, "run").unwrap();
            let handle = store.interrupt_handle().unwrap();
            // Another thread of this process running on the other core.
            let stop = Arc::new(AtomicBool::new(false));
            let spinner = busy_thread.then(|| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            });
            // One request and the hook's restore, as seen by the guest: interrupt,
            // then a short call that takes the interruption and continues.
            group.bench_function(format!("{mode:?}/other-thread-running={busy_thread}"), |b| {
                b.iter(|| {
                    handle.interrupt();
                    run.call(&mut store, 1).unwrap()
                })
            });
            stop.store(true, Ordering::Relaxed);
            if let Some(s) = spinner {
                s.join().unwrap();
            }
        }
    }
    group.finish();
}

/// What reaching an epoch deadline costs: a fault, the signal handler, the
/// callback through the register-saving stub, and the resumed load. The loop
/// runs 1000 iterations with a deadline that is always reached.
fn epoch_deadline_cost(c: &mut Criterion) {
    let mut group = c.benchmark_group("epoch-deadline");
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, LOOP).unwrap();
    for reached in [false, true] {
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(if reached { 0 } else { u64::MAX / 2 });
        store.epoch_deadline_callback(move |_| Ok(weft::UpdateDeadline::Continue(if reached { 0 } else { u64::MAX / 2 })));
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let run = inst.get_typed_func::<i64, i64>(&mut store, "run").unwrap();
        group.bench_function(format!("1000-iterations/deadline-reached={reached}"), |b| b.iter(|| run.call(&mut store, 1000).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, steady_state, request_cost, epoch_deadline_cost);
criterion_main!(benches);

//! Load: many stores on several threads, each instantiating, computing,
//! trapping, throwing, hitting its memory limit and being interrupted, then
//! dropped, for a while; memory must stay flat and nothing may crash, and a
//! guest at its limits leaves the others working. The test suite runs it for
//! 10 seconds; `WEFT_LOAD_SECS=180 cargo test --release -p weft --test load
//! -- --nocapture` runs it longer and prints the figures BENCHMARKS.md
//! records (guests per second, resident memory once warm, at its peak and
//! at the end). Each guest waits for its interrupt (an epoch tick every
//! millisecond, or an interrupt 200 µs after it asks), which bounds the rate.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use weft::{Config, Engine, Instance, InstanceAllocationStrategy, Interruption, Module, PoolingConfig, Store, StoreLimits, StoreLimitsBuilder, Trap};

mod common;

const GUEST: &str = r#"(module
  (memory 1)
  (tag $t (param i32))
  (func (export "compute") (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (local.set $acc (i32.add (i32.mul (local.get $acc) (i32.const 31)) (local.get $n)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $acc))
  (func (export "trap") (result i32) (i32.load (i32.const 70000)))
  (func (export "spin") (loop $l (br $l)))
  (func (export "throw_catch") (param i32) (result i32)
    (block $c (result i32)
      (try_table (catch $t $c) (throw $t (local.get 0)))
      (unreachable)))
  (func (export "grow_all") (result i32) (local $n i32)
    (block $done (loop $l
      (br_if $done (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
      (local.set $n (i32.add (local.get $n) (i32.const 1)))
      (br $l)))
    (local.get $n)))"#;

fn resident_kb(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One guest's life: everything it does, checked.
fn one_guest(engine: &Engine, module: &Module, interrupter: &mpsc::Sender<weft::InterruptHandle>) {
    let limits = StoreLimitsBuilder::new().memory_size(8 << 16).build();
    let mut store: Store<StoreLimits> = Store::new(engine, limits);
    store.limiter(|l| l);
    let inst = Instance::new(&mut store, module, &[]).unwrap();
    let compute = inst.get_typed_func::<i32, i32>(&mut store, "compute").unwrap();
    assert_eq!(compute.call(&mut store, 3).unwrap(), (3 * 31 + 2) * 31 + 1);
    let trap = inst.get_typed_func::<(), i32>(&mut store, "trap").unwrap();
    assert_eq!(trap.call(&mut store, ()).unwrap_err().downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    let throw = inst.get_typed_func::<i32, i32>(&mut store, "throw_catch").unwrap();
    assert_eq!(throw.call(&mut store, 9).unwrap(), 9);
    let grow = inst.get_typed_func::<(), i32>(&mut store, "grow_all").unwrap();
    assert_eq!(grow.call(&mut store, ()).unwrap(), 7, "grows to its 8-page limit and no further");
    // Interrupted out of an endless loop.
    match engine.config().interruption_mode() {
        Interruption::Epoch => store.set_epoch_deadline(1),
        _ => interrupter.send(store.interrupt_handle().unwrap()).unwrap(),
    }
    let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    assert_eq!(spin.call(&mut store, ()).unwrap_err().downcast_ref::<Trap>(), Some(&Trap::Interrupt));
    // The store still works after all that (with its deadline moved on).
    store.set_epoch_deadline(u64::MAX / 2);
    assert_eq!(compute.call(&mut store, 1).unwrap(), 1);
}

#[test]
fn many_stores_on_many_threads_keep_memory_flat() {
    let secs: u64 = std::env::var("WEFT_LOAD_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(10);
    let _watchdog = common::Watchdog::arm(Duration::from_secs(secs + 120));
    let mut epoch = Config::new();
    epoch.interruption(Interruption::Epoch);
    epoch.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 64, total_core_instances: 64, ..Default::default() }));
    let mut mmu = Config::new();
    mmu.interruption(Interruption::MmuPage);
    let engines: Vec<(Engine, Module)> = [epoch, mmu]
        .iter()
        .map(|c| {
            let engine = Engine::new(c).unwrap();
            let module = Module::new(&engine, GUEST).unwrap();
            (engine, module)
        })
        .collect();
    // Epochs tick, and MMU guests are interrupted soon after they ask.
    let stop = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (engine, stop) = (engines[0].0.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                engine.increment_epoch();
                std::thread::sleep(Duration::from_millis(1));
            }
        })
    };
    let (tx, rx) = mpsc::channel::<weft::InterruptHandle>();
    let interrupter = std::thread::spawn(move || {
        while let Ok(handle) = rx.recv() {
            std::thread::sleep(Duration::from_micros(200));
            handle.interrupt();
        }
    });
    let guests = AtomicU64::new(0);
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let (mut after_warmup, mut peak) = (0, 0);
    let threads = 4;
    std::thread::scope(|s| {
        for t in 0..threads {
            let (engines, guests, tx) = (&engines, &guests, tx.clone());
            s.spawn(move || {
                let mut i = t;
                while Instant::now() < deadline {
                    let (engine, module) = &engines[i % engines.len()];
                    one_guest(engine, module, &tx);
                    guests.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            });
        }
        // Resident memory once warm (a second in), and its peak after,
        // sampled every 50 ms (the kernel's own high-water mark is reset
        // when the pool reads soft-dirty bits).
        std::thread::sleep(Duration::from_secs(1).min(Duration::from_secs(secs) / 2));
        after_warmup = resident_kb("VmRSS:");
        while Instant::now() < deadline {
            peak = peak.max(resident_kb("VmRSS:"));
            std::thread::sleep(Duration::from_millis(50));
        }
    });
    drop(tx);
    stop.store(true, Ordering::Relaxed);
    ticker.join().unwrap();
    interrupter.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    let end = resident_kb("VmRSS:");
    let n = guests.load(Ordering::Relaxed);
    println!(
        "load: {n} guests in {elapsed:.1} s on {threads} threads: {:.0} guests/s; resident {after_warmup} kB after warm-up, peak {peak} kB, {end} kB at the end",
        n as f64 / elapsed
    );
    assert!(n > 100, "only {n} guests ran");
    assert!(end < after_warmup + 64 * 1024 && peak < after_warmup + 64 * 1024, "resident memory grew from {after_warmup} kB to {end} kB (peak {peak} kB)");
}

//! Interrupting guests: epochs and MMU interruption (page revocation and
//! pointer flip), trapping or continuing, across host calls, on several threads,
//! with every register preserved across an interruption.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use weft::{Config, Engine, InterruptAction, Interruption, Linker, Module, Store, Trap, UpdateDeadline};

const GUEST: &str = r#"(module
    (import "host" "sleep" (func $sleep))
    (import "host" "reenter" (func $reenter))
    (func (export "spin") (loop $l (br $l)))
    (func $fib (export "fib") (param i64) (result i64)
      (if (result i64) (i64.lt_u (local.get 0) (i64.const 2)) (then (local.get 0))
        (else (i64.add (call $fib (i64.sub (local.get 0) (i64.const 1))) (call $fib (i64.sub (local.get 0) (i64.const 2)))))))
    (func (export "fib_forever") (loop $l (drop (call $fib (i64.const 25))) (br $l)))
    (func (export "sleep_then_spin") (call $sleep) (loop $l (br $l)))
    (func (export "reenter") (call $reenter))
    (func (export "checksum") (param i64) (result i64) (local $acc i64)
      (loop $l
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005)) (local.get 0)))
        (br_if $l (i64.ne (local.tee 0 (i64.sub (local.get 0) (i64.const 1))) (i64.const 0))))
      (local.get $acc))
    (func $tail_forever (export "tail_forever") (return_call $tail_forever))
    (func (export "dead_call") (result i32) (return (i32.const 7)) (call $tail_forever))
    (func (export "ok") (result i32) (i32.const 42))
    (global $depth (mut i32) (i32.const 0))
    (func $deep (export "deep") (result i32)
      (global.set $depth (i32.add (global.get $depth) (i32.const 1)))
      (i32.add (call $deep) (i32.const 1)))
    (func (export "depth") (result i32) (global.get $depth))
    ;; Call trees 2^30 calls big, without deep recursion. Epoch and pointer
    ;; modes check before a call only where a path to it has not passed a
    ;; check since the entry or a loop header: these stop only if that is
    ;; tracked right through every kind of branch.
    (func $tree_in_loop (param $n i32) (local $i i32)
      (if (i32.eqz (local.get $n)) (then (return)))
      (loop $l
        (call $tree_in_loop (i32.sub (local.get $n) (i32.const 1)))
        (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 2)))))
    (func $tree_after_if (param $n i32)
      (if (i32.eqz (local.get $n)) (then (return)))
      (if (i32.eq (local.get $n) (i32.const 1000)) (then (loop $l)))
      (call $tree_after_if (i32.sub (local.get $n) (i32.const 1)))
      (call $tree_after_if (i32.sub (local.get $n) (i32.const 1))))
    (func $tree_after_branch (param $n i32)
      (if (i32.eqz (local.get $n)) (then (return)))
      (block $skip (br_if $skip (local.get $n)) (loop $l))
      (call $tree_after_branch (i32.sub (local.get $n) (i32.const 1)))
      (call $tree_after_branch (i32.sub (local.get $n) (i32.const 1))))
    (func $tree_after_table (param $n i32)
      (if (i32.eqz (local.get $n)) (then (return)))
      (block $skip (block $into (br_table $into $skip (i32.ne (local.get $n) (i32.const 1000)))) (loop $l))
      (call $tree_after_table (i32.sub (local.get $n) (i32.const 1)))
      (call $tree_after_table (i32.sub (local.get $n) (i32.const 1))))
    ;; Back edges check unless a check was passed since the loop header: the
    ;; inner loop never branches back, so the outer back edge must check.
    (func (export "outer_loop_inner_exits") (local $i i32)
      (loop $outer
        (block $done
          (loop $inner
            (br_if $done (i32.const 1))
            (br $inner)))
        (br_if $outer (i32.ne (local.tee $i (i32.add (local.get $i) (i32.const 1))) (i32.const 0x7fffffff)))))
    (func (export "tree_in_loop") (call $tree_in_loop (i32.const 30)))
    (func (export "tree_after_if") (call $tree_after_if (i32.const 30)))
    (func (export "tree_after_branch") (call $tree_after_branch (i32.const 30)))
    (func (export "tree_after_table") (call $tree_after_table (i32.const 30))))"#;

mod common;
use common::{checksum, Repeater, Watchdog};

/// When the `sleep` host function last returned to Wasm.
static HOST_RETURNED: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

/// An interruption configuration under test: the mechanism and, in page
/// mode, whether functions with a loop that calls probe through the GS
/// segment base (where the host allows it), and whether functions that
/// access memory probe through its base (the default) or the vmctx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Mode {
    interruption: Interruption,
    segment_probes: bool,
    memory_probes: bool,
}

const EPOCH: Mode = Mode { interruption: Interruption::Epoch, segment_probes: false, memory_probes: false };
const PAGE: Mode = Mode { interruption: Interruption::MmuPage, segment_probes: false, memory_probes: true };
const PAGE_SEGMENT_PROBES: Mode = Mode { interruption: Interruption::MmuPage, segment_probes: true, memory_probes: true };
const PAGE_VMCTX_PROBES: Mode = Mode { interruption: Interruption::MmuPage, segment_probes: false, memory_probes: false };
const POINTER: Mode = Mode { interruption: Interruption::MmuPointer, segment_probes: false, memory_probes: false };
const MODES: [Mode; 4] = [EPOCH, PAGE, PAGE_SEGMENT_PROBES, POINTER];
const MMU_MODES: [Mode; 3] = [PAGE, PAGE_SEGMENT_PROBES, POINTER];
/// For guests whose loops access memory: page mode probes them through the
/// memory's base, or with that off through the vmctx.
const MEMORY_MODES: [Mode; 5] = [EPOCH, PAGE, PAGE_SEGMENT_PROBES, PAGE_VMCTX_PROBES, POINTER];

fn engine(mode: Mode) -> Engine {
    engine_with(mode, Config::new())
}

fn engine_with(mode: Mode, mut config: Config) -> Engine {
    config.interruption(mode.interruption).mmu_segment_probes(mode.segment_probes).mmu_memory_probes(mode.memory_probes);
    Engine::new(&config).unwrap()
}

fn setup(engine: &Engine) -> (Store<()>, weft::Instance) {
    let mut linker = Linker::<()>::new(engine);
    linker
        .func_wrap("host", "sleep", || {
            std::thread::sleep(Duration::from_millis(30));
            *HOST_RETURNED.lock().unwrap() = Some(Instant::now());
        })
        .unwrap();
    linker
        .func_wrap("host", "reenter", |mut caller: weft::Caller<'_, ()>| -> anyhow::Result<()> {
            let spin = caller.get_export("spin").unwrap().into_func().unwrap();
            spin.typed::<(), ()>(&caller)?.call(&mut caller, ())
        })
        .unwrap();
    let module = Module::new(engine, GUEST).unwrap();
    let mut store = Store::new(engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    (store, inst)
}

/// The tests spin guests on every core they get; run them one at a time so that
/// latencies measure Weft, not the scheduler.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Held for a whole test: the lock that runs the tests one at a time, and a
/// watchdog that fails the run fast (and by name) if a guest is never
/// interrupted, instead of letting it hang.
struct Serial {
    _watchdog: Watchdog,
    _lock: std::sync::MutexGuard<'static, ()>,
}

fn serial() -> Serial {
    let lock = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The longest test takes a few seconds alone; leave room for a loaded machine.
    Serial { _watchdog: Watchdog::arm(Duration::from_secs(120)), _lock: lock }
}

/// Requests an interruption of `store` from another thread after `delay`;
/// returns when it was requested.
fn interrupt_later(engine: &Engine, store: &mut Store<()>, mode: Mode, delay: Duration) -> std::thread::JoinHandle<Instant> {
    if mode == EPOCH {
        store.set_epoch_deadline(1);
        let engine = engine.clone();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let at = Instant::now();
            engine.increment_epoch();
            at
        })
    } else {
        let handle = store.interrupt_handle().unwrap();
        std::thread::spawn(move || {
            std::thread::sleep(delay);
            let at = Instant::now();
            handle.interrupt();
            at
        })
    }
}

fn expect_interrupted(err: anyhow::Error) {
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt), "{err:?}");
}

#[test]
fn infinite_loops_and_recursion_are_interrupted_quickly() {
    let _serial = serial();
    for mode in MODES {
        let engine = engine(mode);
        let (mut store, inst) = setup(&engine);
        // `tail_forever` has no loop and no ordinary call: only the check
        // before its tail call (in MMU page mode its prologue) stops it.
        for name in ["spin", "fib_forever", "tail_forever", "tree_in_loop", "tree_after_if", "tree_after_branch", "tree_after_table", "outer_loop_inner_exits"]
        {
            let f = inst.get_typed_func::<(), ()>(&mut store, name).unwrap();
            // The bound must hold in one of three attempts: a loaded 2-core
            // machine may deschedule the guest's thread for a while.
            let mut latencies = Vec::new();
            for _ in 0..3 {
                let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(20));
                let err = f.call(&mut store, ()).err().unwrap_or_else(|| panic!("{mode:?} {name}: ran to completion, never interrupted"));
                let trapped = Instant::now();
                latencies.push(trapped - requester.join().unwrap());
                expect_interrupted(err);
                if latencies.last().unwrap() < &Duration::from_millis(10) {
                    break;
                }
            }
            assert!(latencies.iter().any(|l| *l < Duration::from_millis(10)), "{mode:?} {name}: {latencies:?}");
            // The store is usable afterwards.
            let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
            store.set_epoch_deadline(u64::MAX / 2);
            assert_eq!(ok.call(&mut store, ()).unwrap(), 42);
            // A call only in unreachable code: compiled without a call, so
            // without a stack check (MMU page mode must not require one).
            let dead = inst.get_typed_func::<(), i32>(&mut store, "dead_call").unwrap();
            assert_eq!(dead.call(&mut store, ()).unwrap(), 7);
        }
    }
}

#[test]
fn interrupt_during_a_host_call_acts_after_it_returns() {
    let _serial = serial();
    for mode in MODES {
        let engine = engine(mode);
        let (mut store, inst) = setup(&engine);
        let f = inst.get_typed_func::<(), ()>(&mut store, "sleep_then_spin").unwrap();
        // Requested while the guest sleeps in the host function (30 ms).
        let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(5));
        let err = f.call(&mut store, ()).unwrap_err();
        let trapped = Instant::now();
        let requested = requester.join().unwrap();
        expect_interrupted(err);
        let returned = HOST_RETURNED.lock().unwrap().take().expect("the host function ran");
        // Requested during the host call, acted on right after it returned.
        assert!(requested < returned, "{mode:?}");
        let latency = trapped - returned;
        assert!(latency < Duration::from_millis(10), "{mode:?}: {latency:?}");
    }
}

#[test]
fn loop_inside_a_reentrant_host_call_chain() {
    let _serial = serial();
    for mode in MODES {
        let engine = engine(mode);
        let (mut store, inst) = setup(&engine);
        let f = inst.get_typed_func::<(), ()>(&mut store, "reenter").unwrap();
        let mut latencies = Vec::new();
        for _ in 0..3 {
            let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(20));
            let err = f.call(&mut store, ()).unwrap_err();
            latencies.push(Instant::now() - requester.join().unwrap());
            // The inner call's interruption surfaces through the host function.
            assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt), "{err:?}");
            if latencies.last().unwrap() < &Duration::from_millis(10) {
                break;
            }
        }
        assert!(latencies.iter().any(|l| *l < Duration::from_millis(10)), "{mode:?}: {latencies:?}");
    }
}

#[test]
fn continuing_a_thousand_times_gives_the_same_result() {
    let _serial = serial();
    const N: u64 = 50_000_000;
    let expected = checksum(N);
    // A loop: interrupted at its header.
    continue_a_thousand_times("checksum", N as i64, expected as i64);
    // Recursion without loops: interrupted at function entries, which in MMU
    // page mode are the prologues' stack-limit loads (arguments still in
    // registers when the fault hits).
    continue_a_thousand_times("fib", 27, 196418);
}

fn continue_a_thousand_times(name: &str, arg: i64, expected: i64) {
    for mode in MODES {
        let engine = engine(mode);
        let (mut store, inst) = setup(&engine);
        let hits = interrupt_a_thousand_times(&mut store, mode);
        let f = inst.get_typed_func::<i64, i64>(&mut store, name).unwrap();
        let got = f.call(&mut store, arg).unwrap();
        assert_eq!(got, expected, "{mode:?} {name}");
        assert_eq!(hits.load(Ordering::SeqCst), 1000, "{mode:?} {name}");
    }
}

/// Arms `store` so that its next call is interrupted at 1000 consecutive
/// interruption points and continued each time, deterministically (each
/// interruption asks for the next one right away). Returns the count of
/// interruptions taken.
fn interrupt_a_thousand_times(store: &mut Store<()>, mode: Mode) -> Arc<AtomicU64> {
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    if mode == EPOCH {
        store.set_epoch_deadline(0);
        store.epoch_deadline_callback(move |_| {
            let n = h.fetch_add(1, Ordering::SeqCst) + 1;
            Ok(UpdateDeadline::Continue(if n < 1000 { 0 } else { u64::MAX / 2 }))
        });
    } else {
        let handle = store.interrupt_handle().unwrap();
        store.interrupt_callback(move |_| {
            if h.fetch_add(1, Ordering::SeqCst) + 1 < 1000 {
                handle.interrupt();
            }
            Ok(InterruptAction::Continue)
        });
        store.interrupt_handle().unwrap().interrupt();
    }
    hits
}

/// Interrupt pages are reused by later stores of the engine: a new store
/// costs no mapping system call, and a page revoked by an interrupt that was
/// never acted on is made readable before the next store gets it.
#[test]
fn interrupt_pages_are_reused_clean() {
    let _serial = serial();
    for mode in MMU_MODES {
        let engine = engine(mode);
        {
            let (store, _inst) = setup(&engine);
            // Pending when the store goes away; the handle outlives it.
            let handle = store.interrupt_handle().unwrap();
            handle.interrupt();
            drop(store);
            handle.interrupt();
        }
        let before = weft::syscall_counts();
        let (mut store, inst) = setup(&engine);
        let after = weft::syscall_counts();
        assert_eq!((after.mmap, after.mprotect), (before.mmap, before.mprotect), "{mode:?}: {before:?} -> {after:?}");
        // No interrupt callback: an interruption here would trap.
        let fib = inst.get_typed_func::<i64, i64>(&mut store, "fib").unwrap();
        assert_eq!(fib.call(&mut store, 20).unwrap(), 6765, "{mode:?}");
        // And the reused page still interrupts.
        let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(5));
        let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
        expect_interrupted(spin.call(&mut store, ()).unwrap_err());
        requester.join().unwrap();
    }
}

/// In page mode each probe page is a view of the store's interrupt page, where
/// prologues read the stack limit. A pooled probe region handed to a store
/// with another page than its last one is rebound (two system calls), and
/// then shows that store's limit: with a stale one (here the idle store's,
/// none) recursion would run past the 64 KiB allowed, to the thread's guard.
#[test]
fn probe_regions_rebound_to_another_page_see_its_stack_limit() {
    let _serial = serial();
    let mut config = Config::new();
    config.interruption(Interruption::MmuPage).max_wasm_stack(64 << 10);
    let engine = Engine::new(&config).unwrap();
    let (a, _) = setup(&engine);
    let (b, _) = setup(&engine);
    // The handle keeps A's page out of the pool; A's region goes back after B's.
    let a_handle = a.interrupt_handle().unwrap();
    drop(b);
    drop(a);
    let before = weft::syscall_counts();
    let (mut store, inst) = setup(&engine);
    let after = weft::syscall_counts();
    assert_eq!((after.mmap - before.mmap, after.mprotect - before.mprotect), (1, 1), "{before:?} -> {after:?}");
    let fib = inst.get_typed_func::<i64, i64>(&mut store, "fib").unwrap();
    assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
    let deep = inst.get_typed_func::<(), i32>(&mut store, "deep").unwrap();
    let err = deep.call(&mut store, ()).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::StackOverflow), "{err:?}");
    // Every frame takes at least 16 bytes (return address and frame pointer).
    let depth = inst.get_typed_func::<(), i32>(&mut store, "depth").unwrap().call(&mut store, ()).unwrap();
    assert!((1000..4096).contains(&depth), "{depth} frames in 64 KiB");
    let requester = interrupt_later(&engine, &mut store, PAGE, Duration::from_millis(5));
    let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    expect_interrupted(spin.call(&mut store, ()).unwrap_err());
    requester.join().unwrap();
    drop(a_handle);
}

#[test]
fn an_interrupt_before_the_call_is_remembered() {
    let _serial = serial();
    for mode in MMU_MODES {
        let engine = engine(mode);
        let (mut store, inst) = setup(&engine);
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        store.interrupt_callback(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            Ok(InterruptAction::Continue)
        });
        store.interrupt_handle().unwrap().interrupt();
        let fib = inst.get_typed_func::<i64, i64>(&mut store, "fib").unwrap();
        assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }
}

/// An interrupt sent to an idle store, then cancelled, stops no later call
/// (a watchdog that fired just after the call it guarded); the store is
/// interruptible afterwards as before.
#[test]
fn a_cancelled_interrupt_stops_no_later_call() {
    let _serial = serial();
    for mode in [PAGE, PAGE_SEGMENT_PROBES, PAGE_VMCTX_PROBES, POINTER] {
        let engine = engine(mode);
        let (mut store, inst) = setup(&engine);
        let memory_inst = memory_loops(&mut store, false);
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        store.interrupt_callback(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            Ok(InterruptAction::Continue)
        });
        let handle = store.interrupt_handle().unwrap();
        handle.interrupt();
        handle.cancel();
        // Cancelling twice, or with nothing pending, does nothing.
        handle.cancel();
        let fib = inst.get_typed_func::<i64, i64>(&mut store, "fib").unwrap();
        assert_eq!(fib.call(&mut store, 20).unwrap(), 6765);
        let checksum_loop = memory_inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
        assert_eq!(checksum_loop.call(&mut store, 100_000).unwrap(), checksum(100_000) as i64);
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{mode:?}: a cancelled interrupt was taken");
        // Interrupts still work.
        let mut store_for_trap = store;
        store_for_trap.interrupt_callback(|_| Ok(InterruptAction::Trap));
        for f in
            [inst.get_typed_func::<(), ()>(&mut store_for_trap, "spin").unwrap(), memory_inst.get_typed_func::<(), ()>(&mut store_for_trap, "spin").unwrap()]
        {
            let requester = interrupt_later(&engine, &mut store_for_trap, mode, Duration::from_millis(5));
            expect_interrupted(f.call(&mut store_for_trap, ()).unwrap_err());
            requester.join().unwrap();
        }
    }
}

#[test]
fn two_stores_on_two_threads_are_interrupted_independently() {
    let _serial = serial();
    for mode in MMU_MODES {
        let engine = engine(mode);
        let (mut a, inst_a) = setup(&engine);
        let (mut b, inst_b) = setup(&engine);
        let handle_a = a.interrupt_handle().unwrap();
        let ta = std::thread::spawn(move || {
            let f = inst_a.get_typed_func::<(), ()>(&mut a, "spin").unwrap();
            f.call(&mut a, ()).unwrap_err()
        });
        let tb = std::thread::spawn(move || {
            let f = inst_b.get_typed_func::<i64, i64>(&mut b, "checksum").unwrap();
            f.call(&mut b, 50_000_000).unwrap()
        });
        std::thread::sleep(Duration::from_millis(30));
        handle_a.interrupt();
        expect_interrupted(ta.join().unwrap());
        assert_eq!(tb.join().unwrap() as u64, checksum(50_000_000));
    }
}

/// A guest of one store that calls, through a host function, into a guest of
/// another store is still interrupted through its own store afterwards: each
/// entry into Wasm points the thread at its store's probe page (the GS base,
/// with segment probes) and the previous one comes back when it returns.
#[test]
fn a_call_into_another_store_leaves_the_caller_interruptible() {
    let _serial = serial();
    const OUTER: &str = r#"(module
        (import "host" "other_store" (func $other))
        (func (export "run") (param i64) (result i64) (local $acc i64)
          ;; A loop that calls (once): segment probes where enabled.
          (loop (call $other))
          (loop $l
            (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005)) (local.get 0)))
            (br_if $l (i64.ne (local.tee 0 (i64.sub (local.get 0) (i64.const 1))) (i64.const 0))))
          (local.get $acc)))"#;
    for mode in MMU_MODES {
        let engine = engine(mode);
        let (inner_store, inner) = setup(&engine);
        let inner_store = Arc::new(std::sync::Mutex::new(inner_store));
        let mut linker = Linker::<()>::new(&engine);
        let s = inner_store.clone();
        linker
            .func_wrap("host", "other_store", move || -> anyhow::Result<()> {
                let mut store = s.lock().unwrap();
                let f = inner.get_typed_func::<i64, i64>(&mut *store, "checksum")?;
                assert_eq!(f.call(&mut *store, 100_000)? as u64, checksum(100_000));
                Ok(())
            })
            .unwrap();
        let module = Module::new(&engine, OUTER).unwrap();
        let mut store = Store::new(&engine, ());
        let outer = linker.instantiate(&mut store, &module).unwrap();
        let run = outer.get_typed_func::<i64, i64>(&mut store, "run").unwrap();
        assert_eq!(run.call(&mut store, 1000).map_err(|e| format!("{mode:?}: {e:?}")), Ok(checksum(1000) as i64));
        // The outer loop (about 4 s if never interrupted) stops on request.
        let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(20));
        let err = run.call(&mut store, 4_000_000_000).err().unwrap_or_else(|| panic!("{mode:?}: ran to completion, never interrupted"));
        expect_interrupted(err);
        requester.join().unwrap();
    }
}

/// A loop keeping 14 integer and 14 float values live across its header (the
/// interruption point), so that every allocatable register holds guest state.
/// With `calls`, the function also has a loop that calls, which gives its
/// loops segment probes instead of vmctx ones where those are enabled. With
/// `memory`, the loop also reads and writes memory, so that in page mode it
/// probes through the memory's base.
fn register_pressure_module(calls: bool, memory: bool) -> String {
    let n = 14;
    let mut wat = String::from("(module (memory 1) (func $nothing) (func (export \"run\") (param $n i32) (result i64)");
    for i in 0..n {
        wat.push_str(&format!(" (local $i{i} i64) (local $f{i} f64)"));
    }
    if calls {
        // A loop that calls (and runs once) makes the function one whose
        // loops all get segment probes.
        wat.push_str(" (loop (call $nothing))");
    }
    for i in 0..n {
        wat.push_str(&format!(" (local.set $i{i} (i64.const {})) (local.set $f{i} (f64.const {}.5))", i * 7 + 1, i + 1));
    }
    wat.push_str(" (loop $l");
    if memory {
        wat.push_str(" (local.set $i0 (i64.add (local.get $i0) (i64.load (i32.const 8)))) (i64.store (i32.const 8) (local.get $i1))");
    }
    for i in 0..n {
        let j = (i + 1) % n;
        wat.push_str(&format!(
            " (local.set $i{i} (i64.add (i64.rotl (local.get $i{i}) (i64.const 5)) (local.get $i{j})))
              (local.set $f{i} (f64.add (f64.mul (local.get $f{i}) (f64.const 0.5)) (local.get $f{j})))"
        ));
    }
    wat.push_str(" (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))");
    wat.push_str(" (i64.const 0)");
    for i in 0..n {
        wat.push_str(&format!(" (i64.xor (local.get $i{i})) (i64.add (i64.trunc_sat_f64_s (f64.mul (local.get $f{i}) (f64.const 1000))))"));
    }
    wat.push_str("))");
    wat
}

#[test]
fn registers_survive_interruptions() {
    let _serial = serial();
    for (calls, memory) in [(false, false), (true, false), (false, true)] {
        registers_survive_interruptions_of(&register_pressure_module(calls, memory), calls, memory);
    }
}

fn registers_survive_interruptions_of(wat: &str, calls: bool, memory: bool) {
    let iterations = 30_000_000;
    let expected = {
        let engine = Engine::default();
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
        inst.get_typed_func::<i32, i64>(&mut store, "run").unwrap().call(&mut store, iterations).unwrap()
    };
    let modes: &[Mode] = if memory { &[PAGE, PAGE_VMCTX_PROBES, PAGE_SEGMENT_PROBES, POINTER] } else { &MMU_MODES };
    for &mode in modes {
        let engine = engine(mode);
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let hits = Arc::new(AtomicU64::new(0));
        let h = hits.clone();
        store.interrupt_callback(move |_| {
            h.fetch_add(1, Ordering::SeqCst);
            // Clobber floating-point state in the hook too.
            std::hint::black_box(1.2345f64.sqrt() * 3.0);
            Ok(InterruptAction::Continue)
        });
        let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
        let handle = store.interrupt_handle().unwrap();
        let interrupter = Repeater::start(Duration::from_micros(100), move || handle.interrupt());
        let got = inst.get_typed_func::<i32, i64>(&mut store, "run").unwrap().call(&mut store, iterations).unwrap();
        interrupter.stop();
        assert_eq!(got, expected, "{mode:?}, calls {calls}, memory {memory}");
        assert!(hits.load(Ordering::SeqCst) > 50, "{mode:?}, calls {calls}, memory {memory}: {} interruptions", hits.load(Ordering::SeqCst));
    }
    // Epoch checks reach their callback through the same register-saving
    // stub (their slow path faults instead of calling).
    let engine = engine(EPOCH);
    let module = Module::new(&engine, wat).unwrap();
    let mut store = Store::new(&engine, ());
    let hits = Arc::new(AtomicU64::new(0));
    let h = hits.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        h.fetch_add(1, Ordering::SeqCst);
        std::hint::black_box(1.2345f64.sqrt() * 3.0);
        Ok(UpdateDeadline::Continue(1))
    });
    let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
    let ticker = Repeater::start(Duration::from_micros(100), move || engine.increment_epoch());
    let got = inst.get_typed_func::<i32, i64>(&mut store, "run").unwrap().call(&mut store, iterations).unwrap();
    ticker.stop();
    assert_eq!(got, expected, "Epoch");
    assert!(hits.load(Ordering::SeqCst) > 50, "Epoch: {} deadlines", hits.load(Ordering::SeqCst));
}

#[test]
fn engine_wide_interruption_stops_every_store() {
    let _serial = serial();
    for mode in MMU_MODES {
        let engine = engine(mode);
        let mut threads = Vec::new();
        for _ in 0..2 {
            let (mut store, inst) = setup(&engine);
            threads.push(std::thread::spawn(move || {
                let f = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
                f.call(&mut store, ()).unwrap_err()
            }));
        }
        std::thread::sleep(Duration::from_millis(30));
        engine.interrupt_all();
        for t in threads {
            expect_interrupted(t.join().unwrap());
        }
    }
}

/// Calls `name` (a loop with no calls, so only its loop probe can stop it),
/// expecting the interrupt already pending to stop it. A watchdog interrupts
/// again after 2 s so that a missed interrupt fails the test instead of
/// hanging it.
fn pending_interrupt_stops(store: &mut Store<()>, inst: weft::Instance, name: &str) {
    let handle = store.interrupt_handle().unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let watchdog_fired = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (done, fired) = (done.clone(), watchdog_fired.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            while !done.load(Ordering::SeqCst) {
                if start.elapsed() > Duration::from_secs(2) {
                    fired.store(true, Ordering::SeqCst);
                    handle.interrupt();
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let spin = inst.get_typed_func::<(), ()>(&mut *store, name).unwrap();
    expect_interrupted(spin.call(&mut *store, ()).unwrap_err());
    done.store(true, Ordering::SeqCst);
    watchdog.join().unwrap();
    assert!(!watchdog_fired.load(Ordering::SeqCst), "{name}: the pending interrupt was missed");
}

/// In page mode each instance's prologues (and, but for segment probes, its
/// loops) probe the page before its own vmctx: an instance created while an
/// interrupt is pending starts with that page revoked, and a function with
/// more loops than the page has bytes (whose last probes are atomic loads)
/// is interrupted in its last loop.
#[test]
fn probe_pages_of_later_instances_and_long_functions() {
    let _serial = serial();
    for mode in [PAGE, PAGE_SEGMENT_PROBES] {
        probe_pages_of_later_instances_and_long_functions_in(mode);
    }
}

fn probe_pages_of_later_instances_and_long_functions_in(mode: Mode) {
    let engine = engine(mode);
    let (mut store, _first) = setup(&engine);
    store.interrupt_handle().unwrap().interrupt();
    let module = Module::new(&engine, r#"(module (func (export "spin") (loop $l (br $l))))"#).unwrap();
    let second = weft::Instance::new(&mut store, &module, &[]).unwrap();
    pending_interrupt_stops(&mut store, second, "spin");

    let loops = "(loop)".repeat(4200);
    let long = Module::new(&engine, format!(r#"(module (func (export "spin") {loops} (loop $l (br $l))))"#)).unwrap();
    let third = weft::Instance::new(&mut store, &long, &[]).unwrap();
    store.interrupt_handle().unwrap().interrupt();
    pending_interrupt_stops(&mut store, third, "spin");
    // The store stays usable, with nothing pending.
    let ok = second.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(5));
    expect_interrupted(ok.call(&mut store, ()).unwrap_err());
    requester.join().unwrap();
}

/// An error from the epoch callback stops the guest and comes back to the
/// caller as the trap's source.
#[test]
fn an_epoch_callback_error_reaches_the_caller() {
    let _serial = serial();
    let engine = engine(EPOCH);
    let (mut store, inst) = setup(&engine);
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(|_| anyhow::bail!("out of fuel, says the host"));
    let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    let err = spin.call(&mut store, ()).unwrap_err();
    assert!(format!("{err:?}").contains("out of fuel, says the host"), "{err:?}");
    // The store stays usable.
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Continue(1_000_000)));
    let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    assert_eq!(ok.call(&mut store, ()).unwrap(), 42);
}

/// Loops that access memory: in page mode they probe the page below memory
/// 0's base (see `Config::mmu_memory_probes`). `checksum` keeps its
/// accumulator in memory and computes the same as `common::checksum`.
const MEMORY_LOOPS: &str = r#"
    (func (export "spin") (loop $l (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1))) (br $l)))
    (func (export "checksum") (param i64) (result i64)
      (loop $l
        (i64.store (i32.const 8) (i64.add (i64.mul (i64.load (i32.const 8)) (i64.const 6364136223846793005)) (local.get 0)))
        (br_if $l (i64.ne (local.tee 0 (i64.sub (local.get 0) (i64.const 1))) (i64.const 0))))
      (i64.load (i32.const 8)))"#;

/// An instance of [`MEMORY_LOOPS`] with a memory of its own, or with one the
/// host made and the module imports.
fn memory_loops(store: &mut Store<()>, imported: bool) -> weft::Instance {
    let engine = store.engine().clone();
    if imported {
        let module = Module::new(&engine, format!(r#"(module (import "host" "memory" (memory 1)) {MEMORY_LOOPS})"#)).unwrap();
        let memory = weft::Memory::new(&mut *store, weft::MemoryType::new(1, None)).unwrap();
        weft::Instance::new(&mut *store, &module, &[memory.into()]).unwrap()
    } else {
        let module = Module::new(&engine, format!("(module (memory 1) {MEMORY_LOOPS})")).unwrap();
        weft::Instance::new(&mut *store, &module, &[]).unwrap()
    }
}

/// A loop that accesses memory stops within 10 ms of the request, and
/// continuing it a thousand times gives the uninterrupted result, with the
/// memory defined by the module or imported from the host, and in page mode
/// probed through the memory's base or the vmctx.
#[test]
fn loops_that_access_memory_are_interrupted() {
    let _serial = serial();
    const N: u64 = 5_000_000;
    let expected = checksum(N) as i64;
    for mode in MEMORY_MODES {
        for imported in [false, true] {
            let engine = engine(mode);
            let mut store = Store::new(&engine, ());
            let inst = memory_loops(&mut store, imported);
            let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
            let mut latencies = Vec::new();
            for _ in 0..3 {
                let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(20));
                let err = spin.call(&mut store, ()).unwrap_err();
                latencies.push(Instant::now() - requester.join().unwrap());
                expect_interrupted(err);
                if latencies.last().unwrap() < &Duration::from_millis(10) {
                    break;
                }
            }
            assert!(latencies.iter().any(|l| *l < Duration::from_millis(10)), "{mode:?}, imported {imported}: {latencies:?}");

            let hits = interrupt_a_thousand_times(&mut store, mode);
            let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
            assert_eq!(f.call(&mut store, N as i64).unwrap(), expected, "{mode:?}, imported {imported}");
            assert_eq!(hits.load(Ordering::SeqCst), 1000, "{mode:?}, imported {imported}");
        }
    }
}

/// A memory created while an interrupt is pending starts with its probe page
/// revoked, like a vmctx's: the loop stops at its first probe.
#[test]
fn a_memory_created_with_an_interrupt_pending_starts_revoked() {
    let _serial = serial();
    for imported in [false, true] {
        let engine = engine(PAGE);
        let mut store = Store::new(&engine, ());
        store.interrupt_handle().unwrap().interrupt();
        let inst = memory_loops(&mut store, imported);
        pending_interrupt_stops(&mut store, inst, "spin");
    }
}

/// Pooled slots keep their memory's probe page readable between tenants: a
/// store that takes the slot of one dropped while interrupted (its probe
/// pages revoked) costs no mapping system call, runs without being stopped,
/// and is interrupted through the same page when asked.
#[test]
fn pooled_memory_probe_pages_are_reused_clean() {
    let _serial = serial();
    let mut config = Config::new();
    config.allocation_strategy(weft::InstanceAllocationStrategy::Pooling(weft::PoolingConfig {
        total_memories: 2,
        total_tables: 2,
        total_core_instances: 2,
        ..weft::PoolingConfig::default()
    }));
    let engine = engine_with(PAGE, config);
    let module = Module::new(&engine, format!("(module (memory 1) {MEMORY_LOOPS})")).unwrap();
    {
        let mut store = Store::new(&engine, ());
        let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
        let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
        assert_eq!(f.call(&mut store, 1000).unwrap(), checksum(1000) as i64);
        // Pending when the store goes away.
        store.interrupt_handle().unwrap().interrupt();
    }
    let mut store = Store::new(&engine, ());
    let before = weft::syscall_counts();
    let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
    let after = weft::syscall_counts();
    assert_eq!((after.mmap, after.mprotect), (before.mmap, before.mprotect), "{before:?} -> {after:?}");
    // No interrupt callback: an interruption here would trap.
    let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
    assert_eq!(f.call(&mut store, 1_000_000).unwrap(), checksum(1_000_000) as i64);
    let requester = interrupt_later(&engine, &mut store, PAGE, Duration::from_millis(5));
    let spin = inst.get_typed_func::<(), ()>(&mut store, "spin").unwrap();
    expect_interrupted(spin.call(&mut store, ()).unwrap_err());
    requester.join().unwrap();
}

/// Functions whose results do not fit in registers (nine or more i64 or f64
/// results) receive a hidden return-area pointer before the vmctx. Every
/// interruption mode must compile them, call them directly, indirectly and
/// through tail calls, and interrupt them: MMU page mode finds its
/// function-entry point in their prologue, whichever register holds the vmctx.
const MANY_RESULTS: &str = r#"(module
    (type $nine (func (result i64 i64 i64 i64 i64 i64 i64 i64 i64)))
    (type $seventeen (func (param f64) (result f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64)))
    (table funcref (elem $many $floats))
    (func $g)
    (func $many (export "many") (type $nine)
      call $g
      i64.const 0 i64.const 1 i64.const 2 i64.const 3 i64.const 4
      i64.const 5 i64.const 6 i64.const 7 i64.const 8)
    (func $floats (export "floats") (type $seventeen)
      (local.get 0) (call $g)
      (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0)
      (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0) (local.get 0))
    (func (export "indirect") (type $nine) (call_indirect (type $nine) (i32.const 0)))
    (func (export "tail") (type $nine) (return_call $many))
    (func (export "tail_indirect") (type $nine) (return_call_indirect (type $nine) (i32.const 0)))
    (func (export "floats_indirect") (param f64) (result f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64 f64)
      (call_indirect (type $seventeen) (local.get 0) (i32.const 1)))
    ;; Interrupted only at its entry in page mode (no loop, no ordinary call
    ;; but $g's, which is call-free).
    (func $tail_forever (export "tail_forever") (type $nine) (call $g) (return_call $tail_forever))
    ;; A loop that calls a many-results function.
    (func (export "loop_calling") (loop $l (call $many) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop) (br $l))))"#;

#[test]
fn functions_with_many_results_run_and_are_interrupted_in_every_mode() {
    let _serial = serial();
    let mut modes = vec![Mode { interruption: Interruption::None, segment_probes: false, memory_probes: false }];
    modes.extend(MEMORY_MODES);
    for mode in modes {
        let engine = engine(mode);
        let module = Module::new(&engine, MANY_RESULTS).unwrap_or_else(|e| panic!("{mode:?}: {e:#}"));
        let mut store = Store::new(&engine, ());
        store.set_epoch_deadline(u64::MAX / 2);
        let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
        for name in ["many", "indirect", "tail", "tail_indirect"] {
            let f = inst.get_typed_func::<(), (i64, i64, i64, i64, i64, i64, i64, i64, i64)>(&mut store, name).unwrap();
            assert_eq!(f.call(&mut store, ()).unwrap(), (0, 1, 2, 3, 4, 5, 6, 7, 8), "{mode:?} {name}");
        }
        for name in ["floats", "floats_indirect"] {
            let f = inst.get_func(&mut store, name).unwrap();
            let mut results = vec![weft::Val::F64(0); 17];
            f.call(&mut store, &[weft::Val::from(2.5f64)], &mut results).unwrap();
            assert!(results.iter().all(|v| v.f64() == Some(2.5)), "{mode:?} {name}: {results:?}");
        }
        if mode.interruption == Interruption::None {
            continue;
        }
        for name in ["tail_forever", "loop_calling"] {
            let f = inst.get_func(&mut store, name).unwrap();
            let results = f.ty(&store).results().len();
            let requester = interrupt_later(&engine, &mut store, mode, Duration::from_millis(10));
            let err = f.call(&mut store, &[], &mut vec![weft::Val::I64(0); results]).expect_err("never interrupted");
            requester.join().unwrap();
            expect_interrupted(err);
            store.set_epoch_deadline(u64::MAX / 2);
        }
        // The store is usable afterwards.
        let f = inst.get_typed_func::<(), (i64, i64, i64, i64, i64, i64, i64, i64, i64)>(&mut store, "many").unwrap();
        assert_eq!(f.call(&mut store, ()).unwrap().8, 8, "{mode:?}");
    }
}

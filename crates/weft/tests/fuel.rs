//! Fuel: exact consumption of known code, the same at every optimisation
//! level; what ran before a trap, and before a host function that reads or
//! sets the fuel; the out-of-fuel trap; a callback that refuels; yielding a
//! resumable call every N units and resuming it on another thread; all of
//! that inside a continuation under every interruption mode; and fuel in a
//! store whose engine does not count it.

use std::time::Duration;

use weft::{CallState, Caller, Config, Engine, Func, Instance, Interruption, Module, OptLevel, Store, Trap, UpdateDeadline, UpdateFuel, WasmBacktrace};

mod common;

/// `count(n)` runs `n` iterations of 5 operators (local.get, i32.const,
/// i32.sub, local.tee, br_if; loop, end and the function's end are free).
/// `mixed(n)` adds calls, a branch in the loop and a memory access.
const GUEST: &str = r#"(module
  (memory 1)
  (func (export "count") (param $n i32)
    (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func $twice (param i32) (result i32) (i32.add (local.get 0) (local.get 0)))
  (func (export "mixed") (param $n i32) (result i32) (local $acc i32)
    (loop $l
      (if (i32.and (local.get $n) (i32.const 1))
        (then (local.set $acc (call $twice (local.get $acc))))
        (else (local.set $acc (i32.add (local.get $acc) (i32.load (i32.const 0))))))
      (i32.store (i32.const 0) (local.get $n))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $acc)))"#;

fn engine(opt: OptLevel) -> (Engine, Module) {
    let mut config = Config::new();
    config.consume_fuel(true).cranelift_opt_level(opt);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, GUEST).unwrap();
    (engine, module)
}

/// Resumes a resumable call until it is done, every other time on a thread
/// of its own; returns its results and how many times it yielded.
fn run_to_completion<R: weft::WasmResults + Send + 'static>(store: &mut Store<()>, mut state: CallState<R>) -> (R, u32) {
    let mut yields = 0;
    loop {
        match state {
            CallState::Done(results) => return (results, yields),
            CallState::Suspended(s) => {
                yields += 1;
                state = if yields % 2 == 0 {
                    std::thread::scope(|t| t.spawn(|| s.resume(&mut *store).unwrap()).join().unwrap())
                } else {
                    s.resume(&mut *store).unwrap()
                };
            }
        }
    }
}

#[test]
fn a_known_loop_consumes_exactly_its_operators() {
    let (engine, module) = engine(OptLevel::Speed);
    let mut store = Store::new(&engine, ());
    store.set_fuel(1000).unwrap();
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let count = inst.get_typed_func::<i32, ()>(&mut store, "count").unwrap();
    count.call(&mut store, 10).unwrap();
    assert_eq!(store.get_fuel().unwrap(), 1000 - 5 * 10);
    count.call(&mut store, 1).unwrap();
    assert_eq!(store.get_fuel().unwrap(), 1000 - 5 * 11);
}

/// Each function calls a function that runs `n` iterations of `count`'s
/// loop (5 units each), then traps, in compiled code or in the runtime, or
/// calls the host, which reads the fuel or sets it; or loops itself, then
/// traps. (A trap in compiled code counts what ran up to the trapping
/// function's last call, refuel or entry.)
const AROUND_TRAPS: &str = r#"(module
  (import "host" "fuel" (func $fuel (result i64)))
  (import "host" "refill" (func $refill))
  (memory 1)
  (func $count (param $n i32)
    (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  (func (export "count_then_unreachable") (param $n i32)
    (call $count (local.get $n))
    (unreachable))
  (func (export "count_then_fill_out_of_bounds") (param $n i32)
    (call $count (local.get $n))
    (memory.fill (i32.const 0) (i32.const 0) (i32.const 0x20000)))
  (func (export "count_then_ask") (param $n i32) (result i64)
    (call $count (local.get $n))
    (call $fuel))
  (func (export "refill_then_count") (param $n i32)
    (call $refill)
    (call $count (local.get $n)))
  (func (export "loop_then_unreachable") (param $n i32)
    (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (unreachable)))"#;

#[test]
fn what_ran_before_a_trap_or_a_host_call_is_counted() {
    let (engine, _) = engine(OptLevel::Speed);
    let module = Module::new(&engine, AROUND_TRAPS).unwrap();
    let mut store = Store::new(&engine, ());
    let fuel = Func::wrap(&mut store, |caller: Caller<'_, ()>| caller.get_fuel().unwrap() as i64);
    let refill = Func::wrap(&mut store, |mut caller: Caller<'_, ()>| caller.set_fuel(10_000).unwrap());
    let inst = Instance::new(&mut store, &module, &[fuel.into(), refill.into()]).unwrap();
    let call = |store: &mut Store<()>, name: &str, n: i32| inst.get_typed_func::<i32, ()>(&mut *store, name).unwrap().call(store, n);

    // A call and its argument (2 units), then the callee's rounds; the
    // trap's own straight line is not charged.
    store.set_fuel(100_000).unwrap();
    let err = call(&mut store, "count_then_unreachable", 1000).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
    assert_eq!(store.get_fuel().unwrap(), 100_000 - 2 - 5 * 1000);

    store.set_fuel(100_000).unwrap();
    let err = call(&mut store, "count_then_fill_out_of_bounds", 1000).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    assert_eq!(store.get_fuel().unwrap(), 100_000 - 2 - 5 * 1000);

    // The host sees the guest's count up to and including its call.
    store.set_fuel(100_000).unwrap();
    let ask = inst.get_typed_func::<i32, i64>(&mut store, "count_then_ask").unwrap();
    assert_eq!(ask.call(&mut store, 1000).unwrap(), 100_000 - 2 - 5 * 1000 - 1);
    assert_eq!(store.get_fuel().unwrap(), 100_000 - 2 - 5 * 1000 - 1);

    // And what it sets is what the guest goes on with.
    store.set_fuel(100_000).unwrap();
    call(&mut store, "refill_then_count", 100).unwrap();
    assert_eq!(store.get_fuel().unwrap(), 10_000 - 2 - 5 * 100);

    // A refuel in the middle of a function that then traps without a call
    // stands: the trap counts from the refuel on (at most the 5,000 units
    // of the loop), not from before it.
    store.set_fuel(1_000).unwrap();
    store.out_of_fuel_callback(|_| Ok(UpdateFuel::Continue(100_000)));
    let err = call(&mut store, "loop_then_unreachable", 1000).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
    let left = store.get_fuel().unwrap();
    assert!((100_000 - 5 * 1000..=100_000).contains(&left), "{left} left");
}

#[test]
fn consumption_does_not_depend_on_the_optimisation_level() {
    let mut used = Vec::new();
    for opt in [OptLevel::None, OptLevel::Speed, OptLevel::SpeedAndSize] {
        let (engine, module) = engine(opt);
        let mut store = Store::new(&engine, ());
        store.set_fuel(1_000_000).unwrap();
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let mixed = inst.get_typed_func::<i32, i32>(&mut store, "mixed").unwrap();
        mixed.call(&mut store, 1000).unwrap();
        used.push(1_000_000 - store.get_fuel().unwrap());
    }
    assert!(used.iter().all(|u| *u == used[0]), "{used:?}");
    assert!(used[0] > 10_000, "{used:?}");
}

#[test]
fn running_out_traps_and_a_callback_can_refuel() {
    let (engine, module) = engine(OptLevel::Speed);
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let count = inst.get_typed_func::<i32, ()>(&mut store, "count").unwrap();
    // A new store has no fuel.
    let err = count.call(&mut store, 1).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::OutOfFuel));
    store.set_fuel(100).unwrap();
    let err = count.call(&mut store, 1000).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::OutOfFuel), "{err:?}");
    // Refuelled 100 at a time: 5,000 units take 50 refuels or so.
    let refuels = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let r = refuels.clone();
    store.out_of_fuel_callback(move |_| {
        r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(UpdateFuel::Continue(100))
    });
    store.set_fuel(0).unwrap();
    count.call(&mut store, 1000).unwrap();
    let n = refuels.load(std::sync::atomic::Ordering::SeqCst);
    assert!((49..=52).contains(&n), "{n} refuels");
    // The callback can stop the guest too, or fail it with its own error.
    store.out_of_fuel_callback(|_| Ok(UpdateFuel::Trap));
    assert_eq!(count.call(&mut store, 1000).unwrap_err().downcast_ref::<Trap>(), Some(&Trap::OutOfFuel));
    store.out_of_fuel_callback(|_| anyhow::bail!("budget exhausted"));
    let err = count.call(&mut store, 1000).unwrap_err();
    assert!(err.chain().any(|c| c.to_string() == "budget exhausted"), "{err:?}");
}

#[test]
fn a_resumable_call_yields_every_interval_and_resumes_on_another_thread() {
    let _watchdog = common::Watchdog::arm(Duration::from_secs(120));
    let (engine, module) = engine(OptLevel::Speed);
    let mut store = Store::new(&engine, ());
    store.set_fuel(1_000_000).unwrap();
    store.fuel_async_yield_interval(Some(10_000)).unwrap();
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let count = inst.get_typed_func::<i32, ()>(&mut store, "count").unwrap();
    let state = count.call_resumable(&mut store, 20_000).unwrap();
    let ((), yields) = run_to_completion(&mut store, state);
    assert!((9..=11).contains(&yields), "{yields} yields for 100,000 units at 10,000 each");
    assert_eq!(store.get_fuel().unwrap(), 1_000_000 - 100_000);
    // A plain call does not yield.
    count.call(&mut store, 20_000).unwrap();
    assert_eq!(store.get_fuel().unwrap(), 1_000_000 - 200_000);
}

#[test]
fn fuel_in_an_engine_that_does_not_count_it_is_an_error() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    assert!(store.set_fuel(10).is_err());
    assert!(store.get_fuel().is_err());
    assert!(store.fuel_async_yield_interval(Some(10)).is_err());
}

#[test]
fn running_out_inside_a_continuation_refuels_yields_or_traps_in_every_interruption_mode() {
    // When a check finds the counter spent, compiled code hands it to the
    // runtime in r15 through a load from a page that always faults (no
    // call); the runtime refuels r15 or traps. Here that happens inside a
    // continuation (on its small stack), under every interruption mode
    // (whose own faults the signal handler must tell apart), and what ran
    // is counted exactly whichever way the fuel came (a refuel pays the
    // overrun of the check that ran out first).
    let _watchdog = common::Watchdog::arm(Duration::from_secs(120));
    let wat = r#"(module
      (type $f (func))
      (type $k (cont $f))
      (tag $tick)
      (global $n (mut i32) (i32.const 0))
      (func $spin (param $n i32)
        (loop $l (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
      ;; Counts down $n in rounds of 1000, suspending after each.
      (func $worker
        (loop $l
          (call $spin (i32.const 1000))
          (suspend $tick)
          (br_if $l (global.set $n (i32.sub (global.get $n) (i32.const 1))) (global.get $n))))
      (elem declare func $worker)
      (func $run (export "run") (param $rounds i32) (result i32) (local $k (ref null $k)) (local $resumes i32)
        (global.set $n (local.get $rounds))
        (local.set $k (cont.new $k (ref.func $worker)))
        (loop $l
          (block $done
            (block $ticked (result (ref $k))
              (resume $k (on $tick $ticked) (local.get $k))
              (br $done))
            (local.set $k)
            (local.set $resumes (i32.add (local.get $resumes) (i32.const 1)))
            (br $l)))
        (local.get $resumes)))"#;
    let modes = [Interruption::None, Interruption::Epoch, Interruption::MmuPage, Interruption::MmuPointer];
    for mode in modes {
        let mut config = Config::new();
        config.consume_fuel(true).interruption(mode);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wat).unwrap();
        let epoch_faults = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let new_store = |fuel: u64| {
            let mut store = Store::new(&engine, ());
            if mode == Interruption::Epoch {
                // The deadline is always reached, so epoch checks fault on
                // the same page as fuel checks, in between them.
                store.set_epoch_deadline(0);
                let faults = epoch_faults.clone();
                store.epoch_deadline_callback(move |_| {
                    faults.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    Ok(UpdateDeadline::Continue(0))
                });
            }
            store.set_fuel(fuel).unwrap();
            let inst = Instance::new(&mut store, &module, &[]).unwrap();
            let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
            (store, run)
        };
        // Plenty of fuel: what 20 rounds consume.
        let plenty = 1 << 40;
        let (mut store, run) = new_store(plenty);
        assert_eq!(run.call(&mut store, 20).unwrap(), 20, "{mode:?}");
        let consumed = plenty - store.get_fuel().unwrap();
        assert!(consumed > 20 * 5000, "{mode:?}: {consumed}");
        if mode == Interruption::Epoch {
            assert!(epoch_faults.load(std::sync::atomic::Ordering::SeqCst) > 20, "the epoch checks faulted too");
        }

        // Refuelled 1,000 at a time by the callback: the same consumption.
        let (mut store, run) = new_store(500);
        let refuels = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let r = refuels.clone();
        store.out_of_fuel_callback(move |_| {
            r.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(UpdateFuel::Continue(1000))
        });
        assert_eq!(run.call(&mut store, 20).unwrap(), 20, "{mode:?}");
        let refuels = refuels.load(std::sync::atomic::Ordering::SeqCst);
        assert!(refuels >= consumed / 1000, "{mode:?}: {refuels} refuels");
        assert_eq!(500 + 1000 * refuels - store.get_fuel().unwrap(), consumed, "{mode:?}: refuelled consumption");

        // Yielding every 3,000 units from inside the continuation, resumed on
        // another thread every other time: the same consumption again.
        let (mut store, run) = new_store(plenty);
        store.fuel_async_yield_interval(Some(3000)).unwrap();
        let state = run.call_resumable(&mut store, 20).unwrap();
        let (result, yields) = run_to_completion(&mut store, state);
        assert_eq!(result, 20, "{mode:?}");
        assert!(yields as u64 >= consumed / 3000, "{mode:?}: {yields} yields");
        assert_eq!(plenty - store.get_fuel().unwrap(), consumed, "{mode:?}: consumption with yields");

        // Too little fuel: the trap, with the backtrace through the
        // continuation back to the host's call, and all of it counted.
        let (mut store, run) = new_store(consumed / 2);
        let err = run.call(&mut store, 20).unwrap_err();
        assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::OutOfFuel), "{mode:?}: {err:?}");
        let names: Vec<&str> = err.downcast_ref::<WasmBacktrace>().expect("a backtrace").frames().iter().filter_map(|f| f.func_name()).collect();
        // (It runs out in `spin`'s loop or at `worker`'s, by the operator count.)
        assert!(names == ["spin", "worker", "run"] || names == ["worker", "run"], "{mode:?}: {names:?}");
        assert_eq!(store.get_fuel().unwrap(), 0, "{mode:?}");
        // The store goes on.
        store.set_fuel(plenty).unwrap();
        assert_eq!(run.call(&mut store, 20).unwrap(), 20, "{mode:?}");
    }
}

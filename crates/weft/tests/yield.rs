//! Yielding: an interrupted guest is suspended with its stack kept, control
//! returns to the embedder, and the call is resumed later, on the same thread or
//! another. Several guests share one thread round-robin without cooperating.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use weft::{CallState, Config, Engine, Instance, InterruptAction, Interruption, Module, Store, UpdateDeadline};

const GUEST: &str = r#"(module
    (func $mix (param i64 i64) (result i64) (i64.add (i64.mul (local.get 0) (i64.const 6364136223846793005)) (local.get 1)))
    (func (export "checksum") (param i64) (result i64) (local $acc i64)
      (loop $l
        (local.set $acc (call $mix (local.get $acc) (local.get 0)))
        (br_if $l (i64.ne (local.tee 0 (i64.sub (local.get 0) (i64.const 1))) (i64.const 0))))
      (local.get $acc))
    (func (export "call_then_checksum") (param i64) (result i64) (local $acc i64)
      ;; A loop that calls (once): segment probes where enabled.
      (loop (drop (call $mix (i64.const 0) (i64.const 0))))
      (loop $l
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 6364136223846793005)) (local.get 0)))
        (br_if $l (i64.ne (local.tee 0 (i64.sub (local.get 0) (i64.const 1))) (i64.const 0))))
      (local.get $acc))
    (func (export "ok") (result i32) (i32.const 1)))"#;

mod common;
use common::{checksum, Repeater, Watchdog};

/// An epoch callback that yields the first time the deadline is reached and
/// then lets the guest run to its end.
fn yield_once() -> impl FnMut(weft::StoreContextMut<'_, ()>) -> anyhow::Result<UpdateDeadline> + Send + 'static {
    let mut yielded = false;
    move |_| Ok(if std::mem::replace(&mut yielded, true) { UpdateDeadline::Continue(u64::MAX / 2) } else { UpdateDeadline::Yield(0) })
}

fn setup(mode: Interruption) -> (Engine, Module) {
    let mut config = Config::new();
    config.interruption(mode);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, GUEST).unwrap();
    (engine, module)
}

#[test]
fn epoch_yield_suspends_and_resumes_with_the_same_result() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    let (engine, module) = setup(Interruption::Epoch);
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let yields = Arc::new(AtomicU64::new(0));
    let y = yields.clone();
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(move |_| {
        let n = y.fetch_add(1, Ordering::SeqCst) + 1;
        Ok(if n <= 50 { UpdateDeadline::Yield(0) } else { UpdateDeadline::Continue(u64::MAX / 2) })
    });
    let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
    let mut state = f.call_resumable(&mut store, 1_000_000).unwrap();
    let mut suspensions = 0;
    loop {
        match state {
            CallState::Done(v) => {
                assert_eq!(v as u64, checksum(1_000_000));
                break;
            }
            CallState::Suspended(s) => {
                suspensions += 1;
                // While suspended, the store refuses other calls.
                let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
                assert!(ok.call(&mut store, ()).is_err());
                state = s.resume(&mut store).unwrap();
            }
        }
    }
    assert_eq!(suspensions, 50);
}

#[test]
fn resume_on_another_thread() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    let (engine, module) = setup(Interruption::Epoch);
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    store.set_epoch_deadline(0);
    store.epoch_deadline_callback(yield_once());
    let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
    let CallState::Suspended(suspended) = f.call_resumable(&mut store, 300_000).unwrap() else { panic!("expected a suspension") };
    let result = std::thread::spawn(move || {
        let mut store = store;
        match suspended.resume(&mut store).unwrap() {
            CallState::Done(v) => v,
            CallState::Suspended(_) => panic!("suspended twice"),
        }
    })
    .join()
    .unwrap();
    assert_eq!(result as u64, checksum(300_000));
}

#[test]
fn round_robin_of_guests_on_one_thread() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    let (engine, module) = setup(Interruption::Epoch);
    let ticker = {
        let engine = engine.clone();
        Repeater::start(Duration::from_micros(200), move || engine.increment_epoch())
    };
    let sizes = [30_000_000u64, 20_000_000, 25_000_000];
    let mut guests = Vec::new();
    let mut states = Vec::new();
    for (i, n) in sizes.iter().enumerate() {
        let mut store = Store::new(&engine, 0u64);
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            *ctx.data_mut() += 1;
            Ok(UpdateDeadline::Yield(1))
        });
        let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
        states.push(Some(f.call_resumable(&mut store, *n as i64).unwrap()));
        guests.push((i, store));
    }
    let mut results = [0u64; 3];
    let mut pending = 3;
    while pending > 0 {
        for (i, store) in guests.iter_mut() {
            match states[*i].take() {
                Some(CallState::Suspended(s)) => states[*i] = Some(s.resume(&mut *store).unwrap()),
                Some(CallState::Done(v)) => {
                    results[*i] = v as u64;
                    pending -= 1;
                }
                None => {}
            }
        }
    }
    ticker.stop();
    for (i, n) in sizes.iter().enumerate() {
        assert_eq!(results[i], checksum(*n));
        assert!(*guests[i].1.data() > 0, "guest {i} was never preempted");
    }
}

#[test]
fn mmu_yield_and_dropping_a_suspended_call() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    for mode in [Interruption::MmuPage, Interruption::MmuPointer] {
        let (engine, module) = setup(mode);
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        store.interrupt_callback(|_| Ok(InterruptAction::Yield));
        let handle = store.interrupt_handle().unwrap();
        handle.interrupt();
        let f = inst.get_typed_func::<i64, i64>(&mut store, "checksum").unwrap();
        let CallState::Suspended(s) = f.call_resumable(&mut store, 1000).unwrap() else { panic!("{mode:?}: expected a suspension") };
        let CallState::Done(v) = s.resume(&mut store).unwrap() else { panic!("{mode:?}: expected completion") };
        assert_eq!(v as u64, checksum(1000));
        // Abandon a suspended call: the store works again afterwards.
        handle.interrupt();
        let CallState::Suspended(s) = f.call_resumable(&mut store, 1000).unwrap() else { panic!("{mode:?}: expected a suspension") };
        drop(s);
        let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
        assert_eq!(ok.call(&mut store, ()).unwrap(), 1);
        assert_eq!(f.call(&mut store, 1000).unwrap() as u64, checksum(1000));
    }
}

/// A guest suspended at a loop probe (a loop without calls, so that the
/// interruption is the loop's, not a prologue's, in a function with another
/// loop that calls, so that the probe is a segment probe where those are
/// enabled) resumes on other threads, several times, and is interrupted
/// there again: the resumed fiber gets its GS base back on whatever thread
/// runs it.
/// Whether this host lets user code set the GS base (FSGSBASE: the CPU
/// flag, which Linux 5.9 and later enable).
fn host_allows_segment_probes() -> bool {
    std::fs::read_to_string("/proc/cpuinfo").is_ok_and(|c| c.split_whitespace().any(|w| w == "fsgsbase"))
}

#[test]
fn mmu_page_yield_in_a_loop_resumes_on_other_threads() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    for segment_probes in [true, false] {
        let mut config = Config::new();
        config.interruption(Interruption::MmuPage).mmu_segment_probes(segment_probes);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, GUEST).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        store.interrupt_callback(|_| Ok(InterruptAction::Yield));
        let handle = store.interrupt_handle().unwrap();
        let f = inst.get_typed_func::<i64, i64>(&mut store, "call_then_checksum").unwrap();
        assert_eq!(engine.config().segment_probes(), segment_probes && host_allows_segment_probes());
        // About half a second of work, interrupted every 2 ms until it has
        // been resumed three times.
        let n = 300_000_000u64;
        let mut ticker = Some(Repeater::start(Duration::from_millis(2), move || handle.interrupt()));
        let mut state = f.call_resumable(&mut store, n as i64).unwrap();
        let mut resumptions = 0;
        let value = loop {
            match state {
                CallState::Done(v) => break v,
                CallState::Suspended(s) => {
                    resumptions += 1;
                    // Each resumption on a thread of its own, which first runs
                    // a guest of another store: with segment probes that
                    // leaves the thread's GS base at the other store's probe
                    // page (a new thread inherits its creator's base), where
                    // the resumed loop's probes would never see this store's
                    // interrupts unless the fiber puts its own base back.
                    let (engine, module) = (engine.clone(), module.clone());
                    (state, store) = std::thread::spawn(move || {
                        let mut other = Store::new(&engine, ());
                        let other_inst = Instance::new(&mut other, &module, &[]).unwrap();
                        assert_eq!(other_inst.get_typed_func::<(), i32>(&mut other, "ok").unwrap().call(&mut other, ()).unwrap(), 1);
                        let mut store = store;
                        (s.resume(&mut store).unwrap(), store)
                    })
                    .join()
                    .unwrap();
                    if resumptions == 3 {
                        ticker.take().unwrap().stop();
                    }
                }
            }
        };
        assert!(resumptions >= 3, "segment probes {segment_probes}: {resumptions} resumptions");
        assert_eq!(value as u64, checksum(n), "segment probes {segment_probes}");
    }
}

/// A memory created while a call is suspended, which the resumed code then
/// writes (through a table the host filled), is restored before its pool slot
/// is reused: resuming counts as entering Wasm.
#[test]
fn a_memory_written_after_a_resume_is_restored_for_the_next_tenant() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    let mut config = Config::new();
    config.interruption(Interruption::Epoch);
    config.allocation_strategy(weft::InstanceAllocationStrategy::Pooling(weft::PoolingConfig { total_memories: 1, ..Default::default() }));
    let engine = Engine::new(&config).unwrap();
    let caller = Module::new(
        &engine,
        r#"(module (type $t (func)) (table (export "t") 1 funcref)
            (func (export "go") (local $n i32)
              (loop $l (br_if $l (i32.ne (local.tee $n (i32.add (local.get $n) (i32.const 1))) (i32.const 1000))))
              (call_indirect (type $t) (i32.const 0))))"#,
    )
    .unwrap();
    let writer = Module::new(&engine, r#"(module (memory (export "m") 1) (func (export "w") (i32.store8 (i32.const 0) (i32.const 0x55))))"#).unwrap();
    {
        let mut store = Store::new(&engine, ());
        let go = Instance::new(&mut store, &caller, &[]).unwrap();
        store.set_epoch_deadline(0);
        store.epoch_deadline_callback(yield_once());
        let f = go.get_typed_func::<(), ()>(&mut store, "go").unwrap();
        let CallState::Suspended(suspended) = f.call_resumable(&mut store, ()).unwrap() else { panic!("the call should have yielded") };
        // Made while the call is suspended: no Wasm has run since.
        let w = Instance::new(&mut store, &writer, &[]).unwrap();
        let write = w.get_func(&mut store, "w").unwrap();
        go.get_table(&mut store, "t").unwrap().set(&mut store, 0, weft::Ref::Func(Some(write))).unwrap();
        assert!(matches!(suspended.resume(&mut store).unwrap(), CallState::Done(())));
    }
    let mut store = Store::new(&engine, ());
    let w = Instance::new(&mut store, &writer, &[]).unwrap();
    let mut byte = [0];
    w.get_memory(&mut store, "m").unwrap().read(&store, 0, &mut byte).unwrap();
    assert_eq!(byte[0], 0, "the last tenant's write leaked");
}

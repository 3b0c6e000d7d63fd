//! Exception handling through the embedding API: the host throws and Wasm
//! catches; Wasm throws and the host catches and reads the payload; an
//! exception crossing Wasm -> host -> Wasm; traps are never caught; a million
//! throws with flat memory; exception references kept alive by globals
//! across collections; uncaught exceptions' backtraces; interruption and
//! yield inside `try_table` bodies and handlers; pooled instances and reset.

use std::time::Duration;

use weft::{
    CallState, Config, Engine, ExnRef, ExnRefPre, ExnType, Func, FuncType, Instance, InstanceAllocationStrategy, Interruption, Linker, Module, PoolingConfig,
    Store, Tag, TagType, ThrownException, Trap, UpdateDeadline, Val, ValType, WasmBacktrace,
};

mod common;
use common::Watchdog;

fn i32_tag(store: &mut Store<()>) -> (Tag, TagType) {
    let ty = TagType::new(FuncType::new(store.engine(), [ValType::I32], []));
    (Tag::new(&mut *store, &ty).unwrap(), ty)
}

/// Resident memory of the process, in bytes.
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

#[test]
fn host_throws_and_wasm_catches() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let (tag, ty) = i32_tag(&mut store);
    let pre = ExnRefPre::new(&mut store, ExnType::from_tag_type(&ty).unwrap());
    let thrower = Func::wrap(&mut store, move |mut caller: weft::Caller<'_, ()>, v: i32| -> weft::Result<()> {
        let exn = ExnRef::new(&mut caller, &pre, &tag, &[Val::I32(v * 2)])?;
        Err(caller.throw::<()>(exn).unwrap_err().into())
    });
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "tag" (tag $t (param i32)))
        (import "host" "throw" (func $throw (param i32)))
        (func (export "run") (param i32) (result i32)
          (block $caught (result i32)
            (try_table (catch $t $caught) (call $throw (local.get 0)))
            (i32.const -1))))"#,
    )
    .unwrap();
    let inst = Instance::new(&mut store, &module, &[tag.into(), thrower.into()]).unwrap();
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 21).unwrap(), 42);
    assert!(!store.has_pending_exception());
}

#[test]
fn wasm_throws_and_the_host_reads_the_payload_and_backtrace() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (tag $e (export "e") (param i32 i64 f64))
        (func $deep (param i32) (throw $e (local.get 0) (i64.const -5) (f64.const 2.5)))
        (func $middle (param i32) (call $deep (local.get 0)))
        (func $run (export "run") (param i32) (call $middle (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let run = inst.get_typed_func::<i32, ()>(&mut store, "run").unwrap();
    let err = run.call(&mut store, 9).unwrap_err();
    assert!(err.is::<ThrownException>(), "{err:?}");
    assert!(err.downcast_ref::<Trap>().is_none(), "an exception is not a trap");
    let bt = err.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    let names: Vec<_> = bt.frames().iter().map(|f| f.func_name().unwrap_or("?").to_string()).collect();
    assert_eq!(names, ["deep", "middle", "run"]);
    let exn = store.take_pending_exception().unwrap();
    assert!(store.take_pending_exception().is_none());
    let tag = inst.get_export(&mut store, "e").unwrap().into_tag().unwrap();
    assert_eq!(exn.tag(&store).unwrap(), tag);
    let fields: Vec<Val> = exn.fields(&store).unwrap().collect();
    assert_eq!(fields[0].unwrap_i32(), 9);
    assert_eq!(fields[1].unwrap_i64(), -5);
    assert_eq!(fields[2].unwrap_f64(), 2.5);
    assert!(exn.field(&store, 3).is_err());
    assert_eq!(exn.ty(&store).unwrap().ty().params().len(), 3);
}

#[test]
fn an_exception_crosses_host_frames_both_ways() {
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    // The host calls back into Wasm, which throws; the host passes the
    // error on with `?`, and the outer Wasm catches it.
    linker
        .func_wrap("host", "reenter", |mut caller: weft::Caller<'_, ()>, v: i32| -> weft::Result<i32> {
            let f = caller.get_export("inner").unwrap().into_func().unwrap().typed::<i32, i32>(&caller)?;
            let r = f.call(&mut caller, v)?;
            Ok(r + 1000)
        })
        .unwrap();
    // The host catches, inspects and throws it on itself.
    linker
        .func_wrap("host", "inspect", |mut caller: weft::Caller<'_, ()>, v: i32| -> weft::Result<i32> {
            let f = caller.get_export("inner").unwrap().into_func().unwrap().typed::<i32, i32>(&caller)?;
            match f.call(&mut caller, v) {
                Err(e) if e.is::<ThrownException>() => {
                    let exn = caller.take_pending_exception().unwrap();
                    assert_eq!(exn.field(&caller, 0)?.unwrap_i32(), v);
                    Err(caller.throw::<()>(exn).unwrap_err().into())
                }
                other => other,
            }
        })
        .unwrap();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "reenter" (func $reenter (param i32) (result i32)))
        (import "host" "inspect" (func $inspect (param i32) (result i32)))
        (tag $t (param i32))
        (func (export "inner") (param i32) (result i32)
          (if (local.get 0) (then (throw $t (local.get 0))))
          (i32.const 5))
        (func (export "outer") (param i32) (result i32)
          (block $caught (result i32)
            (try_table (catch $t $caught) (return (call $reenter (local.get 0))))
            (unreachable)))
        (func (export "outer_inspect") (param i32) (result i32)
          (block $caught (result i32)
            (try_table (catch $t $caught) (return (call $inspect (local.get 0))))
            (unreachable))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let outer = inst.get_typed_func::<i32, i32>(&mut store, "outer").unwrap();
    assert_eq!(outer.call(&mut store, 0).unwrap(), 1005);
    assert_eq!(outer.call(&mut store, 77).unwrap(), 77);
    let outer = inst.get_typed_func::<i32, i32>(&mut store, "outer_inspect").unwrap();
    assert_eq!(outer.call(&mut store, 0).unwrap(), 1005 - 1000);
    assert_eq!(outer.call(&mut store, 31).unwrap(), 31);
    assert!(!store.has_pending_exception());
}

#[test]
fn traps_are_never_caught() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "fail" (func $fail))
        (func $trap (unreachable))
        (func (export "trap") (result i32)
          (block $c (try_table (catch_all $c) (call $trap)) (return (i32.const 1)))
          (i32.const 2))
        (func (export "host_error") (result i32)
          (block $c (try_table (catch_all $c) (call $fail)) (return (i32.const 1)))
          (i32.const 2)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let fail = Func::wrap(&mut store, || -> weft::Result<()> { anyhow::bail!("host failure") });
    let inst = Instance::new(&mut store, &module, &[fail.into()]).unwrap();
    let err = inst.get_typed_func::<(), i32>(&mut store, "trap").unwrap().call(&mut store, ()).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
    let err = inst.get_typed_func::<(), i32>(&mut store, "host_error").unwrap().call(&mut store, ()).unwrap_err();
    assert!(err.chain().any(|c| c.to_string().contains("host failure")), "{err:?}");
    assert!(!store.has_pending_exception());
}

#[test]
fn a_million_throws_keep_memory_flat() {
    // The resident set is the process's: measured in a process of its own,
    // away from the tests running beside this one.
    if std::env::var_os("WEFT_EXCEPTIONS_CHILD").is_none() {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["a_million_throws_keep_memory_flat", "--exact", "--nocapture", "--test-threads=1"])
            .env("WEFT_EXCEPTIONS_CHILD", "1")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success() && text.contains("1 passed"), "{text}");
        eprintln!("{text}");
        return;
    }
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let (tag, ty) = i32_tag(&mut store);
    let pre = ExnRefPre::new(&mut store, ExnType::from_tag_type(&ty).unwrap());
    let thrower = Func::wrap(&mut store, move |mut caller: weft::Caller<'_, ()>, v: i32| -> weft::Result<()> {
        let exn = ExnRef::new(&mut caller, &pre, &tag, &[Val::I32(v)])?;
        Err(caller.throw::<()>(exn).unwrap_err().into())
    });
    let module = Module::new(
        &engine,
        r#"(module
        (import "host" "tag" (tag $t (param i32)))
        (import "host" "throw" (func $host_throw (param i32)))
        (func $throw (param i32) (throw $t (local.get 0)))
        ;; `catch`: the exception is freed by its handler.
        (func (export "catch") (param $n i32) (result i32) (local $sum i32)
          (loop $l
            (block $c (result i32)
              (try_table (catch $t $c) (call $throw (local.get $n)))
              (unreachable))
            (local.set $sum (i32.add (local.get $sum)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
          (local.get $sum))
        ;; `catch_ref`, then dropped: only the collector can free it.
        (func (export "catch_ref") (param $n i32) (result i32) (local $sum i32)
          (loop $l
            (block $c (result i32 exnref)
              (try_table (catch_ref $t $c) (call $throw (local.get $n)))
              (unreachable))
            (drop)
            (local.set $sum (i32.add (local.get $sum)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
          (local.get $sum))
        ;; Thrown by the host each time.
        (func (export "host") (param $n i32) (result i32) (local $sum i32)
          (loop $l
            (block $c (result i32)
              (try_table (catch $t $c) (call $host_throw (local.get $n)))
              (unreachable))
            (local.set $sum (i32.add (local.get $sum)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
          (local.get $sum)))"#,
    )
    .unwrap();
    let inst = Instance::new(&mut store, &module, &[tag.into(), thrower.into()]).unwrap();
    let expected = |n: i64| ((n * (n + 1) / 2) as u64 as u32) as i32;
    for (name, n) in [("catch", 1_000_000), ("catch_ref", 1_000_000), ("host", 200_000)] {
        let f = inst.get_typed_func::<i32, i32>(&mut store, name).unwrap();
        // A first round reaches the steady state; the second must not grow.
        assert_eq!(f.call(&mut store, n / 10).unwrap(), expected(n as i64 / 10));
        let before = rss();
        assert_eq!(f.call(&mut store, n).unwrap(), expected(n as i64), "{name}");
        let grown = rss().saturating_sub(before);
        eprintln!("{name}: live {} grown {grown}", store.live_exceptions());
        assert!(grown < 4 << 20, "{name}: {n} throws grew the resident set by {grown} bytes");
        assert!(store.live_exceptions() <= 4096, "{name}: {} exception objects still live", store.live_exceptions());
    }
}

#[test]
fn exceptions_referenced_from_globals_and_tables_survive_collections() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (tag $t (param i32))
        (global $kept (mut exnref) (ref.null exn))
        (table $tab 4 exnref)
        (func $catch_ref (param i32) (result exnref)
          (block $c (result i32 exnref)
            (try_table (catch_ref $t $c) (throw $t (local.get 0)))
            (unreachable))
          (return))
        (func $payload (param exnref) (result i32)
          (block $c (result i32)
            (try_table (catch $t $c) (throw_ref (local.get 0)))
            (unreachable)))
        (func (export "run") (param $n i32) (result i32) (local $held exnref)
          (global.set $kept (call $catch_ref (i32.const 111)))
          (table.set $tab (i32.const 2) (call $catch_ref (i32.const 222)))
          (local.set $held (call $catch_ref (i32.const 333)))
          ;; Garbage enough for several collections.
          (loop $l
            (drop (call $catch_ref (local.get $n)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
          (i32.add (i32.add (call $payload (global.get $kept)) (call $payload (table.get $tab (i32.const 2))))
                   (call $payload (local.get $held)))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 20_000).unwrap(), 666);
    assert!(store.live_exceptions() < 4096, "{} live", store.live_exceptions());
    // Outside any call, a collection keeps exactly what the global and the
    // table still hold.
    store.gc(None);
    assert_eq!(store.live_exceptions(), 2);
}

#[test]
fn exnref_values_reach_the_host_and_go_back() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (tag $t (export "t") (param i64))
        (func (export "make") (param i64) (result exnref)
          (block $c (result i64 exnref)
            (try_table (catch_ref $t $c) (throw $t (local.get 0)))
            (unreachable))
          (return))
        (func (export "rethrow") (param exnref) (throw_ref (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let make = inst.get_func(&mut store, "make").unwrap();
    let mut out = [Val::I32(0)];
    make.call(&mut store, &[Val::I64(77)], &mut out).unwrap();
    let Val::ExnRef(Some(exn)) = out[0] else { panic!("expected an exnref, got {:?}", out[0]) };
    assert_eq!(exn.field(&store, 0).unwrap().unwrap_i64(), 77);
    let rethrow = inst.get_func(&mut store, "rethrow").unwrap();
    let err = rethrow.call(&mut store, &[Val::ExnRef(Some(exn))], &mut []).unwrap_err();
    assert!(err.is::<ThrownException>());
    assert_eq!(store.take_pending_exception(), Some(exn));
    // A null exnref traps in throw_ref.
    let err = rethrow.call(&mut store, &[Val::ExnRef(None)], &mut []).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::NullReference));
}

/// A body that loops in a `try_table` and throws out of it, and a handler
/// that loops: interruption must reach both.
const LOOPING: &str = r#"(module
    (tag $t (param i64))
    (func $spin (param $n i64) (result i64)
      (loop $l (br_if $l (i64.ne (local.tee $n (i64.sub (local.get $n) (i64.const 1))) (i64.const 0))))
      (local.get $n))
    (func (export "in_body") (param $n i64) (result i64)
      (block $c (result i64)
        (try_table (catch $t $c)
          (loop $l (br_if $l (i64.ne (local.tee $n (i64.sub (local.get $n) (i64.const 1))) (i64.const 0))))
          (throw $t (i64.const 5)))
        (unreachable)))
    (func (export "in_handler") (param $n i64) (result i64)
      (block $c (result i64)
        (try_table (catch $t $c) (throw $t (local.get $n)))
        (unreachable))
      (call $spin)
      (i64.add (i64.const 7))))"#;

#[test]
fn interrupts_reach_try_bodies_and_handlers() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    for mode in [Interruption::Epoch, Interruption::MmuPage, Interruption::MmuPointer] {
        let mut config = Config::new();
        config.interruption(mode);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, LOOPING).unwrap();
        for export in ["in_body", "in_handler"] {
            let mut store = Store::new(&engine, ());
            let inst = Instance::new(&mut store, &module, &[]).unwrap();
            let f = inst.get_typed_func::<i64, i64>(&mut store, export).unwrap();
            // Interrupted for good: a trap, which the handler does not catch.
            let handle = store.interrupt_handle().ok();
            if mode == Interruption::Epoch {
                store.set_epoch_deadline(1);
            }
            let stopper = std::thread::spawn({
                let engine = engine.clone();
                move || {
                    std::thread::sleep(Duration::from_millis(50));
                    engine.increment_epoch();
                    if let Some(h) = handle {
                        h.interrupt();
                    }
                }
            });
            let err = f.call(&mut store, i64::MAX).unwrap_err();
            stopper.join().unwrap();
            assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt), "{mode:?} {export}: {err:?}");
            // Yielded and resumed: the call finishes with its result.
            let mut store = Store::new(&engine, ());
            let inst = Instance::new(&mut store, &module, &[]).unwrap();
            let f = inst.get_typed_func::<i64, i64>(&mut store, export).unwrap();
            store.set_epoch_deadline(0);
            store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
            store.interrupt_callback(|_| Ok(weft::InterruptAction::Yield));
            let handle = store.interrupt_handle().ok();
            if let Some(h) = &handle {
                h.interrupt();
            }
            let mut state = f.call_resumable(&mut store, 3_000_000).unwrap();
            let mut yields = 0;
            let result = loop {
                match state {
                    CallState::Done(v) => break v,
                    CallState::Suspended(s) => {
                        yields += 1;
                        engine.increment_epoch();
                        if yields < 20 {
                            if let Some(h) = &handle {
                                h.interrupt();
                            }
                        }
                        state = s.resume(&mut store).unwrap();
                    }
                }
            };
            assert_eq!(result, if export == "in_body" { 5 } else { 7 }, "{mode:?} {export}");
            assert!(yields >= 1, "{mode:?} {export}: never yielded");
        }
    }
}

#[test]
fn pooled_instances_and_reset_keep_exceptions_working() {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig::default()));
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(
        &engine,
        r#"(module
        (tag $t (param i32))
        (memory 1)
        (func (export "run") (param i32) (result i32)
          (i32.store (i32.const 0) (i32.add (i32.load (i32.const 0)) (i32.const 1)))
          (block $c (result i32)
            (try_table (catch $t $c) (throw $t (i32.add (local.get 0) (i32.load (i32.const 0)))))
            (unreachable))))"#,
    )
    .unwrap();
    for _ in 0..3 {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
        assert_eq!(run.call(&mut store, 10).unwrap(), 11);
        assert_eq!(run.call(&mut store, 10).unwrap(), 12);
        inst.reset(&mut store).unwrap();
        assert_eq!(run.call(&mut store, 10).unwrap(), 11);
    }
}

#[test]
fn host_api_misuse_is_refused() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let (tag, ty) = i32_tag(&mut store);
    let pre = ExnRefPre::new(&mut store, ExnType::from_tag_type(&ty).unwrap());
    // Wrong payload: an error, not undefined behaviour.
    assert!(ExnRef::new(&mut store, &pre, &tag, &[Val::I64(1)]).is_err());
    assert!(ExnRef::new(&mut store, &pre, &tag, &[]).is_err());
    // A tag type with results (stack switching's) makes no exceptions.
    let switching = TagType::new(FuncType::new(&engine, [], [ValType::I32]));
    Tag::new(&mut store, &switching).unwrap();
    assert!(ExnType::from_tag_type(&switching).is_err());
    // Another store's exception panics.
    let exn = ExnRef::new(&mut store, &pre, &tag, &[Val::I32(1)]).unwrap();
    let other = Store::new(&engine, ());
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| exn.tag(&other)));
    assert!(r.is_err(), "a handle of another store must be refused");
}

#[test]
fn collections_run_inside_resumable_calls() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    let mut config = Config::new();
    config.interruption(Interruption::Epoch);
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(
        &engine,
        r#"(module
        (tag $t (param i32))
        (global $kept (mut exnref) (ref.null exn))
        (func $catch_ref (param i32) (result exnref)
          (block $c (result i32 exnref)
            (try_table (catch_ref $t $c) (throw $t (local.get 0)))
            (unreachable))
          (return))
        (func (export "run") (param $n i32) (result i32) (local $held exnref)
          (local.set $held (call $catch_ref (i32.const 40)))
          (loop $l
            (drop (call $catch_ref (local.get $n)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
          (block $c (result i32)
            (try_table (catch $t $c) (throw_ref (local.get $held)))
            (unreachable))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(UpdateDeadline::Yield(1)));
    let mut state = run.call_resumable(&mut store, 50_000).unwrap();
    let result = loop {
        match state {
            CallState::Done(v) => break v,
            CallState::Suspended(s) => state = s.resume(&mut store).unwrap(),
        }
    };
    assert_eq!(result, 40);
    assert!(store.live_exceptions() < 4096, "{} live: the collector did not run on the fiber's stack", store.live_exceptions());
}

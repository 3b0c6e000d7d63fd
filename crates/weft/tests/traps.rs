//! Every trap path runs: each trap kind with its backtrace, stack overflow with
//! the store usable afterwards, host errors, re-entrancy, and instance churn.

use weft::{Caller, Engine, Instance, Linker, Module, Store, Trap, Val, WasmBacktrace};

fn trap_of(err: &anyhow::Error) -> Trap {
    match err.downcast_ref::<Trap>() {
        Some(t) => *t,
        None => panic!("expected a trap, got: {err:#}"),
    }
}

fn frames(err: &anyhow::Error) -> &[weft::FrameInfo] {
    err.downcast_ref::<WasmBacktrace>().map_or(&[], |b| b.frames())
}

fn instance(engine: &Engine, store: &mut Store<()>, wat: &str) -> Instance {
    let module = Module::new(engine, wat).unwrap();
    Instance::new(store, &module, &[]).unwrap()
}

#[test]
fn every_trap_kind_with_backtrace() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let inst = instance(
        &engine,
        &mut store,
        r#"(module $m
            (type $v (func))
            (memory 1)
            (table 2 funcref)
            (elem (i32.const 0) $unreachable)
            (func $unreachable (export "unreachable") unreachable)
            (func $oob (export "oob") (drop (i32.load (i32.const 65536))))
            (func $inner (i32.store (i32.const -1) (i32.const 0)))
            (func (export "oob_nested") (call $inner))
            (func (export "table_oob") (call_indirect (type $v) (i32.const 5)))
            (func (export "null_elem") (call_indirect (type $v) (i32.const 1)))
            (func (export "bad_sig") (drop (call_indirect (result i32) (i32.const 0))))
            (func (export "div0") (result i32) (i32.div_s (i32.const 1) (i32.const 0)))
            (func (export "overflow") (result i32) (i32.div_s (i32.const 0x80000000) (i32.const -1)))
            (func (export "conv") (result i32) (i32.trunc_f32_s (f32.const nan)))
            (func (export "conv_ovf") (result i32) (i32.trunc_f32_s (f32.const 1e10)))
            (func (export "null_ref") (call_ref $v (ref.null $v)))
            (func (export "table_get") (drop (table.get 0 (i32.const 9))))
        )"#,
    );
    let cases = [
        ("unreachable", Trap::UnreachableCodeReached),
        ("oob", Trap::MemoryOutOfBounds),
        ("oob_nested", Trap::MemoryOutOfBounds),
        ("table_oob", Trap::TableOutOfBounds),
        ("null_elem", Trap::IndirectCallToNull),
        ("bad_sig", Trap::BadSignature),
        ("div0", Trap::IntegerDivisionByZero),
        ("overflow", Trap::IntegerOverflow),
        ("conv", Trap::BadConversionToInteger),
        ("conv_ovf", Trap::IntegerOverflow),
        ("null_ref", Trap::NullReference),
        ("table_get", Trap::TableOutOfBounds),
    ];
    for (name, kind) in cases {
        let f = inst.get_func(&mut store, name).unwrap();
        let ty = f.ty(&store);
        let mut results = vec![Val::I32(0); ty.results().len()];
        let err = f.call(&mut store, &[], &mut results).unwrap_err();
        assert_eq!(trap_of(&err), kind, "{name}");
        let frames = frames(&err);
        assert!(!frames.is_empty(), "{name}: empty backtrace");
        assert!(frames[0].module_offset().is_some(), "{name}: no offset");
        assert_eq!(frames[0].module_name(), Some("m"));
    }
    // The nested trap shows both frames, innermost first, with names.
    let f = inst.get_func(&mut store, "oob_nested").unwrap();
    let err = f.call(&mut store, &[], &mut []).unwrap_err();
    let frames = frames(&err);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert_eq!(frames[0].func_name(), Some("inner"));
    assert_eq!(frames[1].func_index(), 3);
    let text = format!("{err:?}");
    assert!(text.contains("out of bounds memory access") && text.contains("m!inner"), "{text}");
}

#[test]
fn stack_overflow_then_store_still_works() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let inst = instance(
        &engine,
        &mut store,
        r#"(module
            (func $rec (export "rec") (param i32) (result i32) (call $rec (i32.add (local.get 0) (i32.const 1))))
            (func (export "ok") (result i32) (i32.const 7)))"#,
    );
    let rec = inst.get_typed_func::<i32, i32>(&mut store, "rec").unwrap();
    let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    for _ in 0..3 {
        assert_eq!(trap_of(&rec.call(&mut store, 0).unwrap_err()), Trap::StackOverflow);
        assert_eq!(ok.call(&mut store, ()).unwrap(), 7);
    }
}

/// A host function's error is not a trap: the caller gets that error
/// itself (downcast to its type), with the Wasm backtrace attached.
#[test]
fn host_errors_reach_the_caller_as_themselves() {
    #[derive(Debug, PartialEq)]
    struct TooBig(i32);
    impl std::fmt::Display for TooBig {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "too big: {}", self.0)
        }
    }
    impl std::error::Error for TooBig {}
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_wrap("host", "fail", |x: i32| -> anyhow::Result<i32> {
            if x > 2 {
                return Err(TooBig(x).into());
            }
            Ok(x * 2)
        })
        .unwrap();
    let module = Module::new(
        &engine,
        r#"(module (import "host" "fail" (func $fail (param i32) (result i32)))
            (func (export "run") (param i32) (result i32) (call $fail (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 2).unwrap(), 4);
    let err = run.call(&mut store, 3).unwrap_err();
    assert_eq!(err.downcast_ref::<TooBig>(), Some(&TooBig(3)));
    assert!(err.downcast_ref::<Trap>().is_none(), "a host error is not a trap");
    assert_eq!(frames(&err).len(), 1);
    assert_eq!(err.root_cause().to_string(), "too big: 3");
    assert_eq!(run.call(&mut store, 1).unwrap(), 2);
}

#[test]
fn reentrancy_host_wasm_host_wasm() {
    let engine = Engine::default();
    let mut linker = Linker::<u32>::new(&engine);
    linker
        .func_wrap("host", "call_back", |mut caller: Caller<'_, u32>, n: i32| -> anyhow::Result<i32> {
            *caller.data_mut() += 1;
            let f = caller.get_export("down").unwrap().into_func().unwrap();
            let typed = f.typed::<i32, i32>(&caller)?;
            typed.call(&mut caller, n - 1)
        })
        .unwrap();
    let module = Module::new(
        &engine,
        r#"(module (import "host" "call_back" (func $cb (param i32) (result i32)))
            (func (export "down") (param i32) (result i32)
              (if (result i32) (i32.le_s (local.get 0) (i32.const 0))
                (then (i32.const 100))
                (else (i32.add (local.get 0) (call $cb (local.get 0)))))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, 0u32);
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let down = inst.get_typed_func::<i32, i32>(&mut store, "down").unwrap();
    assert_eq!(down.call(&mut store, 5).unwrap(), 100 + 5 + 4 + 3 + 2 + 1);
    assert_eq!(*store.data(), 5);
    // A trap deep inside the re-entrant chain unwinds only to its own entry and
    // surfaces through every host frame as an error.
    let module = Module::new(
        &engine,
        r#"(module (import "host" "call_back" (func $cb (param i32) (result i32)))
            (func (export "down") (param i32) (result i32)
              (if (result i32) (i32.le_s (local.get 0) (i32.const 0))
                (then unreachable)
                (else (call $cb (local.get 0))))))"#,
    )
    .unwrap();
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let down = inst.get_typed_func::<i32, i32>(&mut store, "down").unwrap();
    // The innermost trap is still what the outermost caller sees.
    let err = down.call(&mut store, 3).unwrap_err();
    assert_eq!(trap_of(&err), Trap::UnreachableCodeReached);
}

#[test]
fn host_panic_propagates_and_store_survives() {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker.func_wrap("host", "boom", || -> i32 { panic!("boom") }).unwrap();
    let module = Module::new(
        &engine,
        r#"(module (import "host" "boom" (func $b (result i32)))
            (func (export "run") (result i32) (call $b))
            (func (export "ok") (result i32) (i32.const 1)))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let run = inst.get_typed_func::<(), i32>(&mut store, "run").unwrap();
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.call(&mut store, ())));
    assert!(r.is_err());
    let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
    assert_eq!(ok.call(&mut store, ()).unwrap(), 1);
}

#[test]
fn invalid_and_unsupported_modules_are_errors() {
    let engine = Engine::default();
    let err = Module::new(&engine, b"\0asm\x01\0\0\0\x01\x04\x01\x60\x00").unwrap_err();
    assert!(err.to_string().contains("offset"), "{err}");
    let err = Module::new(&engine, "(module (func (drop (i32.add (i32.const 1)))))").unwrap_err();
    assert!(err.to_string().contains("type mismatch"), "{err:#}");
    let err = Module::new(&engine, "(module (memory 1 1 shared) (func (drop (i32.atomic.load (i32.const 0)))))").unwrap_err();
    assert!(err.to_string().contains("threads"), "{err:#}");
    assert!(Module::new(&engine, b"garbage").is_err());
    // A function that fails validation must not corrupt the compilation of the
    // functions after it on the same compiler thread.
    let mut config = weft::Config::new();
    config.parallel_compilation(false);
    let serial = Engine::new(&config).unwrap();
    let mut wat = String::from("(module (func (drop (i32.add (i32.const 1))))");
    for i in 0..20 {
        wat.push_str(&format!("(func (param i32) (result i32) (if (result i32) (local.get 0) (then (i32.const {i})) (else (i32.const 1))))"));
    }
    wat.push(')');
    let err = Module::new(&serial, &wat).unwrap_err();
    assert!(err.to_string().contains("type mismatch"), "{err:#}");
}

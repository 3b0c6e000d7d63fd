//! Safe code cannot reach undefined behaviour through the embedding API: a
//! handle used with another store panics ("object used with the wrong
//! store"), and a value of the wrong type is an error, on every entry point
//! that takes store-owned handles or values.

use std::panic::{catch_unwind, AssertUnwindSafe};

use weft::{
    Caller, Engine, Extern, ExternRef, Func, FuncType, Global, GlobalType, Instance, Linker, Memory, MemoryType, Module, Mutability, Ref, RefType, Store,
    Table, TableType, Val, ValType,
};

/// Runs `f`, which must panic because a handle met another store.
#[track_caller]
fn panics_with_wrong_store(f: impl FnOnce()) {
    let payload = catch_unwind(AssertUnwindSafe(f)).expect_err("a handle of another store was accepted");
    let msg = payload.downcast_ref::<String>().cloned().or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default();
    assert!(msg.contains("object used with the wrong store"), "panicked with: {msg}");
}

const CALLER: &str = r#"(module
    (type $v (func))
    (type $i (func (result i64)))
    (import "host" "make_i64" (func $make_i64 (result i64)))
    (import "host" "make_func" (func $make_func (result funcref)))
    (table 1 funcref)
    (func (export "get_i64") (result i64) (call $make_i64))
    (func (export "call_made_func")
      (table.set 0 (i32.const 0) (call $make_func))
      (call_indirect (type $v) (i32.const 0)))
    (func (export "call_arg") (param funcref)
      (table.set 0 (i32.const 0) (local.get 0))
      (call_indirect (type $v) (i32.const 0)))
    (func (export "is_null") (param externref) (result i32) (ref.is_null (local.get 0))))"#;

/// A host result of the wrong type through `Linker::func_new` is an error
/// of the call: an `i32` for an `i64` result used to come back as
/// 4294967295, and an externref for a funcref result, once called
/// indirectly, crashed the host.
#[test]
fn linker_func_new_checks_the_types_of_its_results() {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    linker
        .func_new("host", "make_i64", FuncType::new(&engine, [], [ValType::I64]), |_, _, results| {
            results[0] = Val::I32(-1);
            Ok(())
        })
        .unwrap();
    linker
        .func_new("host", "make_func", FuncType::new(&engine, [], [ValType::FUNCREF]), |mut caller: Caller<'_, ()>, _, results| {
            results[0] = Val::ExternRef(Some(ExternRef::new(&mut caller, 7u32).unwrap()));
            Ok(())
        })
        .unwrap();
    let module = Module::new(&engine, CALLER).unwrap();
    let mut store = Store::new(&engine, ());
    let inst = linker.instantiate(&mut store, &module).unwrap();
    for name in ["get_i64", "call_made_func"] {
        let f = inst.get_func(&mut store, name).unwrap();
        let mut results = vec![Val::I64(0); f.ty(&store).results().len()];
        let err = f.call(&mut store, &[], &mut results).expect_err(name);
        assert!(format!("{err:#}").contains("wrong type for result 0"), "{name}: {err:#}");
        assert!(err.downcast_ref::<weft::WasmBacktrace>().is_some(), "{name}: the error carries the Wasm backtrace");
    }
}

/// `Func::new` checks its results the same way (one adapter serves both).
#[test]
fn func_new_checks_the_types_of_its_results() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let f = Func::new(&mut store, FuncType::new(&engine, [], [ValType::I64]), |_, _, results| {
        results[0] = Val::F64(0);
        Ok(())
    });
    let err = f.typed::<(), i64>(&store).unwrap().call(&mut store, ()).unwrap_err();
    assert!(format!("{err:#}").contains("wrong type for result 0"), "{err:#}");
}

/// A `Func` of another store passed as a funcref argument through
/// `TypedFunc::call` panics before the guest sees it (its host closure used
/// to run with the other store's data, then crash; with the other store
/// dropped, read freed memory).
#[test]
fn a_funcref_argument_of_another_store_panics() {
    let engine = Engine::default();
    let module = Module::new(&engine, CALLER).unwrap();
    let mut linker = Linker::<u64>::new(&engine);
    linker.func_wrap("host", "make_i64", || 1i64).unwrap();
    linker.func_wrap("host", "make_func", || Option::<Func>::None).unwrap();
    let mut store = Store::new(&engine, 0u64);
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let call_arg = inst.get_typed_func::<Option<Func>, ()>(&mut store, "call_arg").unwrap();

    let mut other = Store::new(&engine, String::from("other"));
    let foreign = Func::wrap(&mut other, |caller: Caller<'_, String>| assert_eq!(caller.data(), "other"));
    panics_with_wrong_store(|| {
        let _ = call_arg.call(&mut store, Some(foreign));
    });
    // The same with the other store gone.
    drop(other);
    panics_with_wrong_store(|| {
        let _ = call_arg.call(&mut store, Some(foreign));
    });
    // Through `Func::call` and a resumable call too.
    let dynamic = inst.get_func(&mut store, "call_arg").unwrap();
    panics_with_wrong_store(|| {
        let _ = dynamic.call(&mut store, &[Val::FuncRef(Some(foreign))], &mut []);
    });
    panics_with_wrong_store(|| {
        let _ = call_arg.call_resumable(&mut store, Some(foreign));
    });
    // The store is still usable, and its own functions are accepted.
    let own = Func::wrap(&mut store, |mut caller: Caller<'_, u64>| *caller.data_mut() += 1);
    call_arg.call(&mut store, Some(own)).unwrap();
    assert_eq!(*store.data(), 1);
}

/// Host functions returning handles of another store panic, through
/// `func_wrap` and `func_new`; the panic reaches the host's caller.
#[test]
fn host_results_of_another_store_panic() {
    let engine = Engine::default();
    let module = Module::new(&engine, CALLER).unwrap();
    let mut other = Store::new(&engine, ());
    let foreign = Func::wrap(&mut other, || {});
    let foreign_ref = ExternRef::new(&mut other, 1u8).unwrap();

    let mut wrapped = Linker::<()>::new(&engine);
    wrapped.func_wrap("host", "make_i64", || 1i64).unwrap();
    wrapped.func_wrap("host", "make_func", move || Some(foreign)).unwrap();
    let mut by_vals = Linker::<()>::new(&engine);
    by_vals.func_wrap("host", "make_i64", || 1i64).unwrap();
    by_vals
        .func_new("host", "make_func", FuncType::new(&engine, [], [ValType::FUNCREF]), move |_, _, results| {
            results[0] = Val::FuncRef(Some(foreign));
            Ok(())
        })
        .unwrap();
    for linker in [wrapped, by_vals] {
        let mut store = Store::new(&engine, ());
        let inst = linker.instantiate(&mut store, &module).unwrap();
        let f = inst.get_typed_func::<(), ()>(&mut store, "call_made_func").unwrap();
        panics_with_wrong_store(|| {
            let _ = f.call(&mut store, ());
        });
    }
    // An externref of another store as an argument.
    let mut store = Store::new(&engine, ());
    let mut linker = Linker::<()>::new(&engine);
    linker.func_wrap("host", "make_i64", || 1i64).unwrap();
    linker.func_wrap("host", "make_func", || Option::<Func>::None).unwrap();
    let inst = linker.instantiate(&mut store, &module).unwrap();
    let is_null = inst.get_typed_func::<Option<ExternRef>, i32>(&mut store, "is_null").unwrap();
    panics_with_wrong_store(|| {
        let _ = is_null.call(&mut store, Some(foreign_ref));
    });
    let own = ExternRef::new(&mut store, 2u8).unwrap();
    assert_eq!(is_null.call(&mut store, Some(own)).unwrap(), 0);
    panics_with_wrong_store(|| {
        let _ = foreign_ref.data(&store);
    });
}

/// Tables, globals and memories: wrong-store handles and values panic, values
/// of the wrong type are errors.
#[test]
fn tables_globals_and_memories_check_store_and_type() {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());
    let mut other = Store::new(&engine, ());
    let foreign = Func::wrap(&mut other, || {});
    let foreign_ref = ExternRef::new(&mut other, 0u8).unwrap();
    let funcref_table = TableType { element: RefType::FUNCREF, minimum: 1, maximum: None, table64: false };

    // Values of another store.
    panics_with_wrong_store(|| {
        let _ = Table::new(&mut store, funcref_table, Ref::Func(Some(foreign)));
    });
    let table = Table::new(&mut store, funcref_table, Ref::Func(None)).unwrap();
    panics_with_wrong_store(|| {
        let _ = table.set(&mut store, 0, Ref::Func(Some(foreign)));
    });
    panics_with_wrong_store(|| {
        let _ = table.grow(&mut store, 1, Ref::Func(Some(foreign)));
    });
    let global_ty = GlobalType { content: ValType::EXTERNREF, mutability: Mutability::Var };
    panics_with_wrong_store(|| {
        let _ = Global::new(&mut store, global_ty, Val::ExternRef(Some(foreign_ref)));
    });
    let global = Global::new(&mut store, global_ty, Val::ExternRef(None)).unwrap();
    panics_with_wrong_store(|| {
        let _ = global.set(&mut store, Val::ExternRef(Some(foreign_ref)));
    });

    // Values of the wrong type: `grow` used to write any value's bits.
    let own_ref = ExternRef::new(&mut store, 0u8).unwrap();
    assert!(table.set(&mut store, 0, Ref::Extern(Some(own_ref))).is_err());
    assert!(table.grow(&mut store, 1, Ref::Extern(Some(own_ref))).is_err());
    assert_eq!(table.size(&store), 1);
    assert!(global.set(&mut store, Val::I64(1)).is_err());

    // Handles of another store.
    let other_table = Table::new(&mut other, funcref_table, Ref::Func(None)).unwrap();
    let other_global = Global::new(&mut other, global_ty, Val::ExternRef(None)).unwrap();
    let other_memory = Memory::new(&mut other, MemoryType { minimum: 1, maximum: None, memory64: false }).unwrap();
    panics_with_wrong_store(|| {
        let _ = other_table.get(&mut store, 0);
    });
    panics_with_wrong_store(|| {
        let _ = other_table.size(&store);
    });
    panics_with_wrong_store(|| {
        let _ = other_global.get(&mut store);
    });
    panics_with_wrong_store(|| {
        let _ = other_memory.data(&store).len();
    });
    panics_with_wrong_store(|| {
        let _ = other_memory.grow(&mut store, 1);
    });
    panics_with_wrong_store(|| {
        let _ = Extern::Memory(other_memory).ty(&store);
    });
    panics_with_wrong_store(|| {
        let _ = foreign.ty(&store);
    });
    panics_with_wrong_store(|| {
        let _ = foreign.call(&mut store, &[], &mut []);
    });
}

/// Imports of another store, directly or through a linker, panic; a module
/// or store of another engine is refused.
#[test]
fn imports_check_store_and_engine() {
    let engine = Engine::default();
    let module = Module::new(&engine, r#"(module (import "m" "f" (func)) (import "m" "mem" (memory 1)))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let mut other = Store::new(&engine, ());
    let foreign_func = Func::wrap(&mut other, || {});
    let foreign_memory = Memory::new(&mut other, MemoryType { minimum: 1, maximum: None, memory64: false }).unwrap();
    let own_func = Func::wrap(&mut store, || {});
    let own_memory = Memory::new(&mut store, MemoryType { minimum: 1, maximum: None, memory64: false }).unwrap();

    panics_with_wrong_store(|| {
        let _ = Instance::new(&mut store, &module, &[foreign_func.into(), own_memory.into()]);
    });
    panics_with_wrong_store(|| {
        let _ = Instance::new(&mut store, &module, &[own_func.into(), foreign_memory.into()]);
    });
    let mut linker = Linker::<()>::new(&engine);
    linker.define(&store, "m", "f", foreign_func).unwrap();
    linker.define(&store, "m", "mem", own_memory).unwrap();
    panics_with_wrong_store(|| {
        let _ = linker.instantiate(&mut store, &module);
    });
    // `Linker::instance` with an instance of another store.
    let exporter = Module::new(&engine, r#"(module (func (export "f")))"#).unwrap();
    let foreign_instance = Instance::new(&mut other, &exporter, &[]).unwrap();
    panics_with_wrong_store(|| {
        let _ = linker.instance(&mut store, "x", foreign_instance);
    });
    panics_with_wrong_store(|| {
        let _ = foreign_instance.get_func(&mut store, "f");
    });
    Instance::new(&mut store, &module, &[own_func.into(), own_memory.into()]).unwrap();

    // Another engine: its module, and a store used with this engine's linker.
    let engine2 = Engine::default();
    let module2 = Module::new(&engine2, r#"(module (import "m" "f" (func)))"#).unwrap();
    let mut host_linker = Linker::<()>::new(&engine);
    host_linker.func_wrap("m", "f", || {}).unwrap();
    let err = host_linker.instantiate_pre(&module2).err().expect("a module of another engine");
    assert!(format!("{err:#}").contains("different engines"), "{err:#}");
    let mut store2 = Store::new(&engine2, ());
    assert!(Instance::new(&mut store2, &module, &[]).is_err());
    let got = catch_unwind(AssertUnwindSafe(|| host_linker.get(&mut store2, "m", "f")));
    assert!(got.is_err(), "a linker's host function must not enter a store of another engine");
}

/// A suspended call resumes only with its own store.
#[test]
fn a_suspended_call_resumes_only_with_its_store() {
    let mut config = weft::Config::new();
    config.epoch_interruption(true);
    let engine = Engine::new(&config).unwrap();
    let module =
        Module::new(&engine, r#"(module (func (export "spin") (param i32) (loop $l (br_if $l (local.tee 0 (i32.sub (local.get 0) (i32.const 1)))))))"#)
            .unwrap();
    let mut store = Store::new(&engine, ());
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|_| Ok(weft::UpdateDeadline::Yield(1)));
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let spin = inst.get_typed_func::<i32, ()>(&mut store, "spin").unwrap();
    engine.increment_epoch();
    let weft::CallState::Suspended(call) = spin.call_resumable(&mut store, 1_000_000).unwrap() else { panic!("did not yield") };
    let mut other = Store::new(&engine, ());
    let err = call.resume(&mut other).err().expect("resumed with another store");
    assert!(format!("{err:#}").contains("its own store"), "{err:#}");
}

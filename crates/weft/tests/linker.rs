//! The linker's wasmtime-shaped conveniences: `module`, `get_default`,
//! `alias`, `alias_module` and the definitions of unknown imports.

use weft::{Engine, Linker, Module, Store, Trap};

#[test]
fn module_instantiates_once_and_defines_its_exports() {
    let engine = Engine::default();
    let mut linker = Linker::<()>::new(&engine);
    let provider = Module::new(
        &engine,
        r#"(module
            (global $ready (mut i32) (i32.const 0))
            (func (export "_initialize") (global.set $ready (i32.const 1)))
            (func (export "ready") (result i32) (global.get $ready))
            (func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2))))"#,
    )
    .unwrap();
    let user = Module::new(
        &engine,
        r#"(module
            (import "lib" "double" (func $double (param i32) (result i32)))
            (import "lib" "ready" (func $ready (result i32)))
            (func (export "") (result i32) (i32.add (call $double (i32.const 20)) (call $ready))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    linker.module(&mut store, "lib", &provider).unwrap();
    linker.module(&mut store, "app", &user).unwrap();
    // `_initialize` ran once; the default export is the `""` function.
    let default = linker.get_default(&mut store, "app").unwrap();
    assert_eq!(default.typed::<(), i32>(&store).unwrap().call(&mut store, ()).unwrap(), 41);
    // A module without a default function gets one that does nothing.
    let nothing = linker.get_default(&mut store, "lib").unwrap();
    nothing.typed::<(), ()>(&store).unwrap().call(&mut store, ()).unwrap();

    // Aliases name the same items.
    linker.alias("lib", "double", "math", "twice").unwrap();
    linker.alias_module("lib", "lib2").unwrap();
    let twice = linker.get(&mut store, "math", "twice").unwrap().into_func().unwrap();
    assert_eq!(twice.typed::<i32, i32>(&store).unwrap().call(&mut store, 4).unwrap(), 8);
    assert!(linker.get(&mut store, "lib2", "ready").is_some());
    assert!(linker.alias("lib", "missing", "x", "y").is_err());
    assert!(linker.alias("lib", "double", "math", "twice").is_err(), "already defined");
}

#[test]
fn unknown_imports_become_traps_or_default_values() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
            (import "env" "missing" (func $missing (param i32) (result i64 f32)))
            (import "env" "known" (func $known (result i32)))
            (func (export "call_missing") (result i64) (drop (call $missing (i32.const 1))))
            (func (export "call_known") (result i32) (call $known)))"#,
    )
    .unwrap();

    let mut traps = Linker::<()>::new(&engine);
    traps.func_wrap("env", "known", || 7i32).unwrap();
    traps.define_unknown_imports_as_traps(&module).unwrap();
    let mut store = Store::new(&engine, ());
    let instance = traps.instantiate(&mut store, &module).unwrap();
    assert_eq!(instance.get_typed_func::<(), i32>(&mut store, "call_known").unwrap().call(&mut store, ()).unwrap(), 7, "defined imports stay");
    let err = instance.get_typed_func::<(), i64>(&mut store, "call_missing").unwrap().call(&mut store, ()).unwrap_err();
    assert!(format!("{err:#}").contains("unknown import: `env::missing`"), "{err:#}");
    assert!(err.downcast_ref::<Trap>().is_none());

    let mut defaults = Linker::<()>::new(&engine);
    let mut store = Store::new(&engine, ());
    defaults.define_unknown_imports_as_default_values(&mut store, &module).unwrap();
    let instance = defaults.instantiate(&mut store, &module).unwrap();
    assert_eq!(instance.get_typed_func::<(), i64>(&mut store, "call_missing").unwrap().call(&mut store, ()).unwrap(), 0);
    assert_eq!(instance.get_typed_func::<(), i32>(&mut store, "call_known").unwrap().call(&mut store, ()).unwrap(), 0);
}

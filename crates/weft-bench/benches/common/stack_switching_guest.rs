// The guest of the stack-switching benchmarks, set up in one runtime
// (included by stack_switching.rs and stack_switching_interleaved.rs).

const GUEST: &str = include_str!("../stack_switching.wat");

// Written once for both runtimes, whose embedding APIs have the same shape:
// `$rt` is the crate, `$engine` an engine of it. Gives the store, the
// instance (its continuations made by `setup`) and its exports.
macro_rules! stack_switching_guest {
    ($rt:ident, $engine:expr) => {{
        let engine = $engine;
        let module = $rt::Module::new(&engine, GUEST).unwrap();
        let mut store = $rt::Store::new(&engine, ());
        let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
        instance.get_typed_func::<(), ()>(&mut store, "setup").unwrap().call(&mut store, ()).unwrap();
        let round_trips = instance.get_typed_func::<i32, ()>(&mut store, "round_trips").unwrap();
        let new_and_run = instance.get_typed_func::<i32, ()>(&mut store, "new_and_run").unwrap();
        let switches = instance.get_typed_func::<i32, ()>(&mut store, "switches").unwrap();
        let generate = instance.get_typed_func::<i32, i32>(&mut store, "generate").unwrap();
        assert_eq!(generate.call(&mut store, 10).unwrap(), 45);
        (engine, module, store, round_trips, new_and_run, switches, generate)
    }};
}

/// A wasmtime engine with what the guest needs.
#[cfg(feature = "wasmtime")]
fn wasmtime_engine() -> wasmtime::Engine {
    let mut config = wasmtime::Config::new();
    config.wasm_stack_switching(true).wasm_exceptions(true).wasm_function_references(true);
    wasmtime::Engine::new(&config).unwrap()
}

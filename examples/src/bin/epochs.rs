//! Epoch interruption: a thread advances the engine's epoch past the store's
//! deadline, and the long-running guest stops with `Trap::Interrupt`.
//!
//! wasmtime 48's `examples/epochs.rs`, written for Weft. Differences besides
//! the crate name:
//! - the module is `examples/epochs.wat` (its `fibonacci` is the one of
//!   wasmtime's `fuel.wat`, which wasmtime's example reuses: Weft has no fuel
//!   example);
//! - the `Err(_)` arm is `Err(err)` and checks that `err` is
//!   `Trap::Interrupt` (downcast);
//! - `Trap` is imported, and the second part (an infinite loop stopped the
//!   same way, after 100 ms) is added.

use std::sync::Arc;
use weft::{Config, Engine, Instance, Module, Result, Store, Trap};

fn main() -> Result<()> {
    // An engine whose code checks the epoch.
    let mut config = Config::new();
    config.epoch_interruption(true);
    let engine = Arc::new(Engine::new(&config)?);

    let mut store = Store::new(&engine, ());
    // Trap when the deadline is reached (the default, made explicit here), and
    // set the deadline one tick from now.
    store.epoch_deadline_trap();
    store.set_epoch_deadline(1);

    // The naive recursive fibonacci: fib(100) would run for ages.
    let module = Module::from_file(store.engine(), "examples/epochs.wat")?;
    let instance = Instance::new(&mut store, &module, &[])?;

    // A thread that bumps the epoch after a second.
    let engine_clone = engine.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_secs(1));
        engine_clone.increment_epoch();
    });

    let fibonacci = instance.get_typed_func::<i32, i32>(&mut store, "fibonacci")?;
    match fibonacci.call(&mut store, 100) {
        Ok(_) => panic!("Somehow we computed recursive fib(100) in less than a second!"),
        Err(err) => {
            assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt), "{err:?}");
            println!("Trapped out of fib(100) after epoch increment");
        }
    };

    // An infinite loop, stopped at its back edge, with a new deadline one tick
    // after the current epoch.
    store.set_epoch_deadline(1);
    let engine_clone = engine.clone();
    std::thread::spawn(move || {
        std::thread::sleep(std::time::Duration::from_millis(100));
        engine_clone.increment_epoch();
    });
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;
    let err = run.call(&mut store, ()).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt), "{err:?}");
    println!("Trapped out of an infinite loop after epoch increment: {}", err.downcast_ref::<Trap>().unwrap());

    Ok(())
}

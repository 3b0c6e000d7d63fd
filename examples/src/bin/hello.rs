//! Instantiates a module that imports one host function, and fills the import
//! with a closure that reads and updates the store's data through its
//! `Caller`.
//!
//! wasmtime 48's `examples/hello.rs`, written for Weft. Differences besides the
//! crate name: the last three lines before `Ok(())` are added (print and assert
//! the count the callback kept in the store's data), so that the example checks
//! its result.

use weft::*;

struct MyState {
    name: String,
    count: usize,
}

fn main() -> Result<()> {
    // Compile the module once, in an engine with the default configuration.
    println!("Compiling module...");
    let engine = Engine::default();
    let module = Module::from_file(&engine, "examples/hello.wat")?;

    // The store owns instances and host functions, and some data of our own.
    println!("Initializing...");
    let mut store = Store::new(&engine, MyState { name: "hello, world!".to_string(), count: 0 });

    // The module's one import: a host function with no parameters or results.
    // Its `Caller` gives access to the store's `MyState`.
    println!("Creating callback...");
    let hello_func = Func::wrap(&mut store, |mut caller: Caller<'_, MyState>| {
        println!("Calling back...");
        println!("> {}", caller.data().name);
        caller.data_mut().count += 1;
    });

    // Instantiate with the imports in the module's order (a start function
    // would run here).
    println!("Instantiating module...");
    let imports = [hello_func.into()];
    let instance = Instance::new(&mut store, &module, &imports)?;

    println!("Extracting export...");
    let run = instance.get_typed_func::<(), ()>(&mut store, "run")?;

    println!("Calling export...");
    run.call(&mut store, ())?;

    println!("Done.");
    let count = store.data().count;
    println!("The callback ran {count} time(s).");
    assert_eq!(count, 1);
    Ok(())
}

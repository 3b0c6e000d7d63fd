//! Links two modules through a `Linker`: `linking2` uses WASI to print and is
//! registered with the linker under its name, then `linking1` imports its
//! function, memory and global, and prints "Hello, world!" through it.
//!
//! wasmtime 48's `examples/linking.rs`, written for Weft. Differences besides
//! the crate names (`wasmtime_wasi` -> `weft_wasi`):
//! - the `println!`s before each step and the final "Done." are added;
//! - `linking1.wat` traps unless `double(2)` returns 4 (wasmtime's drops the
//!   result), so that the example checks the link;
//! - three lines before the call check `linker.get` on what `linker.instance`
//!   registered (added).

use weft::*;
use weft_wasi::p1::{self, WasiP1Ctx};
use weft_wasi::WasiCtxBuilder;

fn main() -> Result<()> {
    let engine = Engine::default();

    // First set up our linker, which links the modules together, with WASI
    // available to them.
    println!("Setting up the linker with WASI...");
    let mut linker = Linker::<WasiP1Ctx>::new(&engine);
    p1::add_to_linker_sync(&mut linker, |t| t)?;

    // Load and compile the two modules.
    println!("Compiling linking1 and linking2...");
    let linking1 = Module::from_file(&engine, "examples/linking1.wat")?;
    let linking2 = Module::from_file(&engine, "examples/linking2.wat")?;

    // Configure WASI and put it in a store.
    let wasi = WasiCtxBuilder::new().inherit_stdio().inherit_args().build_p1();
    let mut store = Store::new(&engine, wasi);

    // Instantiate the module that only uses WASI, then register the instance
    // with the linker, since the next module imports from it.
    println!("Instantiating linking2 and registering it...");
    let linking2 = linker.instantiate(&mut store, &linking2)?;
    linker.instance(&mut store, "linking2", linking2)?;
    let double = linker.get(&mut store, "linking2", "double").and_then(Extern::into_func).ok_or(anyhow::format_err!("`linking2::double` is not defined"))?;
    assert_eq!(double.typed::<i32, i32>(&store)?.call(&mut store, 21)?, 42);
    println!("linking2::double(21) = 42");

    // And with that we can perform the final link and run the module.
    println!("Instantiating linking1 and calling its run...");
    let linking1 = linker.instantiate(&mut store, &linking1)?;
    let run = linking1.get_typed_func::<(), ()>(&mut store, "run")?;
    run.call(&mut store, ())?;
    println!("Done.");
    Ok(())
}

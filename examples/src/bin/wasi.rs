//! Runs a WASI command: the linker gets the `wasi_snapshot_preview1`
//! functions, the store a WASI context that inherits the host's stdio,
//! arguments and environment, and the module's default export (`_start`)
//! prints "Hello, world!", its arguments and its `WEFT_EXAMPLE_*` environment
//! variables.
//!
//! wasmtime 48's `examples/wasip1/main.rs` (named `wasi` here), written for
//! Weft. Differences besides the crate names (`wasmtime_wasi` ->
//! `weft_wasi`):
//! - the module is the WAT command `examples/wasi.wat` instead of the Rust
//!   program wasmtime builds to `target/wasm32-wasip1/debug/wasi.wasm`;
//! - `.inherit_env()` is added to the builder chain, since the guest prints
//!   environment variables;
//! - the `println!`s before and after the run are added.

use weft::*;
use weft_wasi::WasiCtx;

fn main() -> Result<()> {
    // The WASI functions, defined once in the linker.
    let engine = Engine::default();
    let mut linker = Linker::new(&engine);
    weft_wasi::p1::add_to_linker_sync(&mut linker, |s| s)?;

    // The WASI context, in the store: what the guest may see of the host.
    let wasi = WasiCtx::builder().inherit_stdio().inherit_args().inherit_env().build_p1();
    let mut store = Store::new(&engine, wasi);

    // Instantiate the command and run its default export.
    println!("Running the WASI command...");
    let module = Module::from_file(&engine, "examples/wasi.wat")?;
    linker.module(&mut store, "", &module)?;
    linker.get_default(&mut store, "")?.typed::<(), ()>(&store)?.call(&mut store, ())?;
    println!("Done.");

    Ok(())
}

//! `weft-pages` from C: runs a WASI program written in C that allocates its
//! memory with `weft-pages` (a zero-aware `mmap`/`munmap` inside the guest,
//! `crates/weft-pages`), such as the crate's own test program
//! `crates/weft-pages/tests/c/pages_test.c` built by
//! `crates/weft-pages/build-wasm.sh`.
//!
//! ```sh
//! crates/weft-pages/build-wasm.sh /tmp/pages
//! cargo run --release -p weft-examples --bin pages -- /tmp/pages/pages_test.wasm
//! ```
//!
//! The embedding is the ordinary WASI command one (wasmtime's `wasip1`
//! example's shape): the guest's `mmap` is compiled into the guest, so the
//! host needs nothing beyond WASI. No wasmtime counterpart.

use weft::*;
use weft_wasi::p1::{self, WasiP1Ctx};
use weft_wasi::{I32Exit, WasiCtxBuilder};

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or_else(|| anyhow::anyhow!("usage: pages GUEST.wasm [ARGS...]"))?;
    let engine = Engine::default();
    let mut linker: Linker<WasiP1Ctx> = Linker::new(&engine);
    p1::add_to_linker_sync(&mut linker, |ctx| ctx)?;
    let mut guest_args = vec![path.clone()];
    guest_args.extend(args);
    let wasi = WasiCtxBuilder::new().inherit_stdio().args(&guest_args).build_p1();
    let mut store = Store::new(&engine, wasi);

    let module = Module::from_file(&engine, &path)?;
    linker.module(&mut store, "", &module)?;
    let start = linker.get_default(&mut store, "")?.typed::<(), ()>(&store)?;
    let code = match start.call(&mut store, ()) {
        Ok(()) => 0,
        Err(e) => match e.downcast_ref::<I32Exit>() {
            Some(exit) => exit.0,
            None => return Err(e),
        },
    };
    println!("guest exited with status {code}");
    std::process::exit(code);
}

//! Arbitrary bytes through `Module::new` and instantiation: a malformed module
//! must be an error and a misbehaving guest a trap, never a crash.
//!
//! `cargo fuzz run compile_instantiate` (from the `fuzz/` folder).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let engine = weft::Engine::default();
    let Ok(module) = weft::Module::from_binary(&engine, data) else { return };
    let mut store = weft::Store::new(&engine, ());
    // Imports cannot be satisfied from arbitrary bytes; skip such modules.
    if module.imports().next().is_some() {
        return;
    }
    let _ = weft::Instance::new(&mut store, &module, &[]);
});

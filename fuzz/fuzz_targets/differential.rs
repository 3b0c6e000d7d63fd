//! Differential fuzzing: wasm-smith shapes a module from the fuzzer's bytes,
//! and Weft (in its three test configurations) must agree with wasmi on
//! everything observable (see `weft-difftest`); a disagreement aborts.
//!
//! `cargo fuzz run differential` (from the `fuzz/` folder).
#![no_main]

use libfuzzer_sys::fuzz_target;
use weft_difftest::{check_module, module_from_bytes, Reference, Verdict};

fuzz_target!(|data: &[u8]| {
    let Ok(wasm) = module_from_bytes(data, Reference::Wasmi) else { return };
    if let Verdict::Disagree(config, what) = check_module(&wasm, Reference::Wasmi) {
        panic!("Weft ({config}) disagrees with wasmi: {what}");
    }
});

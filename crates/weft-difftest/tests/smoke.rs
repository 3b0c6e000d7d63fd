//! The deterministic smoke run of differential testing in the normal test
//! suite: 3,000 wasm-smith modules (seeds 0..3000), Weft in three
//! configurations against wasmi, with zero disagreements. Longer runs, and
//! runs against wasmtime, are `weft-difftest` commands (see BENCHMARKS.md
//! and the crate's documentation).

use weft_difftest::{check_range, Reference};

#[test]
fn three_thousand_modules_agree_with_wasmi() {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let summary = check_range(0..3000, Reference::Wasmi, threads);
    for (seed, config, what) in &summary.disagreements {
        eprintln!("DISAGREE seed {seed} ({config}): {what}");
    }
    assert!(
        summary.disagreements.is_empty(),
        "{} disagreements (reproduce: cargo run --release -p weft-difftest -- SEED..SEED+1)",
        summary.disagreements.len()
    );
    // The generator and wasmi run nearly every seed: the run compared something.
    assert!(summary.agreed >= 2900, "only {} of 3000 seeds were compared", summary.agreed);
}

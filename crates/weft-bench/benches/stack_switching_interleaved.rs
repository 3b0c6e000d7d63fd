//! Stack switching, Weft against wasmtime 48 measured in alternation: each
//! round times every operation once on each runtime (which one goes first
//! alternates), so both see the same machine. On a noisy two-core VM the
//! speed moves by tens of percent between criterion's back-to-back
//! measurements of one runtime and then the other; the ratio of two
//! measurements taken a few milliseconds apart does not. Prints, per
//! operation, each runtime's median time and the median (and spread) of the
//! per-round ratios, which BENCHMARKS.md records.
//!
//! `cargo bench -p weft-bench --features wasmtime --bench stack_switching_interleaved [-- ROUNDS]`

use std::time::Instant;

include!("common/stack_switching_guest.rs");

/// Operations timed per round and runtime, for the operations on long-lived
/// continuations.
const OPS: i32 = 200_000;
/// `cont.new` + run: continuations per store (wasmtime frees their stacks
/// only with their store) and stores per round.
const NEW_PER_STORE: i32 = 1000;
const STORES_PER_ROUND: usize = 20;

/// One operation's measurement on one runtime: nanoseconds per operation.
type Measure = Box<dyn FnMut() -> f64>;

// Written once for both runtimes (see `stack_switching_guest!`).
macro_rules! measures {
    ($rt:ident, $engine:expr) => {{
        // (`new_and_run` runs in fresh stores, below.)
        let (engine, module, store, round_trips, _, switches, generate) = stack_switching_guest!($rt, $engine);
        let store = std::rc::Rc::new(std::cell::RefCell::new(store));
        let s = store.clone();
        let round_trip: Measure = Box::new(move || timed(|| round_trips.call(&mut *s.borrow_mut(), OPS).unwrap()));
        let s = store.clone();
        // Two continuations per call: few enough for one store.
        let switch: Measure = Box::new(move || timed(|| switches.call(&mut *s.borrow_mut(), OPS).unwrap()));
        let s = store.clone();
        let generator: Measure = Box::new(move || {
            timed(|| {
                std::hint::black_box(generate.call(&mut *s.borrow_mut(), OPS).unwrap());
            })
        });
        let new_and_run: Measure = Box::new(move || {
            let mut total = 0.0;
            for _ in 0..STORES_PER_ROUND {
                let mut store = $rt::Store::new(&engine, ());
                let instance = $rt::Instance::new(&mut store, &module, &[]).unwrap();
                let f = instance.get_typed_func::<i32, ()>(&mut store, "new_and_run").unwrap();
                let start = Instant::now();
                f.call(&mut store, NEW_PER_STORE).unwrap();
                total += start.elapsed().as_nanos() as f64;
            }
            total / (STORES_PER_ROUND as f64 * NEW_PER_STORE as f64)
        });
        vec![round_trip, new_and_run, switch, generator]
    }};
}

/// Nanoseconds per operation of `f`, which makes `OPS` of them.
fn timed(f: impl FnOnce()) -> f64 {
    let start = Instant::now();
    f();
    start.elapsed().as_nanos() as f64 / OPS as f64
}

const NAMES: [&str; 4] = ["suspend + resume round trip", "`cont.new` + run to completion", "`switch` between two continuations", "one generator value"];

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(31);
    let mut weft = measures!(weft, weft::Engine::default());
    let mut wasmtime = measures!(wasmtime, wasmtime_engine());
    // Warm both up (stack pools, caches, code pages).
    for m in weft.iter_mut().chain(wasmtime.iter_mut()) {
        m();
    }
    let mut times = vec![(Vec::new(), Vec::new(), Vec::new()); NAMES.len()];
    for round in 0..rounds {
        for (i, (w, t, r)) in times.iter_mut().enumerate() {
            let (a, b) = if round % 2 == 0 {
                let a = weft[i]();
                (a, wasmtime[i]())
            } else {
                let b = wasmtime[i]();
                (weft[i](), b)
            };
            w.push(a);
            t.push(b);
            r.push(a / b);
        }
    }
    println!("{rounds} rounds, each runtime alternately first; times per operation (medians)\n");
    println!("| operation | weft | wasmtime | weft / wasmtime: median | middle half of rounds |");
    println!("|---|---|---|---|---|");
    for (name, (w, t, r)) in NAMES.iter().zip(times.iter_mut()) {
        let (mw, mt, mr) = (median(w), median(t), median(r));
        let (q1, q3) = (r[r.len() / 4], r[r.len() * 3 / 4]);
        let fmt = |ns: f64| if ns >= 1000.0 { format!("{:.2} µs", ns / 1000.0) } else { format!("{ns:.1} ns") };
        println!("| {name} | {} | {} | {mr:.3}x | {q1:.3}x to {q3:.3}x |", fmt(mw), fmt(mt));
    }
}

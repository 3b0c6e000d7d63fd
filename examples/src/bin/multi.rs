//! Multi-value: a host function that returns two values (a Rust tuple), a
//! typed call with tuple results, and a function with ten results called both
//! through a `TypedFunc` and dynamically through `Func::call` with `Val`s.
//!
//! wasmtime 48's `examples/multi.rs`, written for Weft. Differences besides the
//! crate name: the block after the typed `round_trip_many` call ("Calling
//! export \"round_trip_many\" with Vals...", `Func::call`) is added.

use weft::*;

fn main() -> Result<()> {
    println!("Initializing...");
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());

    println!("Compiling module...");
    let module = Module::from_file(&engine, "examples/multi.wat")?;

    // A host function with two parameters and two results.
    println!("Creating callback...");
    let callback_func = Func::wrap(&mut store, |a: i32, b: i64| -> (i64, i32) { (b + 1, a + 1) });

    println!("Instantiating module...");
    let instance = Instance::new(&mut store, &module, &[callback_func.into()])?;

    println!("Extracting export...");
    let g = instance.get_typed_func::<(i32, i64), (i64, i32)>(&mut store, "g")?;

    // `g` returns what the host function returned.
    println!("Calling export \"g\"...");
    let (a, b) = g.call(&mut store, (1, 3))?;

    println!("Printing result...");
    println!("> {a} {b}");
    assert_eq!(a, 4);
    assert_eq!(b, 2);

    // Ten parameters and ten results, with static types.
    println!("Calling export \"round_trip_many\"...");
    let round_trip_many = instance.get_typed_func::<(i64, i64, i64, i64, i64, i64, i64, i64, i64, i64), (i64, i64, i64, i64, i64, i64, i64, i64, i64, i64)>(
        &mut store,
        "round_trip_many",
    )?;
    let results = round_trip_many.call(&mut store, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9))?;

    println!("Printing result...");
    println!("> {results:?}");
    assert_eq!(results, (0, 1, 2, 3, 4, 5, 6, 7, 8, 9));

    // The same function called dynamically: arguments and results as `Val`s.
    println!("Calling export \"round_trip_many\" with Vals...");
    let round_trip_many = instance.get_func(&mut store, "round_trip_many").ok_or(anyhow::format_err!("failed to find export `round_trip_many`"))?;
    let args: Vec<Val> = (0..10).map(|i| Val::I64(i * 10)).collect();
    let mut results = vec![Val::I64(0); 10];
    round_trip_many.call(&mut store, &args, &mut results)?;
    println!("> {}", results.iter().map(|r| r.unwrap_i64().to_string()).collect::<Vec<_>>().join(" "));
    assert!(args.iter().zip(&results).all(|(a, r)| a.i64() == r.i64()));
    // A wrong number of results is refused.
    assert!(round_trip_many.call(&mut store, &args, &mut results[..9]).is_err());

    Ok(())
}

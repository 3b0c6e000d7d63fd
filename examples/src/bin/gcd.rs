//! Instantiates a module without imports and calls its `gcd` export through a
//! statically typed `TypedFunc`.
//!
//! wasmtime 48's `examples/gcd.rs`, written for Weft. Differences besides the
//! crate name: everything after the `println!` of `gcd(6, 27)` is added (its
//! assertion, and the same for the recursive `gcd_recursive`, which
//! wasmtime's `gcd.wat` lacks), so that the example checks its results.

use weft::*;

fn main() -> Result<()> {
    // Compile the module (text, in our case) and instantiate it in a store
    // with the default engine.
    let mut store = Store::<()>::default();
    let module = Module::from_file(store.engine(), "examples/gcd.wat")?;
    let instance = Instance::new(&mut store, &module, &[])?;

    // The `gcd` export, with its parameter and result types checked once here.
    let gcd = instance.get_typed_func::<(i32, i32), i32>(&mut store, "gcd")?;

    println!("gcd(6, 27) = {}", gcd.call(&mut store, (6, 27))?);
    assert_eq!(gcd.call(&mut store, (6, 27))?, 3);

    // The same through a recursive function.
    let gcd_recursive = instance.get_typed_func::<(i32, i32), i32>(&mut store, "gcd_recursive")?;
    for (a, b, expected) in [(6, 27, 3), (1071, 462, 21), (0, 5, 5), (17, 0, 17)] {
        let (looped, recursed) = (gcd.call(&mut store, (a, b))?, gcd_recursive.call(&mut store, (a, b))?);
        println!("gcd({a}, {b}) = {looped} (loop), {recursed} (recursion)");
        assert_eq!((looped, recursed), (expected, expected));
    }
    Ok(())
}

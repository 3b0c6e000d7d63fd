//! Host functions with a dynamic signature: `Func::new` and `Linker::func_new`
//! take a `FuncType` and a closure that reads its arguments from a `&[Val]`
//! and writes its results into a `&mut [Val]`; the host calls them directly
//! (`Func::call`, typed), and the guest calls them as imports.
//!
//! wasmtime 48 has no Rust example of this name; this one uses wasmtime 48's
//! API only and would compile there unchanged.

use weft::*;

/// What the host functions record in the store.
#[derive(Default)]
struct Calls {
    add: u32,
    scale: u32,
}

fn main() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, Calls::default());

    // `add`: (i32, i32) -> i32, made from a type and a closure over `Val`s.
    println!("Creating `add` with Func::new...");
    let add_ty = FuncType::new(&engine, [ValType::I32, ValType::I32], [ValType::I32]);
    let add = Func::new(&mut store, add_ty, |mut caller, params, results| {
        caller.data_mut().add += 1;
        results[0] = Val::I32(params[0].unwrap_i32() + params[1].unwrap_i32());
        Ok(())
    });
    println!("add: {}", add.ty(&store));

    // The host can call it like any function: dynamically...
    let mut results = [Val::I32(0)];
    add.call(&mut store, &[Val::I32(2), Val::I32(3)], &mut results)?;
    println!("add(2, 3) = {}", results[0].unwrap_i32());
    assert_eq!(results[0].unwrap_i32(), 5);
    // ...with arguments of the wrong type refused...
    assert!(add.call(&mut store, &[Val::I64(2), Val::I32(3)], &mut results).is_err());
    // ...or statically typed.
    assert_eq!(add.typed::<(i32, i32), i32>(&store)?.call(&mut store, (40, 2))?, 42);
    assert!(add.typed::<(i64, i64), i64>(&store).is_err());

    // `scale`: (i64, f64) -> (i64, f64), defined in a linker.
    println!("Defining `scale` with Linker::func_new...");
    let mut linker = Linker::new(&engine);
    linker.define(&store, "host", "add", add)?;
    let scale_ty = FuncType::new(&engine, [ValType::I64, ValType::F64], [ValType::I64, ValType::F64]);
    linker.func_new("host", "scale", scale_ty, |mut caller: Caller<'_, Calls>, params, results| {
        caller.data_mut().scale += 1;
        results[0] = Val::I64(params[0].unwrap_i64() * 2);
        results[1] = Val::from(params[1].unwrap_f64() + 0.5);
        Ok(())
    })?;

    // The guest calls both.
    println!("Instantiating module...");
    let module = Module::from_file(&engine, "examples/func_new.wat")?;
    let instance = linker.instantiate(&mut store, &module)?;

    println!("Calling add_three and scale_twice...");
    let sum = instance.get_typed_func::<(i32, i32, i32), i32>(&mut store, "add_three")?.call(&mut store, (1, 2, 3))?;
    println!("add_three(1, 2, 3) = {sum}");
    assert_eq!(sum, 6);
    let (n, x) = instance.get_typed_func::<(i64, f64), (i64, f64)>(&mut store, "scale_twice")?.call(&mut store, (3, 1.0))?;
    println!("scale_twice(3, 1.0) = ({n}, {x})");
    assert_eq!((n, x), (12, 2.0));

    let calls = store.data();
    println!("add ran {} times, scale {} times", calls.add, calls.scale);
    assert_eq!((calls.add, calls.scale), (4, 2));

    println!("Done.");
    Ok(())
}

//! Tables and globals from the host: a `funcref` table and a mutable `i32`
//! global made by the host and imported by the module, the module's own
//! exported table and global, reading, writing and growing them from both
//! sides, and their types.
//!
//! wasmtime 48 has no Rust example of this name; this one uses only wasmtime
//! 48's API, with no line that would read differently there.
//!
//! Types are compared with `ValType::eq` and `RefType::eq`, as wasmtime's
//! (which do not implement `PartialEq`) require.

use weft::*;

fn main() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());

    println!("Compiling module...");
    let module = Module::from_file(&engine, "examples/tables_globals.wat")?;

    // A table of two null function references, with no maximum.
    println!("Creating a host table and a host global...");
    let host_table = Table::new(&mut store, TableType::new(RefType::FUNCREF, 2, None), Ref::Func(None))?;
    let ty = host_table.ty(&store);
    println!("host table: {} elements of {}, minimum {}, maximum {:?}", host_table.size(&store), ty.element(), ty.minimum(), ty.maximum());
    assert_eq!((ty.minimum(), ty.maximum()), (2, None));
    assert!(RefType::eq(ty.element(), &RefType::FUNCREF));
    assert!(host_table.get(&mut store, 0).unwrap().unwrap_func().is_none());

    // A mutable i32 global, and an immutable one.
    let counter = Global::new(&mut store, GlobalType::new(ValType::I32, Mutability::Var), Val::I32(41))?;
    let ty = counter.ty(&store);
    println!("host global: {} {:?} = {}", ty.content(), ty.mutability(), counter.get(&mut store).unwrap_i32());
    assert!(ValType::eq(ty.content(), &ValType::I32) && ty.mutability() == Mutability::Var);
    let constant = Global::new(&mut store, GlobalType::new(ValType::I64, Mutability::Const), Val::I64(7))?;
    assert!(constant.set(&mut store, Val::I64(8)).is_err(), "an immutable global cannot be set");
    assert!(counter.set(&mut store, Val::I64(8)).is_err(), "a value of the wrong type cannot be stored");
    assert_eq!(constant.get(&mut store).unwrap_i64(), 7);

    println!("Instantiating module...");
    let instance = Instance::new(&mut store, &module, &[counter.into(), host_table.into()])?;
    let call_host = instance.get_typed_func::<i32, i32>(&mut store, "call_host")?;
    let call_own = instance.get_typed_func::<i32, i32>(&mut store, "call_own")?;

    // Fill the host table with a host function and a Wasm function; the guest
    // calls both through `call_indirect`.
    println!("Filling the host table...");
    let hundred = Func::wrap(&mut store, || 100i32);
    let two = instance.get_func(&mut store, "two").unwrap();
    host_table.set(&mut store, 0, hundred.into())?;
    host_table.set(&mut store, 1, two.into())?;
    let (a, b) = (call_host.call(&mut store, 0)?, call_host.call(&mut store, 1)?);
    println!("call_host(0) = {a}, call_host(1) = {b}");
    assert_eq!((a, b), (100, 2));
    assert!(host_table.set(&mut store, 2, hundred.into()).is_err(), "out of bounds");

    // Grow it by one null element and by one function.
    println!("Growing the host table...");
    assert_eq!(host_table.grow(&mut store, 1, Ref::Func(None))?, 2);
    let one = instance.get_func(&mut store, "one").unwrap();
    assert_eq!(host_table.grow(&mut store, 1, one.into())?, 3);
    println!("host table size: {}", host_table.size(&store));
    assert_eq!(host_table.size(&store), 4);
    assert_eq!(call_host.call(&mut store, 3)?, 1);
    let err = call_host.call(&mut store, 2).unwrap_err();
    println!("call_host(2): {:?}", err.downcast_ref::<Trap>().unwrap());
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::IndirectCallToNull));
    let err = call_host.call(&mut store, 4).unwrap_err();
    println!("call_host(4): {:?}", err.downcast_ref::<Trap>().unwrap());
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::TableOutOfBounds));

    // The module's own table: its element segment put `one` and `two` there.
    println!("Reading the module's table...");
    let table = instance.get_table(&mut store, "table").unwrap();
    let ty = table.ty(&store);
    println!("module table: {} elements, minimum {}, maximum {:?}", table.size(&store), ty.minimum(), ty.maximum());
    assert_eq!((ty.minimum(), ty.maximum()), (2, Some(10)));
    let first = *table.get(&mut store, 0).unwrap().unwrap_func().unwrap();
    let first = first.typed::<(), i32>(&store)?.call(&mut store, ())?;
    println!("table[0]() = {first}");
    assert_eq!(first, 1);
    assert!(table.get(&mut store, 2).is_none(), "out of bounds");
    table.set(&mut store, 1, hundred.into())?;
    assert_eq!(call_own.call(&mut store, 1)?, 100);
    assert_eq!(table.grow(&mut store, 8, one.into())?, 2);
    assert!(table.grow(&mut store, 1, Ref::Func(None)).is_err(), "past the maximum");
    assert_eq!(call_own.call(&mut store, 9)?, 1);

    // The imported global, changed by the guest and by the host.
    println!("Bumping the host global from Wasm...");
    let bumped = instance.get_typed_func::<(), i32>(&mut store, "bump")?.call(&mut store, ())?;
    println!("bump() = {bumped}, host sees {}", counter.get(&mut store).unwrap_i32());
    assert_eq!((bumped, counter.get(&mut store).unwrap_i32()), (42, 42));
    counter.set(&mut store, Val::I32(100))?;
    assert_eq!(instance.get_typed_func::<(), i32>(&mut store, "bump")?.call(&mut store, ())?, 101);

    // The module's own global.
    println!("Reading and writing the module's global...");
    let g = instance.get_global(&mut store, "g").unwrap();
    assert_eq!(g.get(&mut store).unwrap_i32(), 10);
    g.set(&mut store, Val::I32(20))?;
    assert_eq!(instance.get_typed_func::<(), i32>(&mut store, "get_g")?.call(&mut store, ())?, 20);
    instance.get_typed_func::<i32, ()>(&mut store, "set_g")?.call(&mut store, 30)?;
    println!("g = {}", g.get(&mut store).unwrap_i32());
    assert_eq!(g.get(&mut store).unwrap_i32(), 30);

    println!("Done.");
    Ok(())
}

//! Host references (`externref`): one made by the host, stored in a table and
//! a global of the module and read back, and passed to and returned from a
//! Wasm function.
//!
//! wasmtime 48's `examples/externref.rs`, written for Weft. Differences
//! besides the crate name (Weft's `ExternRef` is a plain `Copy` handle that the
//! store owns, and `Rooted<T>` is `T` itself, since nothing needs rooting):
//! - `elem == externref` (three times) for wasmtime's
//!   `Rooted::ref_eq(&store, &elem, &externref)?`, which cannot be spelled on
//!   a type alias;
//! - `.copied()` after `unwrap_extern()`/`unwrap_externref()`, where wasmtime
//!   clones its `Rooted` handle with `.cloned()` (both compile on a `Copy`
//!   handle; the example uses the plainer one);
//! - the `println!`s of the values read back are added.

use weft::*;

fn main() -> Result<()> {
    println!("Initializing...");
    let mut config = Config::new();
    config.wasm_reference_types(true);
    let engine = Engine::new(&config)?;
    let mut store = Store::new(&engine, ());

    println!("Compiling module...");
    let module = Module::from_file(&engine, "examples/externref.wat")?;

    println!("Instantiating module...");
    let instance = Instance::new(&mut store, &module, &[])?;

    // A reference to a host value; the guest can hold it but not look inside.
    println!("Creating new `externref`...");
    let externref = ExternRef::new(&mut store, "Hello, World!")?;
    assert!(externref.data(&store)?.expect("should have host data").is::<&'static str>());
    assert_eq!(*externref.data(&store)?.expect("should have host data").downcast_ref::<&'static str>().unwrap(), "Hello, World!");

    println!("Touching `externref` table...");
    let table = instance.get_table(&mut store, "table").unwrap();
    table.set(&mut store, 3, Some(externref).into())?;
    let elem = table
        .get(&mut store, 3)
        .unwrap() // assert in bounds
        .unwrap_extern() // assert it's an externref table
        .copied()
        .unwrap(); // assert the externref isn't null
    assert!(elem == externref); // wasmtime 48: Rooted::ref_eq(&store, &elem, &externref)?
    println!("table[3] holds {:?}", elem.data(&store)?.unwrap().downcast_ref::<&'static str>().unwrap());

    println!("Touching `externref` global...");
    let global = instance.get_global(&mut store, "global").unwrap();
    global.set(&mut store, Some(externref).into())?;
    let global_val = global.get(&mut store).unwrap_externref().copied().unwrap();
    assert!(global_val == externref); // wasmtime 48: Rooted::ref_eq(&store, &global_val, &externref)?
    println!("the global holds {:?}", global_val.data(&store)?.unwrap().downcast_ref::<&'static str>().unwrap());

    println!("Calling `externref` func...");
    let func = instance.get_typed_func::<Option<Rooted<ExternRef>>, Option<Rooted<ExternRef>>>(&mut store, "func")?;
    let ret = func.call(&mut store, Some(externref))?;
    assert!(ret.is_some());
    assert!(ret.unwrap() == externref); // wasmtime 48: Rooted::ref_eq(&store, &ret.unwrap(), &externref)?
    println!("func returned {:?}", ret.unwrap().data(&store)?.unwrap().downcast_ref::<&'static str>().unwrap());

    println!("GCing within the store...");
    store.gc(None);

    println!("Done.");
    Ok(())
}

//! Works with a module's exported linear memory from the host: its size, its
//! bytes (`data`, `data_mut`, `read`, `write`), growing it, out-of-bounds
//! accesses that trap, and a stand-alone memory made by the host.
//!
//! wasmtime 48's `examples/memory.rs`, written for Weft. Differences besides
//! the crate name, all additions:
//! - after the first out-of-bounds `store_fn` call, three lines check that its
//!   error is `Trap::MemoryOutOfBounds` (downcast) and print it;
//! - the "Reading and writing through read/write..." block (`Memory::read`,
//!   `Memory::write`, `MemoryType::minimum`/`maximum`);
//! - the `println!`s of the sizes, and the check of `grow`'s return value
//!   after `memory.grow(&mut store, 0)`.

use weft::*;

fn main() -> Result<()> {
    // Compile a module and instantiate it in one go.
    let mut store: Store<()> = Store::default();
    let module = Module::from_file(store.engine(), "examples/memory.wat")?;
    let instance = Instance::new(&mut store, &module, &[])?;

    // The exports we work with.
    let memory = instance.get_memory(&mut store, "memory").ok_or(anyhow::format_err!("failed to find `memory` export"))?;
    let size = instance.get_typed_func::<(), i32>(&mut store, "size")?;
    let load_fn = instance.get_typed_func::<i32, i32>(&mut store, "load")?;
    let store_fn = instance.get_typed_func::<(i32, i32), ()>(&mut store, "store")?;

    // The memory starts with 2 pages, zeroed except for the data segment.
    println!("Checking memory...");
    assert_eq!(memory.size(&store), 2);
    assert_eq!(memory.data_size(&store), 0x20000);
    assert_eq!(memory.data_mut(&mut store)[0], 0);
    assert_eq!(memory.data_mut(&mut store)[0x1000], 1);
    assert_eq!(memory.data_mut(&mut store)[0x1003], 4);
    println!("size: {} pages, {:#x} bytes", memory.size(&store), memory.data_size(&store));

    assert_eq!(size.call(&mut store, ())?, 2);
    assert_eq!(load_fn.call(&mut store, 0)?, 0);
    assert_eq!(load_fn.call(&mut store, 0x1000)?, 1);
    assert_eq!(load_fn.call(&mut store, 0x1003)?, 4);
    assert_eq!(load_fn.call(&mut store, 0x1ffff)?, 0);
    assert!(load_fn.call(&mut store, 0x20000).is_err()); // out of bounds trap

    // The host and the guest see each other's writes.
    println!("Mutating memory...");
    memory.data_mut(&mut store)[0x1003] = 5;

    store_fn.call(&mut store, (0x1002, 6))?;
    assert!(store_fn.call(&mut store, (0x20000, 0)).is_err()); // out of bounds trap
    let err = store_fn.call(&mut store, (0x20000, 0)).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    println!("Out-of-bounds store: {}", err.downcast_ref::<Trap>().unwrap());

    assert_eq!(memory.data(&store)[0x1002], 6);
    assert_eq!(memory.data(&store)[0x1003], 5);
    assert_eq!(load_fn.call(&mut store, 0x1002)?, 6);
    assert_eq!(load_fn.call(&mut store, 0x1003)?, 5);

    // Copying in and out of the memory, with bounds checks.
    println!("Reading and writing through read/write...");
    let mut buf = [0u8; 4];
    memory.read(&store, 0x1000, &mut buf)?;
    assert_eq!(buf, [1, 2, 6, 5]);
    memory.write(&mut store, 0x2000, b"weft")?;
    assert_eq!(load_fn.call(&mut store, 0x2000)?, i32::from(b'w'));
    assert!(memory.read(&store, 0x1fffe, &mut buf).is_err());
    assert!(memory.write(&mut store, 0x20000, b"x").is_err());
    let ty = memory.ty(&store);
    println!("memory type: minimum {} pages, maximum {:?}", ty.minimum(), ty.maximum());
    assert_eq!((ty.minimum(), ty.maximum()), (2, Some(3)));

    // Grow by one page, up to the maximum of 3.
    println!("Growing memory...");
    memory.grow(&mut store, 1)?;
    assert_eq!(memory.size(&store), 3);
    assert_eq!(memory.data_size(&store), 0x30000);
    println!("size: {} pages, {:#x} bytes", memory.size(&store), memory.data_size(&store));

    assert_eq!(load_fn.call(&mut store, 0x20000)?, 0);
    store_fn.call(&mut store, (0x20000, 0))?;
    assert!(load_fn.call(&mut store, 0x30000).is_err());
    assert!(store_fn.call(&mut store, (0x30000, 0)).is_err());

    assert!(memory.grow(&mut store, 1).is_err());
    assert!(memory.grow(&mut store, 0).is_ok());
    assert_eq!(memory.grow(&mut store, 0)?, 3);

    // A memory made by the host, of exactly 5 pages.
    println!("Creating stand-alone memory...");
    let memorytype = MemoryType::new(5, Some(5));
    let memory2 = Memory::new(&mut store, memorytype)?;
    assert_eq!(memory2.size(&store), 5);
    assert!(memory2.grow(&mut store, 1).is_err());
    assert!(memory2.grow(&mut store, 0).is_ok());
    println!("stand-alone memory: {} pages", memory2.size(&store));

    Ok(())
}

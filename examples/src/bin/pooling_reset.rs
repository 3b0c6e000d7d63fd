//! Weft's pooling allocator and `Instance::reset`. With
//! `InstanceAllocationStrategy::Pooling`, memory slots are reserved when the
//! engine is made and reused warm: instantiating the same module again in a
//! slot costs at most one `madvise` (restoring what the last tenant touched)
//! and no `mmap`, `munmap` or `mprotect`. `Instance::reset` restores an
//! instance's memories, tables and globals in place for about the same price.
//! The example counts the system calls with `weft::syscall_counts()` (counted
//! per thread), and checks each tenant sees pristine state.
//!
//! No wasmtime counterpart: `Instance::reset` and `syscall_counts` are Weft's
//! own (wasmtime 48 has the pooling allocator, with `PoolingAllocationConfig`
//! and builder methods instead of `PoolingConfig`'s public fields).

use weft::*;

/// The system calls made between `before` and `after`.
fn delta(before: SyscallCounts, after: SyscallCounts) -> SyscallCounts {
    SyscallCounts {
        mmap: after.mmap - before.mmap,
        munmap: after.munmap - before.munmap,
        mprotect: after.mprotect - before.mprotect,
        madvise: after.madvise - before.madvise,
        ftruncate: after.ftruncate - before.ftruncate,
        pagemap_reads: after.pagemap_reads - before.pagemap_reads,
    }
}

fn show(d: &SyscallCounts) -> String {
    format!("mmap {}, munmap {}, mprotect {}, madvise {}", d.mmap, d.munmap, d.mprotect, d.madvise)
}

/// At most one `madvise`, and nothing that changes the address space.
fn is_warm(d: &SyscallCounts) -> bool {
    d.madvise <= 1 && d.mmap == 0 && d.munmap == 0 && d.mprotect == 0
}

fn main() -> Result<()> {
    // A pool of 4 memories, 4 tables and 4 instances.
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig {
        total_memories: 4,
        total_tables: 4,
        total_core_instances: 4,
        ..PoolingConfig::default()
    }));
    let engine = Engine::new(&config)?;
    let module = Module::from_file(&engine, "examples/pooling_reset.wat")?;

    // One tenant after another: each writes to its memory, the next one sees
    // the data segment again.
    println!("Instantiating 10 times, one store after another...");
    let mut warm = 0;
    for i in 0..10 {
        let before = weft::syscall_counts();
        let mut store = Store::new(&engine, ());
        let instance = Instance::new(&mut store, &module, &[])?;
        let d = delta(before, weft::syscall_counts());
        let read = instance.get_typed_func::<i32, i32>(&mut store, "read")?;
        let scribble = instance.get_typed_func::<(i32, i32), ()>(&mut store, "scribble")?;
        assert_eq!(read.call(&mut store, 0)?, i32::from(b'p'), "tenant {i} sees the last tenant's write");
        assert_eq!(read.call(&mut store, 5000)?, 0, "tenant {i} sees the last tenant's write");
        scribble.call(&mut store, (0, i32::from(b'X')))?;
        scribble.call(&mut store, (5000, 1))?;
        if i == 0 {
            println!("instantiation 0 (cold): {}", show(&d));
        } else {
            println!("instantiation {i} (warm): {}", show(&d));
            assert!(is_warm(&d), "warm instantiation {i}: {d:?}");
            warm += 1;
        }
    }
    println!("{warm} warm instantiations, each with at most one madvise and no mmap, munmap or mprotect");

    // The pool holds 4 instances at once: a fifth waits for a free slot.
    println!("Holding 4 instances at once...");
    let mut stores = Vec::new();
    for _ in 0..4 {
        let mut store = Store::new(&engine, ());
        Instance::new(&mut store, &module, &[])?;
        stores.push(store);
    }
    let mut fifth = Store::new(&engine, ());
    let err = Instance::new(&mut fifth, &module, &[]).unwrap_err();
    println!("a fifth instance is refused: {err}");
    drop(stores);
    Instance::new(&mut fifth, &module, &[])?;
    println!("and accepted once the others are dropped");
    drop(fifth);

    // Reset in place: the same instance, its state back to what
    // instantiation made.
    println!("Resetting an instance in place...");
    let mut store = Store::new(&engine, ());
    let instance = Instance::new(&mut store, &module, &[])?;
    let read = instance.get_typed_func::<i32, i32>(&mut store, "read")?;
    let scribble = instance.get_typed_func::<(i32, i32), ()>(&mut store, "scribble")?;
    let grow = instance.get_typed_func::<i32, i32>(&mut store, "grow")?;
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let writes = instance.get_global(&mut store, "writes").unwrap();
    for round in 0..3 {
        scribble.call(&mut store, (0, i32::from(b'X')))?;
        scribble.call(&mut store, (5000, 7))?;
        assert_eq!((read.call(&mut store, 0)?, writes.get(&mut store).unwrap_i32()), (i32::from(b'X'), 2));
        let before = weft::syscall_counts();
        instance.reset(&mut store)?;
        let d = delta(before, weft::syscall_counts());
        println!("reset {round}: {}", show(&d));
        assert!(is_warm(&d), "reset {round}: {d:?}");
        assert_eq!(read.call(&mut store, 0)?, i32::from(b'p'));
        assert_eq!(read.call(&mut store, 5000)?, 0);
        assert_eq!(writes.get(&mut store).unwrap_i32(), 0);
    }

    // A grown memory shrinks back to its initial size.
    assert_eq!(grow.call(&mut store, 2)?, 1);
    scribble.call(&mut store, (3 * 65536 - 1, 9))?;
    assert_eq!(memory.size(&store), 3);
    instance.reset(&mut store)?;
    println!("after growing to 3 pages and a reset: {} page(s), writes = {}", memory.size(&store), writes.get(&mut store).unwrap_i32());
    assert_eq!(memory.size(&store), 1);
    assert_eq!(memory.data(&store)[..8], *b"pristine");
    let err = read.call(&mut store, 65536).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    assert_eq!(grow.call(&mut store, 2)?, 1);
    assert_eq!(read.call(&mut store, 3 * 65536 - 1)?, 0, "the grown pages come back zeroed");

    println!("Done.");
    Ok(())
}

//! Copy-on-write memory images, the pooling allocator and instance reset:
//! what each instantiation costs in system calls, and that no state leaks
//! between tenants of a slot.

use weft::{Config, Engine, Instance, InstanceAllocationStrategy, MemoryGrowth, Module, PoolingConfig, Store, Trap};

const MODULE: &str = r#"(module
    (memory (export "memory") 4)
    (global $g (mut i32) (i32.const 7))
    (data (i32.const 16) "hello")
    (data (i32.const 70000) "far")
    (func (export "read") (param i32) (result i32) (i32.load8_u (local.get 0)))
    (func (export "write") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))
    (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "size") (result i32) (memory.size))
    (func (export "global") (result i32) (global.get $g))
    (func (export "set_global") (param i32) (global.set $g (local.get 0)))
    (func (export "trap_after_write") (i32.store8 (i32.const 100) (i32.const 9)) unreachable))"#;

fn pooled_engine(keep_resident: u64) -> Engine {
    pooled_engine_growing_by(keep_resident, MemoryGrowth::Protect)
}

fn pooled_engine_growing_by(keep_resident: u64, growth: MemoryGrowth) -> Engine {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig {
        total_memories: 4,
        total_tables: 4,
        total_core_instances: 4,
        keep_resident,
        growth,
        ..PoolingConfig::default()
    }));
    Engine::new(&config).unwrap()
}

trait ReadByte {
    fn read_byte(&self, store: &Store<()>, offset: usize) -> u8;
}

impl ReadByte for weft::Memory {
    fn read_byte(&self, store: &Store<()>, offset: usize) -> u8 {
        let mut byte = [0];
        self.read(store, offset, &mut byte).unwrap();
        byte[0]
    }
}

fn call<P: weft::WasmParams, R: weft::WasmResults>(store: &mut Store<()>, inst: Instance, name: &str, p: P) -> R {
    inst.get_typed_func::<P, R>(&mut *store, name).unwrap().call(&mut *store, p).unwrap()
}

/// Two tenants that each write a byte of their memory (so their slot needs
/// restoring) and are dropped.
fn run_writing_tenants(engine: &Engine, module: &Module) {
    for _ in 0..2 {
        let mut store = Store::new(engine, ());
        let inst = Instance::new(&mut store, module, &[]).unwrap();
        call::<(i32, i32), ()>(&mut store, inst, "write", (16, b'J' as i32));
    }
}

#[test]
fn warm_pooled_reinstantiation_is_one_madvise() {
    let engine = pooled_engine(0);
    let module = Module::new(&engine, MODULE).unwrap();
    // Warm up: the first use of the slot maps the image.
    run_writing_tenants(&engine, &module);
    let before = weft::syscall_counts();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let after = weft::syscall_counts();
    assert_eq!(after.madvise - before.madvise, 1, "{before:?} -> {after:?}");
    assert_eq!(after.mmap, before.mmap);
    assert_eq!(after.munmap, before.munmap);
    assert_eq!(after.mprotect, before.mprotect);
    // And the tenant sees pristine data: the image, not the last tenant's write.
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 16), b'h' as i32);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 70000), b'f' as i32);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 200), 0);
}

/// A tenant that never ran Wasm and never had its bytes handed to the host
/// cannot have written its memory: the next tenant of the slot pays no system
/// call. Handing the bytes to the host counts as writing.
#[test]
fn a_slot_whose_tenant_never_ran_is_reused_without_a_system_call() {
    let engine = pooled_engine(0);
    let module = Module::new(&engine, MODULE).unwrap();
    run_writing_tenants(&engine, &module);
    // The first tenant after a running one restores the slot; the next ones have nothing to restore.
    let mut counts = Vec::new();
    for _ in 0..3 {
        let before = weft::syscall_counts();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let after = weft::syscall_counts();
        counts.push(after.madvise - before.madvise);
        assert_eq!((after.mmap, after.munmap, after.mprotect), (before.mmap, before.munmap, before.mprotect));
        let mem = inst.get_memory(&mut store, "memory").unwrap();
        assert_eq!(mem.read_byte(&store, 16), b'h');
    }
    // `read_byte` reads through `Memory::read`, which hands no bytes out.
    assert_eq!(counts, [1, 0, 0]);
    // Nor does reading through `Memory::data`: the slice is read-only.
    {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let mem = inst.get_memory(&mut store, "memory").unwrap();
        assert_eq!(mem.data(&store)[16], b'h');
    }
    let before = weft::syscall_counts();
    let mut store = Store::new(&engine, ());
    Instance::new(&mut store, &module, &[]).unwrap();
    assert_eq!(weft::syscall_counts().madvise, before.madvise, "after the host read the last tenant through Memory::data");
    drop(store);

    type HostWrite = fn(&mut Store<()>, weft::Memory);
    let writers: [(&str, HostWrite); 3] = [
        ("data_mut", |store, mem| mem.data_mut(store)[16] = b'X'),
        ("write", |store, mem| mem.write(store, 16, b"X").unwrap()),
        // SAFETY: offset 16 is inside the memory, which outlives the write.
        ("data_ptr", |store, mem| unsafe { *mem.data_ptr(&*store).add(16) = b'X' }),
    ];
    for (name, write) in writers {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let mem = inst.get_memory(&mut store, "memory").unwrap();
        write(&mut store, mem);
        drop(store);
        let before = weft::syscall_counts();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let after = weft::syscall_counts();
        assert_eq!(after.madvise - before.madvise, 1, "after a host write through {name}");
        let mem = inst.get_memory(&mut store, "memory").unwrap();
        assert_eq!(mem.read_byte(&store, 16), b'h', "after a host write through {name}");
    }
}

fn rewriting_engine(max_bytes: u64) -> Engine {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig {
        total_memories: 2,
        rewrite_written_pages: max_bytes,
        ..PoolingConfig::default()
    }));
    Engine::new(&config).unwrap()
}

/// Minor page faults of the calling thread so far.
fn minor_faults() -> i64 {
    // SAFETY: getrusage writes the struct we pass.
    unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        assert_eq!(libc::getrusage(libc::RUSAGE_THREAD, &mut usage), 0);
        usage.ru_minflt
    }
}

/// With `rewrite_written_pages`, the pages a tenant wrote (an image page, a
/// zero page, a page it grew into) are found in the pagemap and written back:
/// no madvise, pristine contents, and the next tenant writes them without a
/// page fault. A tenant that writes more than the budget gets an madvise.
#[test]
fn rewriting_written_pages_restores_without_madvise() {
    let engine = rewriting_engine(64 << 10);
    let module = Module::new(&engine, MODULE).unwrap();
    let tenant = |writes: &[i32]| {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        // Pristine whatever the last tenant did.
        for (addr, expected) in [(16, b'h'), (17, b'e'), (70000, b'f'), (3 * 65536 + 5, 0), (150_000, 0)] {
            assert_eq!(call::<i32, i32>(&mut store, inst, "read", addr), expected as i32, "at {addr}");
        }
        assert_eq!(call::<(), i32>(&mut store, inst, "size", ()), 4);
        assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 2), 4);
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 5 * 65536), 0);
        let faults = minor_faults();
        for &addr in writes {
            call::<(i32, i32), ()>(&mut store, inst, "write", (addr, 0x55));
        }
        (store, inst, minor_faults() - faults)
    };
    let writes = [16, 3 * 65536 + 5, 5 * 65536, 70000];
    let (_, _, first_faults) = tenant(&writes);
    assert!(first_faults > 0, "the first tenant faults its pages in");
    for round in 0..3 {
        let before = weft::syscall_counts();
        let (_store, _inst, faults) = tenant(&writes);
        let after = weft::syscall_counts();
        assert_eq!(after.madvise, before.madvise, "round {round}: {before:?} -> {after:?}");
        assert_eq!(after.pagemap_reads - before.pagemap_reads, 1, "round {round}");
        assert_eq!(faults, 0, "round {round}: the written pages stayed resident");
    }
    // Reset in place takes the same path.
    let (mut store, inst, _) = tenant(&writes);
    let before = weft::syscall_counts();
    inst.reset(&mut store).unwrap();
    assert_eq!(weft::syscall_counts().madvise, before.madvise);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 16), b'h' as i32);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 3 * 65536 + 5), 0);
    drop(store);
    // 20 pages of 4 KiB are past the 64 KiB budget: discarded instead.
    let many: Vec<i32> = (0..20).map(|i| 65536 + i * 4096).collect();
    tenant(&many);
    let before = weft::syscall_counts();
    tenant(&[]);
    assert_eq!(weft::syscall_counts().madvise - before.madvise, 1);
}

#[test]
fn keep_resident_avoids_the_madvise() {
    let engine = pooled_engine(1 << 20);
    let module = Module::new(&engine, MODULE).unwrap();
    for _ in 0..2 {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        call::<(i32, i32), ()>(&mut store, inst, "write", (17, 1));
        call::<(i32, i32), ()>(&mut store, inst, "write", (200, 1));
    }
    let before = weft::syscall_counts();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let after = weft::syscall_counts();
    // 4 pages (256 KiB) of memory, all within keep_resident: no syscall at all.
    assert_eq!(after, before);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 17), b'e' as i32);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 200), 0);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 70001), b'a' as i32);
}

#[test]
fn growth_and_traps_do_not_leak_to_the_next_tenant() {
    for growth in [MemoryGrowth::Protect, MemoryGrowth::Truncate] {
        growth_and_traps_do_not_leak(growth);
    }
}

fn growth_and_traps_do_not_leak(growth: MemoryGrowth) {
    let engine = pooled_engine_growing_by(0, growth);
    let module = Module::new(&engine, MODULE).unwrap();
    {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 3), 4);
        call::<(i32, i32), ()>(&mut store, inst, "write", (6 * 65536, 5));
        call::<i32, ()>(&mut store, inst, "set_global", 99);
        let err = inst.get_typed_func::<(), ()>(&mut store, "trap_after_write").unwrap().call(&mut store, ()).unwrap_err();
        assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
    }
    for _ in 0..4 {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        assert_eq!(call::<(), i32>(&mut store, inst, "size", ()), 4);
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 100), 0);
        assert_eq!(call::<(), i32>(&mut store, inst, "global", ()), 7);
        // The grown pages are out of bounds again...
        let read = inst.get_typed_func::<i32, i32>(&mut store, "read").unwrap();
        let err = read.call(&mut store, 6 * 65536).unwrap_err();
        assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
        // ... and zero once grown again.
        assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 3), 4);
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 6 * 65536), 0);
    }
}

/// With `MemoryGrowth::Truncate`, growth is one `ftruncate` of the slot's
/// memfd (no mprotect, so no write lock on the process's mappings), accesses
/// past the grown size still trap (SIGBUS past the file's end), and the next
/// tenant pays one madvise plus one ftruncate, still without mapping changes.
#[test]
fn truncate_growth_extends_the_memfd_without_mprotect() {
    let engine = pooled_engine_growing_by(0, MemoryGrowth::Truncate);
    let module = Module::new(&engine, MODULE).unwrap();
    run_writing_tenants(&engine, &module);
    let before = weft::syscall_counts();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let warm = weft::syscall_counts();
    // No growth last time: the same single madvise as with mprotect growth.
    assert_eq!((warm.madvise - before.madvise, warm.ftruncate - before.ftruncate), (1, 0), "{before:?} -> {warm:?}");
    assert_eq!((warm.mmap, warm.mprotect, warm.munmap), (before.mmap, before.mprotect, before.munmap));

    let read = inst.get_typed_func::<i32, i32>(&mut store, "read").unwrap();
    let oob = |store: &mut Store<()>, addr| *read.call(store, addr).unwrap_err().downcast_ref::<Trap>().unwrap();
    assert_eq!(oob(&mut store, 4 * 65536), Trap::MemoryOutOfBounds);
    assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 2), 4);
    let grown = weft::syscall_counts();
    assert_eq!((grown.ftruncate - warm.ftruncate, grown.mprotect, grown.mmap), (1, warm.mprotect, warm.mmap));
    call::<(i32, i32), ()>(&mut store, inst, "write", (6 * 65536 - 1, 42));
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 6 * 65536 - 1), 42);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 4 * 65536), 0);
    // One byte past the memfd's end: SIGBUS, reported as out of bounds.
    assert_eq!(oob(&mut store, 6 * 65536), Trap::MemoryOutOfBounds);
    // The host sees the grown memory too.
    let mem = inst.get_memory(&mut store, "memory").unwrap();
    assert_eq!(mem.data(&store).len(), 6 * 65536);
    assert_eq!(mem.data(&store)[6 * 65536 - 1], 42);
    drop(store);

    let before = weft::syscall_counts();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let after = weft::syscall_counts();
    assert_eq!((after.madvise - before.madvise, after.ftruncate - before.ftruncate), (1, 1), "{before:?} -> {after:?}");
    assert_eq!((after.mmap, after.mprotect, after.munmap), (before.mmap, before.mprotect, before.munmap));
    assert_eq!(call::<(), i32>(&mut store, inst, "size", ()), 4);
    assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 2), 4);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 6 * 65536 - 1), 0, "the last tenant's write is gone");
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 16), b'h' as i32);

    // Reset in place, and a different module taking over the slot.
    call::<(i32, i32), ()>(&mut store, inst, "write", (5 * 65536, 7));
    inst.reset(&mut store).unwrap();
    assert_eq!(call::<(), i32>(&mut store, inst, "size", ()), 4);
    assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 1), 4);
    assert_eq!(call::<i32, i32>(&mut store, inst, "read", 5 * 65536 - 1), 0);
    drop(store);
    let other = Module::new(
        &engine,
        r#"(module (memory (export "memory") 1 3)
        (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
        (func (export "read") (param i32) (result i32) (i32.load8_u (local.get 0))))"#,
    )
    .unwrap();
    for _ in 0..4 {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &other, &[]).unwrap();
        assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 2), 1);
        assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 1), -1, "past the maximum");
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 3 * 65536 - 1), 0);
    }
}

/// With `decommit_batch_size`, dropped slots are cleaned together: four
/// instances cost one `madvise` between them (their slots are adjacent), none
/// at instantiation, and every tenant still starts pristine.
#[test]
fn batched_decommit_cleans_several_slots_in_one_call() {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig {
        total_memories: 8,
        total_tables: 8,
        total_core_instances: 8,
        decommit_batch_size: 4,
        ..PoolingConfig::default()
    }));
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(&engine, MODULE).unwrap();
    let tenants = |n: usize| -> Vec<(Store<()>, Instance)> {
        (0..n)
            .map(|_| {
                let mut store = Store::new(&engine, ());
                let inst = Instance::new(&mut store, &module, &[]).unwrap();
                (store, inst)
            })
            .collect()
    };
    // Every slot holds the image, then all are dirty and dropped (two batches).
    for (mut store, inst) in tenants(8) {
        call::<(i32, i32), ()>(&mut store, inst, "write", (16, 0));
    }
    for round in 0..3 {
        let before = weft::syscall_counts();
        let mut live = tenants(4);
        let created = weft::syscall_counts();
        assert_eq!(created, before, "round {round}: instantiating clean slots makes no system call");
        for (store, inst) in &mut live {
            assert_eq!(call::<i32, i32>(store, *inst, "read", 16), b'h' as i32, "round {round}: pristine");
            call::<(i32, i32), ()>(store, *inst, "write", (16, 0));
        }
        drop(live);
        let dropped = weft::syscall_counts();
        assert_eq!(dropped.madvise - created.madvise, 1, "round {round}: {created:?} -> {dropped:?}");
        assert_eq!((dropped.mmap, dropped.mprotect, dropped.munmap), (created.mmap, created.mprotect, created.munmap));
    }
    // With every clean slot taken, slots waiting for their batch are used
    // (and cleaned as they are prepared).
    let mut all = tenants(8);
    for (mut store, inst) in all.drain(..3) {
        call::<(i32, i32), ()>(&mut store, inst, "write", (16, 0));
    }
    for (mut store, inst) in tenants(3) {
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 16), b'h' as i32);
    }
}

#[test]
fn pool_limits_are_enforced_and_slots_come_back() {
    let engine = pooled_engine(0);
    let module = Module::new(&engine, MODULE).unwrap();
    let mut stores: Vec<Store<()>> = (0..4).map(|_| Store::new(&engine, ())).collect();
    for s in &mut stores {
        Instance::new(s, &module, &[]).unwrap();
    }
    let mut extra = Store::new(&engine, ());
    assert!(Instance::new(&mut extra, &module, &[]).is_err());
    stores.pop();
    Instance::new(&mut extra, &module, &[]).unwrap();
}

#[test]
fn images_of_many_overlapping_segments() {
    for pooled in [false, true] {
        let engine = if pooled { pooled_engine(0) } else { Engine::default() };
        let mut wat = String::from("(module (memory (export \"memory\") 2)");
        for i in 0..200 {
            wat.push_str(&format!("(data (i32.const {}) \"{}\")", i * 300, "ab".repeat(100)));
        }
        // Later segments overwrite earlier ones.
        wat.push_str("(data (i32.const 10) \"XYZ\") (data (i32.const 11) \"q\"))");
        let module = Module::new(&engine, &wat).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let mem = inst.get_memory(&mut store, "memory").unwrap();
        let data = mem.data(&store);
        assert_eq!(&data[8..14], b"abXqZb");
        assert_eq!(&data[300..302], b"ab");
        assert_eq!(data[250], 0);
        assert_eq!(&data[199 * 300..199 * 300 + 4], b"abab");
    }
}

#[test]
fn segments_beyond_the_initial_size_trap_in_order() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (import "env" "mem" (memory 1))
            (data (i32.const 0) "ok")
            (data (i32.const 65535) "xx"))"#,
    )
    .unwrap();
    let own = Module::new(&engine, r#"(module (memory 1) (data (i32.const 65535) "xx"))"#).unwrap();
    let mut store = Store::new(&engine, ());
    let mem = weft::Memory::new(&mut store, weft::MemoryType::new(1, None)).unwrap();
    let err = Instance::new(&mut store, &module, &[mem.into()]).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    // The first segment was written before the second trapped.
    assert_eq!(&mem.data(&store)[..2], b"ok");
    let err = Instance::new(&mut store, &own, &[]).unwrap_err();
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
}

#[test]
fn reset_restores_the_just_instantiated_state() {
    for pooled in [false, true] {
        let engine = if pooled { pooled_engine(0) } else { Engine::default() };
        let module = Module::new(&engine, MODULE).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        call::<(i32, i32), ()>(&mut store, inst, "write", (16, 0));
        call::<(i32, i32), ()>(&mut store, inst, "write", (5000, 3));
        call::<i32, ()>(&mut store, inst, "set_global", 1);
        assert_eq!(call::<i32, i32>(&mut store, inst, "grow", 2), 4);
        let before = weft::syscall_counts();
        inst.reset(&mut store).unwrap();
        let after = weft::syscall_counts();
        assert_eq!(after.madvise - before.madvise, 1);
        assert_eq!(after.mmap, before.mmap);
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 16), b'h' as i32);
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 5000), 0);
        assert_eq!(call::<(), i32>(&mut store, inst, "global", ()), 7);
        assert_eq!(call::<(), i32>(&mut store, inst, "size", ()), 4);
        // Wasm ran since the reset: the next reset restores; the one after it,
        // with nothing run in between, has nothing to restore.
        let before = weft::syscall_counts();
        inst.reset(&mut store).unwrap();
        let middle = weft::syscall_counts();
        inst.reset(&mut store).unwrap();
        let after = weft::syscall_counts();
        assert_eq!((middle.madvise - before.madvise, after.madvise - middle.madvise), (1, 0));
        assert_eq!(call::<i32, i32>(&mut store, inst, "read", 16), b'h' as i32);
    }
}

#[test]
fn host_functions_outlive_the_linker() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (import "host" "double" (func $d (param i32) (result i32)))
            (func (export "run") (param i32) (result i32) (call $d (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let inst = {
        let mut linker = weft::Linker::<()>::new(&engine);
        linker.func_wrap("host", "double", |x: i32| x * 2).unwrap();
        let inst = linker.instantiate(&mut store, &module).unwrap();
        // Redefining after instantiation must not disturb the instance.
        linker.allow_shadowing(true).func_wrap("host", "double", |x: i32| x * 3).unwrap();
        inst
    };
    assert_eq!(call::<i32, i32>(&mut store, inst, "run", 21), 42);
}

#[test]
fn instance_pre_instantiates_in_many_stores() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (import "host" "add" (func $a (param i32 i32) (result i32)))
            (func (export "run") (param i32) (result i32) (call $a (local.get 0) (i32.const 1))))"#,
    )
    .unwrap();
    let mut linker = weft::Linker::<()>::new(&engine);
    linker.func_wrap("host", "add", |a: i32, b: i32| a + b).unwrap();
    let pre = linker.instantiate_pre(&module).unwrap();
    drop(linker);
    for i in 0..10 {
        let mut store = Store::new(&engine, ());
        let inst = pre.instantiate(&mut store).unwrap();
        assert_eq!(call::<i32, i32>(&mut store, inst, "run", i), i + 1);
    }
    let missing = Module::new(&engine, r#"(module (import "host" "nope" (func)))"#).unwrap();
    let err = weft::Linker::<()>::new(&engine).instantiate_pre(&missing).err().unwrap();
    assert!(err.to_string().contains("host::nope"), "{err}");
}

#[test]
fn lazily_initialised_tables_behave_like_eager_ones() {
    let engine = Engine::default();
    let a = Module::new(
        &engine,
        r#"(module
            (type $t (func (result i32)))
            (table (export "tab") 4 funcref)
            (table $other 4 funcref)
            (table $ext (export "ext") 2 externref)
            (elem (i32.const 0) $f1 $f2 $f3)
            (func $f1 (result i32) (i32.const 1))
            (func $f2 (result i32) (i32.const 2))
            (func $f3 (result i32) (i32.const 3))
            (func (export "call") (param i32) (result i32) (call_indirect (type $t) (local.get 0)))
            (func (export "copy_and_call") (param i32) (result i32)
              (table.copy $other 0 (i32.const 0) (i32.const 0) (i32.const 3))
              (call_indirect $other (type $t) (local.get 0)))
            (func (export "ref_f2") (result i32) (call_ref $t (ref.func $f2)))
            (func (export "same") (result i32) (ref.is_null (table.get 0 (i32.const 3)))))"#,
    )
    .unwrap();
    let b = Module::new(
        &engine,
        r#"(module
            (type $t (func (result i32)))
            (import "a" "tab" (table 4 funcref))
            (func (export "call") (param i32) (result i32) (call_indirect (type $t) (local.get 0))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let mut linker = weft::Linker::<()>::new(&engine);
    let ia = linker.instantiate(&mut store, &a).unwrap();
    linker.instance(&mut store, "a", ia).unwrap();
    let ib = linker.instantiate(&mut store, &b).unwrap();
    // Through the importing instance first: materialised with the owner's functions.
    assert_eq!(call::<i32, i32>(&mut store, ib, "call", 2), 3);
    assert_eq!(call::<i32, i32>(&mut store, ia, "call", 0), 1);
    assert_eq!(call::<i32, i32>(&mut store, ia, "copy_and_call", 1), 2);
    assert_eq!(call::<(), i32>(&mut store, ia, "ref_f2", ()), 2);
    assert_eq!(call::<(), i32>(&mut store, ia, "same", ()), 1);
    // The host sees functions, callable, and null where nothing was written.
    let tab = ia.get_table(&mut store, "tab").unwrap();
    let weft::Ref::Func(Some(f)) = tab.get(&mut store, 1).unwrap() else { panic!("expected a function") };
    assert_eq!(f.typed::<(), i32>(&store).unwrap().call(&mut store, ()).unwrap(), 2);
    assert_eq!(tab.get(&mut store, 3), Some(weft::Ref::Func(None)));
    // Externref handles (which may be odd) are never taken for lazy elements.
    let ext = ia.get_table(&mut store, "ext").unwrap();
    let r = weft::ExternRef::new(&mut store, 7u32).unwrap();
    ext.set(&mut store, 0, weft::Ref::Extern(Some(r))).unwrap();
    assert_eq!(ext.get(&mut store, 0), Some(weft::Ref::Extern(Some(r))));
    // Reset brings the lazy elements back and they still resolve.
    ia.reset(&mut store).unwrap();
    assert_eq!(call::<i32, i32>(&mut store, ib, "call", 1), 2);
}

//! Isolation: a guest cannot read or write outside its own memories and
//! tables at any boundary. Each probe is an access just past (or straddling)
//! the end of a memory, through every access width and with offsets that
//! wrap 32-bit addresses, in every memory configuration (guard pages,
//! explicit bounds checks, memory64, pooled slots side by side, a second
//! memory smaller than the first); every one must trap, and the neighbours'
//! sentinel bytes must be intact afterwards.

use weft::{Config, Engine, Instance, InstanceAllocationStrategy, Module, PoolingConfig, Store, Trap};

/// A guest whose memory 0 is 2 pages (grown to 3 at run time) and memory 1
/// one page; every export takes an address and either loads or stores
/// with some width and offset.
const PROBER: &str = r#"(module
  (memory $m0 (export "m0") 2)
  (memory $m1 (export "m1") 1)
  (table $t 3 funcref)
  (func (export "grow") (result i32) (memory.grow $m0 (i32.const 1)))
  (func (export "load8") (param i32) (result i32) (i32.load8_u $m0 (local.get 0)))
  (func (export "load16") (param i32) (result i32) (i32.load16_u $m0 (local.get 0)))
  (func (export "load32") (param i32) (result i32) (i32.load $m0 (local.get 0)))
  (func (export "load64") (param i32) (result i64) (i64.load $m0 (local.get 0)))
  (func (export "load128") (param i32) (result v128) (v128.load $m0 (local.get 0)))
  (func (export "load32_far") (param i32) (result i32) (i32.load $m0 offset=0xfffffff0 (local.get 0)))
  (func (export "store8") (param i32) (i32.store8 $m0 (local.get 0) (i32.const 0x5a)))
  (func (export "store64") (param i32) (i64.store $m0 (local.get 0) (i64.const -1)))
  (func (export "store128") (param i32) (v128.store $m0 (local.get 0) (v128.const i64x2 -1 -1)))
  (func (export "store32_far") (param i32) (i32.store $m0 offset=0xffff0000 (local.get 0) (i32.const -1)))
  (func (export "m1_load32") (param i32) (result i32) (i32.load $m1 (local.get 0)))
  (func (export "m1_store32") (param i32) (i32.store $m1 (local.get 0) (i32.const -1)))
  (func (export "fill") (param i32 i32) (memory.fill $m0 (local.get 0) (i32.const 0x77) (local.get 1)))
  (func (export "copy") (param i32 i32 i32) (memory.copy $m0 $m0 (local.get 0) (local.get 1) (local.get 2)))
  (func (export "table_get") (param i32) (result i32) (ref.is_null (table.get $t (local.get 0))))
  (func (export "table_set") (param i32) (table.set $t (local.get 0) (ref.null func))))"#;

const PROBER64: &str = r#"(module
  (memory (export "m0") i64 1)
  (func (export "load64") (param i64) (result i64) (i64.load (local.get 0)))
  (func (export "load32_far") (param i64) (result i32) (i32.load offset=0xffffffff (local.get 0)))
  (func (export "store64") (param i64) (i64.store (local.get 0) (i64.const -1)))
  (func (export "store8_huge") (param i64) (i64.store8 offset=0x7fffffffffffffff (local.get 0) (i64.const -1))))"#;

const PAGE: i64 = 65536;

fn configs() -> Vec<(&'static str, Config)> {
    let mut bounds = Config::new();
    bounds.memory_guard(false);
    let mut pooled = Config::new();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 8, total_core_instances: 4, ..Default::default() }));
    let mut pooled_bounds = Config::new();
    pooled_bounds.memory_guard(false);
    pooled_bounds.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 8, total_core_instances: 4, ..Default::default() }));
    vec![("guard pages", Config::new()), ("bounds-checked", bounds), ("pooled", pooled), ("pooled, bounds-checked", pooled_bounds)]
}

fn expect_trap(what: &str, r: weft::Result<impl std::fmt::Debug>, kind: Trap) {
    match r {
        Ok(v) => panic!("{what}: expected {kind:?}, got {v:?}"),
        Err(e) => assert_eq!(e.downcast_ref::<Trap>(), Some(&kind), "{what}: {e:?}"),
    }
}

/// Writes a sentinel at both ends of every memory of `inst`.
fn mark(store: &mut Store<()>, inst: &Instance, byte: u8) {
    for name in ["m0", "m1"] {
        let m = inst.get_memory(&mut *store, name).unwrap();
        let len = m.data_size(&*store);
        m.data_mut(&mut *store)[0] = byte;
        m.data_mut(&mut *store)[len - 1] = byte;
    }
}

fn marked(store: &mut Store<()>, inst: &Instance, byte: u8) -> bool {
    ["m0", "m1"].iter().all(|name| {
        let m = inst.get_memory(&mut *store, name).unwrap();
        let d = m.data(&*store);
        d[0] == byte && d[d.len() - 1] == byte && d[1..d.len() - 1].iter().all(|b| *b == 0)
    })
}

#[test]
fn every_boundary_of_every_memory_traps_and_neighbours_stay_intact() {
    for (name, config) in configs() {
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, PROBER).unwrap();
        // Three instances, in neighbouring pool slots when pooled: the
        // middle one probes, the outer ones watch.
        let mut store = Store::new(&engine, ());
        let before = Instance::new(&mut store, &module, &[]).unwrap();
        let prober = Instance::new(&mut store, &module, &[]).unwrap();
        let after = Instance::new(&mut store, &module, &[]).unwrap();
        mark(&mut store, &before, 0xb0);
        mark(&mut store, &after, 0xa0);
        for grown in [false, true] {
            if grown {
                let grow = prober.get_typed_func::<(), i32>(&mut store, "grow").unwrap();
                assert_eq!(grow.call(&mut store, ()).unwrap(), 2);
            }
            let size = if grown { 3 * PAGE } else { 2 * PAGE };
            let addr = |a: i64| a as i32;
            for (export, width) in [("load8", 1), ("load16", 2), ("load32", 4)] {
                let f = prober.get_typed_func::<i32, i32>(&mut store, export).unwrap();
                f.call(&mut store, addr(size - width)).unwrap_or_else(|e| panic!("{name}: {export} at the last slot: {e}"));
                for a in [size - width + 1, size, size + 1, size + PAGE, 4 * PAGE, -1, -(width)] {
                    expect_trap(&format!("{name}: {export}({a}) of {size}"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
                }
            }
            let f = prober.get_typed_func::<i32, i64>(&mut store, "load64").unwrap();
            for a in [size - 7, size - 1, size, -8, -1] {
                expect_trap(&format!("{name}: load64({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
            }
            let f = prober.get_typed_func::<i32, weft::V128>(&mut store, "load128").unwrap();
            for a in [size - 15, size - 1, -16] {
                expect_trap(&format!("{name}: load128({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
            }
            let f = prober.get_typed_func::<i32, i32>(&mut store, "load32_far").unwrap();
            for a in [0, 0x10, 0x20, size - 4] {
                expect_trap(&format!("{name}: load32 offset=0xfffffff0 ({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
            }
            for (export, width) in [("store8", 1), ("store64", 8), ("store128", 16)] {
                let f = prober.get_typed_func::<i32, ()>(&mut store, export).unwrap();
                for a in [size - width + 1, size, size + PAGE, -1] {
                    expect_trap(&format!("{name}: {export}({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
                }
            }
            let f = prober.get_typed_func::<i32, ()>(&mut store, "store32_far").unwrap();
            for a in [0, 0xffff, size] {
                expect_trap(&format!("{name}: store32 offset=0xffff0000 ({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
            }
            // Memory 1 is one page, smaller than memory 0: its own bound holds.
            let f = prober.get_typed_func::<i32, i32>(&mut store, "m1_load32").unwrap();
            f.call(&mut store, addr(PAGE - 4)).unwrap();
            for a in [PAGE - 3, PAGE, 2 * PAGE - 4, -4] {
                expect_trap(&format!("{name}: m1_load32({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
            }
            let f = prober.get_typed_func::<i32, ()>(&mut store, "m1_store32").unwrap();
            for a in [PAGE - 3, PAGE, -4] {
                expect_trap(&format!("{name}: m1_store32({a})"), f.call(&mut store, addr(a)), Trap::MemoryOutOfBounds);
            }
            // Bulk operations check the whole range before touching anything.
            let fill = prober.get_typed_func::<(i32, i32), ()>(&mut store, "fill").unwrap();
            expect_trap(&format!("{name}: fill past the end"), fill.call(&mut store, (addr(size - 10), 11)), Trap::MemoryOutOfBounds);
            expect_trap(&format!("{name}: fill wrapping"), fill.call(&mut store, (-1, 2)), Trap::MemoryOutOfBounds);
            let copy = prober.get_typed_func::<(i32, i32, i32), ()>(&mut store, "copy").unwrap();
            expect_trap(&format!("{name}: copy out"), copy.call(&mut store, (addr(size - 4), 0, 5)), Trap::MemoryOutOfBounds);
            expect_trap(&format!("{name}: copy in"), copy.call(&mut store, (0, addr(size - 4), 5)), Trap::MemoryOutOfBounds);
            // Tables: 3 elements.
            let get = prober.get_typed_func::<i32, i32>(&mut store, "table_get").unwrap();
            assert_eq!(get.call(&mut store, 2).unwrap(), 1);
            for i in [3, 4, -1] {
                expect_trap(&format!("{name}: table.get({i})"), get.call(&mut store, i), Trap::TableOutOfBounds);
            }
            let set = prober.get_typed_func::<i32, ()>(&mut store, "table_set").unwrap();
            expect_trap(&format!("{name}: table.set(3)"), set.call(&mut store, 3), Trap::TableOutOfBounds);
            assert!(marked(&mut store, &before, 0xb0), "{name}: the instance before was written");
            assert!(marked(&mut store, &after, 0xa0), "{name}: the instance after was written");
        }
        // The prober's own memory took no stray write either (nothing
        // out-of-bounds was partially written, and fill/copy wrote nothing).
        let m0 = prober.get_memory(&mut store, "m0").unwrap();
        assert!(m0.data(&store).iter().all(|b| *b == 0), "{name}: a trapping store wrote part of its value");
    }
}

#[test]
fn memory64_bounds_hold_at_every_width_and_offset() {
    for (name, config) in configs().into_iter().take(2) {
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, PROBER64).unwrap();
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let load = inst.get_typed_func::<i64, i64>(&mut store, "load64").unwrap();
        load.call(&mut store, PAGE - 8).unwrap();
        for a in [PAGE - 7, PAGE, 1 << 32, (1 << 32) - 4, i64::MAX, -1, -8] {
            expect_trap(&format!("{name}: load64({a})"), load.call(&mut store, a), Trap::MemoryOutOfBounds);
        }
        let far = inst.get_typed_func::<i64, i32>(&mut store, "load32_far").unwrap();
        for a in [0, 1, PAGE, -1] {
            expect_trap(&format!("{name}: load32 offset=0xffffffff ({a})"), far.call(&mut store, a), Trap::MemoryOutOfBounds);
        }
        let store64 = inst.get_typed_func::<i64, ()>(&mut store, "store64").unwrap();
        for a in [PAGE - 4, 1 << 40, -1] {
            expect_trap(&format!("{name}: store64({a})"), store64.call(&mut store, a), Trap::MemoryOutOfBounds);
        }
        let huge = inst.get_typed_func::<i64, ()>(&mut store, "store8_huge").unwrap();
        for a in [0, 1, i64::MAX] {
            expect_trap(&format!("{name}: store8 offset=i64::MAX ({a})"), huge.call(&mut store, a), Trap::MemoryOutOfBounds);
        }
        let m = inst.get_memory(&mut store, "m0").unwrap();
        assert!(m.data(&store).iter().all(|b| *b == 0), "{name}");
    }
}

#[test]
fn a_reused_pool_slot_shows_nothing_of_its_last_tenant() {
    let config = &configs()[2].1;
    let engine = Engine::new(config).unwrap();
    let module = Module::new(&engine, PROBER).unwrap();
    for round in 0..4 {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        assert!(marked(&mut store, &inst, 0), "round {round}: the slot held a previous tenant's bytes");
        let grow = inst.get_typed_func::<(), i32>(&mut store, "grow").unwrap();
        grow.call(&mut store, ()).unwrap();
        let fill = inst.get_typed_func::<(i32, i32), ()>(&mut store, "fill").unwrap();
        fill.call(&mut store, (0, (3 * PAGE) as i32)).unwrap();
        // The grown page goes with the tenant: the next one starts at 2 pages.
    }
}

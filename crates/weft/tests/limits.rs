//! Resource limits: a store's `ResourceLimiter` refuses memory and table
//! growth (-1 to the guest, or a trap when asked), from Wasm and from the
//! host, 32- and 64-bit, with both allocators; counts of instances, memories
//! and tables; initial sizes at instantiation; a guest at its limit leaves
//! the host and other stores working.

use weft::{
    Config, Engine, Instance, InstanceAllocationStrategy, Memory, MemoryType, PoolingConfig, Ref, ResourceLimiter, Store, StoreLimits, StoreLimitsBuilder,
    Table, TableType, Trap, WasmBacktrace,
};

const GROWER: &str = r#"(module
    (memory (export "mem") 1)
    (table (export "tab") 1 funcref)
    (func (export "grow_memory") (param i32) (result i32) (memory.grow (local.get 0)))
    (func (export "grow_table") (param i32) (result i32) (table.grow (ref.null func) (local.get 0)))
    (func (export "size") (result i32) (memory.size)))"#;

const GROWER64: &str = r#"(module
    (memory (export "mem") i64 1)
    (table (export "tab") i64 1 funcref)
    (func (export "grow_memory") (param i64) (result i64) (memory.grow (local.get 0)))
    (func (export "grow_table") (param i64) (result i64) (table.grow (ref.null func) (local.get 0))))"#;

fn engines() -> Vec<(&'static str, Engine)> {
    let mut pooled = Config::new();
    pooled.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig::default()));
    vec![("on demand", Engine::default()), ("pooled", Engine::new(&pooled).unwrap())]
}

fn limited(engine: &Engine, limits: StoreLimits) -> Store<StoreLimits> {
    let mut store = Store::new(engine, limits);
    store.limiter(|l| l);
    store
}

#[test]
fn growth_past_the_limit_returns_minus_one_from_wasm_and_errs_for_the_host() {
    for (name, engine) in engines() {
        let module = weft::Module::new(&engine, GROWER).unwrap();
        let mut store = limited(&engine, StoreLimitsBuilder::new().memory_size(3 << 16).table_elements(10).build());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let grow = inst.get_typed_func::<i32, i32>(&mut store, "grow_memory").unwrap();
        assert_eq!(grow.call(&mut store, 2).unwrap(), 1, "{name}");
        assert_eq!(grow.call(&mut store, 1).unwrap(), -1, "{name}: past 3 pages");
        assert_eq!(grow.call(&mut store, 0).unwrap(), 3, "{name}");
        let grow_table = inst.get_typed_func::<i32, i32>(&mut store, "grow_table").unwrap();
        assert_eq!(grow_table.call(&mut store, 9).unwrap(), 1, "{name}");
        assert_eq!(grow_table.call(&mut store, 1).unwrap(), -1, "{name}: past 10 elements");
        // The host is held to the same limits.
        let mem = inst.get_memory(&mut store, "mem").unwrap();
        assert!(mem.grow(&mut store, 1).is_err(), "{name}");
        assert_eq!(mem.size(&store), 3);
        let tab = inst.get_table(&mut store, "tab").unwrap();
        assert!(tab.grow(&mut store, 1, Ref::Func(None)).is_err(), "{name}");
        // Host-created memories and tables are checked when made.
        assert!(Memory::new(&mut store, MemoryType::new(4, None)).is_err(), "{name}");
        assert!(Memory::new(&mut store, MemoryType::new(3, None)).is_ok(), "{name}");
        let tt = TableType::new(weft::RefType::FUNCREF, 11, None);
        assert!(Table::new(&mut store, tt, Ref::Func(None)).is_err(), "{name}");
    }
}

#[test]
fn memory64_and_table64_are_limited_too() {
    let engine = Engine::default();
    let module = weft::Module::new(&engine, GROWER64).unwrap();
    let mut store = limited(&engine, StoreLimitsBuilder::new().memory_size(2 << 16).table_elements(4).build());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = inst.get_typed_func::<i64, i64>(&mut store, "grow_memory").unwrap();
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    assert_eq!(grow.call(&mut store, 1).unwrap(), -1);
    // A delta whose byte size overflows is refused, not wrapped.
    assert_eq!(grow.call(&mut store, i64::MAX).unwrap(), -1);
    let grow_table = inst.get_typed_func::<i64, i64>(&mut store, "grow_table").unwrap();
    assert_eq!(grow_table.call(&mut store, 3).unwrap(), 1);
    assert_eq!(grow_table.call(&mut store, 1).unwrap(), -1);
}

#[test]
fn trap_on_grow_failure_traps_with_the_limiters_error_and_a_backtrace() {
    let engine = Engine::default();
    let module = weft::Module::new(&engine, GROWER).unwrap();
    let mut store = limited(&engine, StoreLimitsBuilder::new().memory_size(2 << 16).table_elements(2).trap_on_grow_failure(true).build());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let grow = inst.get_typed_func::<i32, i32>(&mut store, "grow_memory").unwrap();
    assert_eq!(grow.call(&mut store, 1).unwrap(), 1);
    let err = grow.call(&mut store, 1).unwrap_err();
    assert!(format!("{err:#}").contains("forcing trap when growing memory"), "{err:#}");
    assert!(err.downcast_ref::<WasmBacktrace>().is_some_and(|b| !b.frames().is_empty()), "{err:?}");
    assert!(err.downcast_ref::<Trap>().is_none());
    let grow_table = inst.get_typed_func::<i32, i32>(&mut store, "grow_table").unwrap();
    assert!(grow_table.call(&mut store, 5).is_err());
    // The store goes on working after the trap.
    assert_eq!(grow.call(&mut store, 0).unwrap(), 2);
}

#[test]
fn counts_and_initial_sizes_are_checked_at_instantiation() {
    let engine = Engine::default();
    let module = weft::Module::new(&engine, GROWER).unwrap();
    let mut store = limited(&engine, StoreLimitsBuilder::new().instances(2).build());
    Instance::new(&mut store, &module, &[]).unwrap();
    Instance::new(&mut store, &module, &[]).unwrap();
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(err.to_string().contains("instances count too high"), "{err}");

    let mut store = limited(&engine, StoreLimitsBuilder::new().memories(1).build());
    Instance::new(&mut store, &module, &[]).unwrap();
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(err.to_string().contains("memories count too high"), "{err}");

    let mut store = limited(&engine, StoreLimitsBuilder::new().tables(1).build());
    Instance::new(&mut store, &module, &[]).unwrap();
    let err = Instance::new(&mut store, &module, &[]).unwrap_err();
    assert!(err.to_string().contains("tables count too high"), "{err}");

    // A module whose initial memory is larger than the limit.
    let big = weft::Module::new(&engine, "(module (memory 17))").unwrap();
    let mut store = limited(&engine, StoreLimitsBuilder::new().memory_size(16 << 16).build());
    let err = Instance::new(&mut store, &big, &[]).unwrap_err();
    assert!(err.to_string().contains("resource limit exceeded"), "{err}");
    assert_eq!(store.data().clone().instances(), weft::DEFAULT_INSTANCE_LIMIT);
}

/// A limiter that records what it was asked.
#[derive(Default)]
struct Recorder {
    asked: Vec<(usize, usize, Option<usize>)>,
}

impl ResourceLimiter for Recorder {
    fn memory_growing(&mut self, current: usize, desired: usize, maximum: Option<usize>) -> anyhow::Result<bool> {
        self.asked.push((current, desired, maximum));
        Ok(true)
    }
    fn table_growing(&mut self, _: usize, _: usize, _: Option<usize>) -> anyhow::Result<bool> {
        Ok(true)
    }
}

#[test]
fn a_custom_limiter_sees_bytes_and_maximums() {
    let engine = Engine::default();
    let module = weft::Module::new(&engine, "(module (memory 1 5) (func (export \"g\") (result i32) (memory.grow (i32.const 2))))").unwrap();
    let mut store = Store::new(&engine, Recorder::default());
    store.limiter(|r| r);
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    inst.get_typed_func::<(), i32>(&mut store, "g").unwrap().call(&mut store, ()).unwrap();
    let max = Some(5 << 16);
    assert_eq!(store.data().asked, [(0, 1 << 16, max), (1 << 16, 3 << 16, max)]);
}

#[test]
fn a_guest_at_its_limit_leaves_other_stores_working() {
    let engine = Engine::default();
    let module = weft::Module::new(&engine, GROWER).unwrap();
    let mut greedy = limited(&engine, StoreLimitsBuilder::new().memory_size(4 << 16).build());
    let mut other = Store::new(&engine, StoreLimits::default());
    let a = Instance::new(&mut greedy, &module, &[]).unwrap();
    let b = Instance::new(&mut other, &module, &[]).unwrap();
    let grow_a = a.get_typed_func::<i32, i32>(&mut greedy, "grow_memory").unwrap();
    let grow_b = b.get_typed_func::<i32, i32>(&mut other, "grow_memory").unwrap();
    while grow_a.call(&mut greedy, 1).unwrap() != -1 {}
    assert_eq!(a.get_typed_func::<(), i32>(&mut greedy, "size").unwrap().call(&mut greedy, ()).unwrap(), 4);
    // The other store, without a limiter, grows past what the first may.
    assert_eq!(grow_b.call(&mut other, 10).unwrap(), 1);
    assert_eq!(grow_b.call(&mut other, 0).unwrap(), 11);
}

//! 1000 instantiate/drop cycles keep memory use flat. Its own test binary, so
//! that no concurrent test moves the process's resident size.

use weft::{Engine, Instance, Module, Store};

fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[test]
fn thousand_instantiations_keep_memory_flat() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module (memory 4) (table 100 funcref) (global (mut i32) (i32.const 0))
            (data (i32.const 0) "hello")
            (func (export "touch") (i32.store (i32.const 100000) (i32.const 1))))"#,
    )
    .unwrap();
    let cycle = || {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        inst.get_typed_func::<(), ()>(&mut store, "touch").unwrap().call(&mut store, ()).unwrap();
    };
    for _ in 0..100 {
        cycle();
    }
    let before = rss_kib();
    for _ in 0..1000 {
        cycle();
    }
    let after = rss_kib();
    assert!(after < before + 4096, "RSS grew from {before} KiB to {after} KiB");
}

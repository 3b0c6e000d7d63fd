//! Continuations at scale, in a process of their own (resident memory is
//! measured): a million created and run to completion one after another in
//! one store with flat resident memory, and a hundred thousand suspended at
//! the same time, with the resident bytes each costs measured.

use weft::{Engine, Instance, Module, Store};

fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    statm.split_whitespace().nth(1).unwrap().parse::<usize>().unwrap() * 4096
}

const GUEST: &str = r#"(module
    (type $f (func))
    (type $k (cont $f))
    (tag $pause)
    (global $done (mut i32) (i32.const 0))
    (table $parked 0 (ref null $k))
    (func $once (global.set $done (i32.add (global.get $done) (i32.const 1))))
    (func $parks (suspend $pause) (global.set $done (i32.add (global.get $done) (i32.const 1))))
    (elem declare func $once $parks)
    ;; Creates and runs `n` continuations one after another.
    (func (export "run_many") (param $n i32) (result i32)
      (global.set $done (i32.const 0))
      (loop $l
        (resume $k (cont.new $k (ref.func $once)))
        (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
      (global.get $done))
    ;; Starts `n` continuations, each suspended at its first instruction, and keeps them.
    (func (export "park") (param $n i32) (local $c (ref null $k))
      (drop (table.grow $parked (ref.null $k) (local.get $n)))
      (loop $l
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (block $paused (result (ref $k))
          (resume $k (on $pause $paused) (cont.new $k (ref.func $parks)))
          (unreachable))
        (local.set $c)
        (table.set $parked (local.get $n) (local.get $c))
        (br_if $l (local.get $n))))
    ;; Resumes the parked continuations to their end.
    (func (export "unpark") (result i32) (local $i i32)
      (global.set $done (i32.const 0))
      (loop $l
        (resume $k (table.get $parked (local.get $i)))
        (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (table.size $parked))))
      (global.get $done)))"#;

#[test]
fn a_million_in_turn_with_flat_memory_and_a_hundred_thousand_suspended_at_once() {
    let engine = Engine::default();
    let module = Module::new(&engine, GUEST).unwrap();
    let mut store = Store::new(&engine, ());
    let inst = Instance::new(&mut store, &module, &[]).unwrap();
    let run_many = inst.get_typed_func::<i32, i32>(&mut store, "run_many").unwrap();

    // A million, one after another: each gives its stack back as it returns.
    assert_eq!(run_many.call(&mut store, 10_000).unwrap(), 10_000);
    let warm = rss();
    let started = std::time::Instant::now();
    assert_eq!(run_many.call(&mut store, 1_000_000).unwrap(), 1_000_000);
    let elapsed = started.elapsed();
    let grown = rss().saturating_sub(warm);
    println!("1,000,000 continuations in {elapsed:?} ({:.0} ns each); resident memory grew {} KiB", elapsed.as_nanos() as f64 / 1e6, grown / 1024);
    assert!(grown < 4 << 20, "resident memory grew {grown} bytes");
    assert_eq!(store.live_continuations(), 0);

    // A hundred thousand suspended at once.
    const PARKED: usize = 100_000;
    let park = inst.get_typed_func::<i32, ()>(&mut store, "park").unwrap();
    let before = rss();
    park.call(&mut store, PARKED as i32).unwrap();
    let per = rss().saturating_sub(before) / PARKED;
    println!("{PARKED} suspended continuations: {per} resident bytes each");
    assert_eq!(store.live_continuations(), PARKED);
    assert!(per <= 16 * 1024, "{per} resident bytes per suspended continuation");
    let unpark = inst.get_typed_func::<(), i32>(&mut store, "unpark").unwrap();
    assert_eq!(unpark.call(&mut store, ()).unwrap(), PARKED as i32);
    assert_eq!(store.live_continuations(), 0);
}

//! Stack switching: continuations in Wasm and from the host, and everything
//! else working inside them (traps and their backtraces, stack overflow,
//! host calls, interruption and yields, exceptions, limits, pooled instances).

use std::time::Duration;

use weft::{
    CallState, Config, Continuation, Engine, Instance, InstanceAllocationStrategy, InterruptAction, Interruption, Linker, Module, PoolingConfig, Resumed,
    Store, Trap, UpdateDeadline, Val, WasmBacktrace,
};

mod common;
use common::{Repeater, Watchdog};

fn engine_with(f: impl FnOnce(&mut Config)) -> Engine {
    let mut config = Config::new();
    f(&mut config);
    Engine::new(&config).unwrap()
}

fn instance(engine: &Engine, wat: &str) -> (Store<()>, Instance) {
    let module = Module::new(engine, wat).unwrap();
    let mut store = Store::new(engine, ());
    let instance = Instance::new(&mut store, &module, &[]).unwrap();
    (store, instance)
}

fn trap_of(err: &anyhow::Error) -> Option<Trap> {
    err.downcast_ref::<Trap>().copied()
}

/// A generator (`gen` suspends with 0..n) and consumers.
const GENERATOR: &str = r#"(module
    (type $f (func))
    (type $k (cont $f))
    (tag $yield (export "yield") (param i32))
    (global $k (mut (ref null $k)) (ref.null $k))
    (func $gen (export "gen") (local $i i32)
      (loop $l
        (suspend $yield (local.get $i))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (i32.const 5)))))
    (elem declare func $gen)
    ;; Sums what the generator yields.
    (func (export "sum") (result i32) (local $k (ref null $k)) (local $sum i32)
      (local.set $k (cont.new $k (ref.func $gen)))
      (loop $next
        (block $done
          (block $yielded (result i32 (ref $k))
            (resume $k (on $yield $yielded) (local.get $k))
            (br $done))
          (local.set $k)
          (local.set $sum (i32.add (local.get $sum)))
          (br $next)))
      (local.get $sum))
    ;; Keeps the first suspension's continuation, resumes it twice.
    (func (export "twice")
      (block $yielded (result i32 (ref $k))
        (resume $k (on $yield $yielded) (cont.new $k (ref.func $gen)))
        (return))
      (global.set $k)
      (drop)
      (block $yielded (result i32 (ref $k))
        (resume $k (on $yield $yielded) (global.get $k))
        (return))
      (drop (drop))
      (block $yielded (result i32 (ref $k))
        (resume $k (on $yield $yielded) (global.get $k))
        (return))
      (drop (drop))))"#;

#[test]
fn a_generator_runs_to_completion_and_a_consumed_continuation_traps() {
    let (mut store, inst) = instance(&Engine::default(), GENERATOR);
    let sum = inst.get_typed_func::<(), i32>(&mut store, "sum").unwrap();
    assert_eq!(sum.call(&mut store, ()).unwrap(), 10);
    assert_eq!(store.live_continuations(), 0, "a continuation that returned is freed at once");
    let twice = inst.get_typed_func::<(), ()>(&mut store, "twice").unwrap();
    let err = twice.call(&mut store, ()).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::ContinuationAlreadyConsumed));
    // The store goes on.
    assert_eq!(sum.call(&mut store, ()).unwrap(), 10);
}

#[test]
fn a_continuation_resumed_past_its_revisions_moves_on_and_stale_references_trap() {
    // A reference holds 16 bits of revision; a continuation resumed more
    // often than that moves to a fresh object (the builtin's path: the
    // inline path refuses a revision that could wrap). Every value must
    // arrive, and references kept from before and after a move must trap.
    let wat = r#"(module
        (type $f (func))
        (type $k (cont $f))
        (tag $yield (param i32))
        (global $first (mut (ref null $k)) (ref.null $k))
        (global $late (mut (ref null $k)) (ref.null $k))
        (func $naturals (local $i i32)
          (loop $l
            (suspend $yield (local.get $i))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $l)))
        (elem declare func $naturals)
        ;; Checks the generator's first n values; keeps the reference it
        ;; handed out first and the one of round `late`.
        (func (export "count") (param $n i32) (param $late i32) (result i32)
          (local $k (ref null $k)) (local $round i32)
          (local.set $k (cont.new $k (ref.func $naturals)))
          (loop $next
            (block $yielded (result i32 (ref $k))
              (resume $k (on $yield $yielded) (local.get $k))
              (unreachable))
            (local.set $k)
            (if (i32.ne (local.get $round)) (then (return (i32.const -1))))
            (if (i32.eqz (local.get $round)) (then (global.set $first (local.get $k))))
            (if (i32.eq (local.get $round) (local.get $late)) (then (global.set $late (local.get $k))))
            (br_if $next (i32.ne (local.tee $round (i32.add (local.get $round) (i32.const 1))) (local.get $n))))
          (local.get $round))
        (func (export "resume_first")
          (block $yielded (result i32 (ref $k))
            (resume $k (on $yield $yielded) (global.get $first))
            (return))
          (unreachable))
        (func (export "resume_late")
          (block $yielded (result i32 (ref $k))
            (resume $k (on $yield $yielded) (global.get $late))
            (return))
          (unreachable)))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let count = inst.get_typed_func::<(i32, i32), i32>(&mut store, "count").unwrap();
    let rounds = 3 * 65_536 + 17;
    // Kept 65,536 resumes before the last: had the revision wrapped in
    // place, this stale reference would equal the current one.
    let late = rounds - 1 - 65_536;
    assert_eq!(count.call(&mut store, (rounds, late)).unwrap(), rounds, "every value arrived in order");
    for name in ["resume_first", "resume_late"] {
        let stale = inst.get_typed_func::<(), ()>(&mut store, name).unwrap();
        assert_eq!(trap_of(&stale.call(&mut store, ()).unwrap_err()), Some(Trap::ContinuationAlreadyConsumed), "{name}");
    }
    // The last reference still works, and the store goes on.
    assert_eq!(count.call(&mut store, (1000, 0)).unwrap(), 1000);
}

#[test]
fn the_host_resumes_a_continuation_and_receives_its_suspensions() {
    let engine = Engine::default();
    let (mut store, inst) = instance(&engine, GENERATOR);
    let gen = inst.get_func(&mut store, "gen").unwrap();
    let tag = inst.get_export(&mut store, "yield").and_then(|e| e.into_tag()).unwrap();
    let mut k = Continuation::new(&mut store, &gen).unwrap();
    let first = k;
    let mut seen = Vec::new();
    loop {
        match k.resume(&mut store, &[]).unwrap() {
            Resumed::Suspended { tag: t, payload, continuation } => {
                assert_eq!(t, tag);
                seen.push(payload[0].unwrap_i32());
                assert!(k.is_consumed(&store));
                k = continuation;
            }
            Resumed::Returned(results) => {
                assert!(results.is_empty());
                break;
            }
        }
    }
    assert_eq!(seen, [0, 1, 2, 3, 4]);
    let err = first.resume(&mut store, &[]).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::ContinuationAlreadyConsumed));
    assert_eq!(store.live_continuations(), 0);
    // Arguments are checked against the continuation's type.
    let k = Continuation::new(&mut store, &gen).unwrap();
    assert!(k.resume(&mut store, &[Val::I32(1)]).is_err());
    assert!(!k.is_consumed(&store), "a refused resume does not consume");
    k.discard(&mut store);
    assert_eq!(store.live_continuations(), 0);
}

#[test]
fn values_travel_both_ways_between_the_host_and_a_continuation() {
    // An accumulator: each resume passes a number in, each suspension the total out.
    let wat = r#"(module
        (tag $total (export "total") (param i64) (result i64))
        (func (export "acc") (param $x i64) (result i64) (local $sum i64)
          (loop $l
            (local.set $sum (i64.add (local.get $sum) (local.get $x)))
            (local.set $x (suspend $total (local.get $sum)))
            (br_if $l (i64.ne (local.get $x) (i64.const 0))))
          (local.get $sum)))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let acc = inst.get_func(&mut store, "acc").unwrap();
    let mut k = Continuation::new(&mut store, &acc).unwrap();
    let mut arg = 1i64;
    let mut totals = Vec::new();
    let result = loop {
        match k.resume(&mut store, &[Val::I64(arg)]).unwrap() {
            Resumed::Suspended { payload, continuation, .. } => {
                totals.push(payload[0].unwrap_i64());
                k = continuation;
                arg = if arg < 4 { arg + 1 } else { 0 };
            }
            Resumed::Returned(results) => break results[0].unwrap_i64(),
        }
    };
    assert_eq!(totals, [1, 3, 6, 10]);
    assert_eq!(result, 10);
}

#[test]
fn continuations_pass_between_wasm_and_the_host_as_values() {
    let wat = r#"(module
        (type $f (func (result i32)))
        (type $k (cont $f))
        (tag $t (export "t"))
        (func $body (result i32) (suspend $t) (i32.const 42))
        (elem declare func $body)
        (func (export "make") (result (ref $k)) (cont.new $k (ref.func $body)))
        (func (export "finish") (param (ref $k)) (result i32)
          (block $s (result (ref $k))
            (return (resume $k (on $t $s) (local.get 0))))
          (resume $k)))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let make = inst.get_func(&mut store, "make").unwrap();
    let finish = inst.get_func(&mut store, "finish").unwrap();
    let mut out = [Val::I32(0)];
    make.call(&mut store, &[], &mut out).unwrap();
    let Val::ContRef(Some(k)) = out[0] else { panic!("expected a continuation, got {:?}", out[0]) };
    let mut r = [Val::I32(0)];
    finish.call(&mut store, &[Val::ContRef(Some(k))], &mut r).unwrap();
    assert_eq!(r[0].unwrap_i32(), 42);
    // It was consumed in Wasm.
    assert!(k.is_consumed(&store));
    let err = finish.call(&mut store, &[Val::ContRef(Some(k))], &mut r).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::ContinuationAlreadyConsumed));
    // A continuation of another type is refused before Wasm sees it.
    let gen_module = Module::new(store.engine(), GENERATOR).unwrap();
    let gen_inst = Instance::new(&mut store, &gen_module, &[]).unwrap();
    let gen = gen_inst.get_func(&mut store, "gen").unwrap();
    let other = Continuation::new(&mut store, &gen).unwrap();
    assert!(finish.call(&mut store, &[Val::ContRef(Some(other))], &mut r).is_err());
}

#[test]
#[should_panic(expected = "wrong store")]
fn a_continuation_of_another_store_panics() {
    let engine = Engine::default();
    let (mut store, inst) = instance(&engine, GENERATOR);
    let gen = inst.get_func(&mut store, "gen").unwrap();
    let k = Continuation::new(&mut store, &gen).unwrap();
    let (mut other, _) = instance(&engine, GENERATOR);
    let _ = k.resume(&mut other, &[]);
}

#[test]
fn stack_overflow_inside_a_continuation_traps_and_the_store_goes_on() {
    let wat = r#"(module
        (type $f (func))
        (type $k (cont $f))
        (func $down (param i64) (call $down (i64.add (local.get 0) (i64.const 1))))
        (func $body (call $down (i64.const 0)))
        (elem declare func $body)
        (func (export "run") (resume $k (cont.new $k (ref.func $body))))
        (func (export "ok") (result i32) (i32.const 7)))"#;
    for config in [
        |_: &mut Config| {},
        |c: &mut Config| {
            c.stack_switching_stack_size(64 * 1024);
        },
    ] {
        let (mut store, inst) = instance(&engine_with(config), wat);
        let run = inst.get_typed_func::<(), ()>(&mut store, "run").unwrap();
        for _ in 0..3 {
            let err = run.call(&mut store, ()).unwrap_err();
            assert_eq!(trap_of(&err), Some(Trap::StackOverflow));
            assert_eq!(store.live_continuations(), 0, "a trap frees the continuations it abandons");
        }
        let ok = inst.get_typed_func::<(), i32>(&mut store, "ok").unwrap();
        assert_eq!(ok.call(&mut store, ()).unwrap(), 7);
    }
}

#[test]
fn a_host_function_called_from_a_continuation_has_the_hosts_stack() {
    // The continuation's stack is 64 KiB; the host function uses 1 MiB.
    let engine = engine_with(|c| {
        c.stack_switching_stack_size(64 * 1024);
    });
    let module = Module::new(
        &engine,
        r#"(module
        (type $f (func (result i64)))
        (type $k (cont $f))
        (import "host" "deep" (func $deep (param i64) (result i64)))
        (func $body (result i64) (call $deep (i64.const 3)))
        (elem declare func $body)
        (func (export "run") (result i64) (resume $k (cont.new $k (ref.func $body)))))"#,
    )
    .unwrap();
    let thread = std::thread::Builder::new().stack_size(16 << 20).spawn(move || {
        let mut linker = Linker::new(&engine);
        linker
            .func_wrap("host", "deep", |x: i64| -> i64 {
                let mut buf = [0u8; 1 << 20];
                buf[x as usize] = x as u8;
                std::hint::black_box(&mut buf);
                buf.iter().map(|b| *b as i64).sum::<i64>() + 1
            })
            .unwrap();
        let mut store = Store::new(&engine, ());
        let inst = linker.instantiate(&mut store, &module).unwrap();
        let run = inst.get_typed_func::<(), i64>(&mut store, "run").unwrap();
        run.call(&mut store, ()).unwrap()
    });
    assert_eq!(thread.unwrap().join().unwrap(), 4);
}

#[test]
fn a_trap_deep_in_a_chain_of_three_continuations_has_the_whole_backtrace() {
    let wat = r#"(module $chain
        (type $f (func))
        (type $k (cont $f))
        (func $boom (unreachable))
        (func $third (call $boom))
        (func $second (resume $k (cont.new $k (ref.func $third))))
        (func $first (resume $k (cont.new $k (ref.func $second))))
        (elem declare func $first $second $third)
        (func $run (export "run") (resume $k (cont.new $k (ref.func $first)))))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let run = inst.get_typed_func::<(), ()>(&mut store, "run").unwrap();
    let err = run.call(&mut store, ()).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::UnreachableCodeReached));
    let bt = err.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    let names: Vec<&str> = bt.frames().iter().filter_map(|f| f.func_name()).collect();
    assert_eq!(names, ["boom", "third", "second", "first", "run"]);
    assert_eq!(store.live_continuations(), 0);
}

#[test]
fn switches_pass_values_trap_with_the_backtrace_and_refuse_a_consumed_target() {
    // Two sides take turns through `switch` (the first to a fresh
    // continuation, the rest inline), each recording its turn in $trace,
    // until $n runs out; then, by $mode, they finish, trap, or switch to a
    // reference an earlier switch consumed.
    let wat = r#"(module
        (rec (type $fp (func (param (ref null $kp)))) (type $kp (cont $fp)))
        (tag $sw)
        (global $n (mut i32) (i32.const 0))
        (global $mode (mut i32) (i32.const 0))
        (global $trace (mut i32) (i32.const 0))
        (global $stale (mut (ref null $kp)) (ref.null $kp))
        (func $boom (unreachable))
        (func $side (param $id i32) (param $other (ref null $kp))
          (loop $l
            (if (i32.eqz (global.get $n)) (then
              (if (i32.eq (global.get $mode) (i32.const 1)) (then (call $boom)))
              (if (i32.eq (global.get $mode) (i32.const 2)) (then
                (drop (switch $kp $sw (global.get $stale)))))
              (if (ref.is_null (local.get $other)) (then (return)))
              (resume $kp (ref.null $kp) (local.get $other))
              (return)))
            (global.set $n (i32.sub (global.get $n) (i32.const 1)))
            (global.set $trace (i32.add (i32.mul (global.get $trace) (i32.const 3)) (local.get $id)))
            (global.set $stale (local.get $other))
            (local.set $other (switch $kp $sw (local.get $other)))
            (br $l)))
        (func $left (type $fp) (call $side (i32.const 1) (local.get 0)))
        (func $right (type $fp) (call $side (i32.const 2) (local.get 0)))
        (elem declare func $left $right)
        (func $run (export "run") (param $n i32) (param $mode i32) (result i32)
          (global.set $n (local.get $n))
          (global.set $mode (local.get $mode))
          (global.set $trace (i32.const 0))
          (resume $kp (on $sw switch) (cont.new $kp (ref.func $right)) (cont.new $kp (ref.func $left)))
          (global.get $trace)))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let run = inst.get_typed_func::<(i32, i32), i32>(&mut store, "run").unwrap();
    // 200,000 switches run each side through its 16 bits of revisions three times.
    for n in [0, 1, 2, 3, 1000, 200_000] {
        let expected = (0..n).fold(0i32, |t, turn| t.wrapping_mul(3).wrapping_add(1 + turn % 2));
        assert_eq!(run.call(&mut store, (n, 0)).unwrap(), expected, "{n} switches");
        assert_eq!(store.live_continuations(), 0);
    }
    let err = run.call(&mut store, (1001, 1)).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::UnreachableCodeReached));
    let bt = err.downcast_ref::<WasmBacktrace>().expect("a backtrace");
    let names: Vec<&str> = bt.frames().iter().filter_map(|f| f.func_name()).collect();
    // After an odd number of turns, the right side has the last word.
    assert_eq!(names, ["boom", "side", "right", "run"]);
    // The trap freed the running side; the waiting one, whose only
    // reference the trap dropped, stays until the store drops (there is no
    // collector for continuations).
    assert_eq!(store.live_continuations(), 1);
    let err = run.call(&mut store, (1000, 2)).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::ContinuationAlreadyConsumed));
    assert_eq!(store.live_continuations(), 2);
    assert_eq!(run.call(&mut store, (10, 0)).unwrap(), (0..10).fold(0i32, |t, turn| t * 3 + 1 + turn % 2));
    assert_eq!(store.live_continuations(), 2);
}

#[test]
fn a_handler_receives_the_continuation_that_suspended() {
    // The resumer's handler guesses that the continuation it resumed is the
    // one suspending (see `translate::continuations`). Here $first suspends
    // itself (the guess holds), then switches to $second, which suspends in
    // its place (the guess fails): each reference the handler receives must
    // resume the side that suspended, which reports itself.
    let wat = r#"(module
        (type $f (func (result i32)))
        (type $k (cont $f))
        (rec (type $fp (func (param (ref null $kp)) (result i32))) (type $kp (cont $fp)))
        (tag $who (param i32))
        (tag $sw (result i32))
        (func $second (type $fp) (suspend $who (i32.const 2)) (i32.const 20))
        (func $first (result i32)
          (suspend $who (i32.const 1))
          (drop (switch $kp $sw (cont.new $kp (ref.func $second))))
          (i32.const 10))
        (elem declare func $first $second)
        (func (export "run") (result i32) (local $k (ref null $k)) (local $trace i32)
          (local.set $k (cont.new $k (ref.func $first)))
          (block $done (result i32)
            (loop $l
              (block $s (result i32 (ref $k))
                (br $done (resume $k (on $who $s) (on $sw switch) (local.get $k))))
              (local.set $k)
              (local.set $trace (i32.add (i32.mul (local.get $trace) (i32.const 10))))
              (br $l))
            (unreachable))
          (i32.add (i32.mul (local.get $trace) (i32.const 100)))))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let run = inst.get_typed_func::<(), i32>(&mut store, "run").unwrap();
    // Suspensions from 1 then 2; resuming the second one finishes $second.
    assert_eq!(run.call(&mut store, ()).unwrap(), 12 * 100 + 20);
    // $first waits, switched away from, until the store drops.
    assert_eq!(store.live_continuations(), 1);
}

#[test]
fn exceptions_leave_continuations_for_their_resumers() {
    let wat = r#"(module
        (type $f (func))
        (type $k (cont $f))
        (tag $e (export "e") (param i32))
        (tag $s)
        (func $thrower (throw $e (i32.const 5)))
        (func $catcher (result i32)
          (block $c (result i32)
            (try_table (catch $e $c) (suspend $s))
            (i32.const 0))
          )
        (func $catcher_void (drop (call $catcher)))
        (elem declare func $thrower $catcher_void)
        ;; Thrown in a continuation, caught around the resume.
        (func (export "caught_outside") (result i32)
          (block $c (result i32)
            (try_table (catch $e $c) (resume $k (cont.new $k (ref.func $thrower))))
            (i32.const -1)))
        ;; Not caught at all: the host sees it.
        (func (export "uncaught") (resume $k (cont.new $k (ref.func $thrower))))
        ;; Thrown into a suspended continuation, which catches it.
        (func (export "thrown_in") (result i32) (local $r (ref null $k))
          (block $s (result (ref $k))
            (resume $k (on $s $s) (cont.new $k (ref.func $catcher_void)))
            (return (i32.const -1)))
          (local.set $r)
          (resume_throw $k $e (i32.const 9) (local.get $r))
          (i32.const 1)))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let caught = inst.get_typed_func::<(), i32>(&mut store, "caught_outside").unwrap();
    assert_eq!(caught.call(&mut store, ()).unwrap(), 5);
    let uncaught = inst.get_typed_func::<(), ()>(&mut store, "uncaught").unwrap();
    let err = uncaught.call(&mut store, ()).unwrap_err();
    assert!(err.is::<weft::ThrownException>(), "{err:#}");
    let exn = store.take_pending_exception().unwrap();
    assert_eq!(exn.field(&store, 0).unwrap().unwrap_i32(), 5);
    let thrown_in = inst.get_typed_func::<(), i32>(&mut store, "thrown_in").unwrap();
    assert_eq!(thrown_in.call(&mut store, ()).unwrap(), 1);
    assert_eq!(store.live_continuations(), 0);
}

#[test]
fn the_continuation_limit_traps_and_the_store_goes_on() {
    let engine = engine_with(|c| {
        c.max_continuations(10);
    });
    let wat = r#"(module
        (type $f (func))
        (type $k (cont $f))
        (table $t 100 (ref null $k))
        (func $body)
        (elem declare func $body)
        (func (export "make") (param $n i32)
          (loop $l
            (table.set $t (local.get $n) (cont.new $k (ref.func $body)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
        (func (export "drain") (param $n i32)
          (loop $l
            (resume $k (table.get $t (local.get $n)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))))"#;
    let (mut store, inst) = instance(&engine, wat);
    let make = inst.get_typed_func::<i32, ()>(&mut store, "make").unwrap();
    let drain = inst.get_typed_func::<i32, ()>(&mut store, "drain").unwrap();
    let err = make.call(&mut store, 20).unwrap_err();
    assert_eq!(trap_of(&err), Some(Trap::ContinuationsExhausted));
    assert_eq!(store.live_continuations(), 10);
    drain.call(&mut store, 20).unwrap_err(); // table slots 0..=10 hold nulls
                                             // Slots 11..=20 held the ten; they ran and were freed.
    assert_eq!(store.live_continuations(), 0);
    make.call(&mut store, 9).unwrap();
    assert_eq!(store.live_continuations(), 9);
}

/// A continuation that loops `n` times, suspending every `every` iterations.
const SPINNER: &str = r#"(module
    (type $f (func (param i64) (result i64)))
    (type $k (cont $f))
    (type $g (func (result i64)))
    (type $k2 (cont $g))
    (tag $tick)
    (func $spin (param $n i64) (result i64) (local $acc i64)
      (loop $l
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31)) (local.get $n)))
        (if (i64.eqz (i64.rem_u (local.get $n) (i64.const 100000))) (then (suspend $tick)))
        (br_if $l (i64.ne (local.tee $n (i64.sub (local.get $n) (i64.const 1))) (i64.const 0))))
      (local.get $acc))
    (elem declare func $spin)
    (func $run (export "run") (param $n i64) (result i64) (local $c (ref null $k2))
      (local.set $c (cont.bind $k $k2 (local.get $n) (cont.new $k (ref.func $spin))))
      (loop $l
        (block $t (result (ref $k2))
          (return (resume $k2 (on $tick $t) (local.get $c))))
        (local.set $c)
        (br $l))
      (unreachable))
    (func (export "plain") (param $n i64) (result i64) (local $acc i64)
      (loop $l
        (local.set $acc (i64.add (i64.mul (local.get $acc) (i64.const 31)) (local.get $n)))
        (br_if $l (i64.ne (local.tee $n (i64.sub (local.get $n) (i64.const 1))) (i64.const 0))))
      (local.get $acc)))"#;

#[test]
fn interruptions_inside_a_continuation_trap_or_yield_and_resume() {
    let _watchdog = Watchdog::arm(Duration::from_secs(120));
    for mode in [Interruption::Epoch, Interruption::MmuPage, Interruption::MmuPointer] {
        let engine = engine_with(|c| {
            c.interruption(mode);
        });
        let (mut store, inst) = instance(&engine, SPINNER);
        let handle = store.interrupt_handle().ok();
        // Interrupts every 10 ms from another thread, while the guest spends
        // nearly all its time in the continuation.
        let interrupt = {
            let engine = engine.clone();
            let handle = handle.clone();
            // Not at once: the guest first gets into the continuation,
            // where it then spends all but a sliver of its time.
            let mut ticks = 0u32;
            move || {
                ticks += 1;
                if ticks > 1 {
                    match &handle {
                        Some(h) => h.interrupt(),
                        None => engine.increment_epoch(),
                    }
                }
            }
        };
        let run = inst.get_typed_func::<i64, i64>(&mut store, "run").unwrap();
        const N: i64 = 100_000_000;
        let plain = inst.get_typed_func::<i64, i64>(&mut store, "plain").unwrap();
        let expected = plain.call(&mut store, N).unwrap();

        // Trap: the interrupt lands inside the continuation.
        if mode == Interruption::Epoch {
            store.set_epoch_deadline(1);
        } else {
            store.interrupt_callback(|_| Ok(InterruptAction::Trap));
        }
        let repeater = Repeater::start(Duration::from_millis(10), interrupt.clone());
        let err = run.call(&mut store, i64::MAX).unwrap_err();
        repeater.stop();
        assert_eq!(trap_of(&err), Some(Trap::Interrupt), "{mode:?}");
        let bt = err.downcast_ref::<WasmBacktrace>().expect("a backtrace");
        let names: Vec<&str> = bt.frames().iter().filter_map(|f| f.func_name()).collect();
        assert_eq!(names, ["spin", "run"], "{mode:?}");
        assert_eq!(store.live_continuations(), 0, "{mode:?}");

        // Yield: the call is suspended with the continuation inside it, then
        // resumed to the end.
        let yields = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let y = yields.clone();
        let more = move || y.fetch_add(1, std::sync::atomic::Ordering::SeqCst) < 3;
        if mode == Interruption::Epoch {
            store.set_epoch_deadline(1);
            store.epoch_deadline_callback(move |_| Ok(if more() { UpdateDeadline::Yield(1) } else { UpdateDeadline::Continue(1) }));
        } else {
            store.interrupt_callback(move |_| Ok(if more() { InterruptAction::Yield } else { InterruptAction::Continue }));
        }
        let repeater = Repeater::start(Duration::from_millis(10), interrupt);
        let mut state = run.call_resumable(&mut store, N).unwrap();
        let mut suspensions = 0;
        let result = loop {
            match state {
                CallState::Done(v) => break v,
                CallState::Suspended(s) => {
                    suspensions += 1;
                    // Resumed on another thread.
                    state = std::thread::scope(|scope| scope.spawn(|| s.resume(&mut store).unwrap()).join().unwrap());
                }
            }
        };
        repeater.stop();
        assert_eq!(result, expected, "{mode:?}");
        assert_eq!(suspensions, 3, "{mode:?}");
        assert_eq!(store.live_continuations(), 0);
    }
}

#[test]
fn dropping_a_call_suspended_inside_a_continuation_frees_it() {
    let _watchdog = Watchdog::arm(Duration::from_secs(60));
    let engine = engine_with(|c| {
        c.interruption(Interruption::MmuPage);
    });
    let (mut store, inst) = instance(&engine, SPINNER);
    let run = inst.get_typed_func::<i64, i64>(&mut store, "run").unwrap();
    let handle = store.interrupt_handle().unwrap();
    store.interrupt_callback(|_| Ok(InterruptAction::Yield));
    let repeater = Repeater::start(Duration::from_millis(10), move || handle.interrupt());
    let CallState::Suspended(mut s) = run.call_resumable(&mut store, i64::MAX).unwrap() else { panic!("expected a suspension") };
    // An interrupt may land before the continuation exists: go on until one
    // lands inside it.
    while store.live_continuations() == 0 {
        let CallState::Suspended(next) = s.resume(&mut store).unwrap() else { panic!("expected a suspension") };
        s = next;
    }
    repeater.stop();
    assert_eq!(store.live_continuations(), 1);
    drop(s);
    // The next call cleans up: the continuation that ran in the dropped call is freed.
    store.interrupt_callback(|_| Ok(InterruptAction::Continue));
    let plain = inst.get_typed_func::<i64, i64>(&mut store, "plain").unwrap();
    let expected = plain.call(&mut store, 1000).unwrap();
    assert_eq!(store.live_continuations(), 0);
    assert_eq!(run.call(&mut store, 1000).unwrap(), expected);
    assert_eq!(store.live_continuations(), 0);
}

#[test]
fn pooled_instances_with_continuations_reset_and_run_again() {
    let engine = engine_with(|c| {
        c.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig::default()));
    });
    let module = Module::new(&engine, GENERATOR).unwrap();
    for _ in 0..3 {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        let sum = inst.get_typed_func::<(), i32>(&mut store, "sum").unwrap();
        assert_eq!(sum.call(&mut store, ()).unwrap(), 10);
        inst.reset(&mut store).unwrap();
        assert_eq!(sum.call(&mut store, ()).unwrap(), 10);
    }
}

#[test]
fn an_exception_held_by_a_suspended_continuation_survives_collection() {
    let wat = r#"(module
        (type $f (func (result i32)))
        (type $k (cont $f))
        (tag $e (param i32))
        (tag $s)
        (global $k (mut (ref null $k)) (ref.null $k))
        ;; Catches an exception as a value, suspends holding it only in a local, then reads it.
        (func $holder (result i32) (local $x exnref)
          (local.set $x (block $c (result exnref)
            (try_table (catch_all_ref $c) (throw $e (i32.const 77)))
            (unreachable)))
          (suspend $s)
          (block $c2 (result i32)
            (try_table (catch $e $c2) (throw_ref (local.get $x)))
            (unreachable)))
        (elem declare func $holder)
        (func (export "start")
          (block $h (result (ref $k))
            (drop (resume $k (on $s $h) (cont.new $k (ref.func $holder))))
            (return))
          (global.set $k))
        (func (export "finish") (result i32) (resume $k (global.get $k))))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    inst.get_typed_func::<(), ()>(&mut store, "start").unwrap().call(&mut store, ()).unwrap();
    store.gc(None);
    assert_eq!(store.live_exceptions(), 1, "the suspended stack keeps its exception");
    let finish = inst.get_typed_func::<(), i32>(&mut store, "finish").unwrap();
    assert_eq!(finish.call(&mut store, ()).unwrap(), 77);
}

#[test]
fn an_exception_held_by_the_outer_member_of_a_suspended_chain_survives_collection() {
    // $outer holds an exception in a local and resumes $inner, which
    // suspends to the host's resume through $outer's: the two are suspended
    // together, $outer waiting in its resume of $inner.
    let wat = r#"(module
        (type $f (func (result i32)))
        (type $k (cont $f))
        (type $g (func))
        (type $kg (cont $g))
        (tag $e (param i32))
        (tag $s)
        (tag $unused)
        (global $k (mut (ref null $k)) (ref.null $k))
        (func $inner (suspend $s))
        (func $outer (result i32) (local $x exnref)
          (local.set $x (block $c (result exnref)
            (try_table (catch_all_ref $c) (throw $e (i32.const 77)))
            (unreachable)))
          (block $u (result (ref $kg))
            (resume $kg (on $unused $u) (cont.new $kg (ref.func $inner)))
            (block $c2 (result i32)
              (try_table (catch $e $c2) (throw_ref (local.get $x)))
              (unreachable))
            (return))
          (unreachable))
        (elem declare func $inner $outer)
        (func (export "start")
          (block $h (result (ref $k))
            (drop (resume $k (on $s $h) (cont.new $k (ref.func $outer))))
            (return))
          (global.set $k))
        (func (export "finish") (result i32) (resume $k (global.get $k))))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    inst.get_typed_func::<(), ()>(&mut store, "start").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(store.live_continuations(), 2);
    store.gc(None);
    assert_eq!(store.live_exceptions(), 1, "the outer member's stack keeps its exception");
    let finish = inst.get_typed_func::<(), i32>(&mut store, "finish").unwrap();
    assert_eq!(finish.call(&mut store, ()).unwrap(), 77);
    assert_eq!(store.live_continuations(), 0);
}

#[test]
fn exceptions_made_inside_a_running_continuation_are_collected_and_held_ones_survive() {
    // The resumer holds an exception in a local (parked on the host's stack)
    // while a continuation makes and drops 200,000 exposed exceptions; the
    // collections that run inside the continuation scan the running chain.
    let wat = r#"(module
        (type $f (func (param i32)))
        (type $k (cont $f))
        (tag $e (param i32))
        (func $churn (param $n i32)
          (loop $l
            (drop (block $c (result exnref)
              (try_table (catch_all_ref $c) (throw $e (local.get $n)))
              (unreachable)))
            (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
        (elem declare func $churn)
        (func (export "run") (param $n i32) (result i32) (local $held exnref)
          (local.set $held (block $c (result exnref)
            (try_table (catch_all_ref $c) (throw $e (i32.const 4242)))
            (unreachable)))
          (resume $k (local.get $n) (cont.new $k (ref.func $churn)))
          (block $c2 (result i32)
            (try_table (catch $e $c2) (throw_ref (local.get $held)))
            (unreachable))))"#;
    let (mut store, inst) = instance(&Engine::default(), wat);
    let run = inst.get_typed_func::<i32, i32>(&mut store, "run").unwrap();
    assert_eq!(run.call(&mut store, 200_000).unwrap(), 4242);
    assert!(store.live_exceptions() < 20_000, "{} exceptions left: collections inside the continuation freed none", store.live_exceptions());
    assert_eq!(store.live_continuations(), 0);
}

;; Guest of `src/bin/traps.rs`: one function per trap, plus calls that fail in
;; the host, a few frames deep so that backtraces have something to show.
(module $traps
  (import "host" "fail" (func $fail))
  (memory 1)

  (func $unreachable (export "unreachable")
    (unreachable))
  (func $divide (export "divide") (param i32 i32) (result i32)
    (i32.div_s (local.get 0) (local.get 1)))
  (func $load (export "load") (param i32) (result i32)
    (i32.load (local.get 0)))
  (func $recurse (export "recurse") (param i32) (result i32)
    (i32.add (call $recurse (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))

  ;; outer -> middle -> unreachable
  (func $outer (export "outer")
    (call $middle))
  (func $middle
    (call $unreachable))

  ;; call_host -> inner -> the host's `fail`
  (func $call_host (export "call_host")
    (call $inner))
  (func $inner
    (call $fail)))

;; Guest of `src/bin/epochs.rs`: two functions that run far longer than the
;; host lets them. `fibonacci` is the naive recursion (fib(100) would take
;; ages), which epochs stop at a call; `run` is an infinite loop, which they
;; stop at its back edge.
(module
  (func $fibonacci (export "fibonacci") (param $n i32) (result i32)
    (if (result i32) (i32.lt_s (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else
        (i32.add
          (call $fibonacci (i32.sub (local.get $n) (i32.const 1)))
          (call $fibonacci (i32.sub (local.get $n) (i32.const 2)))))))

  (func (export "run")
    (loop $forever
      (br $forever))))

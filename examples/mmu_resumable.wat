;; Guest of `src/bin/mmu_resumable.rs`: long-running loops for the host to
;; interrupt, suspend and resume.
(module
  (memory (export "memory") 1)

  ;; The sum of i * i for i in 0..n (wrapping), in a loop without calls.
  (func (export "sum_of_squares") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (block $done
      (loop $next
        (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i64.add (local.get $acc) (i64.mul (local.get $i) (local.get $i))))
        (local.set $i (i64.add (local.get $i) (i64.const 1)))
        (br $next)))
    (local.get $acc))

  ;; Spins until the host stores a non-zero word at address 0, then returns
  ;; that word.
  (func (export "wait_for_host") (result i32)
    (loop $spin
      (br_if $spin (i32.eqz (i32.load (i32.const 0)))))
    (i32.load (i32.const 0)))

  (func (export "forever")
    (loop $forever
      (br $forever))))

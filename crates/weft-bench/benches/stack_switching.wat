;; The guest of the stack-switching benchmarks (stack_switching.rs and
;; stack_switching_interleaved.rs).
(module
  (type $f (func))
  (type $k (cont $f))
  (rec (type $fp (func (param (ref null $kp)))) (type $kp (cont $fp)))
  (tag $tick)
  (tag $yield (param i32))
  (tag $sw)
  (global $n (mut i32) (i32.const 0))
  (func $empty)
  ;; Suspends forever.
  (func $ticker (loop $l (suspend $tick) (br $l)))
  ;; Yields 0, 1, 2, ... forever.
  (func $naturals (local $i i32)
    (loop $l
      (suspend $yield (local.get $i))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
  ;; One side of a ping-pong of switches, counting down $n; at zero the
  ;; last one standing lets the other finish.
  (func $side (type $fp) (param $other (ref null $kp))
    (loop $l
      (if (i32.eqz (global.get $n)) (then
        (if (ref.is_null (local.get $other)) (then (return)))
        (resume $kp (ref.null $kp) (local.get $other))
        (return)))
      (global.set $n (i32.sub (global.get $n) (i32.const 1)))
      (local.set $other (switch $kp $sw (local.get $other)))
      (br $l)))
  (elem declare func $empty $ticker $naturals $side)
  (global $ticker (mut (ref null $k)) (ref.null $k))
  (global $gen (mut (ref null $k)) (ref.null $k))

  (func (export "setup")
    (global.set $ticker (cont.new $k (ref.func $ticker)))
    (global.set $gen (cont.new $k (ref.func $naturals))))
  ;; `n` suspend + resume round trips of one long-lived continuation.
  (func (export "round_trips") (param $n i32)
    (loop $l
      (block $t (result (ref $k))
        (resume $k (on $tick $t) (global.get $ticker))
        (unreachable))
      (global.set $ticker)
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  ;; `n` continuations created and run to completion.
  (func (export "new_and_run") (param $n i32)
    (loop $l
      (resume $k (cont.new $k (ref.func $empty)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1))))))
  ;; `n` switches between two continuations.
  (func (export "switches") (param $n i32)
    (global.set $n (local.get $n))
    (resume $kp (on $sw switch) (cont.new $kp (ref.func $side)) (cont.new $kp (ref.func $side))))
  ;; The sum of the generator's next `n` values.
  (func (export "generate") (param $n i32) (result i32) (local $sum i32)
    (loop $l
      (block $y (result i32 (ref $k))
        (resume $k (on $yield $y) (global.get $gen))
        (unreachable))
      (global.set $gen)
      (local.set $sum (i32.add (local.get $sum)))
      (br_if $l (local.tee $n (i32.sub (local.get $n) (i32.const 1)))))
    (local.get $sum)))

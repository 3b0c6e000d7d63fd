;; Guest of `src/bin/gcd.rs`: Euclid's algorithm twice, as a loop (`gcd`) and
;; as a recursion (`gcd_recursive`).
(module
  (func $gcd (export "gcd") (param $a i32) (param $b i32) (result i32)
    (local $t i32)
    ;; gcd(0, b) = b
    (if (i32.eqz (local.get $a))
      (then (return (local.get $b))))
    ;; while a != 0: (a, b) = (b % a, a)
    (loop $again
      (local.set $t (local.get $a))
      (local.set $a (i32.rem_u (local.get $b) (local.get $a)))
      (local.set $b (local.get $t))
      (br_if $again (local.get $a)))
    (local.get $b))

  (func $gcd_recursive (export "gcd_recursive") (param $a i32) (param $b i32) (result i32)
    (if (result i32) (i32.eqz (local.get $b))
      (then (local.get $a))
      (else (call $gcd_recursive (local.get $b) (i32.rem_u (local.get $a) (local.get $b)))))))

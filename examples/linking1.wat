;; First guest of `src/bin/linking.rs`: everything it uses comes from the
;; instance of `linking2.wat`, including the memory its data segment fills.
(module
  (import "linking2" "double" (func $double (param i32) (result i32)))
  (import "linking2" "log" (func $log (param i32 i32)))
  (import "linking2" "memory" (memory 1))
  (import "linking2" "memory_offset" (global $offset i32))

  (func (export "run")
    ;; Call into the other module to double a number, and trap unless the
    ;; answer is right.
    (if (i32.ne (call $double (i32.const 2)) (i32.const 4))
      (then (unreachable)))
    ;; Our data segment initialized the imported memory: print the string.
    (call $log (global.get $offset) (i32.const 14)))

  (data (global.get $offset) "Hello, world!\n"))

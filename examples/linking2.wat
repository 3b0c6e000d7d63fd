;; Second guest of `src/bin/linking.rs`: uses WASI to print, and exports a
;; function, its memory and a global to `linking1.wat`.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))

  (func (export "double") (param i32) (result i32)
    (i32.mul (local.get 0) (i32.const 2)))

  ;; Writes `len` bytes at `ptr` to stdout (a single iovec at address 4, the
  ;; count of bytes written at address 0); traps if WASI reports an error.
  (func (export "log") (param $ptr i32) (param $len i32)
    (i32.store (i32.const 4) (local.get $ptr))
    (i32.store (i32.const 8) (local.get $len))
    (if (call $fd_write (i32.const 1) (i32.const 4) (i32.const 1) (i32.const 0))
      (then (unreachable))))

  (memory (export "memory") 2)
  (global (export "memory_offset") i32 (i32.const 65536)))

;; Guest of `src/bin/wasi.rs`: a WASI command that prints "Hello, world!",
;; then each of its arguments as `arg: ...`, then each environment variable
;; whose name starts with `WEFT_EXAMPLE_` as `env: NAME=VALUE`. It traps if a
;; WASI call fails.
(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get" (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get" (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))

  ;; 0: iovec (ptr, len); 8: bytes written; 16/20: argc and argv buffer size;
  ;; 24/28: environment count and buffer size; constant strings from 64;
  ;; the heap from 0x1000.
  (memory (export "memory") 1)
  (data (i32.const 64) "Hello, world!\n")
  (data (i32.const 96) "arg: ")
  (data (i32.const 104) "env: ")
  (data (i32.const 112) "\n")
  (data (i32.const 128) "WEFT_EXAMPLE_")
  (global $heap (mut i32) (i32.const 0x1000))

  ;; Traps unless a WASI call returned success (errno 0).
  (func $check (param $errno i32)
    (if (local.get $errno) (then (unreachable))))

  ;; `size` bytes from the heap, 4-aligned; grows the memory as needed.
  (func $alloc (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 3)) (i32.const -4)))
    (if (i32.gt_u (global.get $heap) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq (memory.grow (i32.add (i32.shr_u (i32.sub (global.get $heap) (i32.shl (memory.size) (i32.const 16))) (i32.const 16)) (i32.const 1))) (i32.const -1))
          (then (unreachable)))))
    (local.get $ptr))

  (func $write (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (call $check (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  (func $strlen (param $s i32) (result i32)
    (local $p i32)
    (local.set $p (local.get $s))
    (block $done
      (loop $next
        (br_if $done (i32.eqz (i32.load8_u (local.get $p))))
        (local.set $p (i32.add (local.get $p) (i32.const 1)))
        (br $next)))
    (i32.sub (local.get $p) (local.get $s)))

  ;; Whether the NUL-terminated string `s` starts with the `len` bytes at `prefix`.
  (func $starts_with (param $s i32) (param $prefix i32) (param $len i32) (result i32)
    (local $i i32)
    (block $no
      (loop $next
        (if (i32.eq (local.get $i) (local.get $len)) (then (return (i32.const 1))))
        (br_if $no (i32.ne
          (i32.load8_u (i32.add (local.get $s) (local.get $i)))
          (i32.load8_u (i32.add (local.get $prefix) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Prints `label` (5 bytes) and the NUL-terminated string `s` on a line.
  (func $print_line (param $label i32) (param $s i32)
    (call $write (local.get $label) (i32.const 5))
    (call $write (local.get $s) (call $strlen (local.get $s)))
    (call $write (i32.const 112) (i32.const 1)))

  (func (export "_start")
    (local $ptrs i32) (local $i i32) (local $s i32)
    (call $write (i32.const 64) (i32.const 14))

    ;; Arguments: all of them.
    (call $check (call $args_sizes_get (i32.const 16) (i32.const 20)))
    (local.set $ptrs (call $alloc (i32.mul (i32.load (i32.const 16)) (i32.const 4))))
    (call $check (call $args_get (local.get $ptrs) (call $alloc (i32.load (i32.const 20)))))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 16))))
        (call $print_line (i32.const 96) (i32.load (i32.add (local.get $ptrs) (i32.shl (local.get $i) (i32.const 2)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    ;; Environment: the variables named WEFT_EXAMPLE_*.
    (call $check (call $environ_sizes_get (i32.const 24) (i32.const 28)))
    (local.set $ptrs (call $alloc (i32.mul (i32.load (i32.const 24)) (i32.const 4))))
    (call $check (call $environ_get (local.get $ptrs) (call $alloc (i32.load (i32.const 28)))))
    (local.set $i (i32.const 0))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (i32.load (i32.const 24))))
        (local.set $s (i32.load (i32.add (local.get $ptrs) (i32.shl (local.get $i) (i32.const 2)))))
        (if (call $starts_with (local.get $s) (i32.const 128) (i32.const 13))
          (then (call $print_line (i32.const 104) (local.get $s))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))

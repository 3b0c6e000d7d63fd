;; Guest of `src/bin/pooling_reset.rs`: a memory initialized with "pristine",
;; a global, and functions that change both (and grow the memory), so that
;; the host can see them restored.
(module
  (memory (export "memory") 1 4)
  (data (i32.const 0) "pristine")
  (global $writes (export "writes") (mut i32) (i32.const 0))

  (func (export "scribble") (param $addr i32) (param $byte i32)
    (i32.store8 (local.get $addr) (local.get $byte))
    (global.set $writes (i32.add (global.get $writes) (i32.const 1))))
  (func (export "read") (param $addr i32) (result i32)
    (i32.load8_u (local.get $addr)))
  (func (export "grow") (param $pages i32) (result i32)
    (memory.grow (local.get $pages))))

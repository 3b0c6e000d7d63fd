;; Guest of `src/bin/tables_globals.rs`: imports a global and a table from the
;; host, exports a table and a global of its own, and reads, writes and calls
;; through all four.
(module
  (import "host" "counter" (global $counter (mut i32)))
  (import "host" "table" (table $host 2 funcref))

  (type $answer (func (result i32)))

  (table $own (export "table") 2 10 funcref)
  (global $g (export "g") (mut i32) (i32.const 10))

  (func $one (export "one") (result i32) (i32.const 1))
  (func $two (export "two") (result i32) (i32.const 2))
  (elem (table $own) (i32.const 0) func $one $two)

  ;; Calls element `i` of the module's own table, or of the host's table.
  (func (export "call_own") (param $i i32) (result i32)
    (call_indirect $own (type $answer) (local.get $i)))
  (func (export "call_host") (param $i i32) (result i32)
    (call_indirect $host (type $answer) (local.get $i)))

  ;; Increments the host's global and returns its new value.
  (func (export "bump") (result i32)
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (global.get $counter))

  (func (export "get_g") (result i32) (global.get $g))
  (func (export "set_g") (param i32) (global.set $g (local.get 0))))

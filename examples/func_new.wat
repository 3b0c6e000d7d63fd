;; Guest of `src/bin/func_new.rs`: calls two host functions defined with
;; `Func::new` (`add`) and `Linker::func_new` (`scale`), whose parameters and
;; results the host sees as `Val`s.
(module
  (import "host" "add" (func $add (param i32 i32) (result i32)))
  (import "host" "scale" (func $scale (param i64 f64) (result i64 f64)))

  (func (export "add_three") (param i32 i32 i32) (result i32)
    (call $add (call $add (local.get 0) (local.get 1)) (local.get 2)))

  ;; `scale` applied twice: its two results are the next call's arguments.
  (func (export "scale_twice") (param i64 f64) (result i64 f64)
    (call $scale (local.get 0) (local.get 1))
    (call $scale)))

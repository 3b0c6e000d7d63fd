;; Guest of `src/bin/hello.rs`: imports one host function and exports `run`,
;; which calls it.
(module
  (func $hello (import "" "hello"))
  (func (export "run")
    (call $hello)))

;; Guest of `src/bin/externref.rs`: a table and a global of `externref`, and a
;; function that returns the `externref` it is given.
(module
  (table $table (export "table") 10 externref)
  (global $global (export "global") (mut externref) (ref.null extern))
  (func (export "func") (param externref) (result externref)
    (local.get 0)))

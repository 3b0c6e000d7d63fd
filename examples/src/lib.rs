//! Weft's embedding examples, one program each in `src/bin`, run by
//! `tests/examples.rs`. This library is empty.

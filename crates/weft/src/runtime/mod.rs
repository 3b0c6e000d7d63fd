//! The runtime: executable code and its registry, linear memories, tables,
//! instances and their builtins, and entering and leaving Wasm (signals, traps).

pub mod code;
pub mod instance;
pub mod memory;
pub mod signals;
pub mod table;

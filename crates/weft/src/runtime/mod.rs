//! The runtime: executable code and its registry, linear memories (with
//! copy-on-write images and the pooling allocator), tables,
//! instances and their builtins, entering and leaving Wasm (signals, traps),
//! and exceptions (objects, throwing and unwinding to handlers).

pub mod code;
pub mod exception;
pub mod fiber;
pub mod fuel;
pub mod image;
pub mod instance;
pub mod interrupt;
pub mod memory;
pub mod pool;
pub mod signals;
pub mod sys;
pub mod table;

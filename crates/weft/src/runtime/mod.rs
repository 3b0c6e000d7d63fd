//! The runtime: executable code and its registry, linear memories (with
//! copy-on-write images and the pooling allocator), tables,
//! instances and their builtins, entering and leaving Wasm (signals, traps),
//! exceptions (objects, throwing and unwinding to handlers), and stack
//! switching (continuation objects and their stacks).

pub mod code;
pub mod continuation;
pub mod exception;
pub mod fiber;
pub mod fuel;
pub mod image;
pub mod instance;
pub mod interrupt;
pub mod memory;
pub mod pool;
pub mod signals;
pub mod stacks;
pub mod sys;
pub mod table;

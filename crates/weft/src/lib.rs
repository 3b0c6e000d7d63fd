//! Weft: a WebAssembly runtime with a Cranelift JIT.
//!
//! The pipeline flows one way, through internal modules: bytes → `frontend`
//! (validated `ModuleInfo`) → `translate` (Cranelift IR) → `compile` (machine
//! code in a code object) → `runtime` (instances, memories, tables, traps) →
//! the public API ([`Engine`], [`Module`], [`Store`], [`Instance`],
//! [`Linker`], [`Func`], ...). The README's layout table says what each owns.
//!
//! # Example
//!
//! ```
//! use weft::{Engine, Module, Store, Instance};
//!
//! let engine = Engine::default();
//! let module = Module::new(&engine, r#"
//!     (module (func (export "add") (param i32 i32) (result i32)
//!         local.get 0 local.get 1 i32.add))
//! "#)?;
//! let mut store = Store::new(&engine, ());
//! let instance = Instance::new(&mut store, &module, &[])?;
//! let add = instance.get_typed_func::<(i32, i32), i32>(&mut store, "add")?;
//! assert_eq!(add.call(&mut store, (2, 40))?, 42);
//! # Ok::<(), anyhow::Error>(())
//! ```

#![warn(missing_docs)]

mod compile;
mod config;
mod cont;
mod engine;
mod error;
mod exn;
mod externals;
mod features;
mod frontend;
mod func;
mod instance;
mod limits;
mod linker;
mod module;
mod runtime;
mod store;
mod translate;
mod trap;
mod types;
mod values;
mod vmctx;

pub use anyhow::{Error, Result};
pub use config::{Config, InstanceAllocationStrategy, Interruption, OptLevel, Tunables};
pub use cont::{Continuation, Resumed};
pub use engine::Engine;
pub use error::{CompileError, CompileErrorKind};
pub use exn::{ExnRef, ExnRefPre, ExnType, ThrownException};
pub use externals::{Extern, Global, Memory, Table, Tag};
pub use features::Proposal;
pub use func::{CallState, Caller, Func, HostResult, IntoFunc, SuspendedCall, TypedFunc, WasmParams, WasmResults, WasmTy};
pub use instance::Instance;
pub use limits::{ResourceLimiter, StoreLimits, StoreLimitsBuilder, DEFAULT_INSTANCE_LIMIT, DEFAULT_MEMORY_LIMIT, DEFAULT_TABLE_LIMIT};
pub use linker::{InstancePre, Linker};
pub use module::Module;
pub use runtime::fuel::UpdateFuel;
pub use runtime::interrupt::{InterruptAction, InterruptHandle, UpdateDeadline};
pub use runtime::pool::{MemoryGrowth, PoolingConfig};
pub use runtime::sys::{syscall_counts, SyscallCounts};
pub use store::{AsContext, AsContextMut, Store, StoreContext, StoreContextMut};
pub use trap::{FrameInfo, Trap, WasmBacktrace};
pub use types::{ExportType, ExternType, FuncType, GlobalType, HeapType, ImportType, MemoryType, Mutability, RefType, TableType, TagType, TypeId, ValType};
pub use values::{ExternRef, Ref, Rooted, Val, ValRaw, V128};

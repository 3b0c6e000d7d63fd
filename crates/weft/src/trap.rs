//! Traps: what went wrong in a guest, and where (a Wasm backtrace).
//!
//! Compiled code signals a trap either by faulting at an instruction listed in its
//! trap table (with a Cranelift [`TrapCode`]) or, from host functions, by raising a
//! recorded error. [`Trap::from_code`] is the single mapping from trap codes to
//! traps.

use std::fmt;

use cranelift_codegen::ir::TrapCode;

/// The trap codes Weft's compiled code uses beyond Cranelift's built-in ones.
pub mod codes {
    use cranelift_codegen::ir::TrapCode;
    pub const UNREACHABLE: TrapCode = TrapCode::unwrap_user(1);
    pub const TABLE_OUT_OF_BOUNDS: TrapCode = TrapCode::unwrap_user(2);
    pub const INDIRECT_CALL_TO_NULL: TrapCode = TrapCode::unwrap_user(3);
    pub const BAD_SIGNATURE: TrapCode = TrapCode::unwrap_user(4);
    pub const NULL_REFERENCE: TrapCode = TrapCode::unwrap_user(5);
    pub const INTERRUPTED: TrapCode = TrapCode::unwrap_user(6);
    /// Marks the dead loads of MMU interruption points. A fault there is not a
    /// trap but a call into the store's interrupt hook.
    pub const INTERRUPTION_POINT: TrapCode = TrapCode::unwrap_user(7);
    pub const CONTINUATION_CONSUMED: TrapCode = TrapCode::unwrap_user(8);
    pub const UNHANDLED_TAG: TrapCode = TrapCode::unwrap_user(9);
    pub const CONTINUATIONS_EXHAUSTED: TrapCode = TrapCode::unwrap_user(10);
    /// Marks the loads of fuel checks' slow paths, from a page that always
    /// faults: a fault there is not a trap but a call into the runtime's
    /// refuelling, with the counter in r15.
    pub const FUEL_CHECK: TrapCode = TrapCode::unwrap_user(11);
}

/// Why a guest trapped.
///
/// A call that traps returns an `anyhow::Error` holding the `Trap`, with the
/// Wasm backtrace attached as context when there is one: compare the trap
/// directly (`err.downcast_ref::<Trap>() == Some(&Trap::Interrupt)`) and get
/// the frames with `err.downcast_ref::<WasmBacktrace>()`. An error a host
/// function returned is not a trap: the caller gets that error itself, with
/// the backtrace attached the same way, so `err.downcast_ref::<MyError>()`
/// finds it. The variants are named as in wasmtime.
///
/// # Example
///
/// ```
/// use weft::{Engine, Instance, Module, Store, Trap, WasmBacktrace};
///
/// let engine = Engine::default();
/// let module = Module::new(&engine, r#"(module $m (func $boom (export "boom") unreachable))"#)?;
/// let mut store = Store::new(&engine, ());
/// let boom = Instance::new(&mut store, &module, &[])?.get_typed_func::<(), ()>(&mut store, "boom")?;
/// let err = boom.call(&mut store, ()).unwrap_err();
/// assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
/// let backtrace = err.downcast_ref::<WasmBacktrace>().unwrap();
/// assert_eq!(backtrace.frames()[0].func_name(), Some("boom"));
/// # Ok::<(), anyhow::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Trap {
    /// An `unreachable` instruction was executed.
    UnreachableCodeReached,
    /// A linear-memory access was out of bounds.
    MemoryOutOfBounds,
    /// A table access was out of bounds.
    TableOutOfBounds,
    /// An indirect call hit a null table element.
    IndirectCallToNull,
    /// An indirect call's callee had the wrong type.
    BadSignature,
    /// A null reference was dereferenced (`call_ref`, `ref.as_non_null`).
    NullReference,
    /// Integer overflow (`i32.div_s` of `INT_MIN / -1`, float-to-int out of range).
    IntegerOverflow,
    /// Integer division by zero.
    IntegerDivisionByZero,
    /// A float-to-int conversion of NaN.
    BadConversionToInteger,
    /// The guest used more than its maximum stack.
    StackOverflow,
    /// The embedder interrupted the guest (an epoch deadline or an
    /// [`InterruptHandle`](crate::InterruptHandle)).
    Interrupt,
    /// The store's fuel ran out (see [`Config::consume_fuel`](crate::Config::consume_fuel)).
    OutOfFuel,
    /// A continuation was resumed, bound or switched to a second time
    /// (continuations are one-shot).
    ContinuationAlreadyConsumed,
    /// `suspend` or `switch` found no active handler of its tag.
    UnhandledTag,
    /// The store may not have another continuation (see
    /// [`Config::max_continuations`](crate::Config::max_continuations)), or
    /// no stack could be allocated for one.
    ContinuationsExhausted,
}

impl Trap {
    /// The trap a compiled-code trap code stands for.
    pub(crate) fn from_code(code: TrapCode) -> Option<Trap> {
        Some(match code {
            TrapCode::STACK_OVERFLOW => Trap::StackOverflow,
            TrapCode::HEAP_OUT_OF_BOUNDS => Trap::MemoryOutOfBounds,
            TrapCode::INTEGER_OVERFLOW => Trap::IntegerOverflow,
            TrapCode::INTEGER_DIVISION_BY_ZERO => Trap::IntegerDivisionByZero,
            TrapCode::BAD_CONVERSION_TO_INTEGER => Trap::BadConversionToInteger,
            codes::UNREACHABLE => Trap::UnreachableCodeReached,
            codes::TABLE_OUT_OF_BOUNDS => Trap::TableOutOfBounds,
            codes::INDIRECT_CALL_TO_NULL => Trap::IndirectCallToNull,
            codes::BAD_SIGNATURE => Trap::BadSignature,
            codes::NULL_REFERENCE => Trap::NullReference,
            codes::INTERRUPTED => Trap::Interrupt,
            codes::CONTINUATION_CONSUMED => Trap::ContinuationAlreadyConsumed,
            codes::UNHANDLED_TAG => Trap::UnhandledTag,
            codes::CONTINUATIONS_EXHAUSTED => Trap::ContinuationsExhausted,
            _ => return None,
        })
    }

    /// The message the spec test suite uses for this trap.
    pub fn message(&self) -> &'static str {
        match self {
            Trap::UnreachableCodeReached => "unreachable",
            Trap::MemoryOutOfBounds => "out of bounds memory access",
            Trap::TableOutOfBounds => "out of bounds table access",
            Trap::IndirectCallToNull => "uninitialized element",
            Trap::BadSignature => "indirect call type mismatch",
            Trap::NullReference => "null reference",
            Trap::IntegerOverflow => "integer overflow",
            Trap::IntegerDivisionByZero => "integer divide by zero",
            Trap::BadConversionToInteger => "invalid conversion to integer",
            Trap::StackOverflow => "call stack exhausted",
            Trap::Interrupt => "interrupted",
            Trap::OutOfFuel => "all fuel consumed",
            Trap::ContinuationAlreadyConsumed => "continuation already consumed",
            Trap::UnhandledTag => "unhandled tag",
            Trap::ContinuationsExhausted => "continuations exhausted",
        }
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "wasm trap: {}", self.message())
    }
}

impl std::error::Error for Trap {}

/// One frame of a Wasm backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    pub(crate) func_index: u32,
    pub(crate) func_name: Option<String>,
    pub(crate) module_name: Option<String>,
    pub(crate) module_offset: Option<u32>,
}

impl FrameInfo {
    /// The function's index in its module.
    pub fn func_index(&self) -> u32 {
        self.func_index
    }
    /// The function's name from the name section, if present.
    pub fn func_name(&self) -> Option<&str> {
        self.func_name.as_deref()
    }
    /// The module's name from the name section, if present.
    pub fn module_name(&self) -> Option<&str> {
        self.module_name.as_deref()
    }
    /// Byte offset in the module binary of the instruction executing in this frame.
    pub fn module_offset(&self) -> Option<usize> {
        self.module_offset.map(|o| o as usize)
    }
}

impl fmt::Display for FrameInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let module = self.module_name.as_deref().unwrap_or("<module>");
        match &self.func_name {
            Some(n) => write!(f, "{module}!{n}")?,
            None => write!(f, "{module}!<wasm function {}>", self.func_index)?,
        }
        if let Some(o) = self.module_offset {
            write!(f, " @ 0x{o:x}")?;
        }
        Ok(())
    }
}

/// The Wasm frames active when a trap happened or a host function failed,
/// innermost first: context on the error a call returns (see [`Trap`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasmBacktrace {
    pub(crate) frames: Vec<FrameInfo>,
}

impl WasmBacktrace {
    /// The frames, innermost first.
    pub fn frames(&self) -> &[FrameInfo] {
        &self.frames
    }

    /// Attaches the backtrace to `error` as context (unless it is empty),
    /// keeping `error` reachable by `downcast_ref`.
    pub(crate) fn attach_to(self, error: anyhow::Error) -> anyhow::Error {
        if self.frames.is_empty() {
            error
        } else {
            error.context(self)
        }
    }
}

impl fmt::Display for WasmBacktrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "error while executing at wasm backtrace:")?;
        for (i, frame) in self.frames.iter().enumerate() {
            writeln!(f, "  {i:>3}: {frame}")?;
        }
        Ok(())
    }
}

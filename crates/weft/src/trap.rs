//! Traps: what went wrong in a guest, and where (a Wasm backtrace).
//!
//! Compiled code signals a trap either by faulting at an instruction listed in its
//! trap table (with a Cranelift [`TrapCode`]) or, from host functions, by raising a
//! recorded error. [`TrapKind::from_code`] is the single mapping from trap codes to
//! kinds.

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
}

/// Why a guest trapped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TrapKind {
    /// An `unreachable` instruction was executed.
    Unreachable,
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
    /// The embedder interrupted the guest.
    Interrupted,
    /// A host function returned an error.
    HostError,
}

impl TrapKind {
    /// The kind a compiled-code trap code stands for.
    pub(crate) fn from_code(code: TrapCode) -> Option<TrapKind> {
        Some(match code {
            TrapCode::STACK_OVERFLOW => TrapKind::StackOverflow,
            TrapCode::HEAP_OUT_OF_BOUNDS => TrapKind::MemoryOutOfBounds,
            TrapCode::INTEGER_OVERFLOW => TrapKind::IntegerOverflow,
            TrapCode::INTEGER_DIVISION_BY_ZERO => TrapKind::IntegerDivisionByZero,
            TrapCode::BAD_CONVERSION_TO_INTEGER => TrapKind::BadConversionToInteger,
            codes::UNREACHABLE => TrapKind::Unreachable,
            codes::TABLE_OUT_OF_BOUNDS => TrapKind::TableOutOfBounds,
            codes::INDIRECT_CALL_TO_NULL => TrapKind::IndirectCallToNull,
            codes::BAD_SIGNATURE => TrapKind::BadSignature,
            codes::NULL_REFERENCE => TrapKind::NullReference,
            codes::INTERRUPTED => TrapKind::Interrupted,
            _ => return None,
        })
    }

    /// The message the spec test suite uses for this kind.
    pub fn message(&self) -> &'static str {
        match self {
            TrapKind::Unreachable => "unreachable",
            TrapKind::MemoryOutOfBounds => "out of bounds memory access",
            TrapKind::TableOutOfBounds => "out of bounds table access",
            TrapKind::IndirectCallToNull => "uninitialized element",
            TrapKind::BadSignature => "indirect call type mismatch",
            TrapKind::NullReference => "null reference",
            TrapKind::IntegerOverflow => "integer overflow",
            TrapKind::IntegerDivisionByZero => "integer divide by zero",
            TrapKind::BadConversionToInteger => "invalid conversion to integer",
            TrapKind::StackOverflow => "call stack exhausted",
            TrapKind::Interrupted => "interrupted",
            TrapKind::HostError => "host function error",
        }
    }
}

impl fmt::Display for TrapKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// One frame of a Wasm backtrace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameInfo {
    /// The function's index in its module.
    pub func_index: u32,
    /// The function's name from the name section, if present.
    pub func_name: Option<String>,
    /// The module's name from the name section, if present.
    pub module_name: Option<String>,
    /// Byte offset in the module binary of the instruction executing in this frame.
    pub module_offset: Option<u32>,
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

/// The Wasm frames active when a trap happened, innermost first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasmBacktrace {
    pub frames: Vec<FrameInfo>,
}

impl fmt::Display for WasmBacktrace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, frame) in self.frames.iter().enumerate() {
            writeln!(f, "  {i:>3}: {frame}")?;
        }
        Ok(())
    }
}

/// A trap: the guest stopped because of `kind`.
///
/// Returned inside an [`anyhow::Error`] by calls into Wasm; recover it with
/// `error.downcast_ref::<Trap>()`.
#[derive(Debug)]
pub struct Trap {
    kind: TrapKind,
    backtrace: WasmBacktrace,
    /// The error a host function returned, for [`TrapKind::HostError`].
    host_error: Option<anyhow::Error>,
}

impl Trap {
    pub(crate) fn new(kind: TrapKind, backtrace: WasmBacktrace) -> Self {
        Trap { kind, backtrace, host_error: None }
    }
    pub(crate) fn host(error: anyhow::Error, backtrace: WasmBacktrace) -> Self {
        Trap { kind: TrapKind::HostError, backtrace, host_error: Some(error) }
    }
    /// Why the guest trapped.
    pub fn kind(&self) -> TrapKind {
        self.kind
    }
    /// The Wasm frames at the trap, innermost first.
    pub fn backtrace(&self) -> &WasmBacktrace {
        &self.backtrace
    }
    /// The host function's error, if a host function caused this trap.
    pub fn host_error(&self) -> Option<&anyhow::Error> {
        self.host_error.as_ref()
    }
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host_error {
            Some(e) => write!(f, "wasm trap: host function error: {e:#}")?,
            None => write!(f, "wasm trap: {}", self.kind)?,
        }
        if !self.backtrace.frames.is_empty() {
            write!(f, "\nwasm backtrace:\n{}", self.backtrace)?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.host_error.as_ref().map(|e| e.as_ref() as &(dyn std::error::Error + 'static))
    }
}

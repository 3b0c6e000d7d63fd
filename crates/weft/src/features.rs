//! WebAssembly proposals: which ones Weft implements, which ones a
//! [`Config`](crate::Config) turns on, and the wasmparser feature set that
//! validation uses for them. The one place that knows how a proposal maps to
//! wasmparser's flags and operators.

use std::fmt;

use wasmparser::{Operator, WasmFeatures};

/// A WebAssembly proposal that a [`Config`](crate::Config) can turn on or off
/// (`Config::wasm_*`, or [`Config::wasm_proposal`](crate::Config::wasm_proposal)),
/// and that a [`CompileError`](crate::CompileError) names when a module needs
/// one that is off or not implemented.
///
/// The features of Wasm 1.0 that were once proposals (mutable globals,
/// saturating float-to-int conversions, sign extension) are always on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Proposal {
    /// Reference types (`funcref`/`externref` values, several tables, `table.*`).
    ReferenceTypes,
    /// Several results from functions and blocks.
    MultiValue,
    /// Bulk memory and table operations (`memory.copy`, `memory.fill`, passive segments).
    BulkMemory,
    /// Tail calls (`return_call`, `return_call_indirect`, `return_call_ref`).
    TailCall,
    /// Several memories in one module.
    MultiMemory,
    /// 64-bit memories and tables.
    Memory64,
    /// Extended constant expressions (`i32.add` and friends in initialisers).
    ExtendedConst,
    /// Typed function references (`call_ref`, `ref.as_non_null`, `br_on_null`).
    FunctionReferences,
    /// Garbage collection. Weft implements its abstract heap types, rec groups
    /// and constant expressions; struct and array types, subtyping and the GC
    /// instructions are refused as unsupported.
    Gc,
    /// Exception handling (tags, `throw`, `throw_ref`, `try_table`, `exnref`).
    Exceptions,
    /// The legacy exception-handling encoding (`try`, `catch`, `delegate`, `rethrow`).
    LegacyExceptions,
    /// 128-bit SIMD.
    Simd,
    /// Relaxed SIMD.
    RelaxedSimd,
    /// Threads: shared memories and atomic operations.
    Threads,
    /// Stack switching (`cont.new`, `resume`, `suspend`, `switch`).
    StackSwitching,
    /// Wide arithmetic (`i64.add128`, `i64.mul_wide_s`, ...).
    WideArithmetic,
    /// Custom page sizes for memories.
    CustomPageSizes,
    /// Memory control (`memory.discard`).
    MemoryControl,
    /// Shared-everything threads.
    SharedEverythingThreads,
}

impl Proposal {
    /// Every proposal, in the order the documentation lists them.
    pub const ALL: [Proposal; 19] = [
        Proposal::ReferenceTypes,
        Proposal::MultiValue,
        Proposal::BulkMemory,
        Proposal::TailCall,
        Proposal::MultiMemory,
        Proposal::Memory64,
        Proposal::ExtendedConst,
        Proposal::FunctionReferences,
        Proposal::Gc,
        Proposal::Exceptions,
        Proposal::LegacyExceptions,
        Proposal::Simd,
        Proposal::RelaxedSimd,
        Proposal::Threads,
        Proposal::StackSwitching,
        Proposal::WideArithmetic,
        Proposal::CustomPageSizes,
        Proposal::MemoryControl,
        Proposal::SharedEverythingThreads,
    ];

    /// The proposal's name as the command line writes it (`weft run -W
    /// tail-call=n`), the same as other runtimes' flags.
    pub fn name(self) -> &'static str {
        match self {
            Proposal::ReferenceTypes => "reference-types",
            Proposal::MultiValue => "multi-value",
            Proposal::BulkMemory => "bulk-memory",
            Proposal::TailCall => "tail-call",
            Proposal::MultiMemory => "multi-memory",
            Proposal::Memory64 => "memory64",
            Proposal::ExtendedConst => "extended-const",
            Proposal::FunctionReferences => "function-references",
            Proposal::Gc => "gc",
            Proposal::Exceptions => "exceptions",
            Proposal::LegacyExceptions => "legacy-exceptions",
            Proposal::Simd => "simd",
            Proposal::RelaxedSimd => "relaxed-simd",
            Proposal::Threads => "threads",
            Proposal::StackSwitching => "stack-switching",
            Proposal::WideArithmetic => "wide-arithmetic",
            Proposal::CustomPageSizes => "custom-page-sizes",
            Proposal::MemoryControl => "memory-control",
            Proposal::SharedEverythingThreads => "shared-everything-threads",
        }
    }

    /// The proposal of that [`name`](Self::name), if any.
    pub fn from_name(name: &str) -> Option<Proposal> {
        Proposal::ALL.into_iter().find(|p| p.name() == name)
    }

    /// Whether Weft implements the proposal (in part, for [`Proposal::Gc`]:
    /// see it). A [`Config`](crate::Config) that turns on a proposal Weft
    /// does not implement is refused by [`Engine::new`](crate::Engine::new).
    pub fn is_implemented(self) -> bool {
        matches!(
            self,
            Proposal::ReferenceTypes
                | Proposal::MultiValue
                | Proposal::BulkMemory
                | Proposal::TailCall
                | Proposal::MultiMemory
                | Proposal::Memory64
                | Proposal::ExtendedConst
                | Proposal::FunctionReferences
                | Proposal::Gc
                | Proposal::Exceptions
                | Proposal::LegacyExceptions
                | Proposal::Simd
                | Proposal::RelaxedSimd
                | Proposal::StackSwitching
        )
    }

    /// Whether a new [`Config`](crate::Config) turns the proposal on: exactly
    /// the proposals Weft implements.
    pub fn is_enabled_by_default(self) -> bool {
        self.is_implemented()
    }

    /// The proposals this one builds on, which must be on with it.
    pub fn requires(self) -> &'static [Proposal] {
        match self {
            Proposal::FunctionReferences => &[Proposal::ReferenceTypes],
            Proposal::Gc => &[Proposal::FunctionReferences],
            Proposal::RelaxedSimd => &[Proposal::Simd],
            Proposal::LegacyExceptions => &[Proposal::Exceptions],
            Proposal::StackSwitching => &[Proposal::Exceptions, Proposal::FunctionReferences],
            Proposal::SharedEverythingThreads => &[Proposal::Threads],
            _ => &[],
        }
    }

    /// wasmparser's flags for the proposal.
    fn features(self) -> WasmFeatures {
        match self {
            Proposal::ReferenceTypes => WasmFeatures::REFERENCE_TYPES,
            Proposal::MultiValue => WasmFeatures::MULTI_VALUE,
            Proposal::BulkMemory => WasmFeatures::BULK_MEMORY,
            Proposal::TailCall => WasmFeatures::TAIL_CALL,
            Proposal::MultiMemory => WasmFeatures::MULTI_MEMORY,
            Proposal::Memory64 => WasmFeatures::MEMORY64,
            Proposal::ExtendedConst => WasmFeatures::EXTENDED_CONST,
            Proposal::FunctionReferences => WasmFeatures::FUNCTION_REFERENCES,
            Proposal::Gc => WasmFeatures::GC,
            Proposal::Exceptions => WasmFeatures::EXCEPTIONS,
            Proposal::LegacyExceptions => WasmFeatures::LEGACY_EXCEPTIONS,
            Proposal::Simd => WasmFeatures::SIMD,
            Proposal::RelaxedSimd => WasmFeatures::RELAXED_SIMD,
            Proposal::Threads => WasmFeatures::THREADS,
            Proposal::StackSwitching => WasmFeatures::STACK_SWITCHING,
            Proposal::WideArithmetic => WasmFeatures::WIDE_ARITHMETIC,
            Proposal::CustomPageSizes => WasmFeatures::CUSTOM_PAGE_SIZES,
            Proposal::MemoryControl => WasmFeatures::MEMORY_CONTROL,
            Proposal::SharedEverythingThreads => WasmFeatures::SHARED_EVERYTHING_THREADS,
        }
    }

    /// The proposal that introduced `op`, from wasmparser's own listing of
    /// operators by proposal. `None` for Wasm 1.0's operators.
    pub(crate) fn of_operator(op: &Operator<'_>) -> Option<Proposal> {
        macro_rules! proposal_of {
            ($( @$proposal:ident $op:ident $({ $($arg:ident: $argty:ty),* })? => $visit:ident ($($ann:tt)*) )*) => {
                match op {
                    $( Operator::$op { .. } => stringify!($proposal), )*
                    _ => "mvp",
                }
            };
        }
        Proposal::from_wasmparser_group(wasmparser::for_each_operator!(proposal_of))
    }

    /// The proposal of one of wasmparser's operator groups (`@simd`, ...).
    fn from_wasmparser_group(group: &str) -> Option<Proposal> {
        Some(match group {
            "reference_types" => Proposal::ReferenceTypes,
            "bulk_memory" => Proposal::BulkMemory,
            "tail_call" => Proposal::TailCall,
            "function_references" => Proposal::FunctionReferences,
            "gc" | "custom_descriptors" => Proposal::Gc,
            "exceptions" => Proposal::Exceptions,
            "legacy_exceptions" => Proposal::LegacyExceptions,
            "simd" => Proposal::Simd,
            "relaxed_simd" => Proposal::RelaxedSimd,
            "threads" | "acquire_release_atomics" => Proposal::Threads,
            "stack_switching" => Proposal::StackSwitching,
            "wide_arithmetic" => Proposal::WideArithmetic,
            "memory_control" => Proposal::MemoryControl,
            "shared_everything_threads" => Proposal::SharedEverythingThreads,
            // mvp, sign_extension, saturating_float_to_int: always on.
            _ => return None,
        })
    }
}

impl fmt::Display for Proposal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of proposals, as a [`Config`](crate::Config) holds them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Proposals(u32);

impl Default for Proposals {
    fn default() -> Self {
        Proposal::ALL.into_iter().filter(|p| p.is_enabled_by_default()).fold(Proposals(0), |set, p| set.with(p, true))
    }
}

impl Proposals {
    fn bit(p: Proposal) -> u32 {
        1 << Proposal::ALL.iter().position(|q| *q == p).expect("every proposal is listed in ALL")
    }

    pub fn contains(self, p: Proposal) -> bool {
        self.0 & Self::bit(p) != 0
    }

    pub fn with(self, p: Proposal, enable: bool) -> Proposals {
        Proposals(if enable { self.0 | Self::bit(p) } else { self.0 & !Self::bit(p) })
    }

    pub fn iter(self) -> impl Iterator<Item = Proposal> {
        Proposal::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// Checks that Weft implements every proposal in the set and that each
    /// one's prerequisites are in it too.
    pub fn check(self) -> anyhow::Result<()> {
        for p in self.iter() {
            if !p.is_implemented() {
                anyhow::bail!("Weft does not implement the {p} proposal yet: turn it off (Config::wasm_proposal(Proposal::{p:?}, false))");
            }
            if let Some(missing) = p.requires().iter().find(|r| !self.contains(**r)) {
                anyhow::bail!("the {p} proposal requires the {missing} proposal, which is turned off");
            }
        }
        Ok(())
    }

    /// The wasmparser features that validate modules for this set.
    pub fn wasm_features(self) -> WasmFeatures {
        // Wasm 1.0's former proposals are always on. GC_TYPES is no
        // proposal but wasmparser's switch for reference types that need a
        // collector (externref among them): Weft's externrefs need none.
        let base =
            WasmFeatures::MUTABLE_GLOBAL | WasmFeatures::SATURATING_FLOAT_TO_INT | WasmFeatures::SIGN_EXTENSION | WasmFeatures::FLOATS | WasmFeatures::GC_TYPES;
        self.iter().fold(base, |f, p| f | p.features())
    }

    /// The set without `p` and everything that requires it.
    pub fn without_dependents(self, p: Proposal) -> Proposals {
        Proposal::ALL.into_iter().filter(|q| q.requires().contains(&p)).fold(self.with(p, false), |set, q| set.without_dependents(q))
    }

    /// The set with `p` and everything it requires added.
    pub fn with_requirements(self, p: Proposal) -> Proposals {
        p.requires().iter().fold(self.with(p, true), |set, r| set.with_requirements(*r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_defaults_are_consistent() {
        for p in Proposal::ALL {
            assert_eq!(Proposal::from_name(p.name()), Some(p));
        }
        Proposals::default().check().expect("the default set is implemented and closed under requirements");
        assert!(Proposals::default().with(Proposal::Threads, true).check().is_err());
        assert!(Proposals::default().with(Proposal::ReferenceTypes, false).check().is_err());
        // Turning one off turns off what builds on it.
        let no_exceptions = Proposals::default().without_dependents(Proposal::Exceptions);
        assert!(!no_exceptions.contains(Proposal::StackSwitching) && !no_exceptions.contains(Proposal::LegacyExceptions));
        no_exceptions.check().unwrap();
        Proposals::default().without_dependents(Proposal::ReferenceTypes).check().unwrap();
    }

    #[test]
    fn operators_are_attributed_to_their_proposal() {
        assert_eq!(Proposal::of_operator(&Operator::Nop), None);
        assert_eq!(Proposal::of_operator(&Operator::I32Extend8S), None);
        assert_eq!(Proposal::of_operator(&Operator::I8x16Splat), Some(Proposal::Simd));
        assert_eq!(Proposal::of_operator(&Operator::Throw { tag_index: 0 }), Some(Proposal::Exceptions));
        assert_eq!(Proposal::of_operator(&Operator::Rethrow { relative_depth: 0 }), Some(Proposal::LegacyExceptions));
        assert_eq!(Proposal::of_operator(&Operator::ReturnCall { function_index: 0 }), Some(Proposal::TailCall));
    }
}

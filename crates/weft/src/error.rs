//! Compile errors: why [`Module::new`](crate::Module::new) refused a module,
//! as a [`CompileErrorKind`] an embedder can match on instead of a message.
//!
//! Errors are made where the kind is known (the translator names the
//! proposal of an operator it does not implement; the compiler tells limits
//! from bugs), and [`CompileError::classify`] gives the rest their kind in one
//! place: the validator's errors become `LimitExceeded` for its
//! implementation limits, `Unsupported` when the module validates once a
//! proposal is turned on, and `Invalid` otherwise.

use std::fmt;

use crate::features::{Proposal, Proposals};

/// What kind of problem stopped a module from compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CompileErrorKind {
    /// The input is not a valid module: malformed bytes, text that does not
    /// parse, or a module that fails validation.
    Invalid,
    /// The module needs a proposal that the engine's [`Config`](crate::Config)
    /// turns off, or that Weft does not implement (see
    /// [`Proposal::is_implemented`]).
    Unsupported(Proposal),
    /// The module is valid but exceeds an implementation or resource limit
    /// (a function too large to compile, memory for code not available).
    LimitExceeded,
    /// A bug in Weft: a valid module that Weft should compile did not.
    Internal,
}

/// A module that could not be compiled, with the [kind](CompileErrorKind) of
/// the problem.
///
/// [`Module::new`](crate::Module::new) and [`Module::from_binary`](crate::Module::from_binary)
/// return it inside an `anyhow::Error`; get it back with `downcast_ref`.
///
/// # Example
///
/// ```
/// use weft::{CompileError, CompileErrorKind, Config, Engine, Module, Proposal};
///
/// let mut config = Config::new();
/// config.wasm_tail_call(false);
/// let engine = Engine::new(&config).unwrap();
/// let err = Module::new(&engine, "(module (func $f (return_call $f)))").unwrap_err();
/// let kind = err.downcast_ref::<CompileError>().unwrap().kind();
/// assert_eq!(kind, CompileErrorKind::Unsupported(Proposal::TailCall));
/// ```
#[derive(Debug)]
pub struct CompileError {
    kind: CompileErrorKind,
    message: String,
    offset: Option<usize>,
}

impl CompileError {
    /// An error of `kind` with `message`.
    pub(crate) fn new(kind: CompileErrorKind, message: impl Into<String>) -> Self {
        CompileError { kind, message: message.into(), offset: None }
    }

    /// A module that uses `proposal`, which Weft does not implement (yet).
    pub(crate) fn unsupported(proposal: Proposal, message: impl fmt::Display) -> anyhow::Error {
        anyhow::Error::new(CompileError::new(
            CompileErrorKind::Unsupported(proposal),
            format!("{message} (the {proposal} proposal is not supported by Weft yet)"),
        ))
    }

    /// A bug in Weft.
    pub(crate) fn internal(message: impl fmt::Display) -> anyhow::Error {
        anyhow::Error::new(CompileError::new(CompileErrorKind::Internal, format!("internal compiler error: {message}")))
    }

    /// The kind of problem.
    pub fn kind(&self) -> CompileErrorKind {
        self.kind
    }

    /// The byte offset in the binary module where the problem was found, for
    /// invalid and unsupported modules when the validator reported one.
    pub fn offset(&self) -> Option<usize> {
        self.offset
    }

    /// Gives any error from compiling `binary` (or parsing its text) its
    /// kind: a [`CompileError`] stays as it is; a validation error becomes
    /// `LimitExceeded` for the validator's implementation limits,
    /// `Unsupported` if turning on one more proposal moves the validator past
    /// it, else `Invalid`; a failure to get memory is `LimitExceeded`;
    /// anything else is `Internal`.
    pub(crate) fn classify(err: anyhow::Error, binary: Option<&[u8]>, enabled: Proposals) -> anyhow::Error {
        if err.is::<CompileError>() {
            return err;
        }
        let (kind, offset) = if let Some(e) = err.downcast_ref::<wasmparser::BinaryReaderError>() {
            let offset = e.offset() as usize;
            let kind = if is_validator_limit(e) {
                CompileErrorKind::LimitExceeded
            } else {
                binary.and_then(|b| needed_proposal(b, offset, enabled)).map_or(CompileErrorKind::Invalid, CompileErrorKind::Unsupported)
            };
            (kind, Some(offset))
        } else if err.is::<wat::Error>() {
            (CompileErrorKind::Invalid, None)
        } else if err.chain().any(|c| c.is::<std::io::Error>()) {
            (CompileErrorKind::LimitExceeded, None)
        } else {
            (CompileErrorKind::Internal, None)
        };
        let message = match kind {
            CompileErrorKind::Unsupported(p) if !p.is_implemented() => format!("{err:#} (the {p} proposal is not supported by Weft yet)"),
            CompileErrorKind::Unsupported(p) => format!("{err:#} (the {p} proposal is turned off in this engine's Config)"),
            CompileErrorKind::Internal => format!("internal compiler error: {err:#}"),
            _ => format!("{err:#}"),
        };
        anyhow::Error::new(CompileError { kind, message, offset })
    }
}

/// Whether the validator refused the module for one of its implementation
/// limits (the counts of functions, types, locals, ... that the JS API
/// specification sets) rather than for being invalid. wasmparser reports
/// them with these words only; a test pins them.
fn is_validator_limit(e: &wasmparser::BinaryReaderError) -> bool {
    let message = e.message();
    ["exceeds limit", "locals exceed maximum", "implementation limit"].iter().any(|words| message.contains(words))
}

/// The proposal, off in `enabled`, that `binary` needs: the first one with
/// which validation passes, or fails only later than `offset`. `None` if the
/// module is invalid whatever is turned on.
fn needed_proposal(binary: &[u8], offset: usize, enabled: Proposals) -> Option<Proposal> {
    let validates_past = |set: Proposals| match wasmparser::Validator::new_with_features(set.wasm_features()).validate_all(binary) {
        Ok(_) => true,
        Err(e) => e.offset() as usize > offset,
    };
    let off: Vec<Proposal> = Proposal::ALL.into_iter().filter(|p| !enabled.contains(*p)).collect();
    // One validation with everything on first: most invalid modules stop here.
    let everything = off.iter().fold(enabled, |set, p| set.with_requirements(*p));
    if off.is_empty() || !validates_past(everything) {
        return None;
    }
    off.into_iter().find(|p| validates_past(enabled.with_requirements(*p)))
}

impl fmt::Display for CompileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CompileError {}

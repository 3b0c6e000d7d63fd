//! Compile errors carry a kind an embedder can match on
//! (`downcast_ref::<CompileError>()`), and every proposal switch of `Config`
//! refuses a module that uses the proposal, naming it.

use weft::{CompileError, CompileErrorKind, Config, Engine, Module, Proposal};

fn compile_error(engine: &Engine, module: impl AsRef<[u8]>) -> (CompileErrorKind, String, Option<usize>) {
    let err = Module::new(engine, module).expect_err("the module compiled");
    let e = err.downcast_ref::<CompileError>().unwrap_or_else(|| panic!("not a CompileError: {err:#}"));
    (e.kind(), e.to_string(), e.offset())
}

#[test]
fn invalid_modules_are_invalid() {
    let engine = Engine::default();
    // Malformed bytes, text that does not parse, and a type error.
    let (kind, _, offset) = compile_error(&engine, b"\0asm\x01\0\0\0\x7f");
    assert_eq!(kind, CompileErrorKind::Invalid);
    assert!(offset.is_some_and(|o| o >= 8), "{offset:?}");
    assert_eq!(compile_error(&engine, "(module (func (i32.frobnicate)))").0, CompileErrorKind::Invalid);
    let (kind, msg, offset) = compile_error(&engine, "(module (func (result i32) (i64.const 1)))");
    assert_eq!(kind, CompileErrorKind::Invalid, "{msg}");
    assert!(msg.contains("type mismatch"), "{msg}");
    assert!(offset.is_some());
    // `Module::validate` classifies the same way.
    let binary = wat::parse_str("(module (func (result i32) (i64.const 1)))").unwrap();
    let err = Module::validate(&engine, &binary).unwrap_err();
    assert_eq!(err.downcast_ref::<CompileError>().unwrap().kind(), CompileErrorKind::Invalid);
}

#[test]
fn validator_limits_are_limits() {
    let engine = Engine::default();
    // 50,000 locals is the limit the JS API specification sets.
    let (kind, msg, _) =
        compile_error(&engine, "(module (func (local i32) (local i64 i64) (local $many f32)))".replace("(local $many f32)", &"(local f32)".repeat(50_000)));
    assert_eq!(kind, CompileErrorKind::LimitExceeded, "{msg}");
}

#[test]
fn proposals_weft_does_not_implement_are_unsupported() {
    let engine = Engine::default();
    let cases = [
        ("(module (memory 1 1 shared) (func (result i32) (i32.atomic.load (i32.const 0))))", Proposal::Threads),
        (
            "(module (func (param i64 i64 i64 i64) (result i64 i64) (i64.add128 (local.get 0) (local.get 1) (local.get 2) (local.get 3))))",
            Proposal::WideArithmetic,
        ),
        // Refused by the front end.
        ("(module (type (struct (field i32))))", Proposal::Gc),
    ];
    for (wat, proposal) in cases {
        let (kind, msg, _) = compile_error(&engine, wat);
        assert_eq!(kind, CompileErrorKind::Unsupported(proposal), "{wat}: {msg}");
        assert!(msg.contains(proposal.name()), "{wat}: {msg}");
    }
    // Turning such a proposal on is refused when the engine is made.
    for proposal in [Proposal::Threads, Proposal::WideArithmetic] {
        let mut config = Config::new();
        config.wasm_proposal(proposal, true);
        let err = Engine::new(&config).err().expect("an unimplemented proposal was accepted");
        assert!(format!("{err}").contains(proposal.name()), "{err}");
    }
}

/// One module per switchable proposal Weft implements: compiles with the
/// default configuration, and is refused, naming the proposal, with it off.
#[test]
fn every_proposal_switch_refuses_modules_that_use_it() {
    type SwitchOff = fn(&mut Config) -> &mut Config;
    let cases: [(Proposal, SwitchOff, &str); 11] = [
        (Proposal::ReferenceTypes, |c| c.wasm_reference_types(false).wasm_function_references(false).wasm_gc(false), "(module (func (param externref)))"),
        (Proposal::MultiValue, |c| c.wasm_multi_value(false), "(module (func (result i32 i32) (i32.const 1) (i32.const 2)))"),
        (Proposal::BulkMemory, |c| c.wasm_bulk_memory(false), "(module (memory 1) (func (memory.fill (i32.const 0) (i32.const 0) (i32.const 0))))"),
        (Proposal::TailCall, |c| c.wasm_tail_call(false), "(module (func $f (return_call $f)))"),
        (Proposal::MultiMemory, |c| c.wasm_multi_memory(false), "(module (memory 1) (memory 1))"),
        (Proposal::Memory64, |c| c.wasm_memory64(false), "(module (memory i64 1))"),
        (Proposal::ExtendedConst, |c| c.wasm_extended_const(false), "(module (global i32 (i32.add (i32.const 1) (i32.const 2))))"),
        (
            Proposal::FunctionReferences,
            |c| c.wasm_function_references(false).wasm_gc(false),
            "(module (type $t (func)) (func (param (ref $t)) (call_ref $t (local.get 0))))",
        ),
        (Proposal::Exceptions, |c| c.wasm_exceptions(false).wasm_legacy_exceptions(false), "(module (tag $e))"),
        (Proposal::LegacyExceptions, |c| c.wasm_legacy_exceptions(false), "(module (func try catch_all end))"),
        (Proposal::StackSwitching, |c| c.wasm_stack_switching(false), "(module (type $f (func)) (type $k (cont $f)))"),
    ];
    for (proposal, switch_off, wat) in cases {
        Module::new(&Engine::default(), wat).unwrap_or_else(|e| panic!("{proposal}: {e:#}"));
        let mut config = Config::new();
        switch_off(&mut config);
        assert!(!config.proposal_enabled(proposal));
        let engine = Engine::new(&config).unwrap_or_else(|e| panic!("{proposal}: {e:#}"));
        let (kind, msg, _) = compile_error(&engine, wat);
        assert_eq!(kind, CompileErrorKind::Unsupported(proposal), "{proposal}: {msg}");
        assert!(msg.contains(proposal.name()) && msg.contains("turned off"), "{proposal}: {msg}");
    }
    // Turning a proposal off turns off those that build on it...
    let mut config = Config::new();
    config.wasm_exceptions(false);
    assert!(!config.proposal_enabled(Proposal::StackSwitching) && !config.proposal_enabled(Proposal::LegacyExceptions));
    Engine::new(&config).unwrap();
    // ... and one turned on again without the one it builds on is refused.
    config.wasm_reference_types(false).wasm_function_references(true);
    let err = Engine::new(&config).err().expect("function references without reference types");
    assert!(format!("{err}").contains("reference-types"), "{err}");
}

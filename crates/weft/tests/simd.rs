//! SIMD and relaxed SIMD through the embedding API: `v128` values in calls
//! (dynamic and typed), host functions, globals and memory; the proposal
//! switches; the documented deterministic choice of each relaxed operator;
//! NaN canonicalization.

use weft::{CompileError, CompileErrorKind, Config, Engine, Func, Global, GlobalType, Instance, Module, Mutability, Proposal, Store, Val, ValType, V128};

fn lanes_f32(v: V128) -> [f32; 4] {
    let b = v.as_u128().to_le_bytes();
    std::array::from_fn(|i| f32::from_le_bytes(b[i * 4..i * 4 + 4].try_into().unwrap()))
}

fn from_f32(lanes: [f32; 4]) -> V128 {
    let mut b = [0u8; 16];
    for (i, l) in lanes.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&l.to_le_bytes());
    }
    V128::from(u128::from_le_bytes(b))
}

fn from_i32(lanes: [i32; 4]) -> V128 {
    let mut b = [0u8; 16];
    for (i, l) in lanes.iter().enumerate() {
        b[i * 4..i * 4 + 4].copy_from_slice(&l.to_le_bytes());
    }
    V128::from(u128::from_le_bytes(b))
}

const MODULE: &str = r#"(module
    (import "host" "twice" (func $twice (param v128) (result v128)))
    (memory (export "memory") 1)
    (global $g (export "g") (mut v128) (v128.const i32x4 1 2 3 4))
    (func (export "add") (param v128 v128) (result v128) (i32x4.add (local.get 0) (local.get 1)))
    (func (export "swap") (param v128 i32 v128) (result v128 i32 v128) (local.get 2) (local.get 1) (local.get 0))
    (func (export "via_host") (param v128) (result v128) (call $twice (i32x4.mul (local.get 0) (v128.const i32x4 1 1 1 1))))
    (func (export "sum_memory") (param $n i32) (result i32) (local $acc v128) (local $i i32)
      (loop $l
        (local.set $acc (i32x4.add (local.get $acc) (v128.load (i32.shl (local.get $i) (i32.const 4)))))
        (br_if $l (i32.lt_u (local.tee $i (i32.add (local.get $i) (i32.const 1))) (local.get $n))))
      (i32.add (i32.add (i32x4.extract_lane 0 (local.get $acc)) (i32x4.extract_lane 1 (local.get $acc)))
               (i32.add (i32x4.extract_lane 2 (local.get $acc)) (i32x4.extract_lane 3 (local.get $acc)))))
    (func (export "bump_global") (global.set $g (i32x4.add (global.get $g) (v128.const i32x4 10 10 10 10)))))"#;

#[test]
fn v128_values_cross_every_boundary() {
    let engine = Engine::default();
    let module = Module::new(&engine, MODULE).unwrap();
    let mut store = Store::new(&engine, ());
    let twice = Func::wrap(&mut store, |v: V128| V128::from(v.as_u128().wrapping_mul(2)));
    let instance = Instance::new(&mut store, &module, &[twice.into()]).unwrap();

    let add = instance.get_typed_func::<(V128, V128), V128>(&mut store, "add").unwrap();
    assert_eq!(add.call(&mut store, (from_i32([1, 2, 3, -4]), from_i32([10, 20, 30, 40]))).unwrap(), from_i32([11, 22, 33, 36]));

    let swap = instance.get_func(&mut store, "swap").unwrap();
    let mut results = [Val::I32(0), Val::I32(0), Val::I32(0)];
    swap.call(&mut store, &[Val::V128(1u128.into()), Val::I32(7), Val::V128(u128::MAX.into())], &mut results).unwrap();
    assert_eq!(results, [Val::V128(u128::MAX.into()), Val::I32(7), Val::V128(1u128.into())]);
    let swap = instance.get_typed_func::<(V128, i32, V128), (V128, i32, V128)>(&mut store, "swap").unwrap();
    assert_eq!(swap.call(&mut store, (5u128.into(), 1, 6u128.into())).unwrap(), (6u128.into(), 1, 5u128.into()));

    let via_host = instance.get_typed_func::<V128, V128>(&mut store, "via_host").unwrap();
    assert_eq!(via_host.call(&mut store, V128::from(21u128)).unwrap().as_u128(), 42);

    let memory = instance.get_memory(&mut store, "memory").unwrap();
    for i in 0..64u32 {
        memory.write(&mut store, i as usize * 4, &i.to_le_bytes()).unwrap();
    }
    let sum = instance.get_typed_func::<i32, i32>(&mut store, "sum_memory").unwrap();
    assert_eq!(sum.call(&mut store, 16).unwrap(), (0..64).sum::<i32>());

    let g = instance.get_global(&mut store, "g").unwrap();
    assert_eq!(g.get(&mut store).unwrap_v128(), from_i32([1, 2, 3, 4]));
    instance.get_typed_func::<(), ()>(&mut store, "bump_global").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(g.get(&mut store).unwrap_v128(), from_i32([11, 12, 13, 14]));
    g.set(&mut store, Val::V128(from_i32([0, 0, 0, 1]))).unwrap();
    instance.get_typed_func::<(), ()>(&mut store, "bump_global").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(g.get(&mut store).unwrap_v128(), from_i32([10, 10, 10, 11]));
    // A host global of type v128.
    let host = Global::new(&mut store, GlobalType::new(ValType::V128, Mutability::Const), Val::V128(7u128.into())).unwrap();
    assert_eq!(host.get(&mut store).unwrap_v128().as_u128(), 7);
}

#[test]
fn the_proposals_can_be_turned_off() {
    let simd = "(module (func (result v128) (v128.const i64x2 1 2)))";
    let relaxed = "(module (func (param v128 v128) (result v128) (i8x16.relaxed_swizzle (local.get 0) (local.get 1))))";
    Module::new(&Engine::default(), relaxed).unwrap();
    let mut config = Config::new();
    config.wasm_relaxed_simd(false);
    let engine = Engine::new(&config).unwrap();
    Module::new(&engine, simd).unwrap();
    let err = Module::new(&engine, relaxed).unwrap_err();
    assert_eq!(err.downcast_ref::<CompileError>().unwrap().kind(), CompileErrorKind::Unsupported(Proposal::RelaxedSimd), "{err:#}");
    // SIMD off turns relaxed SIMD off too (it builds on it); relaxed SIMD
    // turned on again without SIMD is refused.
    let mut config = Config::new();
    config.wasm_simd(false);
    assert!(!config.proposal_enabled(Proposal::RelaxedSimd));
    config.wasm_relaxed_simd(true);
    assert!(Engine::new(&config).is_err());
    config.wasm_relaxed_simd(false);
    let engine = Engine::new(&config).unwrap();
    let err = Module::new(&engine, simd).unwrap_err();
    let e = err.downcast_ref::<CompileError>().unwrap();
    assert_eq!(e.kind(), CompileErrorKind::Unsupported(Proposal::Simd));
    assert!(e.to_string().contains("simd"), "{e}");
}

/// Each relaxed operator gives its documented deterministic result.
#[test]
fn relaxed_operators_are_deterministic() {
    let engine = Engine::default();
    let module = Module::new(
        &engine,
        r#"(module
        (func (export "madd") (param v128 v128 v128) (result v128) (f32x4.relaxed_madd (local.get 0) (local.get 1) (local.get 2)))
        (func (export "swizzle") (param v128 v128) (result v128) (i8x16.relaxed_swizzle (local.get 0) (local.get 1)))
        (func (export "trunc") (param v128) (result v128) (i32x4.relaxed_trunc_f32x4_s (local.get 0)))
        (func (export "laneselect") (param v128 v128 v128) (result v128) (i32x4.relaxed_laneselect (local.get 0) (local.get 1) (local.get 2)))
        (func (export "min") (param v128 v128) (result v128) (f32x4.relaxed_min (local.get 0) (local.get 1)))
        (func (export "dot") (param v128 v128) (result v128) (i16x8.relaxed_dot_i8x16_i7x16_s (local.get 0) (local.get 1))))"#,
    )
    .unwrap();
    let mut store = Store::new(&engine, ());
    let i = Instance::new(&mut store, &module, &[]).unwrap();
    // Unfused: (1 + 2^-23) * (1 - 2^-23) + -1 rounds the product to 1 first, so 0
    // (a fused multiply-add would give -2^-46).
    let madd = i.get_typed_func::<(V128, V128, V128), V128>(&mut store, "madd").unwrap();
    let (a, b) = (1.0 + f32::EPSILON, 1.0 - f32::EPSILON);
    assert_eq!(lanes_f32(madd.call(&mut store, (from_f32([a; 4]), from_f32([b; 4]), from_f32([-1.0; 4]))).unwrap()), [0.0; 4]);
    // Out-of-range indices (16 and above, and negative) select 0.
    let swizzle = i.get_typed_func::<(V128, V128), V128>(&mut store, "swizzle").unwrap();
    let data = V128::from(u128::from_le_bytes(std::array::from_fn(|i| 100 + i as u8)));
    let idx = V128::from(u128::from_le_bytes([0, 15, 16, 0x80, 0xff, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 200]));
    let got = swizzle.call(&mut store, (data, idx)).unwrap().as_u128().to_le_bytes();
    assert_eq!(got, [100, 115, 0, 0, 0, 101, 102, 103, 104, 105, 106, 107, 108, 109, 110, 0]);
    // Saturating: NaN gives 0, out of range the limits.
    let trunc = i.get_typed_func::<V128, V128>(&mut store, "trunc").unwrap();
    assert_eq!(trunc.call(&mut store, from_f32([f32::NAN, 3e9, -3e9, -1.5])).unwrap(), from_i32([0, i32::MAX, i32::MIN, -1]));
    // Bitwise select, not per lane: a mask lane with mixed bits mixes bits.
    let laneselect = i.get_typed_func::<(V128, V128, V128), V128>(&mut store, "laneselect").unwrap();
    let r = laneselect.call(&mut store, (from_i32([-1; 4]), from_i32([0; 4]), from_i32([0x0f0f_0f0f, -1, 0, 1]))).unwrap();
    assert_eq!(r, from_i32([0x0f0f_0f0f, -1, 0, 1]));
    // NaN and -0 handled as in f32x4.min.
    let min = i.get_typed_func::<(V128, V128), V128>(&mut store, "min").unwrap();
    let r = lanes_f32(min.call(&mut store, (from_f32([f32::NAN, -0.0, 1.0, 2.0]), from_f32([1.0, 0.0, f32::NAN, -3.0]))).unwrap());
    assert!(r[0].is_nan() && r[2].is_nan());
    assert!(r[1] == 0.0 && r[1].is_sign_negative());
    assert_eq!(r[3], -3.0);
    // Both operands signed: -1 * -1 (the second's top bit set) is 1.
    let dot = i.get_typed_func::<(V128, V128), V128>(&mut store, "dot").unwrap();
    let minus_one = V128::from(u128::MAX);
    let r = dot.call(&mut store, (minus_one, minus_one)).unwrap().as_u128().to_le_bytes();
    assert_eq!(&r[..2], &2i16.to_le_bytes());
}

#[test]
fn nan_canonicalization_makes_nan_results_canonical() {
    let wat = r#"(module (func (export "add") (param v128 v128) (result v128) (f32x4.add (local.get 0) (local.get 1))))"#;
    // A NaN with a payload and the sign set.
    let weird_nan = f32::from_bits(0xffc0_1234);
    let run = |canonicalize: bool| {
        let mut config = Config::new();
        config.cranelift_nan_canonicalization(canonicalize);
        let engine = Engine::new(&config).unwrap();
        let module = Module::new(&engine, wat).unwrap();
        let mut store = Store::new(&engine, ());
        let add = Instance::new(&mut store, &module, &[]).unwrap().get_typed_func::<(V128, V128), V128>(&mut store, "add").unwrap();
        lanes_f32(add.call(&mut store, (from_f32([weird_nan, 1.0, 2.0, 3.0]), from_f32([1.0; 4]))).unwrap())
    };
    let canonical = run(true);
    assert_eq!(canonical[0].to_bits(), 0x7fc0_0000);
    assert_eq!(&canonical[1..], &[2.0, 3.0, 4.0]);
    // Without it, x86-64 propagates the operand's NaN payload.
    assert_eq!(run(false)[0].to_bits(), 0xffc0_1234);
}

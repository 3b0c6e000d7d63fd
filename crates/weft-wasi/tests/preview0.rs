//! The legacy `wasi_unstable` (preview0) module: its `filestat` layout (u32
//! `nlink`, so later fields move up), its `whence` encoding (CUR=0, END=1,
//! SET=2) and its clock `subscription` layout (with an `identifier` field),
//! checked against preview1 on the same file.

use weft::{Engine, Linker, Module, Store};
use weft_wasi::WasiCtx;

const GUEST: &str = r#"(module
  (import "wasi_unstable" "path_open" (func $open0 (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_unstable" "fd_filestat_get" (func $fstat0 (param i32 i32) (result i32)))
  (import "wasi_unstable" "path_filestat_get" (func $pstat0 (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_unstable" "fd_seek" (func $seek0 (param i32 i64 i32 i32) (result i32)))
  (import "wasi_unstable" "poll_oneoff" (func $poll0 (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_filestat_get" (func $fstat1 (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_seek" (func $seek1 (param i32 i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "file")
  ;; opens "file" in the preopen (fd 3) via preview0; the fd lands at 100
  (func (export "open") (result i32)
    (call $open0 (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 0) (i64.const 6) (i64.const 0) (i32.const 0) (i32.const 100)))
  (func (export "fd") (result i32) (i32.load (i32.const 100)))
  ;; filestats land at 200 (preview0) and 300 (preview1)
  (func (export "fstat0") (param i32) (result i32) (call $fstat0 (local.get 0) (i32.const 200)))
  (func (export "pstat0") (result i32) (call $pstat0 (i32.const 3) (i32.const 0) (i32.const 0) (i32.const 4) (i32.const 200)))
  (func (export "fstat1") (param i32) (result i32) (call $fstat1 (local.get 0) (i32.const 300)))
  (func (export "seek0") (param i32 i64 i32) (result i64)
    (if (call $seek0 (local.get 0) (local.get 1) (local.get 2) (i32.const 400)) (then (return (i64.const -1))))
    (i64.load (i32.const 400)))
  (func (export "seek1") (param i32 i64 i32) (result i64)
    (if (call $seek1 (local.get 0) (local.get 1) (local.get 2) (i32.const 400)) (then (return (i64.const -1))))
    (i64.load (i32.const 400)))
  ;; one relative clock subscription (preview0 layout, 56 bytes) at 512; event at 1024
  (func (export "poll0") (result i32)
    (i64.store (i32.const 512) (i64.const 0x1234))        ;; userdata
    (i32.store8 (i32.const 520) (i32.const 0))            ;; tag: clock
    (i64.store (i32.const 528) (i64.const 0))             ;; identifier
    (i32.store (i32.const 536) (i32.const 1))             ;; clock id: monotonic
    (i64.store (i32.const 544) (i64.const 1000000))       ;; timeout: 1 ms
    (i64.store (i32.const 552) (i64.const 0))             ;; precision
    (i32.store16 (i32.const 560) (i32.const 0))           ;; flags: relative
    (if (call $poll0 (i32.const 512) (i32.const 1024) (i32.const 1) (i32.const 1100)) (then (return (i32.const -1))))
    (i32.load (i32.const 1100)))
)"#;

fn setup() -> (tempfile::TempDir, Store<WasiCtx>, weft::Instance, weft::Memory) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("file"), b"12345").unwrap();
    let engine = Engine::default();
    let module = Module::new(&engine, GUEST).unwrap();
    let mut linker = Linker::new(&engine);
    weft_wasi::add_to_linker(&mut linker, |c: &mut WasiCtx| c).unwrap();
    let mut store = Store::new(&engine, WasiCtx::builder().preopened_dir(tmp.path(), ".", weft_wasi::FsPerms::ReadWrite).unwrap().build());
    let instance = linker.instantiate(&mut store, &module).unwrap();
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    (tmp, store, instance, memory)
}

fn u64_at(m: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(m[at..at + 8].try_into().unwrap())
}
fn u32_at(m: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(m[at..at + 4].try_into().unwrap())
}

#[test]
fn filestat_layouts_differ_as_specified() {
    let (_tmp, mut store, inst, mem) = setup();
    assert_eq!(inst.get_typed_func::<(), i32>(&mut store, "open").unwrap().call(&mut store, ()).unwrap(), 0);
    let fd = inst.get_typed_func::<(), i32>(&mut store, "fd").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(inst.get_typed_func::<i32, i32>(&mut store, "fstat0").unwrap().call(&mut store, fd).unwrap(), 0);
    assert_eq!(inst.get_typed_func::<i32, i32>(&mut store, "fstat1").unwrap().call(&mut store, fd).unwrap(), 0);
    let m = mem.data(&store);
    // preview1: filetype @16, nlink u64 @24, size @32, atim @40, mtim @48, ctim @56.
    assert_eq!(m[300 + 16], 4, "regular file");
    assert_eq!(u64_at(m, 300 + 24), 1);
    assert_eq!(u64_at(m, 300 + 32), 5);
    // preview0: filetype @16, nlink u32 @20, size @24, atim @32, mtim @40, ctim @48.
    assert_eq!(m[200 + 16], 4, "regular file");
    assert_eq!(u32_at(m, 200 + 20), 1);
    assert_eq!(u64_at(m, 200 + 24), 5);
    assert_eq!(u64_at(m, 200 + 8), u64_at(m, 300 + 8), "same inode");
    assert_eq!(u64_at(m, 200 + 40), u64_at(m, 300 + 48), "same mtim");
    assert_eq!(u64_at(m, 200 + 48), u64_at(m, 300 + 56), "same ctim");
    assert_ne!(u64_at(m, 300 + 48), 0);
    assert_eq!(inst.get_typed_func::<(), i32>(&mut store, "pstat0").unwrap().call(&mut store, ()).unwrap(), 0);
    assert_eq!(u64_at(mem.data(&store), 200 + 24), 5);
}

#[test]
fn whence_encodings() {
    let (_tmp, mut store, inst, _mem) = setup();
    inst.get_typed_func::<(), i32>(&mut store, "open").unwrap().call(&mut store, ()).unwrap();
    let fd = inst.get_typed_func::<(), i32>(&mut store, "fd").unwrap().call(&mut store, ()).unwrap();
    let seek0 = inst.get_typed_func::<(i32, i64, i32), i64>(&mut store, "seek0").unwrap();
    let seek1 = inst.get_typed_func::<(i32, i64, i32), i64>(&mut store, "seek1").unwrap();
    // preview0: CUR=0 END=1 SET=2
    assert_eq!(seek0.call(&mut store, (fd, -1, 1)).unwrap(), 4, "END");
    assert_eq!(seek0.call(&mut store, (fd, -2, 0)).unwrap(), 2, "CUR");
    assert_eq!(seek0.call(&mut store, (fd, 1, 2)).unwrap(), 1, "SET");
    assert_eq!(seek0.call(&mut store, (fd, 0, 3)).unwrap(), -1, "invalid whence");
    // preview1: SET=0 CUR=1 END=2
    assert_eq!(seek1.call(&mut store, (fd, 3, 0)).unwrap(), 3, "SET");
    assert_eq!(seek1.call(&mut store, (fd, 1, 1)).unwrap(), 4, "CUR");
    assert_eq!(seek1.call(&mut store, (fd, 0, 2)).unwrap(), 5, "END");
}

#[test]
fn clock_subscription_layout() {
    let (_tmp, mut store, inst, mem) = setup();
    let n = inst.get_typed_func::<(), i32>(&mut store, "poll0").unwrap().call(&mut store, ()).unwrap();
    assert_eq!(n, 1);
    let m = mem.data(&store);
    assert_eq!(u64_at(m, 1024), 0x1234, "userdata");
    assert_eq!(u16::from_le_bytes([m[1032], m[1033]]), 0, "no error");
    assert_eq!(m[1034], 0, "clock event");
}

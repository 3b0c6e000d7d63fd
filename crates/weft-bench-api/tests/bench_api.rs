//! Drives the engine interface as sightglass does: through `dlopen` of the
//! built shared library for a real sightglass benchmark, and through the Rust
//! functions for the error paths.

use std::cell::Cell;
use std::ffi::{c_void, CString};
use std::path::{Path, PathBuf};
use std::time::Instant;

use weft_bench_api::{ExitCode, WasmBenchConfig, ERR, OK};

/// What one phase's timer saw.
#[derive(Default)]
struct Phase {
    starts: Cell<u32>,
    ends: Cell<u32>,
    began: Cell<Option<Instant>>,
    elapsed_ns: Cell<u128>,
}

extern "C" fn phase_start(p: *mut u8) {
    // SAFETY: the tests pass a live `Phase` as the timer context.
    let p = unsafe { &*(p as *const Phase) };
    assert!(p.began.get().is_none(), "start called twice without end");
    p.starts.set(p.starts.get() + 1);
    p.began.set(Some(Instant::now()));
}

extern "C" fn phase_end(p: *mut u8) {
    // SAFETY: as in `phase_start`.
    let p = unsafe { &*(p as *const Phase) };
    let began = p.began.take().expect("end called without start");
    p.ends.set(p.ends.get() + 1);
    p.elapsed_ns.set(p.elapsed_ns.get() + began.elapsed().as_nanos());
}

/// The three timers and the strings a config points into.
struct Harness {
    phases: [Phase; 3],
    dir: PathBuf,
    stdout: PathBuf,
    stderr: PathBuf,
    flags: String,
}

impl Harness {
    fn new(working_dir: &Path, flags: &str) -> Harness {
        let out = std::env::temp_dir().join(format!("weft-bench-api-{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&out).unwrap();
        Harness { phases: Default::default(), dir: working_dir.to_owned(), stdout: out.join("stdout"), stderr: out.join("stderr"), flags: flags.to_owned() }
    }

    fn config(&self) -> WasmBenchConfig {
        let s = |p: &Path| p.to_str().unwrap().as_bytes().as_ptr();
        let l = |p: &Path| p.to_str().unwrap().len();
        let timer = |i: usize| &self.phases[i] as *const Phase as *mut u8;
        WasmBenchConfig {
            working_dir_ptr: s(&self.dir),
            working_dir_len: l(&self.dir),
            stdout_path_ptr: s(&self.stdout),
            stdout_path_len: l(&self.stdout),
            stderr_path_ptr: s(&self.stderr),
            stderr_path_len: l(&self.stderr),
            stdin_path_ptr: std::ptr::null(),
            stdin_path_len: 0,
            compilation_timer: timer(0),
            compilation_start: phase_start,
            compilation_end: phase_end,
            instantiation_timer: timer(1),
            instantiation_start: phase_start,
            instantiation_end: phase_end,
            execution_timer: timer(2),
            execution_start: phase_start,
            execution_end: phase_end,
            execution_flags_ptr: if self.flags.is_empty() { std::ptr::null() } else { self.flags.as_ptr() },
            execution_flags_len: self.flags.len(),
        }
    }

    /// (starts, ends) of compilation, instantiation and execution.
    fn counts(&self) -> [(u32, u32); 3] {
        [0, 1, 2].map(|i| (self.phases[i].starts.get(), self.phases[i].ends.get()))
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The shared sightglass data, or `None` outside CI when it is absent.
fn sightglass(bench: &str) -> Option<PathBuf> {
    let base = std::env::var_os("WEFT_WASM_DATA").map(PathBuf::from).unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/wasm-data"));
    let dir = base.join("sightglass").join(bench);
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
        panic!("test data {} is missing (set WEFT_WASM_DATA); required under CI=true", dir.display());
    }
    eprintln!("SKIPPED: test data {} not found (set WEFT_WASM_DATA to run this test)", dir.display());
    None
}

/// The engine interface's functions, looked up in the shared library.
type CreateFn = unsafe extern "C" fn(WasmBenchConfig, *mut *mut c_void) -> ExitCode;
type FreeFn = unsafe extern "C" fn(*mut c_void);
type CompileFn = unsafe extern "C" fn(*mut c_void, *const u8, usize) -> ExitCode;
type PhaseFn = unsafe extern "C" fn(*mut c_void) -> ExitCode;

struct Library {
    create: CreateFn,
    free: FreeFn,
    compile: CompileFn,
    instantiate: PhaseFn,
    execute: PhaseFn,
}

/// `dlopen`s `libweft_bench_api.so`, which cargo builds beside this test's
/// executable (in `deps/`) and copies to the profile directory.
fn load_library() -> Library {
    let exe = std::env::current_exe().unwrap();
    let deps = exe.parent().unwrap();
    let path = [deps.join("libweft_bench_api.so"), deps.parent().unwrap().join("libweft_bench_api.so")]
        .into_iter()
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("libweft_bench_api.so not found near {}", exe.display()));
    let cpath = CString::new(path.to_str().unwrap()).unwrap();
    // SAFETY: loading our own library; its initialisers are Rust's.
    let handle = unsafe { libc::dlopen(cpath.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
    assert!(!handle.is_null(), "dlopen {} failed", path.display());
    let sym = |name: &str| {
        let c = CString::new(name).unwrap();
        // SAFETY: `handle` is a live library handle.
        let p = unsafe { libc::dlsym(handle, c.as_ptr()) };
        assert!(!p.is_null(), "{name} is not exported by {}", path.display());
        p
    };
    // SAFETY: each symbol is the `extern "C"` function of that name in
    // weft-bench-api, whose signature the casts repeat.
    unsafe {
        Library {
            create: std::mem::transmute::<*mut c_void, CreateFn>(sym("wasm_bench_create")),
            free: std::mem::transmute::<*mut c_void, FreeFn>(sym("wasm_bench_free")),
            compile: std::mem::transmute::<*mut c_void, CompileFn>(sym("wasm_bench_compile")),
            instantiate: std::mem::transmute::<*mut c_void, PhaseFn>(sym("wasm_bench_instantiate")),
            execute: std::mem::transmute::<*mut c_void, PhaseFn>(sym("wasm_bench_execute")),
        }
    }
}

/// Compares the guest's output with the expected files (a stream without
/// one is not checked, as in sightglass).
fn check_output(harness: &Harness, bench_dir: &Path) {
    for (file, expected) in [(&harness.stdout, "benchmark.stdout.expected"), (&harness.stderr, "benchmark.stderr.expected")] {
        let Ok(expected) = std::fs::read_to_string(bench_dir.join(expected)) else { continue };
        let actual = std::fs::read_to_string(file).unwrap();
        assert_eq!(actual.trim_end(), expected.trim_end(), "{}", file.display());
    }
}

/// Sightglass's sequence on a real benchmark, through the shared library:
/// one compile, then two instantiate + execute rounds, in every interruption
/// mode; each timer bracketed exactly once per phase and the guest's output
/// as expected.
#[test]
fn sightglass_sequence_through_the_shared_library() {
    let Some(bench_dir) = sightglass("quicksort") else { return };
    run_sequence(&bench_dir, &["", "-W interrupt=epoch", "-W interrupt=mmu", "--pooling -W interrupt=mmu-pointer"]);
}

/// The SIMD benchmarks run through the shared library too, with and without
/// interruption checks.
#[test]
fn simd_benchmarks_through_the_shared_library() {
    for bench in ["blake3-simd", "intgemm-simd", "meshoptimizer"] {
        let Some(bench_dir) = sightglass(bench) else { return };
        run_sequence(&bench_dir, &["", "-W interrupt=mmu"]);
    }
}

fn run_sequence(bench_dir: &Path, all_flags: &[&str]) {
    let lib = load_library();
    let wasm = std::fs::read(bench_dir.join("benchmark.wasm")).unwrap();
    for &flags in all_flags {
        let harness = Harness::new(bench_dir, flags);
        let mut state: *mut c_void = std::ptr::null_mut();
        // SAFETY: the config points into `harness`, which outlives the engine.
        unsafe {
            assert_eq!((lib.create)(harness.config(), &mut state), OK, "flags {flags:?}");
            assert!(!state.is_null());
            assert_eq!((lib.compile)(state, wasm.as_ptr(), wasm.len()), OK, "{}", bench_dir.display());
            for _ in 0..2 {
                assert_eq!((lib.instantiate)(state), OK);
                assert_eq!((lib.execute)(state), OK);
                check_output(&harness, bench_dir);
            }
            (lib.free)(state);
        }
        assert_eq!(harness.counts(), [(1, 1), (2, 2), (2, 2)], "flags {flags:?}");
        assert!(harness.phases[2].elapsed_ns.get() > 0);
        std::fs::remove_dir_all(harness.stdout.parent().unwrap()).unwrap();
    }
}

const GUEST: &str = r#"
    (module
      (import "bench" "start" (func $start))
      (import "bench" "end" (func $end))
      (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1)
      (data (i32.const 16) "hi\n")
      (func (export "_start")
        call $start
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 3))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        call $end))
"#;

/// Creates an engine through the Rust entry points (same code as the library).
fn create(harness: &Harness) -> Result<*mut c_void, ExitCode> {
    let mut state = std::ptr::null_mut();
    // SAFETY: the config points into `harness`, which outlives the engine.
    match unsafe { weft_bench_api::wasm_bench_create(harness.config(), &mut state) } {
        OK => Ok(state),
        code => Err(code),
    }
}

#[test]
fn stdout_goes_to_the_given_file() {
    let harness = Harness::new(&std::env::temp_dir(), "");
    let state = create(&harness).unwrap();
    let wasm = wat::parse_str(GUEST).unwrap();
    // SAFETY: `state` is live until the free below.
    unsafe {
        assert_eq!(weft_bench_api::wasm_bench_compile(state, wasm.as_ptr(), wasm.len()), OK);
        assert_eq!(weft_bench_api::wasm_bench_instantiate(state), OK);
        assert_eq!(weft_bench_api::wasm_bench_execute(state), OK);
        weft_bench_api::wasm_bench_free(state);
    }
    assert_eq!(std::fs::read_to_string(&harness.stdout).unwrap(), "hi\n");
    assert_eq!(harness.counts(), [(1, 1), (1, 1), (1, 1)]);
}

#[test]
fn errors_are_statuses_not_crashes() {
    let dir = std::env::temp_dir();
    // Unknown flags fail at creation.
    for flags in ["--fast", "-W interrupt=sometimes", "-W pooling=maybe", "-W"] {
        assert_eq!(create(&Harness::new(&dir, flags)), Err(ERR), "{flags}");
    }
    let harness = Harness::new(&dir, "");
    let state = create(&harness).unwrap();
    let trap = wat::parse_str(r#"(module (func (export "_start") unreachable))"#).unwrap();
    // SAFETY: `state` is live until the free below; null pointers are checked.
    unsafe {
        // Out of order: nothing compiled or instantiated yet.
        assert_eq!(weft_bench_api::wasm_bench_instantiate(state), ERR);
        assert_eq!(weft_bench_api::wasm_bench_execute(state), ERR);
        assert_eq!(weft_bench_api::wasm_bench_instantiate(std::ptr::null_mut()), ERR);
        // Malformed bytes: an error, with the compilation timer still balanced.
        assert_eq!(weft_bench_api::wasm_bench_compile(state, b"\0asm\x02".as_ptr(), 5), ERR);
        assert_eq!(weft_bench_api::wasm_bench_compile(state, trap.as_ptr(), trap.len()), OK);
        assert_eq!(weft_bench_api::wasm_bench_compile(state, trap.as_ptr(), trap.len()), ERR, "second compile");
        assert_eq!(weft_bench_api::wasm_bench_instantiate(state), OK);
        // A trap is an error status; the engine stays usable.
        assert_eq!(weft_bench_api::wasm_bench_execute(state), ERR);
        assert_eq!(weft_bench_api::wasm_bench_instantiate(state), OK);
        assert_eq!(weft_bench_api::wasm_bench_execute(state), ERR);
        weft_bench_api::wasm_bench_free(state);
        weft_bench_api::wasm_bench_free(std::ptr::null_mut());
    }
    assert_eq!(harness.counts()[0], (2, 2));
}

//! Runs every example program once, from the repository root (where their
//! `examples/*.wat` paths are relative to), and checks that it succeeds and
//! prints the lines that show its results.
//!
//! The examples are wasmtime 48's classic embedding examples written for Weft
//! (`hello`, `gcd`, `memory`, `multi`, `linking`, `externref`, `epochs`,
//! `wasi`), examples of other parts of the same API (`tables_globals`,
//! `func_new`, `traps`), and Weft's own features (`pooling_reset`,
//! `mmu_resumable`, and `pages`: a C program using weft-pages, built with
//! `crates/weft-pages/build-wasm.sh`, which needs Debian's clang, wasi-libc
//! and rustc: without them the `pages` test skips with a message, and fails
//! under `CI=true`). wasmtime's `fuel` and `serialize` examples are left out:
//! Weft has neither fuel metering nor module serialization yet.

use std::process::Command;

/// The repository root: the examples' working directory.
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Runs the example binary `exe` with `args` and extra environment variables,
/// asserts that it exits successfully, and returns its stdout.
fn run(exe: &str, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = Command::new(exe).args(args).envs(env.iter().copied()).current_dir(ROOT).output().unwrap_or_else(|e| panic!("cannot run {exe}: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{exe} failed with {}\n--- stdout:\n{stdout}\n--- stderr:\n{stderr}", output.status);
    stdout
}

/// Asserts that each of `expected` is a whole line of `stdout`, in this order
/// (other lines may come between them).
fn assert_lines(stdout: &str, expected: &[&str]) {
    let mut lines = stdout.lines();
    for want in expected {
        assert!(lines.any(|line| line == *want), "missing line {want:?} (in this order) in:\n{stdout}");
    }
}

#[test]
fn hello() {
    let out = run(env!("CARGO_BIN_EXE_hello"), &[], &[]);
    assert_lines(
        &out,
        &[
            "Compiling module...",
            "Initializing...",
            "Creating callback...",
            "Instantiating module...",
            "Extracting export...",
            "Calling export...",
            "Calling back...",
            "> hello, world!",
            "Done.",
            "The callback ran 1 time(s).",
        ],
    );
}

#[test]
fn gcd() {
    let out = run(env!("CARGO_BIN_EXE_gcd"), &[], &[]);
    assert_lines(
        &out,
        &[
            "gcd(6, 27) = 3",
            "gcd(6, 27) = 3 (loop), 3 (recursion)",
            "gcd(1071, 462) = 21 (loop), 21 (recursion)",
            "gcd(0, 5) = 5 (loop), 5 (recursion)",
            "gcd(17, 0) = 17 (loop), 17 (recursion)",
        ],
    );
}

#[test]
fn memory() {
    let out = run(env!("CARGO_BIN_EXE_memory"), &[], &[]);
    assert_lines(
        &out,
        &[
            "Checking memory...",
            "size: 2 pages, 0x20000 bytes",
            "Mutating memory...",
            "Out-of-bounds store: wasm trap: out of bounds memory access",
            "Reading and writing through read/write...",
            "memory type: minimum 2 pages, maximum Some(3)",
            "Growing memory...",
            "size: 3 pages, 0x30000 bytes",
            "Creating stand-alone memory...",
            "stand-alone memory: 5 pages",
        ],
    );
}

#[test]
fn multi() {
    let out = run(env!("CARGO_BIN_EXE_multi"), &[], &[]);
    assert_lines(
        &out,
        &[
            "Calling export \"g\"...",
            "Printing result...",
            "> 4 2",
            "Calling export \"round_trip_many\"...",
            "Printing result...",
            "> (0, 1, 2, 3, 4, 5, 6, 7, 8, 9)",
            "Calling export \"round_trip_many\" with Vals...",
            "> 0 10 20 30 40 50 60 70 80 90",
        ],
    );
}

#[test]
fn linking() {
    let out = run(env!("CARGO_BIN_EXE_linking"), &[], &[]);
    assert_lines(
        &out,
        &[
            "Instantiating linking2 and registering it...",
            "linking2::double(21) = 42",
            "Instantiating linking1 and calling its run...",
            // Printed by the guest, through WASI's fd_write.
            "Hello, world!",
            "Done.",
        ],
    );
}

#[test]
fn externref() {
    let out = run(env!("CARGO_BIN_EXE_externref"), &[], &[]);
    assert_lines(
        &out,
        &[
            "Creating new `externref`...",
            "Touching `externref` table...",
            "table[3] holds \"Hello, World!\"",
            "Touching `externref` global...",
            "the global holds \"Hello, World!\"",
            "Calling `externref` func...",
            "func returned \"Hello, World!\"",
            "Done.",
        ],
    );
}

#[test]
fn epochs() {
    let out = run(env!("CARGO_BIN_EXE_epochs"), &[], &[]);
    assert_lines(&out, &["Trapped out of fib(100) after epoch increment", "Trapped out of an infinite loop after epoch increment: wasm trap: interrupted"]);
}

#[test]
fn wasi() {
    let out = run(env!("CARGO_BIN_EXE_wasi"), &["first", "second argument"], &[("WEFT_EXAMPLE_GREETING", "hello from the host")]);
    // The first argument the guest sees is the program's path.
    assert_lines(
        &out,
        &["Running the WASI command...", "Hello, world!", "arg: first", "arg: second argument", "env: WEFT_EXAMPLE_GREETING=hello from the host", "Done."],
    );
    assert!(out.lines().any(|l| l.starts_with("arg: ") && l.ends_with("/wasi")), "argv[0] is the program:\n{out}");
}

#[test]
fn tables_globals() {
    let out = run(env!("CARGO_BIN_EXE_tables_globals"), &[], &[]);
    assert_lines(
        &out,
        &[
            "host table: 2 elements of (ref null func), minimum 2, maximum None",
            "host global: i32 Var = 41",
            "call_host(0) = 100, call_host(1) = 2",
            "host table size: 4",
            "call_host(2): IndirectCallToNull",
            "call_host(4): TableOutOfBounds",
            "module table: 2 elements, minimum 2, maximum Some(10)",
            "table[0]() = 1",
            "bump() = 42, host sees 42",
            "g = 30",
            "Done.",
        ],
    );
}

#[test]
fn func_new() {
    let out = run(env!("CARGO_BIN_EXE_func_new"), &[], &[]);
    assert_lines(
        &out,
        &[
            "add: (func (param i32 i32) (result i32))",
            "add(2, 3) = 5",
            "add_three(1, 2, 3) = 6",
            "scale_twice(3, 1.0) = (12, 2)",
            "add ran 4 times, scale 2 times",
            "Done.",
        ],
    );
}

#[test]
fn traps() {
    let out = run(env!("CARGO_BIN_EXE_traps"), &[], &[]);
    assert_lines(
        &out,
        &[
            "unreachable(): trap UnreachableCodeReached",
            "  #0 func[1] unreachable",
            "divide(1, 0): trap IntegerDivisionByZero",
            "divide(i32::MIN, -1): trap IntegerOverflow",
            "load(0xfffd): trap MemoryOutOfBounds",
            "recurse(0): trap StackOverflow",
            "  #0 func[4] recurse",
            "outer(): trap UnreachableCodeReached",
            "  #0 func[1] unreachable",
            "  #1 func[6] middle",
            "  #2 func[5] outer",
            "call_host(): error: the host failed with code 42",
            "  #0 func[8] inner",
            "  #1 func[7] call_host",
            "downcast to MyError: code 42",
            "Done.",
        ],
    );
}

#[test]
fn pooling_reset() {
    let out = run(env!("CARGO_BIN_EXE_pooling_reset"), &[], &[]);
    assert_lines(
        &out,
        &[
            "9 warm instantiations, each with at most one madvise and no mmap, munmap or mprotect",
            "and accepted once the others are dropped",
            "after growing to 3 pages and a reset: 1 page(s), writes = 0",
            "Done.",
        ],
    );
    assert!(out.lines().any(|l| l.starts_with("a fifth instance is refused: ")), "{out}");
    for round in 0..3 {
        let line = out.lines().find(|l| l.starts_with(&format!("reset {round}: "))).unwrap_or_else(|| panic!("no reset {round} line in:\n{out}"));
        assert!(line.contains("mmap 0, munmap 0, mprotect 0, madvise "), "{line}");
    }
}

#[test]
fn mmu_resumable() {
    let out = run(env!("CARGO_BIN_EXE_mmu_resumable"), &[], &[]);
    assert_lines(
        &out,
        &[
            "suspended; other calls are refused meanwhile",
            "resumed: sum_of_squares(1000) = 332833500",
            "suspended 3 times; the host wrote 7 for the guest",
            "the guest returned 7",
            "the next call ran undisturbed",
            "forever(): trap Interrupt",
            "Done.",
        ],
    );
}

#[path = "../../crates/weft-pages/tests/support/guests.rs"]
mod support;

#[test]
fn pages() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../crates/weft-pages/build-wasm.sh");
    let Some(guests) = support::build_guests(std::path::Path::new(script), &std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-pages-wasm")) else {
        return;
    };
    let guest = guests.join("pages_test.wasm");
    let out = run(env!("CARGO_BIN_EXE_pages"), &[guest.to_str().unwrap()], &[]);
    // The program's own summary, then the example's.
    let summary = out.lines().find_map(|l| l.strip_prefix("pages_test: ")).unwrap_or_else(|| panic!("no summary in:\n{out}"));
    assert!(summary.ends_with(" passed, 0 failed") && !summary.starts_with("0 "), "{summary}");
    assert_lines(&out, &["guest exited with status 0"]);
}

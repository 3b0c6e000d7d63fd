//! Traps and errors as the host sees them: each kind of trap reached from Wasm
//! (unreachable, integer division by zero and overflow, out-of-bounds memory,
//! stack overflow) found with `err.downcast_ref::<Trap>()`, the Wasm frames
//! active at the time with `err.downcast_ref::<WasmBacktrace>()`, and a host
//! function's own error type reaching the caller intact through Wasm frames.
//!
//! wasmtime 48 has no Rust example of this name; this one uses wasmtime 48's
//! API only and would compile there unchanged (the printed trap names are the
//! `Debug` names of `Trap`'s variants, which wasmtime shares; the `Display`
//! messages differ, so they are not printed).

use std::fmt;
use weft::*;

/// The error type of the host function `fail`.
#[derive(Debug)]
struct MyError {
    code: i32,
}

impl fmt::Display for MyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the host failed with code {}", self.code)
    }
}

impl std::error::Error for MyError {}

/// Prints what `err` is and its innermost Wasm frames (at most three).
fn report(call: &str, err: &Error) {
    match err.downcast_ref::<Trap>() {
        Some(trap) => println!("{call}: trap {trap:?}"),
        None => println!("{call}: error: {}", err.root_cause()),
    }
    if let Some(backtrace) = err.downcast_ref::<WasmBacktrace>() {
        for (i, frame) in backtrace.frames().iter().take(3).enumerate() {
            println!("  #{i} func[{}] {}", frame.func_index(), frame.func_name().unwrap_or("<unnamed>"));
        }
    }
}

/// The function names of the backtrace on `err`, innermost first.
fn frame_names(err: &Error) -> Vec<&str> {
    let backtrace = err.downcast_ref::<WasmBacktrace>().expect("a failed call carries a backtrace");
    backtrace.frames().iter().map(|f| f.func_name().unwrap_or("<unnamed>")).collect()
}

fn main() -> Result<()> {
    let engine = Engine::default();
    let mut store = Store::new(&engine, ());

    println!("Compiling module...");
    let module = Module::from_file(&engine, "examples/traps.wat")?;

    // A host function that always fails with our own error type.
    let fail = Func::wrap(&mut store, || -> Result<()> { Err(MyError { code: 42 }.into()) });

    println!("Instantiating module...");
    let instance = Instance::new(&mut store, &module, &[fail.into()])?;

    println!("Trapping...");
    let err = instance.get_typed_func::<(), ()>(&mut store, "unreachable")?.call(&mut store, ()).unwrap_err();
    report("unreachable()", &err);
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
    assert_eq!(frame_names(&err), ["unreachable"]);

    let divide = instance.get_typed_func::<(i32, i32), i32>(&mut store, "divide")?;
    assert_eq!(divide.call(&mut store, (7, 2))?, 3);
    let err = divide.call(&mut store, (1, 0)).unwrap_err();
    report("divide(1, 0)", &err);
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::IntegerDivisionByZero));
    let err = divide.call(&mut store, (i32::MIN, -1)).unwrap_err();
    report("divide(i32::MIN, -1)", &err);
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::IntegerOverflow));

    let load = instance.get_typed_func::<i32, i32>(&mut store, "load")?;
    assert_eq!(load.call(&mut store, 0xfffc)?, 0);
    let err = load.call(&mut store, 0xfffd).unwrap_err();
    report("load(0xfffd)", &err);
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::MemoryOutOfBounds));
    assert_eq!(frame_names(&err), ["load"]);

    let err = instance.get_typed_func::<i32, i32>(&mut store, "recurse")?.call(&mut store, 0).unwrap_err();
    report("recurse(0)", &err);
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::StackOverflow));
    let frames = frame_names(&err);
    assert!(frames.len() > 100 && frames.iter().all(|name| *name == "recurse"), "{} frames", frames.len());

    // A trap a few calls deep: the backtrace lists every Wasm frame.
    println!("Trapping in a nested call...");
    let err = instance.get_typed_func::<(), ()>(&mut store, "outer")?.call(&mut store, ()).unwrap_err();
    report("outer()", &err);
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::UnreachableCodeReached));
    assert_eq!(frame_names(&err), ["unreachable", "middle", "outer"]);

    // The host function's error comes back as itself: not a trap, but a
    // `MyError` with the Wasm frames that led to the host.
    println!("Failing in the host...");
    let err = instance.get_typed_func::<(), ()>(&mut store, "call_host")?.call(&mut store, ()).unwrap_err();
    report("call_host()", &err);
    assert!(err.downcast_ref::<Trap>().is_none());
    let my_error = err.downcast_ref::<MyError>().expect("the host's error reaches the caller");
    println!("downcast to MyError: code {}", my_error.code);
    assert_eq!(my_error.code, 42);
    assert_eq!(frame_names(&err), ["inner", "call_host"]);

    // Called directly by the host, the function fails the same way.
    let err = fail.typed::<(), ()>(&store)?.call(&mut store, ()).unwrap_err();
    assert_eq!(err.downcast_ref::<MyError>().map(|e| e.code), Some(42));

    // The store is still usable after all of that.
    assert_eq!(divide.call(&mut store, (9, 3))?, 3);
    println!("Done.");
    Ok(())
}

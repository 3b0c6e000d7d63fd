//! Weft's MMU interruption with resumable calls. With
//! `Config::mmu_interruption(true)`, compiled code makes dead loads from pages
//! the store can revoke; `InterruptHandle::interrupt` (from any thread) makes
//! the next such load fault into the store's interrupt callback, which here
//! returns `InterruptAction::Yield`: a call made with
//! `TypedFunc::call_resumable` then comes back as `CallState::Suspended`, and
//! `SuspendedCall::resume` continues it where it stopped, until
//! `CallState::Done`. Also shown: `InterruptHandle::cancel` withdrawing a
//! pending interrupt, and `InterruptAction::Trap` stopping the guest with
//! `Trap::Interrupt`.
//!
//! No wasmtime counterpart: wasmtime 48 interrupts with epochs (see
//! `epochs.rs`) and resumes only async calls.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use weft::*;

/// What the guest's `sum_of_squares` computes.
fn sum_of_squares(n: u64) -> u64 {
    (0..n).fold(0u64, |acc, i| acc.wrapping_add(i.wrapping_mul(i)))
}

fn main() -> Result<()> {
    let mut config = Config::new();
    config.mmu_interruption(true);
    let engine = Engine::new(&config)?;
    let module = Module::from_file(&engine, "examples/mmu_resumable.wat")?;

    // The store's data counts how often the interrupt callback ran.
    let mut store = Store::new(&engine, 0u32);
    let instance = Instance::new(&mut store, &module, &[])?;
    let handle = store.interrupt_handle()?;
    store.interrupt_callback(|mut ctx| {
        *ctx.data_mut() += 1;
        Ok(InterruptAction::Yield)
    });

    // An interrupt sent while nothing runs stays pending and suspends the next
    // call at its first interruption point.
    println!("Suspending a call with a pending interrupt...");
    let sum = instance.get_typed_func::<i64, i64>(&mut store, "sum_of_squares")?;
    handle.interrupt();
    let CallState::Suspended(call) = sum.call_resumable(&mut store, 1000)? else { panic!("expected the call to be suspended") };
    assert_eq!(*store.data(), 1);
    assert!(sum.call(&mut store, 10).is_err(), "the store refuses other calls while one is suspended");
    println!("suspended; other calls are refused meanwhile");
    let CallState::Done(result) = call.resume(&mut store)? else { panic!("expected the call to finish") };
    println!("resumed: sum_of_squares(1000) = {result}");
    assert_eq!(result as u64, sum_of_squares(1000));

    // A guest that spins until the host writes a word into its memory; a
    // thread interrupts it every 2 ms, and the host writes the word while it is
    // suspended for the third time.
    println!("Interrupting from another thread until the guest is done...");
    let done = Arc::new(AtomicBool::new(false));
    let ticker = {
        let (handle, done) = (handle.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(2));
                handle.interrupt();
            }
        })
    };
    let memory = instance.get_memory(&mut store, "memory").unwrap();
    let wait_for_host = instance.get_typed_func::<(), i32>(&mut store, "wait_for_host")?;
    let mut suspensions = 0;
    let mut state = wait_for_host.call_resumable(&mut store, ())?;
    let value = loop {
        match state {
            CallState::Done(value) => break value,
            CallState::Suspended(call) => {
                suspensions += 1;
                if suspensions == 3 {
                    memory.write(&mut store, 0, &7i32.to_le_bytes())?;
                    println!("suspended 3 times; the host wrote 7 for the guest");
                }
                state = call.resume(&mut store)?;
            }
        }
    };
    done.store(true, Ordering::SeqCst);
    ticker.join().unwrap();
    // The ticker may have fired after the guest returned: withdraw that
    // interrupt so that it does not stop the next call.
    handle.cancel();
    println!("the guest returned {value}");
    assert_eq!(value, 7);
    assert!(suspensions >= 3);

    // A cancelled interrupt stops nothing.
    println!("Cancelling a pending interrupt...");
    handle.interrupt();
    handle.cancel();
    let hooks = *store.data();
    assert_eq!(sum.call(&mut store, 100_000)? as u64, sum_of_squares(100_000));
    assert_eq!(*store.data(), hooks, "the callback did not run");
    println!("the next call ran undisturbed");

    // The callback may stop the guest instead: a trap.
    println!("Trapping instead of yielding...");
    store.interrupt_callback(|_| Ok(InterruptAction::Trap));
    let forever = instance.get_typed_func::<(), ()>(&mut store, "forever")?;
    let interrupter = {
        let handle = handle.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            handle.interrupt();
        })
    };
    let err = forever.call(&mut store, ()).unwrap_err();
    interrupter.join().unwrap();
    println!("forever(): trap {:?}", err.downcast_ref::<Trap>().unwrap());
    assert_eq!(err.downcast_ref::<Trap>(), Some(&Trap::Interrupt));

    // Back to yielding, with a callback that keeps no count: one pending
    // interrupt, one suspension.
    store.interrupt_callback(|_| Ok(InterruptAction::Yield));
    handle.interrupt();
    let mut state = sum.call_resumable(&mut store, 10)?;
    let mut resumes = 0;
    let result = loop {
        match state {
            CallState::Done(result) => break result,
            CallState::Suspended(call) => {
                resumes += 1;
                state = call.resume(&mut store)?;
            }
        }
    };
    assert_eq!((result as u64, resumes), (sum_of_squares(10), 1));

    println!("Done.");
    Ok(())
}

//! A SIGSEGV that is not Weft's (a fault in host code) reaches the handler that
//! was installed before Weft's. Its own test binary: handlers are process-wide.

use std::sync::atomic::{AtomicUsize, Ordering};

static PAGE: AtomicUsize = AtomicUsize::new(0);
static CALLS: AtomicUsize = AtomicUsize::new(0);

extern "C" fn previous_handler(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: reading the fault address and unprotecting our own page;
    // mprotect is async-signal-safe.
    unsafe {
        let addr = (*info).si_addr() as usize;
        let page = PAGE.load(Ordering::SeqCst);
        assert_eq!(addr, page);
        libc::mprotect(page as *mut _, 4096, libc::PROT_READ | libc::PROT_WRITE);
    }
    CALLS.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn foreign_sigsegv_reaches_previous_handler() {
    // SAFETY: installing a handler and mapping a page this test owns.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = previous_handler as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO;
        libc::sigemptyset(&mut action.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGSEGV, &action, std::ptr::null_mut()), 0);
        let page = libc::mmap(std::ptr::null_mut(), 4096, libc::PROT_NONE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0);
        assert_ne!(page, libc::MAP_FAILED);
        PAGE.store(page as usize, Ordering::SeqCst);
    }
    // Weft installs its handlers now, on top of ours.
    let engine = weft::Engine::default();
    let mut store = weft::Store::new(&engine, ());
    let module = weft::Module::new(&engine, r#"(module (memory 1) (func (export "oob") (drop (i32.load (i32.const 70000)))))"#).unwrap();
    let inst = weft::Instance::new(&mut store, &module, &[]).unwrap();
    let oob = inst.get_typed_func::<(), ()>(&mut store, "oob").unwrap();
    // Weft's own faults stay Weft's ...
    assert!(oob.call(&mut store, ()).is_err());
    assert_eq!(CALLS.load(Ordering::SeqCst), 0);
    // ... and a fault in host code goes to the previous handler.
    let p = PAGE.load(Ordering::SeqCst) as *mut u32;
    // SAFETY: the page faults once; the previous handler makes it writable.
    unsafe { std::ptr::write_volatile(p, 5) };
    assert_eq!(CALLS.load(Ordering::SeqCst), 1);
    // SAFETY: the page is now readable.
    assert_eq!(unsafe { std::ptr::read_volatile(p) }, 5);
}

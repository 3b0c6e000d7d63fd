//! Checks with strace (the real system calls, not Weft's own counters) that a
//! warm re-instantiation in a pooled slot makes one madvise and no
//! mmap/munmap/mprotect after a tenant that ran, and no system call at all
//! after a tenant that never ran. Skipped with a message when strace is
//! missing outside CI; CI installs it.

use std::process::Command;

use weft::{Config, Engine, Instance, InstanceAllocationStrategy, Module, PoolingConfig, Store};

const ROUNDS: usize = 20;

fn marker(text: &str) {
    // SAFETY: writing a byte slice we own to stderr.
    unsafe { libc::write(2, text.as_ptr() as *const _, text.len()) };
}

/// Run only as the traced child of the test below (`--ignored`).
#[test]
#[ignore = "the child process of warm_pooled_instantiation_syscalls_under_strace"]
fn child_instantiate_in_a_loop() {
    let mut config = Config::new();
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(PoolingConfig { total_memories: 2, ..Default::default() }));
    let engine = Engine::new(&config).unwrap();
    let module = Module::new(
        &engine,
        r#"(module (memory 16) (table 10 funcref) (global (mut i64) (i64.const 1))
            (data (i32.const 1024) "some data") (func (export "f") (i32.store (i32.const 8) (i32.const 1))))"#,
    )
    .unwrap();
    let cycle = |call: bool| {
        let mut store = Store::new(&engine, ());
        let inst = Instance::new(&mut store, &module, &[]).unwrap();
        if call {
            inst.get_typed_func::<(), ()>(&mut store, "f").unwrap().call(&mut store, ()).unwrap();
        }
    };
    for _ in 0..3 {
        cycle(true);
    }
    marker("WEFT-BEGIN\n");
    for _ in 0..ROUNDS {
        cycle(true);
    }
    marker("WEFT-MIDDLE\n");
    // The first of these restores the last running tenant's pages.
    for _ in 0..ROUNDS {
        cycle(false);
    }
    marker("WEFT-END\n");
}

#[test]
fn warm_pooled_instantiation_syscalls_under_strace() {
    if Command::new("strace").arg("-V").output().is_err() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("strace is required in CI");
        }
        eprintln!("SKIPPED: strace is not installed");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let log = std::env::temp_dir().join(format!("weft-strace-{}.log", std::process::id()));
    let status = Command::new("strace")
        .args(["-f", "-e", "trace=memory,write", "-o"])
        .arg(&log)
        .arg(&exe)
        .args(["--exact", "child_instantiate_in_a_loop", "--ignored", "--test-threads=1", "--nocapture"])
        .status()
        .unwrap();
    assert!(status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let _ = std::fs::remove_file(&log);
    let begin = text.find("WEFT-BEGIN").expect("begin marker");
    let middle = text.find("WEFT-MIDDLE").expect("middle marker");
    let end = text.find("WEFT-END").expect("end marker");
    for (window, tenants, expected_madvise) in [(&text[begin..middle], "running", ROUNDS), (&text[middle..end], "idle", 1)] {
        let count = |name: &str| window.lines().filter(|l| l.contains(&format!(" {name}(")) || l.starts_with(&format!("{name}("))).count();
        let (madvise, mmap, munmap, mprotect) = (count("madvise"), count("mmap"), count("munmap"), count("mprotect"));
        println!("{ROUNDS} warm pooled instantiations after {tenants} tenants: madvise={madvise} mmap={mmap} munmap={munmap} mprotect={mprotect}");
        assert_eq!(madvise, expected_madvise, "{window}");
        assert_eq!(mmap + munmap + mprotect, 0, "{window}");
    }
}

//! Helpers shared by the interruption, yield and exception tests (each
//! test binary uses some of them).
#![allow(dead_code)]

/// What the guests' `checksum` export computes, natively: an LCG-style mix of
/// `n, n-1, ..., 1`, so any lost or repeated iteration changes the result.
pub fn checksum(mut n: u64) -> u64 {
    let mut acc = 0u64;
    loop {
        acc = acc.wrapping_mul(6364136223846793005).wrapping_add(n);
        n -= 1;
        if n == 0 {
            return acc;
        }
    }
}

/// Calls `tick` every `period` on another thread until [`Repeater::stop`]:
/// an interrupter or an epoch ticker running beside a guest.
pub struct Repeater {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<()>,
}

impl Repeater {
    pub fn start(period: std::time::Duration, mut tick: impl FnMut() + Send + 'static) -> Repeater {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let thread = std::thread::spawn(move || {
            while !d.load(std::sync::atomic::Ordering::SeqCst) {
                tick();
                std::thread::sleep(period);
            }
        });
        Repeater { done, thread }
    }

    /// Stops the ticks and waits for the thread.
    pub fn stop(self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}

/// Aborts the test process with a message if still armed after `limit`: an
/// interrupt that never lands leaves a guest spinning forever, and a test
/// that hangs says nothing about why (CI would only stop at its time limit).
pub struct Watchdog {
    done: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Watchdog {
    /// Arms the watchdog for the calling test (named after its thread).
    pub fn arm(limit: std::time::Duration) -> Watchdog {
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let d = done.clone();
        let test = std::thread::current().name().unwrap_or("a test").to_string();
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !d.load(std::sync::atomic::Ordering::SeqCst) {
                if start.elapsed() > limit {
                    eprintln!("{test}: still running after {limit:?}, so a guest was never interrupted; aborting");
                    std::process::abort();
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
        Watchdog { done }
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.done.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

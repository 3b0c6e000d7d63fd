//! A minimal spinlock for `no_std` (feature `threads`).

use core::cell::UnsafeCell;
use core::hint::spin_loop;
use core::ops::{Deref, DerefMut};
use core::sync::atomic::{AtomicBool, Ordering};

/// A spinlock, to share a [`PageManager`](crate::PageManager) between threads.
///
/// Wasm threads cannot block without `memory.atomic.wait`, and the critical
/// sections here are short (a tree update and possibly one `memset`), so
/// spinning is adequate.
///
/// # Example
///
/// ```
/// use weft_pages::{Config, PageManager, SliceMemory, SpinLock};
///
/// let mut buffer = vec![0u8; 4 << 20];
/// let shared = SpinLock::new(PageManager::<_, 64>::new(SliceMemory::new(&mut buffer, 1), Config::DEFAULT));
/// let addr = shared.lock().mmap(4096, 1, true).unwrap();
/// assert_eq!(shared.lock().munmap(addr, 4096), Ok(()));
/// ```
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the lock hands out access to `value` to one thread at a time
// (acquire/release on `locked`), so sharing the lock only needs `T: Send`.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    /// Wraps `value` in an unlocked lock.
    pub const fn new(value: T) -> Self {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// Spins until the lock is free, then holds it until the guard is dropped.
    pub fn lock(&self) -> SpinLockGuard<'_, T> {
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            // Wait with plain loads so the cache line is not bounced by writes.
            while self.locked.load(Ordering::Relaxed) {
                spin_loop();
            }
        }
        SpinLockGuard { lock: self }
    }

    /// Consumes the lock and returns the value.
    pub fn into_inner(self) -> T {
        self.value.into_inner()
    }
}

/// Exclusive access to the value of a [`SpinLock`]; unlocks on drop.
pub struct SpinLockGuard<'a, T> {
    lock: &'a SpinLock<T>,
}

impl<T> Deref for SpinLockGuard<'_, T> {
    type Target = T;

    fn deref(&self) -> &T {
        // SAFETY: the guard exists only while this thread holds the lock.
        unsafe { &*self.lock.value.get() }
    }
}

impl<T> DerefMut for SpinLockGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: the guard exists only while this thread holds the lock, and
        // `&mut self` prevents a second reference through the same guard.
        unsafe { &mut *self.lock.value.get() }
    }
}

impl<T> Drop for SpinLockGuard<'_, T> {
    fn drop(&mut self) {
        self.lock.locked.store(false, Ordering::Release);
    }
}

//! Executable code in memory, and the process-wide registry that maps a program
//! counter to the code object (and so the trap table and source map) it is in.
//!
//! The registry is read from signal handlers, so lookups take no lock: readers
//! announce themselves in a counter and read an immutable, sorted snapshot;
//! writers (under a mutex) publish a new snapshot and free the old one only once
//! no reader is inside.

use std::ptr;
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use cranelift_codegen::ir::TrapCode;

/// Metadata of one compiled function inside a code object.
#[derive(Debug)]
pub struct FunctionInfo {
    /// Offset of the function's first byte in the code object.
    pub start: u32,
    pub len: u32,
    /// The Wasm function index, or `None` for trampolines.
    pub func_index: Option<u32>,
    /// Trap sites: (offset in the code object, code), sorted by offset.
    pub traps: Vec<(u32, TrapCode)>,
    /// Source map: (offset in the code object, Wasm module offset), sorted.
    pub srclocs: Vec<(u32, u32)>,
    /// Exception handlers of the calls in `try` regions: (return address,
    /// handler, the frame's size below its frame pointer at the call), all
    /// offsets in the code object, sorted by return address.
    pub handlers: Vec<(u32, u32, u32)>,
}

/// Names for backtraces, from a module's name section.
#[derive(Debug, Default)]
pub struct Symbols {
    pub module: Option<String>,
    pub funcs: std::collections::HashMap<u32, String>,
}

/// Executable memory holding one or more functions, with their metadata.
pub struct CodeMemory {
    ptr: *mut u8,
    mapped_len: usize,
    len: usize,
    /// Functions sorted by start offset.
    pub functions: Vec<FunctionInfo>,
    pub symbols: Symbols,
}

// SAFETY: the code is immutable once published and the metadata is plain data.
unsafe impl Send for CodeMemory {}
// SAFETY: as above; nothing is mutated after construction.
unsafe impl Sync for CodeMemory {}

impl CodeMemory {
    /// Copies `code` into fresh memory and makes it executable. `patch` is
    /// called on the writable copy first (to apply relocations).
    pub fn new(code: &[u8], functions: Vec<FunctionInfo>, symbols: Symbols, patch: impl FnOnce(*mut u8)) -> anyhow::Result<Arc<Self>> {
        let page = page_size();
        let mapped_len = code.len().max(1).div_ceil(page) * page;
        // SAFETY: anonymous private mapping; the result is checked.
        let ptr = unsafe { libc::mmap(ptr::null_mut(), mapped_len, libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS, -1, 0) };
        if ptr == libc::MAP_FAILED {
            anyhow::bail!("failed to map code memory: {}", std::io::Error::last_os_error());
        }
        let ptr = ptr as *mut u8;
        // SAFETY: the mapping is at least `code.len()` bytes and writable.
        unsafe { ptr::copy_nonoverlapping(code.as_ptr(), ptr, code.len()) };
        patch(ptr);
        // SAFETY: `ptr..ptr+mapped_len` is our mapping.
        let rc = unsafe { libc::mprotect(ptr as *mut _, mapped_len, libc::PROT_READ | libc::PROT_EXEC) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: unmapping our own mapping.
            unsafe { libc::munmap(ptr as *mut _, mapped_len) };
            anyhow::bail!("failed to make code executable: {err}");
        }
        let mem = Arc::new(CodeMemory { ptr, mapped_len, len: code.len(), functions, symbols });
        register(&mem);
        Ok(mem)
    }

    pub fn base(&self) -> *const u8 {
        self.ptr
    }

    /// Appends this code's functions to `/tmp/perf-<pid>.map`, the file
    /// `perf` reads to name JIT code (one `START SIZE NAME` line each).
    pub fn write_perf_map(&self) -> std::io::Result<()> {
        use std::io::Write;
        static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let module = self.symbols.module.as_deref().unwrap_or("");
        let mut lines = String::new();
        for f in &self.functions {
            let name = match f.func_index {
                Some(i) => match self.symbols.funcs.get(&i) {
                    Some(n) => format!("wasm[{module}]::{n}"),
                    None => format!("wasm[{module}]::function[{i}]"),
                },
                None => "wasm-trampoline".to_string(),
            };
            lines.push_str(&format!("{:x} {:x} {name}\n", self.ptr as usize + f.start as usize, f.len));
        }
        let _serialised = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let path = format!("/tmp/perf-{}.map", std::process::id());
        std::fs::OpenOptions::new().create(true).append(true).open(path)?.write_all(lines.as_bytes())
    }

    pub fn range(&self) -> (usize, usize) {
        (self.ptr as usize, self.ptr as usize + self.len)
    }

    /// The function containing code offset `offset`.
    pub fn function_at(&self, offset: u32) -> Option<&FunctionInfo> {
        let i = self.functions.partition_point(|f| f.start <= offset);
        let f = self.functions.get(i.checked_sub(1)?)?;
        (offset < f.start + f.len).then_some(f)
    }

    /// The trap code of the instruction at `offset`, if it is a trap site.
    pub fn trap_at(&self, offset: u32) -> Option<TrapCode> {
        let f = self.function_at(offset)?;
        let i = f.traps.binary_search_by_key(&offset, |(o, _)| *o).ok()?;
        Some(f.traps[i].1)
    }

    /// The handler of the call returning to `offset`, if it is in a `try`
    /// region: (handler offset, frame size at the call).
    pub fn handler_at(&self, offset: u32) -> Option<(u32, u32)> {
        let f = self.function_at(offset)?;
        let i = f.handlers.binary_search_by_key(&offset, |h| h.0).ok()?;
        Some((f.handlers[i].1, f.handlers[i].2))
    }

    /// The Wasm module offset of the instruction at `offset`.
    pub fn wasm_offset_at(&self, offset: u32) -> Option<u32> {
        let f = self.function_at(offset)?;
        let i = f.srclocs.partition_point(|(o, _)| *o <= offset);
        Some(f.srclocs.get(i.checked_sub(1)?)?.1)
    }
}

impl Drop for CodeMemory {
    fn drop(&mut self) {
        unregister(self.ptr as usize);
        // SAFETY: we own the mapping and no code in it can be running: the
        // registry held the last other reference only while a module was alive.
        unsafe { libc::munmap(self.ptr as *mut _, self.mapped_len) };
    }
}

pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    unsafe { libc::sysconf(libc::_SC_PAGESIZE) as usize }
}

/// An immutable sorted list of (start, end, code object).
struct Snapshot {
    entries: Vec<(usize, usize, *const CodeMemory)>,
}

static SNAPSHOT: AtomicPtr<Snapshot> = AtomicPtr::new(ptr::null_mut());
static READERS: AtomicUsize = AtomicUsize::new(0);
static ENTRIES: Mutex<Vec<(usize, usize, usize)>> = Mutex::new(Vec::new());

fn publish(entries: &[(usize, usize, usize)]) {
    let snapshot = Box::new(Snapshot { entries: entries.iter().map(|&(s, e, p)| (s, e, p as *const CodeMemory)).collect() });
    let old = SNAPSHOT.swap(Box::into_raw(snapshot), Ordering::SeqCst);
    // Wait until no signal handler can still be reading the old snapshot.
    while READERS.load(Ordering::SeqCst) != 0 {
        std::hint::spin_loop();
    }
    if !old.is_null() {
        // SAFETY: `old` came from Box::into_raw and no reader holds it any more.
        drop(unsafe { Box::from_raw(old) });
    }
}

fn register(mem: &CodeMemory) {
    let (start, end) = mem.range();
    let mut entries = ENTRIES.lock().unwrap();
    let i = entries.partition_point(|e| e.0 < start);
    entries.insert(i, (start, end, mem as *const CodeMemory as usize));
    publish(&entries);
}

fn unregister(start: usize) {
    let mut entries = ENTRIES.lock().unwrap();
    if let Ok(i) = entries.binary_search_by_key(&start, |e| e.0) {
        entries.remove(i);
    }
    publish(&entries);
}

/// Calls `f` with the code object containing `pc` (and the offset of `pc` in it).
/// Async-signal-safe: no locks, no allocation.
pub fn with_code_at<R>(pc: usize, f: impl FnOnce(Option<(&CodeMemory, u32)>) -> R) -> R {
    READERS.fetch_add(1, Ordering::SeqCst);
    let snap = SNAPSHOT.load(Ordering::SeqCst);
    let found = if snap.is_null() {
        None
    } else {
        // SAFETY: the snapshot stays alive while READERS is non-zero.
        let entries = unsafe { &(*snap).entries };
        let i = entries.partition_point(|e| e.0 <= pc);
        match i.checked_sub(1).map(|i| entries[i]) {
            // SAFETY: a registered code object is alive until it unregisters,
            // which needs the snapshot we are holding to be retired first.
            Some((start, end, mem)) if pc < end => Some((unsafe { &*mem }, (pc - start) as u32)),
            _ => None,
        }
    };
    let r = f(found);
    READERS.fetch_sub(1, Ordering::SeqCst);
    r
}
